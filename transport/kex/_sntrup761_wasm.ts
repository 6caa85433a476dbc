/**
 * The three hot loops of sntrup761 (`./_sntrup761x25519.ts`) as a small
 * WebAssembly module (1.4 KB): the divstep loops of the two reciprocals
 * (R/q and R/3) and the schoolbook product by a small polynomial. The
 * module is written below with a minimal assembler; the runtime
 * instantiates its stored output, {@linkcode KERNELS_BASE64}.
 *
 * Why WebAssembly: a key pair is usually made once per process (one SSH
 * connection), so its cost is a cold run. In plain JS the same loops spend
 * most of a cold run interpreted or in baseline code while V8's optimising
 * compiler catches up (measured: 10-20 ms for the R/q reciprocal alone,
 * against 2.3 ms once optimised). WebAssembly is compiled before it runs
 * (Liftoff: about 0.2 ms for this module) and offers 2-lane SIMD; the
 * divsteps are run in chunks so that V8's background tier-up to optimised
 * code takes over after the first chunks (measured cold: R/q reciprocal
 * about 2 ms, R/3 about 1 ms, a product 0.1-0.5 ms).
 *
 * The kernels hold no secrets of their own; the caller copies inputs into
 * {@linkcode SntrupKernels.memory}, runs a kernel, reads the result and
 * wipes the region. Like the JS they replace, the loops have no branches
 * and no memory addresses that depend on the data (comparisons become
 * 0/1 values, swaps are masks or blends); WebAssembly gives no timing
 * guarantee either, but its integer and float instructions on x64 and
 * arm64 run in data-independent time for these operands (no subnormals;
 * V8 compiles f64.ne with a jump that only a NaN takes, and no NaN occurs).
 *
 * Binary format: WebAssembly core specification 2.0, chapter 5 (sections,
 * LEB128 integers, instruction encodings), with the fixed-width SIMD
 * instructions (0xfd prefix) of the same version.
 *
 * @module
 */
import {
  brIf,
  type Code,
  END,
  flat,
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
  tee,
  uleb,
  V128,
  v128Load,
  vec,
} from "../_wasm_encoding.ts";

const P = 761;
const Q = 4591;

// ----- memory layout (one 64 KiB page; byte offsets) -----

/** Stride of one R/q polynomial: p + 1 coefficients, padding on both ends. */
const RQ_STRIDE = 8 * (P + 4);
/**
 * R/q divsteps: f, g, v, r as Float64 coefficient arrays. Each has at
 * least one zero double below position 0 (v[-1] = 0 is read as the
 * coefficient shifted into v) and two above position p (the 2-lane loops
 * may touch position p + 1; it is never read back as a result).
 */
export const RQ_F: number = 16;
/** Offset of g (see {@linkcode RQ_F}). */
export const RQ_G: number = RQ_F + RQ_STRIDE;
/** Offset of v. */
export const RQ_V: number = RQ_G + RQ_STRIDE;
/** Offset of r. */
export const RQ_R: number = RQ_V + RQ_STRIDE;
/** End of the R/q region. */
export const RQ_END: number = RQ_R + RQ_STRIDE;

/** 64-bit words per bit plane: positions 0..p need 762 bits, 12 words. */
const R3_WORDS = (P + 64) >> 6;
/** Bytes per bit-sliced R/3 polynomial: N plane, then S plane. */
const R3_STRIDE = 2 * 8 * R3_WORDS;
/**
 * R/3 divsteps: f, g, v, r bit-sliced. Each polynomial is an N plane (bit j
 * of the plane: coefficient j is nonzero) followed by an S plane (bit j:
 * coefficient j is -1, meaningless where N is 0), 12 little-endian 64-bit
 * words each; viewed as 32-bit words the bit of coefficient j is bit j & 31
 * of word j >> 5.
 */
export const R3_F: number = (RQ_END + 63) & ~63;
/** Offset of g. */
export const R3_G: number = R3_F + R3_STRIDE;
/** Offset of v. */
export const R3_V: number = R3_G + R3_STRIDE;
/** Offset of r. */
export const R3_R: number = R3_V + R3_STRIDE;
/** Words of 32 bits per plane, for the JS side. */
export const R3_PLANE_INT32: number = 2 * R3_WORDS;
const R3_END = R3_R + R3_STRIDE;

/**
 * Product f*g in Z[x] (no reduction): f at MUL_F and g at MUL_G as Int32
 * (g zero-padded to a multiple of 4 coefficients), the 2p-1 coefficients of
 * the product at MUL_FG (Int32, room for 4-lane overrun).
 */
export const MUL_F: number = R3_END;
/** Offset of g (Int32, p + 3 entries, the last 3 zero). */
export const MUL_G: number = MUL_F + 4 * (P + 3);
/** Offset of the product (Int32, 2p + 3 entries). */
export const MUL_FG: number = MUL_G + 4 * (P + 3);
/** End of all regions. */
export const MEMORY_END: number = MUL_FG + 4 * (2 * P + 3);

// ----- a minimal assembler (the instructions ../_wasm_encoding.ts lacks) -----

const F64 = 0x7c;
const SELECT = 0x1b;
// Memory: the address on the stack plus a constant offset (memarg).
const i32Load = (off: number): Code => [0x28, 2, uleb(off)];
const f64Load = (off: number): Code => [0x2b, 3, uleb(off)];
const f64Store = (off: number): Code => [0x39, 3, uleb(off)];
// Constants.
const f64 = (x: number): Code => [
  0x44,
  Array.from(new Uint8Array(Float64Array.of(x).buffer)),
];
// Numeric.
const I32_NE = 0x47;
const I32_LT_S = 0x48;
const I32_GT_S = 0x4a;
const I32_LE_S = 0x4c;
const I32_GE_S = 0x4e;
const F64_NE = 0x62;
const I32_AND = 0x71;
const I32_XOR = 0x73;
const I32_SHL = 0x74;
const I32_SHR_S = 0x75;
const I64_SUB = 0x7d;
const I64_XOR = 0x85;
const I64_SHL = 0x86;
const F64_NEAREST = 0x9e;
const F64_ADD = 0xa0;
const F64_SUB = 0xa1;
const F64_MUL = 0xa2;
const F64_CONVERT_I32_S = 0xb7;
// SIMD (0xfd prefix).
const v128Store = (off: number): Code => simd(0x0b, 0, ...uleb(off));
const F64X2_SPLAT = simd(0x14);
const F64X2_TRUNC = simd(0x7a);
const I32X4_ADD = simd(0xae);
const I32X4_MUL = simd(0xb5);
const F64X2_ADD = simd(0xf0);
const F64X2_SUB = simd(0xf1);
const F64X2_MUL = simd(0xf2);

/** min(a, b) of i32 expressions (each emitted twice): select, no branch. */
const minI32 = (a: Code, b: Code): Code => [a, b, a, b, I32_LT_S, SELECT];

/** Parameters of both divstep kernels: (first, end, delta) -> delta. */
const [LOOPI, END_, DELTA] = [0, 1, 2];

/**
 * delta <- (swap ? -delta : delta) + 1 without a branch, `mask` pushing the
 * swap as an i32 0 or -1.
 */
const nextDelta = (mask: Code): Code => [
  get(DELTA),
  mask,
  get(DELTA),
  i32(0),
  get(DELTA),
  I32_SUB,
  I32_XOR,
  I32_AND,
  I32_XOR,
  i32(1),
  I32_ADD,
  set(DELTA),
];

/** Closes a divstep kernel's step loop (while ++first < end) and returns
 * delta. */
const DIVSTEPS_END: Code = [
  get(LOOPI),
  i32(1),
  I32_ADD,
  tee(LOOPI),
  get(END_),
  I32_LT_S,
  brIf(0),
  END,
  get(DELTA),
];

// ----- kernel: R/q divsteps -----
//
// rq(first, end, delta) -> delta runs steps first..end-1 of the 2p-1 (see
// rqRecip3 in ./_sntrup761x25519.ts for the algorithm and the active
// lengths). Coefficients are integer-valued doubles kept in [-q, q] by
// x - q*trunc(x * fl(1/q)) (closed: the float quotient of an exact multiple
// may fall just below it); f0 and g0 are centred with `nearest`, exact
// because x/q is never a half-integer for odd q. The elimination is the
// specification's division-free g <- (f0*g - g0*f)/x, r <- f0*r - g0*v:
// |f0*g - g0*f| <= 2 * 2295 * 4591 < 2^25, far inside the 2^53 of exact
// doubles. Each loop handles two coefficients per iteration (f64x2).

function rqKernel(): Code {
  // Locals after the parameters (LOOPI, END_, DELTA).
  const [SW, PP, TOP] = [3, 4, 5]; // i32
  const [S, F0, G0, D] = [6, 7, 8, 9]; // f64
  const [VS, VF0, VG0, VQ, VIQ] = [10, 11, 12, 13, 14]; // v128
  const [A, B, VD, NV, X] = [15, 16, 17, 18, 19]; // v128
  const locals = [[3, I32], [4, F64], [10, V128]];
  /** x (f64 on the stack, kept in local D) centred mod q. */
  const centre = [
    tee(D),
    get(D),
    f64(1 / Q),
    F64_MUL,
    F64_NEAREST,
    f64(Q),
    F64_MUL,
    F64_SUB,
  ];
  /** x in local X (v128) reduced into [-q, q], both lanes. */
  const reduce = [
    get(X),
    get(X),
    get(VIQ),
    F64X2_MUL,
    F64X2_TRUNC,
    get(VQ),
    F64X2_MUL,
    F64X2_SUB,
  ];
  /**
   * The shared body of both loops, at address PP: a = "from" lanes (v or f),
   * b = "to" lanes (r or g); d = s*(b - a); the new a is a + d (stored at
   * aStore), the eliminated b is f0*(b - d) - g0*(a + d) (stored at
   * bStore).
   */
  const body = (
    aLoad: number,
    bLoad: number,
    aStore: number,
    bStore: number,
  ) => [
    get(PP),
    v128Load(aLoad),
    set(A),
    get(PP),
    v128Load(bLoad),
    set(B),
    get(VS),
    get(B),
    get(A),
    F64X2_SUB,
    F64X2_MUL,
    set(VD),
    get(PP),
    get(A),
    get(VD),
    F64X2_ADD,
    tee(NV),
    v128Store(aStore),
    get(VF0),
    get(B),
    get(VD),
    F64X2_SUB,
    F64X2_MUL,
    get(VG0),
    get(NV),
    F64X2_MUL,
    F64X2_SUB,
    set(X),
    get(PP),
    reduce,
    v128Store(bStore),
  ];
  const code: Code = [
    f64(Q),
    F64X2_SPLAT,
    set(VQ),
    f64(1 / Q),
    F64X2_SPLAT,
    set(VIQ),
    LOOP,
    // g0, f0 centred; s = (delta > 0 && g0 != 0) as 0/1, SW = -s.
    i32(0),
    f64Load(RQ_G),
    centre,
    set(G0),
    i32(0),
    f64Load(RQ_F),
    centre,
    set(F0),
    get(DELTA),
    i32(0),
    I32_GT_S,
    get(G0),
    f64(0),
    F64_NE,
    I32_AND,
    tee(SW),
    F64_CONVERT_I32_S,
    set(S),
    i32(0),
    get(SW),
    I32_SUB,
    set(SW),
    nextDelta(get(SW)),
    // Swapped scalars: f0 <- f0 + s*(g0 - f0), g0 <- g0 - s*(g0 - f0); the
    // new f0 is stored (the loops below start at position 1 of f).
    get(S),
    get(G0),
    get(F0),
    F64_SUB,
    F64_MUL,
    set(D),
    get(F0),
    get(D),
    F64_ADD,
    set(F0),
    get(G0),
    get(D),
    F64_SUB,
    set(G0),
    i32(0),
    get(F0),
    f64Store(RQ_F),
    get(S),
    F64X2_SPLAT,
    set(VS),
    get(F0),
    F64X2_SPLAT,
    set(VF0),
    get(G0),
    F64X2_SPLAT,
    set(VG0),
    // v, r: positions 0..min(loop, p), pairs (2j, 2j+1) from the top down;
    // v is read one position lower (x*v), so v[i-1] is read before the
    // pair below overwrites it. A pair past the top sees zeros, or at the
    // top writes only the padding position p + 1.
    minI32(get(LOOPI), i32(P)),
    i32(1),
    I32_SHR_S,
    i32(4),
    I32_SHL,
    set(PP),
    LOOP,
    body(RQ_V - 8, RQ_R, RQ_V, RQ_R),
    get(PP),
    i32(16),
    I32_SUB,
    tee(PP),
    i32(0),
    I32_GE_S,
    brIf(0),
    END,
    // f, g: positions 1..min(2p-1-loop, p), pairs ascending; g is stored
    // one position lower (/x). g's position `top` is then zeroed.
    minI32([i32(2 * P - 1), get(LOOPI), I32_SUB], i32(P)),
    i32(3),
    I32_SHL,
    set(TOP),
    i32(8),
    set(PP),
    LOOP,
    body(RQ_F, RQ_G, RQ_F, RQ_G - 8),
    get(PP),
    i32(16),
    I32_ADD,
    tee(PP),
    get(TOP),
    I32_LE_S,
    brIf(0),
    END,
    get(TOP),
    f64(0),
    f64Store(RQ_G),
    DIVSTEPS_END,
  ];
  return [locals, code];
}

// ----- kernel: R/3 divsteps, bit-sliced -----
//
// r3(first, end, delta) -> delta, the same loop over F_3 with 64 coefficients
// per word (see r3Recip in ./_sntrup761x25519.ts): v <- x*v; masked swap;
// g <- (g + d*f)/x and r <- r + d*v with d = -g0*f0 (1/f0 = f0 in F_3).
// Adding b = d*f to a per bit: if exactly one is nonzero the sum is that
// one; if both are and the signs agree it is -a (1+1 = -1), else 0:
// N = (aN ^ bN) | (aN & bN & ~(aS ^ bS)), S = aN ? aS ^ bN : bS.

const TOP_MASK = (1n << BigInt(P + 1 - 64 * (R3_WORDS - 1))) - 1n;
const S_PLANE = 8 * R3_WORDS;

function r3Kernel(): Code {
  // Locals after the parameters (LOOPI, END_, DELTA).
  const [PP] = [3]; // i32
  const [SW, DN, DS, AN, AS, BN, BS, T] = [4, 5, 6, 7, 8, 9, 10, 11]; // i64
  const locals = [[1, I32], [8, I64]];
  const I64_NOT = [i64(-1n), I64_XOR];
  /** Closes a loop over 8-byte words: PP += 8 while PP != `limit`. */
  const wordLoopEnd = (limit: number): Code => [
    get(PP),
    i32(8),
    I32_ADD,
    tee(PP),
    i32(limit),
    I32_NE,
    brIf(0),
    END,
  ];
  /** Shifts the two planes of poly at `base` up (x*) by one position. */
  const shiftUp = (base: number) => [
    i32(8 * (R3_WORDS - 1)),
    set(PP),
    LOOP,
    [0, S_PLANE].map((pl) => [
      get(PP),
      get(PP),
      i64Load(base + pl),
      i64(1n),
      I64_SHL,
      get(PP),
      i64Load(base + pl - 8),
      i64(63n),
      I64_SHR_U,
      I64_OR,
      i64Store(base + pl),
    ]),
    get(PP),
    i32(8),
    I32_SUB,
    tee(PP),
    brIf(0),
    END,
    [0, S_PLANE].map((pl) => [
      i32(0),
      i32(0),
      i64Load(base + pl),
      i64(1n),
      I64_SHL,
      i64Store(base + pl),
      i32(8 * (R3_WORDS - 1)),
      i32(8 * (R3_WORDS - 1)),
      i64Load(base + pl),
      i64(TOP_MASK),
      I64_AND,
      i64Store(base + pl),
    ]),
  ];
  /** Swaps a and b where SW is all ones (both planes, all words). */
  const swap = (a: number, b: number) => [
    get(PP),
    i64Load(a),
    get(PP),
    i64Load(b),
    I64_XOR,
    get(SW),
    I64_AND,
    set(T),
    get(PP),
    get(PP),
    i64Load(a),
    get(T),
    I64_XOR,
    i64Store(a),
    get(PP),
    get(PP),
    i64Load(b),
    get(T),
    I64_XOR,
    i64Store(b),
  ];
  /** a <- a + d*b over all words (d as the masks DN, DS). */
  const addMul = (a: number, b: number) => [
    i32(0),
    set(PP),
    LOOP,
    get(PP),
    i64Load(a),
    set(AN),
    get(PP),
    i64Load(a + S_PLANE),
    set(AS),
    get(PP),
    i64Load(b),
    get(DN),
    I64_AND,
    set(BN),
    get(PP),
    i64Load(b + S_PLANE),
    get(DS),
    I64_XOR,
    set(BS),
    get(PP),
    get(AN),
    get(BN),
    I64_XOR,
    get(AN),
    get(BN),
    I64_AND,
    get(AS),
    get(BS),
    I64_XOR,
    I64_NOT,
    I64_AND,
    I64_OR,
    i64Store(a),
    get(PP),
    get(BS),
    get(AN),
    get(AS),
    get(BN),
    I64_XOR,
    get(BS),
    I64_XOR,
    I64_AND,
    I64_XOR,
    i64Store(a + S_PLANE),
    wordLoopEnd(8 * R3_WORDS),
  ];
  /** g <- g/x (its position 0 is zero after the elimination). */
  const shiftDown = (base: number) => [
    i32(0),
    set(PP),
    LOOP,
    [0, S_PLANE].map((pl) => [
      get(PP),
      get(PP),
      i64Load(base + pl),
      i64(1n),
      I64_SHR_U,
      get(PP),
      i64Load(base + pl + 8),
      i64(63n),
      I64_SHL,
      I64_OR,
      i64Store(base + pl),
    ]),
    wordLoopEnd(8 * (R3_WORDS - 1)),
    [0, S_PLANE].map((pl) => [
      get(PP),
      get(PP),
      i64Load(base + pl),
      i64(1n),
      I64_SHR_U,
      i64Store(base + pl),
    ]),
  ];
  const code: Code = [
    LOOP,
    shiftUp(R3_V),
    // SW = -(delta > 0 && g0 != 0) as a 64-bit mask.
    i64(0n),
    get(DELTA),
    i32(0),
    I32_GT_S,
    I64_EXTEND_I32_U,
    i32(0),
    i64Load(R3_G),
    I64_AND,
    i64(1n),
    I64_AND,
    I64_SUB,
    set(SW),
    nextDelta([get(SW), I32_WRAP_I64]),
    i32(0),
    set(PP),
    LOOP,
    swap(R3_F, R3_G),
    swap(R3_V, R3_R),
    wordLoopEnd(2 * S_PLANE),
    // d = -g0*f0: DN = -(g0 != 0), DS = -(sign f0 == sign g0).
    i64(0n),
    i32(0),
    i64Load(R3_G),
    i64(1n),
    I64_AND,
    I64_SUB,
    set(DN),
    i64(0n),
    i32(0),
    i64Load(R3_F + S_PLANE),
    i32(0),
    i64Load(R3_G + S_PLANE),
    I64_XOR,
    i64(1n),
    I64_XOR,
    i64(1n),
    I64_AND,
    I64_SUB,
    set(DS),
    addMul(R3_G, R3_F),
    shiftDown(R3_G),
    addMul(R3_R, R3_V),
    DIVSTEPS_END,
  ];
  return [locals, code];
}

// ----- kernel: product by a small polynomial -----
//
// mul(): MUL_FG[i+j] += MUL_F[i] * MUL_G[j] for i, j < p, four j per step
// (i32x4). The caller zeroes MUL_FG and bounds the sums: |f_i| <= 2295 and
// |g_j| <= 1, so every sum is below 761 * 2295 < 2^21.

function mulKernel(): Code {
  const [I, J] = [0, 1]; // i32, byte offsets of f_i and g_j
  const [FI] = [2]; // v128
  const locals = [[2, I32], [1, V128]];
  const code: Code = [
    LOOP,
    get(I),
    i32Load(MUL_F),
    I32X4_SPLAT,
    set(FI),
    i32(0),
    set(J),
    LOOP,
    get(I),
    get(J),
    I32_ADD,
    get(I),
    get(J),
    I32_ADD,
    v128Load(MUL_FG),
    get(FI),
    get(J),
    v128Load(MUL_G),
    I32X4_MUL,
    I32X4_ADD,
    v128Store(MUL_FG),
    get(J),
    i32(16),
    I32_ADD,
    tee(J),
    i32(4 * (P + 3)),
    I32_LT_S,
    brIf(0),
    END,
    get(I),
    i32(4),
    I32_ADD,
    tee(I),
    i32(4 * P),
    I32_LT_S,
    brIf(0),
    END,
  ];
  return [locals, code];
}

// ----- the module -----

/** The kernels and the memory they work in. */
export interface SntrupKernels {
  /** 64 KiB; regions at the offsets exported above. */
  memory: { readonly buffer: ArrayBuffer };
  /** Steps first..end-1 of the R/q divstep loop; returns the new delta. */
  rq: (first: number, end: number, delta: number) => number;
  /** Steps first..end-1 of the R/3 divstep loop; returns the new delta. */
  r3: (first: number, end: number, delta: number) => number;
  /** MUL_FG += MUL_F * MUL_G (schoolbook, no reduction). */
  mul: () => void;
}

/**
 * Assembles the module from the kernels above. Runtime code instantiates
 * {@linkcode KERNELS_BASE64} instead: assembling costs about 2 ms of cold
 * (interpreted) JS, decoding the stored bytes a few microseconds.
 * tests/sntrup761_test.ts checks that the two are the same bytes; after a
 * change to a kernel, regenerate the constant with
 * `deno eval 'import { assembleKernels as a } from "./transport/kex/_sntrup761_wasm.ts"; console.log(btoa(String.fromCharCode(...a())))'`.
 */
export function assembleKernels(): Uint8Array {
  const funcs = [rqKernel(), r3Kernel(), mulKernel()] as [Code[], Code][];
  const body = ([locals, code]: [Code[], Code]) => {
    const bytes = [
      ...vec(locals.map((l) => [uleb((l as number[])[0]), (l as number[])[1]])),
      ...flat([code]),
      END,
    ];
    return [...uleb(bytes.length), ...bytes];
  };
  // (i32 i32 i32) -> i32
  const steps = [0x60, vec([I32, I32, I32]), vec([I32])];
  const none = [0x60, vec([]), vec([])]; // () -> ()
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0], // "\0asm", version 1
    ...section(1, vec([steps, none])), // types
    ...section(3, vec([0, 0, 1])), // functions: their types
    ...section(5, vec([[0x00, 1]])), // memory: 1 page, no maximum
    ...section(
      7,
      vec([
        [name("memory"), 0x02, 0],
        [name("rq"), 0x00, 0],
        [name("r3"), 0x00, 1],
        [name("mul"), 0x00, 2],
      ]),
    ), // exports
    ...section(10, vec(funcs.map(body))), // code
  ]);
}

/** {@linkcode assembleKernels}'s output, base64. */
export const KERNELS_BASE64: string =
  "AGFzbQEAAAABCwJgA39/fwF/YAAAAwQDAAABBQMBAAEHGgQGbWVtb3J5AgACcnEAAAJyMwAB" +
  "A211bAACCrAKA/oDAwN/BHwKe0QAAAAAAO+xQP0UIQ1E9PK1z72MLD/9FCEOA0BBACsD+C8i" +
  "CSAJRPTytc+9jCw/op5EAAAAAADvsUCioSEIQQArAxAiCSAJRPTytc+9jCw/op5EAAAAAADv" +
  "sUCioSEHIAJBAEogCEQAAAAAAAAAAGJxIgO3IQZBACADayEDIAIgAyACQQAgAmtzcXNBAWoh" +
  "AiAGIAggB6GiIQkgByAJoCEHIAggCaEhCEEAIAc5AxAgBv0UIQogB/0UIQsgCP0UIQwgAEH5" +
  "BSAAQfkFSBtBAXVBBHQhBANAIAT9AADYXyEPIAT9AADIjwEhECAKIBAgD/3xAf3yASERIAQg" +
  "DyAR/fABIhL9CwDgXyALIBAgEf3xAf3yASAMIBL98gH98QEhEyAEIBMgEyAO/fIB/XogDf3y" +
  "Af3xAf0LAMiPASAEQRBrIgRBAE4NAAtB8QsgAGtB+QVB8QsgAGtB+QVIG0EDdCEFQQghBANA" +
  "IAT9AAAQIQ8gBP0AAPgvIRAgCiAQIA/98QH98gEhESAEIA8gEf3wASIS/QsAECALIBAgEf3x" +
  "Af3yASAMIBL98gH98QEhEyAEIBMgEyAO/fIB/XogDf3yAf3xAf0LAPAvIARBEGoiBCAFTA0A" +
  "CyAFRAAAAAAAAAAAOQP4LyAAQQFqIgAgAUgNAAsgAgvVBQIBfwh+A0BB2AAhAwNAIAMgAykD" +
  "wMIBQgGGIAMpA7jCAUI/iIQ3A8DCASADIAMpA6DDAUIBhiADKQOYwwFCP4iENwOgwwEgA0EI" +
  "ayIDDQALQQBBACkDwMIBQgGGNwPAwgFB2ABB2AApA8DCAUL//////////wODNwPAwgFBAEEA" +
  "KQOgwwFCAYY3A6DDAUHYAEHYACkDoMMBQv//////////A4M3A6DDAUIAIAJBAEqtQQApA4DB" +
  "AYNCAYN9IQQgAiAEpyACQQAgAmtzcXNBAWohAkEAIQMDQCADKQPAvwEgAykDgMEBhSAEgyEL" +
  "IAMgAykDwL8BIAuFNwPAvwEgAyADKQOAwQEgC4U3A4DBASADKQPAwgEgAykDgMQBhSAEgyEL" +
  "IAMgAykDwMIBIAuFNwPAwgEgAyADKQOAxAEgC4U3A4DEASADQQhqIgNBwAFHDQALQgBBACkD" +
  "gMEBQgGDfSEFQgBBACkDoMABQQApA+DBAYVCAYVCAYN9IQZBACEDA0AgAykDgMEBIQcgAykD" +
  "4MEBIQggAykDwL8BIAWDIQkgAykDoMABIAaFIQogAyAHIAmFIAcgCYMgCCAKhUJ/hYOENwOA" +
  "wQEgAyAKIAcgCCAJhSAKhYOFNwPgwQEgA0EIaiIDQeAARw0AC0EAIQMDQCADIAMpA4DBAUIB" +
  "iCADKQOIwQFCP4aENwOAwQEgAyADKQPgwQFCAYggAykD6MEBQj+GhDcD4MEBIANBCGoiA0HY" +
  "AEcNAAsgAyADKQOAwQFCAYg3A4DBASADIAMpA+DBAUIBiDcD4MEBQQAhAwNAIAMpA4DEASEH" +
  "IAMpA+DEASEIIAMpA8DCASAFgyEJIAMpA6DDASAGhSEKIAMgByAJhSAHIAmDIAggCoVCf4WD" +
  "hDcDgMQBIAMgCiAHIAggCYUgCoWDhTcD4MQBIANBCGoiA0HgAEcNAAsgAEEBaiIAIAFIDQAL" +
  "IAILWwICfwF7A0AgACgCwMUB/REhAkEAIQEDQCAAIAFqIAAgAWr9AACg9QEgAiAB/QAAsN0B" +
  "/bUB/a4B/QsAoPUBIAFBEGoiAUHwF0gNAAsgAEEEaiIAQeQXSA0ACws=";

// ----- the same kernels in plain JS -----
//
// Used where WebAssembly (or its SIMD) is unavailable, e.g. V8 in jitless
// mode; tests/sntrup761_test.ts checks that after every call they leave
// exactly the same bytes in memory as the WebAssembly kernels, and runs a
// key exchange in a jitless V8. They follow the kernels operation for
// operation (the same positions, including a 2-lane loop's overrun, and the
// same float expressions, so even the signs of zeros agree), in the same
// branch-free style. Measured cold: R/3 and R/q reciprocals 16 ms (3.5 ms
// with WebAssembly); in a jitless V8, 250 ms.

/** -1 if x > 0, else 0 (x a 32-bit integer). */
const positiveMask = (x: number): number => (0 - x) >> 31;

/** -1 if x != 0, else 0 (x a 32-bit integer). */
const nonzeroMask = (x: number): number => (x | (0 - x)) >> 31;

/** The kernels in plain JS, over a fresh 64 KiB buffer. */
export function jsKernels(): SntrupKernels {
  const buffer = new ArrayBuffer(65536);
  const d = new Float64Array(buffer);
  const w = new Int32Array(buffer);
  const [F, G, V, R] = [RQ_F, RQ_G, RQ_V, RQ_R].map((o) => o / 8);
  const invQ = 1 / Q;
  const rq = (first: number, end: number, delta: number): number => {
    for (let loop = first; loop < end; loop++) {
      const g0 = d[G] - Math.round(d[G] * invQ) * Q;
      const f0 = d[F] - Math.round(d[F] * invQ) * Q;
      const sw = positiveMask(delta) & nonzeroMask(g0 | 0);
      const s = sw & 1;
      delta = (delta ^ (sw & (delta ^ (0 - delta)))) + 1;
      const d0 = s * (g0 - f0);
      const nf0 = f0 + d0;
      const ng0 = g0 - d0;
      d[F] = nf0;
      // v, r: the pairs (2j, 2j+1) from the top down, v read one lower.
      const vTop = 2 * ((loop < P ? loop : P) >> 1) + 1;
      for (let i = vTop; i >= 0; i--) {
        const a = d[V + i - 1];
        const b = d[R + i];
        const dd = s * (b - a);
        const nv = a + dd;
        d[V + i] = nv;
        const x = nf0 * (b - dd) - ng0 * nv;
        d[R + i] = x - Math.trunc(x * invQ) * Q;
      }
      // f, g: the pairs (i, i+1) for odd i <= top, g stored one lower.
      const left = 2 * P - 1 - loop;
      const top = left < P ? left : P;
      const last = top + (top & 1);
      for (let i = 1; i <= last; i++) {
        const a = d[F + i];
        const b = d[G + i];
        const dd = s * (b - a);
        const nf = a + dd;
        d[F + i] = nf;
        const x = nf0 * (b - dd) - ng0 * nf;
        d[G + i - 1] = x - Math.trunc(x * invQ) * Q;
      }
      d[G + top] = 0;
    }
    return delta;
  };
  const WORDS = 2 * R3_WORDS; // 32-bit words per plane
  const TOP = (1 << (P + 1 - 32 * (WORDS - 1))) - 1;
  const [fW, gW, vW, rW] = [R3_F, R3_G, R3_V, R3_R].map((o) => o / 4);
  /** a <- a + d*b (see the R/3 kernel for the formulas). */
  const addMul = (a: number, b: number, dN: number, dS: number) => {
    for (let i = 0; i < WORDS; i++) {
      const aN = w[a + i];
      const aS = w[a + WORDS + i];
      const bN = w[b + i] & dN;
      const bS = w[b + WORDS + i] ^ dS;
      w[a + i] = (aN ^ bN) | (aN & bN & ~(aS ^ bS));
      w[a + WORDS + i] = bS ^ (aN & (aS ^ bN ^ bS));
    }
  };
  const r3 = (first: number, end: number, delta: number): number => {
    for (let loop = first; loop < end; loop++) {
      for (const pl of [vW, vW + WORDS]) {
        for (let i = WORDS - 1; i > 0; i--) {
          w[pl + i] = (w[pl + i] << 1) | (w[pl + i - 1] >>> 31);
        }
        w[pl] <<= 1;
        w[pl + WORDS - 1] &= TOP;
      }
      const sw = positiveMask(delta) & ((w[gW] << 31) >> 31);
      delta = (delta ^ (sw & (delta ^ (0 - delta)))) + 1;
      for (let i = 0; i < 2 * WORDS; i++) {
        let t = sw & (w[fW + i] ^ w[gW + i]);
        w[fW + i] ^= t;
        w[gW + i] ^= t;
        t = sw & (w[vW + i] ^ w[rW + i]);
        w[vW + i] ^= t;
        w[rW + i] ^= t;
      }
      const dN = (w[gW] << 31) >> 31;
      const dS = ~((w[fW + WORDS] ^ w[gW + WORDS]) << 31) >> 31;
      addMul(gW, fW, dN, dS);
      for (const pl of [gW, gW + WORDS]) {
        for (let i = 0; i < WORDS - 1; i++) {
          w[pl + i] = (w[pl + i] >>> 1) | (w[pl + i + 1] << 31);
        }
        w[pl + WORDS - 1] >>>= 1;
      }
      addMul(rW, vW, dN, dS);
    }
    return delta;
  };
  const [mf, mg, mfg] = [MUL_F, MUL_G, MUL_FG].map((o) => o / 4);
  const mul = (): void => {
    for (let i = 0; i < P; i++) {
      const fi = w[mf + i];
      for (let j = 0; j < P + 3; j++) w[mfg + i + j] += fi * w[mg + j];
    }
  };
  return { memory: { buffer }, rq, r3, mul };
}

let kernels: SntrupKernels | undefined;

/** The WebAssembly kernels, or {@linkcode jsKernels} where they cannot run. */
export function sntrupKernels(): SntrupKernels {
  if (!kernels) {
    try {
      const text = atob(KERNELS_BASE64);
      const bytes = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
      const module = new WebAssembly.Module(bytes);
      kernels = new WebAssembly.Instance(module)
        .exports as unknown as SntrupKernels;
    } catch {
      // No WebAssembly (jitless V8) or no SIMD (an x64 CPU without SSE4.1).
      kernels = jsKernels();
    }
  }
  return kernels;
}
