/**
 * RSASSA-PKCS1-v1_5 verification (RFC 8017 section 8.2.2) in BigInt, for
 * moduli above 4096 bits: Deno's `node:crypto` refuses to import such public
 * keys ("modulus too large") although it signs with them. Verification only
 * touches public values, so a variable-time implementation is fine here.
 *
 * @module
 */

import { bigintToBytes, bytesToBigint } from "../wire/writer.ts";
import { equalBytes } from "./_util.ts";

/** DER DigestInfo prefixes, RFC 8017 section 9.2 note 1. */
const DIGEST_INFO: Record<"sha256" | "sha512", Uint8Array> = {
  sha256: Uint8Array.from([
    0x30,
    0x31,
    0x30,
    0x0d,
    0x06,
    0x09,
    0x60,
    0x86,
    0x48,
    0x01,
    0x65,
    0x03,
    0x04,
    0x02,
    0x01,
    0x05,
    0x00,
    0x04,
    0x20,
  ]),
  sha512: Uint8Array.from([
    0x30,
    0x51,
    0x30,
    0x0d,
    0x06,
    0x09,
    0x60,
    0x86,
    0x48,
    0x01,
    0x65,
    0x03,
    0x04,
    0x02,
    0x03,
    0x05,
    0x00,
    0x04,
    0x40,
  ]),
};

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let result = 1n;
  let b = base % mod;
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % mod;
    e >>= 1n;
    if (e > 0n) b = (b * b) % mod;
  }
  return result;
}

/**
 * Verifies a PKCS#1 v1.5 signature `sig` (exactly the modulus length) over
 * the already computed `digest`.
 */
export function rsaVerifyDigest(
  n: Uint8Array,
  e: Uint8Array,
  hash: "sha256" | "sha512",
  digest: Uint8Array,
  sig: Uint8Array,
): boolean {
  const modulus = bytesToBigint(n);
  const k = Math.ceil(modulus.toString(16).length / 2);
  if (sig.length !== k) return false;
  const s = bytesToBigint(sig);
  if (s >= modulus) return false;
  const em = bigintToBytes(modPow(s, bytesToBigint(e), modulus), k);
  const prefix = DIGEST_INFO[hash];
  const tLen = prefix.length + digest.length;
  if (k < tLen + 11) return false;
  const expected = new Uint8Array(k);
  expected[1] = 0x01;
  expected.fill(0xff, 2, k - tLen - 1);
  expected.set(prefix, k - tLen);
  expected.set(digest, k - digest.length);
  return equalBytes(em, expected);
}
