/**
 * Backend choice per primitive, by measurement: each cipher and MAC
 * primitive SSH packets use, through every backend Deno offers (node:crypto,
 * Web Crypto one call at a time and eight calls in flight, @noble pure JS),
 * at 1 KiB, 32 KiB and 256 KiB. The winners and figures are recorded in
 * docs/ARCHITECTURE.md "Crypto backends" and in the module docs of
 * transport/cipher/_*.ts.
 *
 * Run: `deno bench --allow-read=. bench/primitives_bench.ts`
 */
import { createCipheriv, createHmac } from "node:crypto";
import { chacha20 } from "@noble/ciphers/chacha.js";
import { ctr, gcm } from "@noble/ciphers/aes.js";
import { poly1305 } from "@noble/ciphers/_poly1305.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import {
  poly1305Wasm,
  setPoly1305Simd,
} from "../transport/cipher/_poly1305.ts";

const SIZES: [string, number][] = [
  ["1 KiB", 1024],
  ["32 KiB", 32 * 1024],
  ["256 KiB", 256 * 1024],
];
const INFLIGHT = 8;

function fill(n: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

const key16 = fill(16);
const key32 = fill(32);
const nonce12 = fill(12);
const iv16 = new Uint8Array(16);
const webGcm = await crypto.subtle.importKey("raw", key16, "AES-GCM", false, [
  "encrypt",
]);
const webCtr = await crypto.subtle.importKey("raw", key16, "AES-CTR", false, [
  "encrypt",
]);
const webHmac256 = await crypto.subtle.importKey(
  "raw",
  key32,
  { name: "HMAC", hash: "SHA-256" },
  false,
  ["sign"],
);
const webHmac512 = await crypto.subtle.importKey(
  "raw",
  fill(64),
  { name: "HMAC", hash: "SHA-512" },
  false,
  ["sign"],
);

for (const [label, size] of SIZES) {
  const data = fill(size);
  const n = size >= 256 * 1024 ? 100 : undefined;
  const bench = (
    area: string,
    name: string,
    fn: () => unknown,
    baseline = false,
  ) =>
    Deno.bench({
      name,
      group: `${area} ${label}`,
      baseline,
      n,
      // Deno awaits only `async` functions; every Web Crypto case is one.
      fn: fn as () => void,
    });

  // AES-128-GCM encrypt (per call; "x8" runs 8 calls at once and counts 8).
  bench("aes-128-gcm", "node:crypto", () => {
    const c = createCipheriv("aes-128-gcm", key16, nonce12);
    c.update(data);
    c.final();
    return c.getAuthTag();
  }, true);
  bench(
    "aes-128-gcm",
    "Web Crypto, 1 in flight",
    async () =>
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv: nonce12 },
        webGcm,
        data,
      ),
  );
  bench(
    "aes-128-gcm",
    `Web Crypto, ${INFLIGHT} calls in flight (time is for all ${INFLIGHT})`,
    async () => {
      const all = [];
      for (let i = 0; i < INFLIGHT; i++) {
        all.push(
          crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce12 }, webGcm, data),
        );
      }
      await Promise.all(all);
    },
  );
  bench(
    "aes-128-gcm",
    "@noble/ciphers",
    () => gcm(key16, nonce12).encrypt(data),
  );

  // AES-128-CTR.
  bench("aes-128-ctr", "node:crypto", () => {
    const c = createCipheriv("aes-128-ctr", key16, iv16);
    c.update(data);
    return c.final();
  }, true);
  bench(
    "aes-128-ctr",
    "Web Crypto, 1 in flight",
    async () =>
      await crypto.subtle.encrypt(
        { name: "AES-CTR", counter: iv16, length: 64 },
        webCtr,
        data,
      ),
  );
  bench("aes-128-ctr", "@noble/ciphers", () => ctr(key16, iv16).encrypt(data));

  // ChaCha20 keystream and Poly1305 (chacha20-poly1305@openssh.com).
  bench("chacha20", "node:crypto", () => {
    const c = createCipheriv("chacha20", key32, iv16);
    c.update(data);
    return c.final();
  }, true);
  bench("chacha20", "@noble/ciphers", () => chacha20(key32, nonce12, data));
  bench("poly1305", "@noble/ciphers", () => poly1305(data, key32), true);
  bench("poly1305", "WebAssembly SIMD (ours)", () => poly1305Wasm(data, key32));
  // The scalar WebAssembly loop, used where the engine has no SIMD.
  bench("poly1305", "WebAssembly scalar (ours)", () => {
    setPoly1305Simd(false);
    try {
      return poly1305Wasm(data, key32);
    } finally {
      setPoly1305Simd(true);
    }
  });

  // HMAC-SHA2.
  bench(
    "hmac-sha2-256",
    "node:crypto",
    () => createHmac("sha256", key32).update(data).digest(),
    true,
  );
  bench(
    "hmac-sha2-256",
    "Web Crypto, 1 in flight",
    async () => await crypto.subtle.sign("HMAC", webHmac256, data),
  );
  bench("hmac-sha2-256", "@noble/hashes", () => hmac(sha256, key32, data));
  bench(
    "hmac-sha2-512",
    "node:crypto",
    () => createHmac("sha512", fill(64)).update(data).digest(),
    true,
  );
  bench(
    "hmac-sha2-512",
    "Web Crypto, 1 in flight",
    async () => await crypto.subtle.sign("HMAC", webHmac512, data),
  );
  bench("hmac-sha2-512", "@noble/hashes", () => hmac(sha512, fill(64), data));
}
