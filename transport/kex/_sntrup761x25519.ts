/**
 * `sntrup761x25519-sha512@openssh.com` and `sntrup761x25519-sha512`
 * (OpenSSH 8.5+; draft-josefsson-ntruprime-ssh): Streamlined NTRU Prime
 * sntrup761 + X25519, combined as in `./_mlkem768x25519.ts` with SHA-512:
 * `C_INIT = pk (1158) || X25519 (32)`, `S_REPLY = ct (1039) || X25519 (32)`,
 * `K = string(SHA-512(sntrup_ss || x25519_ss))`.
 *
 * sntrup761 is written here from the NTRU Prime round 3 specification
 * ("NTRU Prime: round 3", 2020, sections 3 and 4: parameters p = 761,
 * q = 4591, w = 286; Core, Encode/Decode, Hash with one-byte prefixes, the
 * KEM with implicit rejection). No audited JavaScript sntrup761 exists to
 * reuse. The hot loops (the two reciprocals of key generation and the
 * polynomial products) run as WebAssembly kernels, `./_sntrup761_wasm.ts`,
 * which cut a cold key generation from ~55 ms to ~5 ms. Neither JavaScript
 * nor WebAssembly gives constant-time guarantees; the secret-dependent steps
 * (inversion, decryption, ciphertext comparison) still avoid data-dependent
 * branches and memory addresses, as the reference does.
 *
 * @module
 */
import { createHash, randomFillSync } from "node:crypto";
import type { KexMethod } from "./types.ts";
import { hybridKemMethod, type Kem } from "./_mlkem768x25519.ts";
import {
  MUL_F,
  MUL_FG,
  MUL_G,
  R3_F,
  R3_G,
  R3_PLANE_INT32,
  R3_R,
  R3_V,
  RQ_END,
  RQ_F,
  RQ_G,
  RQ_R,
  RQ_V,
  type SntrupKernels,
  sntrupKernels,
} from "./_sntrup761_wasm.ts";

const P = 761;
const Q = 4591;
const W = 286;
const Q12 = (Q - 1) / 2;
/** Small_bytes: four coefficients in {-1,0,1} per byte (p mod 4 = 1). */
const SMALL_BYTES = (P + 3) >> 2; // 191
const RQ_BYTES = 1158;
const ROUNDED_BYTES = 1007;
const HASH_BYTES = 32;
/** Public key, ciphertext (Rounded || confirmation hash), secret key. */
export const SNTRUP761_PUBLIC_KEY_BYTES = RQ_BYTES;
/** Ciphertext length: Rounded encoding plus the 32-byte confirmation hash. */
export const SNTRUP761_CIPHERTEXT_BYTES = ROUNDED_BYTES + HASH_BYTES; // 1039
/** Secret key: f, 1/g mod 3, pk, rho, Hash4(pk). */
export const SNTRUP761_SECRET_KEY_BYTES = 2 * SMALL_BYTES + RQ_BYTES +
  SMALL_BYTES + HASH_BYTES; // 1763

/** Source of random bytes; tests pass a deterministic one. */
export type RandomBytes = (n: number) => Uint8Array;

const systemRandom: RandomBytes = (n) => randomFillSync(new Uint8Array(n));

// ----- arithmetic (branch-free on the values) -----

// The freezes subtract the nearest multiple of the modulus m, found as
// Math.round(x * (1/m)) in double precision (float operations, no
// data-dependent branch; a multiplication rather than a division, and
// several times faster than `%` plus a sign fix-up in V8). Exactness, for an
// integer |x| < 2^31 and an odd m: 2x - (2n+1)m is odd, so x/m is at least
// 1/(2m) away from every half-integer n + 1/2, while x * fl(1/m) is within
// |x/m| * 2^-52 < 2^-30 of x/m. Rounding therefore picks the same integer as
// exact arithmetic, and the result is the centred representative.
const INV3 = 1 / 3;
const INVQ = 1 / Q;

/** x mod 3 in {-1,0,1}; x an integer with |x| < 2^31. */
function f3Freeze(x: number): number {
  return x - 3 * Math.round(x * INV3);
}

/** x mod q in [-q12, q12]; x an integer with |x| < 2^31. */
function fqFreeze(x: number): number {
  return x - Q * Math.round(x * INVQ);
}

/** a^(q-2) mod q: the inverse of a nonzero a in F_q (0 for a = 0). */
function fqRecip(a: number): number {
  let r = 1;
  let base = fqFreeze(a);
  for (let e = Q - 2; e > 0; e >>= 1) {
    if (e & 1) r = fqFreeze(r * base); // e is public (q - 2)
    base = fqFreeze(base * base);
  }
  return r;
}

/** -1 if x != 0, else 0 (x a 32-bit integer). */
function nonzeroMask(x: number): number {
  return (x | -x) >> 31;
}

/**
 * Product of f (any coefficients, |f_i| <= q12) and small g in
 * Z[x]/(x^p - x - 1), with `freeze` applied at the end. The product in Z[x]
 * is the `mul` kernel of `./_sntrup761_wasm.ts`; its sums stay below
 * 761 * 2295 < 2^21, and the folding below at most triples that.
 * Exported (with the kernels to use) for tests.
 */
export function multSmall(
  f: Int32Array | Int8Array,
  g: Int8Array,
  freeze: (x: number) => number,
  k: SntrupKernels = sntrupKernels(),
): Int32Array {
  const buf = k.memory.buffer;
  const mf = new Int32Array(buf, MUL_F, P);
  const mg = new Int32Array(buf, MUL_G, P + 3);
  const fg = new Int32Array(buf, MUL_FG, 2 * P + 3);
  mf.set(f);
  mg.set(g);
  fg.fill(0);
  k.mul();
  // x^p = x + 1: fold each high coefficient into positions i-p and i-p+1.
  for (let i = 2 * P - 2; i >= P; i--) {
    fg[i - P] += fg[i];
    fg[i - P + 1] += fg[i];
  }
  const h = new Int32Array(P);
  for (let i = 0; i < P; i++) h[i] = freeze(fg[i]);
  mf.fill(0);
  mg.fill(0);
  fg.fill(0);
  return h;
}

// ----- reciprocals (specification section 3.4, "reciprocal") -----
//
// Both are the Bernstein-Yang constant-time divstep loop: f starts as
// x^p - x - 1 reversed (coefficients 0..p), g as the input reversed, v = 0,
// r = the scale wanted (1, or 1/3 mod q); 2p-1 steps, each
//   v <- x*v; (when delta > 0 and g0 != 0) swap f,g and v,r, delta <- -delta;
//   delta <- delta + 1; g <- (f0*g - g0*f)/x; r <- f0*r - g0*v.
// At the end delta = 0 exactly when the input is invertible, f = f0 is a
// constant and v/f0 reversed is the reciprocal. Over F_3, 1/f0 = f0 and the
// elimination is written g + d*f with d = -g0*f0 (the same up to the
// factor f0, which multiplies g and r alike and so leaves the reciprocal,
// being unique, unchanged).
//
// The loops run in WebAssembly (`./_sntrup761_wasm.ts`, which explains
// why), in chunks of steps so that V8's optimised code takes over from its
// baseline code after the first chunks. Active lengths, which depend on
// the loop counter only, so the shape of the work stays independent of
// secrets:
// - before step k, v and r are zero outside positions 0..k-1 (v gains one
//   position per step, r is a combination of v and r), so step k touches
//   positions 0..min(k, p) of v and r;
// - coefficient i of f or g after a step depends only on coefficients
//   <= i+1 before it, and the result needs only f0 and g0 of each later
//   step and f0 at the end; with R = 2p-1-k steps left, only positions
//   0..R matter, so step k computes positions 0..min(p, R) - 1 of the new g
//   and 1..min(p, R) of f. Positions above are left stale and never read.

/** Steps per kernel call (a public constant; see above). */
const CHUNK = 64;

/** Runs all 2p-1 divsteps of `kernel` in chunks; returns the final delta. */
function divsteps(
  kernel: (first: number, end: number, d: number) => number,
): number {
  let delta = 1;
  for (let first = 0; first < 2 * P - 1; first += CHUNK) {
    delta = kernel(first, Math.min(first + CHUNK, 2 * P - 1), delta);
  }
  return delta;
}

/** 1/in in R/3; null if `in` is not invertible mod 3. Exported for tests. */
export function r3Recip(
  input: Int8Array,
  k: SntrupKernels = sntrupKernels(),
): Int8Array | null {
  const region = new Int32Array(k.memory.buffer, R3_F, 8 * R3_PLANE_INT32);
  region.fill(0);
  /** Sets coefficient j of the bit-sliced polynomial at `base` to c. */
  const put = (base: number, j: number, c: number) => {
    // c & 1 is 1 for c = +-1; (c >> 1) & 1 is 1 for c = -1.
    region[base + (j >> 5)] |= (c & 1) << (j & 31);
    region[base + R3_PLANE_INT32 + (j >> 5)] |= ((c >> 1) & 1) << (j & 31);
  };
  const [f, g, v, r] = [R3_F, R3_G, R3_V, R3_R].map((o) => (o - R3_F) >> 2);
  // f = 1 - x^(p-1) - x^p (x^p - x - 1 reversed), r = 1.
  put(f, 0, 1);
  put(f, P - 1, -1);
  put(f, P, -1);
  put(r, 0, 1);
  for (let i = 0; i < P; i++) put(g, P - 1 - i, input[i]);
  const delta = divsteps(k.r3);
  // 1/in = v/f0 reversed; f0 is 1 or -1, so dividing flips signs or not.
  const flip = (region[f + R3_PLANE_INT32] << 31) >> 31;
  const out = new Int8Array(P);
  for (let i = 0; i < P; i++) {
    const j = P - 1 - i;
    const n = (region[v + (j >> 5)] >>> (j & 31)) & 1;
    const sign = region[v + R3_PLANE_INT32 + (j >> 5)] ^ flip;
    const s = (sign >>> (j & 31)) & 1;
    out[i] = n - 2 * (n & s);
  }
  region.fill(0);
  return nonzeroMask(delta) === 0 ? out : null;
}

/**
 * 1/(3*in) in R/q; exists for every short `in` (x^p-x-1 is irreducible mod
 * q). The kernel keeps coefficients as integer-valued doubles in [-q, q].
 * Exported for tests.
 */
export function rqRecip3(
  input: Int8Array,
  k: SntrupKernels = sntrupKernels(),
): Int32Array | null {
  const buf = k.memory.buffer;
  const region = new Float64Array(buf, 0, RQ_END / 8);
  region.fill(0);
  const f = new Float64Array(buf, RQ_F, P + 1);
  const g = new Float64Array(buf, RQ_G, P + 1);
  const v = new Float64Array(buf, RQ_V, P + 1);
  const r = new Float64Array(buf, RQ_R, P + 1);
  r[0] = fqRecip(3);
  f[0] = 1;
  f[P - 1] = f[P] = -1;
  for (let i = 0; i < P; i++) g[P - 1 - i] = input[i];
  const delta = divsteps(k.rq);
  const scale = fqRecip(f[0]);
  const out = new Int32Array(P);
  for (let i = 0; i < P; i++) out[i] = fqFreeze(scale * v[P - 1 - i]);
  region.fill(0);
  return nonzeroMask(delta) === 0 ? out : null;
}

// ----- Encode / Decode (specification section 4.2) -----

/** Encodes 0 <= R[i] < M[i] < 16384 into `out` (pushes bytes). */
function encode(out: number[], R: number[], M: number[]): void {
  const len = R.length;
  if (len === 1) {
    let r = R[0];
    let m = M[0];
    while (m > 1) {
      out.push(r & 0xff);
      r >>>= 8;
      m = (m + 255) >>> 8;
    }
    return;
  }
  const R2: number[] = [];
  const M2: number[] = [];
  let i = 0;
  for (; i < len - 1; i += 2) {
    const m0 = M[i];
    let r = R[i] + R[i + 1] * m0;
    let m = M[i + 1] * m0;
    while (m >= 16384) {
      out.push(r & 0xff);
      r >>>= 8;
      m = (m + 255) >>> 8;
    }
    R2.push(r);
    M2.push(m);
  }
  if (i < len) {
    R2.push(R[i]);
    M2.push(M[i]);
  }
  encode(out, R2, M2);
}

/**
 * Decodes `len = M.length` values from `s` starting at `pos`, returning
 * 0 <= R[i] < M[i]. Inputs not produced by {@linkcode encode} still decode
 * to in-range values (the specification's behaviour).
 */
function decode(s: Uint8Array, pos: number, M: number[]): number[] {
  const len = M.length;
  if (len === 1) {
    if (M[0] === 1) return [0];
    if (M[0] <= 256) return [s[pos] % M[0]];
    return [(s[pos] + (s[pos + 1] << 8)) % M[0]];
  }
  const M2: number[] = [];
  const bottomr: number[] = [];
  const bottomt: number[] = [];
  let i = 0;
  for (; i < len - 1; i += 2) {
    const m = M[i] * M[i + 1];
    if (m > 256 * 16383) {
      bottomt.push(65536);
      bottomr.push(s[pos] + 256 * s[pos + 1]);
      pos += 2;
      M2.push((((m + 255) >>> 8) + 255) >>> 8);
    } else if (m >= 16384) {
      bottomt.push(256);
      bottomr.push(s[pos]);
      pos += 1;
      M2.push((m + 255) >>> 8);
    } else {
      bottomt.push(1);
      bottomr.push(0);
      M2.push(m);
    }
  }
  if (i < len) M2.push(M[i]);
  const R2 = decode(s, pos, M2);
  const out: number[] = [];
  for (i = 0; i < len - 1; i += 2) {
    const r = bottomr[i >> 1] + bottomt[i >> 1] * R2[i >> 1];
    out.push(r % M[i]);
    out.push(Math.floor(r / M[i]) % M[i + 1]);
  }
  if (i < len) out.push(R2[i >> 1]);
  return out;
}

function rqEncode(h: Int32Array): Uint8Array {
  const out: number[] = [];
  encode(out, Array.from(h, (x) => x + Q12), new Array(P).fill(Q));
  return Uint8Array.from(out);
}

function rqDecode(s: Uint8Array): Int32Array {
  const R = decode(s, 0, new Array(P).fill(Q));
  return Int32Array.from(R, (x) => x - Q12);
}

function roundedEncode(c: Int32Array): Uint8Array {
  const out: number[] = [];
  // (x + q12) / 3 for x a multiple of 3 offset by q12, as 10923/2^15 ~ 1/3.
  encode(
    out,
    Array.from(c, (x) => ((x + Q12) * 10923) >>> 15),
    new Array(P).fill((Q + 2) / 3),
  );
  return Uint8Array.from(out);
}

function roundedDecode(s: Uint8Array): Int32Array {
  const R = decode(s, 0, new Array(P).fill((Q + 2) / 3));
  return Int32Array.from(R, (x) => x * 3 - Q12);
}

function smallEncode(f: Int8Array): Uint8Array {
  const s = new Uint8Array(SMALL_BYTES);
  for (let i = 0; i < P; i++) s[i >> 2] |= (f[i] + 1) << ((i & 3) * 2);
  return s;
}

function smallDecode(s: Uint8Array): Int8Array {
  const f = new Int8Array(P);
  for (let i = 0; i < P; i++) f[i] = ((s[i >> 2] >> ((i & 3) * 2)) & 3) - 1;
  return f;
}

// ----- hashing and randomness -----

/** First 32 bytes of SHA-512(b || in...) (specification: Hash_b). */
function hashPrefix(b: number, ...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha512").update(new Uint8Array([b]));
  for (const part of parts) h.update(part);
  return new Uint8Array(h.digest()).subarray(0, HASH_BYTES);
}

/**
 * p 32-bit words, one 4-byte little-endian draw each (as the reference's
 * urandom32), so that a deterministic source (the known-answer tests) sees
 * the reference's sequence of requests. The system source is drawn in one
 * call: its bytes are independent either way, and 761 separate calls cost
 * about a millisecond on a cold start.
 */
function random32(random: RandomBytes): Uint32Array {
  const out = new Uint32Array(P);
  if (random === systemRandom) {
    randomFillSync(out);
    return out;
  }
  for (let i = 0; i < P; i++) {
    const c = random(4);
    out[i] = (c[0] | (c[1] << 8) | (c[2] << 16) | (c[3] << 24)) >>> 0;
  }
  return out;
}

/** A random short polynomial: exactly w nonzero coefficients in {-1,1}. */
function shortRandom(random: RandomBytes): Int8Array {
  const L = random32(random);
  for (let i = 0; i < W; i++) L[i] &= ~1 >>> 0;
  for (let i = W; i < P; i++) L[i] = ((L[i] & ~3) | 1) >>> 0;
  L.sort();
  const out = new Int8Array(P);
  for (let i = 0; i < P; i++) out[i] = (L[i] & 3) - 1;
  return out;
}

function smallRandom(random: RandomBytes): Int8Array {
  const L = random32(random);
  const out = new Int8Array(P);
  for (let i = 0; i < P; i++) {
    out[i] = Math.floor(((L[i] & 0x3fffffff) * 3) / 0x40000000) - 1;
  }
  return out;
}

// ----- the KEM -----

/** (r_enc, ciphertext || confirm) for input r (the specification's Hide). */
function hide(
  r: Int8Array,
  pk: Uint8Array,
  cache: Uint8Array,
): { rEnc: Uint8Array; c: Uint8Array } {
  const rEnc = smallEncode(r);
  const h = rqDecode(pk);
  const hr = multSmall(h, r, fqFreeze);
  // Round: nearest multiple of 3.
  for (let i = 0; i < P; i++) hr[i] -= f3Freeze(hr[i]);
  const c = new Uint8Array(SNTRUP761_CIPHERTEXT_BYTES);
  c.set(roundedEncode(hr));
  c.set(hashPrefix(2, hashPrefix(3, rEnc), cache), ROUNDED_BYTES);
  return { rEnc, c };
}

/** Session key Hash_b(Hash3(r_enc) || c). */
function hashSession(b: number, rEnc: Uint8Array, c: Uint8Array): Uint8Array {
  return hashPrefix(b, hashPrefix(3, rEnc), c);
}

/** Makes an sntrup761 key pair (1158-byte public, 1763-byte secret key). */
export function sntrup761Keypair(
  random: RandomBytes = systemRandom,
): { publicKey: Uint8Array; secretKey: Uint8Array } {
  let g: Int8Array;
  let ginv: Int8Array | null;
  do {
    g = smallRandom(random);
    ginv = r3Recip(g);
  } while (ginv === null);
  const f = shortRandom(random);
  const finv = rqRecip3(f);
  if (finv === null) throw new Error("sntrup761: 3f is not invertible mod q");
  const h = multSmall(finv, g, fqFreeze);
  const publicKey = rqEncode(h);
  const secretKey = new Uint8Array(SNTRUP761_SECRET_KEY_BYTES);
  secretKey.set(smallEncode(f), 0);
  secretKey.set(smallEncode(ginv), SMALL_BYTES);
  secretKey.set(publicKey, 2 * SMALL_BYTES);
  secretKey.set(random(SMALL_BYTES), 2 * SMALL_BYTES + RQ_BYTES);
  secretKey.set(hashPrefix(4, publicKey), 3 * SMALL_BYTES + RQ_BYTES);
  f.fill(0);
  g.fill(0);
  ginv.fill(0);
  return { publicKey, secretKey };
}

/** Encapsulates to a 1158-byte public key: 1039-byte ciphertext, 32-byte secret. */
export function sntrup761Encapsulate(
  publicKey: Uint8Array,
  random: RandomBytes = systemRandom,
): { cipherText: Uint8Array; sharedSecret: Uint8Array } {
  if (publicKey.length !== RQ_BYTES) {
    throw new RangeError(
      `Invalid sntrup761 public key: expected ${RQ_BYTES} bytes, got ${publicKey.length}`,
    );
  }
  const cache = hashPrefix(4, publicKey);
  const r = shortRandom(random);
  const { rEnc, c } = hide(r, publicKey, cache);
  const sharedSecret = hashSession(1, rEnc, c);
  r.fill(0);
  rEnc.fill(0);
  return { cipherText: c, sharedSecret };
}

/**
 * Decapsulates; a ciphertext that does not re-encrypt to itself yields
 * Hash0(Hash3(rho) || c) instead (implicit rejection), never an error.
 */
export function sntrup761Decapsulate(
  cipherText: Uint8Array,
  secretKey: Uint8Array,
): Uint8Array {
  if (cipherText.length !== SNTRUP761_CIPHERTEXT_BYTES) {
    throw new RangeError(
      `Invalid sntrup761 ciphertext: expected ${SNTRUP761_CIPHERTEXT_BYTES} bytes, got ${cipherText.length}`,
    );
  }
  if (secretKey.length !== SNTRUP761_SECRET_KEY_BYTES) {
    throw new RangeError(
      `Invalid sntrup761 secret key: expected ${SNTRUP761_SECRET_KEY_BYTES} bytes, got ${secretKey.length}`,
    );
  }
  const f = smallDecode(secretKey.subarray(0, SMALL_BYTES));
  const ginv = smallDecode(secretKey.subarray(SMALL_BYTES, 2 * SMALL_BYTES));
  const pk = secretKey.subarray(2 * SMALL_BYTES, 2 * SMALL_BYTES + RQ_BYTES);
  const rho = secretKey.subarray(
    2 * SMALL_BYTES + RQ_BYTES,
    3 * SMALL_BYTES + RQ_BYTES,
  );
  const cache = secretKey.subarray(3 * SMALL_BYTES + RQ_BYTES);
  // Decrypt: e = 3*f*c mod q, lifted and reduced mod 3, times 1/g.
  const c = roundedDecode(cipherText.subarray(0, ROUNDED_BYTES));
  const cf = multSmall(c, f, fqFreeze);
  const e = new Int8Array(P);
  for (let i = 0; i < P; i++) e[i] = f3Freeze(fqFreeze(3 * cf[i]));
  const ev = multSmall(e, ginv, f3Freeze);
  let weight = 0;
  for (let i = 0; i < P; i++) weight += ev[i] & 1;
  const bad = nonzeroMask(weight - W); // -1 unless weight is w
  // On a wrong weight use the fixed (1,...,1,0,...,0) of weight w instead.
  const r = new Int8Array(P);
  for (let i = 0; i < W; i++) r[i] = ((ev[i] ^ 1) & ~bad) ^ 1;
  for (let i = W; i < P; i++) r[i] = ev[i] & ~bad;
  const { rEnc, c: cnew } = hide(r, pk, cache);
  let diff = 0;
  for (let i = 0; i < SNTRUP761_CIPHERTEXT_BYTES; i++) {
    diff |= cipherText[i] ^ cnew[i];
  }
  const mask = nonzeroMask(diff); // -1 on mismatch
  for (let i = 0; i < SMALL_BYTES; i++) {
    rEnc[i] ^= mask & (rEnc[i] ^ rho[i]);
  }
  const k = hashSession(1 + mask, rEnc, cipherText);
  f.fill(0);
  ginv.fill(0);
  r.fill(0);
  rEnc.fill(0);
  return k;
}

/** sntrup761 in the shape the hybrid construction uses. */
export const SNTRUP761: Kem = {
  name: "sntrup761",
  publicKeyBytes: SNTRUP761_PUBLIC_KEY_BYTES,
  cipherTextBytes: SNTRUP761_CIPHERTEXT_BYTES,
  keygen: () => sntrup761Keypair(),
  encapsulate: (publicKey) => sntrup761Encapsulate(publicKey),
  decapsulate: (cipherText, secretKey) =>
    sntrup761Decapsulate(cipherText, secretKey),
};

/** Builds `sntrup761x25519-sha512@openssh.com` or its draft name `sntrup761x25519-sha512`. */
export function sntrup761x25519Method(
  name: "sntrup761x25519-sha512@openssh.com" | "sntrup761x25519-sha512",
): KexMethod {
  return hybridKemMethod(name, "sha512", SNTRUP761);
}
