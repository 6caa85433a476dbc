/**
 * Writing keys as PEM, the counterpart of keys/pem.ts, with the DER built
 * here so the output is byte for byte what OpenSSL writes for the same key
 * (and RSA moduli above node:crypto's 4096-bit import limit work too):
 *
 * - private: PKCS#1 `RSA PRIVATE KEY` (RFC 8017 appendix A.1.2), SEC1
 *   `EC PRIVATE KEY` (RFC 5915 section 3), PKCS#8 `PRIVATE KEY` (RFC 5208
 *   section 5, RFC 8410 section 7 for Ed25519), encrypted PKCS#8
 *   `ENCRYPTED PRIVATE KEY` (RFC 5958 section 3, PBES2 of RFC 8018 section
 *   6.2 with PBKDF2-HMAC-SHA256 and AES-256-CBC, OpenSSL 3's default), and
 *   PKCS#1 / SEC1 under the legacy OpenSSL `Proc-Type: 4,ENCRYPTED` +
 *   `DEK-Info: AES-128-CBC` headers (RFC 1421 section 4.6.1), which is what
 *   `ssh-keygen -m PEM -N pass` writes;
 * - public: SPKI `PUBLIC KEY` (RFC 5280 section 4.1.2.7, RFC 5480, RFC 8410)
 *   and PKCS#1 `RSA PUBLIC KEY`, as `ssh-keygen -e -m PKCS8|PEM` print.
 *
 * @module
 */

import {
  createCipheriv,
  createHash,
  pbkdf2Sync,
  randomBytes,
} from "node:crypto";
import { Buffer } from "node:buffer";
import {
  bitString,
  explicit,
  integer,
  nullValue,
  objectId,
  octetString,
  OID,
  sequence,
  smallInteger,
} from "./_der.ts";
import { privateParts } from "./private_key.ts";
import {
  ownPublicKey,
  parsePublicKey,
  type SshPublicKey,
} from "./public_key.ts";
import { leftPad } from "./_util.ts";
import type { PrivateKey, PublicKey } from "./types.ts";

/**
 * PEM layouts of a private key: `"pkcs8"` for any key type, `"pkcs1"` for
 * RSA and `"sec1"` for ECDSA (the two OpenSSL calls "traditional" and
 * `ssh-keygen -m PEM` writes).
 */
export type PemPrivateKeyFormat = "pkcs8" | "pkcs1" | "sec1";

/** Options for {@linkcode encodePrivateKeyPem}. */
export interface EncodePrivateKeyPemOptions {
  /**
   * Layout of the key. Ed25519 keys have only `"pkcs8"`.
   *
   * @default {"pkcs8"}
   */
  format?: PemPrivateKeyFormat;
  /**
   * Encrypts the key with this passphrase: `"pkcs8"` as PBES2
   * (PBKDF2-HMAC-SHA256, AES-256-CBC), `"pkcs1"`/`"sec1"` under legacy
   * `Proc-Type`/`DEK-Info: AES-128-CBC` headers (an MD5-based key
   * derivation the format fixes; prefer PKCS#8 or openssh-key-v1). Unset or
   * "" writes an unencrypted key.
   *
   * @default {undefined}
   */
  passphrase?: string;
  /**
   * PBKDF2 iterations for an encrypted `"pkcs8"` key, 1..10000000.
   *
   * @default {2048}
   */
  iterations?: number;
}

/** PEM layouts of a public key: SPKI for any key type, PKCS#1 for RSA. */
export type PemPublicKeyFormat = "spki" | "pkcs1";

/** Options for {@linkcode encodePublicKeyPem}. */
export interface EncodePublicKeyPemOptions {
  /**
   * `"spki"` (`-----BEGIN PUBLIC KEY-----`, any key type) or `"pkcs1"`
   * (`-----BEGIN RSA PUBLIC KEY-----`, RSA only).
   *
   * @default {"spki"}
   */
  format?: PemPublicKeyFormat;
}

/** OpenSSL's default PBKDF2 iteration count (PKCS5_DEFAULT_ITER). */
const DEFAULT_ITERATIONS = 2048;
const MAX_ITERATIONS = 10_000_000;

const encoder = new TextEncoder();

/** Base64 body wrapped at 64 columns between BEGIN and END lines. */
function armor(label: string, der: Uint8Array, headers = ""): string {
  const b64 = der.toBase64();
  const lines: string[] = [`-----BEGIN ${label}-----`];
  if (headers !== "") lines.push(headers, "");
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  lines.push(`-----END ${label}-----`, "");
  return lines.join("\n");
}

function ours(key: PublicKey, what: string): SshPublicKey {
  if (typeof key !== "object" || key === null) {
    throw new TypeError(`Cannot encode ${what}: not a key`);
  }
  // A PublicKey from elsewhere is read back from its blob.
  return ownPublicKey(key) ?? (parsePublicKey(key.blob) as SshPublicKey);
}

function big(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt("0x" + bytes.toHex());
}

function bytesOf(v: bigint): Uint8Array {
  const hex = v.toString(16);
  return Uint8Array.fromHex(hex.length % 2 ? "0" + hex : hex);
}

/** RSAPublicKey (RFC 8017 appendix A.1.1). */
function rsaPublicKey(n: Uint8Array, e: Uint8Array): Uint8Array {
  return sequence(integer(n), integer(e));
}

/** SubjectPublicKeyInfo (RFC 5280 section 4.1). */
function spki(pub: SshPublicKey): Uint8Array {
  const parts = pub.parts;
  switch (parts.kind) {
    case "ed25519":
      // RFC 8410 section 3: the parameters are absent.
      return sequence(
        sequence(objectId(OID.ed25519)),
        bitString(parts.a),
      );
    case "ecdsa":
      // RFC 5480 section 2.1.1: namedCurve parameters, uncompressed point.
      return sequence(
        sequence(objectId(OID.ecPublicKey), objectId(OID[parts.curve.jwk])),
        bitString(parts.q),
      );
    case "rsa":
      // RFC 8017 appendix A.1: rsaEncryption with NULL parameters.
      return sequence(
        sequence(objectId(OID.rsaEncryption), nullValue()),
        bitString(rsaPublicKey(parts.n, parts.e)),
      );
  }
}

/**
 * Encodes a public key as PEM: SPKI `-----BEGIN PUBLIC KEY-----` for any
 * key type, or PKCS#1 `-----BEGIN RSA PUBLIC KEY-----` for RSA, the bytes
 * `ssh-keygen -e -m PKCS8` and `-e -m PEM` print (ssh-keygen 9.2 refuses
 * Ed25519 there; OpenSSL reads its SPKI). Throws {@linkcode TypeError} for
 * an unknown format or PKCS#1 of a non-RSA key.
 *
 * @example Export for OpenSSL and read it back
 * ```ts
 * import {
 *   encodePublicKeyPem,
 *   generatePrivateKey,
 *   parsePublicKeyPem,
 * } from "@fynx/ssh";
 * import { createPublicKey } from "node:crypto";
 * import assert from "node:assert/strict";
 *
 * const key = generatePrivateKey("ecdsa-p256").publicKey;
 * const pem = encodePublicKeyPem(key);
 * assert.ok(pem.startsWith("-----BEGIN PUBLIC KEY-----\n"));
 * assert.equal(createPublicKey(pem).asymmetricKeyType, "ec");
 * assert.equal(parsePublicKeyPem(pem).fingerprint(), key.fingerprint());
 * ```
 */
export function encodePublicKeyPem(
  key: PublicKey,
  options: EncodePublicKeyPemOptions = {},
): string {
  const pub = ours(key, "public key");
  const format = options.format ?? "spki";
  if (format === "spki") return armor("PUBLIC KEY", spki(pub));
  if (format !== "pkcs1") {
    throw new TypeError(
      `Cannot encode public key: unknown format ${
        JSON.stringify(format)
      } (spki or pkcs1)`,
    );
  }
  const parts = pub.parts;
  if (parts.kind !== "rsa") {
    throw new TypeError(
      `Cannot encode a ${pub.type} public key as PKCS#1: PKCS#1 holds only RSA keys`,
    );
  }
  return armor("RSA PUBLIC KEY", rsaPublicKey(parts.n, parts.e));
}

/** The unencrypted DER of `key` in `format`, and its PEM label. */
function privateDer(
  pub: SshPublicKey,
  key: PrivateKey,
  format: PemPrivateKeyFormat,
): { label: string; der: Uint8Array } {
  const secret = privateParts(key);
  const parts = pub.parts;
  if (parts.kind === "rsa" && secret.kind === "rsa") {
    if (format === "sec1") return mismatch(pub, format);
    const p = big(secret.p);
    const q = big(secret.q);
    const d = big(secret.d);
    // RFC 8017 appendix A.1.2 RSAPrivateKey, version 0 (two primes).
    const pkcs1 = sequence(
      smallInteger(0),
      integer(parts.n),
      integer(parts.e),
      integer(secret.d),
      integer(secret.p),
      integer(secret.q),
      integer(bytesOf(d % (p - 1n))),
      integer(bytesOf(d % (q - 1n))),
      integer(secret.iqmp),
    );
    if (format === "pkcs1") return { label: "RSA PRIVATE KEY", der: pkcs1 };
    return {
      label: "PRIVATE KEY",
      der: sequence(
        smallInteger(0),
        sequence(objectId(OID.rsaEncryption), nullValue()),
        octetString(pkcs1),
      ),
    };
  }
  if (parts.kind === "ecdsa" && secret.kind === "ecdsa") {
    if (format === "pkcs1") return mismatch(pub, format);
    const curve = objectId(OID[parts.curve.jwk]);
    // RFC 5915 section 3: the scalar as an octet string of the curve's
    // size; PKCS#8 carries the curve in its AlgorithmIdentifier, so its
    // ECPrivateKey leaves the [0] parameters out, as OpenSSL does.
    const d = octetString(leftPad(secret.d, parts.curve.size));
    const publicKey = explicit(1, bitString(parts.q));
    if (format === "sec1") {
      return {
        label: "EC PRIVATE KEY",
        der: sequence(smallInteger(1), d, explicit(0, curve), publicKey),
      };
    }
    return {
      label: "PRIVATE KEY",
      der: sequence(
        smallInteger(0),
        sequence(objectId(OID.ecPublicKey), curve),
        octetString(sequence(smallInteger(1), d, publicKey)),
      ),
    };
  }
  if (parts.kind === "ed25519" && secret.kind === "ed25519") {
    if (format !== "pkcs8") return mismatch(pub, format);
    // RFC 8410 section 7: CurvePrivateKey is an OCTET STRING of the seed.
    return {
      label: "PRIVATE KEY",
      der: sequence(
        smallInteger(0),
        sequence(objectId(OID.ed25519)),
        octetString(octetString(secret.seed)),
      ),
    };
  }
  throw new TypeError("Cannot encode private key: inconsistent key");
}

function mismatch(pub: SshPublicKey, format: PemPrivateKeyFormat): never {
  const holds = format === "pkcs1" ? "RSA" : "ECDSA";
  throw new TypeError(
    `Cannot encode a ${pub.type} private key as ${format.toUpperCase()}: ${format.toUpperCase()} holds only ${holds} keys (use "pkcs8")`,
  );
}

/** PBES2 EncryptedPrivateKeyInfo (RFC 5958 section 3, RFC 8018 6.2). */
function encryptPkcs8(
  der: Uint8Array,
  passphrase: string,
  iterations: number,
): Uint8Array {
  const salt = randomBytes(16);
  const iv = randomBytes(16);
  const kek = pbkdf2Sync(
    encoder.encode(passphrase),
    salt,
    iterations,
    32,
    "sha256",
  );
  const cipher = createCipheriv("aes-256-cbc", kek, iv);
  const encrypted = new Uint8Array(
    Buffer.concat([cipher.update(der), cipher.final()]),
  );
  kek.fill(0);
  // RFC 8018 appendix A.2: PBKDF2-params without the optional keyLength,
  // and the PRF written out (with NULL parameters), as OpenSSL 3 does.
  const algorithm = sequence(
    objectId(OID.pbes2),
    sequence(
      sequence(
        objectId(OID.pbkdf2),
        sequence(
          octetString(salt),
          smallInteger(iterations),
          sequence(objectId(OID.hmacWithSha256), nullValue()),
        ),
      ),
      sequence(objectId(OID.aes256Cbc), octetString(iv)),
    ),
  );
  return sequence(algorithm, octetString(encrypted));
}

/**
 * Legacy encrypted PEM: AES-128-CBC with the key from OpenSSL's
 * EVP_BytesToKey (one MD5 round over passphrase and the IV's first eight
 * bytes), the IV in the DEK-Info header as uppercase hex.
 */
function encryptLegacy(
  der: Uint8Array,
  passphrase: string,
): { headers: string; body: Uint8Array } {
  const iv = randomBytes(16);
  const key = createHash("md5")
    .update(encoder.encode(passphrase))
    .update(iv.subarray(0, 8))
    .digest();
  const cipher = createCipheriv("aes-128-cbc", key, iv);
  const body = new Uint8Array(
    Buffer.concat([cipher.update(der), cipher.final()]),
  );
  key.fill(0);
  return {
    headers: `Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,${
      iv.toString("hex").toUpperCase()
    }`,
    body,
  };
}

/**
 * Encodes one of our private keys as PEM: PKCS#8 `PRIVATE KEY` (any type),
 * PKCS#1 `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY`, optionally encrypted
 * with `options.passphrase` (see {@linkcode EncodePrivateKeyPemOptions}).
 * Unencrypted output is byte for byte what OpenSSL (and `ssh-keygen -p -m
 * PEM|PKCS8 -N ""`) writes for the key. PEM files carry no comment.
 * ssh-keygen 9.2 reads all of these except Ed25519 PKCS#8 (it writes
 * Ed25519 keys only as openssh-key-v1; OpenSSL reads them). Write the
 * result with mode 0600.
 *
 * Throws {@linkcode TypeError} for an unknown format, a format that cannot
 * hold the key type (PKCS#1 of ECDSA, SEC1 of RSA, either of Ed25519) or a
 * key that `parsePrivateKey` or `generatePrivateKey` did not create;
 * {@linkcode RangeError} for iterations outside 1..10000000.
 *
 * @example Write an encrypted PKCS#8 key and read it back
 * ```ts
 * import {
 *   encodePrivateKeyPem,
 *   generatePrivateKey,
 *   parsePrivateKey,
 * } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const key = generatePrivateKey("ecdsa-p384");
 * const pem = encodePrivateKeyPem(key, { passphrase: "s3cret phrase" });
 * assert.ok(pem.startsWith("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
 * const again = parsePrivateKey(pem, { passphrase: "s3cret phrase" });
 * assert.equal(again.publicKey.fingerprint(), key.publicKey.fingerprint());
 *
 * const sec1 = encodePrivateKeyPem(key, { format: "sec1" });
 * assert.ok(sec1.startsWith("-----BEGIN EC PRIVATE KEY-----\n"));
 * ```
 */
export function encodePrivateKeyPem(
  key: PrivateKey,
  options: EncodePrivateKeyPemOptions = {},
): string {
  if (typeof key !== "object" || key === null) {
    throw new TypeError("Cannot encode private key: not a key");
  }
  const format = options.format ?? "pkcs8";
  if (format !== "pkcs8" && format !== "pkcs1" && format !== "sec1") {
    throw new TypeError(
      `Cannot encode private key: unknown format ${
        JSON.stringify(format)
      } (pkcs8, pkcs1 or sec1)`,
    );
  }
  const passphrase = options.passphrase ?? "";
  if (typeof passphrase !== "string") {
    throw new TypeError(
      "Cannot encode private key: passphrase must be a string",
    );
  }
  const iterations = options.iterations ?? DEFAULT_ITERATIONS;
  if (
    !Number.isInteger(iterations) || iterations < 1 ||
    iterations > MAX_ITERATIONS
  ) {
    throw new RangeError(
      `Cannot encode private key: iterations ${iterations} outside 1..${MAX_ITERATIONS}`,
    );
  }
  const pub = ours(key.publicKey, "private key");
  const { label, der } = privateDer(pub, key, format);
  try {
    if (passphrase === "") return armor(label, der);
    if (format === "pkcs8") {
      return armor(
        "ENCRYPTED PRIVATE KEY",
        encryptPkcs8(der, passphrase, iterations),
      );
    }
    const { headers, body } = encryptLegacy(der, passphrase);
    return armor(label, body, headers);
  } finally {
    der.fill(0);
  }
}
