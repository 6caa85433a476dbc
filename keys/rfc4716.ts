/**
 * The SSH public key file format of RFC 4716 (`---- BEGIN SSH2 PUBLIC KEY
 * ----`), as `ssh-keygen -e` prints it, and {@linkcode parsePublicKeyAny},
 * which detects the format of a public key text.
 *
 * @module
 */

import { parsePublicKeyPem } from "./pem.ts";
import { parsePublicKey, parsePublicKeyText } from "./public_key.ts";
import { decodeBase64, encodeBase64 } from "./_util.ts";
import type { PublicKey } from "./types.ts";

const BEGIN = "---- BEGIN SSH2 PUBLIC KEY ----";
const END = "---- END SSH2 PUBLIC KEY ----";
/** Largest text we look at; a 16384-bit RSA key is under 3 KiB here. */
const MAX_TEXT = 256 * 1024;
/** RFC 4716 section 3.3: a header tag is at most 64 bytes. */
const MAX_TAG = 64;
/** RFC 4716 section 3.3: a header value is at most 1024 bytes. */
const MAX_VALUE = 1024;
/** RFC 4716 section 3: no line is longer than 72 bytes. */
const MAX_LINE = 72;
/** ssh-keygen wraps the base64 body at 70 columns. */
const BODY_COLUMNS = 70;

/** Options for {@linkcode encodePublicKeyRfc4716}. */
export interface EncodePublicKeyRfc4716Options {
  /**
   * Value of the `Comment` header (written in double quotes); "" leaves the
   * header out.
   *
   * @default {key.comment}
   */
  comment?: string;
}

/**
 * Encodes a public key in the RFC 4716 format, laid out as `ssh-keygen -e`
 * prints it: the BEGIN line, a `Comment: "..."` header, the blob in base64
 * wrapped at 70 columns, the END line. A header longer than the 72-byte
 * line limit continues on the next line after a backslash (RFC 4716
 * section 3.3). Throws {@linkcode TypeError} for a comment with line breaks
 * or other control characters, {@linkcode RangeError} for one over 1022
 * bytes (the header value's limit is 1024 with the quotes).
 *
 * @example As `ssh-keygen -e` prints it
 * ```ts
 * import {
 *   encodePublicKeyRfc4716,
 *   generatePrivateKey,
 *   parsePublicKeyRfc4716,
 * } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const key = generatePrivateKey("ed25519", { comment: "me@laptop" });
 * const text = encodePublicKeyRfc4716(key.publicKey);
 * const lines = text.split("\n");
 * assert.equal(lines[0], "---- BEGIN SSH2 PUBLIC KEY ----");
 * assert.equal(lines[1], 'Comment: "me@laptop"');
 * assert.equal(lines.at(-2), "---- END SSH2 PUBLIC KEY ----");
 * const again = parsePublicKeyRfc4716(text);
 * assert.equal(again.comment, "me@laptop");
 * assert.deepEqual(again.blob, key.publicKey.blob);
 * ```
 */
export function encodePublicKeyRfc4716(
  key: PublicKey,
  options: EncodePublicKeyRfc4716Options = {},
): string {
  if (
    typeof key !== "object" || key === null ||
    !(key.blob instanceof Uint8Array)
  ) {
    throw new TypeError("Cannot encode RFC 4716 public key: not a key");
  }
  const comment = options.comment ?? key.comment ?? "";
  if (typeof comment !== "string") {
    throw new TypeError(
      "Cannot encode RFC 4716 public key: comment must be a string",
    );
  }
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(comment)) {
    throw new TypeError(
      "Cannot encode RFC 4716 public key: comment holds a line break or control character",
    );
  }
  const lines: string[] = [BEGIN];
  if (comment !== "") {
    const value = `"${comment}"`;
    const size = new TextEncoder().encode(value).length;
    if (size > MAX_VALUE) {
      throw new RangeError(
        `Cannot encode RFC 4716 public key: comment of ${
          size - 2
        } bytes exceeds the limit of ${MAX_VALUE - 2}`,
      );
    }
    lines.push(...headerLines(`Comment: ${value}`));
  }
  const b64 = encodeBase64(key.blob);
  for (let i = 0; i < b64.length; i += BODY_COLUMNS) {
    lines.push(b64.slice(i, i + BODY_COLUMNS));
  }
  lines.push(END, "");
  return lines.join("\n");
}

/**
 * Splits a header into lines of at most 72 bytes, each but the last ending
 * in the continuation backslash, cutting only between characters.
 */
function headerLines(header: string): string[] {
  const utf8Size = (ch: string): number => {
    const c = ch.codePointAt(0)!;
    return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  };
  let total = 0;
  for (const ch of header) total += utf8Size(ch);
  if (total <= MAX_LINE) return [header];
  const out: string[] = [];
  let line = "";
  let bytes = 0;
  for (const ch of header) {
    const n = utf8Size(ch);
    // Leave room for the backslash.
    if (bytes + n > MAX_LINE - 1) {
      out.push(line + "\\");
      line = "";
      bytes = 0;
    }
    line += ch;
    bytes += n;
  }
  out.push(line);
  return out;
}

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
  const raw = text.split(/\r?\n|\r/);
  const lines = raw.map((l) => l.trim());
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
      // A continuation keeps its leading spaces: they are part of the value.
      line = line.slice(0, -1) + raw[i++].trimEnd();
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
