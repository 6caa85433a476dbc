/**
 * Private keys: signing (RFC 8709 section 6, RFC 5656 section 3.1.2,
 * RFC 8332 section 3) and generation, on Deno's native `node:crypto`.
 *
 * ECDSA signs with @noble/curves using hedged nonces (RFC 6979 section 3.6:
 * the deterministic HMAC-DRBG nonce with 32 fresh random bytes mixed in), so
 * neither a weak RNG nor a fault on a repeated message leaks the key
 * (PuTTY CVE-2024-31497 was a biased P-521 nonce). It is also faster than
 * Deno's native ECDSA signing here (bench/sign_bench.ts: P-256 0.48 ms vs
 * 0.65 ms, P-521 1.0 ms vs 1.9 ms); verification stays native, where the
 * native code wins. Ed25519 is deterministic by design (RFC 8032). Every
 * RSA signature is verified with the public key before it is returned, so
 * a fault during the CRT computation cannot leak the key (THREATS.md
 * "Signatures and keys").
 *
 * @module
 */

import {
  constants as cryptoConstants,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type JsonWebKey,
  type KeyObject,
  sign as nodeSign,
} from "node:crypto";
import { p256, p384, p521 } from "@noble/curves/nist.js";
import { SshWriter } from "../wire/writer.ts";
import {
  EC_CURVES,
  type EcCurve,
  publicKeyFromParts,
  RSA_MAX_BITS,
  RSA_MIN_BITS,
  rsaHash,
  type SshPublicKey,
} from "./public_key.ts";
import { fromBase64Url, leftPad, stripZeros, toBase64Url } from "./_util.ts";
import type { PrivateKey, PublicKey } from "./types.ts";

/** Key families {@linkcode generatePrivateKey} can create. */
export type GenerateKeyType =
  | "ed25519"
  | "ecdsa-p256"
  | "ecdsa-p384"
  | "ecdsa-p521"
  | "rsa";

/** Options for {@linkcode generatePrivateKey}. */
export interface GenerateKeyOptions {
  /**
   * RSA modulus size in bits, 2048..16384; ignored for other types.
   *
   * @default {3072}
   */
  bits?: number;
  /**
   * Comment stored with the public key.
   *
   * @default {""}
   */
  comment?: string;
}

/** The secret numbers of a key, as JWK base64url-free raw bytes. */
export type PrivateParts =
  | { readonly kind: "ed25519"; readonly seed: Uint8Array }
  | { readonly kind: "ecdsa"; readonly d: Uint8Array }
  | {
    readonly kind: "rsa";
    readonly d: Uint8Array;
    readonly p: Uint8Array;
    readonly q: Uint8Array;
    readonly iqmp: Uint8Array;
  };

const keyObjects = new WeakMap<PrivateKey, KeyObject>();

const NOBLE_CURVES = { "P-256": p256, "P-384": p384, "P-521": p521 } as const;

/** Our {@linkcode PrivateKey}; see {@linkcode generatePrivateKey}. */
class SshPrivateKey implements PrivateKey {
  readonly publicKey: SshPublicKey;
  readonly #key: KeyObject;
  /** ECDSA secret scalar, fixed length, for @noble/curves. */
  readonly #ecScalar: Uint8Array | null;

  constructor(publicKey: SshPublicKey, key: KeyObject) {
    this.publicKey = publicKey;
    this.#key = key;
    const parts = publicKey.parts;
    this.#ecScalar = parts.kind === "ecdsa"
      ? leftPad(
        fromBase64Url(key.export({ format: "jwk" }).d!),
        parts.curve.size,
      )
      : null;
    keyObjects.set(this, key);
    Object.freeze(this);
  }

  sign(data: Uint8Array, algorithm?: string): Uint8Array {
    if (!(data instanceof Uint8Array)) {
      throw new TypeError("Cannot sign: data must be a Uint8Array");
    }
    const pub = this.publicKey;
    const alg = algorithm ?? pub.signatureAlgorithms[0];
    if (!pub.signatureAlgorithms.includes(alg)) {
      throw new TypeError(
        `Cannot sign with ${
          JSON.stringify(alg)
        }: a ${pub.type} key signs with ${pub.signatureAlgorithms.join(", ")}`,
      );
    }
    const parts = pub.parts;
    let raw: Uint8Array;
    switch (parts.kind) {
      case "ed25519":
        raw = nodeSign(null, data, this.#key);
        break;
      case "ecdsa": {
        const { size, jwk } = parts.curve;
        // prehash: the curve's own hash (SHA-256/384/512), RFC 5656 6.2.1.
        const p1363 = NOBLE_CURVES[jwk].sign(data, this.#ecScalar!, {
          extraEntropy: true,
          prehash: true,
        });
        raw = new SshWriter(2 * size + 10)
          .mpintBytes(p1363.subarray(0, size))
          .mpintBytes(p1363.subarray(size))
          .bytes();
        break;
      }
      case "rsa":
        raw = nodeSign(rsaHash(alg), data, {
          key: this.#key,
          padding: cryptoConstants.RSA_PKCS1_PADDING,
        });
        break;
    }
    const blob = new SshWriter(raw.length + 32).string(alg).string(raw)
      .bytes();
    if (parts.kind === "rsa" && !pub.verify(data, blob, alg)) {
      // A faulty RSA-CRT signature reveals a factor of n; never send one.
      throw new Error(
        `Cannot sign with ${alg}: the signature failed verification (possible hardware fault or corrupt key)`,
      );
    }
    return blob;
  }
}

/**
 * The secret numbers of one of our private keys, for serialization.
 * Throws {@linkcode TypeError} for a key this module did not create.
 */
export function privateParts(key: PrivateKey): PrivateParts {
  const ko = keyObjects.get(key);
  if (ko === undefined) {
    throw new TypeError(
      "Cannot export private key: it was not created by parsePrivateKey or generatePrivateKey",
    );
  }
  const jwk = ko.export({ format: "jwk" });
  const b = (field: string | undefined): Uint8Array => {
    if (field === undefined) {
      throw new TypeError("Cannot export private key: missing JWK field");
    }
    return stripZeros(fromBase64Url(field));
  };
  switch (jwk.kty) {
    case "OKP":
      return { kind: "ed25519", seed: fromBase64Url(jwk.d!) };
    case "EC":
      return { kind: "ecdsa", d: b(jwk.d) };
    default:
      return {
        kind: "rsa",
        d: b(jwk.d),
        p: b(jwk.p),
        q: b(jwk.q),
        iqmp: b(jwk.qi),
      };
  }
}

function big(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const x of bytes) v = (v << 8n) | BigInt(x);
  return v;
}

function bytesOf(v: bigint): Uint8Array {
  let hex = v.toString(16);
  if (hex.length % 2) hex = "0" + hex;
  return Uint8Array.fromHex(hex);
}

/**
 * Builds a private key from its public numbers and secret numbers, checking
 * that they belong together (SyntaxError otherwise). RSA moduli outside
 * 2048..16384 bits throw {@linkcode RangeError}.
 */
export function privateKeyFromParts(
  pub: SshPublicKey,
  secret: PrivateParts,
): PrivateKey {
  const parts = pub.parts;
  let jwk: JsonWebKey;
  if (parts.kind === "ed25519" && secret.kind === "ed25519") {
    if (secret.seed.length !== 32) {
      throw new SyntaxError(
        `Malformed ssh-ed25519 private key: seed of ${secret.seed.length} bytes instead of 32`,
      );
    }
    jwk = {
      kty: "OKP",
      crv: "Ed25519",
      x: toBase64Url(parts.a),
      d: toBase64Url(secret.seed),
    };
  } else if (parts.kind === "ecdsa" && secret.kind === "ecdsa") {
    const { size, jwk: crv } = parts.curve;
    const d = stripZeros(secret.d);
    if (d.length === 0 || d.length > size) {
      throw new SyntaxError(
        `Malformed ${pub.type} private key: scalar of ${d.length} bytes`,
      );
    }
    jwk = {
      kty: "EC",
      crv,
      x: toBase64Url(parts.q.subarray(1, 1 + size)),
      y: toBase64Url(parts.q.subarray(1 + size)),
      d: toBase64Url(leftPad(d, size)),
    };
  } else if (parts.kind === "rsa" && secret.kind === "rsa") {
    const n = big(parts.n);
    const e = big(parts.e);
    const p = big(secret.p);
    const q = big(secret.q);
    const d = big(secret.d);
    if (p < 3n || q < 3n || p * q !== n) {
      throw new SyntaxError(
        "Malformed ssh-rsa private key: p * q does not equal the modulus",
      );
    }
    const dp = d % (p - 1n);
    const dq = d % (q - 1n);
    // e * d must be 1 modulo p-1 and q-1, or every signature would be wrong.
    if ((e * dp) % (p - 1n) !== 1n || (e * dq) % (q - 1n) !== 1n) {
      throw new SyntaxError(
        "Malformed ssh-rsa private key: d is not the inverse of e",
      );
    }
    if ((q * big(secret.iqmp)) % p !== 1n) {
      throw new SyntaxError(
        "Malformed ssh-rsa private key: iqmp is not q^-1 mod p",
      );
    }
    jwk = {
      kty: "RSA",
      n: toBase64Url(parts.n),
      e: toBase64Url(parts.e),
      d: toBase64Url(stripZeros(secret.d)),
      p: toBase64Url(stripZeros(secret.p)),
      q: toBase64Url(stripZeros(secret.q)),
      dp: toBase64Url(bytesOf(dp)),
      dq: toBase64Url(bytesOf(dq)),
      qi: toBase64Url(stripZeros(secret.iqmp)),
    };
  } else {
    throw new SyntaxError(
      `Malformed ${pub.type} private key: secret of another key type`,
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: jwk, format: "jwk" });
  } catch (e) {
    throw new SyntaxError(
      `Malformed ${pub.type} private key: rejected by the crypto backend (${
        (e as Error).message
      })`,
    );
  }
  if (parts.kind !== "rsa") {
    // The public half derived from the secret must be the one we were given.
    const derived = createPublicKey(key).export({ format: "jwk" });
    if (derived.x !== jwk.x || derived.y !== jwk.y) {
      throw new SyntaxError(
        `Malformed ${pub.type} private key: public key does not match the private key`,
      );
    }
  }
  return new SshPrivateKey(pub, key);
}

function fromGenerated(
  key: KeyObject,
  curve: EcCurve | null,
  comment: string,
): PrivateKey {
  const jwk = key.export({ format: "jwk" });
  const get = (field: string | undefined): Uint8Array => fromBase64Url(field!);
  switch (jwk.kty) {
    case "OKP": {
      const pub = publicKeyFromParts(
        { kind: "ed25519", a: get(jwk.x) },
        comment,
      );
      return new SshPrivateKey(pub, key);
    }
    case "EC": {
      const c = curve!;
      const q = new Uint8Array(1 + 2 * c.size);
      q[0] = 0x04;
      q.set(leftPad(get(jwk.x), c.size), 1);
      q.set(leftPad(get(jwk.y), c.size), 1 + c.size);
      const pub = publicKeyFromParts({ kind: "ecdsa", curve: c, q }, comment);
      return new SshPrivateKey(pub, key);
    }
    default: {
      const pub = publicKeyFromParts({
        kind: "rsa",
        e: stripZeros(get(jwk.e)),
        n: stripZeros(get(jwk.n)),
      }, comment);
      return new SshPrivateKey(pub, key);
    }
  }
}

/**
 * Generates a new private key. RSA keys default to 3072 bits and must be
 * 2048..16384 bits ({@linkcode RangeError} otherwise); large RSA keys take
 * seconds. Synchronous (native `node:crypto`).
 *
 * @example Generate, sign and verify
 * ```ts
 * import { generatePrivateKey } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const key = generatePrivateKey("ed25519", { comment: "host key" });
 * const data = new TextEncoder().encode("exchange hash");
 * const signature = key.sign(data);
 * assert.ok(key.publicKey.verify(data, signature, "ssh-ed25519"));
 * assert.ok(key.publicKey.fingerprint().startsWith("SHA256:"));
 * ```
 */
export function generatePrivateKey(
  type: GenerateKeyType,
  options: GenerateKeyOptions = {},
): PrivateKey {
  const comment = options.comment ?? "";
  if (typeof comment !== "string") {
    throw new TypeError("Cannot generate key: comment must be a string");
  }
  switch (type) {
    case "ed25519":
      return fromGenerated(
        generateKeyPairSync("ed25519").privateKey,
        null,
        comment,
      );
    case "ecdsa-p256":
    case "ecdsa-p384":
    case "ecdsa-p521": {
      const curve = EC_CURVES.get(
        `ecdsa-sha2-nist${type.slice(6)}` as PublicKey["type"],
      )!;
      const { privateKey } = generateKeyPairSync("ec", {
        namedCurve: curve.jwk,
      });
      return fromGenerated(privateKey, curve, comment);
    }
    case "rsa": {
      const bits = options.bits ?? 3072;
      if (
        !Number.isInteger(bits) || bits < RSA_MIN_BITS || bits > RSA_MAX_BITS
      ) {
        throw new RangeError(
          `Cannot generate an RSA key of ${bits} bits: must be ${RSA_MIN_BITS}..${RSA_MAX_BITS}`,
        );
      }
      const { privateKey } = generateKeyPairSync("rsa", {
        modulusLength: bits,
        publicExponent: 65537,
      });
      return fromGenerated(privateKey, null, comment);
    }
    default:
      throw new TypeError(
        `Cannot generate key: unknown type ${JSON.stringify(type)}`,
      );
  }
}
