/**
 * The tunnel server: a Hono app that runs our SSH server over WebSockets
 * (`GET /v1/ssh`), turns each client's remote forwards into public HTTP
 * routes (`/t/<user>/<name>/...`), relays raw bytes to allow-listed TCP
 * targets (`GET /v1/relay`), and serves health, metrics and a status page.
 *
 * Wire contract: /work/briefs/tunnel_contract.md, kept in the README's
 * "Tunnel" section.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { acceptConnection, type ServerConnection } from "../server.ts";
import type { ByteChannel } from "../connection/mod.ts";
import { generatePrivateKey, parseAuthorizedKeys } from "../keys/mod.ts";
import type { PrivateKey } from "../keys/types.ts";
import {
  CANCEL_TCPIP_FORWARD,
  decodeTcpipForward,
  encodeAllocatedPort,
  encodeTcpipOpen,
  FORWARDED_TCPIP,
  TCPIP_FORWARD,
} from "../forward/_wire.ts";
import { ChannelOpenFailure, DisconnectReason } from "../wire/messages.ts";
import { JwtError, JwtVerifier } from "./jwt.ts";
import { TunnelStore } from "./store.ts";
import { type WebSocketDuplex, webSocketDuplex } from "./ws_duplex.ts";
import { Metrics } from "./_metrics.ts";
import { CircuitBreaker, QueueFullError, Slots } from "./_limits.ts";
import {
  bodyStream,
  BufReader,
  encodeChunk,
  encodeFrame,
  encodeRequestHead,
  HOP_BY_HOP,
  LAST_CHUNK,
  Op,
  parseResponseHead,
  readFrame,
  type ResponseHead,
  webSocketAccept,
} from "./_http1.ts";
import { STATUS_PAGE } from "./_status_page.ts";
import type {
  LogEvent,
  ServerStatus,
  TunnelConfig,
  TunnelLimits,
  TunnelStatus,
} from "./types.ts";

/** Names a client may expose (`tcpip-forward` bind address). */
export const NAME_PATTERN: RegExp = /^[a-z0-9][a-z0-9-]{0,62}$/;

const DEFAULT_LIMITS: TunnelLimits = {
  connectionsPerUser: 3,
  userRate: { capacity: 2000, perSecond: 1000 },
  ipRate: { capacity: 1000, perSecond: 500 },
  maxMessageSize: 1024 * 1024,
  maxInFlightPerTunnel: 64,
  maxQueuedPerTunnel: 256,
  requestTimeout: 30_000,
  breakerThreshold: 5,
  breakerOpenMs: 10_000,
  loginGraceTime: 10_000,
  maxResponseHead: 64 * 1024,
};

/**
 * The routes as a fetch handler. At run time this is a Hono instance
 * (`tunnel.app as unknown as Hono` to mount it with `route()`); the type is
 * kept minimal so the public API does not depend on Hono's types.
 */
export interface HttpApp {
  /** Answers one request (`env` is Deno.serve's connection info). */
  fetch(request: Request, env?: unknown): Response | Promise<Response>;
}

/** The app and its lifecycle. */
export interface TunnelApp {
  /** The Hono app (routes). */
  readonly app: HttpApp;
  /** Handler for `Deno.serve` (passes the connection info to the app). */
  fetch(request: Request, info?: Deno.ServeHandlerInfo): Promise<Response>;
  /** The state store. */
  readonly store: TunnelStore;
  /** The metrics registry. */
  readonly metrics: Metrics;
  /** The SSH host key clients pin. */
  readonly hostKey: PrivateKey;
  /** This instance's id in the route registry. */
  readonly instanceId: string;
  /** The current status (as `GET /v1/status`). */
  status(): ServerStatus;
  /**
   * Graceful shutdown: refuses new work (readyz 503), tells SSH clients to
   * reconnect (control message, then SSH DISCONNECT and close code 1012),
   * lets requests in flight finish until `deadline` ms, then closes
   * everything (and the store if the app opened it).
   */
  shutdown(options?: { deadline?: number; retryAfter?: number }): Promise<
    void
  >;
}

interface Session {
  id: string;
  user: string;
  ip: string;
  since: number;
  duplex: WebSocketDuplex;
  server: ServerConnection | null;
  names: Set<string>;
  closed: boolean;
}

interface Route {
  name: string;
  user: string;
  session: Session;
  since: number;
  slots: Slots;
  breaker: CircuitBreaker;
  channels: Set<ByteChannel>;
  requests: number;
  bytesIn: number;
  bytesOut: number;
  lastLatencyMs: number | null;
  latencies: number[];
  lastStatus: number | null;
}

const encoder = new TextEncoder();

function id(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    p,
    new Promise((r) => (timer = setTimeout(r, ms))),
  ]);
  clearTimeout(timer);
}

function jsonError(
  status: number,
  error: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify({ error }), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/**
 * Creates the tunnel server app.
 *
 * @example Serve on a loopback port and shut down
 * ```ts
 * import { createTunnelApp, TunnelStore } from "@fynx/ssh/tunnel";
 * import assert from "node:assert/strict";
 *
 * const tunnel = await createTunnelApp({
 *   auth: { secret: "a development secret of 32 bytes!" },
 *   store: await TunnelStore.open(":memory:"),
 *   log: () => {},
 * });
 * const server = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   tunnel.fetch,
 * );
 * const res = await fetch(`http://127.0.0.1:${server.addr.port}/healthz`);
 * assert.equal(await res.text(), "ok");
 * await tunnel.shutdown({ deadline: 100 });
 * await tunnel.store.close();
 * await server.shutdown();
 * ```
 */
export async function createTunnelApp(
  config: TunnelConfig,
): Promise<TunnelApp> {
  const limits: TunnelLimits = { ...DEFAULT_LIMITS, ...config.limits };
  const verifier = new JwtVerifier(config.auth);
  const ownsStore = config.store === undefined;
  const store = config.store ?? await TunnelStore.open(config.kvPath);
  const hostKey = config.hostKey ?? generatePrivateKey("ed25519");
  const instanceId = config.instanceId ?? id("i-");
  const leaseMs = config.leaseMs ?? 30_000;
  const sshAuth = config.sshAuth ?? "jwt";
  const relayAllow = new Set(config.relayAllow ?? []);
  const metrics = new Metrics();
  const sessions = new Set<Session>();
  const routes = new Map<string, Route>();
  const relays = new Set<WebSocketDuplex>();
  const streams = new Set<() => void>();
  const audits = new Set<Promise<unknown>>();
  let inFlight = 0;
  let inFlightZero: (() => void) | null = null;
  let draining = false;
  let stopped = false;

  const log = (
    level: LogEvent["level"],
    event: string,
    fields: Record<string, unknown> = {},
  ) => {
    const e: LogEvent = { time: Date.now(), level, event, ...fields };
    if (config.log) config.log(e);
    else console.log(JSON.stringify(e));
  };
  const audit = (type: string, fields: Record<string, unknown>) => {
    log("info", `audit.${type}`, fields);
    const write = store.audit({ type, instance: instanceId, ...fields })
      .catch((e) => log("error", "audit.failed", { error: String(e) }))
      .finally(() => audits.delete(write));
    audits.add(write);
  };

  const authorized = new Map<string, Set<string>>();
  for (const [user, text] of Object.entries(config.authorizedKeys ?? {})) {
    authorized.set(
      user,
      new Set(parseAuthorizedKeys(text).map((k) => k.key.fingerprint())),
    );
  }

  // Leases: routes and connections are renewed while connected; a route
  // another connection took over (possibly on another instance) is dropped.
  const renewer = setInterval(async () => {
    for (const route of [...routes.values()]) {
      const ok = await store.renewRoute(route.name, route.session.id, leaseMs)
        .catch(() => true);
      if (!ok && routes.get(route.name) === route) {
        log("warn", "route.lost", { conn: route.session.id, name: route.name });
        dropRoute(route);
      }
    }
    for (const s of sessions) {
      await store.renewConnection(s.user, s.id, {
        leaseMs,
        instance: instanceId,
      })
        .catch(() => {});
    }
  }, Math.max(50, Math.floor(leaseMs / 3)));

  const dropRoute = (route: Route) => {
    if (routes.get(route.name) === route) {
      routes.delete(route.name);
      metrics.tunnels = routes.size;
    }
    route.session.names.delete(route.name);
    for (const ch of route.channels) ch.close().catch(() => {});
  };

  const clientAddr = (c: Context): { ip: string; port: number } => {
    const info = c.env as Deno.ServeHandlerInfo | undefined;
    const addr = info?.remoteAddr as Deno.NetAddr | undefined;
    if (config.trustProxy) {
      const xff = c.req.header("x-forwarded-for");
      if (xff) return { ip: xff.split(",")[0].trim(), port: 0 };
    }
    return { ip: addr?.hostname ?? "unknown", port: addr?.port ?? 0 };
  };

  const rateLimited = async (
    kind: "ip" | "user",
    key: string,
  ): Promise<Response | null> => {
    const rate = kind === "ip" ? limits.ipRate : limits.userRate;
    if (!rate) return null;
    const r = await store.take(`${kind}:${key}`, rate.capacity, rate.perSecond);
    if (r.ok) return null;
    metrics.limitHit(`rate-${kind}`);
    log("warn", "limit", { limit: `rate-${kind}`, key });
    return jsonError(429, `Too many requests for this ${kind}`, {
      "retry-after": String(r.retryAfter),
    });
  };

  const bearer = async (
    c: Context,
    ip: string,
  ): Promise<{ user: string } | Response> => {
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    try {
      if (!m) throw new JwtError("Missing Authorization: Bearer token");
      const claims = await verifier.verify(m[1]);
      return { user: claims.sub };
    } catch (e) {
      if (!(e instanceof JwtError)) throw e;
      metrics.authFailure("jwt");
      audit("auth.failed", { ip, path: c.req.path, reason: e.message });
      return jsonError(401, e.message, {
        "www-authenticate": 'Bearer realm="fynx-tunnel"',
      });
    }
  };

  const unavailable = () =>
    jsonError(503, "Server shutting down; reconnect elsewhere", {
      "retry-after": "5",
    });

  // ---- SSH over WebSocket ----

  const handleSsh = async (c: Context): Promise<Response> => {
    if (draining) return unavailable();
    const { ip, port } = clientAddr(c);
    const limited = await rateLimited("ip", ip);
    if (limited) return limited;
    const auth = await bearer(c, ip);
    if (auth instanceof Response) return auth;
    const user = auth.user;
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      return jsonError(426, "GET /v1/ssh must be a WebSocket upgrade", {
        upgrade: "websocket",
      });
    }
    const userLimited = await rateLimited("user", user);
    if (userLimited) return userLimited;
    const connId = id("c-");
    const added = await store.addConnection(user, connId, {
      limit: limits.connectionsPerUser,
      leaseMs,
      instance: instanceId,
    });
    if (!added) {
      metrics.limitHit("connections-per-user");
      log("warn", "limit", { limit: "connections-per-user", user, ip });
      return jsonError(
        429,
        `User ${user} already has ${limits.connectionsPerUser} tunnel connections`,
        { "retry-after": "10" },
      );
    }
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw);
    const duplex = webSocketDuplex(socket, {
      maxMessageSize: limits.maxMessageSize,
      pingInterval: config.pingInterval ?? 20_000,
      onViolation: (kind) => {
        metrics.limitHit(kind === "message-size" ? "message-size" : kind);
        log("warn", "limit", { conn: connId, limit: kind, user });
      },
    });
    const session: Session = {
      id: connId,
      user,
      ip,
      since: Date.now(),
      duplex,
      server: null,
      names: new Set(),
      closed: false,
    };
    sessions.add(session);
    metrics.connections = sessions.size;
    metrics.connectionsTotal++;
    audit("tunnel.connect", { conn: connId, user, ip });
    runSsh(session, `${ip}:${port}`).catch((e) =>
      log("error", "ssh.error", { conn: connId, error: String(e) })
    );
    return response;
  };

  const runSsh = async (session: Session, remoteAddress: string) => {
    const { user } = session;
    const keys = authorized.get(user);
    const server = await acceptConnection(session.duplex, {
      hostKeys: [hostKey],
      remoteAddress,
      loginGraceTime: limits.loginGraceTime,
      keepaliveInterval: config.keepaliveInterval ?? 30_000,
      keepaliveCountMax: 3,
      maxAuthTries: 3,
      none: ({ username }) => {
        if (sshAuth === "jwt" && username === user) return true;
        if (username !== user) metrics.authFailure("ssh");
        return false;
      },
      publicKey: sshAuth === "jwt+key"
        ? ({ username, key }) => {
          const ok = username === user && keys !== undefined &&
            keys.has(key.fingerprint());
          if (!ok) metrics.authFailure("ssh");
          return ok;
        }
        : undefined,
      onChannelOpen: (channel) =>
        channel.reject(
          ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED,
          "This server only accepts remote forwards",
        ),
      onGlobalRequest: (name, data) => globalRequest(session, name, data),
    });
    session.server = server;
    server.authenticated.then(
      (r) => {
        audit("auth.ok", {
          conn: session.id,
          user,
          methods: r.methods,
        });
      },
      (e) => {
        audit("auth.failed", {
          conn: session.id,
          user,
          reason: String(e?.message ?? e),
        });
      },
    );
    const error = await server.closed;
    session.closed = true;
    if (draining) session.duplex.close(1012, "server shutting down");
    else session.duplex.close(1000, "SSH connection closed");
    for (const name of [...session.names]) {
      const route = routes.get(name);
      if (route && route.session === session) {
        dropRoute(route);
        await store.releaseRoute(name, session.id).catch(() => {});
        audit("tunnel.release", { conn: session.id, user, name });
      }
    }
    await store.removeConnection(user, session.id).catch(() => {});
    audit("tunnel.disconnect", {
      conn: session.id,
      user,
      reason: error?.message ?? "closed",
      bytesIn: session.duplex.bytesIn,
      bytesOut: session.duplex.bytesOut,
    });
    sessions.delete(session);
    metrics.connections = sessions.size;
  };

  const globalRequest = async (
    session: Session,
    name: string,
    data: Uint8Array,
  ): Promise<boolean | Uint8Array> => {
    if (name !== TCPIP_FORWARD && name !== CANCEL_TCPIP_FORWARD) return false;
    let address: string;
    try {
      address = decodeTcpipForward(data, name).address;
    } catch {
      return false;
    }
    if (!NAME_PATTERN.test(address)) {
      log("warn", "tunnel.bad-name", { conn: session.id, name: address });
      return false;
    }
    if (name === CANCEL_TCPIP_FORWARD) {
      const route = routes.get(address);
      if (!route || route.session !== session) return false;
      dropRoute(route);
      await store.releaseRoute(address, session.id);
      audit("tunnel.release", {
        conn: session.id,
        user: session.user,
        name: address,
      });
      return true;
    }
    if (draining || session.closed) return false;
    const claim = await store.claimRoute(address, {
      user: session.user,
      instance: instanceId,
      connection: session.id,
      leaseMs,
    });
    if (!claim.ok) {
      audit("tunnel.in-use", {
        conn: session.id,
        user: session.user,
        name: address,
      });
      return false;
    }
    const old = routes.get(address);
    if (old) {
      // Takeover by the same user: the old connection's channels for this
      // name are closed, its requests fail cleanly.
      dropRoute(old);
    }
    if (claim.reconnect) metrics.reconnects++;
    const route: Route = {
      name: address,
      user: session.user,
      session,
      since: Date.now(),
      slots: new Slots(limits.maxInFlightPerTunnel, limits.maxQueuedPerTunnel),
      breaker: new CircuitBreaker(
        limits.breakerThreshold,
        limits.breakerOpenMs,
      ),
      channels: new Set(),
      requests: old?.requests ?? 0,
      bytesIn: old?.bytesIn ?? 0,
      bytesOut: old?.bytesOut ?? 0,
      lastLatencyMs: old?.lastLatencyMs ?? null,
      latencies: old?.latencies ?? [],
      lastStatus: old?.lastStatus ?? null,
    };
    routes.set(address, route);
    session.names.add(address);
    metrics.tunnels = routes.size;
    audit("tunnel.expose", {
      conn: session.id,
      user: session.user,
      name: address,
      takeover: claim.previous !== undefined,
      reconnect: claim.reconnect,
    });
    return encodeAllocatedPort(80);
  };

  // ---- Public traffic ----

  const beginRequest = () => {
    inFlight++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      inFlight--;
      if (inFlight === 0) inFlightZero?.();
    };
  };

  const handleTunnel = async (
    c: Context,
    name: string,
    userInPath: string | null,
    target: string,
    prefix: string,
  ): Promise<Response> => {
    const reqId = id("r-");
    const started = performance.now();
    const { ip, port } = clientAddr(c);
    let counted = false;
    const finish = (res: Response, route?: Route): Response => {
      // Answers of our own (errors, limits) are counted here; the service's
      // answers when their head arrived, with their latency.
      if (!counted) metrics.request(res.status);
      if (route) route.lastStatus = res.status;
      log("info", "request", {
        req: reqId,
        conn: route?.session.id,
        method: c.req.method,
        name,
        status: res.status,
        ms: Math.round(performance.now() - started),
      });
      return res;
    };
    if (draining) return finish(unavailable());
    // Per IP first, so that probing for names is limited too.
    const ipLimited = await rateLimited("ip", ip);
    if (ipLimited) return finish(ipLimited);
    const route = routes.get(name);
    if (!route || (userInPath !== null && route.user !== userInPath)) {
      const record = await store.getRoute(name);
      if (
        record && record.instance !== instanceId &&
        (userInPath === null || record.user === userInPath)
      ) {
        return finish(jsonError(
          503,
          `Tunnel ${name} is connected to another instance`,
          { "retry-after": "1" },
        ));
      }
      return finish(
        jsonError(
          404,
          `No tunnel ${name}${userInPath ? ` for user ${userInPath}` : ""}`,
        ),
      );
    }
    const userLimited = await rateLimited("user", route.user);
    if (userLimited) return finish(userLimited, route);
    const allowed = route.breaker.allow();
    if (!allowed.ok) {
      metrics.limitHit("circuit-breaker");
      return finish(
        jsonError(
          503,
          `Tunnel ${name} is failing; circuit open`,
          { "retry-after": String(allowed.retryAfter) },
        ),
        route,
      );
    }
    const end = beginRequest();
    const deadline = AbortSignal.timeout(limits.requestTimeout);
    let release: () => void;
    try {
      release = await route.slots.acquire(deadline);
    } catch (e) {
      end();
      if (e instanceof QueueFullError) {
        metrics.limitHit("queue");
        return finish(
          jsonError(503, `Tunnel ${name} has too many queued requests`, {
            "retry-after": "1",
          }),
          route,
        );
      }
      metrics.limitHit("timeout");
      route.breaker.failure();
      return finish(
        jsonError(504, `Tunnel ${name} did not answer in time`),
        route,
      );
    }
    let channel: ByteChannel | null = null;
    const done = (error?: Error) => {
      release();
      end();
      if (channel) {
        route.channels.delete(channel);
        channel.close().catch(() => {});
      }
      if (error) {
        log("warn", "request.body-failed", {
          req: reqId,
          error: error.message,
        });
      }
    };
    try {
      const server = route.session.server?.connection;
      if (!server) throw new Error("tunnel connection not ready");
      try {
        channel = await server.openChannel(
          FORWARDED_TCPIP,
          encodeTcpipOpen({
            host: name,
            port: 80,
            originatorAddress: ip,
            originatorPort: port,
          }),
        );
      } catch (e) {
        route.breaker.failure();
        done();
        return finish(
          jsonError(
            502,
            `Tunnel ${name} could not reach its service: ${
              (e as Error).message
            }`,
          ),
          route,
        );
      }
      route.channels.add(channel);
      const isWs = c.req.header("upgrade")?.toLowerCase() === "websocket";
      const req = c.req.raw;
      const url = new URL(req.url);
      const headers: [string, string][] = [];
      const connectionTokens = new Set(
        (req.headers.get("connection") ?? "").toLowerCase().split(",").map((
          s,
        ) => s.trim()),
      );
      for (const [k, v] of req.headers) {
        if (HOP_BY_HOP.has(k) || connectionTokens.has(k)) continue;
        if (k === "content-length" || k.startsWith("x-forwarded-")) continue;
        if (
          isWs && k.startsWith("sec-websocket-") &&
          k !== "sec-websocket-protocol"
        ) continue;
        headers.push([k, v]);
      }
      const xff = config.trustProxy ? req.headers.get("x-forwarded-for") : null;
      headers.push(["x-forwarded-for", xff ? `${xff}, ${ip}` : ip]);
      headers.push(["x-forwarded-proto", url.protocol.replace(":", "")]);
      headers.push(["x-forwarded-host", req.headers.get("host") ?? url.host]);
      headers.push(["x-forwarded-prefix", prefix]);
      if (!req.headers.has("x-request-id")) {
        headers.push(["x-request-id", reqId]);
      }
      let wsKey = "";
      if (isWs) {
        wsKey = btoa(
          String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))),
        );
        headers.push(["connection", "Upgrade"], ["upgrade", "websocket"]);
        headers.push(["sec-websocket-key", wsKey], [
          "sec-websocket-version",
          "13",
        ]);
      } else {
        headers.push(["connection", "close"]);
      }
      const length = req.headers.get("content-length");
      const body = isWs ? null : req.body;
      if (body) {
        if (length !== null) headers.push(["content-length", length]);
        else headers.push(["transfer-encoding", "chunked"]);
      }
      const writer = channel.writable.getWriter();
      await writer.write(encodeRequestHead(req.method, target, headers));
      if (body) {
        const chunked = length === null;
        (async () => {
          for await (const chunk of body) {
            route.bytesIn += chunk.length;
            metrics.bytesIn += chunk.length;
            await writer.write(chunked ? encodeChunk(chunk) : chunk);
          }
          if (chunked) await writer.write(LAST_CHUNK);
        })().catch(() => channel?.close().catch(() => {}));
      }
      const reader = new BufReader(channel.readable);
      let head: ResponseHead;
      let timedOut = false;
      const timer = setTimeout(
        () => {
          timedOut = true;
          channel?.close().catch(() => {});
        },
        Math.max(0, limits.requestTimeout - (performance.now() - started)),
      );
      try {
        while (true) {
          const text = await reader.readHead(limits.maxResponseHead);
          if (text === null) {
            throw new SyntaxError(`Tunnel ${name} closed without a response`);
          }
          head = parseResponseHead(text);
          // Interim responses (100 Continue, 103) are skipped.
          if (head.status >= 200 || head.status === 101) break;
        }
      } catch (e) {
        clearTimeout(timer);
        route.breaker.failure();
        done();
        if (timedOut) {
          metrics.limitHit("timeout");
          return finish(
            jsonError(
              504,
              `Tunnel ${name} did not answer in ${limits.requestTimeout} ms`,
            ),
            route,
          );
        }
        return finish(
          jsonError(
            502,
            `Bad response from tunnel ${name}: ${(e as Error).message}`,
          ),
          route,
        );
      } finally {
        clearTimeout(timer);
      }
      const latency = performance.now() - started;
      route.breaker.success();
      route.requests++;
      route.lastLatencyMs = Math.round(latency * 10) / 10;
      route.latencies.push(latency);
      if (route.latencies.length > 100) route.latencies.shift();
      metrics.request(head.status, latency / 1000);
      counted = true;
      if (isWs && head.status === 101) {
        return finish(
          await bridgeWebSocket(
            c,
            route,
            channel,
            writer,
            reader,
            head,
            wsKey,
            done,
          ),
          route,
        );
      }
      const out = new Headers();
      for (const [k, v] of head.headers) {
        if (HOP_BY_HOP.has(k)) continue;
        if (
          k === "content-length" &&
          head.headers.some(([h]) => h === "transfer-encoding")
        ) continue;
        try {
          out.append(k, v);
        } catch {
          // An invalid header value from the service is dropped.
        }
      }
      if (head.status < 200 || head.status > 599) {
        done();
        return finish(
          jsonError(502, `Tunnel ${name} answered status ${head.status}`),
          route,
        );
      }
      const noBody = req.method === "HEAD" || head.status === 204 ||
        head.status === 304;
      if (noBody) {
        done();
        return finish(
          new Response(null, {
            status: head.status,
            statusText: head.statusText,
            headers: out,
          }),
          route,
        );
      }
      const stream = bodyStream(reader, head, done).pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            route.bytesOut += chunk.length;
            metrics.bytesOut += chunk.length;
            controller.enqueue(chunk);
          },
        }),
      );
      return finish(
        new Response(stream, {
          status: head.status,
          statusText: head.statusText,
          headers: out,
        }),
        route,
      );
    } catch (e) {
      done();
      route.breaker.failure();
      return finish(
        jsonError(502, `Tunnel ${name} failed: ${(e as Error).message}`),
        route,
      );
    }
  };

  const bridgeWebSocket = async (
    c: Context,
    route: Route,
    channel: ByteChannel,
    writer: WritableStreamDefaultWriter<Uint8Array>,
    reader: BufReader,
    head: ResponseHead,
    key: string,
    done: (error?: Error) => void,
  ): Promise<Response> => {
    const get = (n: string) => head.headers.find(([k]) => k === n)?.[1];
    if (get("sec-websocket-accept") !== await webSocketAccept(key)) {
      done();
      return jsonError(
        502,
        `Tunnel ${route.name} answered a bad WebSocket handshake`,
      );
    }
    const protocol = get("sec-websocket-protocol");
    const { socket, response } = Deno.upgradeWebSocket(
      c.req.raw,
      protocol ? { protocol } : {},
    );
    socket.binaryType = "arraybuffer";
    const max = limits.maxMessageSize;
    let closed = false;
    const send = (frame: Uint8Array) => writer.write(frame).catch(() => {});
    const finish = () => {
      if (closed) return;
      closed = true;
      done();
      try {
        socket.close();
      } catch {
        // Already closed.
      }
    };
    socket.addEventListener("message", (event: MessageEvent) => {
      const data = event.data;
      const bytes = typeof data === "string"
        ? encoder.encode(data)
        : new Uint8Array(data as ArrayBuffer);
      if (bytes.length > max) {
        metrics.limitHit("message-size");
        try {
          socket.close(1009, "message too big");
        } catch {
          // Closing.
        }
        return;
      }
      route.bytesIn += bytes.length;
      metrics.bytesIn += bytes.length;
      send(
        encodeFrame(
          typeof data === "string" ? Op.TEXT : Op.BINARY,
          bytes,
          true,
        ),
      );
    });
    socket.addEventListener("close", (event: CloseEvent) => {
      const payload = new Uint8Array(2);
      new DataView(payload.buffer).setUint16(
        0,
        event.code >= 1000 && event.code < 5000 && event.code !== 1005 &&
          event.code !== 1006
          ? event.code
          : 1000,
      );
      send(encodeFrame(Op.CLOSE, payload, true)).finally(finish);
    });
    socket.addEventListener("open", () => {
      (async () => {
        let parts: Uint8Array[] = [];
        let partsLength = 0;
        let partsOp = 0;
        while (!closed) {
          const frame = await readFrame(reader, max);
          if (frame === null) break;
          if (frame.opcode === Op.PING) {
            await send(encodeFrame(Op.PONG, frame.payload, true));
            continue;
          }
          if (frame.opcode === Op.PONG) continue;
          if (frame.opcode === Op.CLOSE) {
            const code = frame.payload.length >= 2
              ? (frame.payload[0] << 8) | frame.payload[1]
              : 1000;
            try {
              socket.close(
                code === 1005 || code === 1006 || code < 1000 ? 1000 : code,
                new TextDecoder().decode(frame.payload.subarray(2)),
              );
            } catch {
              socket.close();
            }
            break;
          }
          if (frame.opcode !== Op.CONT) {
            partsOp = frame.opcode;
            parts = [];
            partsLength = 0;
          }
          parts.push(frame.payload);
          partsLength += frame.payload.length;
          if (partsLength > max) {
            throw new RangeError("WebSocket message too big");
          }
          if (!frame.fin) continue;
          const message = new Uint8Array(partsLength);
          let at = 0;
          for (const p of parts) {
            message.set(p, at);
            at += p.length;
          }
          parts = [];
          partsLength = 0;
          route.bytesOut += message.length;
          metrics.bytesOut += message.length;
          if (socket.readyState !== 1) break;
          if (partsOp === Op.TEXT) {
            socket.send(new TextDecoder().decode(message));
          } else socket.send(message);
        }
      })().catch((e) => {
        log("warn", "websocket.bridge-failed", { error: String(e) });
        try {
          socket.close(e instanceof RangeError ? 1009 : 1011, "tunnel error");
        } catch {
          // Closing.
        }
      }).finally(finish);
    });
    channel.closed.then(() => {
      if (!closed) {
        try {
          socket.close(1001, "tunnel closed");
        } catch {
          // Closing.
        }
      }
    });
    return response;
  };

  // ---- Relay ----

  const handleRelay = async (c: Context): Promise<Response> => {
    if (draining) return unavailable();
    const { ip } = clientAddr(c);
    const limited = await rateLimited("ip", ip);
    if (limited) return limited;
    const auth = await bearer(c, ip);
    if (auth instanceof Response) return auth;
    const target = c.req.query("target") ?? "";
    if (!relayAllow.has(target)) {
      audit("relay.refused", { user: auth.user, ip, target });
      metrics.limitHit("relay-allow-list");
      return jsonError(
        403,
        `Relay target ${JSON.stringify(target)} is not allowed`,
      );
    }
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      return jsonError(426, "GET /v1/relay must be a WebSocket upgrade", {
        upgrade: "websocket",
      });
    }
    const colon = target.lastIndexOf(":");
    const hostname = target.slice(0, colon).replace(/^\[|\]$/g, "");
    const port = Number(target.slice(colon + 1));
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname, port });
    } catch (e) {
      return jsonError(
        502,
        `Cannot reach relay target ${target}: ${(e as Error).message}`,
      );
    }
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw);
    const duplex = webSocketDuplex(socket, {
      maxMessageSize: limits.maxMessageSize,
      pingInterval: config.pingInterval ?? 20_000,
      onViolation: (kind) => metrics.limitHit(kind),
    });
    relays.add(duplex);
    const relayId = id("c-");
    audit("relay.open", { conn: relayId, user: auth.user, ip, target });
    const end = beginRequest();
    Promise.allSettled([
      duplex.readable.pipeTo(conn.writable),
      conn.readable.pipeTo(duplex.writable),
    ]).then(() => {
      try {
        conn.close();
      } catch {
        // Closed by a pipe.
      }
      duplex.close(1000, "relay closed");
      return duplex.closed;
    }).finally(() => {
      relays.delete(duplex);
      metrics.bytesIn += duplex.bytesIn;
      metrics.bytesOut += duplex.bytesOut;
      end();
      audit("relay.close", { conn: relayId, user: auth.user, target });
    });
    duplex.closed.then(() => {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    });
    return response;
  };

  // ---- Status ----

  const status = (): ServerStatus => ({
    instance: instanceId,
    draining,
    connections: sessions.size,
    time: Date.now(),
    tunnels: [...routes.values()].map((r): TunnelStatus => ({
      user: r.user,
      name: r.name,
      path: `/t/${r.user}/${r.name}/`,
      conn: r.session.id,
      since: r.since,
      requests: r.requests,
      inFlight: r.slots.busy,
      queued: r.slots.waiting,
      bytesIn: r.bytesIn,
      bytesOut: r.bytesOut,
      lastLatencyMs: r.lastLatencyMs,
      p50Ms: percentile(r.latencies, 0.5),
      p95Ms: percentile(r.latencies, 0.95),
      lastStatus: r.lastStatus,
      breaker: r.breaker.state,
    })),
  });

  // ---- Routes ----

  const app = new Hono();

  if (config.domain) {
    const suffix = `.${config.domain.toLowerCase()}`;
    app.use("*", async (c, next) => {
      const host = (c.req.header("host") ?? "").toLowerCase().replace(
        /:\d+$/,
        "",
      );
      if (!host.endsWith(suffix)) return await next();
      const label = host.slice(0, -suffix.length);
      const [name, user] = label.includes("--")
        ? label.split("--", 2)
        : [label, null];
      const url = new URL(c.req.url);
      return await handleTunnel(c, name, user, url.pathname + url.search, "");
    });
  }

  app.get("/healthz", (c) => c.text("ok"));
  app.get(
    "/readyz",
    (c) =>
      draining
        ? c.text("shutting down", 503, { "retry-after": "5" })
        : c.text("ready"),
  );
  app.get(
    "/metrics",
    (c) =>
      c.body(metrics.render(), 200, {
        "content-type": "text/plain; version=0.0.4",
      }),
  );
  app.get("/v1/ssh", handleSsh);
  app.get("/v1/relay", handleRelay);
  if (config.statusPage ?? true) {
    app.get("/", (c) => c.html(STATUS_PAGE));
    app.get("/v1/status", (c) => c.json(status()));
    app.get("/v1/status/stream", () => {
      let timer: ReturnType<typeof setInterval> | undefined;
      let stop = () => {};
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          const push = () => {
            try {
              controller.enqueue(
                encoder.encode(`data: ${JSON.stringify(status())}\n\n`),
              );
            } catch {
              stop();
            }
          };
          stop = () => {
            clearInterval(timer);
            streams.delete(stop);
            try {
              controller.close();
            } catch {
              // Cancelled.
            }
          };
          streams.add(stop);
          push();
          timer = setInterval(push, config.statusInterval ?? 1000);
        },
        cancel() {
          stop();
        },
      });
      return new Response(body, {
        headers: {
          "content-type": "text/event-stream",
          "cache-control": "no-store",
        },
      });
    });
  }
  app.all("/t/:user/:name/*", (c) => {
    const { user, name } = c.req.param();
    const url = new URL(c.req.url);
    // The raw (still percent-encoded) path after /t/<user>/<name>.
    const rest = "/" + url.pathname.split("/").slice(4).join("/");
    return handleTunnel(c, name, user, rest + url.search, `/t/${user}/${name}`);
  });
  app.all("/t/:user/:name", (c) => {
    const { user, name } = c.req.param();
    const url = new URL(c.req.url);
    return handleTunnel(c, name, user, "/" + url.search, `/t/${user}/${name}`);
  });
  app.notFound((c) =>
    jsonError(404, `Nothing at ${c.req.method} ${c.req.path}`)
  );
  app.onError((e) => {
    log("error", "internal", { error: String(e) });
    return jsonError(500, "Internal error");
  });

  const shutdown = async (
    options: { deadline?: number; retryAfter?: number } = {},
  ): Promise<void> => {
    if (stopped) return;
    stopped = true;
    draining = true;
    const deadline = options.deadline ?? 10_000;
    log("info", "shutdown", { sessions: sessions.size, inFlight });
    for (const s of sessions) {
      s.duplex.setCloseReason(1012, "server shutting down");
      s.duplex.sendControl({
        type: "reconnect",
        reason: "server shutting down",
        retryAfter: options.retryAfter ?? 1,
      });
    }
    if (inFlight > 0) {
      const { promise, resolve } = Promise.withResolvers<void>();
      inFlightZero = resolve;
      const timer = setTimeout(resolve, deadline);
      await promise;
      clearTimeout(timer);
    }
    clearInterval(renewer);
    for (const stop of [...streams]) stop();
    const relaysClosed = [...relays].map((r) => {
      r.close(1012, "server shutting down");
      return withTimeout(r.closed, 1000);
    });
    await Promise.all(relaysClosed);
    await Promise.all([...sessions].map(async (s) => {
      await s.server?.close(
        DisconnectReason.BY_APPLICATION,
        "server shutting down; reconnect",
      ).catch(() => {});
      s.duplex.close(1012, "server shutting down");
      await withTimeout(s.duplex.closed, 1000);
    }));
    await Promise.all([...sessions].map((s) => s.server?.closed));
    // Let the close handlers release routes and connections.
    for (let i = 0; i < 50 && sessions.size > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    // Relay pipes finish (and write their audit events) after their
    // sockets closed.
    for (let i = 0; i < 50 && relays.size > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await Promise.allSettled([...audits]);
    if (ownsStore) await store.close();
  };

  return {
    app,
    fetch: (request, info) => Promise.resolve(app.fetch(request, info)),
    store,
    metrics,
    hostKey,
    instanceId,
    status,
    shutdown,
  };
}
