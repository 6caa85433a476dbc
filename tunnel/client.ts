/**
 * The tunnel client: keeps an SSH-over-WebSocket connection to a tunnel
 * server up and serves the server's forwarded requests from local
 * services.
 *
 * {@linkcode TunnelClient} dials `wss://server/v1/ssh` (directly or through
 * an HTTP proxy) with `Authorization: Bearer <token>`, runs our SSH client
 * over the WebSocket, pins the server's host key, asks for a remote
 * forward (`tcpip-forward`) per exposed name and pipes each
 * `forwarded-tcpip` channel to that name's local target. Dead peers are
 * noticed on both layers (JSON ping/pong on the WebSocket,
 * `keepalive@openssh.com` on SSH); every drop is followed by a reconnect
 * with exponential backoff and full jitter, and the names are registered
 * again.
 *
 * @example Expose a local HTTP service (needs a tunnel server)
 * ```ts ignore
 * import { TunnelClient } from "@fynx/ssh/tunnel/client";
 *
 * const tunnel = new TunnelClient({
 *   url: "wss://tunnel.example.com/v1/ssh",
 *   token: Deno.env.get("TUNNEL_TOKEN")!,
 *   expose: { app: "http://127.0.0.1:11434" },
 *   hostKeyFingerprint: "SHA256:...",
 *   onState: (s) => console.log(s.state),
 * });
 * tunnel.start();
 * await tunnel.ready();
 * // ... later
 * await tunnel.close();
 * ```
 *
 * @module
 */
import { connect, type SshClient } from "../client.ts";
import type { Signer } from "../auth/client.ts";
import type { HostKeyVerifier } from "../transport/transport.ts";
import type { PublicKey } from "../keys/types.ts";
import { KnownHosts } from "../keys/known_hosts.ts";
import type { IncomingChannel } from "../connection/channel.ts";
import { listenRemote, type RemoteListener } from "../forward/client.ts";
import { pipeChannel } from "../forward/pipe.ts";
import { connectTo, errorText } from "../forward/_net.ts";
import { ChannelOpenFailure } from "../wire/messages.ts";
import {
  checkHeader,
  dialWebSocket,
  type WsCloseInfo,
  WsHandshakeError,
  type WsSocket,
} from "./_client_ws.ts";
import {
  backoffDelay,
  type BackoffOptions,
  type LocalTarget,
  normalizeFingerprint,
  parseExpose,
  tokenSubject,
} from "./_client_options.ts";
import { parseProxyUrl, proxyFor } from "./_client_proxy.ts";

export type { BackoffOptions, LocalTarget } from "./_client_options.ts";
export type { Signer } from "../auth/client.ts";
export type { HostKeyVerifier } from "../transport/transport.ts";
export { WsHandshakeError } from "./_client_ws.ts";

/** Options for {@linkcode TunnelClient}. */
export interface TunnelClientOptions {
  /**
   * The server's SSH endpoint, `wss://host/v1/ssh` (a URL without a path
   * gets `/v1/ssh`).
   */
  url: string | URL;
  /** The JWT sent as `Authorization: Bearer`. */
  token: string;
  /**
   * What to expose: name -> local target (`http://127.0.0.1:11434`,
   * `127.0.0.1:8080`, a port, or `{ hostname, port }`). Names match
   * `[a-z0-9][a-z0-9-]{0,62}`.
   */
  expose: Record<string, string | LocalTarget>;
  /** Extra headers on the WebSocket upgrade (corporate gateways). */
  headers?: Record<string, string>;
  /**
   * HTTP proxy URL (`http://user:pass@proxy:3128`), `null` to ignore the
   * environment, or undefined to use `HTTPS_PROXY` / `HTTP_PROXY` /
   * `NO_PROXY`.
   */
  proxy?: string | null;
  /** Extra trusted CA certificates (PEM) for `wss:`. */
  caCerts?: string[];
  /**
   * Pinned server host key fingerprint(s), `SHA256:...` as
   * `ssh-keygen -l` prints them.
   */
  hostKeyFingerprint?: string | readonly string[];
  /**
   * known_hosts text; the server is looked up as the URL's host and port
   * (`[host]:443` for `wss:` on the default port).
   */
  knownHosts?: string;
  /** Custom host key check (instead of, or on top of, the two above). */
  verifyHostKey?: HostKeyVerifier;
  /**
   * SSH user name. Default: the token's `sub` claim (read without
   * verifying), else `tunnel`.
   */
  username?: string;
  /** Keys for the server's `jwt+key` policy (publickey after `none`). */
  privateKeys?: readonly Signer[];
  /**
   * Milliseconds between WebSocket `{"type":"ping"}` messages (0 disables).
   * @default {15000}
   */
  heartbeatInterval?: number;
  /**
   * Milliseconds without a pong before the server counts as dead and the
   * connection is dropped.
   * @default {45000}
   */
  deadPeerTimeout?: number;
  /**
   * Milliseconds between SSH `keepalive@openssh.com` requests (0 disables).
   * @default {15000}
   */
  keepaliveInterval?: number;
  /**
   * Unanswered SSH keepalives before the connection is dropped.
   * @default {3}
   */
  keepaliveCountMax?: number;
  /**
   * Milliseconds for one attempt: TCP, proxy, TLS, upgrade, SSH handshake.
   * @default {30000}
   */
  connectTimeout?: number;
  /**
   * Milliseconds to connect to a local target before the request fails.
   * @default {10000}
   */
  localConnectTimeout?: number;
  /** Reconnect backoff. */
  backoff?: BackoffOptions;
  /**
   * Milliseconds between new attempts at names the server refused (held by
   * another user) while connected.
   * @default {30000}
   */
  nameRetryInterval?: number;
  /** Called on every state change. */
  onState?: (state: TunnelState) => void;
  /** Called when a forwarded request starts and ends. */
  onRequest?: (event: TunnelRequestEvent) => void;
  /** Source of randomness for the jitter (tests). */
  random?: () => number;
}

/** Where the tunnel is. */
export type TunnelState =
  | { state: "connecting"; attempt: number; url: string; proxy: string | null }
  | {
    state: "connected";
    /** Names the server accepted. */
    names: string[];
    /** Names the server refused (retried later). */
    refused: string[];
    /** The server's host key fingerprint. */
    hostKey: string;
  }
  | {
    state: "reconnecting";
    /** Milliseconds until the next attempt. */
    delay: number;
    attempt: number;
    /** Why the previous connection ended or failed. */
    reason: string;
  }
  | { state: "failed"; reason: string }
  | { state: "closed" };

/** A forwarded request (one `forwarded-tcpip` channel). */
export interface TunnelRequestEvent {
  /** `start`, `end`, or `error` (local target unreachable). */
  type: "start" | "end" | "error";
  /** The name it came in for. */
  name: string;
  /** Who made the request, as the server reports it. */
  originator: string;
  /** For `error`: what failed. */
  error?: string;
}

/** Counters of a {@linkcode TunnelClient}. */
export interface TunnelStats {
  /** Requests whose channel has ended. */
  requestsServed: number;
  /** Requests in progress. */
  activeRequests: number;
  /** Requests refused because the local target was unreachable. */
  requestsFailed: number;
  /** Successful connections after the first. */
  reconnects: number;
  /** Attempts that failed or connections that dropped. */
  failures: number;
  /** When the current connection came up (ms since epoch), or null. */
  connectedSince: number | null;
}

/** An error the client does not retry (bad key, token refused, ...). */
export class TunnelFatalError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TunnelFatalError";
  }
}

/** Largest control message we parse. */
const MAX_CONTROL = 64 * 1024;

interface Session {
  ws: WsSocket;
  ssh: SshClient;
  listeners: Map<string, RemoteListener>;
  ended: Promise<{ reason: string; retryAfter?: number }>;
  stop: () => void;
}

/** The resolved endpoint, with `/v1/ssh` added to a bare URL. */
export function tunnelUrl(url: string | URL, path = "/v1/ssh"): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`Invalid tunnel URL: ${JSON.stringify(String(url))}`);
  }
  if (u.protocol === "https:") u = new URL(u.href.replace(/^https:/, "wss:"));
  if (u.protocol === "http:") u = new URL(u.href.replace(/^http:/, "ws:"));
  if (u.protocol !== "ws:" && u.protocol !== "wss:") {
    throw new TypeError(
      `Invalid tunnel URL ${u.href}: expected wss:// or ws://`,
    );
  }
  if (u.pathname === "" || u.pathname === "/") u.pathname = path;
  return u;
}

/**
 * Keeps a tunnel up. Call {@linkcode TunnelClient.start}, wait for
 * {@linkcode TunnelClient.ready} if you need to, and
 * {@linkcode TunnelClient.close} at the end; {@linkcode TunnelClient.done}
 * settles when the client stops (rejects with a {@linkcode TunnelFatalError}
 * for what retrying cannot fix: a host key mismatch, a refused token or
 * SSH login, a 4xx other than 408/429).
 *
 * @example Options are checked before anything connects
 * ```ts
 * import { TunnelClient } from "@fynx/ssh/tunnel/client";
 * import assert from "node:assert/strict";
 *
 * // A JWT whose payload is {"sub":"alice"} (the server verifies it).
 * const token = `e30.${btoa('{"sub":"alice"}').replace(/=+$/, "")}.sig`;
 * const tunnel = new TunnelClient({
 *   url: "https://tunnel.example.com",
 *   token,
 *   expose: { app: "http://127.0.0.1:11434" },
 *   hostKeyFingerprint: "SHA256:" + "A".repeat(43),
 *   proxy: null,
 * });
 * assert.equal(tunnel.url.href, "wss://tunnel.example.com/v1/ssh");
 * assert.equal(tunnel.username, "alice");
 * assert.equal(tunnel.state.state, "closed");
 * assert.throws(
 *   () => new TunnelClient({ url: "wss://t.example", token, expose: {} }),
 *   TypeError,
 * );
 * ```
 */
export class TunnelClient {
  readonly #o: TunnelClientOptions;
  readonly #url: URL;
  readonly #targets: Map<string, LocalTarget>;
  readonly #username: string;
  readonly #pins: Set<string> | null;
  readonly #knownHosts: KnownHosts | null;
  readonly #proxy: URL | null;
  #state: TunnelState = { state: "closed" };
  #stats: TunnelStats = {
    requestsServed: 0,
    activeRequests: 0,
    requestsFailed: 0,
    reconnects: 0,
    failures: 0,
    connectedSince: null,
  };
  #closing = false;
  #running: Promise<void> | null = null;
  #abort = new AbortController();
  #session: Session | null = null;
  #pipes = new Set<Promise<void>>();
  #done = Promise.withResolvers<void>();
  #waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  #everConnected = false;

  /**
   * Checks the options (throws {@linkcode TypeError} for bad ones); does
   * not connect yet.
   */
  constructor(options: TunnelClientOptions) {
    this.#o = options;
    this.#url = tunnelUrl(options.url);
    if (typeof options.token !== "string" || options.token === "") {
      throw new TypeError("Invalid token: empty");
    }
    if (/[\r\n]/.test(options.token)) {
      throw new TypeError("Invalid token: contains a line break");
    }
    this.#targets = parseExpose(options.expose);
    for (const [k, v] of Object.entries(options.headers ?? {})) {
      checkHeader(k, v);
    }
    this.#username = options.username ?? tokenSubject(options.token) ??
      "tunnel";
    const fps = options.hostKeyFingerprint === undefined
      ? []
      : typeof options.hostKeyFingerprint === "string"
      ? [options.hostKeyFingerprint]
      : [...options.hostKeyFingerprint];
    this.#pins = fps.length > 0 ? new Set(fps.map(normalizeFingerprint)) : null;
    this.#knownHosts = options.knownHosts !== undefined
      ? KnownHosts.parse(options.knownHosts)
      : null;
    if (
      this.#pins === null && this.#knownHosts === null &&
      options.verifyHostKey === undefined
    ) {
      throw new TypeError(
        "The server's host key must be pinned: give hostKeyFingerprint, knownHosts or verifyHostKey",
      );
    }
    this.#proxy = typeof options.proxy === "string"
      ? parseProxyUrl(options.proxy)
      : options.proxy === null
      ? null
      : proxyFor(this.#url, environment());
    this.#done.promise.catch(() => {});
  }

  /** The endpoint dialled. */
  get url(): URL {
    return new URL(this.#url);
  }

  /** The SSH user name used. */
  get username(): string {
    return this.#username;
  }

  /** The current state. */
  get state(): TunnelState {
    return this.#state;
  }

  /** A snapshot of the counters. */
  get stats(): TunnelStats {
    return { ...this.#stats };
  }

  /** Settles when the client has stopped (see the class description). */
  get done(): Promise<void> {
    return this.#done.promise;
  }

  /** Starts connecting (and reconnecting); idempotent. */
  start(): void {
    if (this.#running !== null || this.#closing) return;
    this.#running = this.#run().then(
      () => this.#done.resolve(),
      (e) => this.#done.reject(e),
    );
  }

  /**
   * Resolves at the next `connected` state (at once when connected);
   * rejects if the client stops first.
   */
  ready(): Promise<void> {
    if (this.#state.state === "connected") return Promise.resolve();
    if (this.#closing || this.#state.state === "failed") {
      return Promise.reject(new Error("The tunnel client has stopped"));
    }
    return new Promise((resolve, reject) =>
      this.#waiters.push({ resolve, reject })
    );
  }

  /** Drops the current connection (it reconnects as after any drop). */
  reconnect(): void {
    this.#session?.stop();
  }

  /**
   * Stops: cancels the forwards, closes the SSH connection (DISCONNECT) and
   * the WebSocket (close 1000), waits for running requests to end.
   */
  async close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      this.#abort.abort(new Error("The tunnel client was closed"));
      const s = this.#session;
      if (s !== null) {
        await s.ssh.close().catch(() => {});
        await s.ws.close(1000, "client closing").catch(() => {});
      }
    }
    await this.#running?.catch(() => {});
    await Promise.all([...this.#pipes]);
  }

  /** Same as {@linkcode TunnelClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #emit(state: TunnelState): void {
    this.#state = state;
    if (state.state === "connected") {
      for (const w of this.#waiters.splice(0)) w.resolve();
    } else if (state.state === "failed" || state.state === "closed") {
      const e = new Error(
        state.state === "failed" ? state.reason : "The tunnel client closed",
      );
      for (const w of this.#waiters.splice(0)) w.reject(e);
    }
    try {
      this.#o.onState?.(state);
    } catch {
      // A throwing observer must not break the tunnel.
    }
  }

  async #run(): Promise<void> {
    let attempt = 0;
    try {
      while (!this.#closing) {
        attempt++;
        this.#emit({
          state: "connecting",
          attempt,
          url: this.#url.href,
          proxy: this.#proxy === null
            ? null
            : `${this.#proxy.protocol}//${this.#proxy.host}`,
        });
        let reason: string;
        let retryAfter: number | undefined;
        try {
          const session = await this.#connectOnce();
          if (this.#closing) {
            await this.#teardown(session);
            break;
          }
          this.#session = session;
          if (this.#everConnected) this.#stats.reconnects++;
          this.#everConnected = true;
          const since = Date.now();
          this.#stats.connectedSince = since;
          const refused = [...this.#targets.keys()].filter((n) =>
            !session.listeners.has(n)
          );
          this.#emit({
            state: "connected",
            names: [...session.listeners.keys()],
            refused,
            hostKey: session.ssh.hostKey.fingerprint(),
          });
          const retryNames = refused.length > 0
            ? this.#retryNames(session)
            : null;
          const end = await session.ended;
          clearInterval(retryNames ?? undefined);
          this.#session = null;
          this.#stats.connectedSince = null;
          await this.#teardown(session);
          if (this.#closing) break;
          if (Date.now() - since >= (this.#o.backoff?.stableAfter ?? 30_000)) {
            attempt = 1;
          }
          reason = end.reason;
          retryAfter = end.retryAfter;
        } catch (e) {
          if (this.#closing) break;
          const fatal = fatalError(e);
          if (fatal !== null) {
            this.#emit({ state: "failed", reason: fatal.message });
            throw fatal;
          }
          reason = describe(e);
          if (e instanceof WsHandshakeError) retryAfter = e.retryAfter;
        }
        this.#stats.failures++;
        const random = this.#o.random ?? Math.random;
        const delay = retryAfter !== undefined
          ? retryAfter * 1000 +
            Math.floor(
              random() * Math.min(1000, this.#o.backoff?.initial ?? 1000),
            )
          : backoffDelay(attempt, this.#o.backoff ?? {}, random);
        this.#emit({ state: "reconnecting", delay, attempt, reason });
        await this.#sleep(delay);
      }
    } finally {
      if (this.#state.state !== "failed") this.#emit({ state: "closed" });
    }
  }

  #sleep(ms: number): Promise<void> {
    const signal = this.#abort.signal;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  #verifier(): HostKeyVerifier {
    const url = this.#url;
    const port = url.port !== ""
      ? Number(url.port)
      : url.protocol === "wss:"
      ? 443
      : 80;
    const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    return async (key: PublicKey, info) => {
      const fp = key.fingerprint();
      let pinned = false;
      if (this.#pins !== null) {
        if (!this.#pins.has(fp)) {
          throw new TunnelFatalError(
            `Host key mismatch for ${url.host}: the server presented ${key.type} ${fp}, expected ${
              [...this.#pins].join(" or ")
            }`,
          );
        }
        pinned = true;
      }
      if (this.#knownHosts !== null) {
        const r = this.#knownHosts.lookup(host, port, key);
        if (r.status === "revoked") {
          throw new TunnelFatalError(
            `Host key ${fp} of ${url.host} is revoked in known_hosts (line ${r.line})`,
          );
        }
        if (r.status === "changed") {
          throw new TunnelFatalError(
            `Host key mismatch for ${url.host}: ${key.type} ${fp} is not the key in known_hosts (line ${r.line})`,
          );
        }
        if (r.status === "unknown" && !pinned) {
          throw new TunnelFatalError(
            `Host key of ${url.host} is not in known_hosts (looked up as ${
              port === 22 ? host : `[${host}]:${port}`
            }): ${key.type} ${fp}`,
          );
        }
        pinned = true;
      }
      if (this.#o.verifyHostKey !== undefined) {
        return await this.#o.verifyHostKey(key, info);
      }
      return pinned;
    };
  }

  async #connectOnce(): Promise<Session> {
    const o = this.#o;
    const signal = this.#abort.signal;
    const ws = await dialWebSocket(this.#url, {
      headers: { ...o.headers, Authorization: `Bearer ${o.token}` },
      proxy: this.#proxy?.href ?? null,
      caCerts: o.caCerts,
      timeout: o.connectTimeout ?? 30_000,
      signal,
    });
    // Control messages and the WebSocket-level heartbeat.
    let retryAfter: number | undefined;
    let serverReason: string | undefined;
    let lastPong = Date.now();
    let pingId = 0;
    const ended = Promise.withResolvers<
      { reason: string; retryAfter?: number }
    >();
    let finished = false;
    const finish = (reason: string) => {
      if (finished) return;
      finished = true;
      clearInterval(heartbeat);
      ended.resolve({ reason, retryAfter });
    };
    ws.onText = (text) => {
      if (text.length > MAX_CONTROL) return;
      let msg: {
        type?: unknown;
        id?: unknown;
        retryAfter?: unknown;
        reason?: unknown;
      };
      try {
        msg = JSON.parse(text);
      } catch {
        return; // Not ours to judge; the server may add message kinds.
      }
      if (msg === null || typeof msg !== "object") return;
      if (msg.type === "ping") {
        ws.sendText(JSON.stringify({ type: "pong", id: msg.id ?? null }))
          .catch(() => {});
      } else if (msg.type === "pong") {
        lastPong = Date.now();
      } else if (msg.type === "reconnect") {
        const r = Number(msg.retryAfter);
        retryAfter = Number.isFinite(r) && r >= 0 ? Math.min(r, 3600) : 0;
        serverReason = typeof msg.reason === "string"
          ? msg.reason.slice(0, 200)
          : "server asked to reconnect";
      }
    };
    const interval = o.heartbeatInterval ?? 15_000;
    const deadAfter = o.deadPeerTimeout ?? 45_000;
    const heartbeat = interval > 0
      ? setInterval(() => {
        if (Date.now() - lastPong > deadAfter) {
          finish(`server did not answer pings for ${deadAfter} ms`);
          ws.drop();
          return;
        }
        ws.sendText(JSON.stringify({ type: "ping", id: ++pingId })).catch(
          () => {},
        );
      }, Math.min(interval, Math.max(10, Math.floor(deadAfter / 2))))
      : undefined;
    ws.closed.then((info: WsCloseInfo) => {
      // When we closed it, whoever did (SSH, the heartbeat) tells why.
      if (info.local && sshUp) return;
      if (info.code === 1012) {
        retryAfter ??= 0;
        serverReason ??= `server restarting${
          info.reason ? `: ${info.reason}` : ""
        }`;
      }
      finish(
        serverReason ??
          `WebSocket closed (${info.code}${
            info.reason ? ` ${info.reason}` : ""
          })`,
      );
    });
    let ssh: SshClient;
    let sshUp = false;
    try {
      ssh = await connect({
        transport: { readable: ws.readable, writable: ws.writable },
        username: this.#username,
        privateKeys: o.privateKeys,
        methods: o.privateKeys?.length ? ["publickey"] : [],
        verifyHostKey: this.#verifier(),
        keepaliveInterval: o.keepaliveInterval ?? 15_000,
        keepaliveCountMax: o.keepaliveCountMax ?? 3,
        connectTimeout: o.connectTimeout ?? 30_000,
        signal,
      });
    } catch (e) {
      finish("connect failed");
      ws.drop();
      // A pinned-key mismatch surfaces wrapped in HostKeyError.
      const cause = (e as Error)?.cause;
      if (cause instanceof TunnelFatalError) throw cause;
      throw e;
    }
    sshUp = true;
    ssh.closed.then((e) => {
      finish(
        serverReason ??
          `SSH connection closed${e ? `: ${e.message}` : ""}`,
      );
      ws.drop();
    });
    const listeners = new Map<string, RemoteListener>();
    const session: Session = {
      ws,
      ssh,
      listeners,
      ended: ended.promise,
      stop: () => {
        finish("reconnect requested");
        ws.drop();
      },
    };
    // close() during set-up (names still being registered): close() only
    // ends the session #run has taken over, so without this nothing would
    // end this one, and #run would wait on it forever.
    const onAbort = () => {
      if (this.#session !== session) session.stop();
    };
    if (signal.aborted) onAbort();
    else {
      signal.addEventListener("abort", onAbort, { once: true });
      ended.promise.then(() => signal.removeEventListener("abort", onAbort));
    }
    try {
      await Promise.all(
        [...this.#targets.keys()].map((name) => this.#register(session, name)),
      );
    } catch (e) {
      session.stop();
      await this.#teardown(session);
      throw e;
    }
    if (finished) {
      await this.#teardown(session);
      throw new Error((await ended.promise).reason);
    }
    return session;
  }

  /** Asks for `name`; a refusal leaves it unregistered (retried later). */
  async #register(session: Session, name: string): Promise<void> {
    const target = this.#targets.get(name)!;
    try {
      const listener = await listenRemote(session.ssh, {
        bind: { hostname: name, port: 0 },
        onConnection: (channel, info) =>
          this.#serve(
            channel,
            name,
            target,
            info.originatorAddress,
            info.originatorPort,
          ),
      });
      session.listeners.set(name, listener);
    } catch (e) {
      if (session.ssh.connection.isClosed) throw e;
      // Refused (another user holds it): stay up for the other names.
    }
  }

  #retryNames(session: Session): ReturnType<typeof setInterval> {
    const timer = setInterval(async () => {
      const missing = [...this.#targets.keys()].filter((n) =>
        !session.listeners.has(n)
      );
      if (missing.length === 0) {
        clearInterval(timer);
        return;
      }
      await Promise.all(missing.map((n) => this.#register(session, n)))
        .catch(() => {});
      if (this.#session !== session) return;
      if (missing.some((n) => session.listeners.has(n))) {
        this.#emit({
          state: "connected",
          names: [...session.listeners.keys()],
          refused: [...this.#targets.keys()].filter((n) =>
            !session.listeners.has(n)
          ),
          hostKey: session.ssh.hostKey.fingerprint(),
        });
      }
    }, this.#o.nameRetryInterval ?? 30_000);
    session.ended.then(() => clearInterval(timer));
    return timer;
  }

  #serve(
    incoming: IncomingChannel,
    name: string,
    target: LocalTarget,
    originatorAddress = "",
    originatorPort = 0,
  ): void {
    const originator = `${originatorAddress}:${originatorPort}`;
    const p = (async () => {
      let socket: Deno.Conn;
      try {
        socket = await connectTo(target, this.#o.localConnectTimeout ?? 10_000);
      } catch (e) {
        const text = errorText(e);
        incoming.reject(ChannelOpenFailure.CONNECT_FAILED, text);
        this.#stats.requestsFailed++;
        this.#request({
          type: "error",
          name,
          originator,
          error: `Cannot connect to ${target.hostname}:${target.port}: ${text}`,
        });
        return;
      }
      let channel;
      try {
        channel = incoming.accept();
      } catch {
        socket.close();
        return;
      }
      this.#stats.activeRequests++;
      this.#request({ type: "start", name, originator });
      try {
        // HTTP needs no half-close (requests carry their length), and
        // HTTP servers such as Deno's drop a request whose connection
        // half-closes before its body is read.
        await pipeChannel(channel, socket, { halfClose: false });
      } finally {
        this.#stats.activeRequests--;
        this.#stats.requestsServed++;
        this.#request({ type: "end", name, originator });
      }
    })();
    this.#pipes.add(p);
    p.finally(() => this.#pipes.delete(p));
  }

  #request(event: TunnelRequestEvent): void {
    try {
      this.#o.onRequest?.(event);
    } catch {
      // Observers must not break the tunnel.
    }
  }

  async #teardown(session: Session): Promise<void> {
    if (!session.ssh.connection.isClosed) {
      await session.ssh.close().catch(() => {});
    }
    await session.ssh.closed;
    session.ws.drop();
    await session.ws.closed;
  }
}

/** The environment, or nothing without permission to read it. */
function environment(): Record<string, string> {
  try {
    return Deno.env.toObject();
  } catch {
    return {};
  }
}

function describe(e: unknown): string {
  const err = e as Error;
  const msg = errorText(e);
  const cause = (err?.cause as Error | undefined)?.message;
  return cause && !msg.includes(cause) ? `${msg}: ${cause}` : msg;
}

/** The error to stop with, or null to retry. */
function fatalError(e: unknown): TunnelFatalError | null {
  if (e instanceof TunnelFatalError) return e;
  const name = (e as Error)?.name;
  if (name === "HostKeyError" || name === "AuthError") {
    return new TunnelFatalError(
      name === "AuthError"
        ? `The server refused the SSH login: ${(e as Error).message}`
        : (e as Error).message,
      { cause: e },
    );
  }
  if (
    e instanceof WsHandshakeError && e.status >= 400 && e.status < 500 &&
    e.status !== 408 && e.status !== 429
  ) {
    return new TunnelFatalError(e.message, { cause: e });
  }
  return null;
}
