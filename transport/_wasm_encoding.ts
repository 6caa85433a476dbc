/**
 * The few pieces of the WebAssembly binary format (WebAssembly Core
 * specification, section 5) that our hand-assembled modules need: LEB128
 * integers, vectors, names, sections and the instructions both use. Shared
 * by the Poly1305 block loop (transport/cipher/_poly1305.ts) and the
 * sntrup761 kernels (transport/kex/_sntrup761_wasm.ts), which add the
 * instructions only they need; no WebAssembly toolchain is needed.
 *
 * @module
 */

/** Bytes of code, nested as convenient; {@linkcode flat} lays them out. */
export type Code = number | Code[];

/** Unsigned LEB128 (section 5.2.2). */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    const b = n & 0x7f;
    n >>>= 7;
    out.push(n !== 0 ? b | 0x80 : b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 of a 32-bit integer (section 5.2.2). */
export function sleb(n: number): number[] {
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

/** Signed LEB128 of a 64-bit integer. */
export function sleb64(n: bigint): number[] {
  const out: number[] = [];
  for (;;) {
    const b = Number(n & 0x7fn);
    n >>= 7n;
    if ((n === 0n && (b & 0x40) === 0) || (n === -1n && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

/** The bytes of nested code, in order. */
export function flat(code: Code, out: number[] = []): number[] {
  if (typeof code === "number") out.push(code);
  else for (const c of code) flat(c, out);
  return out;
}

/** A vector: its length, then its items (section 5.1.3). */
export function vec(items: Code[]): number[] {
  return [...uleb(items.length), ...flat(items)];
}

/** A name: UTF-8 bytes with their length (section 5.2.4). */
export function name(s: string): number[] {
  const b = [...new TextEncoder().encode(s)];
  return [...uleb(b.length), ...b];
}

/** A section: id, size, contents (section 5.5.2). */
export function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

// ----- Instructions both modules use (section 5.4) -----

/** Value type i32. */
export const I32 = 0x7f;
/** Value type i64. */
export const I64 = 0x7e;
/** Value type v128. */
export const V128 = 0x7b;

/** `block` with no result. */
export const BLOCK: number[] = [0x02, 0x40];
/** `loop` with no result. */
export const LOOP: number[] = [0x03, 0x40];
/** `end` of a block, loop or function. */
export const END: number[] = [0x0b];
/** `br depth`. */
export const br = (depth: number): number[] => [0x0c, ...uleb(depth)];
/** `br_if depth`. */
export const brIf = (depth: number): number[] => [0x0d, ...uleb(depth)];
/** `local.get i`. */
export const get = (i: number): number[] => [0x20, ...uleb(i)];
/** `local.set i`. */
export const set = (i: number): number[] => [0x21, ...uleb(i)];
/** `local.tee i`. */
export const tee = (i: number): number[] => [0x22, ...uleb(i)];
/** `i32.const n`. */
export const i32 = (n: number): number[] => [0x41, ...sleb(n)];
/** `i64.const n`. */
export const i64 = (n: bigint): number[] => [0x42, ...sleb64(n)];
/** `i64.load` (8-byte aligned) at the address on the stack plus `offset`. */
export const i64Load = (offset: number): number[] => [
  0x29,
  3,
  ...uleb(offset),
];
/** `i64.store` (8-byte aligned). */
export const i64Store = (offset: number): number[] => [
  0x37,
  3,
  ...uleb(offset),
];
/** `i32.add`. */
export const I32_ADD: number[] = [0x6a];
/** `i32.sub`. */
export const I32_SUB: number[] = [0x6b];
/** `i64.and`. */
export const I64_AND: number[] = [0x83];
/** `i64.or`. */
export const I64_OR: number[] = [0x84];
/** `i64.shr_u`. */
export const I64_SHR_U: number[] = [0x88];
/** `i32.wrap_i64`. */
export const I32_WRAP_I64: number[] = [0xa7];
/** `i64.extend_i32_u`. */
export const I64_EXTEND_I32_U: number[] = [0xad];
/** A SIMD instruction: the 0xfd prefix, its opcode, its immediates. */
export const simd = (op: number, ...imm: number[]): number[] => [
  0xfd,
  ...uleb(op),
  ...imm,
];
/** `v128.load` with alignment 0 (any address). */
export const v128Load = (offset: number): number[] =>
  simd(0x00, 0, ...uleb(offset));
/** `i32x4.splat`. */
export const I32X4_SPLAT: number[] = simd(0x11);
