/**
 * The `authorized_keys` file format (sshd(8) "AUTHORIZED_KEYS FILE
 * FORMAT"): one key per line, `[options] type base64 [comment]`.
 *
 * @module
 */

import { KEY_TYPES } from "./algorithms.ts";
import { parsePublicKeyText } from "./public_key.ts";
import type { PublicKey } from "./types.ts";

/** One usable line of an authorized_keys file. */
export interface AuthorizedKey {
  /** The key. */
  key: PublicKey;
  /**
   * Raw option tokens in file order, quoted values kept as written, e.g.
   * `command="ls -l"`, `no-pty`, `from="10.0.0.*"`. The caller must refuse
   * the key if it does not understand an option.
   */
  options: string[];
  /** Comment after the key, or "". */
  comment: string;
  /** 1-based line number in the file. */
  line: number;
}

/** Options for {@linkcode parseAuthorizedKeys}. */
export interface ParseAuthorizedKeysOptions {
  /**
   * Called with the error for each malformed line, which is then skipped
   * (what OpenSSH's sshd does). Without it the first malformed line throws.
   *
   * @default {undefined}
   */
  onInvalidLine?: (error: SyntaxError) => void;
}

/** Longest line we look at; OpenSSH reads lines of up to 8 KiB for keys. */
const MAX_LINE = 64 * 1024;
/** Key types that are well formed but not ours (skipped, never matched). */
const FOREIGN_TYPE =
  /^(?:ssh-dss|sk-[a-z0-9-]+@openssh\.com|[a-z0-9-]+-cert-v01@openssh\.com|ssh-rsa1?|x509v3-[a-z0-9-]+)$/;
const OPTION_NAME = /^[A-Za-z0-9_-]+$/;

/**
 * Splits the leading options field: comma-separated tokens, where a
 * double-quoted value may contain commas, spaces and `\"`. Returns the
 * tokens and the index just after the field.
 */
function readOptions(text: string, lineNo: number): [string[], number] {
  const options: string[] = [];
  let i = 0;
  let start = 0;
  let quoted = false;
  for (; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === "\\" && text[i + 1] === '"') i++;
      else if (ch === '"') quoted = false;
      continue;
    }
    if (ch === '"') quoted = true;
    else if (ch === "," || ch === " " || ch === "\t") {
      options.push(text.slice(start, i));
      start = i + 1;
      if (ch !== ",") break;
    }
  }
  if (quoted) {
    throw new SyntaxError(
      `Malformed authorized_keys line ${lineNo}: unterminated quote in options`,
    );
  }
  if (i >= text.length) {
    throw new SyntaxError(
      `Malformed authorized_keys line ${lineNo}: options but no key`,
    );
  }
  for (const opt of options) {
    const eq = opt.indexOf("=");
    const name = eq < 0 ? opt : opt.slice(0, eq);
    const value = eq < 0 ? null : opt.slice(eq + 1);
    if (
      !OPTION_NAME.test(name) ||
      (value !== null &&
        !(value.length >= 2 && value.startsWith('"') && value.endsWith('"') &&
          !/(^|[^\\])"/.test(value.slice(1, -1))))
    ) {
      throw new SyntaxError(
        `Malformed authorized_keys line ${lineNo}: bad option ${
          JSON.stringify(opt.slice(0, 80))
        }`,
      );
    }
  }
  return [options, i + 1];
}

/**
 * Parses an authorized_keys file. Blank lines and `#` comments are
 * skipped, and so are well-formed lines holding keys we would never accept
 * (DSA, security keys, certificates, RSA under 2048 bits): they can never
 * match a key we verify.
 *
 * A malformed line throws a {@linkcode SyntaxError} naming its line number
 * unless `options.onInvalidLine` is given, which skips it as OpenSSH's sshd
 * does. Either way fails closed (a line we cannot read authorizes nothing);
 * throwing is the default so that a broken file is noticed rather than
 * silently locking out the key on the broken line. Option tokens are
 * returned raw; the caller must refuse a key whose options it does not
 * enforce.
 *
 * @example Options with quoted commas
 * ```ts
 * import { generatePrivateKey, parseAuthorizedKeys } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const pub = generatePrivateKey("ed25519").publicKey.toString();
 * const text = `# users\n\ncommand="echo a,b",no-pty ${pub} alice@laptop\n`;
 * const [entry] = parseAuthorizedKeys(text);
 * assert.deepEqual(entry.options, ['command="echo a,b"', "no-pty"]);
 * assert.equal(entry.comment, "alice@laptop");
 * assert.equal(entry.line, 3);
 * ```
 */
export function parseAuthorizedKeys(
  text: string,
  options: ParseAuthorizedKeysOptions = {},
): AuthorizedKey[] {
  if (typeof text !== "string") {
    throw new TypeError("Cannot parse authorized_keys: text must be a string");
  }
  const out: AuthorizedKey[] = [];
  const lines = text.split("\n");
  for (let index = 0; index < lines.length; index++) {
    const lineNo = index + 1;
    const raw = lines[index].replace(/\r$/, "");
    const line = raw.replace(/^[ \t]+/, "");
    if (line === "" || line.startsWith("#")) continue;
    try {
      if (raw.length > MAX_LINE) {
        throw new SyntaxError(
          `Malformed authorized_keys line ${lineNo}: longer than ${MAX_LINE} characters`,
        );
      }
      const first = /^\S+/.exec(line)![0];
      let opts: string[] = [];
      let rest = line;
      if (
        !KEY_TYPES.includes(first as PublicKey["type"]) &&
        !FOREIGN_TYPE.test(first)
      ) {
        [opts, rest] = ((): [string[], string] => {
          const [o, end] = readOptions(line, lineNo);
          return [o, line.slice(end).replace(/^[ \t]+/, "")];
        })();
      }
      const type = /^\S+/.exec(rest)?.[0] ?? "";
      if (!KEY_TYPES.includes(type as PublicKey["type"])) {
        if (FOREIGN_TYPE.test(type)) continue;
        throw new SyntaxError(
          `Malformed authorized_keys line ${lineNo}: unknown key type ${
            JSON.stringify(type.slice(0, 64))
          }`,
        );
      }
      let key: PublicKey;
      try {
        key = parsePublicKeyText(rest);
      } catch (e) {
        if (e instanceof RangeError) continue; // e.g. RSA-1024: never accepted
        throw new SyntaxError(
          `Malformed authorized_keys line ${lineNo}: ${(e as Error).message}`,
          { cause: e },
        );
      }
      out.push({ key, options: opts, comment: key.comment, line: lineNo });
    } catch (e) {
      if (!(e instanceof SyntaxError) || options.onInvalidLine === undefined) {
        throw e;
      }
      options.onInvalidLine(e);
    }
  }
  return out;
}
