/**
 * Tunnel server on loopback: requests per second and latency through one
 * tunnel against hitting the local service directly, at 1, 50 and 200
 * concurrent clients; time to establish a tunnel; a streamed download.
 * The tunnel client is `TunnelClient` (what `fynx tunnel connect` runs),
 * in the same process: client, server and service share one thread, so
 * the figures are a floor for a real deployment.
 *
 *   deno task bench:tunnel
 *
 * @module
 */
import { generatePrivateKey } from "../keys/mod.ts";
import { TunnelClient } from "../tunnel/client.ts";
import { createTunnelApp, signJwt, TunnelStore } from "../tunnel/mod.ts";

const SECRET = "bench secret of at least thirty-two bytes";
const payload = new Uint8Array(1024).fill(120);
const service = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen() {} },
  (req) => {
    if (new URL(req.url).pathname === "/big") {
      const chunk = new Uint8Array(256 * 1024);
      let left = 256 * 1024 * 1024;
      return new Response(
        new ReadableStream({
          pull(c) {
            if (left <= 0) return c.close();
            c.enqueue(chunk);
            left -= chunk.length;
          },
        }),
      );
    }
    return new Response(payload);
  },
);
const store = await TunnelStore.open(":memory:");
const tunnel = await createTunnelApp({
  auth: { secret: SECRET },
  store,
  hostKey: generatePrivateKey("ed25519"),
  log: () => {},
  limits: { ipRate: null, userRate: null, maxInFlightPerTunnel: 256 },
});
const server = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen() {} },
  tunnel.fetch,
);
const token = await signJwt(
  { sub: "bench", exp: Date.now() / 1000 + 3600 },
  SECRET,
);
const fp = tunnel.hostKey.publicKey.fingerprint();

const q = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.floor(p * (xs.length - 1))];

function tunnelClient(name: string): TunnelClient {
  return new TunnelClient({
    url: `ws://127.0.0.1:${server.addr.port}`,
    token,
    expose: { [name]: `http://127.0.0.1:${service.addr.port}` },
    hostKeyFingerprint: fp,
    proxy: null,
  });
}

// Time to establish: WebSocket + SSH handshake + tcpip-forward.
const setup: number[] = [];
for (let i = 0; i < 20; i++) {
  const t0 = performance.now();
  const c = tunnelClient(`n${i}`);
  c.start();
  await c.ready();
  setup.push(performance.now() - t0);
  await c.close();
}
console.log(
  `establish a tunnel: p50 ${q(setup, 0.5).toFixed(1)} ms, p95 ${
    q(setup, 0.95).toFixed(1)
  } ms`,
);

const client = tunnelClient("app");
client.start();
await client.ready();
const direct = `http://127.0.0.1:${service.addr.port}/`;
const via = `http://127.0.0.1:${server.addr.port}/t/bench/app/`;

async function load(url: string, concurrency: number, total: number) {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next++ < total) {
      const s = performance.now();
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`status ${res.status}`);
      lat.push(performance.now() - s);
    }
  }));
  const secs = (performance.now() - t0) / 1000;
  return {
    rps: total / secs,
    p50: q(lat, 0.5),
    p95: q(lat, 0.95),
    p99: q(lat, 0.99),
  };
}

for (const c of [1, 50, 200]) {
  const total = c === 1 ? 500 : 4000;
  const d = await load(direct, c, total);
  const t = await load(via, c, total);
  console.log(
    `${String(c).padStart(3)} clients: direct ${
      d.rps.toFixed(0)
    } req/s p50/p95/p99 ${d.p50.toFixed(2)}/${d.p95.toFixed(2)}/${
      d.p99.toFixed(2)
    } ms; ` +
      `tunnel ${t.rps.toFixed(0)} req/s p50/p95/p99 ${t.p50.toFixed(2)}/${
        t.p95.toFixed(2)
      }/${t.p99.toFixed(2)} ms; ` +
      `added p50 ${(t.p50 - d.p50).toFixed(2)} ms, p95 ${
        (t.p95 - d.p95).toFixed(2)
      } ms`,
  );
}

const t0 = performance.now();
const res = await fetch(`${via}big`);
let n = 0;
for await (const chunk of res.body!) n += chunk.length;
const secs = (performance.now() - t0) / 1000;
console.log(
  `256 MiB streamed download through the tunnel: ${
    (n / 1048576 / secs).toFixed(0)
  } MiB/s`,
);

await client.close();
await tunnel.shutdown({ deadline: 100 });
await store.close();
await server.shutdown();
await service.shutdown();
