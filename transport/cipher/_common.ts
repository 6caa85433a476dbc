/**
 * Helpers shared by the packet ciphers of this folder.
 *
 * @module
 */
import { createCipheriv } from "node:crypto";

/**
 * A packet failed authentication: wrong MAC or AEAD tag. The transport maps it
 * to `SSH_DISCONNECT_MAC_ERROR` (RFC 4253 section 11.1, reason 5).
 */
export class MacError extends Error {
  /**
   * @param message What failed, e.g. `Cannot open packet 42: MAC mismatch`.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MacError";
  }
}

/**
 * Compares two byte strings in time that depends only on their lengths
 * (never on where they differ), so a peer cannot learn a valid tag byte by
 * byte from our response times.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * XORs `data` with the keystream of a node:crypto stream cipher (`chacha20`,
 * `aes-*-ctr`) started at `iv`. The cipher
 * is finished at once: Deno tracks every node:crypto cipher as a resource
 * until `final()`, so a cipher left open would leak one per packet.
 */
export function streamXor(
  algo: string,
  key: Uint8Array,
  iv: Uint8Array,
  data: Uint8Array,
): Uint8Array {
  const c = createCipheriv(algo, key, iv);
  const out = c.update(data);
  c.final();
  return out;
}

/** Reads the big-endian uint32 at `offset`. */
export function readUint32(bytes: Uint8Array, offset = 0): number {
  return ((bytes[offset] << 24) | (bytes[offset + 1] << 16) |
    (bytes[offset + 2] << 8) | bytes[offset + 3]) >>> 0;
}

/** Writes `value` as a big-endian uint32 at `offset`. */
export function writeUint32(
  bytes: Uint8Array,
  value: number,
  offset = 0,
): void {
  bytes[offset] = value >>> 24;
  bytes[offset + 1] = value >>> 16;
  bytes[offset + 2] = value >>> 8;
  bytes[offset + 3] = value;
}

/** Throws a TypeError unless `seq` is a uint32 (RFC 4253 section 6.4). */
export function checkSeq(seq: number): void {
  if (seq >>> 0 !== seq) {
    throw new TypeError(`Cannot use sequence number ${seq}: not a uint32`);
  }
}

/** Throws a TypeError unless `key` has exactly `length` bytes. */
export function checkKeyLength(
  what: string,
  key: Uint8Array,
  length: number,
): void {
  if (!(key instanceof Uint8Array) || key.length !== length) {
    throw new TypeError(
      `Cannot create ${what}: expected ${length} bytes, got ${
        key instanceof Uint8Array ? key.length : typeof key
      }`,
    );
  }
}

/**
 * A plain Uint8Array view of a node:crypto Buffer (no copy), so callers never
 * meet Buffer's sharing `slice()` semantics.
 */
export function view(buf: Uint8Array): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
