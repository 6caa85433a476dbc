/**
 * PEM key files other than openssh-key-v1, read through Deno's native
 * `node:crypto` (OpenSSL's decoders) and converted to our keys via JWK:
 *
 * - private: PKCS#1 `RSA PRIVATE KEY` (RFC 8017 appendix A.1.2), SEC1
 *   `EC PRIVATE KEY` (RFC 5915), PKCS#8 `PRIVATE KEY` (RFC 5208) and
 *   `ENCRYPTED PRIVATE KEY` (RFC 5958 / PBES2 of RFC 8018), and the legacy
 *   OpenSSL `Proc-Type: 4,ENCRYPTED` + `DEK-Info` headers (RFC 1421
 *   section 4.6.1) that `ssh-keygen -p -m PEM -N pass` writes;
 * - public: SPKI `PUBLIC KEY` (RFC 5280 section 4.1.2.7) and PKCS#1
 *   `RSA PUBLIC KEY`, as `ssh-keygen -e -m PKCS8|PEM` print.
 *
 * The armor and base64 are checked here first, so malformed input fails
 * with our own errors before OpenSSL sees it. keys/pem_write.ts writes all
 * of these.
 *
 * @module
 */

import {
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  type JsonWebKey,
  type KeyObject,
} from "node:crypto";
import { Buffer } from "node:buffer";
import { KeyParseError } from "./errors.ts";
import { sequenceExtent, sequenceSize } from "./_der.ts";
import {
  EC_CURVES,
  publicKeyFromParts,
  type PublicParts,
  type SshPublicKey,
} from "./public_key.ts";
import { privateKeyFromParts, type PrivateParts } from "./private_key.ts";
import { decodeBase64, fromBase64Url, leftPad, stripZeros } from "./_util.ts";
import type { PrivateKey, PublicKey } from "./types.ts";

/** Largest PEM text we look at (a 16384-bit RSA key is about 13 KiB). */
const MAX_PEM_TEXT = 1024 * 1024;

/** PEM labels of private keys this module reads. */
export const PEM_PRIVATE_LABELS: readonly string[] = [
  "RSA PRIVATE KEY",
  "EC PRIVATE KEY",
  "PRIVATE KEY",
  "ENCRYPTED PRIVATE KEY",
];

/** DEK-Info ciphers of legacy encrypted PEM that OpenSSL decrypts. */
const LEGACY_CIPHERS: readonly string[] = [
  "AES-128-CBC",
  "AES-192-CBC",
  "AES-256-CBC",
  "DES-EDE3-CBC",
];

/** PEM labels of public keys this module reads. */
export const PEM_PUBLIC_LABELS: readonly string[] = [
  "PUBLIC KEY",
  "RSA PUBLIC KEY",
];

/** One armored block: its label, RFC 1421 headers and decoded body. */
export interface PemBlock {
  /** Label between `-----BEGIN ` and `-----`. */
  readonly label: string;
  /** Header lines before the body (`Proc-Type`, `DEK-Info`), by name. */
  readonly headers: ReadonlyMap<string, string>;
  /** The DER body. */
  readonly body: Uint8Array;
  /** The block re-armored canonically (for OpenSSL). */
  readonly text: string;
}

/**
 * Finds the first `-----BEGIN label-----` block in `text` and decodes it.
 * Throws {@linkcode SyntaxError} for a missing or mismatched END line,
 * malformed headers or base64, {@linkcode RangeError} for huge input.
 */
export function readPemBlock(text: string): PemBlock {
  if (text.length > MAX_PEM_TEXT) {
    throw new RangeError(
      `PEM text of ${text.length} characters exceeds the limit of ${MAX_PEM_TEXT}`,
    );
  }
  const begin = /-----BEGIN ([A-Z0-9 ]{1,64})-----/.exec(text);
  if (begin === null) {
    throw new SyntaxError("Malformed PEM: no -----BEGIN line");
  }
  const label = begin[1];
  const endLine = `-----END ${label}-----`;
  const start = begin.index + begin[0].length;
  const end = text.indexOf(endLine, start);
  if (end < 0) {
    throw new SyntaxError(`Truncated PEM: no "${endLine}" line`);
  }
  const lines = text.slice(start, end).split(/\r?\n/).map((l) => l.trim());
  const headers = new Map<string, string>();
  let i = 0;
  while (i < lines.length && lines[i] === "") i++;
  // RFC 1421 section 4.4: headers, then one blank line, then the body.
  while (i < lines.length && lines[i].includes(":")) {
    const line = lines[i];
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim();
    if (!/^[A-Za-z0-9-]{1,64}$/.test(name)) {
      throw new SyntaxError(
        `Malformed PEM: bad header ${JSON.stringify(line.slice(0, 64))}`,
      );
    }
    headers.set(name.toLowerCase(), line.slice(colon + 1).trim());
    i++;
  }
  const b64 = lines.slice(i).join("");
  if (b64 === "") throw new SyntaxError("Truncated PEM: empty body");
  const body = decodeBase64(b64, `PEM ${label}`);
  const headerText = [...headers].map(([k, v]) => `${canonical(k)}: ${v}\n`)
    .join("");
  const wrapped: string[] = [];
  for (let j = 0; j < b64.length; j += 64) wrapped.push(b64.slice(j, j + 64));
  const armored = `-----BEGIN ${label}-----\n${headerText}${
    headerText === "" ? "" : "\n"
  }${wrapped.join("\n")}\n${endLine}\n`;
  return { label, headers, body, text: armored };
}

function canonical(name: string): string {
  if (name === "proc-type") return "Proc-Type";
  if (name === "dek-info") return "DEK-Info";
  return name;
}

/** Public numbers of a node:crypto key, or null for a foreign key type. */
function partsFromJwk(jwk: JsonWebKey): PublicParts | null {
  const get = (field: string | undefined): Uint8Array => {
    if (typeof field !== "string") {
      throw new SyntaxError("Malformed PEM key: missing JWK field");
    }
    return fromBase64Url(field);
  };
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") {
    return { kind: "ed25519", a: get(jwk.x) };
  }
  if (jwk.kty === "EC") {
    for (const curve of EC_CURVES.values()) {
      if (curve.jwk !== jwk.crv) continue;
      const q = new Uint8Array(1 + 2 * curve.size);
      q[0] = 0x04;
      q.set(leftPad(get(jwk.x), curve.size), 1);
      q.set(leftPad(get(jwk.y), curve.size), 1 + curve.size);
      return { kind: "ecdsa", curve, q };
    }
    return null;
  }
  if (jwk.kty === "RSA") {
    return {
      kind: "rsa",
      e: stripZeros(get(jwk.e)),
      n: stripZeros(get(jwk.n)),
    };
  }
  return null;
}

function describe(key: KeyObject): string {
  const type = key.asymmetricKeyType ?? "unknown";
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return curve === undefined ? type : `${type} ${curve}`;
}

/**
 * Tells a body cut short from a corrupt one before OpenSSL, which reports
 * both (and, for encrypted keys, a wrong passphrase) alike: the DER must be
 * exactly one SEQUENCE, and legacy ciphertext whole cipher blocks.
 */
function checkExtent(block: PemBlock, legacy: boolean): void {
  if (legacy) {
    const dek = block.headers.get("dek-info") ?? "";
    const blockSize = dek.startsWith("DES") ? 8 : 16;
    if (block.body.length % blockSize !== 0) {
      throw new KeyParseError(
        "truncated",
        `Truncated private key (${block.label}): ${block.body.length} bytes of ciphertext is not a whole number of ${blockSize}-byte blocks`,
      );
    }
    return;
  }
  const extent = sequenceExtent(block.body);
  if (extent === "truncated") {
    throw new KeyParseError(
      "truncated",
      `Truncated private key (${block.label}): the DER body is shorter than its length header says`,
    );
  }
  if (extent === "malformed") {
    throw new KeyParseError(
      "malformed",
      `Malformed private key (${block.label}): the body is not one DER SEQUENCE`,
    );
  }
}

/** AES key sizes of the legacy DEK-Info ciphers. */
const LEGACY_AES: ReadonlyMap<string, number> = new Map([
  ["AES-128-CBC", 16],
  ["AES-192-CBC", 24],
  ["AES-256-CBC", 32],
]);

/**
 * Why a legacy AES-encrypted body that OpenSSL could not decrypt failed,
 * when it was not the passphrase: the first block tells. With the right
 * passphrase it decrypts to the key's own header (`30 82 LL LL 02 01 0v`:
 * a SEQUENCE, then version 0 for PKCS#1 or 1 for SEC1); a wrong one makes
 * random bytes that match those seven with odds of 2^-50. A header that
 * declares more bytes than there are means a file cut short (at a block
 * boundary, or the block-size check would have caught it); otherwise the
 * damage is further on. Null: the passphrase is wrong.
 */
function legacyDamage(
  block: PemBlock,
  passphrase: string,
): "truncated" | "corrupt" | null {
  const [name, ivHex] = (block.headers.get("dek-info") ?? "").split(",");
  const keyLength = LEGACY_AES.get(name);
  if (keyLength === undefined || ivHex?.length !== 32) return null;
  if (block.body.length < 16) return null;
  const iv = Uint8Array.fromHex(ivHex);
  // OpenSSL's EVP_BytesToKey with MD5 and one round: D1 = MD5(pass ||
  // salt), Di = MD5(Di-1 || pass || salt), the salt being the IV's first
  // eight bytes.
  const pass = new TextEncoder().encode(passphrase);
  const key = new Uint8Array(keyLength + 16);
  let made = 0;
  let previous = new Uint8Array(0);
  while (made < keyLength) {
    previous = new Uint8Array(
      createHash("md5").update(previous).update(pass).update(
        iv.subarray(0, 8),
      ).digest(),
    );
    key.set(previous, made);
    made += previous.length;
  }
  const decipher = createDecipheriv(
    `aes-${keyLength * 8}-cbc`,
    key.subarray(0, keyLength),
    iv,
  );
  decipher.setAutoPadding(false);
  let first: Uint8Array;
  try {
    first = new Uint8Array(decipher.update(block.body.subarray(0, 16)));
  } finally {
    // Whole blocks and no padding: final() only releases the cipher.
    decipher.final();
    key.fill(0);
  }
  const size = sequenceSize(first);
  const at = first[1] < 0x80 ? 2 : 2 + (first[1] & 0x7f);
  const looksLikeKey = size !== null && first[at] === 0x02 &&
    first[at + 1] === 0x01 && (first[at + 2] === 0 || first[at + 2] === 1);
  first.fill(0);
  if (!looksLikeKey) return null;
  return size! > block.body.length ? "truncated" : "corrupt";
}

/**
 * Reads a PEM private key (see the module doc for the labels), decrypting
 * it with `passphrase` when encrypted. Errors: {@linkcode KeyParseError}
 * (`passphrase-required`, `wrong-passphrase`, `unsupported-key-type`,
 * `truncated`, `malformed`), {@linkcode RangeError} for RSA sizes outside
 * 2048..16384 bits or huge input.
 */
export function parsePemPrivateKey(
  text: string,
  passphrase: string | undefined,
): PrivateKey {
  let block: PemBlock;
  try {
    block = readPemBlock(text);
  } catch (e) {
    if (e instanceof RangeError) throw e;
    const message = (e as Error).message;
    throw new KeyParseError(
      message.startsWith("Truncated") ? "truncated" : "malformed",
      `${
        message.startsWith("Truncated") ? "Truncated" : "Malformed"
      } private key: ${message}`,
      { cause: e },
    );
  }
  if (!PEM_PRIVATE_LABELS.includes(block.label)) {
    throw new KeyParseError(
      "unsupported-key-type",
      `Unsupported private key format "${block.label}"`,
    );
  }
  const procType = block.headers.get("proc-type");
  const legacy = procType !== undefined && /ENCRYPTED/i.test(procType);
  const encrypted = block.label === "ENCRYPTED PRIVATE KEY" || legacy;
  // The legacy cipher first: its block size is what a whole body is.
  if (encrypted && block.label !== "ENCRYPTED PRIVATE KEY") {
    const dek = block.headers.get("dek-info");
    if (
      dek === undefined || !/^[A-Z0-9-]{1,32},[0-9A-Fa-f]{16,64}$/.test(dek)
    ) {
      throw new KeyParseError(
        "malformed",
        `Malformed private key: bad or missing DEK-Info header`,
      );
    }
    const name = dek.slice(0, dek.indexOf(","));
    if (!LEGACY_CIPHERS.includes(name)) {
      throw new KeyParseError(
        "unsupported-cipher",
        `Unsupported PEM encryption ${JSON.stringify(name)} (supported: ${
          LEGACY_CIPHERS.join(", ")
        })`,
      );
    }
  }
  checkExtent(block, legacy);
  if (encrypted && (passphrase === undefined || passphrase === "")) {
    throw new KeyParseError(
      "passphrase-required",
      `Private key (${block.label}) is encrypted: a passphrase is required`,
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({
      key: block.text,
      format: "pem",
      passphrase: encrypted ? passphrase : undefined,
    });
  } catch (e) {
    const damage = legacy ? legacyDamage(block, passphrase!) : null;
    if (damage === "truncated") {
      throw new KeyParseError(
        "truncated",
        `Truncated private key (${block.label}): the ciphertext ends before the key does`,
        { cause: e },
      );
    }
    if (damage === "corrupt") {
      throw new KeyParseError(
        "malformed",
        `Malformed private key (${block.label}): the passphrase is right but the ciphertext is corrupt`,
        { cause: e },
      );
    }
    // OpenSSL reports a bad passphrase as a padding or ASN.1 failure of
    // the decrypted bytes; both mean the key cannot be recovered with it.
    throw new KeyParseError(
      encrypted ? "wrong-passphrase" : "malformed",
      encrypted
        ? `Cannot decrypt private key (${block.label}): wrong passphrase`
        : `Malformed private key (${block.label}): ${(e as Error).message}`,
      { cause: e },
    );
  }
  let jwk: JsonWebKey;
  let parts: PublicParts | null;
  try {
    jwk = key.export({ format: "jwk" });
    parts = partsFromJwk(jwk);
  } catch (e) {
    throw new KeyParseError(
      "unsupported-key-type",
      `Unsupported private key type ${describe(key)}`,
      { cause: e },
    );
  }
  if (parts === null) {
    throw new KeyParseError(
      "unsupported-key-type",
      `Unsupported private key type ${describe(key)}`,
    );
  }
  try {
    const pub = publicKeyFromParts(parts);
    let secret: PrivateParts;
    const d = fromBase64Url(jwk.d ?? "");
    if (parts.kind === "ed25519") secret = { kind: "ed25519", seed: d };
    else if (parts.kind === "ecdsa") secret = { kind: "ecdsa", d };
    else {
      secret = {
        kind: "rsa",
        d: stripZeros(d),
        p: stripZeros(fromBase64Url(jwk.p ?? "")),
        q: stripZeros(fromBase64Url(jwk.q ?? "")),
        iqmp: stripZeros(fromBase64Url(jwk.qi ?? "")),
      };
    }
    return privateKeyFromParts(pub, secret);
  } catch (e) {
    if (e instanceof RangeError) throw e;
    throw new KeyParseError(
      "malformed",
      `Malformed private key (${block.label}): ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/**
 * Parses a PEM public key: SPKI `-----BEGIN PUBLIC KEY-----` (Ed25519,
 * ECDSA P-256/384/521 or RSA) or PKCS#1 `-----BEGIN RSA PUBLIC KEY-----`,
 * as `ssh-keygen -e -m PKCS8` and `-m PEM` print. The comment is "".
 * Throws {@linkcode SyntaxError} for malformed input or another key type,
 * {@linkcode RangeError} for an RSA modulus outside 2048..16384 bits,
 * {@linkcode TypeError} when `text` is not a string.
 *
 * @example Read an SPKI PEM public key
 * ```ts
 * import { parsePublicKeyPem } from "@fynx/ssh";
 * import { generateKeyPairSync } from "node:crypto";
 * import assert from "node:assert/strict";
 *
 * const { publicKey } = generateKeyPairSync("ed25519");
 * const pem = publicKey.export({ type: "spki", format: "pem" }) as string;
 * const key = parsePublicKeyPem(pem);
 * assert.equal(key.type, "ssh-ed25519");
 * assert.ok(key.fingerprint().startsWith("SHA256:"));
 * ```
 */
export function parsePublicKeyPem(text: string): PublicKey {
  if (typeof text !== "string") {
    throw new TypeError("Cannot parse PEM public key: text must be a string");
  }
  const block = readPemBlock(text);
  if (!PEM_PUBLIC_LABELS.includes(block.label)) {
    throw new SyntaxError(
      `Unsupported PEM public key label "${block.label}" (expected ${
        PEM_PUBLIC_LABELS.map((l) => `"${l}"`).join(" or ")
      })`,
    );
  }
  let key: KeyObject;
  try {
    key = createPublicKey({
      key: Buffer.from(block.body),
      format: "der",
      type: block.label === "PUBLIC KEY" ? "spki" : "pkcs1",
    });
  } catch (e) {
    throw new SyntaxError(
      `Malformed PEM public key (${block.label}): ${(e as Error).message}`,
    );
  }
  let parts: PublicParts | null;
  try {
    parts = partsFromJwk(key.export({ format: "jwk" }));
  } catch {
    parts = null;
  }
  if (parts === null) {
    throw new SyntaxError(`Unsupported PEM public key type ${describe(key)}`);
  }
  return publicKeyFromParts(parts) as SshPublicKey;
}
