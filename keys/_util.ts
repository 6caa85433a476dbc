/**
 * Small helpers shared by the key modules: strict base64, strict mpints and
 * JWK (base64url) conversions.
 *
 * @module
 */

import type { SshReader } from "../wire/reader.ts";

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Decodes standard, padded base64 with no whitespace; anything else is a
 * {@linkcode SyntaxError} naming `what`.
 */
export function decodeBase64(text: string, what: string): Uint8Array {
  if (text.length % 4 !== 0 || !BASE64_RE.test(text)) {
    throw new SyntaxError(`Malformed ${what}: invalid base64`);
  }
  try {
    return Uint8Array.fromBase64(text, { lastChunkHandling: "strict" });
  } catch {
    throw new SyntaxError(`Malformed ${what}: invalid base64`);
  }
}

/** Standard padded base64. */
export function encodeBase64(bytes: Uint8Array): string {
  return bytes.toBase64();
}

/** Unpadded base64url, as JWK fields use. */
export function toBase64Url(bytes: Uint8Array): string {
  return bytes.toBase64({ alphabet: "base64url", omitPadding: true });
}

/** Decodes a JWK base64url field. */
export function fromBase64Url(text: string): Uint8Array {
  return Uint8Array.fromBase64(text, { alphabet: "base64url" });
}

/**
 * Reads an mpint the way OpenSSH's `sshbuf_get_bignum2_bytes_direct` does:
 * negative values and non-minimal encodings (a superfluous leading zero
 * byte) are rejected, so a value has exactly one wire form and signatures
 * cannot be altered without changing their bytes. Returns the unsigned
 * magnitude (a view, no leading zero).
 */
export function readStrictMpint(
  r: SshReader,
  maxBytes: number,
  what: string,
): Uint8Array {
  const body = r.string();
  if (body.length > 0 && (body[0] & 0x80) !== 0) {
    throw new SyntaxError(`Malformed ${r.context}: ${what} is negative`);
  }
  let magnitude = body;
  if (body.length > 0 && body[0] === 0) {
    if (body.length === 1 || (body[1] & 0x80) === 0) {
      throw new SyntaxError(
        `Malformed ${r.context}: ${what} has a superfluous leading zero`,
      );
    }
    magnitude = body.subarray(1);
  }
  if (magnitude.length > maxBytes) {
    throw new SyntaxError(
      `Malformed ${r.context}: ${what} is ${magnitude.length} bytes, more than ${maxBytes}`,
    );
  }
  return magnitude;
}

/** Left-pads an unsigned magnitude to `size` bytes (which it must fit). */
export function leftPad(bytes: Uint8Array, size: number): Uint8Array {
  let start = 0;
  while (start < bytes.length && bytes[start] === 0) start++;
  const body = bytes.subarray(start);
  if (body.length > size) {
    throw new RangeError(
      `Cannot fit a ${body.length}-byte integer in ${size} bytes`,
    );
  }
  const out = new Uint8Array(size);
  out.set(body, size - body.length);
  return out;
}

/** Strips leading zero bytes from an unsigned magnitude (a view). */
export function stripZeros(bytes: Uint8Array): Uint8Array {
  let start = 0;
  while (start < bytes.length && bytes[start] === 0) start++;
  return bytes.subarray(start);
}

/** Number of significant bits in an unsigned big-endian magnitude. */
export function bitLength(bytes: Uint8Array): number {
  const body = stripZeros(bytes);
  if (body.length === 0) return 0;
  return (body.length - 1) * 8 + (32 - Math.clz32(body[0]));
}

/** Byte-wise equality (not constant time; use only on public data). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
