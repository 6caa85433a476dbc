/**
 * The SSH server: {@linkcode serve} listens on TCP; {@linkcode
 * acceptConnection} runs one server connection over any {@linkcode Duplex}.
 *
 * The application supplies host keys, authentication callbacks and a session
 * handler; the server enforces the protocol and its pre-authentication
 * limits (login grace time, concurrent unauthenticated connections, attempts
 * per connection).
 *
 * @example Serve on a loopback port with a password check
 * ```ts
 * import { serve, commandSessionHandler } from "@fynx/ssh/server";
 * import { generatePrivateKey } from "@fynx/ssh";
 *
 * const server = serve({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   hostKeys: [generatePrivateKey("ed25519")],
 *   password: ({ password }) => password === "correct horse",
 *   onSession: commandSessionHandler(),
 * });
 * console.log(`listening on port ${server.addr.port}`);
 * await server.close();
 * ```
 *
 * @module
 */
import { Inbox } from "./auth/_inbox.ts";
import {
  runServerAuth,
  type ServerAuthOptions,
  type ServerAuthResult,
} from "./auth/server.ts";
import { Connection } from "./connection/connection.ts";
import type { IncomingChannel, ServerSession } from "./connection/mod.ts";
import { DisconnectError } from "./errors.ts";
import { SIGNATURE_ALGORITHMS } from "./keys/mod.ts";
import type { PrivateKey } from "./keys/types.ts";
import type { Certificate } from "./keys/certificate.ts";
import type { AlgorithmPreferences } from "./transport/algorithms.ts";
import { type Duplex, Transport } from "./transport/transport.ts";
import { closeQuietly, markRaw } from "./transport/_raw_conn.ts";
import { DisconnectReason, Msg } from "./wire/messages.ts";

export type {
  AuthContext,
  PublicKeyDecision,
  ServerAuthOptions,
  ServerAuthResult,
} from "./auth/server.ts";
export { commandSessionHandler } from "./connection/mod.ts";
export {
  serverForwarding,
  type ServerForwardingOptions,
} from "./forward/mod.ts";
export type {
  ByteChannel,
  IncomingChannel,
  ServerSession,
  SessionRequest,
} from "./connection/mod.ts";

/** Facts about one client connection. */
export interface ConnectionInfo {
  /** Peer address as `host:port`, when known. */
  remoteAddress?: string;
  /** The authenticated user (after authentication). */
  username?: string;
  /** The authentication result (after authentication). */
  auth?: ServerAuthResult;
  /**
   * The connection layer (after authentication), for handlers that open
   * channels to the client (forwarded connections, agent forwarding).
   */
  connection?: Connection;
  /**
   * Resolves when the connection has closed, so handlers can release what
   * they hold for it (listeners, sockets).
   */
  closed?: Promise<Error | undefined>;
}

/** Options for {@linkcode acceptConnection}. */
export interface ServerConnectionOptions extends ServerAuthOptions {
  /** Host keys to offer (one per type is typical). */
  hostKeys: readonly PrivateKey[];
  /**
   * OpenSSH host certificates for some of `hostKeys` (sshd
   * `HostCertificate`); clients that trust the CA accept the host without a
   * known_hosts entry for its key.
   */
  hostCertificates?: readonly Certificate[];
  /** Algorithm preferences; the defaults are the hardened set. */
  algorithms?: Partial<AlgorithmPreferences>;
  /**
   * Called for each session channel a client opens, after authentication.
   * Without it session channels are refused.
   */
  onSession?: (session: ServerSession, info: ConnectionInfo) => void;
  /**
   * Called for each channel open of another type than `session`
   * (`direct-tcpip`, `direct-streamlocal@openssh.com`, ...), after
   * authentication. Without it they are refused.
   */
  onChannelOpen?: (channel: IncomingChannel, info: ConnectionInfo) => void;
  /**
   * Answers the client's global requests (`tcpip-forward`, ...). Without it
   * they are refused.
   */
  onGlobalRequest?: (
    name: string,
    data: Uint8Array,
    info: ConnectionInfo,
  ) => boolean | Uint8Array | Promise<boolean | Uint8Array>;
  /**
   * Milliseconds a client has to authenticate (sshd `LoginGraceTime`).
   * @default {120000}
   */
  loginGraceTime?: number;
  /**
   * Milliseconds between `keepalive@openssh.com` probes after
   * authentication (0 disables; sshd `ClientAliveInterval`).
   * @default {0}
   */
  keepaliveInterval?: number;
  /**
   * Unanswered probes before closing (`ClientAliveCountMax`).
   * @default {3}
   */
  keepaliveCountMax?: number;
  /**
   * Bytes under one set of keys before rekeying.
   * @default {1073741824}
   */
  rekeyBytes?: number;
  /**
   * Milliseconds under one set of keys before rekeying.
   * @default {3600000}
   */
  rekeyInterval?: number;
  /** Peer address for logs and callbacks. */
  remoteAddress?: string;
  /** Called once authentication succeeded. */
  onAuthenticated?: (info: ConnectionInfo) => void;
}

/** One server-side connection. */
export interface ServerConnection {
  /** Connection facts; `username` is set once authenticated. */
  readonly info: ConnectionInfo;
  /** Resolves when the connection closes, with the reason if it failed. */
  readonly closed: Promise<Error | undefined>;
  /** Resolves once the client is authenticated (rejects if it never is). */
  readonly authenticated: Promise<ServerAuthResult>;
  /** The transport (diagnostics and tests). */
  readonly transport: Transport;
  /** The connection layer, once authenticated. */
  readonly connection: Connection | null;
  /** Sends DISCONNECT and closes. */
  close(reason?: number, description?: string): Promise<void>;
}

/**
 * Runs the server side of one SSH connection over `duplex`. Resolves as
 * soon as the connection is set up (before the handshake); watch
 * `authenticated` and `closed`.
 */
export function acceptConnection(
  duplex: Duplex,
  options: ServerConnectionOptions,
): Promise<ServerConnection> {
  return Promise.resolve(new ServerConnectionImpl(duplex, options));
}

/** Called by a connection of serve() once it is over. */
type FinishedHook = (
  server: ServerConnectionImpl,
  reason: Error | undefined,
) => void;

/**
 * One server connection. A class with methods rather than an object of
 * closures: a server keeps one per connection for the connection's
 * lifetime, and each closure and its scope cost heap per connection.
 */
class ServerConnectionImpl implements ServerConnection {
  readonly info: ConnectionInfo;
  readonly transport: Transport;
  readonly authenticated: Promise<ServerAuthResult>;
  readonly #options: ServerConnectionOptions;
  /** Authentication messages; null once authenticated (or closed). */
  #inbox: Inbox | null = new Inbox();
  #connection: Connection | null = null;
  #keepalive: ReturnType<typeof setInterval> | undefined;
  /** serve()'s bookkeeping, once closed and `authenticated` has settled. */
  readonly #onFinished: FinishedHook | undefined;

  constructor(
    duplex: Duplex,
    options: ServerConnectionOptions,
    onFinished?: FinishedHook,
  ) {
    this.#options = options;
    this.#onFinished = onFinished;
    this.info = { remoteAddress: options.remoteAddress };
    this.transport = new Transport(duplex, {
      side: "server",
      hostKeys: options.hostKeys,
      hostCertificates: options.hostCertificates,
      algorithms: options.algorithms,
      rekeyBytes: options.rekeyBytes,
      rekeyInterval: options.rekeyInterval,
      serverSigAlgs: SIGNATURE_ALGORITHMS,
      onMessage: (payload) => this.#onMessage(payload),
    });
    this.info.closed = this.transport.closed;
    this.transport.closed.then((e) => this.#onClosed(e));
    this.authenticated = this.#authenticate();
    this.authenticated.then(() => this.#startKeepalive(), () => {});
  }

  get closed(): Promise<Error | undefined> {
    return this.transport.closed;
  }

  get connection(): Connection | null {
    return this.#connection;
  }

  close(
    reason: number = DisconnectReason.BY_APPLICATION,
    description = "Server closing",
  ): Promise<void> {
    return this.transport.disconnect(reason, description);
  }

  #onMessage(payload: Uint8Array): void | Promise<void> {
    const type = payload[0];
    const connection = this.#connection;
    if (connection === null) {
      if (
        type === Msg.SERVICE_REQUEST || type === Msg.USERAUTH_REQUEST ||
        type === Msg.USERAUTH_INFO_RESPONSE
      ) {
        this.#inbox?.push(payload);
        return;
      }
      // Server-to-client messages from a client (libssh CVE-2018-10933) and
      // connection messages before authentication (AsyncSSH CVE-2018-7749).
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_ERROR,
        `Unexpected message ${type} before authentication completed`,
      );
    }
    // RFC 4252 section 5.1: requests after success are ignored.
    if (type === Msg.USERAUTH_REQUEST) return;
    if (type >= 80 && type <= 127) return connection.dispatch(payload);
    throw new DisconnectError(
      DisconnectReason.PROTOCOL_ERROR,
      `Unexpected message ${type} after authentication`,
    );
  }

  #onClosed(e: Error | undefined): void {
    const err = e ??
      new DisconnectError(
        DisconnectReason.CONNECTION_LOST,
        "Connection closed",
      );
    this.#inbox?.close(err);
    this.#inbox = null;
    this.#connection?.close(err);
    clearInterval(this.#keepalive);
    const hook = this.#onFinished;
    if (hook) {
      const finish = () => hook(this, e);
      this.authenticated.then(finish, finish);
    }
  }

  async #authenticate(): Promise<ServerAuthResult> {
    const { transport, info } = this;
    const options = this.#options;
    const grace = options.loginGraceTime ?? 120_000;
    const graceTimer = grace > 0
      ? setTimeout(() => {
        transport.disconnect(
          DisconnectReason.PROTOCOL_ERROR,
          `Authentication timeout: no login within ${grace} ms`,
        ).catch(() => {});
      }, grace)
      : undefined;
    try {
      await transport.start();
      const result = await runServerAuth(
        transport,
        this.#inbox!,
        options,
        {
          remoteAddress: options.remoteAddress,
          onSuccess: (result) => this.#onAuthenticated(result),
        },
      );
      options.onAuthenticated?.(info);
      return result;
    } catch (e) {
      if (!transport.isClosed) {
        const err = e instanceof DisconnectError ? e : new DisconnectError(
          DisconnectReason.PROTOCOL_ERROR,
          (e as Error).message,
        );
        await transport.disconnect(err.reason, err.message);
      }
      throw (await transport.closed) ?? e;
    } finally {
      clearTimeout(graceTimer);
    }
  }

  /**
   * Synchronously behind USERAUTH_SUCCESS: compression starts after it and
   * the client's next message finds the connection.
   */
  #onAuthenticated(result: ServerAuthResult): void {
    const { info } = this;
    const options = this.#options;
    this.transport.authenticated();
    info.username = result.username;
    info.auth = result;
    // The transport is the link: its send() is all the connection uses.
    const connection = new Connection(this.transport, {
      side: "server",
      onSessionOpen: options.onSession
        ? (session: ServerSession) => options.onSession!(session, info)
        : undefined,
      onChannelOpen: options.onChannelOpen
        ? (channel) => options.onChannelOpen!(channel, info)
        : undefined,
      onGlobalRequest: options.onGlobalRequest
        ? (name, data) => options.onGlobalRequest!(name, data, info)
        : undefined,
    });
    this.#connection = connection;
    info.connection = connection;
    // From here messages go to the connection; the inbox is done with.
    this.#inbox = null;
  }

  #startKeepalive(): void {
    const interval = this.#options.keepaliveInterval ?? 0;
    if (interval <= 0 || this.transport.isClosed) return;
    const max = this.#options.keepaliveCountMax ?? 3;
    let outstanding = 0;
    this.#keepalive = setInterval(() => {
      if (outstanding >= max) {
        clearInterval(this.#keepalive);
        this.transport.disconnect(
          DisconnectReason.CONNECTION_LOST,
          `Timeout, client not responding to ${max} keepalives`,
        )
          .catch(() => {});
        return;
      }
      outstanding++;
      this.#connection?.globalRequest("keepalive@openssh.com", undefined, {
        wantReply: true,
      }).then(() => {
        outstanding = 0;
      }, () => {});
    }, interval);
  }
}

/** Options for {@linkcode serve}. */
export interface ServeOptions extends ServerConnectionOptions {
  /**
   * Address to listen on.
   * @default {"0.0.0.0"}
   */
  hostname?: string;
  /**
   * TCP port (0 picks a free one).
   * @default {22}
   */
  port?: number;
  /**
   * Unauthenticated connections at which new ones start being refused at
   * random, the refusal rate, and the hard cap (sshd `MaxStartups
   * start:rate:full`).
   * @default {{ start: 10, rate: 30, full: 100 }}
   */
  maxStartups?: { start: number; rate: number; full: number };
  /** Called for each connection and its outcome (for logs). */
  onLog?: (event: ServerLogEvent) => void;
  /** Stops the server when aborted. */
  signal?: AbortSignal;
}

/** One log event from {@linkcode serve}. */
export type ServerLogEvent =
  | { type: "connect"; remoteAddress: string }
  | { type: "refused"; remoteAddress: string; reason: string }
  | {
    type: "auth";
    remoteAddress: string;
    username: string;
    methods: string[];
    key?: string;
  }
  | { type: "auth-failed"; remoteAddress: string; reason: string }
  | {
    type: "close";
    remoteAddress: string;
    username?: string;
    reason?: string;
  };

/** A listening SSH server. */
export interface SshServer {
  /** The address it listens on. */
  readonly addr: Deno.NetAddr;
  /** Currently open connections. */
  readonly connections: number;
  /** Connections that have not authenticated yet. */
  readonly unauthenticated: number;
  /** Resolves when the server has stopped and every connection closed. */
  readonly finished: Promise<void>;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

/** Listens on TCP and serves SSH connections. */
export function serve(options: ServeOptions): SshServer {
  const listener = Deno.listen({
    hostname: options.hostname ?? "0.0.0.0",
    port: options.port ?? 22,
  });
  const live = new Set<ServerConnection>();
  /** Resolves close()'s wait once the last connection has been logged. */
  let drained: (() => void) | null = null;
  let unauthenticated = 0;
  let stopping = false;
  const startups = options.maxStartups ?? { start: 10, rate: 30, full: 100 };
  const onLog = options.onLog;
  // A throwing onLog is the application's bug; it must not leave a socket
  // unserved or stop the accept loop.
  const log = (event: ServerLogEvent): void => {
    try {
      onLog?.(event);
    } catch {
      // Ignored, see above.
    }
  };

  // Not an async function waiting for the connection's end: a suspended
  // call per connection costs more heap than one callback on `closed`.
  const handle = (conn: Deno.TcpConn): void => {
    const addr = conn.remoteAddr;
    const remoteAddress = `${addr.hostname}:${addr.port}`;
    // MaxStartups: refuse at random from `start` unauthenticated connections,
    // with a probability rising from `rate`% to 100% at `full`.
    const over = unauthenticated - startups.start;
    const refuseChance = unauthenticated >= startups.full
      ? 100
      : over >= 0
      ? startups.rate +
        (100 - startups.rate) * over /
          Math.max(1, startups.full - startups.start)
      : 0;
    if (refuseChance > 0 && Math.random() * 100 < refuseChance) {
      log({
        type: "refused",
        remoteAddress,
        reason: "too many unauthenticated connections",
      });
      conn.close();
      return;
    }
    conn.setNoDelay(true);
    markRaw(conn);
    log({ type: "connect", remoteAddress });
    let server: ServerConnectionImpl;
    try {
      // The serve() options as prototype, not copied: a spread copy per
      // connection (kept for its lifetime) is some 300 bytes each.
      const connOptions: ServerConnectionOptions = Object.create(options);
      connOptions.remoteAddress = remoteAddress;
      server = new ServerConnectionImpl(conn, connOptions, onFinished);
    } catch (e) {
      // The transport has usually closed it already.
      closeQuietly(conn);
      log({ type: "close", remoteAddress, reason: (e as Error).message });
      return;
    }
    unauthenticated++;
    live.add(server);
    // `authenticated` settles exactly once: count the connection out then.
    server.authenticated.then((r) => {
      unauthenticated--;
      log({
        type: "auth",
        remoteAddress,
        username: r.username,
        methods: r.methods,
        key: r.key?.fingerprint(),
      });
    }, (e) => {
      unauthenticated--;
      log({
        type: "auth-failed",
        remoteAddress,
        reason: (e as Error)?.message ?? String(e),
      });
    });
  };

  // One function for all connections, not a closure each.
  const onFinished: FinishedHook = (server, reason) => {
    live.delete(server);
    log({
      type: "close",
      remoteAddress: server.info.remoteAddress!,
      username: server.info.username,
      reason: reason?.message,
    });
    if (live.size === 0) drained?.();
  };

  const acceptLoop = (async () => {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch {
        break;
      }
      if (stopping) {
        conn.close();
        break;
      }
      try {
        handle(conn);
      } catch {
        // setNoDelay() on a socket the peer already reset, say: drop it,
        // keep accepting.
        closeQuietly(conn);
      }
    }
  })();

  let finished: Promise<void> | null = null;
  const close = (): Promise<void> => {
    if (finished) return finished;
    stopping = true;
    try {
      listener.close();
    } catch {
      // Already closed.
    }
    finished = (async () => {
      await acceptLoop;
      const gone = live.size === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => drained = resolve);
      await Promise.all(
        [...live].map((c) =>
          c.close(DisconnectReason.BY_APPLICATION, "Server shutting down")
        ),
      );
      // Every connection closed and logged.
      await gone;
    })();
    return finished;
  };
  options.signal?.addEventListener("abort", () => close(), { once: true });
  let finishedResolve!: () => void;
  const finishedPromise = new Promise<void>((r) => (finishedResolve = r));
  acceptLoop.then(async () => {
    await (finished ?? close());
    finishedResolve();
  });

  return {
    addr: listener.addr as Deno.NetAddr,
    get connections() {
      return live.size;
    },
    get unauthenticated() {
      return unauthenticated;
    },
    finished: finishedPromise,
    close,
  };
}
