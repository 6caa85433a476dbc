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
 * reuse. JavaScript gives no constant-time guarantees; the secret-dependent
 * steps (inversion, decryption, ciphertext comparison) still avoid
 * data-dependent branches where the arithmetic allows, as the reference does.
 *
 * @module
 */
import { createHash, randomFillSync } from "node:crypto";
import type { KexMethod } from "./types.ts";
import { hybridKemMethod, type Kem } from "./_mlkem768x25519.ts";

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

/** -1 if x < 0, else 0. */
function negativeMask(x: number): number {
  return x >> 31;
}

/**
 * Product of f (any coefficients) and small g in Z[x]/(x^p - x - 1), with
 * `freeze` applied at the end. Sums stay below 2^31: 761 * 2295 * 1.
 */
function multSmall(
  f: Int32Array | Int8Array,
  g: Int8Array,
  freeze: (x: number) => number,
): Int32Array {
  const fg = new Int32Array(2 * P - 1);
  for (let i = 0; i < P; i++) {
    const fi = f[i];
    for (let j = 0; j < P; j++) fg[i + j] += fi * g[j];
  }
  // x^p = x + 1: fold each high coefficient into positions i-p and i-p+1.
  for (let i = 2 * P - 2; i >= P; i--) {
    fg[i - P] += fg[i];
    fg[i - P + 1] += fg[i];
  }
  const h = new Int32Array(P);
  for (let i = 0; i < P; i++) h[i] = freeze(fg[i]);
  return h;
}

// ----- reciprocals (specification section 3.4, "reciprocal") -----
//
// Both are the Bernstein-Yang constant-time divstep loop: f starts as
// x^p - x - 1 reversed (coefficients 0..p), g as the input reversed, v = 0,
// r = the scale wanted (1, or 1/3 mod q); 2p-1 steps, each
//   v <- x*v; (when delta > 0 and g0 != 0) swap f,g and v,r, delta <- -delta;
//   delta <- delta + 1; g <- (g - (g0/f0) f)/x; r <- r - (g0/f0) v.
// At the end delta = 0 exactly when the input is invertible, f = f0 is a
// constant and v/f0 reversed is the reciprocal. The specification (and the
// reference code) eliminates with the division-free f0*g - g0*f instead;
// that multiplies g and r by the same nonzero f0, so the pair relations the
// algorithm relies on (g ~ r*input, f ~ v*input) are unchanged, and the
// reciprocal, being unique, is the same polynomial bit for bit.
//
// Active lengths (they depend on the loop counter only, so the shape of the
// work stays independent of secrets):
// - before step k, v and r are zero outside positions 0..k-1 (v gains one
//   position per step, r is a combination of v and r), so step k touches
//   positions 0..min(k, p) of v and r;
// - coefficient i of f or g after a step depends only on coefficients
//   <= i+1 before it, and the result needs only f0 and g0 of each later
//   step and f0 at the end; with R = 2p-1-k steps left, only positions
//   0..R matter, so step k computes positions 0..min(p, R) - 1 of the new g
//   and 1..min(p, R) of f. Positions above are left stale and never read.

/** Words of 32 coefficients holding positions 0..p (p + 1 = 762 -> 24). */
const WORDS = (P + 32) >> 5;
/** Valid bits of the top word: positions 32*(WORDS-1) .. p. */
const TOP_MASK = (1 << (P + 1 - 32 * (WORDS - 1))) - 1;

/**
 * 1/in in R/3; null if `in` is not invertible mod 3. Bit-sliced: bit j of
 * word i of the N plane says whether coefficient 32i+j is nonzero, the same
 * bit of the S plane whether it is -1 (S is meaningless where N is 0). A
 * divstep is then a few dozen word operations instead of ~4p scalar ones.
 */
export function r3Recip(input: Int8Array): Int8Array | null {
  const fN = new Int32Array(WORDS);
  const fS = new Int32Array(WORDS);
  const gN = new Int32Array(WORDS);
  const gS = new Int32Array(WORDS);
  const vN = new Int32Array(WORDS);
  const vS = new Int32Array(WORDS);
  const rN = new Int32Array(WORDS);
  const rS = new Int32Array(WORDS);
  // f = 1 - x^(p-1) - x^p (x^p - x - 1 reversed), r = 1.
  fN[0] = 1;
  for (const j of [P - 1, P]) {
    fN[j >> 5] |= 1 << (j & 31);
    fS[j >> 5] |= 1 << (j & 31);
  }
  rN[0] = 1;
  for (let i = 0; i < P; i++) {
    const c = input[i]; // -1, 0 or 1: bit 0 = nonzero, bit 1 = negative
    const j = P - 1 - i;
    gN[j >> 5] |= (c & 1) << (j & 31);
    gS[j >> 5] |= ((c >> 1) & 1) << (j & 31);
  }
  let delta = 1;
  for (let loop = 0; loop < 2 * P - 1; loop++) {
    // v <- x*v, dropping position p + 1 (v keeps positions 0..p).
    for (let i = WORDS - 1; i > 0; i--) {
      vN[i] = (vN[i] << 1) | (vN[i - 1] >>> 31);
      vS[i] = (vS[i] << 1) | (vS[i - 1] >>> 31);
    }
    vN[0] <<= 1;
    vS[0] <<= 1;
    vN[WORDS - 1] &= TOP_MASK;
    vS[WORDS - 1] &= TOP_MASK;
    const swap = negativeMask(0 - delta) & ((gN[0] << 31) >> 31);
    delta ^= swap & (delta ^ (0 - delta));
    delta += 1;
    for (let i = 0; i < WORDS; i++) {
      let t = swap & (fN[i] ^ gN[i]);
      fN[i] ^= t;
      gN[i] ^= t;
      t = swap & (fS[i] ^ gS[i]);
      fS[i] ^= t;
      gS[i] ^= t;
      t = swap & (vN[i] ^ rN[i]);
      vN[i] ^= t;
      rN[i] ^= t;
      t = swap & (vS[i] ^ rS[i]);
      vS[i] ^= t;
      rS[i] ^= t;
    }
    // d = -g0*f0 (over F_3, 1/f0 = f0), as all-ones/all-zero word masks:
    // dN nonzero (f0 is never 0, so iff g0 != 0), dS negative (signs equal).
    const dN = (gN[0] << 31) >> 31;
    const dS = ~((fS[0] ^ gS[0]) << 31) >> 31;
    // g <- (g + d*f)/x and r <- r + d*v. Adding a and b in F_3, per bit:
    // if exactly one is nonzero the sum is that one; if both are and their
    // signs agree the sum is -a (1+1 = -1); otherwise 0. So
    //   N = (aN ^ bN) | (aN & bN & ~(aS ^ bS)),
    //   S = aN ? aS ^ bN : bS  (bN = 1 there gives -a; S is free where N = 0).
    // g's new position 0 is zero (eliminated) and is shifted out.
    let lowN = 0;
    let lowS = 0;
    for (let i = 0; i < WORDS; i++) {
      const aN = gN[i];
      const aS = gS[i];
      const bN = fN[i] & dN;
      const bS = fS[i] ^ dS;
      const nN = (aN ^ bN) | (aN & bN & ~(aS ^ bS));
      const nS = bS ^ (aN & (aS ^ bN ^ bS));
      if (i > 0) {
        gN[i - 1] = lowN | (nN << 31);
        gS[i - 1] = lowS | (nS << 31);
      }
      lowN = nN >>> 1;
      lowS = nS >>> 1;
    }
    gN[WORDS - 1] = lowN;
    gS[WORDS - 1] = lowS;
    for (let i = 0; i < WORDS; i++) {
      const aN = rN[i];
      const aS = rS[i];
      const bN = vN[i] & dN;
      const bS = vS[i] ^ dS;
      rN[i] = (aN ^ bN) | (aN & bN & ~(aS ^ bS));
      rS[i] = bS ^ (aN & (aS ^ bN ^ bS));
    }
  }
  // 1/in = v/f0 reversed; f0 is 1 or -1, so dividing flips signs or not.
  const flip = (fS[0] << 31) >> 31;
  const out = new Int8Array(P);
  for (let i = 0; i < P; i++) {
    const j = P - 1 - i;
    const n = (vN[j >> 5] >>> (j & 31)) & 1;
    const s = ((vS[j >> 5] ^ flip) >>> (j & 31)) & 1;
    out[i] = n - 2 * (n & s);
  }
  return nonzeroMask(delta) === 0 ? out : null;
}

/**
 * 1/(3*in) in R/q; exists for every short `in` (x^p-x-1 is irreducible mod
 * q).
 *
 * Representation, chosen for V8's optimising compiler: coefficients are
 * integers held in Float64Arrays and kept in (-q, q) (not centred) between
 * steps, reduced by truncation, x - q*trunc(x/q), a handful of float
 * instructions with no int/float conversions. The masked swap is the
 * arithmetic blend a + s*(b - a) with s in {0, 1}. All values are exact
 * integers far below 2^53: |g - c*f| < q + q12*q < 2^24. Only g0, which
 * decides the swap, and the scalars are frozen to the centred range. Float
 * multiplication and rounding take the same time for every such operand
 * (no subnormals occur), which is as close to constant time as JS gets.
 */
export function rqRecip3(input: Int8Array): Int32Array | null {
  const f = new Float64Array(P + 1);
  const g = new Float64Array(P + 1);
  const v = new Float64Array(P + 1);
  const r = new Float64Array(P + 1);
  r[0] = fqRecip(3);
  f[0] = 1;
  f[P - 1] = f[P] = -1;
  for (let i = 0; i < P; i++) g[P - 1 - i] = input[i];
  let delta = 1;
  for (let loop = 0; loop < 2 * P - 1; loop++) {
    const g0 = fqFreeze(g[0]);
    const mask = negativeMask(0 - delta) & nonzeroMask(g0);
    const s = mask & 1;
    delta ^= mask & (delta ^ (0 - delta));
    delta += 1;
    // f0 <- g0 on a swap; c = g0/f0 of the swapped pair (f0 is never 0: it
    // starts at 1 and only ever takes a nonzero g0).
    const f0 = fqFreeze(f[0]);
    const d0 = s * (g0 - f0);
    f[0] = f0 + d0;
    const c = fqFreeze((g0 - d0) * fqRecip(f0 + d0));
    // v <- x*v fused with the swap and r <- r - c*v, top down so that v[i-1]
    // is read before it is overwritten.
    const vTop = loop < P ? loop : P;
    for (let i = vTop; i > 0; i--) {
      const vi = v[i - 1];
      const ri = r[i];
      const d = s * (ri - vi);
      const nv = vi + d;
      v[i] = nv;
      const x = ri - d - c * nv;
      r[i] = x - Q * Math.trunc(x * INVQ);
    }
    {
      const ri = r[0];
      const nv = s * ri; // the shifted-in v[0] is 0
      v[0] = nv;
      const x = ri - nv - c * nv;
      r[0] = x - Q * Math.trunc(x * INVQ);
    }
    // Masked swap and g <- (g - c*f)/x over the positions that still matter.
    const left = 2 * P - 1 - loop;
    const fTop = left < P ? left : P;
    for (let i = 1; i <= fTop; i++) {
      const fi = f[i];
      const gi = g[i];
      const d = s * (gi - fi);
      const nf = fi + d;
      f[i] = nf;
      const x = gi - d - c * nf;
      g[i - 1] = x - Q * Math.trunc(x * INVQ);
    }
    g[fTop] = 0;
  }
  const scale = fqRecip(f[0]);
  const out = new Int32Array(P);
  for (let i = 0; i < P; i++) out[i] = fqFreeze(scale * v[P - 1 - i]);
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

/** p little-endian 32-bit words, one 4-byte draw each (as the reference's urandom32). */
function random32(random: RandomBytes): Uint32Array {
  const out = new Uint32Array(P);
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
