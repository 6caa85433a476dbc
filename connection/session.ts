/**
 * Session channels (RFC 4254 section 6): the client's {@linkcode ClientSession}
 * and the server's {@linkcode ServerSession}, their requests and exit
 * statuses.
 *
 * @module
 */

import type { ByteChannel } from "./channel.ts";

/** A terminal size (RFC 4254 sections 6.2 and 6.7). */
export interface WindowSize {
  /** Width in characters. */
  columns: number;
  /** Height in rows. */
  rows: number;
  /** Width in pixels. @default 0 */
  widthPixels?: number;
  /** Height in pixels. @default 0 */
  heightPixels?: number;
}

/** A pseudo-terminal request (`pty-req`, RFC 4254 section 6.2). */
export interface PtyRequest {
  /** Value of `TERM` for the remote side. @default "xterm-256color" */
  term?: string;
  /** Width in characters. @default 80 */
  columns?: number;
  /** Height in rows. @default 24 */
  rows?: number;
  /** Width in pixels. @default 0 */
  widthPixels?: number;
  /** Height in pixels. @default 0 */
  heightPixels?: number;
  /**
   * Encoded terminal modes (RFC 4254 section 8): opcode byte + uint32
   * argument pairs; `TTY_OP_END` (0) is appended when missing.
   * @default none
   */
  modes?: Uint8Array;
}

/** How a remote command ended (RFC 4254 section 6.10). */
export interface ExitStatus {
  /** Exit code from `exit-status`, or `null` if none was sent. */
  code: number | null;
  /** Signal name without `SIG` (e.g. `"TERM"`) from `exit-signal`, or `null`. */
  signal: string | null;
  /** Whether the process dumped core (from `exit-signal`). */
  coreDumped: boolean;
  /** Error message from `exit-signal`, or `""`. */
  message: string;
}

/**
 * The client side of a session channel: one remote command, shell or
 * subsystem with its standard streams.
 *
 * Read `stdout` and `stderr` (or cancel those you do not want): the server
 * can only send as much as the window we grant, and the window re-opens as
 * you read. Closing `stdin` sends EOF.
 */
export interface ClientSession {
  /** The remote process's standard input. Closing it sends EOF. */
  readonly stdin: WritableStream<Uint8Array>;
  /** The remote process's standard output. */
  readonly stdout: ReadableStream<Uint8Array>;
  /** The remote process's standard error (extended data type 1). */
  readonly stderr: ReadableStream<Uint8Array>;
  /**
   * Resolves once the channel has closed, with what the server reported
   * (`code` and `signal` both `null` when it reported nothing). Rejects
   * only when the connection failed before any exit status arrived.
   */
  readonly exit: Promise<ExitStatus>;
  /** Asks for a pseudo-terminal. Rejects when the server refuses. */
  requestPty(options?: PtyRequest): Promise<void>;
  /** Sets an environment variable; resolves false when the server refuses it. */
  setEnv(name: string, value: string): Promise<boolean>;
  /** Runs `command`. Rejects when the server refuses. */
  exec(command: string): Promise<void>;
  /** Starts the user's shell. Rejects when the server refuses. */
  shell(): Promise<void>;
  /** Starts a subsystem such as `"sftp"`. Rejects when the server refuses. */
  subsystem(name: string): Promise<void>;
  /**
   * Sends `auth-agent-req@openssh.com` (OpenSSH PROTOCOL.agent) before
   * `exec`/`shell`. With `wantReply` resolves with the server's answer;
   * without it (as `ssh` sends it) resolves `true` once sent. The server then
   * opens `auth-agent@openssh.com` channels, which the connection must be
   * ready to accept: use `forwardAgent()` from `@fynx/ssh/agent`, which does
   * both.
   */
  requestAgentForwarding(options?: {
    /** @default false */
    wantReply?: boolean;
  }): Promise<boolean>;
  /** Reports a new terminal size (no reply). */
  windowChange(size: WindowSize): Promise<void>;
  /** Sends a signal, e.g. `"INT"` or `"SIGINT"` (no reply; servers may ignore it). */
  signal(name: string): Promise<void>;
  /** Closes the channel; resolves once both sides closed it. */
  close(): Promise<void>;
}

/** A request a client made on a session channel (RFC 4254 section 6). */
export type SessionRequest =
  | {
    type: "pty-req";
    term: string;
    columns: number;
    rows: number;
    widthPixels: number;
    heightPixels: number;
    /** Encoded terminal modes (RFC 4254 section 8). */
    modes: Uint8Array;
  }
  | { type: "env"; name: string; value: string }
  | { type: "exec"; command: string }
  | { type: "shell" }
  | { type: "subsystem"; name: string }
  | {
    type: "window-change";
    columns: number;
    rows: number;
    widthPixels: number;
    heightPixels: number;
  }
  /** A signal name without `SIG`, e.g. `"INT"`. */
  | { type: "signal"; name: string }
  /**
   * Agent forwarding (OpenSSH PROTOCOL.agent): the client will accept
   * `auth-agent@openssh.com` channels opened with
   * {@linkcode ServerSession.openChannel}.
   */
  | { type: "auth-agent-req@openssh.com" };

/**
 * Answers one session request: `true` accepts it. Requests are handled one
 * at a time in the order they arrived, so return promptly (start work, do
 * not wait for it).
 */
export type SessionRequestHandler = (
  request: SessionRequest,
) => boolean | Promise<boolean>;

/**
 * The server side of a session channel, handed to
 * `ConnectionOptions.onSessionOpen`.
 *
 * Set {@linkcode ServerSession.onRequest} right away (synchronously) to
 * accept requests; every request is refused while it is unset. `exec`,
 * `shell` and `subsystem` are mutually exclusive: once one was accepted,
 * later ones are refused without asking. `x11-req` is always refused.
 *
 * When the work is done, call {@linkcode ServerSession.exit} (or
 * {@linkcode ServerSession.exitSignal}): it waits for writes in progress,
 * then sends the status, EOF and CLOSE.
 *
 * @example An upper-casing "shell", streamed both ways
 * ```ts
 * import { Connection, type ServerSession } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * function onSessionOpen(session: ServerSession): void {
 *   session.onRequest = (req) => {
 *     if (req.type !== "shell") return false;
 *     (async () => {
 *       // Backpressure both ways: the client's window re-opens as we read.
 *       await session.stdin
 *         .pipeThrough(new TextDecoderStream())
 *         .pipeThrough(new TransformStream<string, string>({
 *           transform: (text, c) => c.enqueue(text.toUpperCase()),
 *         }))
 *         .pipeThrough(new TextEncoderStream())
 *         .pipeTo(session.stdout);
 *       await session.exit(0);
 *     })();
 *     return true;
 *   };
 * }
 *
 * let server: Connection | undefined;
 * const client = new Connection({
 *   send: async (p) => { await null; server!.dispatch(p.slice()); },
 * }, { side: "client" });
 * server = new Connection({
 *   send: async (p) => { await null; client.dispatch(p.slice()); },
 * }, { side: "server", onSessionOpen });
 *
 * const session = await client.openSession();
 * await session.shell();
 * const output = new Response(session.stdout).text();
 * const writer = session.stdin.getWriter();
 * await writer.write(new TextEncoder().encode("hello "));
 * await writer.write(new TextEncoder().encode("world"));
 * await writer.close(); // sends EOF
 * assert.equal(await output, "HELLO WORLD");
 * assert.equal((await session.exit).code, 0);
 * client.close();
 * server.close();
 * ```
 */
export interface ServerSession {
  /** Our channel number (for logs). */
  readonly channelId: number;
  /** Handles the client's requests; `null` refuses them all. */
  onRequest: SessionRequestHandler | null;
  /** Data the client sends; ends at the client's EOF. */
  readonly stdin: ReadableStream<Uint8Array>;
  /** Standard output to the client. */
  readonly stdout: WritableStream<Uint8Array>;
  /** Standard error to the client (extended data type 1). */
  readonly stderr: WritableStream<Uint8Array>;
  /** Resolves once the channel is gone (closed by either side, or the connection ended). */
  readonly closed: Promise<void>;
  /** Whether the channel is closing or closed. */
  readonly isClosed: boolean;
  /** Sends `exit-status` with `code` (0..2^32-1), then EOF and CLOSE. */
  exit(code: number): Promise<void>;
  /**
   * Sends `exit-signal` (signal name with or without `SIG`), then EOF and
   * CLOSE.
   */
  exitSignal(
    signal: string,
    options?: {
      /** @default false */
      coreDumped?: boolean;
      /** @default "" */
      message?: string;
    },
  ): Promise<void>;
  /** Closes the channel without an exit status. */
  close(): Promise<void>;
  /**
   * Opens a channel of another type than `session` to the client on this
   * session's connection (RFC 4254 section 5.1), e.g.
   * `auth-agent@openssh.com` after an agent forwarding request.
   *
   * @throws {ChannelOpenError} the client refused, or too many channels are open.
   */
  openChannel(type: string, data?: Uint8Array): Promise<ByteChannel>;
}

/** Options for `Connection.exec`. */
export interface ExecOptions {
  /**
   * Data for the command's standard input; EOF follows it. Without it the
   * command gets EOF right away.
   * @default none
   */
  stdin?: Uint8Array | string | ReadableStream<Uint8Array>;
  /**
   * Environment variables to ask for (`env` requests). Servers accept only
   * some (OpenSSH: `AcceptEnv`); refusals are ignored.
   * @default {}
   */
  env?: Record<string, string>;
  /** Ask for a pseudo-terminal first (`true` for the defaults). @default false */
  pty?: PtyRequest | boolean;
  /**
   * Most bytes of stdout plus stderr to collect; beyond it the channel is
   * closed and `exec` rejects with a `RangeError`.
   * @default 268435456 (256 MiB)
   */
  maxOutputBytes?: number;
}

/** What `Connection.exec` collected. */
export interface ExecResult extends ExitStatus {
  /** Everything the command wrote to standard output. */
  stdout: Uint8Array;
  /** Everything the command wrote to standard error. */
  stderr: Uint8Array;
}

/**
 * Limits a server applies to one authenticated user's sessions, e.g. from
 * the `authorized_keys` options of the key that logged in.
 */
export interface SessionRestrictions {
  /**
   * Runs instead of any command or shell the client asks for (sshd
   * `command=` / `ForceCommand`); the requested command is passed in
   * `SSH_ORIGINAL_COMMAND`.
   */
  forceCommand?: string;
  /**
   * Whether `pty-req` may be granted.
   * @default {true}
   */
  pty?: boolean;
  /** Environment for every command, over anything the client sent. */
  environment?: Record<string, string>;
  /**
   * Whether TCP and Unix-socket forwarding may be used at all
   * (`no-port-forwarding`, `restrict`).
   * @default {true}
   */
  portForwarding?: boolean;
  /**
   * `permitopen="host:port"` entries: when present, the only destinations
   * of local forwarding (`*` wildcards a host or port, as in sshd).
   */
  permitOpen?: string[];
  /**
   * `permitlisten="[host:]port"` entries: when present, the only addresses
   * remote forwarding may listen on.
   */
  permitListen?: string[];
  /**
   * Whether agent forwarding may be used (`no-agent-forwarding`,
   * `restrict`).
   * @default {true}
   */
  agentForwarding?: boolean;
}

/** What a session handler may learn about the connection it serves. */
export interface SessionContext {
  /** The authentication outcome, with any restrictions attached to it. */
  auth?: { restrictions?: SessionRestrictions };
}
