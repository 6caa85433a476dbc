/**
 * sntrup761 internals (transport/kex/_sntrup761x25519.ts and its
 * WebAssembly kernels, transport/kex/_sntrup761_wasm.ts). The KEM as a whole
 * is covered by tests/pq_kex_test.ts (known answers of the NTRU Prime round 3
 * submission, interop with OpenSSH); here the two reciprocals are checked
 * against plain schoolbook arithmetic written independently below, including
 * inputs that have no reciprocal; the plain-JS fallback kernels are checked
 * against the WebAssembly ones call by call, byte for byte; and the kernels'
 * memory is checked to hold nothing after use.
 */
import assert from "node:assert/strict";
import { run } from "./_openssh.ts";
import { seededRandom } from "./_helpers.ts";
import {
  multSmall,
  r3Recip,
  rqRecip3,
  sntrup761Decapsulate,
  sntrup761Encapsulate,
  sntrup761Keypair,
} from "../transport/kex/_sntrup761x25519.ts";
import {
  assembleKernels,
  jsKernels,
  KERNELS_BASE64,
  MEMORY_END,
  type SntrupKernels,
  sntrupKernels,
} from "../transport/kex/_sntrup761_wasm.ts";

const P = 761;
const Q = 4591;

/** Deterministic xorshift32, so a failure reproduces. */
function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** A polynomial with coefficients uniform in {-1, 0, 1}. */
function smallPoly(next: () => number): Int8Array {
  return Int8Array.from({ length: P }, () => (next() % 3) - 1);
}

/** A short polynomial: exactly 286 coefficients in {-1, 1}, the rest 0. */
function shortPoly(next: () => number): Int8Array {
  const out = new Int8Array(P);
  let placed = 0;
  while (placed < 286) {
    const i = next() % P;
    if (out[i] === 0) {
      out[i] = next() & 1 ? 1 : -1;
      placed++;
    }
  }
  return out;
}

/** a*b in Z[x]/(x^p - x - 1), coefficients reduced into [0, m). */
function mulMod(a: ArrayLike<number>, b: ArrayLike<number>, m: number) {
  const full = new Array<number>(2 * P - 1).fill(0);
  for (let i = 0; i < P; i++) {
    for (let j = 0; j < P; j++) full[i + j] = (full[i + j] + a[i] * b[j]) % m;
  }
  for (let i = 2 * P - 2; i >= P; i--) {
    // x^i = x^(i-p) * (x + 1)
    full[i - P] += full[i];
    full[i - P + 1] += full[i];
  }
  return full.slice(0, P).map((c) => ((c % m) + m) % m);
}

const isOne = (c: number[]) => c[0] === 1 && c.slice(1).every((x) => x === 0);

Deno.test("sntrup761 kernels: the stored module is the assembler's output", () => {
  const stored = Uint8Array.from(atob(KERNELS_BASE64), (c) => c.charCodeAt(0));
  assert.deepEqual(
    stored,
    assembleKernels(),
    "KERNELS_BASE64 is stale: regenerate it (see assembleKernels)",
  );
  assert.ok(WebAssembly.validate(stored));
  // All regions fit the module's single 64 KiB page.
  assert.ok(MEMORY_END <= 65536, `regions end at ${MEMORY_END}`);
  assert.equal(sntrupKernels().memory.buffer.byteLength, 65536);
  // Here (a JIT with SIMD) the WebAssembly kernels are the ones in use, not
  // the JS fallback.
  assert.ok(sntrupKernels().memory instanceof WebAssembly.Memory);
});

Deno.test("sntrup761: r3Recip inverts in R/3 (checked by multiplication)", () => {
  const next = prng(761);
  const inputs = [
    Int8Array.from({ length: P }, (_, i) => (i === 0 ? 1 : 0)), // 1
    Int8Array.from({ length: P }, (_, i) => (i === 0 ? -1 : 0)), // -1
    Int8Array.from({ length: P }, (_, i) => (i === P - 1 ? 1 : 0)), // x^760
    ...Array.from({ length: 12 }, () => smallPoly(next)),
  ];
  for (const [n, input] of inputs.entries()) {
    const inv = r3Recip(input);
    assert.ok(inv, `input ${n} should be invertible mod 3`);
    assert.ok(inv.every((c) => c >= -1 && c <= 1));
    assert.ok(isOne(mulMod(input, inv, 3)), `input ${n}: in * 1/in != 1`);
  }
});

Deno.test("sntrup761: r3Recip returns null without a reciprocal", () => {
  // x^761 - x - 1 factors over F_3 into degrees 19, 60 and 682 (sympy's
  // factor_list); its degree-19 factor h and every multiple of h are zero
  // divisors in R/3. Coefficients of h from x^19 down, as +, 0, -.
  const hHigh = "++0-++++-0-+-+---0--";
  const h = new Int8Array(P);
  for (let i = 0; i <= 19; i++) h[19 - i] = "-0+".indexOf(hHigh[i]) - 1;
  // Check the claim independently: dividing x^761 - x - 1 by the monic h
  // over F_3 leaves no remainder.
  const rem = new Array<number>(P + 1).fill(0);
  rem[P] = 1;
  rem[1] = rem[0] = 2; // -1 mod 3
  for (let d = P; d >= 19; d--) {
    const c = rem[d] % 3;
    if (c === 0) continue;
    for (let i = 0; i <= 19; i++) {
      rem[d - 19 + i] = (rem[d - 19 + i] - c * h[i] + 9) % 3;
    }
  }
  assert.ok(rem.every((c) => c % 3 === 0), "h must divide x^761 - x - 1");

  assert.equal(r3Recip(new Int8Array(P)), null, "0");
  assert.equal(r3Recip(h), null, "h");
  const next = prng(3);
  for (let k = 0; k < 4; k++) {
    // h times a random small polynomial, reduced mod 3 and centred.
    const m = mulMod(h, smallPoly(next), 3).map((c) => (c === 2 ? -1 : c));
    assert.equal(r3Recip(Int8Array.from(m)), null, `h * random ${k}`);
  }
  // A failure must not poison later calls.
  const g = smallPoly(next);
  assert.ok(isOne(mulMod(g, r3Recip(g)!, 3)));
});

Deno.test("sntrup761: rqRecip3 gives 1/(3*in) in R/q (checked by multiplication)", () => {
  const next = prng(4591);
  const inputs = [
    Int8Array.from({ length: P }, (_, i) => (i === 0 ? 1 : 0)),
    Int8Array.from({ length: P }, (_, i) => (i === P - 1 ? -1 : 0)),
    ...Array.from({ length: 6 }, () => shortPoly(next)),
    smallPoly(next),
  ];
  for (const [n, input] of inputs.entries()) {
    const inv = rqRecip3(input);
    assert.ok(inv, `input ${n} should be invertible mod q`);
    assert.ok(inv.every((c) => c >= -(Q - 1) / 2 && c <= (Q - 1) / 2));
    const three = Int32Array.from(input, (c) => 3 * c);
    assert.ok(isOne(mulMod(three, inv, Q)), `input ${n}: 3in * 1/(3in) != 1`);
  }
});

Deno.test("sntrup761: the kernels' memory holds nothing after use", () => {
  const { publicKey, secretKey } = sntrup761Keypair();
  const memory = new Uint8Array(sntrupKernels().memory.buffer);
  assert.ok(memory.every((b) => b === 0), "after key generation");
  const { cipherText, sharedSecret } = sntrup761Encapsulate(publicKey);
  assert.ok(memory.every((b) => b === 0), "after encapsulation");
  assert.deepEqual(sntrup761Decapsulate(cipherText, secretKey), sharedSecret);
  assert.ok(memory.every((b) => b === 0), "after decapsulation");
});

/**
 * Kernels that run every call on both the WebAssembly kernels and the JS
 * fallback (on a copy of the memory as it was before the call), and check
 * that both return the same and leave the same bytes. `calls` counts them.
 */
function twinKernels(): SntrupKernels & { calls: number } {
  const wasm = sntrupKernels();
  const js = jsKernels();
  const mem = new Uint8Array(wasm.memory.buffer);
  const jsMem = new Uint8Array(js.memory.buffer);
  const twin = <A extends number[], R>(
    name: string,
    run: (k: SntrupKernels) => (...a: A) => R,
  ) =>
  (...args: A): R => {
    jsMem.set(mem);
    const expected = run(wasm)(...args);
    const actual = run(js)(...args);
    assert.equal(actual, expected, `${name}(${args}) result`);
    const at = jsMem.findIndex((b, i) => b !== mem[i]);
    assert.equal(at, -1, `${name}(${args}): memory differs at byte ${at}`);
    out.calls++;
    return expected;
  };
  const out = {
    memory: wasm.memory,
    rq: twin("rq", (k) => k.rq),
    r3: twin("r3", (k) => k.r3),
    mul: twin("mul", (k) => k.mul),
    calls: 0,
  };
  return out;
}

Deno.test("sntrup761: the JS fallback kernels match the WebAssembly ones byte for byte", () => {
  const next = prng(2026);
  const k = twinKernels();
  // R/3: two invertible inputs and 0 (never swaps, ends with delta != 0).
  for (const input of [smallPoly(next), smallPoly(next), new Int8Array(P)]) {
    assert.deepEqual(r3Recip(input, k), r3Recip(input));
  }
  for (const input of [shortPoly(next), smallPoly(next)]) {
    assert.deepEqual(rqRecip3(input, k), rqRecip3(input));
  }
  const f = Int32Array.from({ length: P }, () => (next() % Q) - (Q - 1) / 2);
  const g = smallPoly(next);
  const freeze = (x: number) => ((x % Q) + Q) % Q;
  assert.deepEqual(multSmall(f, g, freeze, k), multSmall(f, g, freeze));
  // Every chunk of both divstep loops and the product went through the twin.
  assert.equal(k.calls, 5 * Math.ceil((2 * P - 1) / 64) + 1);
});

Deno.test("sntrup761: without WebAssembly (jitless V8) the JS kernels give the same keys", async () => {
  const hex = (b: Uint8Array) =>
    Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const random = seededRandom(761);
  const { publicKey, secretKey } = sntrup761Keypair(random);
  const { cipherText, sharedSecret } = sntrup761Encapsulate(publicKey, random);
  assert.deepEqual(sntrup761Decapsulate(cipherText, secretKey), sharedSecret);
  const expected = [publicKey, cipherText, sharedSecret, secretKey].map(hex);

  // The same in a V8 without a JIT, where WebAssembly does not exist.
  const module = new URL(
    "../transport/kex/_sntrup761x25519.ts",
    import.meta.url,
  );
  const code = `
    import * as m from ${JSON.stringify(module.href)};
    const seededRandom = ${seededRandom.toString()};
    const hex = ${hex.toString()};
    const random = seededRandom(761);
    const { publicKey, secretKey } = m.sntrup761Keypair(random);
    const { cipherText, sharedSecret } = m.sntrup761Encapsulate(publicKey, random);
    const again = m.sntrup761Decapsulate(cipherText, secretKey);
    console.log(JSON.stringify({
      wasm: typeof WebAssembly,
      out: [publicKey, cipherText, sharedSecret, secretKey].map(hex),
      decapsulated: hex(again),
    }));
  `;
  const config = new URL("../deno.json", import.meta.url).pathname;
  const result = await run(Deno.execPath(), [
    "eval",
    "-q",
    "--config",
    config,
    "--v8-flags=--jitless",
    code,
  ], { timeout: 30_000 });
  assert.equal(result.code, 0, result.stderrText);
  const child = JSON.parse(result.stdoutText);
  assert.equal(
    child.wasm,
    "undefined",
    "the child must run without WebAssembly",
  );
  assert.deepEqual(child.out, expected);
  assert.equal(child.decapsulated, expected[2]);
});
