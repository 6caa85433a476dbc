/**
 * Implementations of the session interfaces of `session.ts`, and the codecs
 * of session requests (RFC 4254 section 6). Private to `connection/`.
 *
 * @module
 */

import type { SshReader } from "../wire/reader.ts";
import { SshWriter } from "../wire/writer.ts";
import { type Channel, quiet } from "./_channel.ts";
import type { ByteChannel } from "./channel.ts";
import type {
  ClientSession,
  ExitStatus,
  PtyRequest,
  ServerSession,
  SessionRequest,
  SessionRequestHandler,
  WindowSize,
} from "./session.ts";

// Bounds for what a peer may put in session requests.
const MAX_TERM = 256;
const MAX_MODES = 4096;
const MAX_ENV_NAME = 256;
const MAX_ENV_VALUE = 32 * 1024;
const MAX_COMMAND = 256 * 1024;
const MAX_NAME = 256;
const MAX_SIGNAL = 64;
const MAX_MESSAGE = 4096;

const lossy = new TextDecoder();

/** Strips a leading `SIG` and checks the name is a plain signal name. */
function signalName(name: string, what: string): string {
  if (typeof name !== "string") {
    throw new TypeError(`Invalid ${what}: ${String(name)}`);
  }
  const bare = name.startsWith("SIG") ? name.slice(3) : name;
  if (!/^[A-Za-z0-9@._+-]{1,64}$/.test(bare)) {
    throw new TypeError(`Invalid ${what}: ${JSON.stringify(name)}`);
  }
  return bare;
}

function uint32Arg(
  value: number | undefined,
  fallback: number,
  what: string,
): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw new RangeError(`Invalid ${what}: ${v} is not a uint32`);
  }
  return v;
}

function stringArg(value: string, what: string): string {
  if (typeof value !== "string") {
    throw new TypeError(`Invalid ${what}: ${String(value)} is not a string`);
  }
  return value;
}

/** Decodes the type-specific part of a client's session request, or null when malformed or over a bound. */
export function parseSessionRequest(
  type: string,
  r: SshReader,
): SessionRequest | null {
  try {
    switch (type) {
      case "pty-req": {
        const term = r.utf8(MAX_TERM);
        const columns = r.uint32();
        const rows = r.uint32();
        const widthPixels = r.uint32();
        const heightPixels = r.uint32();
        const modes = r.string(MAX_MODES).slice();
        return {
          type,
          term,
          columns,
          rows,
          widthPixels,
          heightPixels,
          modes,
        };
      }
      case "env":
        return {
          type,
          name: r.utf8(MAX_ENV_NAME),
          value: r.utf8(MAX_ENV_VALUE),
        };
      case "exec":
        return { type, command: r.utf8(MAX_COMMAND) };
      case "shell":
        return { type };
      case "subsystem":
        return { type, name: r.utf8(MAX_NAME) };
      case "window-change":
        return {
          type,
          columns: r.uint32(),
          rows: r.uint32(),
          widthPixels: r.uint32(),
          heightPixels: r.uint32(),
        };
      case "signal":
        return { type, name: r.utf8(MAX_SIGNAL) };
      case "auth-agent-req@openssh.com":
        // No type-specific data (OpenSSH PROTOCOL.agent).
        r.end();
        return { type };
      default:
        return null;
    }
  } catch {
    return null;
  }
}

/** Encodes a `pty-req` body. */
function encodePty(options: PtyRequest): Uint8Array {
  const term = stringArg(options.term ?? "xterm-256color", "terminal type");
  let modes = options.modes ?? new Uint8Array(0);
  if (!(modes instanceof Uint8Array)) {
    throw new TypeError("Invalid terminal modes: not a Uint8Array");
  }
  if (modes.length === 0 || modes[modes.length - 1] !== 0) {
    const ended = new Uint8Array(modes.length + 1);
    ended.set(modes);
    modes = ended;
  }
  return new SshWriter(64 + modes.length).string(term)
    .uint32(uint32Arg(options.columns, 80, "column count"))
    .uint32(uint32Arg(options.rows, 24, "row count"))
    .uint32(uint32Arg(options.widthPixels, 0, "pixel width"))
    .uint32(uint32Arg(options.heightPixels, 0, "pixel height"))
    .string(modes).bytes();
}

/** The client side of a session channel. */
export class ClientSessionImpl implements ClientSession {
  readonly #channel: Channel;
  readonly stdin: WritableStream<Uint8Array>;
  readonly exit: Promise<ExitStatus>;
  #status: ExitStatus = {
    code: null,
    signal: null,
    coreDumped: false,
    message: "",
  };
  #reported = false;

  constructor(channel: Channel) {
    this.#channel = channel;
    this.stdin = channel.createWritable(0);
    channel.requestHandler = (type, body) => this.#onRequest(type, body);
    this.exit = quiet(channel.closed.then(() => {
      if (!this.#reported && channel.error !== null) throw channel.error;
      return { ...this.#status };
    }));
  }

  get stdout(): ReadableStream<Uint8Array> {
    return this.#channel.readable;
  }

  get stderr(): ReadableStream<Uint8Array> {
    return this.#channel.stderr;
  }

  #onRequest(type: string, r: SshReader): boolean {
    // RFC 4254 section 6.10; malformed ones are ignored, not fatal.
    try {
      if (type === "exit-status") {
        const code = r.uint32();
        this.#status.code = code;
        this.#reported = true;
        return true;
      }
      if (type === "exit-signal") {
        const signal = lossy.decode(r.string(MAX_SIGNAL));
        const coreDumped = r.boolean();
        const message = lossy.decode(r.string(MAX_MESSAGE));
        this.#status.signal = signal;
        this.#status.coreDumped = coreDumped;
        this.#status.message = message;
        this.#reported = true;
        return true;
      }
    } catch {
      return false;
    }
    // keepalive@openssh.com and anything unknown get CHANNEL_FAILURE.
    return false;
  }

  async #must(type: string, body?: Uint8Array): Promise<void> {
    if (!(await this.#channel.request(type, true, body))) {
      throw new Error(`${type} request refused by server`);
    }
  }

  requestPty(options: PtyRequest = {}): Promise<void> {
    return this.#must("pty-req", encodePty(options));
  }

  setEnv(name: string, value: string): Promise<boolean> {
    stringArg(name, "environment variable name");
    stringArg(value, "environment variable value");
    return this.#channel.request(
      "env",
      true,
      new SshWriter().string(name).string(value).bytes(),
    );
  }

  exec(command: string): Promise<void> {
    stringArg(command, "command");
    return this.#must("exec", new SshWriter().string(command).bytes());
  }

  shell(): Promise<void> {
    return this.#must("shell");
  }

  subsystem(name: string): Promise<void> {
    stringArg(name, "subsystem name");
    return this.#must("subsystem", new SshWriter().string(name).bytes());
  }

  requestAgentForwarding(
    options: { wantReply?: boolean } = {},
  ): Promise<boolean> {
    return this.#channel.request(
      "auth-agent-req@openssh.com",
      options.wantReply === true,
    );
  }

  async windowChange(size: WindowSize): Promise<void> {
    const body = new SshWriter(16)
      .uint32(uint32Arg(size.columns, 80, "column count"))
      .uint32(uint32Arg(size.rows, 24, "row count"))
      .uint32(uint32Arg(size.widthPixels, 0, "pixel width"))
      .uint32(uint32Arg(size.heightPixels, 0, "pixel height")).bytes();
    await this.#channel.request("window-change", false, body);
  }

  async signal(name: string): Promise<void> {
    const bare = signalName(name, "signal name");
    await this.#channel.request(
      "signal",
      false,
      new SshWriter().string(bare).bytes(),
    );
  }

  close(): Promise<void> {
    return this.#channel.close();
  }
}

/** Opens a non-session channel on the connection a session belongs to. */
export type ChannelOpener = (
  type: string,
  data?: Uint8Array,
) => Promise<ByteChannel>;

/** The server side of a session channel. */
export class ServerSessionImpl implements ServerSession {
  readonly #channel: Channel;
  readonly #opener: ChannelOpener;
  onRequest: SessionRequestHandler | null = null;
  // Built on first use: an idle session (no command yet, or one that
  // never writes to stderr) should not pay for two streams.
  readonly #stdout: () => WritableStream<Uint8Array>;
  readonly #stderr: () => WritableStream<Uint8Array>;
  #started = false;

  constructor(channel: Channel, opener: ChannelOpener) {
    this.#channel = channel;
    this.#opener = opener;
    this.#stdout = channel.lazyWritable(0);
    this.#stderr = channel.lazyWritable(1);
    channel.requestHandler = (type, body) => this.#onRequest(type, body);
  }

  get stdout(): WritableStream<Uint8Array> {
    return this.#stdout();
  }

  get stderr(): WritableStream<Uint8Array> {
    return this.#stderr();
  }

  get channelId(): number {
    return this.#channel.localId;
  }

  get stdin(): ReadableStream<Uint8Array> {
    return this.#channel.readable;
  }

  get closed(): Promise<void> {
    return this.#channel.closed;
  }

  get isClosed(): boolean {
    return this.#channel.closing || this.#channel.closeReceived;
  }

  #onRequest(type: string, r: SshReader): boolean | Promise<boolean> {
    const handler = this.onRequest;
    if (handler === null) return false;
    const request = parseSessionRequest(type, r);
    if (request === null) return false;
    const exclusive = type === "exec" || type === "shell" ||
      type === "subsystem";
    // Only one of exec/shell/subsystem may succeed per channel (RFC 4254
    // section 6.5).
    if (exclusive && this.#started) return false;
    const result = handler(request);
    if (!exclusive) return result;
    const mark = (ok: boolean): boolean => {
      if (ok === true) this.#started = true;
      return ok === true;
    };
    return result instanceof Promise ? result.then(mark) : mark(result);
  }

  exit(code: number): Promise<void> {
    const c = uint32Arg(code, 0, "exit code");
    return this.#channel.finishWith(
      "exit-status",
      new SshWriter(4).uint32(c).bytes(),
    );
  }

  exitSignal(
    signal: string,
    options: { coreDumped?: boolean; message?: string } = {},
  ): Promise<void> {
    const bare = signalName(signal, "signal name");
    const message = stringArg(options.message ?? "", "exit message");
    return this.#channel.finishWith(
      "exit-signal",
      new SshWriter().string(bare).boolean(options.coreDumped === true)
        .string(message).string("").bytes(),
    );
  }

  close(): Promise<void> {
    return this.#channel.close();
  }

  openChannel(type: string, data?: Uint8Array): Promise<ByteChannel> {
    return this.#opener(type, data);
  }
}
