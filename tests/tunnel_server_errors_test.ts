/**
 * Tunnel server error paths: garbage and oversized responses from the
 * client's service, a tunnel that disappears mid-request (in-flight
 * requests fail cleanly, none hang), an unreachable relay target and an
 * unreachable JWKS URL.
 */
import assert from "node:assert/strict";
import { signJwt } from "../tunnel/mod.ts";
import {
  connectClient,
  localService,
  openWebSocket,
  startServer,
  waitFor,
} from "./_tunnel_server.ts";

/** A TCP service that answers every connection with `reply` bytes. */
function rawService(reply: string | Uint8Array) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const bytes = typeof reply === "string"
    ? new TextEncoder().encode(reply)
    : reply;
  const serving = (async () => {
    for await (const conn of listener) {
      (async () => {
        await conn.read(new Uint8Array(4096));
        await conn.write(bytes).catch(() => {});
        conn.close();
      })().catch(() => {});
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close: async () => {
      listener.close();
      await serving;
    },
  };
}

Deno.test("tunnel errors: malformed and oversized responses give 502", async () => {
  const garbage = rawService("SSH-2.0-not-http\r\n\r\n");
  const badHeader = rawService("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n");
  const badLength = rawService("HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n");
  const huge = rawService("HTTP/1.1 200 OK\r\nx: " + "a".repeat(70_000));
  const short = rawService("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc");
  const server = await startServer({ limits: { breakerThreshold: 100 } });
  const c = await connectClient(server, {
    expose: {
      garbage: garbage.port,
      header: badHeader.port,
      length: badLength.port,
      huge: huge.port,
      short: short.port,
    },
  });
  try {
    const cases: [string, RegExp][] = [
      ["garbage", /Malformed status line/],
      ["header", /Malformed header line/],
      ["length", /Malformed Content-Length|failed/],
      ["huge", /longer than 65536/],
    ];
    for (const [name, error] of cases) {
      const res = await fetch(`${server.base}/t/alice/${name}/`);
      assert.equal(res.status, 502, name);
      assert.match((await res.json()).error, error, name);
    }
    // A body that ends short of its Content-Length fails the public body.
    const res = await fetch(`${server.base}/t/alice/short/`);
    assert.equal(res.status, 200);
    await assert.rejects(res.arrayBuffer());
    assert.equal(
      server.tunnel.status().tunnels.find((t) => t.name === "short")?.inFlight,
      0,
    );
  } finally {
    await c.close();
    await server.close();
    for (const s of [garbage, badHeader, badLength, huge, short]) {
      await s.close();
    }
  }
});

Deno.test("tunnel errors: requests in flight fail cleanly when the tunnel drops", async () => {
  const enc = new TextEncoder();
  const stop = Promise.withResolvers<void>();
  const service = localService((req) => {
    if (new URL(req.url).pathname === "/wait") {
      return stop.promise.then(() => new Response("late"));
    }
    return new Response(
      new ReadableStream({
        async start(controller) {
          controller.enqueue(enc.encode("first"));
          await stop.promise;
          controller.close();
        },
      }),
    );
  });
  const server = await startServer();
  const c = await connectClient(server, { expose: { app: service.port } });
  try {
    // One streaming body under way, one waiting for its head.
    const streaming = await fetch(`${server.base}/t/alice/app/stream`);
    const reader = streaming.body!.getReader();
    assert.equal(
      new TextDecoder().decode((await reader.read()).value),
      "first",
    );
    const waiting = fetch(`${server.base}/t/alice/app/wait`);
    await waitFor(() => server.tunnel.status().tunnels[0]?.inFlight === 2);
    // The client's WebSocket dies.
    c.ws.close();
    await assert.rejects(async () => {
      while (!(await reader.read()).done) { /* drain */ }
    });
    const res = await waiting;
    assert.equal(res.status, 502);
    await res.body?.cancel();
    await waitFor(() => server.tunnel.status().connections === 0);
    const gone = await fetch(`${server.base}/t/alice/app/`);
    assert.equal(gone.status, 404);
    await gone.body?.cancel();
  } finally {
    stop.resolve();
    await c.close();
    await server.close();
    await service.close();
  }
});

Deno.test("tunnel errors: unreachable relay target (502) and JWKS URL (401)", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (closed.addr as Deno.NetAddr).port;
  closed.close();
  const server = await startServer({ relayAllow: [`127.0.0.1:${port}`] });
  const jwks = await startServer({
    auth: { jwks: `http://127.0.0.1:${port}/jwks.json` },
  });
  try {
    const res = await fetch(
      `${server.base}/v1/relay?target=127.0.0.1:${port}`,
      {
        headers: {
          authorization: `Bearer ${await server.token("alice")}`,
          upgrade: "websocket",
        },
      },
    );
    assert.equal(res.status, 502);
    assert.match((await res.json()).error, /Cannot reach relay target/);
    const head = btoa(JSON.stringify({ alg: "RS256", kid: "k" }))
      .replace(/=+$/, "");
    const token = `${head}.${
      (await signJwt({ sub: "a", exp: 2e9 }, "x")).split(".")[1]
    }.AAAA`;
    const denied = await fetch(`${jwks.base}/v1/ssh`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(denied.status, 401);
    assert.match((await denied.json()).error, /Cannot fetch JWKS/);
    // The WebSocket API sees the refusal as a failed connection.
    await assert.rejects(
      openWebSocket(`ws://127.0.0.1:${jwks.port}/v1/ssh`, {
        authorization: `Bearer ${token}`,
      }),
    );
  } finally {
    await server.close();
    await jwks.close();
  }
});
