/**
 * Poly1305 (RFC 8439 section 2.5) with its block loop in WebAssembly.
 *
 * Neither node:crypto nor Web Crypto offers a bare Poly1305, and the pure-JS
 * one (@noble/ciphers, about 290 MB/s here) bounded
 * `chacha20-poly1305@openssh.com` to ~150 MB/s. WebAssembly has 64-bit
 * multiplies, so the classic 5 x 26-bit limb evaluation (each product below
 * 2^58) runs at native-like speed. No WebAssembly toolchain is assumed: the
 * module is encoded here, byte by byte, from the instruction list in
 * {@linkcode blocksBody} (the equivalent text format is in its comment).
 *
 * The WebAssembly function only absorbs whole 16-byte blocks into the
 * accumulator; key clamping, the final partial block (padded with 0x01 then
 * zeros, no 2^128 bit) and the final reduction and `+ s` are done in JS here,
 * the last one branch-free so time does not depend on the tag.
 *
 * One module instance is shared: {@linkcode poly1305Wasm} is synchronous and
 * never re-entered, so its scratch memory needs no locking.
 *
 * @module
 */

// --- A minimal WebAssembly binary encoder (WebAssembly Core spec 5.x). ---

/** Unsigned LEB128. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 for values that fit in 32 bits. */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(s: string): number[] {
  const b = [...new TextEncoder().encode(s)];
  return [...uleb(b.length), ...b];
}

const I32 = 0x7f;
const I64 = 0x7e;

// Instructions used below.
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const i32c = (v: number) => [0x41, ...sleb(v)];
const i64c = (v: number) => [0x42, ...sleb(v)];
/** i64.load32_u with alignment 0 (the message may be at any offset). */
const load32 = (offset: number) => [0x35, 0x00, ...uleb(offset)];
const load64 = (offset: number) => [0x29, 0x03, ...uleb(offset)];
const store64 = (offset: number) => [0x37, 0x03, ...uleb(offset)];
const I32_ADD = [0x6a];
const I32_GE_U = [0x4f];
const I64_ADD = [0x7c];
const I64_MUL = [0x7e];
const I64_AND = [0x83];
const I64_OR = [0x84];
const I64_SHR_U = [0x88];
const BLOCK = [0x02, 0x40];
const LOOP = [0x03, 0x40];
const END = [0x0b];
const br = (depth: number) => [0x0c, ...uleb(depth)];
const brIf = (depth: number) => [0x0d, ...uleb(depth)];

/** Byte offsets in memory: r0..r4 and h0..h4 as i64, then the message. */
const R_OFF = 0;
const H_OFF = 40;
/** Where callers put message bytes. */
const MSG_OFF = 128;
/** Message bytes per call (a multiple of 16). */
const MSG_MAX = 64 * 1024;
const MASK26 = 0x3ffffff;

/**
 * The body of `blocks(p: i32, len: i32, hibit: i64)`: absorbs `len / 16`
 * blocks at `p` into h (memory, 5 x 26-bit limbs) with r (memory), as
 * poly1305-donna-32 does. In text format:
 *
 * ```
 * (local r0..r4 s1..s4 h0..h4 d0..d4 c i64)
 * r_i = load r_i; s_i = r_i * 5; h_i = load h_i; len += p
 * block loop
 *   br_if 1 (p >= len)
 *   h0 += m32[p+0] & M;        h1 += (m32[p+3] >> 2) & M
 *   h2 += (m32[p+6] >> 4) & M; h3 += (m32[p+9] >> 6) & M
 *   h4 += (m32[p+12] >> 8) | hibit
 *   d0 = h0*r0 + h1*s4 + h2*s3 + h3*s2 + h4*s1   ... d4 likewise
 *   carry d0 -> d1 -> ... -> d4 -> h0 (times 5) -> h1
 *   p += 16; br 0
 * end end
 * store h_i
 * ```
 */
function blocksBody(): number[] {
  // Locals: params 0 p, 1 len, 2 hibit; then 20 i64 locals.
  const r = (i: number) => 3 + i; // r0..r4: 3..7
  const s = (i: number) => 7 + i; // s1..s4: 8..11
  const h = (i: number) => 12 + i; // h0..h4: 12..16
  const d = (i: number) => 17 + i; // d0..d4: 17..21
  const c = 22;
  const code: number[] = [];
  const emit = (...parts: number[][]) => {
    for (const p of parts) code.push(...p);
  };
  for (let i = 0; i < 5; i++) {
    emit(i32c(0), load64(R_OFF + 8 * i), set(r(i)));
    emit(i32c(0), load64(H_OFF + 8 * i), set(h(i)));
  }
  for (let i = 1; i < 5; i++) emit(get(r(i)), i64c(5), I64_MUL, set(s(i)));
  emit(get(1), get(0), I32_ADD, set(1));
  emit(BLOCK, LOOP, get(0), get(1), I32_GE_U, brIf(1));
  // Absorb the block: limb i takes bits 26i .. 26i+25 of the 128-bit block.
  const shifts = [0, 2, 4, 6, 8];
  for (let i = 0; i < 5; i++) {
    emit(get(h(i)), get(0), load32(3 * i));
    if (shifts[i]) emit(i64c(shifts[i]), I64_SHR_U);
    if (i < 4) emit(i64c(MASK26), I64_AND);
    else emit(get(2), I64_OR);
    emit(I64_ADD, set(h(i)));
  }
  // d_k = sum over i of h_i * (r_{k-i} or s_{k-i+5} when it wraps).
  for (let k = 0; k < 5; k++) {
    for (let i = 0; i < 5; i++) {
      const j = k - i;
      emit(get(h(i)), get(j >= 0 ? r(j) : s(j + 5)), I64_MUL);
      if (i > 0) emit(I64_ADD);
    }
    emit(set(d(k)));
  }
  // Carry propagation: c = d_k >> 26; h_k = d_k & M; d_{k+1} += c.
  for (let k = 0; k < 5; k++) {
    if (k > 0) emit(get(d(k)), get(c), I64_ADD, set(d(k)));
    emit(get(d(k)), i64c(26), I64_SHR_U, set(c));
    emit(get(d(k)), i64c(MASK26), I64_AND, set(h(k)));
  }
  // h0 += c * 5; c = h0 >> 26; h0 &= M; h1 += c.
  emit(get(h(0)), get(c), i64c(5), I64_MUL, I64_ADD, set(h(0)));
  emit(get(h(0)), i64c(26), I64_SHR_U, set(c));
  emit(get(h(0)), i64c(MASK26), I64_AND, set(h(0)));
  emit(get(h(1)), get(c), I64_ADD, set(h(1)));
  emit(get(0), i32c(16), I32_ADD, set(0), br(0), END, END);
  for (let i = 0; i < 5; i++) emit(i32c(0), get(h(i)), store64(H_OFF + 8 * i));
  emit(END);
  return [...vec([[20, I64]]), ...code];
}

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const body = blocksBody();
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec([[0x60, 3, I32, I32, I64, 0]])), // (i32 i32 i64) -> ()
    ...section(3, vec([[0]])),
    ...section(5, vec([[0x00, 2]])), // 2 pages: state + 64 KiB window
    ...section(
      7,
      vec([[...name("blocks"), 0x00, 0], [...name("memory"), 0x02, 0]]),
    ),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ]);
}

interface Poly1305Exports {
  blocks(p: number, len: number, hibit: bigint): void;
  memory: WebAssembly.Memory;
}

let instance: Poly1305Exports | null = null;

function wasm(): Poly1305Exports {
  if (instance === null) {
    const mod = new WebAssembly.Module(moduleBytes());
    instance = new WebAssembly.Instance(mod)
      .exports as unknown as Poly1305Exports;
  }
  return instance;
}

const HIBIT = 1n << 24n;

function le32(b: Uint8Array, i: number): number {
  return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
}

/**
 * Computes the Poly1305 tag of `msg` under the one-time `key` (32 bytes:
 * r || s, RFC 8439 section 2.5). Same result as @noble/ciphers `poly1305`.
 *
 * @param msg The message, any length.
 * @param key The one-time key; r is clamped here.
 * @param out Optional 16-byte destination for the tag.
 */
export function poly1305Wasm(
  msg: Uint8Array,
  key: Uint8Array,
  out: Uint8Array = new Uint8Array(16),
): Uint8Array {
  if (key.length !== 32) {
    throw new TypeError(`Cannot compute Poly1305: key is ${key.length} bytes`);
  }
  const w = wasm();
  const mem = new Uint8Array(w.memory.buffer);
  const m32 = new Uint32Array(w.memory.buffer, 0, MSG_OFF / 4);
  // Clamp r and split it into 26-bit limbs (RFC 8439 section 2.5.1).
  m32[0] = le32(key, 0) & 0x3ffffff;
  m32[2] = (le32(key, 3) >>> 2) & 0x3ffff03;
  m32[4] = (le32(key, 6) >>> 4) & 0x3ffc0ff;
  m32[6] = (le32(key, 9) >>> 6) & 0x3f03fff;
  m32[8] = (le32(key, 12) >>> 8) & 0x00fffff;
  m32[1] =
    m32[3] =
    m32[5] =
    m32[7] =
    m32[9] =
      0;
  m32.fill(0, 10, 20); // h = 0
  const n = msg.length;
  const full = n & ~15;
  for (let off = 0; off < full; off += MSG_MAX) {
    const len = Math.min(MSG_MAX, full - off);
    mem.set(msg.subarray(off, off + len), MSG_OFF);
    w.blocks(MSG_OFF, len, HIBIT);
  }
  if (full < n) {
    // Last partial block: the bytes, then 0x01, then zeros; no 2^128 bit.
    const rest = n - full;
    mem.set(msg.subarray(full), MSG_OFF);
    mem[MSG_OFF + rest] = 1;
    mem.fill(0, MSG_OFF + rest + 1, MSG_OFF + 16);
    w.blocks(MSG_OFF, 16, 0n);
  }
  let h0 = m32[10], h1 = m32[12], h2 = m32[14], h3 = m32[16], h4 = m32[18];
  // Fully carry h.
  let c = h1 >>> 26;
  h1 &= MASK26;
  h2 += c;
  c = h2 >>> 26;
  h2 &= MASK26;
  h3 += c;
  c = h3 >>> 26;
  h3 &= MASK26;
  h4 += c;
  c = h4 >>> 26;
  h4 &= MASK26;
  h0 += c * 5;
  c = h0 >>> 26;
  h0 &= MASK26;
  h1 += c;
  // g = h + 5 - 2^130; take g when it is non-negative (h >= p), without
  // branching on secret-dependent values.
  let g0 = h0 + 5;
  c = g0 >>> 26;
  g0 &= MASK26;
  let g1 = h1 + c;
  c = g1 >>> 26;
  g1 &= MASK26;
  let g2 = h2 + c;
  c = g2 >>> 26;
  g2 &= MASK26;
  let g3 = h3 + c;
  c = g3 >>> 26;
  g3 &= MASK26;
  let g4 = (h4 + c - (1 << 26)) | 0;
  let mask = ((g4 >>> 31) - 1) | 0; // all ones when g4 >= 0
  g0 &= mask;
  g1 &= mask;
  g2 &= mask;
  g3 &= mask;
  g4 &= mask;
  mask = ~mask;
  h0 = (h0 & mask) | g0;
  h1 = (h1 & mask) | g1;
  h2 = (h2 & mask) | g2;
  h3 = (h3 & mask) | g3;
  h4 = (h4 & mask) | g4;
  // h mod 2^128 as four 32-bit words, plus s (mod 2^128).
  const w0 = (h0 | (h1 << 26)) >>> 0;
  const w1 = ((h1 >>> 6) | (h2 << 20)) >>> 0;
  const w2 = ((h2 >>> 12) | (h3 << 14)) >>> 0;
  const w3 = ((h3 >>> 18) | (h4 << 8)) >>> 0;
  let f = w0 + le32(key, 16);
  writeLe32(out, 0, f);
  f = w1 + le32(key, 20) + carry(f);
  writeLe32(out, 4, f);
  f = w2 + le32(key, 24) + carry(f);
  writeLe32(out, 8, f);
  f = w3 + le32(key, 28) + carry(f);
  writeLe32(out, 12, f);
  return out;
}

/** The carry out of a 33-bit sum, without a branch. */
function carry(f: number): number {
  return (f - (f >>> 0)) / 0x100000000;
}

function writeLe32(b: Uint8Array, i: number, v: number): void {
  b[i] = v;
  b[i + 1] = v >>> 8;
  b[i + 2] = v >>> 16;
  b[i + 3] = v >>> 24;
}
