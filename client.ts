/**
 * The SSH client: {@linkcode connect} opens an authenticated connection to
 * any SSH server over TCP or any {@linkcode Duplex}, then runs commands and
 * sessions on it.
 *
 * @example Run a command on our own server over an in-memory pair
 * ```ts
 * import { connect } from "@fynx/ssh/client";
 * import { acceptConnection } from "@fynx/ssh/server";
 * import { generatePrivateKey, memoryDuplexPair } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const hostKey = generatePrivateKey("ed25519");
 * const [a, b] = memoryDuplexPair();
 * const server = acceptConnection(b, {
 *   hostKeys: [hostKey],
 *   password: ({ username, password }) => username === "me" && password === "secret",
 *   onSession: (session) => {
 *     session.onRequest = (req) => {
 *       if (req.type !== "exec") return false;
 *       queueMicrotask(async () => {
 *         const w = session.stdout.getWriter();
 *         await w.write(new TextEncoder().encode(`you ran ${req.command}\n`));
 *         await w.close();
 *         await session.exit(0);
 *       });
 *       return true;
 *     };
 *   },
 * });
 * const client = await connect({
 *   transport: a,
 *   username: "me",
 *   password: "secret",
 *   verifyHostKey: (key) => key.fingerprint() === hostKey.publicKey.fingerprint(),
 * });
 * const result = await client.exec("hello");
 * assert.equal(new TextDecoder().decode(result.stdout), "you ran hello\n");
 * assert.equal(result.code, 0);
 * await client.close();
 * await (await server).closed;
 * ```
 *
 * @module
 */
import { type ClientAuthOptions, runClientAuth } from "./auth/client.ts";
export { withCertificate } from "./auth/client.ts";
import { Inbox } from "./auth/_inbox.ts";
import { Connection } from "./connection/connection.ts";
import type {
  ByteChannel,
  ClientSession,
  ExecOptions,
  ExecResult,
  IncomingChannel,
} from "./connection/mod.ts";
import { DisconnectError } from "./errors.ts";
import type { PublicKey } from "./keys/types.ts";
import type { Certificate } from "./keys/certificate.ts";
import type { AlgorithmPreferences } from "./transport/algorithms.ts";
import {
  type Duplex,
  type HostKeyVerifier,
  Transport,
} from "./transport/transport.ts";
import { DisconnectReason, Msg } from "./wire/messages.ts";
import { markRaw } from "./transport/_raw_conn.ts";

export type {
  ClientAuthOptions,
  InteractiveChallenge,
  InteractivePrompt,
  Signer,
} from "./auth/client.ts";
export type { Duplex, HostKeyVerifier } from "./transport/transport.ts";
export {
  forwardLocal,
  type ForwardLocalOptions,
  forwardRemote,
  type ForwardRemoteOptions,
  openDirect,
  serveSocks,
} from "./forward/mod.ts";

/** Options for {@linkcode connect}. */
export interface ConnectOptions extends ClientAuthOptions {
  /** Host to dial over TCP (ignored when `transport` is given). */
  hostname?: string;
  /**
   * TCP port.
   * @default {22}
   */
  port?: number;
  /** Run over this byte stream instead of dialling TCP. */
  transport?: Duplex;
  /**
   * Decides whether the server's host key is trusted. Without it every
   * host key is rejected: trust must be a decision.
   */
  verifyHostKey?: HostKeyVerifier;
  /** Algorithm preferences; the defaults are the hardened set. */
  algorithms?: Partial<AlgorithmPreferences>;
  /**
   * Milliseconds for TCP connect, key exchange and authentication together
   * (0 for none).
   * @default {30000}
   */
  connectTimeout?: number;
  /**
   * Milliseconds between `keepalive@openssh.com` requests (0 disables;
   * ssh_config `ServerAliveInterval`).
   * @default {0}
   */
  keepaliveInterval?: number;
  /**
   * Unanswered keepalives before the connection is closed
   * (`ServerAliveCountMax`).
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
  /** Aborts connecting. */
  signal?: AbortSignal;
}

/**
 * An authenticated SSH connection.
 */
export class SshClient {
  readonly #transport: Transport;
  readonly #connection: Connection;
  #keepalive: ReturnType<typeof setInterval> | undefined;

  /** @internal Use {@linkcode connect}. */
  constructor(transport: Transport, connection: Connection) {
    this.#transport = transport;
    this.#connection = connection;
    transport.closed.then((error) => {
      this.#stopKeepalive();
      connection.close(
        error ??
          new DisconnectError(
            DisconnectReason.BY_APPLICATION,
            "Connection closed",
          ),
      );
    });
  }

  /** The server's host key. */
  get hostKey(): PublicKey {
    return this.#transport.hostKey!;
  }

  /** The host certificate the server presented, if it presented one. */
  get hostCertificate(): Certificate | null {
    return this.#transport.hostCertificate;
  }

  /** The server's identification line, e.g. `SSH-2.0-OpenSSH_9.2p1`. */
  get serverVersion(): string {
    return this.#transport.peerIdentification;
  }

  /** The algorithms in use. */
  get algorithms(): Readonly<Record<string, string | null>> {
    return { ...this.#transport.negotiated! };
  }

  /** Resolves when the connection has closed, with the reason if it failed. */
  get closed(): Promise<Error | undefined> {
    return this.#transport.closed;
  }

  /** Runs `command` and collects its output and exit status. */
  exec(command: string, options?: ExecOptions): Promise<ExecResult> {
    return this.#connection.exec(command, options);
  }

  /**
   * Opens a channel of another type than `session` (`direct-tcpip`, ...)
   * with its type-specific fields in `data` (RFC 4254 section 5.1).
   */
  openChannel(type: string, data?: Uint8Array): Promise<ByteChannel> {
    return this.#connection.openChannel(type, data);
  }

  /** Opens a session channel for a shell, a command with streaming I/O, or a subsystem. */
  openSession(): Promise<ClientSession> {
    return this.#connection.openSession();
  }

  /** Starts a key exchange now; resolves when it has finished. */
  rekey(): Promise<void> {
    return this.#transport.rekey();
  }

  /** The underlying connection layer (channels, global requests). */
  get connection(): Connection {
    return this.#connection;
  }

  /** The underlying transport (for diagnostics and tests). */
  get transport(): Transport {
    return this.#transport;
  }

  /** Sends DISCONNECT and closes. */
  async close(): Promise<void> {
    this.#stopKeepalive();
    await this.#transport.disconnect(
      DisconnectReason.BY_APPLICATION,
      "disconnected by user",
    );
  }

  /** Closes the connection (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** @internal */
  startKeepalive(interval: number, countMax: number): void {
    let outstanding = 0;
    this.#keepalive = setInterval(() => {
      if (outstanding >= countMax) {
        this.#stopKeepalive();
        this.#transport.disconnect(
          DisconnectReason.CONNECTION_LOST,
          `Timeout, server not responding to ${countMax} keepalives`,
        ).catch(() => {});
        return;
      }
      outstanding++;
      // Any reply (success or failure) proves the server is alive.
      this.#connection.globalRequest("keepalive@openssh.com", undefined, {
        wantReply: true,
      }).then(
        () => {
          outstanding = 0;
        },
        () => {},
      );
    }, interval);
  }

  #stopKeepalive(): void {
    if (this.#keepalive !== undefined) clearInterval(this.#keepalive);
    this.#keepalive = undefined;
  }
}

/**
 * Connects, verifies the host key, authenticates and returns a client.
 *
 * Rejects with `HostKeyError` when the host key is not trusted, `AuthError`
 * when authentication fails, and `DisconnectError` for protocol failures.
 */
export async function connect(options: ConnectOptions): Promise<SshClient> {
  let duplex: Duplex;
  let conn: Deno.TcpConn | null = null;
  const timeout = options.connectTimeout ?? 30_000;
  const controller = new AbortController();
  const timer = timeout > 0
    ? setTimeout(
      () =>
        controller.abort(
          new DisconnectError(
            DisconnectReason.CONNECTION_LOST,
            `Connection timed out after ${timeout} ms`,
          ),
        ),
      timeout,
    )
    : undefined;
  const onAbort = () => controller.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  let transport: Transport | null = null;
  try {
    if (options.transport) {
      duplex = options.transport;
    } else {
      if (!options.hostname) {
        throw new TypeError("connect() needs a hostname or a transport");
      }
      conn = await Deno.connect(
        {
          hostname: options.hostname,
          port: options.port ?? 22,
          signal: controller.signal,
        } as Deno.ConnectOptions,
      );
      conn.setNoDelay(true);
      markRaw(conn);
      duplex = conn;
    }
    const inbox = new Inbox();
    let authenticated = false;
    let connection: Connection | null = null;
    transport = new Transport(duplex, {
      side: "client",
      algorithms: options.algorithms,
      verifyHostKey: options.verifyHostKey,
      rekeyBytes: options.rekeyBytes,
      rekeyInterval: options.rekeyInterval,
      onMessage: (payload) => {
        const type = payload[0];
        if (!authenticated) {
          if (type === Msg.USERAUTH_SUCCESS) {
            // Switch state before the read loop takes the next packet: it
            // may already be compressed or be a connection message (OpenSSH
            // sends hostkeys-00@openssh.com right away).
            authenticated = true;
            transport!.authenticated();
            connection = new Connection({ send: (p) => transport!.send(p) }, {
              side: "client",
            });
          }
          if (type === Msg.SERVICE_ACCEPT || (type >= 50 && type <= 79)) {
            inbox.push(payload);
            return;
          }
          throw new DisconnectError(
            DisconnectReason.PROTOCOL_ERROR,
            `Unexpected message ${type} before authentication completed`,
          );
        }
        if (type >= 80 && type <= 127) return connection!.dispatch(payload);
        if (type === Msg.USERAUTH_BANNER) return;
        throw new DisconnectError(
          DisconnectReason.PROTOCOL_ERROR,
          `Unexpected message ${type} after authentication`,
        );
      },
    });
    const t = transport;
    t.closed.then((e) =>
      inbox.close(
        e ??
          new DisconnectError(
            DisconnectReason.CONNECTION_LOST,
            "Connection closed",
          ),
      )
    );
    const abort = () => {
      t.disconnect(
        DisconnectReason.BY_APPLICATION,
        String((controller.signal.reason as Error)?.message ?? "aborted"),
      ).catch(() => {});
    };
    controller.signal.addEventListener("abort", abort, { once: true });
    try {
      await t.start();
      await runClientAuth(
        {
          send: (p) => t.send(p),
          sessionId: t.sessionId,
          get serverSigAlgs() {
            return t.serverSigAlgs;
          },
        },
        inbox,
        options,
      );
    } finally {
      controller.signal.removeEventListener("abort", abort);
    }
    if (controller.signal.aborted) throw controller.signal.reason;
    const client = new SshClient(t, connection!);
    if (options.keepaliveInterval) {
      client.startKeepalive(
        options.keepaliveInterval,
        options.keepaliveCountMax ?? 3,
      );
    }
    return client;
  } catch (e) {
    if (transport) {
      if (!transport.isClosed) {
        await transport.disconnect(
          DisconnectReason.BY_APPLICATION,
          (e as Error).message,
        );
      }
      const reason = await transport.closed;
      if (controller.signal.aborted) throw controller.signal.reason;
      // Prefer the transport's reason (e.g. the peer's DISCONNECT) over the
      // generic rejection that surfaced here.
      if (reason && !(e instanceof Error && e.name !== "DisconnectError")) {
        throw reason;
      }
    } else if (conn) {
      conn.close();
    }
    throw e;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

export type {
  ByteChannel,
  ClientSession,
  ExecOptions,
  ExecResult,
  IncomingChannel,
};
