/**
 * The tunnel client library against a real SSH-over-WebSocket server on
 * 127.0.0.1 (tests/_tunnel_client_server.ts): exposing names, reconnecting
 * with backoff, name re-registration, dead-peer detection, host key
 * pinning, refused upgrades.
 */
import assert from "node:assert/strict";
import {
  TunnelClient,
  type TunnelClientOptions,
  TunnelFatalError,
  type TunnelState,
  tunnelUrl,
} from "../tunnel/client.ts";
import {
  backoffDelay,
  normalizeFingerprint,
  parseLocalTarget,
  tokenSubject,
} from "../tunnel/_client_options.ts";
import { generatePrivateKey } from "../keys/mod.ts";
import {
  startTunnelServer,
  testToken,
  type TunnelServer,
} from "./_tunnel_client_server.ts";

/** A local HTTP service that says which path it got. */
function startService(): { port: number; close: () => Promise<void> } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const url = new URL(req.url);
      const body = req.body ? await req.text() : "";
      return new Response(`hello ${url.pathname} ${body}`.trim());
    },
  );
  return { port: server.addr.port, close: () => server.shutdown() };
}

function clientFor(
  server: TunnelServer,
  servicePort: number,
  extra: Partial<TunnelClientOptions> = {},
): { client: TunnelClient; states: TunnelState[] } {
  const states: TunnelState[] = [];
  const client = new TunnelClient({
    url: `ws://127.0.0.1:${server.port}`,
    token: testToken("alice"),
    expose: { app: `http://127.0.0.1:${servicePort}` },
    hostKeyFingerprint: server.hostKey.publicKey.fingerprint(),
    proxy: null,
    backoff: { initial: 50, max: 400, stableAfter: 60_000 },
    heartbeatInterval: 200,
    deadPeerTimeout: 2000,
    keepaliveInterval: 500,
    connectTimeout: 5000,
    ...extra,
    onState: (s) => {
      states.push(s);
      extra.onState?.(s);
    },
  });
  return { client, states };
}

async function waitFor(
  what: string,
  check: () => boolean,
  timeout = 8000,
): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("TunnelClient exposes names and serves requests through the tunnel", async () => {
  const service = startService();
  const server = startTunnelServer();
  const { client, states } = clientFor(server, service.port, {
    expose: {
      app: `http://127.0.0.1:${service.port}`,
      api: `127.0.0.1:${service.port}`,
    },
    headers: { "X-Corp-Gateway": "yes" },
  });
  try {
    client.start();
    await client.ready();
    const connected = states.find((s) => s.state === "connected");
    assert.ok(connected?.state === "connected");
    assert.deepEqual(connected.names.sort(), ["api", "app"]);
    assert.deepEqual(connected.refused, []);
    assert.equal(connected.hostKey, server.hostKey.publicKey.fingerprint());
    const [tunnel] = server.tunnels;
    assert.equal(tunnel.user, "alice");
    assert.equal(tunnel.headers.get("x-corp-gateway"), "yes");
    assert.match(tunnel.headers.get("authorization")!, /^Bearer ey/);
    const response = await server.request("app", "/v1/models");
    assert.match(response, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(response, /hello \/v1\/models$/);
    // EOF right after the request (as a proxy may send it): the client
    // does not half-close the local socket, which Deno's server would
    // take as an abort.
    const posted = await server.request(
      "api",
      "/echo",
      "x".repeat(100_000),
      true,
    );
    assert.match(posted, /^HTTP\/1.1 200/);
    assert.equal(
      posted.split("\r\n\r\n")[1].length,
      "hello /echo ".length + 100_000,
      posted.slice(0, 300),
    );
    await waitFor("stats", () => client.stats.requestsServed === 2);
    assert.equal(client.stats.activeRequests, 0);
  } finally {
    await client.close();
    await server.close();
    await service.close();
  }
  assert.equal(states.at(-1)?.state, "closed");
});

Deno.test("TunnelClient reconnects after a drop and gets its names back", async () => {
  const service = startService();
  const server = startTunnelServer();
  const { client, states } = clientFor(server, service.port);
  try {
    client.start();
    await client.ready();
    assert.deepEqual(server.registrations, ["app"]);
    server.dropAll(1011, "internal error");
    await waitFor(
      "reconnecting",
      () => states.some((s) => s.state === "reconnecting"),
    );
    await waitFor(
      "connected again",
      () => states.filter((s) => s.state === "connected").length === 2,
    );
    const r = states.find((s) => s.state === "reconnecting")!;
    assert.ok(r.state === "reconnecting");
    assert.match(r.reason, /1011|closed/);
    assert.ok(r.delay >= 0 && r.delay < 50, `first delay ${r.delay}`);
    assert.deepEqual(server.registrations, ["app", "app"]);
    await server.waitForName("app");
    assert.match(await server.request("app", "/again"), /hello \/again$/);
    assert.equal(client.stats.reconnects, 1);
  } finally {
    await client.close();
    await server.close();
    await service.close();
  }
});

Deno.test("TunnelClient backs off while the server is down and comes back when it returns", async () => {
  const service = startService();
  let server = startTunnelServer();
  const port = server.port;
  const hostKey = server.hostKey;
  const { client, states } = clientFor(server, service.port, {
    // Deterministic jitter: always the ceiling.
    random: () => 0.999,
  });
  try {
    client.start();
    await client.ready();
    await server.close();
    await waitFor(
      "three failed attempts",
      () => states.filter((s) => s.state === "reconnecting").length >= 4,
    );
    const delays = states.flatMap((s) =>
      s.state === "reconnecting" ? [s.delay] : []
    );
    // 50, 100, 200, 400 (the cap), each just under its ceiling.
    assert.deepEqual(delays.slice(0, 4), [49, 99, 199, 399]);
    server = startTunnelServer({ port, hostKey });
    await waitFor(
      "connected again",
      () => states.filter((s) => s.state === "connected").length === 2,
    );
    await server.waitForName("app");
    assert.match(await server.request("app", "/back"), /hello \/back$/);
  } finally {
    await client.close();
    await server.close();
    await service.close();
  }
});

Deno.test("TunnelClient notices a server that stops answering pings", async () => {
  const service = startService();
  const server = startTunnelServer();
  const { client, states } = clientFor(server, service.port, {
    heartbeatInterval: 100,
    deadPeerTimeout: 600,
    keepaliveInterval: 0, // only the WebSocket layer watches here
  });
  try {
    client.start();
    await client.ready();
    const since = Date.now();
    server.answerPings = false;
    await waitFor(
      "dead peer noticed",
      () => states.some((s) => s.state === "reconnecting"),
      5000,
    );
    const elapsed = Date.now() - since;
    const r = states.find((s) => s.state === "reconnecting")!;
    assert.ok(r.state === "reconnecting");
    assert.match(r.reason, /did not answer pings for 600 ms/);
    assert.ok(elapsed < 3000, `noticed after ${elapsed} ms`);
    server.answerPings = true;
    await waitFor(
      "connected again",
      () => states.filter((s) => s.state === "connected").length === 2,
    );
  } finally {
    await client.close();
    await server.close();
    await service.close();
  }
});

Deno.test("TunnelClient notices a dead SSH layer through keepalives", async () => {
  const service = startService();
  const server = startTunnelServer();
  const { client, states } = clientFor(server, service.port, {
    heartbeatInterval: 0, // only SSH keepalives watch here
    keepaliveInterval: 100,
    keepaliveCountMax: 2,
  });
  try {
    client.start();
    await client.ready();
    const [tunnel] = server.tunnels;
    tunnel.stalled = true;
    await waitFor(
      "dead SSH noticed",
      () => states.some((s) => s.state === "reconnecting"),
      5000,
    );
    const r = states.find((s) => s.state === "reconnecting")!;
    assert.ok(r.state === "reconnecting");
    assert.match(r.reason, /keepalive/);
  } finally {
    await client.close();
    await server.close();
    await service.close();
  }
});

Deno.test("TunnelClient closed while it registers its names stops at once", async () => {
  // close() lands after the SSH connection is up but before the names are
  // registered: nothing else (no heartbeat, no keepalive) would end that
  // session, so close() must.
  const service = startService();
  const server = startTunnelServer();
  const { client, states } = clientFor(server, service.port, {
    heartbeatInterval: 0,
    keepaliveInterval: 0,
  });
  let closing: Promise<void> | undefined;
  server.onRegister = () => {
    closing ??= client.close();
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    client.start();
    await waitFor("a registration", () => closing !== undefined);
    const outcome = await Promise.race([
      closing!.then(() => "closed"),
      new Promise((r) => timer = setTimeout(() => r("still running"), 5000)),
    ]);
    assert.equal(outcome, "closed");
    assert.deepEqual(states.map((s) => s.state), ["connecting", "closed"]);
    await assert.rejects(client.ready(), /has stopped/);
  } finally {
    clearTimeout(timer);
    server.onRegister = null;
    await server.close();
    await service.close();
  }
});

Deno.test("TunnelClient stops at a wrong pinned host key without retrying", async () => {
  const server = startTunnelServer();
  const other = generatePrivateKey("ed25519").publicKey.fingerprint();
  const { client, states } = clientFor(server, 1, {
    hostKeyFingerprint: other,
  });
  try {
    client.start();
    await assert.rejects(
      client.done,
      (e: Error) =>
        e instanceof TunnelFatalError &&
        e.message.includes("Host key mismatch") &&
        e.message.includes(server.hostKey.publicKey.fingerprint()) &&
        e.message.includes(other),
    );
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(server.attempts, 1);
    assert.deepEqual(states.map((s) => s.state), ["connecting", "failed"]);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("TunnelClient pins through known_hosts text", async () => {
  const service = startService();
  const server = startTunnelServer();
  const line = `[127.0.0.1]:${server.port} ${server.hostKey.publicKey}\n`;
  const { client } = clientFor(server, service.port, {
    hostKeyFingerprint: undefined,
    knownHosts: line,
  });
  const stranger = clientFor(server, service.port, {
    hostKeyFingerprint: undefined,
    knownHosts: `[127.0.0.1]:1 ${server.hostKey.publicKey}\n`,
  }).client;
  try {
    client.start();
    await client.ready();
    stranger.start();
    await assert.rejects(stranger.done, /not in known_hosts/);
  } finally {
    await client.close();
    await stranger.close();
    await server.close();
    await service.close();
  }
});

Deno.test("TunnelClient stops on 401 and waits out Retry-After on 503", async () => {
  const service = startService();
  const server = startTunnelServer();
  server.refuse = { status: 401, error: "token expired" };
  const denied = clientFor(server, service.port).client;
  try {
    denied.start();
    await assert.rejects(
      denied.done,
      /refused the WebSocket upgrade: 401 Unauthorized: token expired/,
    );
    assert.equal(server.attempts, 1);
  } finally {
    await denied.close();
  }
  server.refuse = { status: 503, retryAfter: 1, error: "shutting down" };
  server.attempts = 0;
  const { client, states } = clientFor(server, service.port, {
    random: () => 0,
  });
  try {
    client.start();
    await waitFor(
      "refused once",
      () => states.some((s) => s.state === "reconnecting"),
    );
    const r = states.find((s) => s.state === "reconnecting")!;
    assert.ok(r.state === "reconnecting");
    assert.equal(r.delay, 1000);
    assert.match(r.reason, /503 Service Unavailable: shutting down/);
    server.refuse = null;
    await client.ready();
    assert.equal(server.attempts, 2);
  } finally {
    await client.close();
    await server.close();
    await service.close();
  }
});

Deno.test("TunnelClient follows the server's reconnect message and 1012 close", async () => {
  const service = startService();
  const server = startTunnelServer();
  const { client, states } = clientFor(server, service.port, {
    random: () => 0.5,
  });
  try {
    client.start();
    await client.ready();
    server.restartAll(0);
    await waitFor(
      "connected again",
      () => states.filter((s) => s.state === "connected").length === 2,
    );
    const r = states.find((s) => s.state === "reconnecting")!;
    assert.ok(r.state === "reconnecting");
    assert.equal(r.reason, "test restart");
    // retryAfter 0 plus jitter of up to min(1 s, backoff.initial).
    assert.equal(r.delay, 25);
  } finally {
    await client.close();
    await server.close();
    await service.close();
  }
});

Deno.test("TunnelClient keeps other names when one is taken and refuses requests to a dead local service", async () => {
  const server = startTunnelServer();
  server.takenNames.add("taken");
  const dead = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (dead.addr as Deno.NetAddr).port;
  dead.close();
  const { client, states } = clientFor(server, deadPort, {
    expose: { app: `http://127.0.0.1:${deadPort}`, taken: "8080" },
  });
  try {
    client.start();
    await client.ready();
    const c = states.find((s) => s.state === "connected")!;
    assert.ok(c.state === "connected");
    assert.deepEqual(c.names, ["app"]);
    assert.deepEqual(c.refused, ["taken"]);
    await assert.rejects(
      server.request("app"),
      /Connection refused|connect failed|refused/i,
    );
    assert.equal(client.stats.requestsFailed, 1);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("TunnelClient checks its options", () => {
  const base = {
    url: "wss://tunnel.example",
    token: testToken("bob"),
    expose: { app: "http://127.0.0.1:3000" },
    hostKeyFingerprint: generatePrivateKey("ed25519").publicKey.fingerprint(),
  };
  const c = new TunnelClient(base);
  assert.equal(c.url.href, "wss://tunnel.example/v1/ssh");
  assert.equal(c.username, "bob");
  assert.equal(
    new TunnelClient({ ...base, token: "opaque" }).username,
    "tunnel",
  );
  assert.throws(
    () => new TunnelClient({ ...base, hostKeyFingerprint: undefined }),
    /host key must be pinned/,
  );
  assert.throws(
    () => new TunnelClient({ ...base, expose: { "Bad_Name": "80" } }),
    /Invalid name "Bad_Name"/,
  );
  assert.throws(
    () => new TunnelClient({ ...base, expose: { app: "https://x:1" } }),
    /https targets are not supported/,
  );
  assert.throws(
    () => new TunnelClient({ ...base, hostKeyFingerprint: "MD5:aa" }),
    /Invalid host key fingerprint/,
  );
  assert.throws(
    () => new TunnelClient({ ...base, url: "ftp://x" }),
    /expected wss:\/\/ or ws:\/\//,
  );
  assert.throws(
    () => new TunnelClient({ ...base, headers: { "Bad\nName": "x" } }),
    TypeError,
  );
});

Deno.test("tunnel client helpers: backoff, targets, tokens, URLs", () => {
  const o = { initial: 100, max: 1000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 50].map((a) => backoffDelay(a, o, () => 0.999)),
    [99, 199, 399, 799, 999, 999],
  );
  assert.equal(backoffDelay(3, o, () => 0), 0);
  assert.deepEqual(parseLocalTarget("8080", "a"), {
    hostname: "127.0.0.1",
    port: 8080,
  });
  assert.deepEqual(parseLocalTarget("http://[::1]:11434", "a"), {
    hostname: "::1",
    port: 11434,
  });
  assert.deepEqual(parseLocalTarget("http://localhost", "a"), {
    hostname: "localhost",
    port: 80,
  });
  assert.throws(() => parseLocalTarget("localhost", "a"), /no port/);
  assert.throws(() => parseLocalTarget("http://x:1/path", "a"), /path/);
  assert.equal(tokenSubject(testToken("carol")), "carol");
  assert.equal(tokenSubject("a.b.c"), undefined);
  assert.equal(
    tunnelUrl("https://h:8443/").href,
    "wss://h:8443/v1/ssh",
  );
  assert.equal(tunnelUrl("ws://h/custom").href, "ws://h/custom");
  const fp = generatePrivateKey("ed25519").publicKey.fingerprint();
  assert.equal(normalizeFingerprint(`${fp}=`), fp);
});
