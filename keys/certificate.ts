/**
 * OpenSSH certificates (`*-cert-v01@openssh.com`, OpenSSH PROTOCOL.certkeys):
 * parsing with the CA signature checked, validation against a login or a
 * host name, and signing new user and host certificates.
 *
 * A certificate binds a plain public key to a key id, principals (user or
 * host names), a validity window, critical options and extensions, signed by
 * a certificate authority key. Authentication with a certificate signs with
 * the certified key's own algorithm; only the name sent on the wire changes
 * (`ssh-ed25519-cert-v01@openssh.com`, `rsa-sha2-512-cert-v01@openssh.com`).
 *
 * @module
 */

import { SshReader } from "../wire/reader.ts";
import { SshWriter } from "../wire/writer.ts";
import { signatureAlgorithmsFor } from "./algorithms.ts";
import { decodeBase64, encodeBase64, equalBytes } from "./_util.ts";
import {
  parsePublicKey,
  publicKeyFromParts,
  readPublicParts,
} from "./public_key.ts";
import type { KeyType, PrivateKey, PublicKey } from "./types.ts";

/** Whom a certificate is for (PROTOCOL.certkeys: `SSH_CERT_TYPE_*`). */
export type CertificateType = "user" | "host";

/** Why a certificate was refused; see {@linkcode CertificateError}. */
export type CertificateErrorCode =
  | "malformed"
  | "bad-signature"
  | "wrong-type"
  | "untrusted-ca"
  | "not-yet-valid"
  | "expired"
  | "principal"
  | "source-address"
  | "unsupported-option";

/**
 * A certificate could not be parsed, or is not valid for the use asked of
 * it; {@linkcode CertificateError.code} says which check failed.
 *
 * @example Catching an expired certificate
 * ```ts
 * import { CertificateError } from "@fynx/ssh/keys";
 * import assert from "node:assert/strict";
 *
 * const e = new CertificateError("expired", "Certificate expired");
 * assert.ok(e instanceof Error);
 * assert.equal(e.code, "expired");
 * ```
 */
export class CertificateError extends Error {
  /** Machine-readable reason. */
  readonly code: CertificateErrorCode;

  /** Creates an error with `code` and a human-readable `message`. */
  constructor(
    code: CertificateErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "CertificateError";
    this.code = code;
  }
}

const SUFFIX = "-cert-v01@openssh.com";

/** Certificate key type for each plain key type (PROTOCOL.certkeys). */
const CERT_TYPE: ReadonlyMap<KeyType, string> = new Map<KeyType, string>([
  ["ssh-ed25519", "ssh-ed25519" + SUFFIX],
  ["ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256" + SUFFIX],
  ["ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384" + SUFFIX],
  ["ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521" + SUFFIX],
  ["ssh-rsa", "ssh-rsa" + SUFFIX],
]);
const PLAIN_TYPE: ReadonlyMap<string, KeyType> = new Map(
  [...CERT_TYPE].map(([plain, cert]) => [cert, plain]),
);

/**
 * Every certificate signature algorithm we accept, strongest first. RSA
 * certificates sign with `rsa-sha2-512-cert-v01@openssh.com` or
 * `rsa-sha2-256-cert-v01@openssh.com`, never SHA-1 (`ssh-rsa-cert-v01`).
 */
export const CERTIFICATE_ALGORITHMS: readonly string[] = Object.freeze([
  "ssh-ed25519" + SUFFIX,
  "ecdsa-sha2-nistp256" + SUFFIX,
  "ecdsa-sha2-nistp384" + SUFFIX,
  "ecdsa-sha2-nistp521" + SUFFIX,
  "rsa-sha2-512" + SUFFIX,
  "rsa-sha2-256" + SUFFIX,
]);

/**
 * The certificate algorithm for a plain signature algorithm
 * (`rsa-sha2-512` → `rsa-sha2-512-cert-v01@openssh.com`).
 */
export function certificateAlgorithm(plain: string): string {
  return plain + SUFFIX;
}

/**
 * The plain signature algorithm inside a certificate algorithm, or null when
 * `name` is not one we accept.
 *
 * @example
 * ```ts
 * import { plainAlgorithm } from "@fynx/ssh/keys";
 * import assert from "node:assert/strict";
 *
 * assert.equal(plainAlgorithm("rsa-sha2-256-cert-v01@openssh.com"), "rsa-sha2-256");
 * assert.equal(plainAlgorithm("ssh-rsa-cert-v01@openssh.com"), null);
 * assert.equal(plainAlgorithm("ssh-ed25519"), null);
 * ```
 */
export function plainAlgorithm(name: string): string | null {
  return CERTIFICATE_ALGORITHMS.includes(name)
    ? name.slice(0, -SUFFIX.length)
    : null;
}

/** Whether `type` names a certificate key type or algorithm we know. */
export function isCertificateType(type: string): boolean {
  return PLAIN_TYPE.has(type) || CERTIFICATE_ALGORITHMS.includes(type);
}

const TYPE_NUMBER = { user: 1, host: 2 } as const;
/** "Forever" in `valid before` (PROTOCOL.certkeys). */
export const CERT_FOREVER: bigint = 0xffff_ffff_ffff_ffffn;

// Bounds on what a certificate may contain (OpenSSH uses similar limits:
// 256 principals, 8 KiB blobs are plenty for any real certificate).
const MAX_BLOB = 64 * 1024;
const MAX_PRINCIPALS = 256;
const MAX_NAME = 1024;
const MAX_OPTIONS = 64;
const MAX_NONCE = 1024;

/** Critical options we understand and enforce (PROTOCOL.certkeys). */
const KNOWN_CRITICAL = ["force-command", "source-address"];

/**
 * The extensions `ssh-keygen -s` puts in a user certificate unless told
 * otherwise: everything permitted.
 */
export const DEFAULT_USER_EXTENSIONS: readonly string[] = Object.freeze([
  "permit-X11-forwarding",
  "permit-agent-forwarding",
  "permit-port-forwarding",
  "permit-pty",
  "permit-user-rc",
]);

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * A parsed, CA-signed OpenSSH certificate. Its CA signature has verified;
 * whether it is valid for a given login or host is
 * {@linkcode checkCertificate}'s question.
 */
export class Certificate {
  /** Certificate key type, e.g. `ssh-ed25519-cert-v01@openssh.com`. */
  readonly type: string;
  /** The whole certificate blob, as sent on the wire. */
  readonly blob: Uint8Array;
  /** The certified (plain) public key. */
  readonly key: PublicKey;
  /** The CA's random nonce. */
  readonly nonce: Uint8Array;
  /** Serial number chosen by the CA. */
  readonly serial: bigint;
  /** User or host certificate. */
  readonly certType: CertificateType;
  /** Free-form key identifier, logged by servers. */
  readonly keyId: string;
  /** User or host names the certificate is valid for; empty means any. */
  readonly principals: readonly string[];
  /** Seconds since the epoch from which it is valid (inclusive). */
  readonly validAfter: bigint;
  /** Seconds since the epoch from which it is no longer valid. */
  readonly validBefore: bigint;
  /** Critical options (name → value; "" when the option has no value). */
  readonly criticalOptions: ReadonlyMap<string, string>;
  /** Extensions (name → value; "" for flags such as `permit-pty`). */
  readonly extensions: ReadonlyMap<string, string>;
  /** The CA key that signed it. */
  readonly signatureKey: PublicKey;
  /** The CA's signature algorithm, e.g. `rsa-sha2-512`. */
  readonly signatureAlgorithm: string;
  /** Comment from the file it was read from, or "". */
  readonly comment: string;

  /** Internal: use {@linkcode parseCertificate} or {@linkcode signCertificate}. */
  constructor(fields: {
    type: string;
    blob: Uint8Array;
    key: PublicKey;
    nonce: Uint8Array;
    serial: bigint;
    certType: CertificateType;
    keyId: string;
    principals: string[];
    validAfter: bigint;
    validBefore: bigint;
    criticalOptions: Map<string, string>;
    extensions: Map<string, string>;
    signatureKey: PublicKey;
    signatureAlgorithm: string;
    comment: string;
  }) {
    this.type = fields.type;
    this.blob = fields.blob;
    this.key = fields.key;
    this.nonce = fields.nonce;
    this.serial = fields.serial;
    this.certType = fields.certType;
    this.keyId = fields.keyId;
    this.principals = Object.freeze([...fields.principals]);
    this.validAfter = fields.validAfter;
    this.validBefore = fields.validBefore;
    this.criticalOptions = fields.criticalOptions;
    this.extensions = fields.extensions;
    this.signatureKey = fields.signatureKey;
    this.signatureAlgorithm = fields.signatureAlgorithm;
    this.comment = fields.comment;
    Object.freeze(this);
  }

  /**
   * The certificate algorithms this certificate authenticates with,
   * strongest first (for RSA `rsa-sha2-512-cert-v01@openssh.com` and
   * `rsa-sha2-256-cert-v01@openssh.com`).
   */
  get signatureAlgorithms(): readonly string[] {
    return this.key.signatureAlgorithms.map(certificateAlgorithm);
  }

  /**
   * Verifies a signature made by the certified key, named by its
   * certificate algorithm (`algorithm` must be one of
   * {@linkcode Certificate.signatureAlgorithms}; the blob inside carries the
   * plain algorithm, PROTOCOL.certkeys).
   */
  verify(data: Uint8Array, signature: Uint8Array, algorithm: string): boolean {
    const plain = plainAlgorithm(algorithm);
    if (plain === null || !this.signatureAlgorithms.includes(algorithm)) {
      return false;
    }
    return this.key.verify(data, signature, plain);
  }

  /** The same certificate with another comment. */
  withComment(comment: string): Certificate {
    return new Certificate({
      ...this,
      principals: [...this.principals],
      criticalOptions: new Map(this.criticalOptions),
      extensions: new Map(this.extensions),
      comment,
    });
  }

  /** One-line OpenSSH form: `type base64 [comment]`, as in `-cert.pub` files. */
  toString(): string {
    const line = `${this.type} ${encodeBase64(this.blob)}`;
    return this.comment === "" ? line : `${line} ${this.comment}`;
  }
}

function malformed(message: string, cause?: unknown): CertificateError {
  return new CertificateError(
    "malformed",
    `Malformed certificate: ${message}`,
    cause === undefined ? undefined : { cause },
  );
}

function utf8(bytes: Uint8Array, what: string): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw malformed(`${what} is not valid UTF-8`);
  }
}

/**
 * Reads a critical-options or extensions field: (string name, string data)
 * pairs, names in strictly increasing order without repeats
 * (PROTOCOL.certkeys), and each non-empty data holding one string.
 */
function readOptions(field: Uint8Array, what: string): Map<string, string> {
  const out = new Map<string, string>();
  const r = new SshReader(field, what);
  let previous: string | null = null;
  while (r.remaining > 0) {
    if (out.size >= MAX_OPTIONS) throw malformed(`too many ${what}`);
    const name = utf8(r.string(MAX_NAME), `a name in ${what}`);
    const data = r.string(MAX_BLOB);
    if (previous !== null && name <= previous) {
      throw malformed(
        `${what} are not in order or repeat ${JSON.stringify(name)}`,
      );
    }
    previous = name;
    let value = "";
    if (data.length > 0) {
      const inner = new SshReader(data, `${what} ${name}`);
      value = utf8(inner.string(MAX_BLOB), `the value of ${name}`);
      inner.end();
    }
    out.set(name, value);
  }
  return out;
}

function writeOptions(options: ReadonlyMap<string, string>): Uint8Array {
  const w = new SshWriter(128);
  for (const name of [...options.keys()].sort(byCodeUnit)) {
    const value = options.get(name)!;
    w.string(name).string(
      value === "" ? new Uint8Array() : new SshWriter().string(value).bytes(),
    );
  }
  return w.bytes();
}

/** Sorts as strcmp does (PROTOCOL.certkeys orders names lexically). */
function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Parses a certificate blob (PROTOCOL.certkeys) and verifies the CA's
 * signature over it. Throws {@linkcode CertificateError} with code
 * `malformed` for a bad encoding or an unsupported key type, and
 * `bad-signature` when the CA signature does not verify (or uses SHA-1).
 *
 * @example Sign a user certificate and read it back
 * ```ts
 * import { generatePrivateKey, parseCertificate, signCertificate } from "@fynx/ssh/keys";
 * import assert from "node:assert/strict";
 *
 * const ca = generatePrivateKey("ed25519");
 * const user = generatePrivateKey("ed25519");
 * const cert = signCertificate(ca, user.publicKey, {
 *   type: "user",
 *   keyId: "alice@laptop",
 *   principals: ["alice"],
 * });
 * const parsed = parseCertificate(cert.blob);
 * assert.equal(parsed.keyId, "alice@laptop");
 * assert.deepEqual(parsed.principals, ["alice"]);
 * assert.equal(parsed.signatureKey.fingerprint(), ca.publicKey.fingerprint());
 * ```
 */
export function parseCertificate(blob: Uint8Array, comment = ""): Certificate {
  if (!(blob instanceof Uint8Array)) {
    throw new TypeError("Cannot parse certificate: blob must be a Uint8Array");
  }
  if (blob.length > MAX_BLOB) {
    throw malformed(`${blob.length} bytes exceeds the limit of ${MAX_BLOB}`);
  }
  const copy = blob.slice();
  const r = new SshReader(copy, "certificate");
  let fields;
  try {
    const type = r.utf8(MAX_NAME);
    const plainType = PLAIN_TYPE.get(type);
    if (plainType === undefined) {
      throw malformed(
        `unsupported certificate type ${JSON.stringify(type.slice(0, 64))}`,
      );
    }
    const nonce = r.string(MAX_NONCE);
    const key = publicKeyFromParts(readPublicParts(r, plainType));
    const serial = r.uint64();
    const typeNumber = r.uint32();
    const certType = typeNumber === 1
      ? "user"
      : typeNumber === 2
      ? "host"
      : null;
    if (certType === null) {
      throw malformed(`unknown certificate type number ${typeNumber}`);
    }
    const keyId = utf8(r.string(MAX_NAME), "key id");
    const principals: string[] = [];
    const pr = new SshReader(r.string(MAX_BLOB), "certificate principals");
    while (pr.remaining > 0) {
      if (principals.length >= MAX_PRINCIPALS) {
        throw malformed(`more than ${MAX_PRINCIPALS} principals`);
      }
      principals.push(utf8(pr.string(MAX_NAME), "a principal"));
    }
    const validAfter = r.uint64();
    const validBefore = r.uint64();
    const criticalOptions = readOptions(r.string(MAX_BLOB), "critical options");
    const extensions = readOptions(r.string(MAX_BLOB), "extensions");
    r.string(MAX_BLOB); // reserved: ignored (PROTOCOL.certkeys)
    const caBlob = r.string(MAX_BLOB);
    const signedLength = copy.length - r.remaining;
    const signature = r.string(MAX_BLOB);
    r.end();
    let signatureKey: PublicKey;
    try {
      signatureKey = parsePublicKey(caBlob);
    } catch (e) {
      // Includes CA keys that are themselves certificates, which
      // PROTOCOL.certkeys forbids.
      throw malformed(
        `signature key: ${(e as Error).message}`,
        e,
      );
    }
    const sr = new SshReader(signature, "certificate signature");
    const signatureAlgorithm = sr.utf8(64);
    if (
      !signatureKey.signatureAlgorithms.includes(signatureAlgorithm) ||
      !signatureKey.verify(
        copy.subarray(0, signedLength),
        signature,
        signatureAlgorithm,
      )
    ) {
      throw new CertificateError(
        "bad-signature",
        `Certificate signature ${
          JSON.stringify(signatureAlgorithm.slice(0, 64))
        } by ${signatureKey.type} CA ${signatureKey.fingerprint()} does not verify${
          signatureAlgorithm === "ssh-rsa"
            ? " (SHA-1 RSA signatures are refused)"
            : ""
        }`,
      );
    }
    fields = {
      type,
      blob: copy,
      key,
      nonce: nonce.slice(),
      serial,
      certType: certType as CertificateType,
      keyId,
      principals,
      validAfter,
      validBefore,
      criticalOptions,
      extensions,
      signatureKey,
      signatureAlgorithm,
      comment,
    };
  } catch (e) {
    if (e instanceof CertificateError) throw e;
    throw malformed((e as Error).message, e);
  }
  return new Certificate(fields);
}

/**
 * Parses the one-line form of a certificate (`-cert.pub` files):
 * `type base64 [comment]`.
 *
 * @example
 * ```ts
 * import { generatePrivateKey, parseCertificateText, signCertificate } from "@fynx/ssh/keys";
 * import assert from "node:assert/strict";
 *
 * const ca = generatePrivateKey("ed25519");
 * const host = generatePrivateKey("ecdsa-p256");
 * const line = signCertificate(ca, host.publicKey, {
 *   type: "host",
 *   keyId: "web1",
 *   principals: ["web1.example.com"],
 *   comment: "web1",
 * }).toString();
 * const cert = parseCertificateText(line);
 * assert.equal(cert.type, "ecdsa-sha2-nistp256-cert-v01@openssh.com");
 * assert.equal(cert.certType, "host");
 * assert.equal(cert.comment, "web1");
 * ```
 */
export function parseCertificateText(line: string): Certificate {
  if (typeof line !== "string") {
    throw new TypeError("Cannot parse certificate: line must be a string");
  }
  const fields = line.trim().split(/[ \t]+/);
  if (fields.length < 2) {
    throw malformed(`expected "type base64 [comment]"`);
  }
  const [type, b64] = fields;
  const comment = line.trim().slice(line.trim().indexOf(b64) + b64.length)
    .trim();
  let blob: Uint8Array;
  try {
    blob = decodeBase64(b64, `${type} certificate`);
  } catch (e) {
    throw malformed((e as Error).message, e);
  }
  const cert = parseCertificate(blob, comment);
  if (cert.type !== type) {
    throw malformed(
      `type ${JSON.stringify(type)} does not match the blob's ${cert.type}`,
    );
  }
  return cert;
}

/** Options for {@linkcode signCertificate}. */
export interface SignCertificateOptions {
  /** User or host certificate. */
  type: CertificateType;
  /** Key identifier (`ssh-keygen -I`), logged by servers. */
  keyId: string;
  /**
   * User names (user certificates) or host names (host certificates); empty
   * means valid for any, which servers refuse for user certificates.
   * @default {[]}
   */
  principals?: readonly string[];
  /** Serial number (`ssh-keygen -z`). @default {0n} */
  serial?: bigint;
  /**
   * Start of validity, seconds since the epoch (inclusive).
   * @default {0n} (always)
   */
  validAfter?: bigint;
  /**
   * End of validity, seconds since the epoch (exclusive).
   * @default {CERT_FOREVER}
   */
  validBefore?: bigint;
  /**
   * Critical options, e.g. `{ "force-command": "uptime",
   * "source-address": "10.0.0.0/8" }`. User certificates only.
   * @default {{}}
   */
  criticalOptions?: Record<string, string>;
  /**
   * Extensions (value "" for flags). User certificates default to
   * {@linkcode DEFAULT_USER_EXTENSIONS}; host certificates to none.
   */
  extensions?: Record<string, string>;
  /**
   * The CA's signature algorithm; RSA CAs default to `rsa-sha2-512` as
   * ssh-keygen does.
   */
  signatureAlgorithm?: string;
  /** Random nonce. @default {32 random bytes} */
  nonce?: Uint8Array;
  /** Comment of the result's one-line form. @default {""} */
  comment?: string;
}

/**
 * Signs a certificate for `key` with the CA key `ca` (what `ssh-keygen -s`
 * does). The result is parsed back, so it is checked like any other.
 *
 * @example A host certificate valid for one day
 * ```ts
 * import { checkCertificate, generatePrivateKey, signCertificate } from "@fynx/ssh/keys";
 *
 * const ca = generatePrivateKey("ed25519");
 * const hostKey = generatePrivateKey("ed25519");
 * const now = BigInt(Math.floor(Date.now() / 1000));
 * const cert = signCertificate(ca, hostKey.publicKey, {
 *   type: "host",
 *   keyId: "db1",
 *   principals: ["db1.internal", "10.0.0.5"],
 *   validAfter: now - 60n,
 *   validBefore: now + 86400n,
 * });
 * checkCertificate(cert, {
 *   type: "host",
 *   principal: "db1.internal",
 *   trustedCa: (k) => k.fingerprint() === ca.publicKey.fingerprint(),
 * });
 * ```
 */
export function signCertificate(
  ca: PrivateKey,
  key: PublicKey,
  options: SignCertificateOptions,
): Certificate {
  if (options.type !== "user" && options.type !== "host") {
    throw new TypeError(
      `Invalid certificate type ${
        JSON.stringify(options.type)
      }: expected "user" or "host"`,
    );
  }
  if (typeof options.keyId !== "string") {
    throw new TypeError("Invalid certificate key id: not a string");
  }
  const certType = CERT_TYPE.get(key.type);
  if (certType === undefined) {
    throw new TypeError(`Cannot certify a ${key.type} key`);
  }
  const principals = options.principals ?? [];
  if (principals.length > MAX_PRINCIPALS) {
    throw new RangeError(
      `Too many principals: ${principals.length} (limit ${MAX_PRINCIPALS})`,
    );
  }
  for (const p of principals) {
    if (typeof p !== "string" || p === "") {
      throw new TypeError(`Invalid principal ${JSON.stringify(p)}`);
    }
  }
  const validAfter = options.validAfter ?? 0n;
  const validBefore = options.validBefore ?? CERT_FOREVER;
  for (
    const [what, v] of [["validAfter", validAfter], [
      "validBefore",
      validBefore,
    ]] as const
  ) {
    if (typeof v !== "bigint" || v < 0n || v > CERT_FOREVER) {
      throw new RangeError(`Invalid ${what}: ${String(v)} is not a uint64`);
    }
  }
  if (validAfter >= validBefore) {
    throw new RangeError(
      "Invalid validity: validAfter must be earlier than validBefore",
    );
  }
  const critical = new Map(Object.entries(options.criticalOptions ?? {}));
  if (options.type === "host" && critical.size > 0) {
    throw new TypeError(
      "Host certificates take no critical options (PROTOCOL.certkeys)",
    );
  }
  const extensions = new Map(
    Object.entries(
      options.extensions ??
        (options.type === "user"
          ? Object.fromEntries(DEFAULT_USER_EXTENSIONS.map((e) => [e, ""]))
          : {}),
    ),
  );
  const algorithm = options.signatureAlgorithm ??
    ca.publicKey.signatureAlgorithms[0];
  if (!signatureAlgorithmsFor(ca.publicKey.type).includes(algorithm)) {
    throw new TypeError(
      `A ${ca.publicKey.type} CA cannot sign with ${JSON.stringify(algorithm)}`,
    );
  }
  const nonce = options.nonce ?? crypto.getRandomValues(new Uint8Array(32));
  // The certified key's fields are its blob without the leading type name.
  const keyFields = new SshReader(key.blob, "public key");
  keyFields.string();
  const w = new SshWriter(1024).string(certType).string(nonce)
    .raw(keyFields.rest()).uint64(options.serial ?? 0n)
    .uint32(TYPE_NUMBER[options.type]).string(options.keyId);
  const pw = new SshWriter(64);
  for (const p of principals) pw.string(p);
  w.string(pw.bytes()).uint64(validAfter).uint64(validBefore)
    .string(writeOptions(critical)).string(writeOptions(extensions))
    .string(new Uint8Array()).string(ca.publicKey.blob);
  const signed = w.bytes();
  const signature = ca.sign(signed, algorithm);
  const blob = new SshWriter(signed.length + signature.length + 4).raw(signed)
    .string(signature).bytes();
  return parseCertificate(blob, options.comment ?? "");
}

/** What {@linkcode checkCertificate} checks a certificate against. */
export interface CheckCertificateOptions {
  /** The use: a user logging in, or a host presenting its key. */
  type: CertificateType;
  /**
   * Whether the CA is trusted for this use (e.g. `TrustedUserCAKeys`, an
   * authorized_keys `cert-authority` line, or a known_hosts
   * `@cert-authority` line). Called with the certificate's signature key.
   */
  trustedCa: (ca: PublicKey) => boolean;
  /**
   * The user name or host name the certificate must list. Host
   * certificates match wildcard principals (`*.example.com`) as OpenSSH
   * does; user principals match exactly.
   */
  principal?: string;
  /**
   * Whether an empty principal list is refused.
   * @default {true for user certificates, false for host certificates}
   */
  requirePrincipal?: boolean;
  /** The client address, checked against `source-address`. */
  address?: string;
  /**
   * Checks an address against a `source-address` list; without it the
   * option cannot be verified and the certificate is refused.
   */
  addressAllowed?: (patterns: string[], address: string) => boolean;
  /** Current time in milliseconds. @default {Date.now()} */
  now?: number;
}

/** Whether `name` matches the wildcard `pattern` (`*`, `?`), as OpenSSH's match_pattern. */
function wildcardMatch(name: string, pattern: string): boolean {
  let regex = "^";
  for (const ch of pattern) {
    regex += ch === "*"
      ? ".*"
      : ch === "?"
      ? "."
      : ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(regex + "$", "i").test(name);
}

/**
 * Checks a certificate for a use, as sshd checks user certificates and ssh
 * checks host certificates: type, trusted CA, validity window, principal,
 * critical options (unknown ones are refused), and `source-address`.
 * Throws {@linkcode CertificateError} naming the failed check.
 *
 * @example A user certificate for the wrong user
 * ```ts
 * import {
 *   CertificateError,
 *   checkCertificate,
 *   generatePrivateKey,
 *   signCertificate,
 * } from "@fynx/ssh/keys";
 * import assert from "node:assert/strict";
 *
 * const ca = generatePrivateKey("ed25519");
 * const cert = signCertificate(ca, generatePrivateKey("ed25519").publicKey, {
 *   type: "user",
 *   keyId: "alice",
 *   principals: ["alice"],
 * });
 * const trustedCa = (k: { blob: Uint8Array }) =>
 *   k.blob.toString() === ca.publicKey.blob.toString();
 * checkCertificate(cert, { type: "user", principal: "alice", trustedCa });
 * assert.throws(
 *   () => checkCertificate(cert, { type: "user", principal: "bob", trustedCa }),
 *   (e) => e instanceof CertificateError && e.code === "principal",
 * );
 * ```
 */
export function checkCertificate(
  cert: Certificate,
  options: CheckCertificateOptions,
): void {
  const what = `${cert.certType} certificate ${JSON.stringify(cert.keyId)}`;
  if (cert.certType !== options.type) {
    throw new CertificateError(
      "wrong-type",
      `Certificate ${
        JSON.stringify(cert.keyId)
      } is a ${cert.certType} certificate, not a ${options.type} certificate`,
    );
  }
  if (!options.trustedCa(cert.signatureKey)) {
    throw new CertificateError(
      "untrusted-ca",
      `The ${what} is signed by ${cert.signatureKey.type} CA ${cert.signatureKey.fingerprint()}, which is not trusted`,
    );
  }
  const now = BigInt(Math.floor((options.now ?? Date.now()) / 1000));
  if (now < cert.validAfter) {
    throw new CertificateError(
      "not-yet-valid",
      `The ${what} is not valid yet (valid from ${
        formatCertTime(cert.validAfter)
      })`,
    );
  }
  if (now >= cert.validBefore) {
    throw new CertificateError(
      "expired",
      `The ${what} expired at ${formatCertTime(cert.validBefore)}`,
    );
  }
  const requirePrincipal = options.requirePrincipal ?? options.type === "user";
  if (cert.principals.length === 0) {
    if (requirePrincipal) {
      throw new CertificateError(
        "principal",
        `The ${what} lists no principals`,
      );
    }
  } else if (options.principal !== undefined) {
    const p = options.principal;
    const listed = options.type === "host"
      ? cert.principals.some((q) => wildcardMatch(p, q))
      : cert.principals.includes(p);
    if (!listed) {
      throw new CertificateError(
        "principal",
        `The ${what} is not valid for ${options.type} ${
          JSON.stringify(p)
        } (principals: ${cert.principals.join(",")})`,
      );
    }
  }
  for (const name of cert.criticalOptions.keys()) {
    if (options.type === "host" || !KNOWN_CRITICAL.includes(name)) {
      throw new CertificateError(
        "unsupported-option",
        `The ${what} has the unsupported critical option ${
          JSON.stringify(name)
        }`,
      );
    }
  }
  const source = cert.criticalOptions.get("source-address");
  if (source !== undefined) {
    const patterns = source.split(",").map((s) => s.trim());
    if (
      options.address === undefined || options.addressAllowed === undefined ||
      !options.addressAllowed(patterns, options.address)
    ) {
      throw new CertificateError(
        "source-address",
        `The ${what} is not valid from ${
          options.address ?? "an unknown address"
        } (source-address ${source})`,
      );
    }
  }
}

/**
 * A validity bound as ssh-keygen prints it: local time
 * `YYYY-MM-DDTHH:MM:SS`, or `forever` / `always` for the extremes.
 */
export function formatCertTime(seconds: bigint): string {
  if (seconds === CERT_FOREVER) return "forever";
  if (seconds === 0n) return "always";
  // Date covers far beyond any real certificate; clamp absurd values.
  const ms =
    Number(seconds > 8_640_000_000_000n ? 8_640_000_000_000n : seconds) *
    1000;
  const d = new Date(ms);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${
    pad(d.getDate())
  }T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Whether two certificates or keys have the same blob. */
export function sameBlob(
  a: { blob: Uint8Array },
  b: { blob: Uint8Array },
): boolean {
  return equalBytes(a.blob, b.blob);
}
