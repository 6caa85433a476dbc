/**
 * Poly1305 (RFC 8439 section 2.5) with its block loop in WebAssembly.
 *
 * Neither node:crypto nor Web Crypto offers a bare Poly1305, and the pure-JS
 * one (@noble/ciphers, about 290 MB/s here) bounded
 * `chacha20-poly1305@openssh.com` to ~150 MB/s. WebAssembly has 64-bit
 * multiplies, so the classic 5 x 26-bit limb evaluation (each product below
 * 2^58) runs at native-like speed. No WebAssembly toolchain is assumed: the
 * module is encoded here, byte by byte, from the instruction lists in
 * {@linkcode blocksBody} (the equivalent text format is in its comment) and
 * {@linkcode blocks2Body}.
 *
 * Two block loops: `blocks2`, WebAssembly SIMD, two blocks per step in two
 * lanes (2-way Horner with r^2, about 2.6 GB/s here at 32 KiB), used for
 * inputs of 64 bytes or more when the engine validates SIMD; and `blocks`,
 * scalar i64 (about 1.5 GB/s), for an odd last block, short inputs and
 * engines without SIMD. Both give the same h (proof in blocks2Body).
 *
 * The WebAssembly functions only absorb whole 16-byte blocks into the
 * accumulator; key clamping, the final partial block (padded with 0x01 then
 * zeros, no 2^128 bit) and the final reduction and `+ s` are done in JS here,
 * the last one branch-free so time does not depend on the tag.
 *
 * The instance in use is shared: {@linkcode poly1305Wasm} is synchronous and
 * never re-entered, so its scratch memory needs no locking.
 *
 * @module
 */
import {
  BLOCK,
  br,
  brIf,
  END,
  get,
  I32,
  i32,
  I32_ADD,
  I32_SUB,
  I32_WRAP_I64,
  I32X4_SPLAT,
  I64,
  i64,
  I64_AND,
  I64_EXTEND_I32_U,
  I64_OR,
  I64_SHR_U,
  i64Load,
  i64Store,
  LOOP,
  name,
  section,
  set,
  simd,
  uleb,
  V128,
  v128Load,
  vec,
} from "../_wasm_encoding.ts";

// Instructions used below besides the shared ones.
/** i64.load32_u with alignment 0 (the message may be at any offset). */
const load32 = (offset: number) => [0x35, 0x00, ...uleb(offset)];
const I32_GE_U = [0x4f];
const I64_ADD = [0x7c];
const I64_MUL = [0x7e];

/** Byte offsets in memory: r0..r4 and h0..h4 as i64, then the message. */
const R_OFF = 0;
const H_OFF = 40;
/** Where callers put message bytes. */
const MSG_OFF = 128;
/** Message bytes per call (a multiple of 16). */
const MSG_MAX = 64 * 1024;
const MASK26 = 0x3ffffff;
/** Below this many bytes the r^2 set-up of the SIMD loop does not pay. */
const SIMD_MIN = 64;

/**
 * Emits `d_k = sum over i of h_i * (r_{k-i}, or s_{k-i+5} = 5 r_{k-i+5}
 * when the index wraps)` for 64-bit locals: the product of two numbers in
 * 5 x 26-bit limbs modulo 2^130 - 5, since 2^130 = 5 (mod p).
 */
function scalarProducts(
  emit: (...parts: number[][]) => void,
  h: (i: number) => number,
  r: (i: number) => number,
  s: (i: number) => number,
  d: (i: number) => number,
): void {
  for (let k = 0; k < 5; k++) {
    for (let i = 0; i < 5; i++) {
      const j = k - i;
      emit(get(h(i)), get(j >= 0 ? r(j) : s(j + 5)), I64_MUL);
      if (i > 0) emit(I64_ADD);
    }
    emit(set(d(k)));
  }
}

/**
 * Emits the carry chain of poly1305-donna-32 from the products d into h:
 * d0 -> d1 -> ... -> d4 -> h0 (times 5) -> h1. For d_k < 2^59 it leaves
 * h0, h2, h3, h4 < 2^26 and h1 < 2^26 + 2^10 (h0 before its last carry is
 * below 2^26 + 5 (2^33 + 1)), the bounds the next block and the final
 * reduction assume.
 */
function scalarCarry(
  emit: (...parts: number[][]) => void,
  d: (i: number) => number,
  h: (i: number) => number,
  c: number,
): void {
  // c = d_k >> 26; h_k = d_k & M; d_{k+1} += c.
  for (let k = 0; k < 5; k++) {
    if (k > 0) emit(get(d(k)), get(c), I64_ADD, set(d(k)));
    emit(get(d(k)), i64(26n), I64_SHR_U, set(c));
    emit(get(d(k)), i64(BigInt(MASK26)), I64_AND, set(h(k)));
  }
  // h0 += c * 5; c = h0 >> 26; h0 &= M; h1 += c.
  emit(get(h(0)), get(c), i64(5n), I64_MUL, I64_ADD, set(h(0)));
  emit(get(h(0)), i64(26n), I64_SHR_U, set(c));
  emit(get(h(0)), i64(BigInt(MASK26)), I64_AND, set(h(0)));
  emit(get(h(1)), get(c), I64_ADD, set(h(1)));
}

/** A code buffer and the `emit` that appends instructions to it. */
function codeBuffer(): {
  code: number[];
  emit: (...parts: number[][]) => void;
} {
  const code: number[] = [];
  return {
    code,
    emit: (...parts: number[][]) => {
      for (const p of parts) code.push(...p);
    },
  };
}

/**
 * The body of `blocks(p: i32, len: i32, hibit: i32)`: absorbs `len / 16`
 * blocks at `p` into h (memory, 5 x 26-bit limbs) with r (memory), as
 * poly1305-donna-32 does. In text format:
 *
 * ```
 * (local r0..r4 s1..s4 h0..h4 d0..d4 c hi i64)
 * hi = i64(hibit); r_i = load r_i; s_i = r_i * 5; h_i = load h_i; len += p
 * block loop
 *   br_if 1 (p >= len)
 *   h0 += m32[p+0] & M;        h1 += (m32[p+3] >> 2) & M
 *   h2 += (m32[p+6] >> 4) & M; h3 += (m32[p+9] >> 6) & M
 *   h4 += (m32[p+12] >> 8) | hi
 *   d0 = h0*r0 + h1*s4 + h2*s3 + h3*s2 + h4*s1   ... d4 likewise
 *   carry d0 -> d1 -> ... -> d4 -> h0 (times 5) -> h1
 *   p += 16; br 0
 * end end
 * store h_i
 * ```
 */
function blocksBody(): number[] {
  // Locals: params 0 p, 1 len, 2 hibit (an i32: JS passes no BigInt); then
  // 21 i64 locals.
  const r = (i: number) => 3 + i; // r0..r4: 3..7
  const s = (i: number) => 7 + i; // s1..s4: 8..11
  const h = (i: number) => 12 + i; // h0..h4: 12..16
  const d = (i: number) => 17 + i; // d0..d4: 17..21
  const c = 22;
  const hi = 23;
  const { code, emit } = codeBuffer();
  emit(get(2), I64_EXTEND_I32_U, set(hi));
  for (let i = 0; i < 5; i++) {
    emit(i32(0), i64Load(R_OFF + 8 * i), set(r(i)));
    emit(i32(0), i64Load(H_OFF + 8 * i), set(h(i)));
  }
  for (let i = 1; i < 5; i++) emit(get(r(i)), i64(5n), I64_MUL, set(s(i)));
  emit(get(1), get(0), I32_ADD, set(1));
  emit(BLOCK, LOOP, get(0), get(1), I32_GE_U, brIf(1));
  // Absorb the block: limb i takes bits 26i .. 26i+25 of the 128-bit block.
  const shifts = [0, 2, 4, 6, 8];
  for (let i = 0; i < 5; i++) {
    emit(get(h(i)), get(0), load32(3 * i));
    if (shifts[i]) emit(i64(BigInt(shifts[i])), I64_SHR_U);
    if (i < 4) emit(i64(BigInt(MASK26)), I64_AND);
    else emit(get(hi), I64_OR);
    emit(I64_ADD, set(h(i)));
  }
  scalarProducts(emit, h, r, s, d);
  scalarCarry(emit, d, h, c);
  emit(get(0), i32(16), I32_ADD, set(0), br(0), END, END);
  for (let i = 0; i < 5; i++) emit(i32(0), get(h(i)), i64Store(H_OFF + 8 * i));
  emit(END);
  return [...vec([[21, I64]]), ...code];
}

// --- WebAssembly SIMD (fixed-width SIMD, WebAssembly Core spec 2.0). ---

const v128Const = (bytes: number[]) => [...simd(0x0c), ...bytes];
const shuffle = (lanes: number[]) => [...simd(0x0d), ...lanes];
const i32x4Replace = (lane: number) => [...simd(0x1c), lane];
const i64x2Extract = (lane: number) => [...simd(0x1d), lane];
const i64x2Replace = (lane: number) => [...simd(0x1e), lane];
const V128_AND = simd(0x4e);
const V128_OR = simd(0x50);
const I64X2_SHL = simd(0xcb);
const I64X2_SHR_U = simd(0xcd);
const I64X2_ADD = simd(0xce);
/** Lanes 0 and 1 (or 2 and 3) of two i32x4, zero-extended and multiplied
 * into an i64x2: one `pmuludq` (after lane moves) on x86, where `i64x2.mul`
 * is emulated with three. */
const EXTMUL_LOW_U = simd(0xde);
const EXTMUL_HIGH_U = simd(0xdf);

/** Little-endian bytes of four i32 lanes. */
function i32x4Bytes(lanes: number[]): number[] {
  return lanes.flatMap((v) =>
    [v, v >>> 8, v >>> 16, v >>> 24].map((b) => b & 0xff)
  );
}
/** The low 32 bits of each i64 lane of two i64x2 as one i32x4: [a0 a1 b0 b1]
 * (lane indexes of `i8x16.shuffle` address the 32 bytes of a || b). */
const PACK = [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27];
/** The low (high) 64-bit halves of two vectors: [a.lo b.lo] ([a.hi b.hi]). */
const LOW64 = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
const HIGH64 = LOW64.map((i) => i + 8);

/**
 * The body of `blocks2(p: i32, len: i32)`: absorbs the `len / 32` block pairs
 * at `p` (len a non-zero multiple of 32) into h, two blocks per step, with
 * WebAssembly SIMD. This is the 2-way Horner evaluation of the SIMD
 * variants of poly1305-donna (and of OpenSSL's poly1305-x86_64).
 *
 * Why it computes the same h: the scalar loop computes, for blocks
 * m_1 .. m_2k (each with its 2^128 bit) and the incoming h,
 *
 *   h' = h r^2k + sum over j = 1..2k of m_j r^(2k-j+1)   (mod 2^130 - 5).
 *
 * Lane A takes the odd blocks and lane B the even ones: for steps
 * i = 1 .. k-1, A = (A + m_(2i-1)) r^2 and B = (B + m_2i) r^2; the last step
 * multiplies A by r^2 and B by r. With A starting at h and B at 0, that gives
 * A = h r^2k + sum_i m_(2i-1) r^(2(k-i)+2) and
 * B = sum_i m_2i r^(2(k-i)+1): the exponents 2k-j+1 for j = 2i-1 and j = 2i.
 * So h' = A + B, which is added and carried in 64-bit scalars at the end.
 *
 * Bounds (no 64-bit overflow, every multiplicand fitting an i32 lane):
 * - r^2 is computed with the scalar multiply and carry: limbs < 2^26 + 2^9;
 *   r from the clamp: limbs < 2^26. So every multiplier is < 2^26 + 2^9 and
 *   every 5x multiplier < 5 (2^26 + 2^9) < 2^28.33.
 * - h limbs entering a step are < 2^26 + 2^10: the scalar carry's bound for
 *   the incoming h, and the vector carry below gives < 2^26 + 2^9. Message
 *   limbs are < 2^26 (limb 4: 24 bits plus the 2^24 bit, < 2^25). So
 *   h + m < 2^27 fits a 32-bit lane unsigned, and each 32x32 product is
 *   < 2^27 * 2^28.33 = 2^55.33.
 * - A sum of five products d_k < 5 * 2^55.33 < 2^57.66; the final A + B
 *   < 2^58.66 < 2^59, within the scalar carry's domain.
 *
 * The vector carry runs two chains at once (d0 -> d1 -> d2 -> d3 and
 * d3 -> d4 -> d0 -> d1, as poly1305-donna's SSE2 code does), so it is
 * shorter than the scalar one. From d_k < 2^57.66:
 * 1. c = d0 >> 26 < 2^31.7: d0 < 2^26, d1 += c;  d3 < 2^26, d4 += d3 >> 26.
 * 2. d1 < 2^26, d2 += d1 >> 26;  d4 < 2^26, d0 += 5 (d4 >> 26) < 2^26 +
 *    2^34.02.
 * 3. d2 < 2^26, d3 += d2 >> 26 (< 2^26 + 2^31.7); d0 < 2^26,
 *    d1 += d0 >> 26 (< 2^8.1 + 1): d1 < 2^26 + 2^8.2.
 * 4. d3 < 2^26, d4 += d3 >> 26 (< 2^5.7 + 1): d4 < 2^26 + 2^6.
 * All limbs end below 2^26 + 2^9, as assumed above.
 *
 * Layout: a limb of both lanes as i64x2 [A B], where the message limbs are
 * added; before the multiply, h + m is packed in pairs of limbs as i32x4
 * [A_0 B_0 A_1 B_1] (limbs 0,1; 2,3; 4,4) so that
 * `i64x2.extmul_low_i32x4_u` reads the first limb of the pair and
 * `extmul_high` the second, against multipliers laid out as
 * [x_A x_B x_A x_B]. Each extmul is an unpack of each operand and one
 * `pmuludq` on x86; the unpacks are the bound on throughput, so shuffles
 * elsewhere are kept few. No branch or address depends on the data.
 */
function blocks2Body(): number[] {
  // Params: 0 p, 1 len (then: the address of the last pair).
  // i64 locals 2..26.
  const r = (i: number) => 2 + i; // r0..r4
  const u = (i: number) => 7 + i; // r^2: u0..u4
  const t = (i: number) => 12 + i; // scalar h
  const d = (i: number) => 17 + i; // scalar products
  const c = 22;
  const sr = (i: number) => 22 + i; // 5 r_i: sr1..sr4 (23..26)
  // v128 locals 27..
  const R = (i: number) => 27 + i; // multipliers R0..R4
  const S = (i: number) => 31 + i; // 5x multipliers S1..S4 (32..35)
  const H = (i: number) => 36 + i; // h, i64x2 per limb
  const D = (i: number) => 41 + i; // products, i64x2 per limb
  const MA = 46, MB = 47, T0 = 48, T1 = 49;
  const P = (i: number) => 50 + i; // packed h + m: limbs 01, 23, 4
  const C = 53, MASK64 = 54, HIBIT64 = 55;
  const { code, emit } = codeBuffer();

  // r, 5r and the incoming h from memory; u = r^2 (scalar, fully carried).
  for (let i = 0; i < 5; i++) {
    emit(i32(0), i64Load(R_OFF + 8 * i), set(r(i)));
    emit(i32(0), i64Load(H_OFF + 8 * i), set(t(i)));
  }
  for (let i = 1; i < 5; i++) emit(get(r(i)), i64(5n), I64_MUL, set(sr(i)));
  scalarProducts(emit, r, r, sr, d);
  scalarCarry(emit, d, u, c);
  // Multipliers for the steps before the last: r^2 in both lanes.
  for (let i = 0; i < 5; i++) {
    emit(get(u(i)), I32_WRAP_I64, I32X4_SPLAT, set(R(i)));
    if (i > 0) {
      emit(get(u(i)), i64(5n), I64_MUL, I32_WRAP_I64, I32X4_SPLAT, set(S(i)));
    }
  }
  // Lane A starts at h, lane B at 0 (locals start zeroed).
  for (let i = 0; i < 5; i++) {
    emit(get(H(i)), get(t(i)), i64x2Replace(0), set(H(i)));
  }
  emit(v128Const(i32x4Bytes([MASK26, 0, MASK26, 0])), set(MASK64));
  const hibit = 1 << 24;
  emit(v128Const(i32x4Bytes([hibit, 0, hibit, 0])), set(HIBIT64));
  // len = address of the last pair.
  emit(get(0), get(1), I32_ADD, i32(32), I32_SUB, set(1));

  /** One step: P = h + m (packed), D = P * (R, S); then carry D into H. */
  const step = (carry: boolean) => {
    emit(get(0), v128Load(0), set(MA), get(0), v128Load(16), set(MB));
    emit(get(MA), get(MB), shuffle(LOW64), set(T0));
    emit(get(MA), get(MB), shuffle(HIGH64), set(T1));
    // h_i += message limb i of both blocks (bits 26i .. 26i+25), in i64
    // lanes (adding before packing saves shuffles, the scarcest unit here).
    const absorb = (i: number, ...limb: number[][]) => {
      emit(get(H(i)), ...limb, I64X2_ADD, set(H(i)));
    };
    absorb(0, get(T0), get(MASK64), V128_AND);
    absorb(1, get(T0), i32(26), I64X2_SHR_U, get(MASK64), V128_AND);
    absorb(
      2,
      [...get(T0), ...i32(52), ...I64X2_SHR_U],
      [...get(T1), ...i32(12), ...I64X2_SHL, ...V128_OR],
      [...get(MASK64), ...V128_AND],
    );
    absorb(3, get(T1), i32(14), I64X2_SHR_U, get(MASK64), V128_AND);
    absorb(4, get(T1), i32(40), I64X2_SHR_U, get(HIBIT64), V128_OR);
    // Packed in pairs as i32x4 (each h + m < 2^27: the low 32 bits are all).
    emit(get(H(0)), get(H(1)), shuffle(PACK), set(P(0)));
    emit(get(H(2)), get(H(3)), shuffle(PACK), set(P(1)));
    emit(get(H(4)), get(H(4)), shuffle(PACK), set(P(2)));
    // D_k = sum over i of h_i * (R_{k-i} or S_{k-i+5}); h_i is the low
    // (even i) or high (odd i) half of P(i >> 1).
    for (let k = 0; k < 5; k++) {
      for (let i = 0; i < 5; i++) {
        const j = k - i;
        emit(get(P(i >> 1)), get(j >= 0 ? R(j) : S(j + 5)));
        emit(i % 2 === 0 ? EXTMUL_LOW_U : EXTMUL_HIGH_U);
        // Sum as ((p0 + p1) + (p2 + p3)) + p4: a shorter dependency chain.
        if (i === 1 || i === 3) emit(I64X2_ADD);
        if (i === 3 || i === 4) emit(I64X2_ADD);
      }
      emit(set(D(k)));
    }
    if (!carry) return;
    // Two interleaved carry chains; the bounds are in the doc comment above.
    const carryInto = (from: number, to: number, times5 = false) => {
      emit(get(D(from)), i32(26), I64X2_SHR_U, set(C));
      emit(get(D(from)), get(MASK64), V128_AND, set(D(from)));
      emit(get(D(to)), get(C), I64X2_ADD);
      if (times5) emit(get(C), i32(2), I64X2_SHL, I64X2_ADD);
      emit(set(D(to)));
    };
    carryInto(0, 1);
    carryInto(3, 4);
    carryInto(1, 2);
    carryInto(4, 0, true);
    carryInto(2, 3);
    carryInto(0, 1);
    carryInto(3, 4);
    for (let i = 0; i < 5; i++) emit(get(D(i)), set(H(i)));
  };

  emit(BLOCK, LOOP, get(0), get(1), I32_GE_U, brIf(1));
  step(true);
  emit(get(0), i32(32), I32_ADD, set(0), br(0), END, END);
  // The last pair: lane A times r^2, lane B times r.
  for (let i = 0; i < 5; i++) {
    emit(get(R(i)), get(r(i)), I32_WRAP_I64, i32x4Replace(1));
    emit(get(r(i)), I32_WRAP_I64, i32x4Replace(3), set(R(i)));
    if (i > 0) {
      emit(get(S(i)), get(sr(i)), I32_WRAP_I64, i32x4Replace(1));
      emit(get(sr(i)), I32_WRAP_I64, i32x4Replace(3), set(S(i)));
    }
  }
  step(false);
  // h = A + B, carried as the scalar loop does, back to memory.
  for (let k = 0; k < 5; k++) {
    emit(get(D(k)), i64x2Extract(0), get(D(k)), i64x2Extract(1), I64_ADD);
    emit(set(d(k)));
  }
  scalarCarry(emit, d, t, c);
  for (let i = 0; i < 5; i++) emit(i32(0), get(t(i)), i64Store(H_OFF + 8 * i));
  emit(END);
  return [...vec([[25, I64], [29, V128]]), ...code];
}

/** The module: `blocks`, and `blocks2` when `withSimd`. */
function moduleBytes(withSimd: boolean): Uint8Array<ArrayBuffer> {
  const funcs = [blocksBody(), ...(withSimd ? [blocks2Body()] : [])];
  const exports = [[...name("memory"), 0x02, 0], [...name("blocks"), 0x00, 0]];
  if (withSimd) exports.push([...name("blocks2"), 0x00, 1]);
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(
      1,
      vec([
        [0x60, 3, I32, I32, I32, 0], // blocks: (i32 i32 i32) -> ()
        [0x60, 2, I32, I32, 0], // blocks2: (i32 i32) -> ()
      ]),
    ),
    ...section(3, vec(withSimd ? [[0], [1]] : [[0]])),
    ...section(5, vec([[0x00, 2]])), // 2 pages: state + 64 KiB window
    ...section(7, vec(exports)),
    ...section(10, vec(funcs.map((b) => [...uleb(b.length), ...b]))),
  ]);
}

interface Poly1305Exports {
  blocks(p: number, len: number, hibit: number): void;
  blocks2?: (p: number, len: number) => void;
  memory: WebAssembly.Memory;
}

/** An instance and views of its memory (which never grows, so they stay
 * valid); `blocks2` is null in the scalar-only module. */
interface Poly1305Module {
  blocks(p: number, len: number, hibit: number): void;
  blocks2: ((p: number, len: number) => void) | null;
  mem: Uint8Array;
  m32: Uint32Array;
}

function instantiate(bytes: Uint8Array<ArrayBuffer>): Poly1305Module {
  const e = new WebAssembly.Instance(new WebAssembly.Module(bytes))
    .exports as unknown as Poly1305Exports;
  return {
    blocks: e.blocks,
    blocks2: e.blocks2 ?? null,
    mem: new Uint8Array(e.memory.buffer),
    m32: new Uint32Array(e.memory.buffer, 0, MSG_OFF / 4),
  };
}

/** The SIMD module; null when the engine does not validate it (undefined
 * until first asked). */
let simdInstance: Poly1305Module | null | undefined;
let scalarInstance: Poly1305Module | null = null;
/** The module in use: SIMD when available unless a test asked otherwise. */
let current: Poly1305Module | null = null;

function simdModule(): Poly1305Module | null {
  if (simdInstance === undefined) {
    const bytes = moduleBytes(true);
    simdInstance = WebAssembly.validate(bytes) ? instantiate(bytes) : null;
  }
  return simdInstance;
}

function scalarModule(): Poly1305Module {
  return scalarInstance ??= instantiate(moduleBytes(false));
}

function wasm(): Poly1305Module {
  return current ??= simdModule() ?? scalarModule();
}

/**
 * Switches between the WebAssembly SIMD module and the scalar-only one (the
 * fallback for engines without SIMD), for tests and benchmarks that compare
 * them, and returns whether SIMD is now in use: false when the engine does
 * not validate the SIMD module.
 *
 * @param enabled Whether to use SIMD when the engine has it.
 * @returns Whether the SIMD block loop will be used.
 */
export function setPoly1305Simd(enabled: boolean): boolean {
  current = (enabled ? simdModule() : null) ?? scalarModule();
  return current.blocks2 !== null;
}

const HIBIT = 1 << 24;

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
  const { mem, m32 } = w;
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
  const blocks2 = full >= SIMD_MIN ? w.blocks2 : null;
  for (let off = 0; off < full; off += MSG_MAX) {
    const len = Math.min(MSG_MAX, full - off);
    mem.set(len === n ? msg : msg.subarray(off, off + len), MSG_OFF);
    const pairs = blocks2 === null ? 0 : len & ~31;
    if (blocks2 !== null && pairs !== 0) blocks2(MSG_OFF, pairs);
    if (pairs !== len) w.blocks(MSG_OFF + pairs, len - pairs, HIBIT);
  }
  if (full < n) {
    // Last partial block: the bytes, then 0x01, then zeros; no 2^128 bit.
    // (A byte loop: cheaper than a subarray for at most 15 bytes.)
    const rest = n - full;
    for (let i = 0; i < rest; i++) mem[MSG_OFF + i] = msg[full + i];
    mem[MSG_OFF + rest] = 1;
    for (let i = rest + 1; i < 16; i++) mem[MSG_OFF + i] = 0;
    w.blocks(MSG_OFF, 16, 0);
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
