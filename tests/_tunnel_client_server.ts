/**
 * A minimal tunnel server for the tunnel client's tests, built from library
 * pieces: `Deno.serve` + `Deno.upgradeWebSocket`, our `acceptConnection`
 * over the WebSocket's bytes, `tcpip-forward` by name (the contract), and
 * `forwarded-tcpip` channels opened to push requests. A real SSH server
 * over a real WebSocket on 127.0.0.1, with knobs to misbehave (refuse with
 * a status, stop answering pings, drop every socket, go away and come back).
 *
 * @module
 */
import { acceptConnection, type ServerConnection } from "../server.ts";
import { generatePrivateKey } from "../keys/mod.ts";
import type { PrivateKey } from "../keys/types.ts";
import type { Duplex } from "../transport/duplex.ts";
import { webSocketDuplex } from "../tunnel/ws_duplex.ts";
import {
  decodeTcpipForward,
  encodeAllocatedPort,
  encodeTcpipOpen,
} from "../forward/_wire.ts";

/** A JWT-shaped token with `sub` (unsigned: the test server only compares). */
export function testToken(sub: string): string {
  const b64 = (s: string) =>
    btoa(s).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  return `${b64('{"alg":"HS256","typ":"JWT"}')}.${
    b64(JSON.stringify({ sub, exp: Math.floor(Date.now() / 1000) + 3600 }))
  }.c2lnbmF0dXJl`;
}

/** The byte stream of a server-side WebSocket. */
function wsDuplex(socket: WebSocket, stalled = () => false): Duplex {
  socket.binaryType = "arraybuffer";
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const readable = new ReadableStream<Uint8Array>({
    start: (c) => {
      controller = c;
    },
    cancel: () => socket.close(),
  });
  socket.addEventListener("message", (e) => {
    // A stalled server drops the SSH bytes it receives (it answers
    // nothing, as a hung peer would).
    if (e.data instanceof ArrayBuffer && !stalled()) {
      try {
        controller.enqueue(new Uint8Array(e.data));
      } catch {
        // Canceled.
      }
    }
  });
  socket.addEventListener("close", () => {
    try {
      controller.close();
    } catch {
      // Already closed.
    }
  });
  const writable = new WritableStream<Uint8Array>({
    write: (chunk) => {
      if (socket.readyState !== WebSocket.OPEN) {
        throw new Error("WebSocket closed");
      }
      socket.send(chunk);
    },
    close: () => socket.close(1000),
    abort: () => socket.close(1011),
  });
  return { readable, writable };
}

/** One client connection as the test server sees it. */
export interface TestTunnel {
  socket: WebSocket;
  ssh: ServerConnection;
  user: string;
  headers: Headers;
  names: Set<string>;
  /** Set to ignore the client's SSH bytes from now on. */
  stalled: boolean;
}

/** Options of {@linkcode startTunnelServer}. */
export interface TunnelServerOptions {
  /** Port to listen on (0 picks one). */
  port?: number;
  /** Host key (a new Ed25519 one by default). */
  hostKey?: PrivateKey;
  /** TLS certificate and key (PEM) to serve wss. */
  tls?: { cert: string; key: string };
}

/** The running test server. */
export interface TunnelServer {
  port: number;
  hostKey: PrivateKey;
  /** Live connections. */
  tunnels: Set<TestTunnel>;
  /** Upgrade attempts seen on /v1/ssh (authorised or not). */
  attempts: number;
  /** Every `tcpip-forward` name registered, in order. */
  registrations: string[];
  /** Answer JSON pings (set false to play dead on the WebSocket layer). */
  answerPings: boolean;
  /** When set, /v1/ssh answers with this status (and Retry-After). */
  refuse: { status: number; retryAfter?: number; error?: string } | null;
  /** Names the server refuses to anyone. */
  takenNames: Set<string>;
  /** Relay targets allowed for /v1/relay. */
  relayAllow: Set<string>;
  /** Called with each `tcpip-forward` name before it is answered. */
  onRegister: ((name: string) => void) | null;
  /** Sends one HTTP/1.1 GET for `name` through its tunnel; the raw response. */
  request(
    name: string,
    path?: string,
    body?: string,
    eofAfterRequest?: boolean,
  ): Promise<string>;
  /** Resolves once `name` is registered on a live connection. */
  waitForName(name: string, timeout?: number): Promise<TestTunnel>;
  /** Drops every WebSocket (no close handshake from the client's view). */
  dropAll(code?: number, reason?: string): void;
  /** Sends `{"type":"reconnect"}` then closes every socket with 1012. */
  restartAll(retryAfter: number): void;
  /** Stops listening and closes everything. */
  close(): Promise<void>;
}

/** Starts the test server on 127.0.0.1. */
export function startTunnelServer(
  options: TunnelServerOptions = {},
): TunnelServer {
  const hostKey = options.hostKey ?? generatePrivateKey("ed25519");
  const tunnels = new Set<TestTunnel>();
  const running = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>) => {
    running.add(p);
    p.finally(() => running.delete(p)).catch(() => {});
    return p;
  };

  const handleSsh = (
    req: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Response => {
    server.attempts++;
    const auth = req.headers.get("authorization") ?? "";
    const m = /^Bearer (.+)$/.exec(auth);
    if (m === null) {
      return Response.json({ error: "missing bearer token" }, { status: 401 });
    }
    if (server.refuse !== null) {
      const headers: Record<string, string> = {};
      if (server.refuse.retryAfter !== undefined) {
        headers["retry-after"] = String(server.refuse.retryAfter);
      }
      return Response.json({ error: server.refuse.error ?? "refused" }, {
        status: server.refuse.status,
        headers,
      });
    }
    const payload = JSON.parse(
      atob(m[1].split(".")[1].replace(/-/g, "+").replace(/_/g, "/")),
    );
    const user = String(payload.sub);
    // Read before the upgrade: the request's info is gone afterwards.
    const headers = new Headers(req.headers);
    const remote = `${info.remoteAddr.hostname}:${info.remoteAddr.port}`;
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.addEventListener("open", () => {
      const tunnel: TestTunnel = {
        socket,
        ssh: null as unknown as ServerConnection,
        user,
        headers,
        names: new Set(),
        stalled: false,
      };
      socket.addEventListener("message", (e) => {
        if (typeof e.data !== "string") return;
        const msg = JSON.parse(e.data);
        if (msg.type === "ping" && server.answerPings) {
          socket.send(JSON.stringify({ type: "pong", id: msg.id }));
        }
      });
      track((async () => {
        const ssh = await acceptConnection(
          wsDuplex(socket, () => tunnel.stalled),
          {
            hostKeys: [hostKey],
            remoteAddress: remote,
            none: ({ username }) => username === user,
            onGlobalRequest: (name, data) => {
              if (name === "tcpip-forward") {
                const { address } = decodeTcpipForward(data, name);
                server.onRegister?.(address);
                if (server.takenNames.has(address)) return false;
                // Take over from an older connection of the same user.
                for (const t of tunnels) {
                  if (t !== tunnel && t.user === user) t.names.delete(address);
                }
                tunnel.names.add(address);
                server.registrations.push(address);
                return encodeAllocatedPort(80);
              }
              if (name === "cancel-tcpip-forward") {
                tunnel.names.delete(decodeTcpipForward(data, name).address);
                return true;
              }
              return false;
            },
          },
        );
        tunnel.ssh = ssh;
        tunnels.add(tunnel);
        await ssh.closed;
        tunnels.delete(tunnel);
      })());
    });
    return response;
  };

  const handleRelay = (req: Request, url: URL): Response => {
    if (!/^Bearer .+/.test(req.headers.get("authorization") ?? "")) {
      return Response.json({ error: "missing bearer token" }, { status: 401 });
    }
    const target = url.searchParams.get("target") ?? "";
    if (!server.relayAllow.has(target)) {
      return Response.json({ error: "target not allowed" }, { status: 403 });
    }
    const [hostname, port] = [
      target.slice(0, target.lastIndexOf(":")),
      Number(target.slice(target.lastIndexOf(":") + 1)),
    ];
    const { socket, response } = Deno.upgradeWebSocket(req);
    // Listen from the upgrade on: the client sends ssh's version line as
    // soon as the socket opens, which may be before the target is connected.
    // webSocketDuplex also holds our writes until the socket is open (the
    // target speaks first).
    const duplex = webSocketDuplex(socket, { pingInterval: 0 });
    track((async () => {
      let conn: Deno.TcpConn;
      try {
        conn = await Deno.connect({ hostname, port });
      } catch {
        duplex.close(1011, "target unreachable");
        return;
      }
      await Promise.all([
        duplex.readable.pipeTo(conn.writable).catch(() => {}),
        conn.readable.pipeTo(duplex.writable).catch(() => {}),
      ]);
      try {
        conn.close();
      } catch {
        // Closed by the pipes.
      }
    })());
    return response;
  };

  const serveOptions = {
    hostname: "127.0.0.1",
    port: options.port ?? 0,
    onListen: () => {},
    ...(options.tls ?? {}),
  };
  const httpServer = Deno.serve(serveOptions, (req, info) => {
    const url = new URL(req.url);
    if (url.pathname === "/v1/ssh") return handleSsh(req, info);
    if (url.pathname === "/v1/relay") return handleRelay(req, url);
    return new Response("not found", { status: 404 });
  });

  const tunnelFor = (name: string): TestTunnel | undefined =>
    [...tunnels].find((t) => t.names.has(name));

  const server: TunnelServer = {
    port: httpServer.addr.port,
    hostKey,
    tunnels,
    attempts: 0,
    registrations: [],
    answerPings: true,
    refuse: null,
    takenNames: new Set(),
    relayAllow: new Set(),
    onRegister: null,
    async request(name, path = "/", body, eofAfterRequest = false) {
      const t = tunnelFor(name);
      if (t === undefined || t.ssh.connection === null) {
        throw new Error(`no tunnel for ${name}`);
      }
      const channel = await t.ssh.connection.openChannel(
        "forwarded-tcpip",
        encodeTcpipOpen({
          host: name,
          port: 80,
          originatorAddress: "203.0.113.7",
          originatorPort: 40000,
        }),
      );
      const w = channel.writable.getWriter();
      const head =
        `${body === undefined ? "GET" : "POST"} ${path} HTTP/1.1\r\n` +
        `Host: example.test\r\nConnection: close\r\n` +
        (body === undefined ? "" : `Content-Length: ${body.length}\r\n`) +
        "\r\n" + (body ?? "");
      await w.write(new TextEncoder().encode(head));
      if (eofAfterRequest) await w.close();
      const text = await new Response(channel.readable).text();
      await w.close().catch(() => {});
      return text;
    },
    async waitForName(name, timeout = 10_000) {
      const deadline = Date.now() + timeout;
      for (;;) {
        const t = tunnelFor(name);
        if (t !== undefined) return t;
        if (Date.now() > deadline) {
          throw new Error(`${name} was not registered within ${timeout} ms`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    dropAll(code = 1011, reason = "test drop") {
      for (const t of tunnels) t.socket.close(code, reason);
    },
    restartAll(retryAfter) {
      for (const t of tunnels) {
        t.socket.send(
          JSON.stringify({
            type: "reconnect",
            reason: "test restart",
            retryAfter,
          }),
        );
        t.socket.close(1012, "service restart");
      }
    },
    async close() {
      for (const t of tunnels) await t.ssh.close().catch(() => {});
      for (const t of tunnels) t.socket.close();
      await httpServer.shutdown();
      await Promise.all([...running]);
    },
  };
  return server;
}
