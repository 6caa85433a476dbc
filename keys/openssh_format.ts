/**
 * The OpenSSH private key file format, openssh-key-v1 (OpenSSH PROTOCOL.key):
 *
 * ```
 * "openssh-key-v1\0"  string ciphername  string kdfname  string kdfoptions
 * uint32 number-of-keys (1)  string publickey  string encrypted-section
 * [authentication tag for AEAD ciphers]
 * ```
 *
 * The (decrypted) section holds `uint32 checkint, uint32 checkint`, the
 * private key fields, a comment and padding `1, 2, 3, ...` to the cipher's
 * block size. Encryption keys come from bcrypt_pbkdf over the passphrase,
 * with the salt and rounds in kdfoptions.
 *
 * @module
 */

// AES through node:crypto rather than @noble/ciphers/aes.js: that module
// builds ~1.3 MB of lookup tables when imported (about 6 MiB of RSS in
// every process that imports keys/mod.ts, servers included), for a cipher
// used only to open or write passphrase-protected key files.
import { createCipheriv, createDecipheriv, getRandomValues } from "node:crypto";
import { poly1305Wasm } from "../transport/cipher/_poly1305.ts";
import { constantTimeEqual, streamXor } from "../transport/cipher/_common.ts";
import { SshReader } from "../wire/reader.ts";
import { SshWriter } from "../wire/writer.ts";
import { isKeyType } from "./algorithms.ts";
import { KeyParseError } from "./errors.ts";
import {
  parsePublicKey,
  readPublicParts,
  type SshPublicKey,
} from "./public_key.ts";
import {
  privateKeyFromParts,
  type PrivateParts,
  privateParts,
} from "./private_key.ts";
import { bcryptPbkdf } from "./_bcrypt_pbkdf.ts";
import { parsePemPrivateKey } from "./pem.ts";
import { decodeBase64, encodeBase64, equalBytes } from "./_util.ts";
import type { KeyType, PrivateKey } from "./types.ts";

const BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END = "-----END OPENSSH PRIVATE KEY-----";
const MAGIC = new TextEncoder().encode("openssh-key-v1\0");
/** Largest key file body we decode (a 16384-bit RSA key is about 9 KiB). */
const MAX_BODY = 256 * 1024;
/** Most bcrypt rounds we run; ssh-keygen defaults to 16 (about 0.3 s here). */
export const MAX_KDF_ROUNDS = 4096;
/** Longest salt we accept; ssh-keygen writes 16 bytes. */
const MAX_SALT = 1024;
/** bcrypt rounds ssh-keygen uses by default (`-a`). */
const DEFAULT_KDF_ROUNDS = 16;
/** Private key PEM labels dispatched to keys/pem.ts. */
const PEM_LABEL_RE = /-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----/;

/** Options for {@linkcode parsePrivateKey}. */
export interface ParsePrivateKeyOptions {
  /**
   * Passphrase of an encrypted key; ignored for an unencrypted one.
   *
   * @default {undefined}
   */
  passphrase?: string;
}

/** Options for {@linkcode encodePrivateKey}. */
export interface EncodePrivateKeyOptions {
  /**
   * Comment stored in the file.
   *
   * @default {key.publicKey.comment}
   */
  comment?: string;
  /**
   * Encrypts the file with this passphrase (bcrypt kdf and aes256-ctr, as
   * `ssh-keygen -N`); unset or "" writes an unencrypted file.
   *
   * @default {undefined}
   */
  passphrase?: string;
  /**
   * bcrypt kdf rounds for an encrypted file, 1..4096 (`ssh-keygen -a`).
   *
   * @default {16}
   */
  rounds?: number;
}

interface Cipher {
  /** Decryption mode, or null for "none". */
  readonly mode: "ctr" | "cbc" | "gcm" | "chachapoly" | null;
  readonly keyLength: number;
  readonly ivLength: number;
  readonly blockSize: number;
  /** AEAD tag length appended after the encrypted section. */
  readonly tagLength: number;
}

function spec(
  mode: Cipher["mode"],
  keyLength: number,
  ivLength: number,
  blockSize: number,
  tagLength = 0,
): Cipher {
  return { mode, keyLength, ivLength, blockSize, tagLength };
}

/**
 * Ciphers of OpenSSH's `cipher.c` that a key file may use (name, key and
 * IV lengths, block size, tag length as there). Key files are small, so
 * the pure-JS noble ciphers are used: Deno's `node:crypto` lacks
 * aes-192-ctr and the CBC modes.
 */
const CIPHERS: ReadonlyMap<string, Cipher> = new Map([
  ["none", spec(null, 0, 0, 8)],
  ["aes128-ctr", spec("ctr", 16, 16, 16)],
  ["aes192-ctr", spec("ctr", 24, 16, 16)],
  ["aes256-ctr", spec("ctr", 32, 16, 16)],
  ["aes128-cbc", spec("cbc", 16, 16, 16)],
  ["aes192-cbc", spec("cbc", 24, 16, 16)],
  ["aes256-cbc", spec("cbc", 32, 16, 16)],
  ["aes128-gcm@openssh.com", spec("gcm", 16, 12, 16, 16)],
  ["aes256-gcm@openssh.com", spec("gcm", 32, 12, 16, 16)],
  ["chacha20-poly1305@openssh.com", spec("chachapoly", 64, 0, 8, 16)],
]);

/** True when `e` is the shared reader running out of bytes. */
function isShortRead(e: unknown): boolean {
  return e instanceof SyntaxError &&
    /needs \d+ bytes but only \d+ remain/.test(e.message);
}

function pemBody(text: string): Uint8Array {
  if (text.length > 4 * MAX_BODY) {
    throw new RangeError(
      `Private key file of ${text.length} characters exceeds the limit of ${
        4 * MAX_BODY
      }`,
    );
  }
  const begin = text.indexOf(BEGIN);
  if (begin < 0) {
    const other = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(text);
    if (other !== null) {
      throw new KeyParseError(
        "unsupported-key-type",
        `Unsupported private key format "${
          other[1]
        }": only OpenSSH, PKCS#1, SEC1 and PKCS#8 private keys are read`,
      );
    }
    throw new KeyParseError(
      "malformed",
      `Malformed private key: no "${BEGIN}" line`,
    );
  }
  const start = begin + BEGIN.length;
  const end = text.indexOf(END, start);
  if (end < 0) {
    throw new KeyParseError(
      "truncated",
      `Truncated private key: no "${END}" line`,
    );
  }
  const b64 = text.slice(start, end).replace(/[ \t\r\n]+/g, "");
  if (b64.length > (MAX_BODY * 4) / 3 + 4) {
    throw new RangeError(
      `Private key file body of ${b64.length} base64 characters exceeds the limit of ${MAX_BODY} bytes`,
    );
  }
  if (b64.length === 0) {
    throw new KeyParseError("truncated", "Truncated private key: empty body");
  }
  try {
    return decodeBase64(b64, "private key");
  } catch (e) {
    throw new KeyParseError(
      b64.length % 4 === 0 ? "malformed" : "truncated",
      `${
        b64.length % 4 === 0 ? "Malformed" : "Truncated"
      } private key: invalid base64 body`,
      { cause: e },
    );
  }
}

interface Container {
  cipherName: string;
  cipher: Cipher;
  kdfName: string;
  kdfOptions: Uint8Array;
  publicBlob: Uint8Array;
  section: Uint8Array;
  tag: Uint8Array;
}

function readContainer(bytes: Uint8Array): Container {
  const r = new SshReader(bytes, "OpenSSH private key");
  try {
    if (
      bytes.length < MAGIC.length || !equalBytes(r.raw(MAGIC.length), MAGIC)
    ) {
      throw new KeyParseError(
        bytes.length < MAGIC.length ? "truncated" : "malformed",
        `Malformed private key: missing "openssh-key-v1" magic`,
      );
    }
    const cipherName = new TextDecoder().decode(r.string());
    const kdfName = new TextDecoder().decode(r.string());
    const kdfOptions = r.string();
    const count = r.uint32();
    if (count !== 1) {
      throw new KeyParseError(
        "malformed",
        `Malformed private key: holds ${count} keys, expected exactly 1`,
      );
    }
    const publicBlob = r.string();
    const section = r.string();
    const cipher = CIPHERS.get(cipherName);
    if (cipher === undefined) {
      throw new KeyParseError(
        "unsupported-cipher",
        `Unsupported private key cipher ${
          JSON.stringify(cipherName.slice(0, 64))
        } (supported: ${[...CIPHERS.keys()].join(", ")})`,
      );
    }
    const tag = r.raw(cipher.tagLength);
    if (r.remaining !== 0) {
      throw new KeyParseError(
        "malformed",
        `Malformed private key: ${r.remaining} unexpected trailing bytes`,
      );
    }
    return {
      cipherName,
      cipher,
      kdfName,
      kdfOptions,
      publicBlob,
      section,
      tag,
    };
  } catch (e) {
    if (isShortRead(e)) {
      throw new KeyParseError(
        "truncated",
        `Truncated private key: ${(e as Error).message}`,
        { cause: e },
      );
    }
    throw e;
  }
}

function decryptSection(
  c: Container,
  passphrase: string | undefined,
): Uint8Array {
  const { cipher } = c;
  if (cipher.mode === null) {
    if (c.kdfName !== "none") {
      throw new KeyParseError(
        "malformed",
        `Malformed private key: cipher "none" with kdf ${
          JSON.stringify(c.kdfName.slice(0, 64))
        }`,
      );
    }
    if (c.section.length % cipher.blockSize !== 0) {
      throw new KeyParseError(
        "malformed",
        `Malformed private key: private section of ${c.section.length} bytes is not a multiple of ${cipher.blockSize}`,
      );
    }
    return c.section;
  }
  if (c.kdfName !== "bcrypt") {
    throw new KeyParseError(
      "unsupported-cipher",
      `Unsupported private key kdf ${
        JSON.stringify(c.kdfName.slice(0, 64))
      } (supported: bcrypt)`,
    );
  }
  let salt: Uint8Array;
  let rounds: number;
  try {
    const r = new SshReader(c.kdfOptions, "bcrypt kdf options");
    salt = r.string();
    rounds = r.uint32();
    r.end();
  } catch (e) {
    throw new KeyParseError(
      "malformed",
      `Malformed private key: ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (salt.length === 0 || salt.length > MAX_SALT) {
    throw new KeyParseError(
      "malformed",
      `Malformed private key: bcrypt salt of ${salt.length} bytes (expected 1..${MAX_SALT})`,
    );
  }
  if (rounds < 1 || rounds > MAX_KDF_ROUNDS) {
    throw new RangeError(
      `Private key bcrypt rounds ${rounds} outside the accepted 1..${MAX_KDF_ROUNDS}`,
    );
  }
  if (
    c.section.length < cipher.blockSize ||
    c.section.length % cipher.blockSize !== 0
  ) {
    throw new KeyParseError(
      "malformed",
      `Malformed private key: encrypted section of ${c.section.length} bytes is not a multiple of ${cipher.blockSize}`,
    );
  }
  if (passphrase === undefined || passphrase === "") {
    throw new KeyParseError(
      "passphrase-required",
      `Private key is encrypted with ${c.cipherName}: a passphrase is required`,
    );
  }
  const derived = bcryptPbkdf(
    new TextEncoder().encode(passphrase),
    salt,
    rounds,
    cipher.keyLength + cipher.ivLength,
  );
  const key = derived.subarray(0, cipher.keyLength);
  const iv = derived.subarray(cipher.keyLength);
  try {
    return decrypt(cipher, key, iv, c.section, c.tag);
  } catch (e) {
    // Lengths were checked above, so only an AEAD tag mismatch fails here.
    throw new KeyParseError(
      "wrong-passphrase",
      "Cannot decrypt private key: wrong passphrase",
      { cause: e },
    );
  } finally {
    derived.fill(0);
  }
}

function decrypt(
  cipher: Cipher,
  key: Uint8Array,
  iv: Uint8Array,
  data: Uint8Array,
  tag: Uint8Array,
): Uint8Array {
  switch (cipher.mode) {
    case "ctr":
      return aes(false, "ctr", key, iv, data);
    case "cbc": {
      // Deno's node:crypto has no aes-192-cbc, so CBC is done by hand on
      // ECB: P_i = D(C_i) xor C_{i-1}, with C_{-1} the IV. The section is
      // a whole number of blocks (checked by the caller) with OpenSSH's
      // own 1, 2, 3 ... padding, not PKCS#7.
      const out = aes(false, "ecb", key, null, data);
      for (let i = 0; i < out.length; i++) {
        out[i] ^= i < 16 ? iv[i] : data[i - 16];
      }
      return out;
    }
    case "gcm": {
      // OpenSSH's cipher_crypt with no AAD: ciphertext, then the tag.
      const d = createDecipheriv(
        `aes-${key.length * 8}-gcm` as "aes-128-gcm",
        key,
        iv,
        { authTagLength: 16 },
      );
      d.setAuthTag(tag);
      return concat(d.update(data), d.final());
    }
    case "chachapoly": {
      // PROTOCOL.chacha20poly1305 with sequence number 0 and no length
      // field: K_2 (first 32 bytes) keys both the Poly1305 key (block 0)
      // and the payload (blocks from 1); K_1 is unused without a header.
      // node:crypto's chacha20 takes OpenSSL's 16-byte IV: the 64-bit block
      // counter little-endian, then the 64-bit nonce (0 here).
      const mainKey = key.subarray(0, 32);
      const iv = new Uint8Array(16);
      const polyKey = streamXor("chacha20", mainKey, iv, new Uint8Array(32));
      if (!constantTimeEqual(poly1305Wasm(data, polyKey), tag)) {
        throw new Error("Poly1305 tag mismatch");
      }
      iv[0] = 1;
      return new Uint8Array(streamXor("chacha20", mainKey, iv, data));
    }
    default:
      return data;
  }
}

/** AES-CTR or AES-ECB without padding, one shot. */
function aes(
  encrypt: boolean,
  mode: "ctr" | "ecb",
  key: Uint8Array,
  iv: Uint8Array | null,
  data: Uint8Array,
): Uint8Array {
  const name = `aes-${key.length * 8}-${mode}`;
  const c = encrypt
    ? createCipheriv(name, key, iv)
    : createDecipheriv(name, key, iv);
  c.setAutoPadding(false);
  return concat(c.update(data), c.final());
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (b.length === 0) return new Uint8Array(a.buffer, a.byteOffset, a.length);
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function readSecret(
  r: SshReader,
  type: KeyType,
  pub: SshPublicKey,
): PrivateParts {
  // Ed25519 and ECDSA repeat their public fields in public-blob order.
  const parts = readPublicParts(r, type);
  // The public numbers inside the private section must match the file's
  // public key, or ssh-keygen -y and our signatures would disagree.
  const same = (a: Uint8Array, b: Uint8Array): boolean => equalBytes(a, b);
  const mismatch = (): never => {
    throw new SyntaxError(
      `Malformed private key: the ${type} public key in the private section differs from the file's public key`,
    );
  };
  switch (parts.kind) {
    case "ed25519": {
      // PROTOCOL.key / RFC 8709: string pk (32), string sk (seed || pk).
      const sk = r.string();
      const pubParts = pub.parts;
      if (pubParts.kind !== "ed25519" || !same(parts.a, pubParts.a)) mismatch();
      if (sk.length !== 64 || !same(sk.subarray(32), parts.a)) {
        throw new SyntaxError(
          "Malformed ssh-ed25519 private key: secret is not seed || public key",
        );
      }
      return { kind: "ed25519", seed: sk.slice(0, 32) };
    }
    case "ecdsa": {
      const pubParts = pub.parts;
      if (pubParts.kind !== "ecdsa" || !same(parts.q, pubParts.q)) mismatch();
      return { kind: "ecdsa", d: r.mpintBytes(parts.curve.size + 1).slice() };
    }
    case "rsa":
      // RSA lists n before e here; see readRsaSecret.
      throw new SyntaxError("Malformed private key: RSA read as non-RSA");
  }
}

function readRsaSecret(r: SshReader, pub: SshPublicKey): PrivateParts {
  // OpenSSH sshkey_private_serialize: mpint n, e, d, iqmp, p, q.
  const max = 16384 / 8 + 1;
  const n = r.mpintBytes(max);
  const e = r.mpintBytes(max);
  const pubParts = pub.parts;
  if (
    pubParts.kind !== "rsa" || !equalBytes(n, pubParts.n) ||
    !equalBytes(e, pubParts.e)
  ) {
    throw new SyntaxError(
      "Malformed private key: the ssh-rsa public key in the private section differs from the file's public key",
    );
  }
  const d = r.mpintBytes(max).slice();
  const iqmp = r.mpintBytes(max).slice();
  const p = r.mpintBytes(max).slice();
  const q = r.mpintBytes(max).slice();
  return { kind: "rsa", d, iqmp, p, q };
}

/**
 * Parses an OpenSSH private key file (`-----BEGIN OPENSSH PRIVATE KEY-----`,
 * openssh-key-v1), decrypting it with `options.passphrase` when it is
 * encrypted (bcrypt kdf with aes128/192/256-ctr, aes128/192/256-cbc,
 * aes128/256-gcm@openssh.com or chacha20-poly1305@openssh.com). The file's
 * comment becomes
 * `publicKey.comment`. PEM files are read too: PKCS#1 `RSA PRIVATE KEY`,
 * SEC1 `EC PRIVATE KEY`, PKCS#8 `PRIVATE KEY` and `ENCRYPTED PRIVATE KEY`,
 * and legacy `Proc-Type: 4,ENCRYPTED` PEM (as `ssh-keygen -m PEM|PKCS8`
 * writes), with an empty comment.
 *
 * Errors: {@linkcode KeyParseError} with `code` `"passphrase-required"`,
 * `"wrong-passphrase"`, `"truncated"`, `"unsupported-cipher"` (cipher or
 * kdf), `"unsupported-key-type"` (e.g. DSA, security keys) or
 * `"malformed"`; {@linkcode RangeError} for an RSA key outside
 * 2048..16384 bits or more than 4096 bcrypt rounds; {@linkcode TypeError}
 * when `text` is not a string.
 *
 * @example Encode a generated key, then read it back
 * ```ts
 * import { encodePrivateKey, generatePrivateKey, parsePrivateKey } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const key = generatePrivateKey("ecdsa-p384");
 * const text = encodePrivateKey(key, { comment: "backup" });
 * const again = parsePrivateKey(text);
 * assert.equal(again.publicKey.comment, "backup");
 * assert.deepEqual(again.publicKey.blob, key.publicKey.blob);
 * const data = new TextEncoder().encode("data");
 * assert.ok(key.publicKey.verify(data, again.sign(data), "ecdsa-sha2-nistp384"));
 * ```
 */
export function parsePrivateKey(
  text: string,
  options: ParsePrivateKeyOptions = {},
): PrivateKey {
  if (typeof text !== "string") {
    throw new TypeError("Cannot parse private key: text must be a string");
  }
  const passphrase = options.passphrase;
  if (passphrase !== undefined && typeof passphrase !== "string") {
    throw new TypeError(
      "Cannot parse private key: passphrase must be a string",
    );
  }
  // PKCS#1, SEC1 and PKCS#8 PEM files are read by keys/pem.ts.
  if (!text.includes(BEGIN) && PEM_LABEL_RE.test(text.slice(0, 64 * 1024))) {
    return parsePemPrivateKey(text, passphrase);
  }
  const c = readContainer(pemBody(text));

  // The public key in the clear part tells the type before any decryption,
  // so unsupported or too-small keys are reported without a passphrase.
  let type: string;
  try {
    type = new SshReader(c.publicBlob, "public key").utf8();
  } catch (e) {
    throw new KeyParseError(
      "malformed",
      `Malformed private key: ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (!isKeyType(type)) {
    throw new KeyParseError(
      "unsupported-key-type",
      `Unsupported private key type ${JSON.stringify(type.slice(0, 64))}`,
    );
  }
  let pub: SshPublicKey;
  try {
    pub = parsePublicKey(c.publicBlob) as SshPublicKey;
  } catch (e) {
    if (e instanceof RangeError) throw e;
    throw new KeyParseError(
      "malformed",
      `Malformed private key: ${(e as Error).message}`,
      { cause: e },
    );
  }

  const plain = decryptSection(c, passphrase);
  const r = new SshReader(plain, "private key section");
  const check1 = r.uint32();
  const check2 = r.uint32();
  if (check1 !== check2) {
    throw new KeyParseError(
      c.cipher.mode === null ? "malformed" : "wrong-passphrase",
      c.cipher.mode === null
        ? "Malformed private key: check integers differ"
        : "Cannot decrypt private key: wrong passphrase",
    );
  }
  try {
    const innerType = r.utf8();
    if (innerType !== type) {
      throw new SyntaxError(
        `Malformed private key: private section holds ${
          JSON.stringify(innerType.slice(0, 64))
        }, public key is ${type}`,
      );
    }
    const secret = type === "ssh-rsa"
      ? readRsaSecret(r, pub)
      : readSecret(r, type, pub);
    const comment = new TextDecoder().decode(r.string());
    // PROTOCOL.key: padding bytes 1, 2, 3, ... up to the block size.
    const pad = r.rest();
    if (pad.length >= c.cipher.blockSize) {
      throw new SyntaxError(
        `Malformed private key: ${pad.length} bytes of padding, block size is ${c.cipher.blockSize}`,
      );
    }
    for (let i = 0; i < pad.length; i++) {
      if (pad[i] !== i + 1) {
        throw new SyntaxError("Malformed private key: bad padding");
      }
    }
    const withComment = pub.withComment(comment);
    return privateKeyFromParts(withComment, secret);
  } catch (e) {
    if (e instanceof RangeError || e instanceof KeyParseError) throw e;
    throw new KeyParseError(
      "malformed",
      (e as Error).message.startsWith("Malformed")
        ? (e as Error).message
        : `Malformed private key: ${(e as Error).message}`,
      { cause: e },
    );
  } finally {
    plain.fill(0);
  }
}

/**
 * Writes `string type` and the private key fields in the order of the
 * openssh-key-v1 private section (PROTOCOL.key), which the agent protocol's
 * ADD_IDENTITY uses too (PROTOCOL.agent / draft-miller-ssh-agent 4.2.3).
 * Ed25519 writes ENC(A) then k || ENC(A) (RFC 8709 keys).
 */
export function writePrivateKeyFields(
  w: SshWriter,
  pub: SshPublicKey,
  secret: PrivateParts,
  what: string,
): void {
  const parts = pub.parts;
  w.string(pub.type);
  if (parts.kind === "ed25519" && secret.kind === "ed25519") {
    const sk = new Uint8Array(64);
    sk.set(secret.seed);
    sk.set(parts.a, 32);
    w.string(parts.a).string(sk);
    sk.fill(0);
  } else if (parts.kind === "ecdsa" && secret.kind === "ecdsa") {
    w.string(parts.curve.id).string(parts.q).mpintBytes(secret.d);
  } else if (parts.kind === "rsa" && secret.kind === "rsa") {
    w.mpintBytes(parts.n).mpintBytes(parts.e).mpintBytes(secret.d)
      .mpintBytes(secret.iqmp).mpintBytes(secret.p).mpintBytes(secret.q);
  } else {
    throw new TypeError(`${what}: inconsistent ${pub.type} key`);
  }
}

/**
 * Encodes one of our private keys as an OpenSSH private key file, the
 * text `ssh-keygen -y -f` reads: unencrypted (cipher and kdf `none`), or
 * with `options.passphrase` encrypted as ssh-keygen does (bcrypt kdf with
 * `options.rounds`, default 16, and aes256-ctr). Write it with mode 0600.
 * Throws {@linkcode RangeError} for rounds outside 1..4096. Throws {@linkcode TypeError} for a key that
 * {@linkcode parsePrivateKey} or `generatePrivateKey` did not create.
 *
 * @example Write a new host key file's contents
 * ```ts
 * import { encodePrivateKey, generatePrivateKey } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const text = encodePrivateKey(generatePrivateKey("ed25519"), { comment: "host" });
 * assert.ok(text.startsWith("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
 * assert.ok(text.endsWith("-----END OPENSSH PRIVATE KEY-----\n"));
 * ```
 */
export function encodePrivateKey(
  key: PrivateKey,
  options: EncodePrivateKeyOptions = {},
): string {
  const secret = privateParts(key);
  const pub = key.publicKey as SshPublicKey;
  const comment = options.comment ?? pub.comment;
  if (typeof comment !== "string") {
    throw new TypeError("Cannot encode private key: comment must be a string");
  }
  const passphrase = options.passphrase ?? "";
  if (typeof passphrase !== "string") {
    throw new TypeError(
      "Cannot encode private key: passphrase must be a string",
    );
  }
  const rounds = options.rounds ?? DEFAULT_KDF_ROUNDS;
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > MAX_KDF_ROUNDS) {
    throw new RangeError(
      `Cannot encode private key: rounds ${rounds} outside 1..${MAX_KDF_ROUNDS}`,
    );
  }
  const encrypt = passphrase !== "";
  const cipherName = encrypt ? "aes256-ctr" : "none";
  const cipher = CIPHERS.get(cipherName)!;
  const check = new Uint32Array(1);
  getRandomValues(check);
  const w = new SshWriter(pub.blob.length * 3 + 256);
  w.uint32(check[0]).uint32(check[0]);
  writePrivateKeyFields(w, pub, secret, "Cannot encode private key");
  w.string(comment);
  // PROTOCOL.key: pad with 1, 2, 3, ... to the cipher's block size.
  for (let i = 1; w.length % cipher.blockSize !== 0; i++) w.byte(i);
  const section = w.bytes();
  let kdfName = "none";
  let kdfOptions: Uint8Array = new Uint8Array(0);
  let encrypted: Uint8Array = section;
  if (encrypt) {
    // As ssh-keygen: 16 random salt bytes, key and IV from bcrypt_pbkdf.
    const salt = getRandomValues(new Uint8Array(16));
    kdfName = "bcrypt";
    kdfOptions = new SshWriter(32).string(salt).uint32(rounds).bytes();
    const derived = bcryptPbkdf(
      new TextEncoder().encode(passphrase),
      salt,
      rounds,
      cipher.keyLength + cipher.ivLength,
    );
    encrypted = aes(
      true,
      "ctr",
      derived.subarray(0, cipher.keyLength),
      derived.subarray(cipher.keyLength),
      section,
    );
    derived.fill(0);
  }
  const file = new SshWriter(section.length + pub.blob.length + 128)
    .raw(MAGIC)
    .string(cipherName)
    .string(kdfName)
    .string(kdfOptions)
    .uint32(1)
    .string(pub.blob)
    .string(encrypted)
    .bytes();
  section.fill(0);
  const b64 = encodeBase64(file);
  const lines: string[] = [BEGIN];
  // OpenSSH wraps the body at 70 columns.
  for (let i = 0; i < b64.length; i += 70) lines.push(b64.slice(i, i + 70));
  lines.push(END, "");
  return lines.join("\n");
}
