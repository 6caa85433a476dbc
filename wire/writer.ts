/**
 * Encoder for the SSH data types of RFC 4251 section 5.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * Builds an SSH message or blob field by field into a growing buffer.
 *
 * @example Encode a name-list and a string
 * ```ts
 * import { SshWriter } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const bytes = new SshWriter().byte(20).nameList(["a", "b"]).string("x").bytes();
 * assert.deepEqual([...bytes], [20, 0, 0, 0, 3, 97, 44, 98, 0, 0, 0, 1, 120]);
 * ```
 */
export class SshWriter {
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;

  /** Creates a writer with room for `initialSize` bytes before it grows. */
  constructor(initialSize = 256) {
    this.#buf = new Uint8Array(initialSize);
    this.#view = new DataView(this.#buf.buffer);
  }

  /** Number of bytes written so far. */
  get length(): number {
    return this.#len;
  }

  #ensure(extra: number): void {
    const need = this.#len + extra;
    if (need <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  /** Appends one byte. */
  byte(value: number): this {
    this.#ensure(1);
    this.#buf[this.#len++] = value;
    return this;
  }

  /** Appends a boolean (one byte, 0 or 1). */
  boolean(value: boolean): this {
    return this.byte(value ? 1 : 0);
  }

  /** Appends a big-endian uint32. */
  uint32(value: number): this {
    this.#ensure(4);
    this.#view.setUint32(this.#len, value >>> 0);
    this.#len += 4;
    return this;
  }

  /** Appends a big-endian uint64. */
  uint64(value: bigint): this {
    this.#ensure(8);
    this.#view.setBigUint64(this.#len, value);
    this.#len += 8;
    return this;
  }

  /** Appends raw bytes with no length prefix. */
  raw(data: Uint8Array): this {
    this.#ensure(data.length);
    this.#buf.set(data, this.#len);
    this.#len += data.length;
    return this;
  }

  /** Appends an SSH `string`: uint32 length then the bytes (UTF-8 for text). */
  string(data: Uint8Array | string): this {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    this.uint32(bytes.length);
    return this.raw(bytes);
  }

  /** Appends a comma-separated `name-list`. */
  nameList(names: readonly string[]): this {
    return this.string(names.join(","));
  }

  /** Appends an `mpint` (two's complement, minimal length) from a bigint. */
  mpint(value: bigint): this {
    return this.raw(encodeMpint(value));
  }

  /**
   * Appends an `mpint` from an unsigned big-endian magnitude, as produced by
   * key exchanges; leading zero bytes are dropped and one is added back when
   * the high bit is set, as RFC 4251 section 5 requires.
   */
  mpintBytes(magnitude: Uint8Array): this {
    return this.raw(encodeMpintBytes(magnitude));
  }

  /** Returns a copy of the bytes written so far. */
  bytes(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/** Encodes an unsigned big-endian magnitude as a wire `mpint` (with its length). */
export function encodeMpintBytes(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.length && magnitude[start] === 0) start++;
  const body = magnitude.subarray(start);
  const pad = body.length > 0 && (body[0] & 0x80) !== 0 ? 1 : 0;
  const out = new Uint8Array(4 + pad + body.length);
  new DataView(out.buffer).setUint32(0, pad + body.length);
  out.set(body, 4 + pad);
  return out;
}

/** Encodes a bigint as a wire `mpint` (with its length). */
export function encodeMpint(value: bigint): Uint8Array {
  if (value < 0n) {
    throw new RangeError(
      `Cannot encode mpint: negative values are not used in SSH (${value})`,
    );
  }
  return encodeMpintBytes(bigintToBytes(value));
}

/** Unsigned big-endian bytes of a non-negative bigint (empty for zero). */
export function bigintToBytes(value: bigint, length?: number): Uint8Array {
  let hex = value.toString(16);
  if (hex === "0") hex = "";
  if (hex.length % 2) hex = "0" + hex;
  const n = hex.length / 2;
  const size = length ?? n;
  if (n > size) {
    throw new RangeError(`Cannot fit a ${n}-byte integer in ${size} bytes`);
  }
  const out = new Uint8Array(size);
  for (let i = 0; i < n; i++) {
    out[size - n + i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  }
  return out;
}

/** Non-negative bigint from unsigned big-endian bytes. */
export function bytesToBigint(bytes: Uint8Array): bigint {
  let hex = "";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return hex === "" ? 0n : BigInt("0x" + hex);
}
