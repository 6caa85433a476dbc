/**
 * The exchange-hash helper and key derivation of RFC 4253 section 7.2.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { HashName } from "./types.ts";

/**
 * Hashes the concatenation of `parts` in one go with `node:crypto`.
 *
 * @example SHA-256 of "abc"
 * ```ts
 * import { hashBytes } from "./derive.ts";
 * import assert from "node:assert/strict";
 *
 * const digest = hashBytes("sha256", new TextEncoder().encode("abc"));
 * assert.equal(digest.length, 32);
 * assert.equal(digest[0], 0xba);
 * ```
 */
export function hashBytes(hash: HashName, ...parts: Uint8Array[]): Uint8Array {
  const h = createHash(hash);
  for (const part of parts) h.update(part);
  // Copy into a plain Uint8Array: callers compare and slice it, and a Buffer
  // may share a pooled ArrayBuffer.
  return new Uint8Array(h.digest());
}

const LETTERS = "ABCDEF";

/**
 * Derives one key of RFC 4253 section 7.2: `K1 = HASH(K || H || X ||
 * session_id)`, then while more bytes are needed `Kn = HASH(K || H || K1 ||
 * ... || Kn-1)`; the key is the first `length` bytes of `K1 || K2 || ...`.
 *
 * `sharedSecret` is K exactly as it entered the exchange hash (an `mpint`
 * with its length prefix for every method here), `letter` is one of `"A"`
 * (IV client to server) through `"F"` (integrity key server to client).
 *
 * @example Derive a 64-byte key (two SHA-256 blocks)
 * ```ts
 * import { deriveKey } from "./derive.ts";
 * import assert from "node:assert/strict";
 *
 * const k = new Uint8Array([0, 0, 0, 1, 42]);
 * const h = new Uint8Array(32).fill(1);
 * const key = deriveKey("sha256", k, h, "C", h, 64);
 * assert.equal(key.length, 64);
 * ```
 */
export function deriveKey(
  hash: HashName,
  sharedSecret: Uint8Array,
  exchangeHash: Uint8Array,
  letter: string,
  sessionId: Uint8Array,
  length: number,
): Uint8Array {
  if (letter.length !== 1 || !LETTERS.includes(letter)) {
    throw new TypeError(
      `Cannot derive key: letter must be one of A..F, got ${
        JSON.stringify(letter)
      }`,
    );
  }
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new TypeError(
      `Cannot derive key: length must be a non-negative integer, got ${length}`,
    );
  }
  const out = new Uint8Array(length);
  if (length === 0) return out;
  const first = hashBytes(
    hash,
    sharedSecret,
    exchangeHash,
    new Uint8Array([letter.charCodeAt(0)]),
    sessionId,
  );
  out.set(first.subarray(0, length));
  let have = first.length;
  while (have < length) {
    // Kn = HASH(K || H || K1 || ... || Kn-1): everything produced so far.
    const h = createHash(hash);
    h.update(sharedSecret);
    h.update(exchangeHash);
    h.update(out.subarray(0, have));
    const next = h.digest();
    // `have` may run past `length` only inside this last block.
    out.set(next.subarray(0, Math.min(next.length, length - have)), have);
    have += next.length;
  }
  return out;
}
