/**
 * Public keys: blob parsing (RFC 4253 section 6.6, RFC 5656 section 3.1,
 * RFC 8709 section 4), the OpenSSH one-line text form, fingerprints and
 * signature verification (RFC 8709 section 6, RFC 5656 section 3.1.2,
 * RFC 8332 section 3).
 *
 * Verification runs on Deno's native `node:crypto`; it measured faster than
 * the pure-JS alternatives (see bench/sign_bench.ts).
 *
 * @module
 */

import {
  constants as cryptoConstants,
  createHash,
  createPublicKey,
  type JsonWebKey,
  type KeyObject,
  verify as nodeVerify,
} from "node:crypto";
import { SshReader } from "../wire/reader.ts";
import { SshWriter } from "../wire/writer.ts";
import { isKeyType, signatureAlgorithmsFor } from "./algorithms.ts";
import { rsaVerifyDigest } from "./_rsa.ts";
import {
  bitLength,
  decodeBase64,
  encodeBase64,
  leftPad,
  readStrictMpint,
  toBase64Url,
} from "./_util.ts";
import type { KeyType, PublicKey } from "./types.ts";

/** Smallest RSA modulus we accept, in bits. */
export const RSA_MIN_BITS = 2048;
/** Largest RSA modulus we accept, in bits. */
export const RSA_MAX_BITS = 16384;
/** Deno's `node:crypto` cannot import RSA public keys larger than this. */
const NODE_RSA_MAX_BITS = 4096;
/** Largest public exponent Deno's RSA implementation accepts (2^33 - 1). */
const RSA_MAX_EXPONENT = 0x1_ffff_ffffn;
/** Longest signature algorithm name we read from a signature blob. */
const MAX_ALGORITHM_NAME = 64;
/** Longest raw signature: an RSA signature of a 16384-bit modulus. */
const MAX_SIGNATURE = RSA_MAX_BITS / 8;

/** Parameters of the NIST curves used by ECDSA keys (RFC 5656 section 10). */
export interface EcCurve {
  /** Curve identifier inside the blob, e.g. `nistp256`. */
  readonly id: string;
  /** JWK curve name. */
  readonly jwk: "P-256" | "P-384" | "P-521";
  /** Field element / scalar size in bytes. */
  readonly size: number;
  /** Hash used for signatures (RFC 5656 section 6.2.1). */
  readonly hash: "sha256" | "sha384" | "sha512";
  /** Key size in bits. */
  readonly bits: number;
}

/** Curves by key type. */
export const EC_CURVES: ReadonlyMap<KeyType, EcCurve> = new Map<
  KeyType,
  EcCurve
>([
  ["ecdsa-sha2-nistp256", {
    id: "nistp256",
    jwk: "P-256",
    size: 32,
    hash: "sha256",
    bits: 256,
  }],
  ["ecdsa-sha2-nistp384", {
    id: "nistp384",
    jwk: "P-384",
    size: 48,
    hash: "sha384",
    bits: 384,
  }],
  ["ecdsa-sha2-nistp521", {
    id: "nistp521",
    jwk: "P-521",
    size: 66,
    hash: "sha512",
    bits: 521,
  }],
]);

/** The public numbers of a key, by family. */
export type PublicParts =
  | { readonly kind: "ed25519"; readonly a: Uint8Array }
  | { readonly kind: "ecdsa"; readonly curve: EcCurve; readonly q: Uint8Array }
  | { readonly kind: "rsa"; readonly e: Uint8Array; readonly n: Uint8Array };

/** Hash of an RSA signature algorithm. */
export function rsaHash(algorithm: string): "sha256" | "sha512" {
  return algorithm === "rsa-sha2-256" ? "sha256" : "sha512";
}

/**
 * Our {@linkcode PublicKey}: frozen, with the parsed numbers in
 * {@linkcode SshPublicKey.parts}. Construct with {@linkcode parsePublicKey}.
 */
export class SshPublicKey implements PublicKey {
  /** Key type from the blob. */
  readonly type: KeyType;
  /** The public key blob. */
  readonly blob: Uint8Array;
  /** Key size in bits. */
  readonly bits: number;
  /** Signature algorithms this key verifies, strongest first. */
  readonly signatureAlgorithms: readonly string[];
  /** Comment from the file it was read from, or "". */
  readonly comment: string;
  /** The public numbers. */
  readonly parts: PublicParts;

  /**
   * Internal: use {@linkcode parsePublicKey}. The key has been checked by
   * {@linkcode build}; no node:crypto `KeyObject` is kept, since a server
   * holds each authenticated user's key for the connection's lifetime and
   * a key object costs about 0.8 KiB (half of it native) while it is needed
   * for one signature check.
   */
  constructor(
    type: KeyType,
    blob: Uint8Array,
    parts: PublicParts,
    comment: string,
  ) {
    this.type = type;
    this.blob = blob;
    this.parts = parts;
    this.comment = comment;
    this.signatureAlgorithms = signatureAlgorithmsFor(type);
    this.bits = parts.kind === "ed25519"
      ? 256
      : parts.kind === "ecdsa"
      ? parts.curve.bits
      : bitLength(parts.n);
    Object.freeze(this);
  }

  /** The same key with another comment. */
  withComment(comment: string): SshPublicKey {
    return new SshPublicKey(this.type, this.blob, this.parts, comment);
  }

  /** See {@linkcode PublicKey.verify}. */
  verify(data: Uint8Array, signature: Uint8Array, algorithm: string): boolean {
    try {
      if (!this.signatureAlgorithms.includes(algorithm)) return false;
      const r = new SshReader(signature, "signature");
      const name = r.utf8(MAX_ALGORITHM_NAME);
      const raw = r.string(MAX_SIGNATURE);
      r.end();
      if (name !== algorithm) return false;
      return this.#verifyRaw(data, raw, algorithm);
    } catch {
      return false;
    }
  }

  #verifyRaw(data: Uint8Array, raw: Uint8Array, algorithm: string): boolean {
    const parts = this.parts;
    switch (parts.kind) {
      case "ed25519":
        // RFC 8709 section 6: the raw 64-byte signature of RFC 8032.
        if (raw.length !== 64) return false;
        return nodeVerify(null, data, nodeKey(this.type, parts)!, raw);
      case "ecdsa": {
        // RFC 5656 section 3.1.2: string(mpint r || mpint s).
        const { size, hash } = parts.curve;
        const r = new SshReader(raw, "ECDSA signature");
        const rb = readStrictMpint(r, size, "r");
        const sb = readStrictMpint(r, size, "s");
        r.end();
        if (rb.length === 0 || sb.length === 0) return false;
        const p1363 = new Uint8Array(2 * size);
        p1363.set(leftPad(rb, size), 0);
        p1363.set(leftPad(sb, size), size);
        return nodeVerify(
          hash,
          data,
          { key: nodeKey(this.type, parts)!, dsaEncoding: "ieee-p1363" },
          p1363,
        );
      }
      case "rsa": {
        // RFC 8332 section 3: the PKCS#1 v1.5 signature; like OpenSSH,
        // accept one shorter than the modulus by left-padding with zeros.
        const k = Math.ceil(this.bits / 8);
        if (raw.length > k || raw.length === 0) return false;
        const sig = raw.length === k ? raw : leftPad(raw, k);
        const hash = rsaHash(algorithm);
        const key = nodeKey(this.type, parts);
        if (key === null) {
          const digest = createHash(hash).update(data).digest();
          return rsaVerifyDigest(parts.n, parts.e, hash, digest, sig);
        }
        return nodeVerify(hash, data, {
          key,
          padding: cryptoConstants.RSA_PKCS1_PADDING,
        }, sig);
      }
    }
  }

  /** See {@linkcode PublicKey.fingerprint}. */
  fingerprint(): string {
    const digest = createHash("sha256").update(this.blob).digest();
    return "SHA256:" + encodeBase64(digest).replace(/=+$/, "");
  }

  /** See {@linkcode PublicKey.toString}. */
  toString(): string {
    const line = `${this.type} ${encodeBase64(this.blob)}`;
    return this.comment === "" ? line : `${line} ${this.comment}`;
  }
}

/**
 * Builds a public key from its numbers (validated as in
 * {@linkcode parsePublicKey}); used by the private key code.
 */
export function publicKeyFromParts(
  parts: PublicParts,
  comment = "",
): SshPublicKey {
  const w = new SshWriter(64);
  let type: KeyType;
  switch (parts.kind) {
    case "ed25519":
      type = "ssh-ed25519";
      w.string(type).string(parts.a);
      break;
    case "ecdsa":
      type = `ecdsa-sha2-${parts.curve.id}` as KeyType;
      w.string(type).string(parts.curve.id).string(parts.q);
      break;
    case "rsa":
      type = "ssh-rsa";
      w.string(type).mpintBytes(parts.e).mpintBytes(parts.n);
      break;
  }
  return build(type, w.bytes(), parts, comment);
}

function build(
  type: KeyType,
  blob: Uint8Array,
  parts: PublicParts,
  comment: string,
): SshPublicKey {
  switch (parts.kind) {
    case "ed25519":
      if (parts.a.length !== 32) {
        throw new SyntaxError(
          `Malformed ssh-ed25519 public key: ${parts.a.length} bytes instead of 32`,
        );
      }
      break;
    case "ecdsa": {
      // RFC 5656 section 3.1 / SEC1 2.3.3: only the uncompressed point form,
      // which is all OpenSSH produces or accepts.
      const { size } = parts.curve;
      if (parts.q.length !== 1 + 2 * size || parts.q[0] !== 0x04) {
        throw new SyntaxError(
          `Malformed ${type} public key: expected an uncompressed point of ${
            1 + 2 * size
          } bytes, got ${parts.q.length} bytes`,
        );
      }
      break;
    }
    case "rsa": {
      const bits = bitLength(parts.n);
      if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
        throw new RangeError(
          `RSA key of ${bits} bits is outside the accepted ${RSA_MIN_BITS}..${RSA_MAX_BITS} bits`,
        );
      }
      if ((parts.n[parts.n.length - 1] & 1) === 0) {
        throw new SyntaxError("Malformed ssh-rsa public key: even modulus");
      }
      const e = parts.e;
      let ev = 0n;
      for (const b of e) ev = (ev << 8n) | BigInt(b);
      if (ev < 3n || (ev & 1n) === 0n || ev > RSA_MAX_EXPONENT) {
        throw new RangeError(
          `RSA public exponent ${ev} is not an odd number in 3..2^33-1`,
        );
      }
      break;
    }
  }
  // The crypto backend's own checks (an ECDSA point on its curve, ...).
  nodeKey(type, parts);
  return new SshPublicKey(type, blob, parts, comment);
}

/**
 * The key as a node:crypto `KeyObject`, made afresh for each use (see the
 * {@linkcode SshPublicKey} constructor); null for RSA moduli node:crypto
 * cannot import, which take the BigInt path.
 */
function nodeKey(type: KeyType, parts: PublicParts): KeyObject | null {
  switch (parts.kind) {
    case "ed25519":
      return importKey(type, {
        kty: "OKP",
        crv: "Ed25519",
        x: toBase64Url(parts.a),
      });
    case "ecdsa": {
      const { size } = parts.curve;
      return importKey(type, {
        kty: "EC",
        crv: parts.curve.jwk,
        x: toBase64Url(parts.q.subarray(1, 1 + size)),
        y: toBase64Url(parts.q.subarray(1 + size)),
      });
    }
    case "rsa":
      return bitLength(parts.n) > NODE_RSA_MAX_BITS ? null : importKey(type, {
        kty: "RSA",
        n: toBase64Url(parts.n),
        e: toBase64Url(parts.e),
      });
  }
}

function importKey(type: KeyType, jwk: JsonWebKey): KeyObject {
  try {
    return createPublicKey({ key: jwk, format: "jwk" });
  } catch (e) {
    throw new SyntaxError(
      `Malformed ${type} public key: rejected by the crypto backend (${
        (e as Error).message
      }); for ECDSA the point is not on the curve`,
    );
  }
}

/**
 * Reads the fields of a public key after its type name; `r` must be
 * positioned just after it. Shared with the private key parser.
 */
export function readPublicParts(r: SshReader, type: KeyType): PublicParts {
  if (type === "ssh-ed25519") {
    return { kind: "ed25519", a: r.string() };
  }
  if (type === "ssh-rsa") {
    // RFC 4253 section 6.6: mpint e, then mpint n.
    const e = readStrictMpint(r, 8, "RSA exponent e");
    const n = readStrictMpint(r, RSA_MAX_BITS / 8, "RSA modulus n");
    return { kind: "rsa", e, n };
  }
  const curve = EC_CURVES.get(type)!;
  const id = r.utf8();
  if (id !== curve.id) {
    throw new SyntaxError(
      `Malformed ${type} public key: curve ${
        JSON.stringify(id)
      } does not match the key type`,
    );
  }
  return { kind: "ecdsa", curve, q: r.string() };
}

/**
 * Parses a public key blob as sent on the wire (RFC 4253 section 6.6).
 * Throws {@linkcode SyntaxError} for a malformed blob or an unsupported key
 * type, and {@linkcode RangeError} for an RSA modulus outside
 * 2048..16384 bits. The result is frozen and owns a copy of `blob`.
 *
 * @example Round-trip a generated key's blob
 * ```ts
 * import { generatePrivateKey, parsePublicKey } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const key = generatePrivateKey("ed25519");
 * const pub = parsePublicKey(key.publicKey.blob, "me@example");
 * assert.equal(pub.type, "ssh-ed25519");
 * assert.equal(pub.fingerprint(), key.publicKey.fingerprint());
 * const data = new TextEncoder().encode("hello");
 * assert.ok(pub.verify(data, key.sign(data), "ssh-ed25519"));
 * ```
 */
export function parsePublicKey(blob: Uint8Array, comment = ""): PublicKey {
  if (!(blob instanceof Uint8Array)) {
    throw new TypeError("Cannot parse public key: blob must be a Uint8Array");
  }
  if (typeof comment !== "string") {
    throw new TypeError("Cannot parse public key: comment must be a string");
  }
  const copy = blob.slice();
  const r = new SshReader(copy, "public key");
  const type = r.utf8();
  if (!isKeyType(type)) {
    throw new SyntaxError(
      `Unsupported public key type ${JSON.stringify(type.slice(0, 64))}`,
    );
  }
  const parts = readPublicParts(r, type);
  r.end();
  return build(type, copy, parts, comment);
}

/**
 * Parses the OpenSSH one-line form `type base64 [comment]` (as in `.pub`
 * files). The type before the base64 must equal the type inside the blob.
 *
 * @example Parse a .pub line
 * ```ts
 * import { generatePrivateKey, parsePublicKeyText } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const key = generatePrivateKey("ecdsa-p256", { comment: "host" });
 * const line = key.publicKey.toString();
 * const pub = parsePublicKeyText(line);
 * assert.equal(pub.comment, "host");
 * assert.deepEqual(pub.blob, key.publicKey.blob);
 * ```
 */
export function parsePublicKeyText(line: string): PublicKey {
  if (typeof line !== "string") {
    throw new TypeError("Cannot parse public key: line must be a string");
  }
  // Split by hand (no backtracking regex over a possibly long line).
  const text = line.replace(/\r?\n$/, "");
  if (/[\r\n]/.test(text)) {
    throw new SyntaxError("Malformed public key line: more than one line");
  }
  const trimmed = text.replace(/^[ \t]+/, "");
  const sp = trimmed.search(/[ \t]/);
  if (sp <= 0) {
    throw new SyntaxError(
      `Malformed public key line: expected "type base64 [comment]"`,
    );
  }
  const type = trimmed.slice(0, sp);
  const rest = trimmed.slice(sp).replace(/^[ \t]+/, "");
  const end = rest.search(/[ \t]/);
  const b64 = end < 0 ? rest : rest.slice(0, end);
  const comment = end < 0 ? "" : rest.slice(end).trim();
  if (b64 === "") {
    throw new SyntaxError(
      `Malformed public key line: expected "type base64 [comment]"`,
    );
  }
  const blob = decodeBase64(b64, `${type} public key line`);
  const key = parsePublicKey(blob, comment);
  if (key.type !== type) {
    throw new SyntaxError(
      `Malformed public key line: type ${
        JSON.stringify(type)
      } does not match the blob's ${key.type}`,
    );
  }
  return key;
}

/** Narrows a {@linkcode PublicKey} to ours, or null for a foreign one. */
export function ownPublicKey(key: PublicKey): SshPublicKey | null {
  return key instanceof SshPublicKey ? key : null;
}
