/**
 * The tunnel client through a real HTTP CONNECT proxy written here
 * (Deno.listen, CONNECT parsing, Proxy-Authorization check, byte pipe):
 * ws and wss (TLS inside the CONNECT tunnel, with a CA made by openssl),
 * credentials from the proxy URL, HTTPS_PROXY / NO_PROXY from the
 * environment, and `fynx tunnel connect --proxy`.
 */
import assert from "node:assert/strict";
import { TunnelClient, type TunnelState } from "../tunnel/client.ts";
import {
  noProxyMatches,
  parseProxyUrl,
  proxyFor,
} from "../tunnel/_client_proxy.ts";
import { FYNX_MAIN, FYNX_PERMISSIONS } from "./_fynx.ts";
import { run } from "./_openssh.ts";
import {
  startTunnelServer,
  testToken,
  type TunnelServer,
} from "./_tunnel_client_server.ts";

interface Proxy {
  port: number;
  /** `host:port` of every CONNECT that was let through. */
  connects: string[];
  /** Requests refused for bad credentials. */
  refused: number;
  close(): Promise<void>;
}

/** An HTTP proxy that only does CONNECT, with Basic credentials. */
function startProxy(user: string, password: string): Proxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const expected = `Basic ${btoa(`${user}:${password}`)}`;
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const proxy: Proxy = {
    port: (listener.addr as Deno.NetAddr).port,
    connects: [],
    refused: 0,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // Closed.
        }
      }
      await Promise.all([...tasks, loop]);
    },
  };
  const handle = async (client: Deno.Conn) => {
    conns.add(client);
    let upstream: Deno.Conn | null = null;
    try {
      let head = "";
      const buf = new Uint8Array(4096);
      while (!head.includes("\r\n\r\n")) {
        const n = await client.read(buf);
        if (n === null) return;
        head += new TextDecoder().decode(buf.subarray(0, n));
        if (head.length > 16384) return;
      }
      const [requestLine, ...lines] = head.split("\r\n");
      const m = /^CONNECT (\S+):(\d+) HTTP\/1\.1$/.exec(requestLine);
      const auth = lines.find((l) => /^proxy-authorization:/i.test(l))
        ?.replace(/^[^:]+:\s*/, "");
      const reply = (s: string) =>
        client.write(new TextEncoder().encode(s + "\r\n\r\n"));
      if (m === null) {
        await reply("HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0");
        return;
      }
      if (auth !== expected) {
        proxy.refused++;
        await reply(
          'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0',
        );
        return;
      }
      upstream = await Deno.connect({
        hostname: m[1].replace(/^\[(.*)\]$/, "$1"),
        port: Number(m[2]),
      });
      conns.add(upstream);
      proxy.connects.push(`${m[1]}:${m[2]}`);
      await reply("HTTP/1.1 200 Connection established");
      const up = upstream;
      const copy = async (from: Deno.Conn, to: Deno.Conn) => {
        const b = new Uint8Array(65536);
        try {
          for (;;) {
            const n = await from.read(b);
            if (n === null) break;
            for (let o = 0; o < n;) o += await to.write(b.subarray(o, n));
          }
        } catch {
          // Reset.
        }
        try {
          to.close();
        } catch {
          // Closed.
        }
        try {
          from.close();
        } catch {
          // Closed.
        }
      };
      await Promise.all([copy(client, up), copy(up, client)]);
    } catch {
      // A dropped client.
    } finally {
      for (const c of [client, upstream]) {
        if (c === null) continue;
        conns.delete(c);
        try {
          c.close();
        } catch {
          // Closed.
        }
      }
    }
  };
  const loop = (async () => {
    for (;;) {
      let c: Deno.Conn;
      try {
        c = await listener.accept();
      } catch {
        return;
      }
      const t = handle(c);
      tasks.add(t);
      t.finally(() => tasks.delete(t));
    }
  })();
  return proxy;
}

function startService(): { port: number; close: () => Promise<void> } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => new Response(`via proxy ${new URL(req.url).pathname}`),
  );
  return { port: server.addr.port, close: () => server.shutdown() };
}

function client(
  server: TunnelServer,
  servicePort: number,
  extra: Partial<ConstructorParameters<typeof TunnelClient>[0]>,
): { client: TunnelClient; states: TunnelState[] } {
  const states: TunnelState[] = [];
  return {
    states,
    client: new TunnelClient({
      url: `ws://127.0.0.1:${server.port}`,
      token: testToken("alice"),
      expose: { app: `http://127.0.0.1:${servicePort}` },
      hostKeyFingerprint: server.hostKey.publicKey.fingerprint(),
      backoff: { initial: 50, max: 200 },
      connectTimeout: 5000,
      onState: (s) => states.push(s),
      ...extra,
    }),
  };
}

function withTimeout<T>(p: Promise<T>, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("timed out")), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

Deno.test("TunnelClient goes through an HTTP CONNECT proxy with Basic credentials", async () => {
  const service = startService();
  const server = startTunnelServer();
  const proxy = startProxy("us er", "p@ss:w");
  const { client: c, states } = client(server, service.port, {
    proxy: `http://us%20er:p%40ss%3Aw@127.0.0.1:${proxy.port}`,
  });
  try {
    c.start();
    await withTimeout(c.ready());
    assert.deepEqual(proxy.connects, [`127.0.0.1:${server.port}`]);
    const connecting = states[0];
    assert.ok(connecting.state === "connecting");
    // The state names the proxy without its credentials.
    assert.equal(connecting.proxy, `http://127.0.0.1:${proxy.port}`);
    await server.waitForName("app");
    assert.match(await server.request("app", "/p"), /via proxy \/p$/);
    // A drop and reconnect goes through the proxy again.
    server.dropAll();
    await withTimeout(
      (async () => {
        while (proxy.connects.length < 2 || c.state.state !== "connected") {
          await new Promise((r) => setTimeout(r, 20));
        }
      })(),
    );
  } finally {
    await c.close();
    await proxy.close();
    await server.close();
    await service.close();
  }
});

Deno.test("TunnelClient stops when the proxy refuses its credentials", async () => {
  const server = startTunnelServer();
  const proxy = startProxy("user", "right");
  const { client: c } = client(server, 1, {
    proxy: `http://user:wrong@127.0.0.1:${proxy.port}`,
  });
  try {
    c.start();
    await assert.rejects(
      withTimeout(c.done),
      /refused CONNECT to 127\.0\.0\.1:\d+: 407 Proxy Authentication Required/,
    );
    assert.equal(proxy.refused, 1);
    assert.equal(server.attempts, 0);
  } finally {
    await c.close();
    await proxy.close();
    await server.close();
  }
});

Deno.test("TunnelClient runs wss inside the proxy tunnel, from HTTPS_PROXY, unless NO_PROXY", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fynx-tunnel-tls-" });
  const openssl = async (args: string[]) => {
    const r = await run("openssl", args, { timeout: 20_000 });
    assert.equal(r.code, 0, r.stderrText);
  };
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${dir}/ca.key`,
    "-out",
    `${dir}/ca.pem`,
    "-days",
    "1",
    "-subj",
    "/CN=fynx test CA",
  ]);
  await openssl([
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${dir}/leaf.key`,
    "-out",
    `${dir}/leaf.csr`,
    "-subj",
    "/CN=localhost",
  ]);
  await Deno.writeTextFile(
    `${dir}/ext.cnf`,
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    `${dir}/leaf.csr`,
    "-CA",
    `${dir}/ca.pem`,
    "-CAkey",
    `${dir}/ca.key`,
    "-CAcreateserial",
    "-out",
    `${dir}/leaf.pem`,
    "-days",
    "1",
    "-extfile",
    `${dir}/ext.cnf`,
  ]);
  const ca = await Deno.readTextFile(`${dir}/ca.pem`);
  const service = startService();
  const server = startTunnelServer({
    tls: {
      cert: await Deno.readTextFile(`${dir}/leaf.pem`),
      key: await Deno.readTextFile(`${dir}/leaf.key`),
    },
  });
  const proxy = startProxy("u", "p");
  const saved = {
    HTTPS_PROXY: Deno.env.get("HTTPS_PROXY"),
    NO_PROXY: Deno.env.get("NO_PROXY"),
  };
  const restore = () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
  };
  const url = `wss://localhost:${server.port}/v1/ssh`;
  try {
    Deno.env.set("HTTPS_PROXY", `http://u:p@127.0.0.1:${proxy.port}`);
    Deno.env.set("NO_PROXY", "example.com");
    const viaProxy = client(server, service.port, { url, caCerts: [ca] })
      .client;
    try {
      viaProxy.start();
      await withTimeout(viaProxy.ready());
      assert.deepEqual(proxy.connects, [`localhost:${server.port}`]);
      await server.waitForName("app");
      assert.match(await server.request("app", "/tls"), /via proxy \/tls$/);
    } finally {
      await viaProxy.close();
    }
    // NO_PROXY exempts the host: straight to the server.
    Deno.env.set("NO_PROXY", ".example.com, localhost");
    const direct = client(server, service.port, { url, caCerts: [ca] })
      .client;
    try {
      direct.start();
      await withTimeout(direct.ready());
      assert.equal(proxy.connects.length, 1);
    } finally {
      await direct.close();
    }
    // Without the CA the certificate is not trusted: a clear failure, retried
    // (it may be a transient interception), never a silent success.
    const states: TunnelState[] = [];
    const u = client(server, service.port, {
      url,
      proxy: null,
      onState: (s) => states.push(s),
    }).client;
    try {
      u.start();
      await withTimeout(
        (async () => {
          while (!states.some((s) => s.state === "reconnecting")) {
            await new Promise((r) => setTimeout(r, 20));
          }
        })(),
      );
      const r = states.find((s) => s.state === "reconnecting")!;
      assert.ok(r.state === "reconnecting");
      assert.match(r.reason, /certificate|UnknownIssuer/i);
    } finally {
      await u.close();
    }
  } finally {
    restore();
    await proxy.close();
    await server.close();
    await service.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fynx tunnel connect --proxy goes through the proxy", async () => {
  const service = startService();
  const server = startTunnelServer();
  const proxy = startProxy("cli", "secret");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      ...FYNX_PERMISSIONS,
      FYNX_MAIN,
      "tunnel",
      "connect",
      `ws://127.0.0.1:${server.port}/v1/ssh`,
      "--token",
      testToken("dev"),
      "--expose",
      `app=${service.port}`,
      "--host-key-fingerprint",
      server.hostKey.publicKey.fingerprint(),
      "--proxy",
      `http://cli:secret@127.0.0.1:${proxy.port}`,
      "--json",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const reading = (async () => {
    let rest = "";
    for await (
      const chunk of child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      lines.push(...parts);
    }
  })();
  const stderr = new Response(child.stderr).text();
  try {
    await withTimeout(
      (async () => {
        while (!lines.some((l) => l.includes('"state":"connected"'))) {
          await new Promise((r) => setTimeout(r, 25));
        }
      })(),
      20_000,
    );
    assert.equal(JSON.parse(lines[0]).proxy, `http://127.0.0.1:${proxy.port}`);
    assert.deepEqual(proxy.connects, [`127.0.0.1:${server.port}`]);
  } finally {
    child.kill("SIGTERM");
    const status = await child.status;
    await reading;
    assert.equal(status.code, 0, await stderr);
    await proxy.close();
    await server.close();
    await service.close();
  }
});

Deno.test("proxy settings: URL parsing, NO_PROXY matching, environment", () => {
  assert.equal(parseProxyUrl("proxy:3128").href, "http://proxy:3128/");
  assert.throws(() => parseProxyUrl("https://p:1"), /only http:\/\/ proxies/);
  assert.throws(() => parseProxyUrl("http://"), /Invalid proxy URL/);
  assert.ok(noProxyMatches("*", "anything", 443));
  assert.ok(noProxyMatches("example.com", "api.example.com", 443));
  assert.ok(noProxyMatches(".example.com", "example.com", 443));
  assert.ok(noProxyMatches("*.example.com", "a.example.com", 443));
  assert.ok(!noProxyMatches("example.com", "notexample.com", 443));
  assert.ok(noProxyMatches("h:8443", "h", 8443));
  assert.ok(!noProxyMatches("h:8443", "h", 443));
  assert.ok(noProxyMatches("10.0.0.1, [::1]", "::1", 443));
  const wss = new URL("wss://t.example/v1/ssh");
  const ws = new URL("ws://t.example/v1/ssh");
  const env = {
    HTTPS_PROXY: "http://a:1",
    http_proxy: "http://b:2",
  };
  assert.equal(proxyFor(wss, env)?.host, "a:1");
  assert.equal(proxyFor(ws, env)?.host, "b:2");
  assert.equal(proxyFor(wss, { ...env, no_proxy: "xample" })?.host, "a:1");
  assert.equal(proxyFor(wss, { ...env, NO_PROXY: "t.example" }), null);
  assert.equal(proxyFor(wss, {}), null);
});
