/**
 * The OpenSSH `known_hosts` file format (sshd(8) "SSH_KNOWN_HOSTS FILE
 * FORMAT") and the ssh-keygen(1) `-H` / `-F` / `-R` operations on it.
 *
 * A line is `[marker] hosts keytype base64 [comment]` where `marker` is
 * `@cert-authority` or `@revoked`, and `hosts` is either a comma-separated
 * list of patterns (`*` and `?` wildcards, `!` negation, `[host]:port` for
 * ports other than 22) or one hashed name `|1|base64(salt)|base64(hmac)`,
 * the HMAC-SHA1 of the name keyed with the 20-byte salt.
 *
 * @module
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { decodeBase64, encodeBase64, equalBytes } from "./_util.ts";
import { parsePublicKey } from "./public_key.ts";
import type { PublicKey } from "./types.ts";

/** The parts of a host key a known_hosts line records; any {@linkcode PublicKey} fits. */
export interface KnownHostKey {
  /** Key type name, e.g. `ssh-ed25519`. */
  readonly type: string;
  /** Public key blob (RFC 4253 section 6.6). */
  readonly blob: Uint8Array;
}

/** Marker of a known_hosts line, or null for a plain host key line. */
export type KnownHostsMarker = "cert-authority" | "revoked" | null;

/** One well-formed key line of a known_hosts file. */
export interface KnownHostsEntry {
  /** 1-based line number in the text. */
  readonly line: number;
  /** `@cert-authority`, `@revoked` (without the `@`) or null. */
  readonly marker: KnownHostsMarker;
  /** The hosts field as written (patterns, or one hashed name). */
  readonly hosts: string;
  /** Whether {@linkcode hosts} is a hashed `|1|salt|hash` name. */
  readonly hashed: boolean;
  /** Key type field, e.g. `ssh-ed25519`. */
  readonly keyType: string;
  /** Decoded key blob. */
  readonly blob: Uint8Array;
  /**
   * The parsed key, or null when the blob is not a key type we support
   * (`ssh-dss`, certificates, security keys) or is malformed. Such lines
   * still match by their exact bytes, which can only make a lookup fail
   * closed (`changed`), never accept a key.
   */
  readonly key: PublicKey | null;
  /** Comment after the key, or "". */
  readonly comment: string;
  /** The line as written (without its line break). */
  readonly text: string;
}

/** Options for {@linkcode KnownHosts.parse}. */
export interface ParseKnownHostsOptions {
  /**
   * Called for each line that is neither blank, a `#` comment nor a valid
   * entry. Such lines are kept verbatim (and written back by
   * {@linkcode KnownHosts.toString}) but never match, as OpenSSH does.
   *
   * @default {undefined}
   */
  onInvalidLine?: (error: SyntaxError, line: number, text: string) => void;
}

/** Options for {@linkcode KnownHosts.add}. */
export interface AddKnownHostOptions {
  /**
   * Write the host name hashed (`|1|salt|hash`, random 20-byte salt), as
   * `HashKnownHosts yes` does.
   *
   * @default {false}
   */
  hash?: boolean;
  /**
   * Comment written after the key.
   *
   * @default {""}
   */
  comment?: string;
}

/** Outcome of {@linkcode KnownHosts.lookup}. */
export interface KnownHostsLookup {
  /**
   * `known`: a line for this host holds the key; `revoked`: an `@revoked`
   * line for this host holds the key (this wins over `known`); `changed`:
   * the host has keys on record but not this one (a key of another type
   * counts as changed too); `unknown`: no key on record for this host.
   */
  status: "known" | "changed" | "revoked" | "unknown";
  /** The plain and `@revoked` entries whose hosts field matches the host. */
  matches: KnownHostsEntry[];
  /**
   * 1-based line that decided: the matching key (`known`), the revocation
   * (`revoked`) or the offending key on record, one of the same type if
   * any (`changed`). Absent for `unknown`.
   */
  line?: number;
}

/** Result of {@linkcode KnownHosts.remove}. */
export interface KnownHostsRemoval {
  /** The new file text. */
  text: string;
  /** Number of lines removed. */
  removed: number;
}

/** Length of the HMAC-SHA1 salt and digest in a hashed name. */
const SHA1_LEN = 20;
const HASH_MAGIC = "|1|";
/** Characters never allowed in a host name we format, add or hash. */
// deno-lint-ignore no-control-regex
const BAD_HOST = /[\s,*?![\]\x00-\x1f\x7f]/;
/** Whitespace or control characters, which would break a line apart. */
// deno-lint-ignore no-control-regex
const BAD_TOKEN = /[\s\x00-\x1f\x7f]/;
/** Characters a comment must not hold. */
// deno-lint-ignore no-control-regex
const BAD_COMMENT = /[\r\n\x00]/;

/**
 * The name known_hosts uses for a host: the lowercased host for port 22,
 * `[host]:port` otherwise (OpenSSH `put_host_port`; ssh(1) lowercases the
 * host name before using it).
 *
 * Throws a {@linkcode TypeError} for a host that is empty or contains
 * whitespace, a comma, brackets, wildcards or `!` (it could not be written
 * as one name), and a {@linkcode RangeError} for a port outside 1..65535.
 *
 * @example
 * ```ts
 * import { formatHostPort } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatHostPort("Example.COM", 22), "example.com");
 * assert.equal(formatHostPort("::1", 2222), "[::1]:2222");
 * ```
 */
export function formatHostPort(host: string, port: number): string {
  checkHost(host);
  if (typeof port !== "number") {
    throw new TypeError(`Invalid port ${JSON.stringify(port)}: not a number`);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`Invalid port ${port}: must be in 1..65535`);
  }
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

function checkHost(host: string): void {
  if (typeof host !== "string") {
    throw new TypeError("Invalid host: must be a string");
  }
  if (host === "" || BAD_HOST.test(host) || /^[#@|]/.test(host)) {
    throw new TypeError(
      `Invalid host ${JSON.stringify(host.slice(0, 100))}: not a plain name`,
    );
  }
}

function hmacName(salt: Uint8Array, name: string): Uint8Array {
  return new Uint8Array(createHmac("sha1", salt).update(name).digest());
}

/**
 * Hashes a known_hosts name (`host` or `[host]:port`, see
 * {@linkcode formatHostPort}) to `|1|base64(salt)|base64(HMAC-SHA1(salt,
 * name))`, as ssh-keygen -H does. `salt` must be 20 bytes (a
 * {@linkcode RangeError} otherwise) and defaults to fresh random bytes.
 * The name is hashed as given (not lowercased).
 *
 * @example
 * ```ts
 * import { hashHostname } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const salt = new Uint8Array(20);
 * assert.equal(
 *   hashHostname("example.com", salt),
 *   hashHostname("example.com", salt),
 * );
 * assert.match(hashHostname("[h]:2222"), /^\|1\|[A-Za-z0-9+/=]{28}\|[A-Za-z0-9+/=]{28}$/);
 * ```
 */
export function hashHostname(host: string, salt?: Uint8Array): string {
  if (typeof host !== "string" || host === "") {
    throw new TypeError("Cannot hash host name: must be a non-empty string");
  }
  if (salt === undefined) {
    salt = crypto.getRandomValues(new Uint8Array(SHA1_LEN));
  } else if (!(salt instanceof Uint8Array)) {
    throw new TypeError("Cannot hash host name: salt must be a Uint8Array");
  } else if (salt.length !== SHA1_LEN) {
    throw new RangeError(
      `Cannot hash host name: salt must be ${SHA1_LEN} bytes, got ${salt.length}`,
    );
  }
  return `${HASH_MAGIC}${encodeBase64(salt)}|${
    encodeBase64(hmacName(salt, host))
  }`;
}

/** Parsed line internals kept beside the public entry. */
interface Parsed {
  entry: KnownHostsEntry;
  /** Hashed names: salt and digest. */
  salt?: Uint8Array;
  digest?: Uint8Array;
  /** Plain names: the lowercased patterns. */
  patterns?: string[];
}

/**
 * Glob match with `*` and `?` (OpenSSH `match_pattern`), iterative with
 * backtracking to the last star only, so time stays O(pattern * name) and
 * a hostile file cannot blow up a regex engine.
 */
function globMatch(pattern: string, name: string): boolean {
  let p = 0;
  let s = 0;
  let star = -1;
  let mark = 0;
  while (s < name.length) {
    if (p < pattern.length && (pattern[p] === "?" || pattern[p] === name[s])) {
      p++;
      s++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      mark = s;
    } else if (star >= 0) {
      p = star + 1;
      s = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === "*") p++;
  return p === pattern.length;
}

function matches(parsed: Parsed, name: string): boolean {
  if (parsed.salt !== undefined) {
    const got = hmacName(parsed.salt, name);
    return timingSafeEqual(got, parsed.digest!);
  }
  // OpenSSH match_hostname: a matching negated pattern rejects the line
  // whatever else matches; otherwise one positive match is needed.
  let positive = false;
  for (const pattern of parsed.patterns!) {
    if (pattern.startsWith("!")) {
      if (globMatch(pattern.slice(1), name)) return false;
    } else if (!positive && globMatch(pattern, name)) {
      positive = true;
    }
  }
  return positive;
}

function invalid(lineNo: number, why: string): SyntaxError {
  return new SyntaxError(`Malformed known_hosts line ${lineNo}: ${why}`);
}

/** Splits off the next space/tab separated field. */
function nextField(text: string): [string, string] {
  const t = text.replace(/^[ \t]+/, "");
  const end = t.search(/[ \t]/);
  return end < 0 ? [t, ""] : [t.slice(0, end), t.slice(end)];
}

function parseLine(text: string, lineNo: number): Parsed | null {
  const line = text.replace(/^[ \t]+/, "");
  if (line === "" || line.startsWith("#")) return null;
  let [field, rest] = nextField(line);
  let marker: KnownHostsMarker = null;
  if (field.startsWith("@")) {
    if (field === "@cert-authority") marker = "cert-authority";
    else if (field === "@revoked") marker = "revoked";
    else {
      throw invalid(
        lineNo,
        `unknown marker ${JSON.stringify(field.slice(0, 40))}`,
      );
    }
    [field, rest] = nextField(rest);
  }
  const hosts = field;
  const [keyType, rest2] = nextField(rest);
  const [b64, rest3] = nextField(rest2);
  if (hosts === "" || keyType === "" || b64 === "") {
    throw invalid(lineNo, `expected "[marker] hosts keytype base64 [comment]"`);
  }
  const blob = decodeBase64(b64, `known_hosts line ${lineNo} key`);
  let salt: Uint8Array | undefined;
  let digest: Uint8Array | undefined;
  let patterns: string[] | undefined;
  const hashed = hosts.startsWith("|");
  if (hashed) {
    const parts = hosts.split("|");
    if (parts.length !== 4 || parts[1] !== "1") {
      throw invalid(lineNo, "bad hashed host name");
    }
    salt = decodeBase64(parts[2], `known_hosts line ${lineNo} host salt`);
    digest = decodeBase64(parts[3], `known_hosts line ${lineNo} host hash`);
    if (salt.length !== SHA1_LEN || digest.length !== SHA1_LEN) {
      throw invalid(lineNo, "bad hashed host name length");
    }
  } else {
    patterns = hosts.toLowerCase().split(",").filter((p) => p !== "");
    if (patterns.length === 0) throw invalid(lineNo, "no host patterns");
  }
  let key: PublicKey | null = null;
  try {
    key = parsePublicKey(blob, rest3.trim());
    if (key.type !== keyType) key = null;
  } catch {
    key = null;
  }
  const entry: KnownHostsEntry = {
    line: lineNo,
    marker,
    hosts,
    hashed,
    keyType,
    blob,
    key,
    comment: rest3.trim(),
    text,
  };
  return { entry, salt, digest, patterns };
}

function checkKey(key: KnownHostKey, what: string): void {
  if (
    key === null || typeof key !== "object" || typeof key.type !== "string" ||
    !(key.blob instanceof Uint8Array)
  ) {
    throw new TypeError(`Cannot ${what}: key must have a type and a blob`);
  }
}

/**
 * A known_hosts file held in memory: lookups with OpenSSH semantics, and
 * the ssh-keygen `-F` (find), `-R` (remove) and append operations. Lines
 * that are not entries (comments, blank and invalid lines) are kept as
 * written.
 *
 * @example Check, add and remove host keys
 * ```ts
 * import { generatePrivateKey, KnownHosts } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const key = generatePrivateKey("ed25519").publicKey;
 * const other = generatePrivateKey("ed25519").publicKey;
 * const kh = KnownHosts.parse("# my hosts\n");
 * assert.equal(kh.lookup("example.com", 2222, key).status, "unknown");
 * kh.add("example.com", 2222, key, { hash: true });
 * assert.equal(kh.lookup("Example.com", 2222, key).status, "known");
 * assert.equal(kh.lookup("example.com", 2222, other).status, "changed");
 * assert.equal(kh.lookup("example.com", 22, key).status, "unknown");
 * const { text, removed } = kh.remove("example.com", 2222);
 * assert.equal(removed, 1);
 * assert.equal(text, "# my hosts\n");
 * ```
 */
export class KnownHosts {
  #lines: string[];
  #parsed: Parsed[];

  private constructor(lines: string[], parsed: Parsed[]) {
    this.#lines = lines;
    this.#parsed = parsed;
  }

  /**
   * Parses known_hosts text. Never throws for its content: invalid lines
   * are reported to `options.onInvalidLine` and kept without matching. A
   * non-string `text` is a {@linkcode TypeError}.
   */
  static parse(text: string, options: ParseKnownHostsOptions = {}): KnownHosts {
    if (typeof text !== "string") {
      throw new TypeError("Cannot parse known_hosts: text must be a string");
    }
    const lines = text.split("\n");
    if (lines[lines.length - 1] === "") lines.pop();
    return new KnownHosts(lines, KnownHosts.#parseLines(lines, options));
  }

  static #parseLines(
    lines: string[],
    options: ParseKnownHostsOptions,
  ): Parsed[] {
    const parsed: Parsed[] = [];
    for (let i = 0; i < lines.length; i++) {
      const text = lines[i].replace(/\r$/, "");
      try {
        const p = parseLine(text, i + 1);
        if (p !== null) parsed.push(p);
      } catch (e) {
        const error = e instanceof SyntaxError
          ? e
          : invalid(i + 1, (e as Error).message);
        options.onInvalidLine?.(error, i + 1, text);
      }
    }
    return parsed;
  }

  /** The well-formed entries, in file order. */
  get entries(): KnownHostsEntry[] {
    return this.#parsed.map((p) => p.entry);
  }

  #matching(host: string, port: number): Parsed[] {
    const name = formatHostPort(host, port);
    return this.#parsed.filter((p) => matches(p, name));
  }

  /**
   * Checks the key `key` presented by `host` on `port` (as ssh(1) does
   * after key exchange). `@cert-authority` lines are not considered here;
   * see {@linkcode certificateAuthorities}.
   *
   * @example
   * ```ts
   * import { generatePrivateKey, KnownHosts } from "@fynx/ssh";
   * import assert from "node:assert/strict";
   *
   * const ed = generatePrivateKey("ed25519").publicKey;
   * const ec = generatePrivateKey("ecdsa-p256").publicKey;
   * const kh = KnownHosts.parse(
   *   `*.example.com,!bad.example.com ${ed}\n@revoked * ${ec}\n`,
   * );
   * assert.equal(kh.lookup("www.example.com", 22, ed).status, "known");
   * assert.equal(kh.lookup("bad.example.com", 22, ed).status, "unknown");
   * assert.equal(kh.lookup("www.example.com", 22, ec).status, "revoked");
   * ```
   */
  lookup(host: string, port: number, key: KnownHostKey): KnownHostsLookup {
    checkKey(key, "look up host key");
    const found = this.#matching(host, port).filter((p) =>
      p.entry.marker !== "cert-authority"
    ).map((p) => p.entry);
    const revoked = found.find((e) =>
      e.marker === "revoked" && equalBytes(e.blob, key.blob)
    );
    if (revoked !== undefined) {
      return { status: "revoked", matches: found, line: revoked.line };
    }
    const plain = found.filter((e) => e.marker === null);
    const same = plain.find((e) =>
      e.keyType === key.type && equalBytes(e.blob, key.blob)
    );
    if (same !== undefined) {
      return { status: "known", matches: found, line: same.line };
    }
    if (plain.length > 0) {
      const offending = plain.find((e) => e.keyType === key.type) ?? plain[0];
      return { status: "changed", matches: found, line: offending.line };
    }
    return { status: "unknown", matches: found };
  }

  /**
   * The `@cert-authority` keys trusted to sign host certificates for
   * `host` on `port`, leaving out keys we cannot parse and keys that an
   * `@revoked` line for the host revokes.
   *
   * @example
   * ```ts
   * import { generatePrivateKey, KnownHosts } from "@fynx/ssh";
   * import assert from "node:assert/strict";
   *
   * const ca = generatePrivateKey("ed25519").publicKey;
   * const kh = KnownHosts.parse(`@cert-authority *.example.com ${ca}\n`);
   * assert.deepEqual(kh.certificateAuthorities("a.example.com", 22).map((k) => k.blob), [ca.blob]);
   * assert.equal(kh.certificateAuthorities("example.org", 22).length, 0);
   * ```
   */
  certificateAuthorities(host: string, port: number): PublicKey[] {
    const found = this.#matching(host, port).map((p) => p.entry);
    const revoked = found.filter((e) => e.marker === "revoked");
    const out: PublicKey[] = [];
    for (const e of found) {
      if (e.marker !== "cert-authority" || e.key === null) continue;
      if (revoked.some((r) => equalBytes(r.blob, e.blob))) continue;
      out.push(e.key);
    }
    return out;
  }

  /**
   * All entries (any marker) whose hosts field matches `host` on `port`,
   * plain or hashed, as `ssh-keygen -F` lists them.
   */
  find(host: string, port: number): KnownHostsEntry[] {
    return this.#matching(host, port).map((p) => p.entry);
  }

  /**
   * Appends a line for `key` at `host` on `port` and returns it (without
   * line break). With `hash` the name is written hashed with a random salt.
   */
  add(
    host: string,
    port: number,
    key: KnownHostKey,
    options: AddKnownHostOptions = {},
  ): string {
    checkKey(key, "add host key");
    const name = formatHostPort(host, port);
    if (key.type === "" || BAD_TOKEN.test(key.type)) {
      throw new TypeError(
        `Cannot add host key: bad key type ${
          JSON.stringify(key.type.slice(0, 64))
        }`,
      );
    }
    const comment = options.comment ?? "";
    if (typeof comment !== "string" || BAD_COMMENT.test(comment)) {
      throw new TypeError(
        "Cannot add host key: comment must be a one-line string",
      );
    }
    const hosts = options.hash === true ? hashHostname(name) : name;
    const text = `${hosts} ${key.type} ${encodeBase64(key.blob)}${
      comment.trim() === "" ? "" : ` ${comment.trim()}`
    }`;
    this.#lines.push(text);
    const p = parseLine(text, this.#lines.length);
    if (p !== null) this.#parsed.push(p);
    return text;
  }

  /**
   * Removes the entries for `host` on `port`, plain (any line whose
   * patterns match, so a `*` line too) and hashed, as `ssh-keygen -R`
   * does; `@cert-authority` and `@revoked` lines are kept. Updates this
   * object and returns the new text and how many lines went.
   */
  remove(host: string, port: number): KnownHostsRemoval {
    const drop = new Set(
      this.#matching(host, port).filter((p) => p.entry.marker === null).map((
        p,
      ) => p.entry.line),
    );
    this.#lines = this.#lines.filter((_, i) => !drop.has(i + 1));
    this.#parsed = KnownHosts.#parseLines(this.#lines, {});
    return { text: this.toString(), removed: drop.size };
  }

  /** The file text: every line as written, each ended by a line break. */
  toString(): string {
    return this.#lines.map((l) => `${l}\n`).join("");
  }
}
