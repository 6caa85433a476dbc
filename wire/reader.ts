/**
 * Bounds-checked decoder for the SSH data types of RFC 4251 section 5.
 *
 * Every length read from the peer is checked against the bytes that remain
 * before anything is allocated or sliced, so a hostile length can only ever
 * produce a {@linkcode SyntaxError}, never a large allocation.
 *
 * @module
 */

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads SSH fields from a byte array, front to back.
 *
 * @example Decode a string and a uint32
 * ```ts
 * import { SshReader } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const r = new SshReader(new Uint8Array([0, 0, 0, 2, 104, 105, 0, 0, 1, 0]));
 * assert.equal(r.utf8(), "hi");
 * assert.equal(r.uint32(), 256);
 * r.end();
 * ```
 */
export class SshReader {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  #pos = 0;
  /** Used in error messages, e.g. "KEXINIT". */
  readonly context: string;

  /** Wraps `buf` (not copied); `context` names the message in errors. */
  constructor(buf: Uint8Array, context = "message") {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.context = context;
  }

  /** Bytes not yet read. */
  get remaining(): number {
    return this.#buf.length - this.#pos;
  }

  /** Current read offset. */
  get offset(): number {
    return this.#pos;
  }

  #need(n: number, what: string): void {
    if (n > this.remaining) {
      throw new SyntaxError(
        `Malformed ${this.context}: ${what} needs ${n} bytes but only ${this.remaining} remain`,
      );
    }
  }

  /** Reads one byte. */
  byte(): number {
    this.#need(1, "byte");
    return this.#buf[this.#pos++];
  }

  /** Reads a boolean; any non-zero byte is true (RFC 4251 section 5). */
  boolean(): boolean {
    return this.byte() !== 0;
  }

  /** Reads a big-endian uint32. */
  uint32(): number {
    this.#need(4, "uint32");
    const v = this.#view.getUint32(this.#pos);
    this.#pos += 4;
    return v;
  }

  /** Reads a big-endian uint64. */
  uint64(): bigint {
    this.#need(8, "uint64");
    const v = this.#view.getBigUint64(this.#pos);
    this.#pos += 8;
    return v;
  }

  /** Reads `n` raw bytes (a view, not a copy). */
  raw(n: number): Uint8Array {
    this.#need(n, "field");
    const out = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  /** Reads the rest of the buffer (a view). */
  rest(): Uint8Array {
    return this.raw(this.remaining);
  }

  /**
   * Reads an SSH `string` as bytes (a view into the buffer, not a copy).
   * `max` bounds the length beyond the bytes that remain.
   */
  string(max = Infinity): Uint8Array {
    const len = this.uint32();
    if (len > max) {
      throw new RangeError(
        `Malformed ${this.context}: string of ${len} bytes exceeds the limit of ${max}`,
      );
    }
    this.#need(len, "string");
    return this.raw(len);
  }

  /** Reads an SSH `string` and decodes it as UTF-8. */
  utf8(max = Infinity): string {
    const bytes = this.string(max);
    try {
      return decoder.decode(bytes);
    } catch {
      throw new SyntaxError(
        `Malformed ${this.context}: string is not valid UTF-8`,
      );
    }
  }

  /** Reads a `name-list`; an empty string gives an empty array. */
  nameList(max = 64 * 1024): string[] {
    const text = this.utf8(max);
    if (text === "") return [];
    const names = text.split(",");
    for (const n of names) {
      if (n === "" || !/^[\x21-\x7e]+$/.test(n)) {
        throw new SyntaxError(
          `Malformed ${this.context}: bad name in name-list ${
            JSON.stringify(text)
          }`,
        );
      }
    }
    return names;
  }

  /**
   * Reads an `mpint` and returns its unsigned magnitude bytes (a view).
   * Negative values are rejected; SSH never sends them for our algorithms.
   */
  mpintBytes(max = 16 * 1024 + 1): Uint8Array {
    const body = this.string(max);
    if (body.length > 0 && (body[0] & 0x80) !== 0) {
      throw new SyntaxError(`Malformed ${this.context}: negative mpint`);
    }
    let start = 0;
    while (start < body.length && body[start] === 0) start++;
    return body.subarray(start);
  }

  /** Reads an `mpint` as a bigint. */
  mpint(max?: number): bigint {
    const bytes = this.mpintBytes(max);
    let hex = "";
    for (const b of bytes) hex += b.toString(16).padStart(2, "0");
    return hex === "" ? 0n : BigInt("0x" + hex);
  }

  /** Asserts that the whole buffer was consumed. */
  end(): void {
    if (this.remaining !== 0) {
      throw new SyntaxError(
        `Malformed ${this.context}: ${this.remaining} unexpected trailing bytes`,
      );
    }
  }
}
