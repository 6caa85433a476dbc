/**
 * A WebSocket client (RFC 6455) over any `Deno.Conn`: TCP, TLS, or a
 * tunnel through an HTTP proxy. We speak the protocol ourselves instead of
 * using the runtime's `WebSocket` because the tunnel needs what that API
 * hides: the HTTP status and `Retry-After` of a refused upgrade (401, 429,
 * 503), custom headers on the upgrade, and a connection that starts as an
 * HTTP CONNECT through a proxy.
 *
 * Binary messages are bytes of the stream the caller runs (SSH, or a relay);
 * text messages go to a callback (the tunnel's JSON control messages).
 *
 * @module
 */
import { encodeBase64 } from "../keys/_util.ts";
import { type ProxyChoice, proxyFor } from "./_client_proxy.ts";

/** Bytes of a response head we read at most (status line + headers). */
const MAX_HEAD = 16 * 1024;
/** Bytes of an error body we read at most, for the message. */
const MAX_ERROR_BODY = 4096;
/** RFC 6455 section 1.3: the GUID appended to the key. */
const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Options for {@linkcode dialWebSocket}. */
export interface WsDialOptions {
  /** Extra request headers (`Authorization`, corporate headers). */
  headers?: Record<string, string>;
  /**
   * Proxy URL (`http://user:pass@proxy:3128`), `null` for none, or
   * undefined to read `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the
   * environment.
   */
  proxy?: string | null;
  /** Extra trusted CA certificates (PEM) for `wss:`. */
  caCerts?: string[];
  /** Milliseconds for TCP, proxy, TLS and the upgrade together. */
  timeout?: number;
  /** Aborts dialling. */
  signal?: AbortSignal;
  /**
   * Largest message accepted from the server, in bytes; a larger one
   * closes the socket with 1009.
   * @default {4194304}
   */
  maxMessageSize?: number;
}

/** The server refused the upgrade with an HTTP status. */
export class WsHandshakeError extends Error {
  /** HTTP status (0 when the response was not HTTP). */
  readonly status: number;
  /** Seconds from `Retry-After`, when the server sent one. */
  readonly retryAfter: number | undefined;
  /** Creates the error. */
  constructor(message: string, status: number, retryAfter?: number) {
    super(message);
    this.name = "WsHandshakeError";
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/** How a WebSocket ended. */
export interface WsCloseInfo {
  /** Close code (1006 when the connection dropped without a close frame). */
  code: number;
  /** Close reason text. */
  reason: string;
  /** Whether we ended it (close() or drop()) rather than the server. */
  local: boolean;
}

/** An open WebSocket. */
export interface WsSocket {
  /** Payloads of binary messages, as they arrive. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Each write is sent as one binary message; closing sends close 1000. */
  readonly writable: WritableStream<Uint8Array>;
  /** Called with each text message. */
  onText: ((text: string) => void) | null;
  /** Sends a text message. */
  sendText(text: string): Promise<void>;
  /** Sends a close frame and closes (waits briefly for the server's). */
  close(code?: number, reason?: string): Promise<void>;
  /** Drops the connection at once, without a close frame. */
  drop(): void;
  /** Resolves once the connection is gone. */
  readonly closed: Promise<WsCloseInfo>;
  /** The URL dialled. */
  readonly url: URL;
  /** The proxy used, if any. */
  readonly proxy: string | null;
}

/** Reads from a connection with a buffer: lines for HTTP, exact counts for frames. */
class ConnReader {
  #conn: Deno.Conn;
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Bytes buffered but not consumed. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  async #fill(): Promise<boolean> {
    if (this.#start > 0 && this.#start === this.#end) {
      this.#start = this.#end = 0;
    }
    if (this.#end === this.#buf.length) {
      // Compact (what remains is less than a whole buffer).
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    const n = await this.#conn.read(this.#buf.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    return true;
  }

  /** Reads the HTTP head up to the blank line (bounded). */
  async readHead(): Promise<string> {
    for (;;) {
      const view = this.#buf.subarray(this.#start, this.#end);
      for (let i = 3; i < view.length; i++) {
        if (
          view[i] === 10 && view[i - 1] === 13 && view[i - 2] === 10 &&
          view[i - 3] === 13
        ) {
          const head = new TextDecoder().decode(view.subarray(0, i - 3));
          this.#start += i + 1;
          return head;
        }
      }
      if (view.length >= MAX_HEAD) {
        throw new WsHandshakeError(
          `Response head longer than ${MAX_HEAD} bytes`,
          0,
        );
      }
      if (!(await this.#fill())) {
        throw new WsHandshakeError(
          "Connection closed before the HTTP response was complete",
          0,
        );
      }
    }
  }

  /** Reads exactly `n` bytes (a copy), or null at a clean end of stream. */
  async readExact(n: number): Promise<Uint8Array | null> {
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      if (this.#start === this.#end) {
        if (!(await this.#fill())) {
          if (got === 0) return null;
          throw new Error("Connection closed in the middle of a frame");
        }
      }
      const take = Math.min(n - got, this.#end - this.#start);
      out.set(this.#buf.subarray(this.#start, this.#start + take), got);
      this.#start += take;
      got += take;
    }
    return out;
  }

  /** Reads up to `max` bytes, whatever arrives before end of stream. */
  async readUpTo(max: number): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let total = 0;
    while (total < max) {
      if (this.#start === this.#end && !(await this.#fill())) break;
      const take = Math.min(max - total, this.#end - this.#start);
      parts.push(this.#buf.slice(this.#start, this.#start + take));
      this.#start += take;
      total += take;
    }
    const out = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

/** A parsed HTTP response head. */
export interface HttpHead {
  /** Status code. */
  status: number;
  /** Reason phrase. */
  statusText: string;
  /** Headers, lower-cased names (repeated ones joined with ", "). */
  headers: Map<string, string>;
}

/** Parses an HTTP/1.x response head. */
export function parseHead(head: string): HttpHead {
  const lines = head.split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]);
  if (m === null) {
    throw new WsHandshakeError(
      `Not an HTTP response: ${JSON.stringify(lines[0].slice(0, 80))}`,
      0,
    );
  }
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const prev = headers.get(name);
    headers.set(name, prev === undefined ? value : `${prev}, ${value}`);
  }
  return { status: Number(m[1]), statusText: m[2] ?? "", headers };
}

/** `Retry-After` as seconds (delta-seconds or an HTTP date). */
export function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/** Rejects header names and values that would split the request. */
export function checkHeader(name: string, value: string): void {
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) {
    throw new TypeError(`Invalid header name: ${JSON.stringify(name)}`);
  }
  if (/[\r\n\0]/.test(value)) {
    throw new TypeError(`Invalid value for header ${name}: contains CR/LF/NUL`);
  }
}

function hostHeader(url: URL): string {
  return url.host; // includes a non-default port
}

function defaultPort(url: URL): number {
  if (url.port !== "") return Number(url.port);
  return url.protocol === "wss:" || url.protocol === "https:" ? 443 : 80;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let o = 0; o < data.length;) o += await conn.write(data.subarray(o));
}

/** Races `p` against `signal`; on abort closes `conn` so `p` ends too. */
function abortable<T>(
  p: Promise<T>,
  signal: AbortSignal,
  onAbort: () => void,
): Promise<T> {
  if (signal.aborted) {
    onAbort();
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const listener = () => {
      onAbort();
      reject(signal.reason);
    };
    signal.addEventListener("abort", listener, { once: true });
    p.then(resolve, reject).finally(() =>
      signal.removeEventListener("abort", listener)
    );
  });
}

/**
 * Opens a TCP connection to `host:port`, through `proxy` with HTTP CONNECT
 * when given (credentials from the proxy URL go in
 * `Proxy-Authorization: Basic`).
 */
export async function openStream(
  host: string,
  port: number,
  proxy: URL | null,
  signal: AbortSignal,
): Promise<Deno.Conn> {
  const hostname = host.replace(/^\[(.*)\]$/, "$1");
  if (proxy === null) {
    const conn = await Deno.connect({ hostname, port, signal });
    conn.setNoDelay(true);
    return conn;
  }
  const conn = await Deno.connect({
    hostname: proxy.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: proxy.port === "" ? (proxy.protocol === "https:" ? 443 : 80) : Number(
      proxy.port,
    ),
    signal,
  });
  conn.setNoDelay(true);
  try {
    return await abortable(
      (async () => {
        const authority = hostname.includes(":")
          ? `[${hostname}]:${port}`
          : `${hostname}:${port}`;
        let request = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`;
        if (proxy.username !== "" || proxy.password !== "") {
          const credentials = `${decodeURIComponent(proxy.username)}:${
            decodeURIComponent(proxy.password)
          }`;
          request += `Proxy-Authorization: Basic ${
            encodeBase64(new TextEncoder().encode(credentials))
          }\r\n`;
        }
        request += "\r\n";
        await writeAll(conn, new TextEncoder().encode(request));
        const reader = new ConnReader(conn);
        const head = parseHead(await reader.readHead());
        if (head.status !== 200) {
          throw new WsHandshakeError(
            `Proxy ${proxy.host} refused CONNECT to ${authority}: ${head.status} ${head.statusText}`,
            head.status,
            parseRetryAfter(head.headers.get("retry-after")),
          );
        }
        if (reader.buffered > 0) {
          throw new WsHandshakeError(
            `Proxy ${proxy.host} sent data before the tunnel was used`,
            0,
          );
        }
        return conn;
      })(),
      signal,
      () => conn.close(),
    );
  } catch (e) {
    try {
      conn.close();
    } catch {
      // Closed by the abort.
    }
    throw e;
  }
}

/**
 * Dials a `ws:` or `wss:` URL and performs the upgrade. Rejects with
 * {@linkcode WsHandshakeError} when the server answers with another status
 * than 101 (the message carries the `error` of a JSON body), and with the
 * network error when the server cannot be reached.
 */
export async function dialWebSocket(
  url: URL,
  options: WsDialOptions = {},
): Promise<WsSocket> {
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new TypeError(
      `Invalid tunnel URL ${url.href}: expected ws:// or wss://`,
    );
  }
  const headers = options.headers ?? {};
  for (const [k, v] of Object.entries(headers)) checkHeader(k, v);
  const choice: ProxyChoice = options.proxy === undefined
    ? proxyFor(url, Deno.env.toObject())
    : options.proxy === null
    ? null
    : new URL(options.proxy);
  const controller = new AbortController();
  const timeout = options.timeout ?? 30_000;
  const timer = timeout > 0
    ? setTimeout(
      () =>
        controller.abort(
          new Deno.errors.TimedOut(
            `Connecting to ${url.host} timed out after ${timeout} ms`,
          ),
        ),
      timeout,
    )
    : undefined;
  const onAbort = () => controller.abort(options.signal?.reason);
  if (options.signal?.aborted) onAbort();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  let conn: Deno.Conn | null = null;
  try {
    const port = defaultPort(url);
    conn = await openStream(url.hostname, port, choice, controller.signal);
    if (url.protocol === "wss:") {
      const plain = conn;
      conn = await abortable(
        Deno.startTls(plain as Deno.TcpConn, {
          hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
          caCerts: options.caCerts,
        }),
        controller.signal,
        () => plain.close(),
      );
    }
    const c = conn;
    const { reader, head } = await abortable(
      handshake(c, url, headers),
      controller.signal,
      () => c.close(),
    );
    return new Socket(
      c,
      reader,
      url,
      choice?.host ?? null,
      options.maxMessageSize ?? 4 * 1024 * 1024,
      head,
    );
  } catch (e) {
    if (conn !== null) {
      try {
        conn.close();
      } catch {
        // Closed by the abort.
      }
    }
    throw e;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

async function handshake(
  conn: Deno.Conn,
  url: URL,
  headers: Record<string, string>,
): Promise<{ reader: ConnReader; head: HttpHead }> {
  const key = encodeBase64(crypto.getRandomValues(new Uint8Array(16)));
  const lines = [
    `GET ${url.pathname}${url.search} HTTP/1.1`,
    `Host: ${hostHeader(url)}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    "Sec-WebSocket-Version: 13",
  ];
  const reserved = new Set([
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
  ]);
  let userAgent = false;
  for (const [k, v] of Object.entries(headers)) {
    if (reserved.has(k.toLowerCase())) continue;
    if (k.toLowerCase() === "user-agent") userAgent = true;
    lines.push(`${k}: ${v}`);
  }
  if (!userAgent) lines.push("User-Agent: fynx-tunnel/0.1");
  await writeAll(
    conn,
    new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"),
  );
  const reader = new ConnReader(conn);
  const head = parseHead(await reader.readHead());
  if (head.status !== 101) {
    const length = Number(head.headers.get("content-length") ?? "0");
    let detail = "";
    if (Number.isSafeInteger(length) && length > 0) {
      const body = await reader.readUpTo(Math.min(length, MAX_ERROR_BODY));
      const text = new TextDecoder().decode(body).trim();
      try {
        const json = JSON.parse(text);
        detail = typeof json?.error === "string" ? json.error : text;
      } catch {
        detail = text;
      }
    }
    // Server text goes to a terminal: no control characters.
    // deno-lint-ignore no-control-regex
    detail = detail.replace(/[\x00-\x1f\x7f]+/g, " ").trim().slice(0, 300);
    throw new WsHandshakeError(
      `${url.host} refused the WebSocket upgrade: ${head.status} ${head.statusText}${
        detail ? `: ${detail}` : ""
      }`,
      head.status,
      parseRetryAfter(head.headers.get("retry-after")),
    );
  }
  if ((head.headers.get("upgrade") ?? "").toLowerCase() !== "websocket") {
    throw new WsHandshakeError("101 response without Upgrade: websocket", 101);
  }
  const expected = encodeBase64(
    new Uint8Array(
      await crypto.subtle.digest(
        "SHA-1",
        new TextEncoder().encode(key + WS_GUID),
      ),
    ),
  );
  if (head.headers.get("sec-websocket-accept") !== expected) {
    throw new WsHandshakeError(
      "101 response with a wrong Sec-WebSocket-Accept",
      101,
    );
  }
  return { reader, head };
}

const OP_CONT = 0;
const OP_TEXT = 1;
const OP_BINARY = 2;
const OP_CLOSE = 8;
const OP_PING = 9;
const OP_PONG = 10;

/** Encodes one masked frame (RFC 6455 section 5.2; clients always mask). */
function encodeFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const extra = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const out = new Uint8Array(2 + extra + 4 + n);
  out[0] = 0x80 | opcode;
  if (extra === 0) out[1] = 0x80 | n;
  else if (extra === 2) {
    out[1] = 0x80 | 126;
    out[2] = n >>> 8;
    out[3] = n & 0xff;
  } else {
    out[1] = 0x80 | 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(n));
  }
  const maskAt = 2 + extra;
  const mask = crypto.getRandomValues(new Uint8Array(4));
  out.set(mask, maskAt);
  const body = maskAt + 4;
  for (let i = 0; i < n; i++) out[body + i] = payload[i] ^ mask[i & 3];
  return out;
}

class WsProtocolError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

class Socket implements WsSocket {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  onText: ((text: string) => void) | null = null;
  readonly url: URL;
  readonly proxy: string | null;
  readonly closed: Promise<WsCloseInfo>;
  #conn: Deno.Conn;
  #reader: ConnReader;
  #max: number;
  #writing: Promise<void> = Promise.resolve();
  #sentClose = false;
  #gone = false;
  #resolveClosed!: (info: WsCloseInfo) => void;
  #closeInfo: WsCloseInfo | null = null;
  #peerClosed = Promise.withResolvers<void>();
  #rc!: ReadableStreamDefaultController<Uint8Array>;
  #pull: (() => void) | null = null;

  constructor(
    conn: Deno.Conn,
    reader: ConnReader,
    url: URL,
    proxy: string | null,
    max: number,
    _head: HttpHead,
  ) {
    this.#conn = conn;
    this.#reader = reader;
    this.url = url;
    this.proxy = proxy;
    this.#max = max;
    this.closed = new Promise((r) => this.#resolveClosed = r);
    this.readable = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.#rc = c;
      },
      pull: () => {
        const p = this.#pull;
        this.#pull = null;
        p?.();
      },
      cancel: () => {
        this.close(1000, "").catch(() => {});
      },
    }, { highWaterMark: 4 });
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => this.#send(OP_BINARY, chunk),
      close: () => this.close(1000, ""),
      abort: () => this.drop(),
    });
    this.#readLoop();
  }

  #send(opcode: number, payload: Uint8Array): Promise<void> {
    if (this.#gone || (this.#sentClose && opcode !== OP_CLOSE)) {
      return Promise.reject(new Error("WebSocket is closed"));
    }
    const frame = encodeFrame(opcode, payload);
    const p = this.#writing.then(() => writeAll(this.#conn, frame));
    this.#writing = p.catch(() => {});
    return p;
  }

  sendText(text: string): Promise<void> {
    return this.#send(OP_TEXT, new TextEncoder().encode(text));
  }

  async close(code = 1000, reason = ""): Promise<void> {
    if (!this.#gone && !this.#sentClose) {
      this.#sentClose = true;
      const r = new TextEncoder().encode(reason).subarray(0, 123);
      const payload = new Uint8Array(2 + r.length);
      payload[0] = code >>> 8;
      payload[1] = code & 0xff;
      payload.set(r, 2);
      try {
        await this.#send(OP_CLOSE, payload);
        // RFC 6455 section 7.1.1: the server closes TCP after its close
        // frame; give it a moment, then close ourselves.
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          this.#peerClosed.promise,
          new Promise((r) => timer = setTimeout(r, 1000)),
        ]);
        clearTimeout(timer);
      } catch {
        // The connection is gone already.
      }
      this.#finish({ code, reason, local: true });
    }
    await this.closed;
  }

  drop(): void {
    this.#finish({ code: 1006, reason: "dropped", local: true });
  }

  #finish(info: WsCloseInfo, error?: Error): void {
    this.#closeInfo ??= info;
    if (this.#gone) return;
    this.#gone = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    try {
      if (error) this.#rc.error(error);
      else this.#rc.close();
    } catch {
      // Already closed or canceled.
    }
    const p = this.#pull;
    this.#pull = null;
    p?.();
    this.#peerClosed.resolve();
    this.#resolveClosed(this.#closeInfo);
  }

  async #readLoop(): Promise<void> {
    let fragments: Uint8Array[] = [];
    let fragmentBytes = 0;
    let fragmentOp = -1;
    try {
      for (;;) {
        const h = await this.#reader.readExact(2);
        if (h === null) break;
        const fin = (h[0] & 0x80) !== 0;
        if ((h[0] & 0x70) !== 0) {
          throw new WsProtocolError(1002, "Frame with reserved bits set");
        }
        const opcode = h[0] & 0x0f;
        if ((h[1] & 0x80) !== 0) {
          // RFC 6455 section 5.1: a client closes on a masked frame.
          throw new WsProtocolError(1002, "Masked frame from the server");
        }
        let length = h[1] & 0x7f;
        if (length === 126) {
          const e = (await this.#reader.readExact(2))!;
          length = (e[0] << 8) | e[1];
        } else if (length === 127) {
          const e = (await this.#reader.readExact(8))!;
          const big = new DataView(e.buffer).getBigUint64(0);
          length = big > BigInt(this.#max) ? this.#max + 1 : Number(big);
        }
        if (opcode >= 8) {
          if (length > 125 || !fin) {
            throw new WsProtocolError(1002, "Invalid control frame");
          }
        } else if (fragmentBytes + length > this.#max) {
          throw new WsProtocolError(
            1009,
            `Message larger than ${this.#max} bytes`,
          );
        }
        const payload = length === 0
          ? new Uint8Array(0)
          : (await this.#reader.readExact(length))!;
        if (payload === null) break;
        switch (opcode) {
          case OP_PING:
            this.#send(OP_PONG, payload).catch(() => {});
            continue;
          case OP_PONG:
            continue;
          case OP_CLOSE: {
            const code = payload.length >= 2
              ? (payload[0] << 8) | payload[1]
              : 1005;
            const reason = new TextDecoder().decode(payload.subarray(2));
            this.#closeInfo ??= { code, reason, local: this.#sentClose };
            if (!this.#sentClose) {
              this.#sentClose = true;
              await this.#send(OP_CLOSE, payload.subarray(0, 2)).catch(
                () => {},
              );
            }
            this.#finish({ code, reason, local: false });
            return;
          }
          case OP_TEXT:
          case OP_BINARY:
            if (fragmentOp !== -1) {
              throw new WsProtocolError(1002, "Expected a continuation frame");
            }
            if (!fin) {
              fragmentOp = opcode;
              fragments = [payload];
              fragmentBytes = payload.length;
              continue;
            }
            await this.#deliver(opcode, payload);
            continue;
          case OP_CONT: {
            if (fragmentOp === -1) {
              throw new WsProtocolError(1002, "Unexpected continuation frame");
            }
            fragments.push(payload);
            fragmentBytes += payload.length;
            if (!fin) continue;
            const whole = new Uint8Array(fragmentBytes);
            let o = 0;
            for (const f of fragments) {
              whole.set(f, o);
              o += f.length;
            }
            const op = fragmentOp;
            fragmentOp = -1;
            fragments = [];
            fragmentBytes = 0;
            await this.#deliver(op, whole);
            continue;
          }
          default:
            throw new WsProtocolError(1002, `Unknown opcode ${opcode}`);
        }
      }
      this.#finish({ code: 1006, reason: "connection closed", local: false });
    } catch (e) {
      if (e instanceof WsProtocolError) {
        if (!this.#sentClose && !this.#gone) {
          this.#sentClose = true;
          const r = new TextEncoder().encode(e.message).subarray(0, 120);
          const payload = new Uint8Array(2 + r.length);
          payload[0] = e.code >>> 8;
          payload[1] = e.code & 0xff;
          payload.set(r, 2);
          await this.#send(OP_CLOSE, payload).catch(() => {});
        }
        this.#finish({ code: e.code, reason: e.message, local: true }, e);
        return;
      }
      this.#finish({
        code: 1006,
        reason: (e as Error).message ?? String(e),
        local: false,
      });
    }
  }

  async #deliver(opcode: number, payload: Uint8Array): Promise<void> {
    if (opcode === OP_TEXT) {
      let text: string;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(payload);
      } catch {
        throw new WsProtocolError(1007, "Text message is not UTF-8");
      }
      this.onText?.(text);
      return;
    }
    if (this.#gone) return;
    try {
      this.#rc.enqueue(payload);
    } catch {
      return; // The reader canceled.
    }
    // Backpressure: stop reading the socket while the consumer is behind.
    if ((this.#rc.desiredSize ?? 1) <= 0) {
      await new Promise<void>((r) => this.#pull = r);
    }
  }
}
