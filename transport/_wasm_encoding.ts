/**
 * The few pieces of the WebAssembly binary format (WebAssembly Core
 * specification, section 5) that our hand-assembled modules need: LEB128
 * integers, vectors, names and sections. Shared by the Poly1305 block loop
 * (transport/cipher/_poly1305.ts) and the sntrup761 kernels
 * (transport/kex/_sntrup761_wasm.ts), which encode their instructions
 * themselves; no WebAssembly toolchain is needed.
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
