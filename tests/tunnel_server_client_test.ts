/**
 * The real tunnel client (`TunnelClient`, what `fynx tunnel connect` runs)
 * against the real tunnel server: requests and a WebSocket through it, a
 * dropped connection that comes back with its name, and a graceful server
 * shutdown that the client answers by reconnecting.
 */
import assert from "node:assert/strict";
import { TunnelClient, type TunnelState } from "../tunnel/client.ts";
import {
  localService,
  startServer,
  waitFor,
  within,
} from "./_tunnel_server.ts";

Deno.test("tunnel server + TunnelClient: requests, reconnect with the same name", async () => {
  const service = localService((req) => {
    if (req.headers.get("upgrade") === "websocket") {
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onmessage = (e) => socket.send(`echo ${e.data}`);
      return response;
    }
    return new Response(`hello ${new URL(req.url).pathname}`);
  });
  const server = await startServer();
  const states: TunnelState[] = [];
  const client = new TunnelClient({
    url: `ws://127.0.0.1:${server.port}`,
    token: await server.token("alice"),
    expose: { app: `http://127.0.0.1:${service.port}` },
    hostKeyFingerprint: server.tunnel.hostKey.publicKey.fingerprint(),
    proxy: null,
    backoff: { initial: 50, max: 200 },
    onState: (s) => states.push(s),
  });
  try {
    client.start();
    await within(client.ready(), 10_000, "connected");
    const res = await fetch(`${server.base}/t/alice/app/x`);
    assert.equal(await res.text(), "hello /x");
    // A WebSocket through the real client.
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/t/alice/app/ws`);
    const reply = new Promise<string>((r) => (ws.onmessage = (e) => r(e.data)));
    await new Promise((r, j) => {
      ws.onopen = r;
      ws.onerror = j;
    });
    ws.send("hi");
    assert.equal(await within(reply, 10_000, "ws echo"), "echo hi");
    const closed = new Promise((r) => (ws.onclose = r));
    ws.close();
    await closed;
    // The connection drops; the client comes back and gets "app" again.
    client.reconnect();
    await waitFor(
      () => states.some((s) => s.state === "reconnecting"),
      10_000,
      "reconnecting",
    );
    await within(client.ready(), 10_000, "reconnected");
    await waitFor(
      async () => {
        const r = await fetch(`${server.base}/t/alice/app/y`);
        const text = await r.text();
        return text === "hello /y";
      },
      10_000,
      "requests after the reconnect",
    );
    assert.ok(client.stats.reconnects >= 1);
    assert.ok(server.tunnel.metrics.reconnects >= 1);
  } finally {
    await client.close();
    await server.close();
    await service.close();
  }
});

Deno.test("tunnel server + TunnelClient: a graceful shutdown makes the client reconnect", async () => {
  const service = localService(() => new Response("ok"));
  const server = await startServer();
  const states: TunnelState[] = [];
  const client = new TunnelClient({
    url: `ws://127.0.0.1:${server.port}`,
    token: await server.token("alice"),
    expose: { app: `http://127.0.0.1:${service.port}` },
    hostKeyFingerprint: server.tunnel.hostKey.publicKey.fingerprint(),
    proxy: null,
    backoff: { initial: 50, max: 200 },
    onState: (s) => states.push(s),
  });
  try {
    client.start();
    await within(client.ready(), 10_000, "connected");
    await server.tunnel.shutdown({ deadline: 500, retryAfter: 1 });
    await waitFor(
      () => states.some((s) => s.state === "reconnecting"),
      10_000,
      "reconnecting after the shutdown",
    );
    const r = states.find((s) => s.state === "reconnecting") as {
      reason: string;
    };
    assert.match(r.reason, /shutting down|1012|reconnect/i);
  } finally {
    await client.close();
    await server.close();
    await service.close();
  }
});
