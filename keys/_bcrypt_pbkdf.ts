/**
 * bcrypt_pbkdf, the KDF of encrypted openssh-key-v1 files (PROTOCOL.key;
 * OpenBSD's `bcrypt_pbkdf(3)`, as in OpenSSH's
 * `openbsd-compat/bcrypt_pbkdf.c`): a PBKDF2-like loop around a
 * Blowfish-based hash, with the output bytes spread across blocks so that
 * every block must be computed.
 *
 * Our own implementation: the npm port is CommonJS, and loading it (with
 * Node's module machinery) cost every process about 2 MiB of memory for a
 * function only encrypted key files need. Blowfish's initial state is the
 * fractional part of pi, computed here (on first use) rather than stored.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** Blowfish's initial state: P (18 words) then S0..S3 (256 words each). */
let piWords: Uint32Array | null = null;

/**
 * The first `count` 32-bit words of pi's fractional part, from Machin's
 * formula pi = 16 atan(1/5) - 4 atan(1/239) in fixed point (64 guard bits
 * absorb the truncation of every term).
 */
export function piFractionWords(count: number): Uint32Array {
  const bits = BigInt(count * 32 + 64);
  const one = 1n << bits;
  const atanInverse = (x: bigint): bigint => {
    const x2 = x * x;
    let term = one / x;
    let sum = term;
    for (let k = 1n; term !== 0n; k++) {
      term /= x2;
      const t = term / (2n * k + 1n);
      sum = k & 1n ? sum - t : sum + t;
    }
    return sum;
  };
  const pi = 16n * atanInverse(5n) - 4n * atanInverse(239n);
  const hex = ((pi - 3n * one) >> 64n).toString(16).padStart(count * 8, "0");
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    out[i] = parseInt(hex.slice(i * 8, i * 8 + 8), 16);
  }
  return out;
}

/** A Blowfish state: P at 0..17, S0 at 18, S1 at 274, S2 at 530, S3 at 786. */
class Blowfish {
  readonly s: Uint32Array;

  constructor() {
    piWords ??= piFractionWords(18 + 4 * 256);
    this.s = piWords.slice();
  }

  /** Enciphers the block (l, r) held in `b[0]`, `b[1]` in place. */
  encipher(b: Uint32Array): void {
    const s = this.s;
    let l = b[0] ^ s[0];
    let r = b[1];
    for (let i = 1; i <= 16; i += 2) {
      r ^= (((s[18 + (l >>> 24)] + s[274 + ((l >>> 16) & 0xff)]) ^
        s[530 + ((l >>> 8) & 0xff)]) + s[786 + (l & 0xff)]) ^ s[i];
      l ^= (((s[18 + (r >>> 24)] + s[274 + ((r >>> 16) & 0xff)]) ^
        s[530 + ((r >>> 8) & 0xff)]) + s[786 + (r & 0xff)]) ^ s[i + 1];
    }
    b[0] = (r ^ s[17]) >>> 0;
    b[1] = l >>> 0;
  }

  /**
   * The eksblowfish key schedule step: P ^= key (cyclic, big-endian
   * words), then P and S are refilled by enciphering a running block,
   * which is first XORed with words of `data` when given.
   */
  expand(key: Uint8Array, data: Uint8Array | null): void {
    const s = this.s;
    const k = new Stream(key);
    for (let i = 0; i < 18; i++) s[i] ^= k.next();
    const d = data ? new Stream(data) : null;
    const b = new Uint32Array(2);
    for (let i = 0; i < 18 + 4 * 256; i += 2) {
      if (d) {
        b[0] ^= d.next();
        b[1] ^= d.next();
      }
      this.encipher(b);
      s[i] = b[0];
      s[i + 1] = b[1];
    }
  }
}

/** Big-endian 32-bit words read cyclically from bytes. */
class Stream {
  #bytes: Uint8Array;
  #at = 0;
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }
  next(): number {
    let w = 0;
    for (let i = 0; i < 4; i++) {
      w = (w << 8) | this.#bytes[this.#at];
      this.#at = (this.#at + 1) % this.#bytes.length;
    }
    return w >>> 0;
  }
}

/** "OxychromaticBlowfishSwatDynamite", the block bcrypt_hash enciphers. */
const MAGIC = new TextEncoder().encode("OxychromaticBlowfishSwatDynamite");

/** bcrypt_hash: 32 bytes from SHA-512 digests of the pass and the salt. */
function bcryptHash(sha2pass: Uint8Array, sha2salt: Uint8Array): Uint8Array {
  const bf = new Blowfish();
  bf.expand(sha2pass, sha2salt);
  for (let i = 0; i < 64; i++) {
    bf.expand(sha2salt, null);
    bf.expand(sha2pass, null);
  }
  const words = new Uint32Array(8);
  const view = new DataView(MAGIC.buffer, MAGIC.byteOffset, 32);
  for (let i = 0; i < 8; i++) words[i] = view.getUint32(i * 4);
  const block = new Uint32Array(2);
  for (let n = 0; n < 64; n++) {
    for (let i = 0; i < 8; i += 2) {
      block[0] = words[i];
      block[1] = words[i + 1];
      bf.encipher(block);
      words[i] = block[0];
      words[i + 1] = block[1];
    }
  }
  // The words go out little-endian (as OpenBSD's code stores them).
  const out = new Uint8Array(32);
  const o = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) o.setUint32(i * 4, words[i], true);
  bf.s.fill(0);
  return out;
}

function sha512(...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha512");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** Derives `keyLength` bytes from `passphrase` and `salt` with `rounds`. */
export function bcryptPbkdf(
  passphrase: Uint8Array,
  salt: Uint8Array,
  rounds: number,
  keyLength: number,
): Uint8Array {
  // The same limits as the C function's.
  if (
    !Number.isSafeInteger(rounds) || rounds < 1 || passphrase.length === 0 ||
    salt.length === 0 || salt.length > 1 << 20 || keyLength === 0 ||
    keyLength > 32 * 32
  ) {
    throw new RangeError(
      `bcrypt_pbkdf rejected its parameters (rounds ${rounds}, salt ${salt.length} bytes, passphrase ${passphrase.length} bytes, key ${keyLength} bytes)`,
    );
  }
  const key = new Uint8Array(keyLength);
  const stride = Math.ceil(keyLength / 32);
  const amount = Math.ceil(keyLength / stride);
  const sha2pass = sha512(passphrase);
  const count = new Uint8Array(4);
  for (let block = 1, left = keyLength; left > 0; block++) {
    new DataView(count.buffer).setUint32(0, block);
    let tmp = bcryptHash(sha2pass, sha512(salt, count));
    const out = tmp.slice();
    for (let r = 1; r < rounds; r++) {
      tmp = bcryptHash(sha2pass, sha512(tmp));
      for (let i = 0; i < 32; i++) out[i] ^= tmp[i];
    }
    // Output byte i of this block goes to key[i * stride + block - 1].
    let i = 0;
    for (; i < Math.min(amount, left); i++) {
      const dest = i * stride + block - 1;
      if (dest >= keyLength) break;
      key[dest] = out[i];
    }
    left -= i;
  }
  return key;
}
