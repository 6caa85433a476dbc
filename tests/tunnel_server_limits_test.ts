/**
 * Tunnel server limits: connections per user, rate limits per IP and per
 * user, message size, the per-tunnel queue, request timeouts, the circuit
 * breaker, idle floods and dead peers. Each answers with a clear status
 * (Retry-After where it applies) and is counted in the metrics.
 */
import assert from "node:assert/strict";
import {
  connectClient,
  localService,
  openWebSocket,
  startServer,
  type TestClient,
  waitFor,
} from "./_tunnel_server.ts";

Deno.test("tunnel limits: a fourth connection for a user limited to three", async () => {
  const server = await startServer();
  const clients: TestClient[] = [];
  try {
    for (let i = 0; i < 3; i++) clients.push(await connectClient(server));
    const res = await fetch(`${server.base}/v1/ssh`, {
      headers: {
        authorization: `Bearer ${await server.token("alice")}`,
        upgrade: "websocket",
      },
    });
    assert.equal(res.status, 429);
    assert.equal(res.headers.get("retry-after"), "10");
    assert.match((await res.json()).error, /already has 3 tunnel connections/);
    assert.equal(
      server.tunnel.metrics.limitHits.get("connections-per-user"),
      1,
    );
    // Another user is not affected; a closed connection frees a place.
    clients.push(await connectClient(server, { user: "bob" }));
    await clients.shift()!.close();
    await waitFor(() => server.tunnel.status().connections === 3);
    clients.push(await connectClient(server));
  } finally {
    for (const c of clients) await c.close();
    await server.close();
  }
});

Deno.test("tunnel limits: rate limits per IP and per user answer 429 with Retry-After", async () => {
  const service = localService(() => new Response("ok"));
  const byIp = await startServer({
    limits: { ipRate: { capacity: 3, perSecond: 0.5 }, userRate: null },
  });
  const byUser = await startServer({
    limits: { ipRate: null, userRate: { capacity: 2, perSecond: 0.25 } },
  });
  const a = await connectClient(byIp, { expose: { app: service.port } });
  const b = await connectClient(byUser, { expose: { app: service.port } });
  try {
    // The SSH connection took one IP token; two requests are left.
    const codes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${byIp.base}/t/alice/app/`);
      codes.push(res.status);
      if (res.status === 429) {
        assert.equal(res.headers.get("retry-after"), "2");
        assert.match((await res.json()).error, /Too many requests for this ip/);
      } else await res.body?.cancel();
    }
    assert.deepEqual(codes, [200, 200, 429]);
    assert.equal(byIp.tunnel.metrics.limitHits.get("rate-ip"), 1);
    // Per user: the connection took one, one request passes.
    const first = await fetch(`${byUser.base}/t/alice/app/`);
    assert.equal(first.status, 200);
    await first.body?.cancel();
    const second = await fetch(`${byUser.base}/t/alice/app/`);
    assert.equal(second.status, 429);
    assert.equal(second.headers.get("retry-after"), "4");
    assert.match((await second.json()).error, /for this user/);
    assert.equal(byUser.tunnel.metrics.limitHits.get("rate-user"), 1);
    assert.match(
      byUser.tunnel.metrics.render(),
      /fynx_tunnel_limit_hits_total\{limit="rate-user"\} 1/,
    );
  } finally {
    await a.close();
    await b.close();
    await byIp.close();
    await byUser.close();
    await service.close();
  }
});

Deno.test("tunnel limits: an oversized WebSocket message closes with 1008", async () => {
  const server = await startServer({ limits: { maxMessageSize: 64 * 1024 } });
  try {
    const c = await connectClient(server);
    // Raw SSH bytes in one message above the limit.
    c.ws.send(new Uint8Array(64 * 1024 + 1));
    const { code, reason } = await c.duplex.closed;
    assert.equal(code, 1008);
    assert.equal(reason, "message too big");
    await c.client.closed;
    await waitFor(() => server.tunnel.status().connections === 0);
    assert.equal(server.tunnel.metrics.limitHits.get("message-size"), 1);
    // Text (control) messages are bounded too.
    const ws = await openWebSocket(`ws://127.0.0.1:${server.port}/v1/ssh`, {
      authorization: `Bearer ${await server.token("alice")}`,
    });
    const closed = new Promise<CloseEvent>((r) => (ws.onclose = r));
    ws.send("x".repeat(64 * 1024 + 1));
    assert.equal((await closed).code, 1008);
  } finally {
    await server.close();
  }
});

Deno.test("tunnel limits: a full per-tunnel queue answers 503, a slow service 504", async () => {
  const release = Promise.withResolvers<void>();
  const service = localService(async (req) => {
    if (new URL(req.url).pathname === "/hang") {
      await release.promise;
    }
    return new Response("done");
  });
  const server = await startServer({
    limits: {
      maxInFlightPerTunnel: 1,
      maxQueuedPerTunnel: 1,
      requestTimeout: 400,
      breakerThreshold: 100,
    },
  });
  const c = await connectClient(server, { expose: { app: service.port } });
  try {
    // One in flight, one queued, the third is refused at once.
    const first = fetch(`${server.base}/t/alice/app/hang`);
    await waitFor(() => server.tunnel.status().tunnels[0].inFlight === 1);
    const second = fetch(`${server.base}/t/alice/app/hang`);
    await waitFor(() => server.tunnel.status().tunnels[0].queued === 1);
    const third = await fetch(`${server.base}/t/alice/app/hang`);
    assert.equal(third.status, 503);
    assert.equal(third.headers.get("retry-after"), "1");
    assert.match((await third.json()).error, /too many queued requests/);
    assert.equal(server.tunnel.metrics.limitHits.get("queue"), 1);
    // The first times out waiting for its head, the second in the queue.
    const [r1, r2] = await Promise.all([first, second]);
    assert.equal(r1.status, 504);
    assert.match((await r1.json()).error, /did not answer/);
    assert.equal(r2.status, 504);
    await r2.body?.cancel();
    assert.ok((server.tunnel.metrics.limitHits.get("timeout") ?? 0) >= 2);
    release.resolve();
    const ok = await fetch(`${server.base}/t/alice/app/fast`);
    assert.equal(await ok.text(), "done");
  } finally {
    release.resolve();
    await c.close();
    await server.close();
    await service.close();
  }
});

Deno.test("tunnel limits: the circuit breaker opens on failures and closes after a good trial", async () => {
  // A TCP service that either hangs up at once (the tunnel sees no
  // response: 502) or answers.
  let healthy = false;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of listener) {
      if (!healthy) {
        conn.close();
        continue;
      }
      (async () => {
        const buf = new Uint8Array(4096);
        await conn.read(buf);
        await conn.write(new TextEncoder().encode(
          "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
        ));
        conn.close();
      })().catch(() => {});
    }
  })();
  const server = await startServer({
    limits: { breakerThreshold: 3, breakerOpenMs: 1000 },
  });
  const port = (listener.addr as Deno.NetAddr).port;
  const c = await connectClient(server, { expose: { app: port } });
  try {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${server.base}/t/alice/app/`);
      assert.equal(res.status, 502);
      await res.body?.cancel();
    }
    assert.equal(server.tunnel.status().tunnels[0].breaker, "open");
    const fast = await fetch(`${server.base}/t/alice/app/`);
    assert.equal(fast.status, 503);
    assert.equal(fast.headers.get("retry-after"), "1");
    assert.match((await fast.json()).error, /circuit open/);
    assert.equal(server.tunnel.metrics.limitHits.get("circuit-breaker"), 1);
    healthy = true;
    await waitFor(
      () => server.tunnel.status().tunnels[0].breaker === "half-open",
      3000,
      "half-open",
    );
    const trial = await fetch(`${server.base}/t/alice/app/`);
    assert.equal(await trial.text(), "ok");
    assert.equal(server.tunnel.status().tunnels[0].breaker, "closed");
  } finally {
    await c.close();
    await server.close();
    listener.close();
    await serving;
  }
});

Deno.test("tunnel limits: idle floods and dead peers are closed", async () => {
  const server = await startServer({
    limits: { loginGraceTime: 300 },
    pingInterval: 100,
  });
  const idle: Deno.TcpConn[] = [];
  try {
    // 50 TCP connections that never send a byte do not stop service.
    for (let i = 0; i < 50; i++) {
      idle.push(
        await Deno.connect({ hostname: "127.0.0.1", port: server.port }),
      );
    }
    const health = await fetch(`${server.base}/healthz`);
    assert.equal(await health.text(), "ok");
    // Upgraded WebSockets that never speak SSH: the login grace time
    // closes them (the pongs they do not send would, too).
    const sockets: WebSocket[] = [];
    for (let i = 0; i < 3; i++) {
      sockets.push(
        await openWebSocket(`ws://127.0.0.1:${server.port}/v1/ssh`, {
          authorization: `Bearer ${await server.token(`idle${i}`)}`,
        }),
      );
    }
    await waitFor(() => server.tunnel.status().connections === 3);
    await Promise.all(
      sockets.map((ws) =>
        new Promise((r) => {
          if (ws.readyState === WebSocket.CLOSED) r(null);
          ws.onclose = r;
        })
      ),
    );
    await waitFor(() => server.tunnel.status().connections === 0);
    // A peer that stopped answering after login: detected by the missing
    // pongs (three intervals of silence) and closed.
    const c = await connectClient(server);
    const seen = Promise.withResolvers<void>();
    c.ws.addEventListener("message", (e) => {
      if (typeof e.data === "string" && e.data.includes('"ping"')) {
        seen.resolve();
      }
    });
    await seen.promise; // The server pings (our duplex answers).
    // Now freeze: swallow everything, answer nothing.
    c.ws.send = () => {};
    const { code } = await c.duplex.closed;
    assert.ok(code === 1008 || code === 1006, `close code ${code}`);
    await waitFor(() => server.tunnel.status().connections === 0);
    assert.ok((server.tunnel.metrics.limitHits.get("dead-peer") ?? 0) >= 1);
    await c.client.closed;
  } finally {
    for (const conn of idle) conn.close();
    await server.close();
  }
});
