/**
 * Plain HTTP/1.1 (RFC 9112) and WebSocket framing (RFC 6455) over one SSH
 * channel: the server writes each public request to a `forwarded-tcpip`
 * channel as HTTP/1.1 text and parses the client's local service's answer.
 * Everything is streamed: bodies are never collected whole, and every
 * length from the peer is bounded before use.
 *
 * @module
 */

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** Hop-by-hop headers (RFC 9110 section 7.6.1) never forwarded as such. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Reads a byte stream with a small look-ahead buffer. */
export class BufReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #buf: Uint8Array = new Uint8Array(0);
  #eof = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** Reads one more chunk into the buffer; false at EOF. */
  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const { value, done } = await this.#reader.read();
    if (done) {
      this.#eof = true;
      return false;
    }
    if (this.#buf.length === 0) {
      this.#buf = value;
    } else {
      const next = new Uint8Array(this.#buf.length + value.length);
      next.set(this.#buf);
      next.set(value, this.#buf.length);
      this.#buf = next;
    }
    return true;
  }

  /**
   * Reads up to and including the first CRLF CRLF (the end of a message
   * head); null at EOF before any byte.
   *
   * @throws {RangeError} the head is longer than `max`.
   * @throws {SyntaxError} the stream ended inside the head.
   */
  async readHead(max: number): Promise<string | null> {
    let from = 0;
    while (true) {
      const end = indexOfCrlfCrlf(this.#buf, from);
      if (end >= 0) {
        const head = latin1.decode(this.#buf.subarray(0, end));
        this.#buf = this.#buf.subarray(end + 4);
        return head;
      }
      if (this.#buf.length > max) {
        throw new RangeError(`Response head longer than ${max} bytes`);
      }
      from = Math.max(0, this.#buf.length - 3);
      if (!await this.#fill()) {
        if (this.#buf.length === 0) return null;
        throw new SyntaxError("Connection closed inside the response head");
      }
    }
  }

  /** Reads one CRLF-terminated line (without the CRLF). */
  async readLine(max: number): Promise<string> {
    let from = 0;
    while (true) {
      for (let i = from; i + 1 < this.#buf.length; i++) {
        if (this.#buf[i] === 13 && this.#buf[i + 1] === 10) {
          const line = latin1.decode(this.#buf.subarray(0, i));
          this.#buf = this.#buf.subarray(i + 2);
          return line;
        }
      }
      if (this.#buf.length > max) {
        throw new RangeError(`Line longer than ${max} bytes`);
      }
      from = Math.max(0, this.#buf.length - 1);
      if (!await this.#fill()) {
        throw new SyntaxError("Connection closed inside a line");
      }
    }
  }

  /** Up to `max` bytes (what is buffered, or one read); null at EOF. */
  async readSome(max: number): Promise<Uint8Array | null> {
    if (this.#buf.length === 0 && !await this.#fill()) return null;
    const n = Math.min(max, this.#buf.length);
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  /** Exactly `n` bytes. @throws {SyntaxError} at EOF first. */
  async readExact(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) {
      if (!await this.#fill()) {
        throw new SyntaxError(`Connection closed ${n} bytes into a frame`);
      }
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  /** Stops reading. */
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}

function indexOfCrlfCrlf(buf: Uint8Array, from: number): number {
  for (let i = from; i + 3 < buf.length; i++) {
    if (
      buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 &&
      buf[i + 3] === 10
    ) return i;
  }
  return -1;
}

/** A parsed response head. */
export interface ResponseHead {
  status: number;
  statusText: string;
  headers: [string, string][];
}

/** Parses an HTTP/1.x status line and header fields. */
export function parseResponseHead(head: string): ResponseHead {
  const lines = head.split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]);
  if (!m) {
    throw new SyntaxError(
      `Malformed status line from the tunnel: ${
        JSON.stringify(lines[0].slice(0, 80))
      }`,
    );
  }
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0 || /[\s]/.test(line.slice(0, colon))) {
      throw new SyntaxError(
        `Malformed header line from the tunnel: ${
          JSON.stringify(line.slice(0, 80))
        }`,
      );
    }
    headers.push([
      line.slice(0, colon).toLowerCase(),
      line.slice(colon + 1).trim(),
    ]);
  }
  return { status: Number(m[1]), statusText: m[2] ?? "", headers };
}

/** Encodes a request head (method, target, header lines). */
export function encodeRequestHead(
  method: string,
  target: string,
  headers: Iterable<[string, string]>,
): Uint8Array {
  let text = `${method} ${target} HTTP/1.1\r\n`;
  for (const [k, v] of headers) {
    // Header values come from a parsed Request: no CR/LF can be in them.
    text += `${k}: ${v}\r\n`;
  }
  return encoder.encode(text + "\r\n");
}

/** Frames a body chunk for `Transfer-Encoding: chunked`. */
export function encodeChunk(chunk: Uint8Array): Uint8Array {
  const head = encoder.encode(chunk.length.toString(16) + "\r\n");
  const out = new Uint8Array(head.length + chunk.length + 2);
  out.set(head);
  out.set(chunk, head.length);
  out.set([13, 10], head.length + chunk.length);
  return out;
}

/** The last chunk of a chunked body (no trailers). */
export const LAST_CHUNK: Uint8Array = encoder.encode("0\r\n\r\n");

/**
 * A response body as a stream, framed as the head says: chunked,
 * Content-Length, or until EOF. `onDone` runs once when it ends, fails or
 * is cancelled.
 */
export function bodyStream(
  reader: BufReader,
  head: ResponseHead,
  onDone: (error?: Error) => void,
): ReadableStream<Uint8Array> {
  const get = (name: string) => head.headers.find(([k]) => k === name)?.[1];
  const te = get("transfer-encoding")?.toLowerCase();
  const cl = get("content-length");
  let mode: "chunked" | "length" | "eof";
  let remaining = 0;
  if (
    te !== undefined && te.split(",").map((s) => s.trim()).includes("chunked")
  ) {
    mode = "chunked";
  } else if (cl !== undefined) {
    if (!/^\d{1,15}$/.test(cl)) {
      throw new SyntaxError(`Malformed Content-Length from the tunnel: ${cl}`);
    }
    mode = "length";
    remaining = Number(cl);
  } else {
    mode = "eof";
  }
  let chunkLeft = 0;
  let finished = false;
  const done = (error?: Error) => {
    if (finished) return;
    finished = true;
    onDone(error);
  };
  const MAX = 64 * 1024;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        if (mode === "length") {
          if (remaining === 0) {
            controller.close();
            return done();
          }
          const data = await reader.readSome(Math.min(remaining, MAX));
          if (data === null) {
            throw new SyntaxError(
              `Tunnel response ended ${remaining} bytes short of its Content-Length`,
            );
          }
          remaining -= data.length;
          controller.enqueue(data.slice());
          return;
        }
        if (mode === "eof") {
          const data = await reader.readSome(MAX);
          if (data === null) {
            controller.close();
            return done();
          }
          controller.enqueue(data.slice());
          return;
        }
        // Chunked (RFC 9112 section 7.1).
        if (chunkLeft === 0) {
          const line = await reader.readLine(4096);
          const size = /^([0-9a-fA-F]{1,12})(?:;.*)?$/.exec(line.trim());
          if (!size) {
            throw new SyntaxError(
              `Malformed chunk size from the tunnel: ${
                JSON.stringify(line.slice(0, 40))
              }`,
            );
          }
          chunkLeft = parseInt(size[1], 16);
          if (chunkLeft === 0) {
            // Trailers, up to the empty line; dropped.
            for (let i = 0; i < 100; i++) {
              if (await reader.readLine(8192) === "") break;
            }
            controller.close();
            return done();
          }
        }
        const data = await reader.readSome(Math.min(chunkLeft, MAX));
        if (data === null) {
          throw new SyntaxError("Tunnel response ended inside a chunk");
        }
        chunkLeft -= data.length;
        if (chunkLeft === 0) {
          const crlf = await reader.readLine(2);
          if (crlf !== "") {
            throw new SyntaxError("Malformed chunk end from the tunnel");
          }
        }
        controller.enqueue(data.slice());
      } catch (e) {
        controller.error(e);
        done(e as Error);
      }
    },
    async cancel() {
      done(new Error("Response body cancelled"));
      await reader.cancel();
    },
  }, { highWaterMark: 0 });
}

/** WebSocket opcodes (RFC 6455 section 5.2). */
export const Op = {
  CONT: 0,
  TEXT: 1,
  BINARY: 2,
  CLOSE: 8,
  PING: 9,
  PONG: 10,
} as const;

/** Encodes one frame; client frames are masked (RFC 6455 section 5.3). */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array,
  mask: boolean,
): Uint8Array {
  const n = payload.length;
  const lenBytes = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const head = 2 + lenBytes + (mask ? 4 : 0);
  const out = new Uint8Array(head + n);
  out[0] = 0x80 | opcode;
  out[1] = (mask ? 0x80 : 0) | (n < 126 ? n : n < 65536 ? 126 : 127);
  const view = new DataView(out.buffer);
  if (lenBytes === 2) view.setUint16(2, n);
  if (lenBytes === 8) view.setBigUint64(2, BigInt(n));
  if (mask) {
    const key = crypto.getRandomValues(new Uint8Array(4));
    out.set(key, 2 + lenBytes);
    for (let i = 0; i < n; i++) out[head + i] = payload[i] ^ key[i & 3];
  } else {
    out.set(payload, head);
  }
  return out;
}

/** One parsed frame. */
export interface Frame {
  fin: boolean;
  opcode: number;
  payload: Uint8Array;
}

/**
 * Reads one frame; null at a clean EOF between frames.
 *
 * @throws {RangeError} the payload is longer than `max`.
 */
export async function readFrame(
  reader: BufReader,
  max: number,
): Promise<Frame | null> {
  const first = await reader.readSome(1);
  if (first === null) return null;
  const b0 = first[0];
  const b1 = (await reader.readExact(1))[0];
  let len = b1 & 0x7f;
  if (len === 126) {
    const b = await reader.readExact(2);
    len = (b[0] << 8) | b[1];
  } else if (len === 127) {
    const b = await reader.readExact(8);
    const big = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0);
    if (big > BigInt(max)) {
      throw new RangeError(`WebSocket frame of ${big} bytes exceeds ${max}`);
    }
    len = Number(big);
  }
  if (len > max) {
    throw new RangeError(`WebSocket frame of ${len} bytes exceeds ${max}`);
  }
  const key = b1 & 0x80 ? await reader.readExact(4) : null;
  const payload = len === 0 ? new Uint8Array(0) : await reader.readExact(len);
  if (key) { for (let i = 0; i < len; i++) payload[i] ^= key[i & 3]; }
  return { fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload };
}

/** The `Sec-WebSocket-Accept` value for a key (RFC 6455 section 4.2.2). */
export async function webSocketAccept(key: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-1",
    encoder.encode(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"),
  );
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}
