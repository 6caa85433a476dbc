/**
 * The few ASN.1 DER pieces (ITU-T X.690 section 10) the PEM writers need:
 * definite lengths, INTEGER, OCTET STRING, BIT STRING, NULL, OBJECT
 * IDENTIFIER, SEQUENCE and explicit context tags, plus a check of the
 * outermost element's length that lets the PEM reader tell a cut-off body
 * from a corrupt one. Reading the contents stays with OpenSSL (node:crypto).
 *
 * @module
 */

/** Object identifiers of the key formats we write. */
export const OID = {
  /** rsaEncryption, RFC 8017 appendix A.1. */
  rsaEncryption: "1.2.840.113549.1.1.1",
  /** id-ecPublicKey, RFC 5480 section 2.1.1. */
  ecPublicKey: "1.2.840.10045.2.1",
  /** secp256r1 (prime256v1), RFC 5480 section 2.1.1.1. */
  "P-256": "1.2.840.10045.3.1.7",
  /** secp384r1. */
  "P-384": "1.3.132.0.34",
  /** secp521r1. */
  "P-521": "1.3.132.0.35",
  /** id-Ed25519, RFC 8410 section 3. */
  ed25519: "1.3.101.112",
  /** id-PBES2, RFC 8018 appendix A.4. */
  pbes2: "1.2.840.113549.1.5.13",
  /** id-PBKDF2, RFC 8018 appendix A.2. */
  pbkdf2: "1.2.840.113549.1.5.12",
  /** id-hmacWithSHA256, RFC 8018 appendix B.1.2. */
  hmacWithSha256: "1.2.840.113549.2.9",
  /** aes256-CBC-PAD, RFC 8018 appendix B.2.5 (NIST CSOR). */
  aes256Cbc: "2.16.840.1.101.3.4.1.42",
} as const;

/** One encoded element: tag, length and contents. */
export function tlv(tag: number, ...contents: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const c of contents) size += c.length;
  const head = size < 0x80 ? [tag, size] : longLength(tag, size);
  const out = new Uint8Array(head.length + size);
  out.set(head);
  let at = head.length;
  for (const c of contents) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** X.690 section 8.1.3.5: the long form, big-endian with a count byte. */
function longLength(tag: number, size: number): number[] {
  const bytes: number[] = [];
  for (let n = size; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return [tag, 0x80 | bytes.length, ...bytes];
}

/** SEQUENCE of the given encoded elements. */
export function sequence(...elements: Uint8Array[]): Uint8Array {
  return tlv(0x30, ...elements);
}

/**
 * INTEGER from an unsigned big-endian magnitude: leading zeros dropped, one
 * zero byte added when the top bit is set (X.690 section 8.3: two's
 * complement, minimal octets).
 */
export function integer(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const body = magnitude.subarray(start);
  if (body.length === 0) return tlv(0x02, new Uint8Array([0]));
  if ((body[0] & 0x80) !== 0) return tlv(0x02, new Uint8Array([0]), body);
  return tlv(0x02, body);
}

/** INTEGER of a small non-negative number (versions, iteration counts). */
export function smallInteger(value: number): Uint8Array {
  const bytes: number[] = [];
  for (let n = value; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return integer(new Uint8Array(bytes));
}

/** OCTET STRING. */
export function octetString(bytes: Uint8Array): Uint8Array {
  return tlv(0x04, bytes);
}

/** BIT STRING of whole bytes (no unused bits). */
export function bitString(bytes: Uint8Array): Uint8Array {
  return tlv(0x03, new Uint8Array([0]), bytes);
}

/** NULL. */
export function nullValue(): Uint8Array {
  return new Uint8Array([0x05, 0x00]);
}

/** OBJECT IDENTIFIER from dotted decimal (X.690 section 8.19). */
export function objectId(dotted: string): Uint8Array {
  const arcs = dotted.split(".").map(Number);
  const out: number[] = [];
  const push = (arc: number) => {
    const groups: number[] = [arc & 0x7f];
    for (let n = Math.floor(arc / 128); n > 0; n = Math.floor(n / 128)) {
      groups.unshift(0x80 | (n & 0x7f));
    }
    out.push(...groups);
  };
  push(arcs[0] * 40 + arcs[1]);
  for (const arc of arcs.slice(2)) push(arc);
  return tlv(0x06, new Uint8Array(out));
}

/** Explicitly tagged, constructed context-specific element `[n]`. */
export function explicit(n: number, element: Uint8Array): Uint8Array {
  return tlv(0xa0 | n, element);
}

/** How the outermost element of a DER body relates to the body's size. */
export type DerExtent = "ok" | "truncated" | "malformed";

/**
 * The total size (header and contents) a SEQUENCE starting at `bytes[0]`
 * declares, or null when `bytes` does not start with a SEQUENCE header
 * (or too little of it is there to tell).
 */
export function sequenceSize(bytes: Uint8Array): number | null {
  if (bytes.length < 2 || bytes[0] !== 0x30) return null;
  const first = bytes[1];
  if (first < 0x80) return 2 + first;
  const count = first & 0x7f;
  // Four length bytes cover 4 GiB; anything longer is not a key file.
  if (count === 0 || count > 4 || bytes.length < 2 + count) return null;
  let length = 0;
  for (let i = 0; i < count; i++) length = length * 256 + bytes[2 + i];
  return 2 + count + length;
}

/**
 * Checks that `body` is exactly one SEQUENCE: `"truncated"` when its length
 * header claims more bytes than there are (a file cut short), `"malformed"`
 * for another tag, a bad length or bytes after the element.
 */
export function sequenceExtent(body: Uint8Array): DerExtent {
  if (body.length < 2) return "truncated";
  if (body[0] !== 0x30) return "malformed";
  if (body[1] > 0x80 && body.length < 2 + (body[1] & 0x7f)) {
    return "truncated";
  }
  const size = sequenceSize(body);
  if (size === null) return "malformed";
  if (size > body.length) return "truncated";
  return size === body.length ? "ok" : "malformed";
}
