/**
 * The SSH public key file format of RFC 4716 (`---- BEGIN SSH2 PUBLIC KEY
 * ----`), as `ssh-keygen -e` prints it, and {@linkcode parsePublicKeyAny},
 * which detects the format of a public key text.
 *
 * @module
 */

import { parsePublicKeyPem } from "./pem.ts";
import { parsePublicKey, parsePublicKeyText } from "./public_key.ts";
import { decodeBase64 } from "./_util.ts";
import type { PublicKey } from "./types.ts";

const BEGIN = "---- BEGIN SSH2 PUBLIC KEY ----";
const END = "---- END SSH2 PUBLIC KEY ----";
/** Largest text we look at; a 16384-bit RSA key is under 3 KiB here. */
const MAX_TEXT = 256 * 1024;
/** RFC 4716 section 3.3: a header tag is at most 64 bytes. */
const MAX_TAG = 64;

/**
 * Parses an RFC 4716 public key file. Headers (RFC 4716 section 3.3) may
 * continue over several lines with a trailing backslash; the `Comment`
 * header (quotes stripped) becomes `comment`, other headers are ignored.
 * Throws {@linkcode SyntaxError} for malformed input or an unsupported key,
 * {@linkcode RangeError} for an RSA modulus outside 2048..16384 bits or
 * huge input, {@linkcode TypeError} when `text` is not a string.
 *
 * @example Read what `ssh-keygen -e` prints
 * ```ts
 * import { generatePrivateKey, parsePublicKeyRfc4716 } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const key = generatePrivateKey("ed25519");
 * const b64 = key.publicKey.blob.toBase64();
 * const text = [
 *   "---- BEGIN SSH2 PUBLIC KEY ----",
 *   'Comment: "256-bit ED25519, \\',
 *   'converted from OpenSSH"',
 *   b64.slice(0, 40),
 *   b64.slice(40),
 *   "---- END SSH2 PUBLIC KEY ----",
 * ].join("\n");
 * const pub = parsePublicKeyRfc4716(text);
 * assert.equal(pub.comment, "256-bit ED25519, converted from OpenSSH");
 * assert.equal(pub.fingerprint(), key.publicKey.fingerprint());
 * ```
 */
export function parsePublicKeyRfc4716(text: string): PublicKey {
  if (typeof text !== "string") {
    throw new TypeError(
      "Cannot parse RFC 4716 public key: text must be a string",
    );
  }
  if (text.length > MAX_TEXT) {
    throw new RangeError(
      `RFC 4716 public key of ${text.length} characters exceeds the limit of ${MAX_TEXT}`,
    );
  }
  const lines = text.split(/\r?\n|\r/).map((l) => l.trim());
  let i = 0;
  while (i < lines.length && lines[i] === "") i++;
  if (lines[i] !== BEGIN) {
    throw new SyntaxError(`Malformed RFC 4716 public key: no "${BEGIN}" line`);
  }
  i++;
  let comment = "";
  // RFC 4716 section 3.3: "Header-tag: value"; a value line ending in "\"
  // continues on the next line. Base64 never contains ":".
  while (i < lines.length && lines[i].includes(":")) {
    let line = lines[i++];
    while (line.endsWith("\\")) {
      if (i >= lines.length) {
        throw new SyntaxError(
          "Malformed RFC 4716 public key: header continued past the end",
        );
      }
      line = line.slice(0, -1) + lines[i++];
    }
    const colon = line.indexOf(":");
    const tag = line.slice(0, colon);
    if (
      tag.length === 0 || tag.length > MAX_TAG || !/^[\x21-\x7e]+$/.test(tag)
    ) {
      throw new SyntaxError(
        `Malformed RFC 4716 public key: bad header tag ${
          JSON.stringify(tag.slice(0, MAX_TAG))
        }`,
      );
    }
    let value = line.slice(colon + 1).trim();
    if (tag.toLowerCase() === "comment") {
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
        value = value.slice(1, -1);
      }
      comment = value;
    }
  }
  const body: string[] = [];
  for (; i < lines.length && lines[i] !== END; i++) body.push(lines[i]);
  if (i >= lines.length) {
    throw new SyntaxError(`Truncated RFC 4716 public key: no "${END}" line`);
  }
  for (i++; i < lines.length; i++) {
    if (lines[i] !== "") {
      throw new SyntaxError(
        "Malformed RFC 4716 public key: text after the END line",
      );
    }
  }
  const b64 = body.join("");
  if (b64 === "") {
    throw new SyntaxError("Malformed RFC 4716 public key: empty body");
  }
  return parsePublicKey(decodeBase64(b64, "RFC 4716 public key"), comment);
}

/**
 * Parses a public key in any format we know, detected from its first line:
 * RFC 4716 (`---- BEGIN SSH2 PUBLIC KEY ----`), PEM (`-----BEGIN PUBLIC
 * KEY-----` SPKI or `-----BEGIN RSA PUBLIC KEY-----` PKCS#1), or the
 * OpenSSH one-line form `type base64 [comment]`. Surrounding whitespace is
 * ignored. Errors as the format's own parser: {@linkcode SyntaxError},
 * {@linkcode RangeError}, {@linkcode TypeError}.
 *
 * @example The same key in two formats
 * ```ts
 * import { generatePrivateKey, parsePublicKeyAny } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const key = generatePrivateKey("ed25519", { comment: "me" });
 * const a = parsePublicKeyAny(key.publicKey.toString() + "\n");
 * const b = parsePublicKeyAny(
 *   "---- BEGIN SSH2 PUBLIC KEY ----\n" + key.publicKey.blob.toBase64() +
 *     "\n---- END SSH2 PUBLIC KEY ----\n",
 * );
 * assert.equal(a.comment, "me");
 * assert.equal(a.fingerprint(), b.fingerprint());
 * ```
 */
export function parsePublicKeyAny(text: string): PublicKey {
  if (typeof text !== "string") {
    throw new TypeError("Cannot parse public key: text must be a string");
  }
  if (text.length > MAX_TEXT) {
    throw new RangeError(
      `Public key text of ${text.length} characters exceeds the limit of ${MAX_TEXT}`,
    );
  }
  const trimmed = text.trim();
  if (trimmed.startsWith("---- BEGIN SSH2 PUBLIC KEY")) {
    return parsePublicKeyRfc4716(trimmed);
  }
  if (trimmed.startsWith("-----BEGIN ")) return parsePublicKeyPem(trimmed);
  return parsePublicKeyText(trimmed);
}
