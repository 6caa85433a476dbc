/**
 * Tunnel server core: SSH over a real WebSocket, remote forwards served as
 * HTTP routes (methods, headers, large bodies, streaming, WebSockets),
 * name ownership, and no open proxy.
 */
import assert from "node:assert/strict";
import { pseudoRandomBytes, sha256hex } from "./_helpers.ts";
import {
  connectClient,
  localService,
  openWebSocket,
  startServer,
  waitFor,
  within,
} from "./_tunnel_server.ts";
import { forwardRemote, openDirect } from "../forward/mod.ts";

Deno.test("tunnel: methods, headers and large bodies both ways", async () => {
  const download = pseudoRandomBytes(8 * 1024 * 1024, 7);
  const service = localService(async (req) => {
    const url = new URL(req.url);
    if (url.pathname.startsWith("/echo")) {
      const body = new Uint8Array(await req.arrayBuffer());
      return Response.json({
        method: req.method,
        path: url.pathname + url.search,
        sha: sha256hex(body),
        length: body.length,
        xff: req.headers.get("x-forwarded-for"),
        prefix: req.headers.get("x-forwarded-prefix"),
        host: req.headers.get("host"),
        custom: req.headers.get("x-custom"),
        te: req.headers.get("transfer-encoding"),
      }, { headers: { "x-service": "yes" } });
    }
    if (url.pathname === "/big") {
      return new Response(download as Uint8Array<ArrayBuffer>);
    }
    return new Response("not here", { status: 404 });
  });
  const server = await startServer();
  const c = await connectClient(server, { expose: { app: service.port } });
  try {
    const base = `${server.base}/t/alice/app`;
    // GET with a query and a custom header.
    let res = await fetch(`${base}/echo?q=1`, { headers: { "x-custom": "v" } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-service"), "yes");
    let info = await res.json();
    assert.equal(info.method, "GET");
    assert.equal(info.path, "/echo?q=1");
    assert.equal(info.xff, "127.0.0.1");
    assert.equal(info.prefix, "/t/alice/app");
    assert.equal(info.host, `127.0.0.1:${server.port}`);
    assert.equal(info.custom, "v");
    // PUT a 4 MiB body with a known length.
    const upload = pseudoRandomBytes(4 * 1024 * 1024, 3);
    res = await fetch(`${base}/echo`, {
      method: "PUT",
      body: upload as Uint8Array<ArrayBuffer>,
    });
    info = await res.json();
    assert.equal(info.method, "PUT");
    assert.equal(info.sha, sha256hex(upload));
    // POST a streamed body of unknown length (chunked on the channel).
    const streamed = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 16; i++) {
          controller.enqueue(upload.subarray(i * 65536, (i + 1) * 65536));
        }
        controller.close();
      },
    });
    res = await fetch(`${base}/echo`, { method: "POST", body: streamed });
    info = await res.json();
    assert.equal(info.length, 16 * 65536);
    assert.equal(info.sha, sha256hex(upload.subarray(0, 16 * 65536)));
    // DELETE, HEAD, 404 from the service.
    res = await fetch(`${base}/echo`, { method: "DELETE" });
    assert.equal((await res.json()).method, "DELETE");
    res = await fetch(`${base}/big`, { method: "HEAD" });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    res = await fetch(`${base}/missing`);
    assert.equal(res.status, 404);
    assert.equal(await res.text(), "not here");
    // An 8 MiB download with a checksum.
    res = await fetch(`${base}/big`);
    const got = new Uint8Array(await res.arrayBuffer());
    assert.equal(sha256hex(got), sha256hex(download));
    // Percent-encoded paths go through as they were sent.
    res = await fetch(`${base}/echo/a%20b/c%2Fd?x=%41`);
    assert.equal((await res.json()).path, "/echo/a%20b/c%2Fd?x=%41");
    // The tunnel's root without a trailing slash.
    res = await fetch(base);
    assert.equal(res.status, 404);
    await res.body?.cancel();
    const status = server.tunnel.status();
    assert.equal(status.tunnels.length, 1);
    assert.ok(status.tunnels[0].requests >= 8);
    assert.ok(status.tunnels[0].bytesOut >= download.length);
  } finally {
    await c.close();
    await server.close();
    await service.close();
  }
});

Deno.test("tunnel: a streamed response arrives chunk by chunk", async () => {
  const firstSeen = Promise.withResolvers<void>();
  let lastWrittenAt = 0;
  let firstReceivedAt = 0;
  const service = localService(() => {
    const enc = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(enc.encode("data: token1\n\n"));
        // The last chunk is written only once the public client has the
        // first one (or after 5 s, which fails the test): buffering
        // anywhere on the way would hold the first chunk back.
        const timer = setTimeout(() => firstSeen.resolve(), 5000);
        await firstSeen.promise;
        clearTimeout(timer);
        for (let i = 2; i <= 5; i++) {
          await new Promise((r) => setTimeout(r, 20));
          controller.enqueue(enc.encode(`data: token${i}\n\n`));
        }
        lastWrittenAt = performance.now();
        controller.close();
      },
    });
    return new Response(body, {
      headers: { "content-type": "text/event-stream" },
    });
  });
  const server = await startServer();
  const c = await connectClient(server, { expose: { llm: service.port } });
  try {
    const res = await fetch(`${server.base}/t/alice/llm/v1/generate`);
    const reader = res.body!.getReader();
    const first = await reader.read();
    firstReceivedAt = performance.now();
    assert.match(new TextDecoder().decode(first.value), /token1/);
    firstSeen.resolve();
    let text = "";
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    assert.match(text, /token5/);
    assert.ok(lastWrittenAt > 0 && firstReceivedAt < lastWrittenAt);
  } finally {
    await c.close();
    await server.close();
    await service.close();
  }
});

Deno.test("tunnel: a WebSocket through the tunnel echoes", async () => {
  const service = localService((req) => {
    if (req.headers.get("upgrade") !== "websocket") {
      return new Response("ws only", { status: 400 });
    }
    const { socket, response } = Deno.upgradeWebSocket(req, {
      protocol: "echo",
    });
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  });
  const server = await startServer({ limits: { maxMessageSize: 64 * 1024 } });
  const c = await connectClient(server, { expose: { ws: service.port } });
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/t/alice/ws/sock`, [
      "echo",
    ]);
    ws.binaryType = "arraybuffer";
    const messages: (string | ArrayBuffer)[] = [];
    const gotAll = Promise.withResolvers<void>();
    ws.onmessage = (e) => {
      messages.push(e.data);
      if (messages.length === 3) gotAll.resolve();
    };
    await new Promise((r, j) => {
      ws.onopen = r;
      ws.onerror = j;
    });
    assert.equal(ws.protocol, "echo");
    const big = pseudoRandomBytes(60_000, 9);
    ws.send("hello");
    ws.send(new Uint8Array([1, 2, 3]));
    ws.send(big);
    await within(gotAll.promise, 10_000, "three echoes");
    assert.equal(messages[0], "hello");
    assert.deepEqual(
      new Uint8Array(messages[1] as ArrayBuffer),
      new Uint8Array([1, 2, 3]),
    );
    assert.equal(
      sha256hex(new Uint8Array(messages[2] as ArrayBuffer)),
      sha256hex(big),
    );
    const closed = new Promise((r) => (ws.onclose = r));
    ws.close(1000, "done");
    await closed;
    // A message over the size limit closes the public socket with 1009.
    const ws2 = new WebSocket(`ws://127.0.0.1:${server.port}/t/alice/ws/`, [
      "echo",
    ]);
    await new Promise((r, j) => {
      ws2.onopen = r;
      ws2.onerror = j;
    });
    const closed2 = new Promise<CloseEvent>((r) => (ws2.onclose = r));
    ws2.send(new Uint8Array(64 * 1024 + 1));
    assert.equal((await within(closed2, 10_000, "close 1009")).code, 1009);
    assert.equal(server.tunnel.metrics.limitHits.get("message-size"), 1);
    // A plain request to the same service still works.
    const res = await fetch(`${server.base}/t/alice/ws/`);
    assert.equal(res.status, 400);
    assert.equal(await res.text(), "ws only");
  } finally {
    await c.close();
    await server.close();
    await service.close();
  }
});

Deno.test("tunnel: names are owned; same-user reconnect takes them over", async () => {
  const service = localService(() => new Response("one"));
  const service2 = localService(() => new Response("two"));
  const server = await startServer();
  const a1 = await connectClient(server, { expose: { app: service.port } });
  const b = await connectClient(server, { user: "bob" });
  try {
    // Another user asking for a held name gets REQUEST_FAILURE.
    await assert.rejects(
      forwardRemote(b.client, {
        bind: { hostname: "app", port: 0 },
        target: { hostname: "127.0.0.1", port: service.port },
      }),
      /refused by the server/,
    );
    // Invalid names are refused.
    await assert.rejects(
      forwardRemote(b.client, {
        bind: { hostname: "Bad_Name", port: 0 },
        target: { hostname: "127.0.0.1", port: service.port },
      }),
      /refused/,
    );
    assert.equal(
      await (await fetch(`${server.base}/t/alice/app/`)).text(),
      "one",
    );
    // bob's path does not reach alice's tunnel.
    const wrong = await fetch(`${server.base}/t/bob/app/`);
    assert.equal(wrong.status, 404);
    assert.match((await wrong.json()).error, /No tunnel app for user bob/);
    // The same user reconnects while the old connection is still up: the
    // new one takes the name over.
    const a2 = await connectClient(server, { expose: { app: service2.port } });
    try {
      assert.equal(
        await (await fetch(`${server.base}/t/alice/app/`)).text(),
        "two",
      );
      assert.ok(server.tunnel.metrics.reconnects >= 1);
      const audit = await server.tunnel.store.listAudit(50);
      assert.ok(
        audit.some((e) => e.type === "tunnel.expose" && e.takeover === true),
      );
      // The old connection closing does not release the new owner's name.
      await a1.close();
      await waitFor(() => server.tunnel.status().connections === 2);
      assert.equal(
        await (await fetch(`${server.base}/t/alice/app/`)).text(),
        "two",
      );
    } finally {
      await a2.close();
    }
    // Released: bob can have it now.
    await waitFor(() => server.tunnel.status().tunnels.length === 0);
    await forwardRemote(b.client, {
      bind: { hostname: "app", port: 0 },
      target: { hostname: "127.0.0.1", port: service2.port },
    });
    assert.equal(
      await (await fetch(`${server.base}/t/bob/app/`)).text(),
      "two",
    );
  } finally {
    await a1.close();
    await b.close();
    await server.close();
    await service.close();
    await service2.close();
  }
});

Deno.test("tunnel: no open proxy (direct-tcpip, relay allow-list, other paths)", async () => {
  const echo = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const echoPort = (echo.addr as Deno.NetAddr).port;
  const echoing = (async () => {
    for await (const conn of echo) {
      conn.readable.pipeTo(conn.writable).catch(() => {});
    }
  })();
  const server = await startServer({ relayAllow: [`127.0.0.1:${echoPort}`] });
  const c = await connectClient(server);
  try {
    // The SSH client may not open channels to anywhere.
    await assert.rejects(
      openDirect(c.client, { hostname: "127.0.0.1", port: echoPort }),
      /prohibited|only accepts remote forwards/i,
    );
    const token = await server.token("alice");
    const auth = { authorization: `Bearer ${token}` };
    // A relay target not on the list: 403 before any upgrade.
    let res = await fetch(`${server.base}/v1/relay?target=127.0.0.1:22`, {
      headers: auth,
    });
    assert.equal(res.status, 403);
    assert.match((await res.json()).error, /not allowed/);
    res = await fetch(`${server.base}/v1/relay?target=example.com:80`, {
      headers: auth,
    });
    assert.equal(res.status, 403);
    await res.body?.cancel();
    // Without a token: 401.
    res = await fetch(`${server.base}/v1/relay?target=127.0.0.1:${echoPort}`);
    assert.equal(res.status, 401);
    await res.body?.cancel();
    // Absolute-form and other paths are not proxied.
    for (const path of ["/http://example.com/", "/v1/proxy", "/t/alice"]) {
      res = await fetch(`${server.base}${path}`);
      assert.equal(res.status, 404, path);
      await res.body?.cancel();
    }
    // The allowed target relays bytes.
    const ws = await openWebSocket(
      `ws://127.0.0.1:${server.port}/v1/relay?target=127.0.0.1:${echoPort}`,
      auth,
    );
    const got = new Promise<string>((r) =>
      ws.onmessage = (e) => r(new TextDecoder().decode(e.data))
    );
    ws.send(new TextEncoder().encode("relay me"));
    assert.equal(await got, "relay me");
    const closed = new Promise((r) => (ws.onclose = r));
    ws.close();
    await closed;
  } finally {
    await c.close();
    await server.close();
    echo.close();
    await echoing;
  }
});
