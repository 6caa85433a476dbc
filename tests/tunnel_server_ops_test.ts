/**
 * Tunnel server operations: health, metrics, structured logs, graceful
 * shutdown, several instances sharing one KV file, lease expiry, and
 * host-based routing.
 */
import assert from "node:assert/strict";
import { forwardRemote } from "../forward/mod.ts";
import { TunnelStore } from "../tunnel/mod.ts";
import {
  connectClient,
  localService,
  startServer,
  waitFor,
} from "./_tunnel_server.ts";

Deno.test("tunnel ops: healthz, readyz, metrics and correlated logs", async () => {
  const service = localService(() => new Response("hi"));
  const server = await startServer();
  const c = await connectClient(server, { expose: { app: service.port } });
  try {
    assert.equal(await (await fetch(`${server.base}/healthz`)).text(), "ok");
    const ready = await fetch(`${server.base}/readyz`);
    assert.equal(ready.status, 200);
    await ready.body?.cancel();
    for (let i = 0; i < 3; i++) {
      await (await fetch(`${server.base}/t/alice/app/x`)).text();
    }
    const missing = await fetch(`${server.base}/t/alice/nope/`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    const text = await (await fetch(`${server.base}/metrics`)).text();
    for (
      const line of [
        "fynx_tunnel_connections 1",
        "fynx_tunnel_connections_total 1",
        "fynx_tunnel_tunnels 1",
        'fynx_tunnel_requests_total{status="200"} 3',
        'fynx_tunnel_requests_total{status="404"} 1',
        'fynx_tunnel_request_duration_seconds_bucket{le="+Inf"} 3',
        "fynx_tunnel_request_duration_seconds_count 3",
        'fynx_tunnel_bytes_total{direction="out"} 6',
        "fynx_tunnel_reconnects_total 0",
        "# TYPE fynx_tunnel_auth_failures_total counter",
        "# TYPE fynx_tunnel_limit_hits_total counter",
      ]
    ) assert.ok(text.includes(line), `metrics lack ${line}:\n${text}`);
    // One JSON event per line with correlation ids.
    const request = server.logs.find((e) =>
      e.event === "request" && e.status === 200
    );
    assert.ok(
      request && /^r-/.test(String(request.req)) &&
        /^c-/.test(String(request.conn)),
    );
    const connect = server.logs.find((e) => e.event === "audit.tunnel.connect");
    assert.equal(connect?.conn, request!.conn);
    assert.equal(connect?.user, "alice");
    assert.ok(
      server.logs.some((e) =>
        e.event === "audit.auth.ok" && e.conn === request!.conn
      ),
    );
    const audit = await server.tunnel.store.listAudit(20);
    assert.ok(
      audit.some((e) => e.type === "tunnel.expose" && e.name === "app"),
    );
  } finally {
    await c.close();
    await server.close();
    await service.close();
  }
});

Deno.test("tunnel ops: graceful shutdown drains requests and tells clients to reconnect", async () => {
  const slow = Promise.withResolvers<void>();
  const service = localService(async () => {
    await slow.promise;
    return new Response("finished");
  });
  const server = await startServer();
  const c = await connectClient(server, { expose: { app: service.port } });
  const control: Record<string, unknown>[] = [];
  c.ws.addEventListener("message", (e) => {
    if (typeof e.data === "string") control.push(JSON.parse(e.data));
  });
  try {
    const inFlight = fetch(`${server.base}/t/alice/app/`);
    await waitFor(() => server.tunnel.status().tunnels[0]?.inFlight === 1);
    const stopping = server.tunnel.shutdown({ deadline: 5000, retryAfter: 2 });
    const ready = await fetch(`${server.base}/readyz`);
    assert.equal(ready.status, 503);
    await ready.body?.cancel();
    const refused = await fetch(`${server.base}/v1/ssh`, {
      headers: { authorization: `Bearer ${await server.token("alice")}` },
    });
    assert.equal(refused.status, 503);
    assert.ok(refused.headers.get("retry-after"));
    await refused.body?.cancel();
    await waitFor(() => control.some((m) => m.type === "reconnect"));
    assert.deepEqual(control.find((m) => m.type === "reconnect"), {
      type: "reconnect",
      reason: "server shutting down",
      retryAfter: 2,
    });
    // The request in flight still completes.
    slow.resolve();
    const res = await inFlight;
    assert.equal(await res.text(), "finished");
    await stopping;
    const { code } = await c.duplex.closed;
    assert.equal(code, 1012);
    const err = await c.client.closed;
    assert.match(String(err?.message ?? ""), /shutting down|closed/i);
  } finally {
    slow.resolve();
    await c.close();
    await server.close();
    await service.close();
  }
});

Deno.test("tunnel ops: two instances sharing one KV file agree on routes and limits", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/state.kv`;
  const storeA = await TunnelStore.open(path);
  const storeB = await TunnelStore.open(path);
  const service = localService(() => new Response("from alice"));
  const a = await startServer({
    store: storeA,
    instanceId: "A",
    limits: { connectionsPerUser: 1 },
  });
  const b = await startServer({
    store: storeB,
    instanceId: "B",
    limits: { connectionsPerUser: 1 },
  });
  try {
    const alice = await connectClient(a, { expose: { app: service.port } });
    const bob = await connectClient(b, { user: "bob" });
    try {
      // B sees A's route: bob cannot have the name...
      await assert.rejects(
        forwardRemote(bob.client, {
          bind: { hostname: "app", port: 0 },
          target: { hostname: "127.0.0.1", port: service.port },
        }),
        /refused/,
      );
      // ...and B says where the tunnel is instead of "not found".
      const elsewhere = await fetch(`${b.base}/t/alice/app/`);
      assert.equal(elsewhere.status, 503);
      assert.match((await elsewhere.json()).error, /another instance/);
      // The per-user connection limit counts connections on both.
      const second = await fetch(`${b.base}/v1/ssh`, {
        headers: {
          authorization: `Bearer ${await b.token("alice")}`,
          upgrade: "websocket",
        },
      });
      assert.equal(second.status, 429);
      await second.body?.cancel();
    } finally {
      await alice.close();
    }
    // Released on A: bob takes it on B.
    await waitFor(async () => (await storeB.getRoute("app")) === null);
    await forwardRemote(bob.client, {
      bind: { hostname: "app", port: 0 },
      target: { hostname: "127.0.0.1", port: service.port },
    });
    assert.equal((await storeA.getRoute("app"))?.instance, "B");
    await bob.close();
  } finally {
    await a.close();
    await b.close();
    await storeA.close();
    await storeB.close();
    await service.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tunnel ops: a dead instance's lease expires; the same user takes over at once", async () => {
  const store = await TunnelStore.open(":memory:");
  const service = localService(() => new Response("live"));
  const server = await startServer({ store });
  try {
    // An instance that died holding "app" for alice and "db" for carol.
    await store.claimRoute("app", {
      user: "alice",
      instance: "dead",
      connection: "c-dead",
      leaseMs: 60_000,
    });
    await store.claimRoute("db", {
      user: "carol",
      instance: "dead",
      connection: "c-dead2",
      leaseMs: 300,
    });
    // Same user: takes over without waiting for the lease.
    const alice = await connectClient(server, {
      expose: { app: service.port },
    });
    assert.equal(
      await (await fetch(`${server.base}/t/alice/app/`)).text(),
      "live",
    );
    assert.equal(server.tunnel.metrics.reconnects, 1);
    // Other user: refused while the lease lasts, granted once it expired.
    const bob = await connectClient(server, { user: "bob" });
    const ask = () =>
      forwardRemote(bob.client, {
        bind: { hostname: "db", port: 0 },
        target: { hostname: "127.0.0.1", port: service.port },
      });
    await assert.rejects(ask(), /refused/);
    await new Promise((r) => setTimeout(r, 350));
    await ask();
    assert.equal((await store.getRoute("db"))?.user, "bob");
    await alice.close();
    await bob.close();
  } finally {
    await server.close();
    await store.close();
    await service.close();
  }
});

Deno.test("tunnel ops: host-based routing with a domain", async () => {
  const service = localService((req) =>
    new Response(new URL(req.url).pathname)
  );
  const server = await startServer({ domain: "tunnel.test" });
  const c = await connectClient(server, { expose: { app: service.port } });
  try {
    const get = async (host: string, path: string) => {
      const conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: server.port,
      });
      await conn.write(new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`,
      ));
      return await new Response(conn.readable).text();
    };
    assert.match(await get("app.tunnel.test", "/a/b"), /200 OK[\s\S]*\/a\/b$/);
    assert.match(
      await get("app--alice.tunnel.test:8080", "/c"),
      /200 OK[\s\S]*\/c$/,
    );
    assert.match(await get("app--bob.tunnel.test", "/"), /404/);
    // Other hosts still see the normal routes.
    assert.match(await get("127.0.0.1", "/healthz"), /ok$/);
  } finally {
    await c.close();
    await server.close();
    await service.close();
  }
});
