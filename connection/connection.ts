/**
 * The SSH connection protocol (RFC 4254): the channel table, global
 * requests, and session channels for both sides.
 *
 * The transport hands every message numbered 80..127 to
 * {@linkcode Connection.dispatch} once the user is authenticated, and sends
 * what the connection gives it through a {@linkcode ConnectionLink}.
 *
 * @module
 */

import { SETTLED } from "../transport/_settled.ts";
import { ChannelOpenError, DisconnectError } from "../errors.ts";
import { ChannelOpenFailure, DisconnectReason, Msg } from "../wire/messages.ts";
import { SshReader } from "../wire/reader.ts";
import { SshWriter } from "../wire/writer.ts";
import {
  Channel,
  type ChannelHost,
  MAX_PEER_PACKET,
  MAX_WINDOW,
  protocolError,
  quiet,
} from "./_channel.ts";
import { ClientSessionImpl, ServerSessionImpl } from "./_session.ts";
import {
  type ByteChannel,
  ByteChannelImpl,
  type ChannelOpenHandler,
  type IncomingChannel,
} from "./channel.ts";
import type {
  ClientSession,
  ExecOptions,
  ExecResult,
  ServerSession,
} from "./session.ts";

/** How the connection layer sends messages through the transport. */
export interface ConnectionLink {
  /**
   * Sends one message payload (first byte = message number). Resolves once
   * the transport accepted it (it may wait: backpressure, or a key exchange
   * in progress). Rejects once the connection is closed. Payloads must go
   * out in the order of the calls.
   */
  send(payload: Uint8Array): Promise<void>;
}

/**
 * Answers a global request from the peer (RFC 4254 section 4): `true` or
 * response data for REQUEST_SUCCESS, `false` for REQUEST_FAILURE.
 */
export type GlobalRequestHandler = (
  name: string,
  data: Uint8Array,
) => boolean | Uint8Array | Promise<boolean | Uint8Array>;

/** Options for {@linkcode Connection}. */
export interface ConnectionOptions {
  /** Which end of the connection we are. */
  side: "client" | "server";
  /**
   * Our receive window per channel: how much the peer may send before the
   * application reads it.
   * @default 2097152 (2 MiB)
   */
  windowSize?: number;
  /**
   * Largest CHANNEL_DATA payload we accept (at most 261120, so packets stay
   * within 256 KiB).
   * @default 32768
   */
  maxPacketSize?: number;
  /**
   * Most channels open at once; opens beyond it are refused with
   * RESOURCE_SHORTAGE.
   * @default 1024
   */
  maxChannels?: number;
  /**
   * Server: a client opened a "session" channel. Set the session's
   * `onRequest` before returning. Without this option session opens are
   * refused.
   */
  onSessionOpen?: (session: ServerSession) => void;
  /**
   * Answers the peer's global requests. Without it every global request is
   * refused (which is also the right answer to `keepalive@openssh.com`).
   */
  onGlobalRequest?: GlobalRequestHandler;
  /**
   * The peer opened a channel of a type other than `session` (forwarding,
   * agent). Without it such opens are refused with UNKNOWN_CHANNEL_TYPE.
   */
  onChannelOpen?: ChannelOpenHandler;
}

const DEFAULT_WINDOW = 2 * 1024 * 1024;
const DEFAULT_PACKET = 32 * 1024;
const DEFAULT_MAX_CHANNELS = 1024;
const DEFAULT_MAX_OUTPUT = 256 * 1024 * 1024;
const MAX_NAME = 1024;

const MESSAGE_NAMES: Record<number, string> = {
  [Msg.GLOBAL_REQUEST]: "GLOBAL_REQUEST",
  [Msg.REQUEST_SUCCESS]: "REQUEST_SUCCESS",
  [Msg.REQUEST_FAILURE]: "REQUEST_FAILURE",
  [Msg.CHANNEL_OPEN]: "CHANNEL_OPEN",
  [Msg.CHANNEL_OPEN_CONFIRMATION]: "CHANNEL_OPEN_CONFIRMATION",
  [Msg.CHANNEL_OPEN_FAILURE]: "CHANNEL_OPEN_FAILURE",
  [Msg.CHANNEL_WINDOW_ADJUST]: "CHANNEL_WINDOW_ADJUST",
  [Msg.CHANNEL_DATA]: "CHANNEL_DATA",
  [Msg.CHANNEL_EXTENDED_DATA]: "CHANNEL_EXTENDED_DATA",
  [Msg.CHANNEL_EOF]: "CHANNEL_EOF",
  [Msg.CHANNEL_CLOSE]: "CHANNEL_CLOSE",
  [Msg.CHANNEL_REQUEST]: "CHANNEL_REQUEST",
  [Msg.CHANNEL_SUCCESS]: "CHANNEL_SUCCESS",
  [Msg.CHANNEL_FAILURE]: "CHANNEL_FAILURE",
};

const encoder = new TextEncoder();
const lossy = new TextDecoder();

function intOption(
  value: number | undefined,
  fallback: number,
  min: number,
  max: number,
  what: string,
): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`Invalid ${what}: ${v} is not within ${min}..${max}`);
  }
  return v;
}

/** Text from the peer made safe for an error message. */
function printable(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x1f\x7f]/g, "?").slice(0, 256);
}

async function collect(
  stream: ReadableStream<Uint8Array>,
  budget: { left: number },
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of stream) {
    budget.left -= chunk.length;
    if (budget.left < 0) {
      throw new RangeError(
        "Cannot collect the output of exec: it exceeds maxOutputBytes",
      );
    }
    chunks.push(chunk);
    total += chunk.length;
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/**
 * The connection layer of one SSH connection (RFC 4254): channels, their
 * flow control, and global requests, on either side.
 *
 * Usually made for you by `connect()` and `acceptConnection()`; build one
 * directly to run the protocol over your own transport.
 *
 * @example Two connections wired back to back
 * ```ts
 * import { Connection } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * // A link delivers each payload to the other side's dispatch, in order.
 * let server: Connection | undefined;
 * const client = new Connection({
 *   send: async (p) => { await null; server!.dispatch(p.slice()); },
 * }, { side: "client" });
 * server = new Connection({
 *   send: async (p) => { await null; client.dispatch(p.slice()); },
 * }, {
 *   side: "server",
 *   onSessionOpen(session) {
 *     session.onRequest = (req) => {
 *       if (req.type !== "exec") return false;
 *       (async () => {
 *         const w = session.stdout.getWriter();
 *         await w.write(new TextEncoder().encode(`ran ${req.command}\n`));
 *         await w.close();
 *         await session.exit(3);
 *       })();
 *       return true;
 *     };
 *   },
 * });
 *
 * const result = await client.exec("make tea");
 * assert.equal(new TextDecoder().decode(result.stdout), "ran make tea\n");
 * assert.equal(result.code, 3);
 * client.close();
 * server.close();
 * ```
 */
export class Connection {
  readonly #link: ConnectionLink;
  readonly #side: "client" | "server";
  readonly #windowSize: number;
  readonly #maxPacket: number;
  readonly #maxChannels: number;
  readonly #onSessionOpen: ((session: ServerSession) => void) | undefined;
  /**
   * Answers the peer's global requests; replaceable at any time (a client
   * sets it when it asks for remote forwarding). Unset refuses them all.
   */
  onGlobalRequest: GlobalRequestHandler | undefined;
  /**
   * Answers the peer's opens of channels other than `session`; replaceable
   * at any time. Unset refuses them with UNKNOWN_CHANNEL_TYPE.
   */
  onChannelOpen: ChannelOpenHandler | undefined;
  readonly #host: ChannelHost;

  #channels: (Channel | undefined)[] = [];
  #count = 0;
  #error: Error | null = null;
  // Our global requests awaiting a reply, oldest first (RFC 4254 section 4).
  #pendingGlobal: {
    resolve(data: Uint8Array | null): void;
    reject(error: Error): void;
  }[] = [];
  // Replies to the peer's global requests go out in order.
  #globalChain: Promise<void> = SETTLED;

  /** Creates the connection layer; `link` sends through the transport. */
  constructor(link: ConnectionLink, options: ConnectionOptions) {
    if (typeof link?.send !== "function") {
      throw new TypeError("Invalid link: it has no send() method");
    }
    if (options?.side !== "client" && options?.side !== "server") {
      throw new TypeError(
        `Invalid side: ${
          JSON.stringify(options?.side)
        } is not "client" or "server"`,
      );
    }
    this.#link = link;
    this.#side = options.side;
    this.#windowSize = intOption(
      options.windowSize,
      DEFAULT_WINDOW,
      1,
      MAX_WINDOW,
      "window size",
    );
    this.#maxPacket = intOption(
      options.maxPacketSize,
      DEFAULT_PACKET,
      1,
      MAX_PEER_PACKET,
      "max packet size",
    );
    this.#maxChannels = intOption(
      options.maxChannels,
      DEFAULT_MAX_CHANNELS,
      1,
      1 << 20,
      "max channels",
    );
    this.#onSessionOpen = options.onSessionOpen;
    this.onGlobalRequest = options.onGlobalRequest;
    this.onChannelOpen = options.onChannelOpen;
    this.#host = new Connection.#Host(this);
  }

  /** Number of channels in the table (opening, open, or closing). */
  get channelCount(): number {
    return this.#count;
  }

  /** Whether {@linkcode Connection.close} was called. */
  get isClosed(): boolean {
    return this.#error !== null;
  }

  /**
   * What the channels call back into: an object with one field rather than
   * two closures per connection. Declared inside the class, so it can reach
   * the connection's private members.
   */
  static readonly #Host = class implements ChannelHost {
    readonly #connection: Connection;
    constructor(connection: Connection) {
      this.#connection = connection;
    }
    send(payload: Uint8Array): Promise<void> {
      return this.#connection.#send(payload);
    }
    free(channel: Channel): void {
      this.#connection.#free(channel);
    }
  };

  #send(payload: Uint8Array): Promise<void> {
    if (this.#error !== null) return Promise.reject(this.#error);
    return this.#link.send(payload);
  }

  #sendQuiet(payload: Uint8Array): void {
    this.#send(payload).catch(() => {});
  }

  #free(channel: Channel): void {
    if (this.#channels[channel.localId] !== channel) return;
    this.#channels[channel.localId] = undefined;
    this.#count--;
    while (
      this.#channels.length > 0 &&
      this.#channels[this.#channels.length - 1] === undefined
    ) this.#channels.pop();
  }

  /** Allocates the smallest free channel number, or null when at the limit. */
  #allocate(type: string): Channel | null {
    if (this.#count >= this.#maxChannels) return null;
    let id = this.#channels.indexOf(undefined);
    if (id < 0) id = this.#channels.length;
    const channel = new Channel(this.#host, id, type, this.#windowSize);
    this.#channels[id] = channel;
    this.#count++;
    return channel;
  }

  /**
   * Handles one message numbered 80..127 from the transport, in order.
   * Never waits for the application: data is queued for the channel's
   * streams (bounded by the window we granted).
   *
   * @throws {DisconnectError} PROTOCOL_ERROR for a malformed message or a
   * protocol violation (unknown channel, data beyond the window or after
   * EOF, window overflow, a second CLOSE, ...). The transport then sends the
   * DISCONNECT and calls {@linkcode Connection.close}.
   */
  dispatch(payload: Uint8Array): void {
    if (this.#error !== null) return;
    const type = payload[0];
    const name = MESSAGE_NAMES[type] ?? `message ${type}`;
    const r = new SshReader(payload, name);
    try {
      r.byte();
      this.#dispatch(type, name, r);
    } catch (e) {
      if (e instanceof DisconnectError) throw e;
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_ERROR,
        (e as Error).message,
        { cause: e },
      );
    }
  }

  #channel(r: SshReader, name: string): Channel {
    const id = r.uint32();
    const channel = this.#channels[id];
    if (channel === undefined) {
      throw protocolError(`Received ${name} for unknown channel ${id}`);
    }
    if (channel.isOpening) {
      throw protocolError(
        `Received ${name} for channel ${id} before its open was confirmed`,
      );
    }
    return channel;
  }

  #dispatch(type: number, name: string, r: SshReader): void {
    switch (type) {
      case Msg.GLOBAL_REQUEST:
        return this.#onGlobalRequestMessage(r);
      case Msg.REQUEST_SUCCESS:
        // Unsolicited replies are dropped (THREATS.md "Unsolicited replies").
        this.#pendingGlobal.shift()?.resolve(r.rest().slice());
        return;
      case Msg.REQUEST_FAILURE:
        this.#pendingGlobal.shift()?.resolve(null);
        return;
      case Msg.CHANNEL_OPEN:
        return this.#onChannelOpen(r);
      case Msg.CHANNEL_OPEN_CONFIRMATION: {
        const id = r.uint32();
        const channel = this.#channels[id];
        if (channel === undefined || !channel.isOpening) {
          throw protocolError(
            `Received ${name} for channel ${id}, which we are not opening`,
          );
        }
        const sender = r.uint32();
        const window = r.uint32();
        const maxPacket = r.uint32();
        channel.open(sender, window, maxPacket);
        return;
      }
      case Msg.CHANNEL_OPEN_FAILURE: {
        const id = r.uint32();
        const channel = this.#channels[id];
        if (channel === undefined || !channel.isOpening) {
          throw protocolError(
            `Received ${name} for channel ${id}, which we are not opening`,
          );
        }
        const reason = r.uint32();
        const description = printable(lossy.decode(r.string(MAX_NAME * 4)));
        // Remove the refused channel from the table right away.
        channel.openFailed(
          new ChannelOpenError(
            reason,
            `Cannot open ${channel.type} channel: refused by the peer (reason ${reason}${
              description ? `: ${description}` : ""
            })`,
            description,
          ),
        );
        return;
      }
      case Msg.CHANNEL_WINDOW_ADJUST: {
        const channel = this.#channel(r, name);
        const bytes = r.uint32();
        r.end();
        channel.onWindowAdjust(bytes);
        return;
      }
      case Msg.CHANNEL_DATA: {
        const channel = this.#channel(r, name);
        const data = r.string();
        r.end();
        channel.onData(data);
        return;
      }
      case Msg.CHANNEL_EXTENDED_DATA: {
        const channel = this.#channel(r, name);
        const dataType = r.uint32();
        const data = r.string();
        r.end();
        channel.onExtendedData(dataType, data);
        return;
      }
      case Msg.CHANNEL_EOF: {
        const channel = this.#channel(r, name);
        r.end();
        channel.onEof();
        return;
      }
      case Msg.CHANNEL_CLOSE: {
        const channel = this.#channel(r, name);
        r.end();
        channel.onClose();
        return;
      }
      case Msg.CHANNEL_REQUEST: {
        const channel = this.#channel(r, name);
        const requestType = r.utf8(MAX_NAME);
        const wantReply = r.boolean();
        channel.onRequest(requestType, wantReply, r);
        return;
      }
      case Msg.CHANNEL_SUCCESS:
      case Msg.CHANNEL_FAILURE: {
        const channel = this.#channel(r, name);
        r.end();
        channel.onReply(type === Msg.CHANNEL_SUCCESS);
        return;
      }
      default:
        throw protocolError(
          `Unexpected message ${type} in the connection protocol`,
        );
    }
  }

  #onGlobalRequestMessage(r: SshReader): void {
    const name = r.utf8(MAX_NAME);
    const wantReply = r.boolean();
    const data = r.rest().slice();
    const handler = this.onGlobalRequest;
    const answer = (result: boolean | Uint8Array): void => {
      if (!wantReply || this.#error !== null) return;
      if (result === false) {
        this.#sendQuiet(new Uint8Array([Msg.REQUEST_FAILURE]));
        return;
      }
      const w = new SshWriter().byte(Msg.REQUEST_SUCCESS);
      if (result instanceof Uint8Array) w.raw(result);
      this.#sendQuiet(w.bytes());
    };
    this.#globalChain = this.#globalChain.then(async () => {
      let result: boolean | Uint8Array = false;
      if (handler !== undefined) {
        try {
          const value = await handler(name, data);
          result = value instanceof Uint8Array ? value : value === true;
        } catch {
          result = false;
        }
      }
      answer(result);
    });
  }

  #onChannelOpen(r: SshReader): void {
    const type = r.utf8(MAX_NAME);
    const sender = r.uint32();
    const window = r.uint32();
    const maxPacket = r.uint32();
    const refuse = (reason: number, description: string): void => {
      this.#sendQuiet(
        new SshWriter().byte(Msg.CHANNEL_OPEN_FAILURE).uint32(sender)
          .uint32(reason).string(description).string("").bytes(),
      );
    };
    if (type !== "session") {
      this.#onOtherOpen(type, sender, window, maxPacket, r, refuse);
      return;
    }
    const onSessionOpen = this.#onSessionOpen;
    if (this.#side !== "server" || onSessionOpen === undefined) {
      refuse(
        ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED,
        "Session channels are not accepted",
      );
      return;
    }
    const channel = this.#allocate(type);
    if (channel === null) {
      refuse(
        ChannelOpenFailure.RESOURCE_SHORTAGE,
        `Too many channels (limit ${this.#maxChannels})`,
      );
      return;
    }
    channel.open(sender, window, maxPacket);
    this.#sendQuiet(
      new SshWriter(17).byte(Msg.CHANNEL_OPEN_CONFIRMATION).uint32(sender)
        .uint32(channel.localId).uint32(this.#windowSize)
        .uint32(this.#maxPacket).bytes(),
    );
    const session = new ServerSessionImpl(
      channel,
      (t, d) => this.openChannel(t, d),
    );
    try {
      onSessionOpen(session);
    } catch {
      quiet(channel.close());
    }
  }

  #onOtherOpen(
    type: string,
    sender: number,
    window: number,
    maxPacket: number,
    r: SshReader,
    refuse: (reason: number, description: string) => void,
  ): void {
    const handler = this.onChannelOpen;
    if (handler === undefined) {
      refuse(
        ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE,
        `Unsupported channel type ${printable(type)}`,
      );
      return;
    }
    let answered = false;
    const answer = (): void => {
      if (answered) {
        throw new Error(
          `Cannot answer the ${type} channel open twice`,
        );
      }
      answered = true;
    };
    const incoming: IncomingChannel = {
      type,
      data: r.rest().slice(),
      accept: (): ByteChannel => {
        answer();
        if (this.#error !== null) throw this.#error;
        const channel = this.#allocate(type);
        if (channel === null) {
          refuse(
            ChannelOpenFailure.RESOURCE_SHORTAGE,
            `Too many channels (limit ${this.#maxChannels})`,
          );
          throw new ChannelOpenError(
            ChannelOpenFailure.RESOURCE_SHORTAGE,
            `Cannot accept ${type} channel: ${this.#maxChannels} channels are already open`,
          );
        }
        channel.open(sender, window, maxPacket);
        const byteChannel = new ByteChannelImpl(channel);
        this.#sendQuiet(
          new SshWriter(17).byte(Msg.CHANNEL_OPEN_CONFIRMATION).uint32(sender)
            .uint32(channel.localId).uint32(this.#windowSize)
            .uint32(this.#maxPacket).bytes(),
        );
        return byteChannel;
      },
      reject: (reason: number, description = ""): void => {
        answer();
        if (this.#error !== null) return;
        refuse(reason, description);
      },
    };
    try {
      handler(incoming);
    } catch {
      if (!answered) {
        incoming.reject(
          ChannelOpenFailure.CONNECT_FAILED,
          `Cannot open ${printable(type)} channel`,
        );
      }
    }
  }

  /**
   * The transport ended. Fails every channel's streams, pending requests
   * and opens with `error`. Idempotent.
   */
  close(error?: Error): void {
    if (this.#error !== null) return;
    const err = error ??
      new DisconnectError(
        DisconnectReason.CONNECTION_LOST,
        "Connection closed",
      );
    this.#error = err;
    for (const channel of [...this.#channels]) channel?.fail(err);
    this.#channels = [];
    this.#count = 0;
    const pending = this.#pendingGlobal;
    this.#pendingGlobal = [];
    for (const p of pending) p.reject(err);
  }

  #open(type: string, data?: Uint8Array): Channel {
    if (this.#error !== null) throw this.#error;
    const channel = this.#allocate(type);
    if (channel === null) {
      throw new ChannelOpenError(
        ChannelOpenFailure.RESOURCE_SHORTAGE,
        `Cannot open ${type} channel: ${this.#maxChannels} channels are already open`,
      );
    }
    const w = new SshWriter(32 + (data?.length ?? 0)).byte(Msg.CHANNEL_OPEN)
      .string(type).uint32(channel.localId).uint32(this.#windowSize)
      .uint32(this.#maxPacket);
    if (data !== undefined) w.raw(data);
    this.#send(w.bytes()).catch((e) => channel.openFailed(e as Error));
    return channel;
  }

  /**
   * Opens a "session" channel (RFC 4254 section 6.1).
   *
   * @throws {ChannelOpenError} the server refused, or too many channels are open.
   */
  async openSession(): Promise<ClientSession> {
    const channel = this.#open("session");
    // Made before the confirmation arrives, so that no request or data
    // that follows it finds the session missing.
    const session = new ClientSessionImpl(channel);
    await channel.opened;
    return session;
  }

  /**
   * Opens a channel of any type other than `session` (RFC 4254 section
   * 5.1), e.g. `direct-tcpip` with its fields in `data`.
   *
   * @throws {ChannelOpenError} the peer refused, or too many channels are open.
   */
  async openChannel(type: string, data?: Uint8Array): Promise<ByteChannel> {
    if (typeof type !== "string" || type === "" || type === "session") {
      throw new TypeError(
        `Invalid channel type: ${
          JSON.stringify(type)
        } (use openSession for sessions)`,
      );
    }
    const channel = this.#open(type, data);
    const byteChannel = new ByteChannelImpl(channel);
    await channel.opened;
    return byteChannel;
  }

  /**
   * Runs `command` on a new session channel, feeds it `stdin`, and
   * collects its output and exit status.
   *
   * @throws {Error} the server refused the command (`exec request refused by server`).
   * @throws {RangeError} the output exceeded `maxOutputBytes`.
   */
  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    if (typeof command !== "string") {
      throw new TypeError(`Invalid command: ${String(command)}`);
    }
    const budget = {
      left: intOption(
        options.maxOutputBytes,
        DEFAULT_MAX_OUTPUT,
        0,
        Number.MAX_SAFE_INTEGER,
        "maxOutputBytes",
      ),
    };
    const session = await this.openSession();
    const stdout = quiet(collect(session.stdout, budget));
    const stderr = quiet(collect(session.stderr, budget));
    try {
      // env requests need no round trip each: replies come back in order.
      const envs = Object.entries(options.env ?? {}).map(([k, v]) =>
        quiet(session.setEnv(k, v))
      );
      if (options.pty) {
        await session.requestPty(options.pty === true ? {} : options.pty);
      }
      await session.exec(command);
      await Promise.allSettled(envs);
      const feed = quiet(this.#feed(session, options.stdin));
      const [out, err] = await Promise.all([stdout, stderr]);
      const status = await session.exit;
      await feed.catch(() => {});
      return { ...status, stdout: out, stderr: err };
    } catch (e) {
      await session.close();
      throw e;
    }
  }

  async #feed(
    session: ClientSession,
    stdin: ExecOptions["stdin"],
  ): Promise<void> {
    if (stdin === undefined) {
      await session.stdin.close();
      return;
    }
    if (stdin instanceof ReadableStream) {
      await stdin.pipeTo(session.stdin);
      return;
    }
    const bytes = typeof stdin === "string" ? encoder.encode(stdin) : stdin;
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError("Invalid stdin: not a string, Uint8Array or stream");
    }
    const writer = session.stdin.getWriter();
    if (bytes.length > 0) await writer.write(bytes);
    await writer.close();
  }

  /**
   * Sends a global request (RFC 4254 section 4). With `wantReply` (the
   * default) resolves with the REQUEST_SUCCESS data, or `null` on
   * REQUEST_FAILURE; without it, resolves `null` once sent.
   */
  async globalRequest(
    name: string,
    data?: Uint8Array,
    options?: {
      /** @default true */
      wantReply?: boolean;
    },
  ): Promise<Uint8Array | null> {
    if (typeof name !== "string" || name === "") {
      throw new TypeError(`Invalid global request name: ${String(name)}`);
    }
    if (this.#error !== null) throw this.#error;
    const wantReply = options?.wantReply ?? true;
    const w = new SshWriter(32 + (data?.length ?? 0)).byte(Msg.GLOBAL_REQUEST)
      .string(name).boolean(wantReply);
    if (data !== undefined) w.raw(data);
    let reply: Promise<Uint8Array | null> | undefined;
    if (wantReply) {
      reply = quiet(
        new Promise((resolve, reject) =>
          this.#pendingGlobal.push({ resolve, reject })
        ),
      );
    }
    await this.#send(w.bytes());
    return reply === undefined ? null : await reply;
  }
}
