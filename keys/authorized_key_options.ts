/**
 * The options of an `authorized_keys` line (sshd(8) "AUTHORIZED_KEYS FILE
 * FORMAT"), parsed into what a server must enforce.
 *
 * @module
 */
import type { SessionRestrictions } from "../connection/session.ts";
import type { AuthorizedKey } from "./authorized_keys.ts";
import type { PublicKey } from "./types.ts";
import { type Certificate, checkCertificate } from "./certificate.ts";

/** Parsed `authorized_keys` options. Booleans are permissions (true = allowed). */
export interface KeyOptions {
  /** `command="..."`: the only command this key may run. */
  command?: string;
  /** `from="..."`: address patterns (wildcards, CIDR, `!` negation). */
  from?: string[];
  /** `environment="NAME=value"` entries, in file order. */
  environment: [string, string][];
  /** `expiry-time="..."`: the key is refused from this instant on. */
  expiryTime?: Date;
  /** PTY allocation (`no-pty`, `restrict`, `pty`). */
  pty: boolean;
  /** TCP/stream-local forwarding (`no-port-forwarding`, `restrict`, `port-forwarding`). */
  portForwarding: boolean;
  /** Agent forwarding (`no-agent-forwarding`, `restrict`, `agent-forwarding`). */
  agentForwarding: boolean;
  /** X11 forwarding (`no-x11-forwarding`, `restrict`, `x11-forwarding`). */
  x11Forwarding: boolean;
  /** Running ~/.ssh/rc (`no-user-rc`, `restrict`, `user-rc`). */
  userRc: boolean;
  /** `permitopen="host:port"` destinations for local forwarding. */
  permitOpen: string[];
  /** `permitlisten="[host:]port"` addresses for remote forwarding. */
  permitListen: string[];
  /** `cert-authority`: the key is a CA for user certificates. */
  certAuthority: boolean;
  /** `principals="a,b"`: allowed certificate principals. */
  principals?: string[];
}

const FLAGS: Record<string, [keyof KeyOptions, boolean]> = {
  "no-pty": ["pty", false],
  "pty": ["pty", true],
  "no-port-forwarding": ["portForwarding", false],
  "port-forwarding": ["portForwarding", true],
  "no-agent-forwarding": ["agentForwarding", false],
  "agent-forwarding": ["agentForwarding", true],
  "no-x11-forwarding": ["x11Forwarding", false],
  "x11-forwarding": ["x11Forwarding", true],
  "no-user-rc": ["userRc", false],
  "user-rc": ["userRc", true],
};

/**
 * Parses the option tokens of one `authorized_keys` entry (as
 * `parseAuthorizedKeys` returns them: `no-pty`, `command="ls -l"`). Unknown
 * or malformed options throw a `SyntaxError` naming the option: sshd refuses
 * such a key rather than use it without the restriction.
 *
 * @example Force a command and forbid a PTY
 * ```ts
 * import { parseKeyOptions } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const o = parseKeyOptions(['command="uptime"', "no-pty", 'environment="A=1"']);
 * assert.equal(o.command, "uptime");
 * assert.equal(o.pty, false);
 * assert.deepEqual(o.environment, [["A", "1"]]);
 * ```
 */
export function parseKeyOptions(tokens: readonly string[]): KeyOptions {
  const o: KeyOptions = {
    environment: [],
    pty: true,
    portForwarding: true,
    agentForwarding: true,
    x11Forwarding: true,
    userRc: true,
    permitOpen: [],
    permitListen: [],
    certAuthority: false,
  };
  // `restrict` disables everything, whatever its position; later
  // re-enabling flags (`pty`, ...) win, as in OpenSSH's auth-options.c.
  if (tokens.some((t) => splitOption(t)[0] === "restrict")) {
    o.pty =
      o.portForwarding =
      o.agentForwarding =
      o.x11Forwarding =
      o.userRc =
        false;
  }
  for (const token of tokens) {
    const [name, value] = splitOption(token);
    const flag = FLAGS[name];
    if (flag) {
      if (value !== undefined) {
        throw new SyntaxError(`Option ${name} takes no value`);
      }
      (o[flag[0]] as boolean) = flag[1];
      continue;
    }
    switch (name) {
      case "restrict":
        continue;
      case "cert-authority":
        o.certAuthority = true;
        continue;
    }
    if (value === undefined) {
      throw new SyntaxError(
        `Unknown or incomplete option ${JSON.stringify(name)}`,
      );
    }
    switch (name) {
      case "command":
        if (o.command !== undefined) {
          throw new SyntaxError("Option command given twice");
        }
        o.command = value;
        break;
      case "from":
        o.from = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
        if (o.from.length === 0) {
          throw new SyntaxError("Option from has no patterns");
        }
        break;
      case "environment": {
        const eq = value.indexOf("=");
        const key = eq > 0 ? value.slice(0, eq) : "";
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
          throw new SyntaxError(
            `Option environment needs NAME=value, got ${JSON.stringify(value)}`,
          );
        }
        o.environment.push([key, value.slice(eq + 1)]);
        break;
      }
      case "expiry-time":
        o.expiryTime = parseExpiryTime(value);
        break;
      case "permitopen":
        o.permitOpen.push(value);
        break;
      case "permitlisten":
        o.permitListen.push(value);
        break;
      case "principals":
        o.principals = value.split(",").filter((s) => s !== "");
        break;
      default:
        throw new SyntaxError(`Unknown option ${JSON.stringify(name)}`);
    }
  }
  return o;
}

/** Splits `name="value"` into a lower-case name and the unquoted value. */
function splitOption(token: string): [string, string | undefined] {
  const eq = token.indexOf("=");
  if (eq < 0) return [token.toLowerCase(), undefined];
  let value = token.slice(eq + 1);
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
    value = value.slice(1, -1).replace(/\\"/g, '"');
  } else {
    throw new SyntaxError(`Option ${token.slice(0, eq)} needs a quoted value`);
  }
  return [token.slice(0, eq).toLowerCase(), value];
}

/**
 * `YYYYMMDD[HHMM[SS]]`, local time unless it ends in `Z` (UTC), as sshd(8)
 * describes `expiry-time`.
 */
function parseExpiryTime(text: string): Date {
  const m = text.match(
    /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(Z?)$/,
  );
  if (!m) {
    throw new SyntaxError(
      `Option expiry-time needs YYYYMMDD[HHMM[SS]][Z], got ${
        JSON.stringify(text)
      }`,
    );
  }
  const [y, mo, d, h = "0", mi = "0", s = "0"] = m.slice(1, 7);
  const parts = [
    Number(y),
    Number(mo) - 1,
    Number(d),
    Number(h),
    Number(mi),
    Number(s),
  ] as const;
  const date = m[7] ? new Date(Date.UTC(...parts)) : new Date(...parts);
  // A day or month out of range rolls over in Date; catch it.
  const month = m[7] ? date.getUTCMonth() : date.getMonth();
  if (Number.isNaN(date.getTime()) || month !== parts[1]) {
    throw new SyntaxError(
      `Option expiry-time is not a valid date: ${JSON.stringify(text)}`,
    );
  }
  return date;
}

/**
 * sshd's `from=` rule for one address: a matching negated pattern refuses,
 * otherwise any matching pattern allows. Patterns are host or address
 * wildcards (`*`, `?`) or IPv4/IPv6 CIDR blocks.
 *
 * @example
 * ```ts
 * import { addressAllowed } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * assert.equal(addressAllowed(["10.0.0.0/8", "!10.1.2.3"], "10.9.9.9"), true);
 * assert.equal(addressAllowed(["10.0.0.0/8", "!10.1.2.3"], "10.1.2.3"), false);
 * ```
 */
export function addressAllowed(
  patterns: readonly string[],
  address: string,
): boolean {
  let ok = false;
  for (const p of patterns) {
    if (p.startsWith("!")) {
      if (addressMatches(p.slice(1), address)) return false;
    } else if (addressMatches(p, address)) {
      ok = true;
    }
  }
  return ok;
}

function addressMatches(pattern: string, address: string): boolean {
  const slash = pattern.indexOf("/");
  if (slash > 0) {
    const net = parseIp(pattern.slice(0, slash));
    const ip = parseIp(address);
    const bits = Number(pattern.slice(slash + 1));
    if (
      !net || !ip || net.length !== ip.length || !Number.isInteger(bits) ||
      bits < 0 || bits > net.length * 8
    ) {
      return false;
    }
    for (let i = 0; i < net.length; i++) {
      const take = Math.max(0, Math.min(8, bits - i * 8));
      const mask = take === 0 ? 0 : (0xff << (8 - take)) & 0xff;
      if ((net[i] & mask) !== (ip[i] & mask)) return false;
    }
    return true;
  }
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${re}$`, "i").test(address);
}

/** IPv4 (4 bytes) or IPv6 (16 bytes) address bytes, or null. */
function parseIp(text: string): Uint8Array | null {
  const v4 = text.match(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/);
  if (v4) {
    const b = v4.slice(1).map(Number);
    return b.every((x) => x <= 255) ? new Uint8Array(b) : null;
  }
  if (!text.includes(":")) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (s: string) => (s === "" ? [] : s.split(":"));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const missing = 8 - head.length - tail.length;
  if ((halves.length === 1 && missing !== 0) || missing < 0) return null;
  const all = [
    ...head,
    ...Array(halves.length === 2 ? missing : 0).fill("0"),
    ...tail,
  ];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-f]{1,4}$/i.test(all[i])) return null;
    const v = parseInt(all[i], 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  }
  return out;
}

/** The entry that let a key in, and what it restricts. */
export interface AuthorizedKeyMatch {
  /** The `authorized_keys` entry. */
  entry: AuthorizedKey;
  /** Its parsed options. */
  options: KeyOptions;
  /** What the session handler must enforce for this login. */
  restrictions: SessionRestrictions;
}

/** Options for {@linkcode findAuthorizedKey}. */
export interface FindAuthorizedKeyOptions {
  /** The client's address (host only), checked against `from=`. */
  address?: string;
  /**
   * The current time in milliseconds, checked against `expiry-time=`.
   * @default {Date.now()}
   */
  now?: number;
  /** Told why a matching entry was not used (for logs). */
  onRefused?: (entry: AuthorizedKey, reason: string) => void;
}

/**
 * Finds the `authorized_keys` entry that admits `key`, as sshd does: the
 * first entry for that key whose options parse and whose `from=` and
 * `expiry-time=` allow this login. Entries with options we cannot enforce
 * (`cert-authority`, `principals=`: certificates are not supported yet) are
 * refused. Forwarding options become restrictions for the connection's
 * forwarding and agent handlers to enforce.
 *
 * @example Restrictions from a matching line
 * ```ts
 * import { findAuthorizedKey, generatePrivateKey, parseAuthorizedKeys } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const key = generatePrivateKey("ed25519").publicKey;
 * const entries = parseAuthorizedKeys(`command="uptime",no-pty ${key.toString()}\n`);
 * const match = findAuthorizedKey(entries, key, { address: "127.0.0.1" });
 * assert.equal(match?.restrictions.forceCommand, "uptime");
 * assert.equal(match?.restrictions.pty, false);
 * ```
 */
export function findAuthorizedKey(
  entries: readonly AuthorizedKey[],
  key: PublicKey,
  options: FindAuthorizedKeyOptions = {},
): AuthorizedKeyMatch | null {
  const refuse = (entry: AuthorizedKey, reason: string) =>
    options.onRefused?.(entry, reason);
  for (const entry of entries) {
    if (entry.key.type !== key.type || !sameBytes(entry.key.blob, key.blob)) {
      continue;
    }
    let parsed: KeyOptions;
    try {
      parsed = parseKeyOptions(entry.options);
    } catch (e) {
      // Refused rather than used without a restriction it asks for.
      refuse(entry, (e as Error).message);
      continue;
    }
    if (parsed.from && !addressAllowed(parsed.from, options.address ?? "")) {
      refuse(
        entry,
        `from= does not allow ${options.address ?? "an unknown address"}`,
      );
      continue;
    }
    if (
      parsed.expiryTime &&
      parsed.expiryTime.getTime() <= (options.now ?? Date.now())
    ) {
      refuse(entry, `key expired at ${parsed.expiryTime.toISOString()}`);
      continue;
    }
    if (parsed.certAuthority || parsed.principals) {
      // sshd: these lines admit certificates signed by the key, never the
      // key itself (see authorizeCertificate).
      refuse(
        entry,
        "cert-authority and principals= lines only admit certificates",
      );
      continue;
    }
    return {
      entry,
      options: parsed,
      restrictions: {
        forceCommand: parsed.command,
        pty: parsed.pty,
        environment: Object.fromEntries(parsed.environment),
        portForwarding: parsed.portForwarding,
        permitOpen: parsed.permitOpen.length > 0
          ? [...parsed.permitOpen]
          : undefined,
        permitListen: parsed.permitListen.length > 0
          ? [...parsed.permitListen]
          : undefined,
        agentForwarding: parsed.agentForwarding,
      },
    };
  }
  return null;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** Options for {@linkcode authorizeCertificate}. */
export interface AuthorizeCertificateOptions {
  /** The user logging in. */
  username: string;
  /** The client's address (host only), for `from=` and `source-address`. */
  address?: string;
  /**
   * CA keys trusted for every user (sshd `TrustedUserCAKeys`): the user
   * name must be one of the certificate's principals.
   */
  trustedCaKeys?: readonly PublicKey[];
  /** The current time in milliseconds. @default {Date.now()} */
  now?: number;
  /** Told why a CA line or certificate was not used (for logs). */
  onRefused?: (reason: string, entry?: AuthorizedKey) => void;
}

/** How a certificate login was authorized. */
export interface CertificateAuthorization {
  /** The `cert-authority` entry, or undefined when `trustedCaKeys` did. */
  entry?: AuthorizedKey;
  /** What the session handler must enforce for this login. */
  restrictions: SessionRestrictions;
}

/**
 * Decides a login with a user certificate as sshd does (sshd(8)
 * AUTHORIZED_KEYS FILE FORMAT, PROTOCOL.certkeys): the certificate must be
 * signed by a key in `trustedCaKeys` (the user name among its principals)
 * or by a `cert-authority` entry (one of its principals in that entry's
 * `principals=`, or the user name when absent), be a valid user
 * certificate now, and satisfy `source-address`. The restrictions combine
 * the entry's options with the certificate's: `force-command`, and no PTY,
 * port or agent forwarding unless its extensions permit them. Returns null
 * when nothing admits it.
 *
 * @example A cert-authority line with principals=
 * ```ts
 * import {
 *   authorizeCertificate,
 *   generatePrivateKey,
 *   parseAuthorizedKeys,
 *   signCertificate,
 * } from "@fynx/ssh/keys";
 * import assert from "node:assert/strict";
 *
 * const ca = generatePrivateKey("ed25519");
 * const cert = signCertificate(ca, generatePrivateKey("ed25519").publicKey, {
 *   type: "user",
 *   keyId: "deploy bot",
 *   principals: ["deploy"],
 *   extensions: { "permit-pty": "" },
 * });
 * const entries = parseAuthorizedKeys(
 *   `cert-authority,principals="deploy" ${ca.publicKey}\n`,
 * );
 * const ok = authorizeCertificate(entries, cert, { username: "www" });
 * assert.equal(ok?.restrictions.pty, true);
 * assert.equal(ok?.restrictions.portForwarding, false);
 * assert.equal(authorizeCertificate([], cert, { username: "www" }), null);
 * ```
 */
export function authorizeCertificate(
  entries: readonly AuthorizedKey[],
  cert: Certificate,
  options: AuthorizeCertificateOptions,
): CertificateAuthorization | null {
  const refuse = (reason: string, entry?: AuthorizedKey) =>
    options.onRefused?.(reason, entry);
  const address = options.address ?? "";
  const fromCert = (): SessionRestrictions => {
    const forced = cert.criticalOptions.get("force-command");
    return {
      forceCommand: forced,
      pty: cert.extensions.has("permit-pty"),
      portForwarding: cert.extensions.has("permit-port-forwarding"),
      agentForwarding: cert.extensions.has("permit-agent-forwarding"),
    };
  };
  const check = (principal: string | undefined, caKey: PublicKey): boolean => {
    try {
      checkCertificate(cert, {
        type: "user",
        trustedCa: (k) =>
          k.type === caKey.type && sameBytes(k.blob, caKey.blob),
        principal,
        address,
        addressAllowed,
        now: options.now,
      });
      return true;
    } catch (e) {
      refuse((e as Error).message);
      return false;
    }
  };
  for (const ca of options.trustedCaKeys ?? []) {
    if (
      ca.type !== cert.signatureKey.type ||
      !sameBytes(ca.blob, cert.signatureKey.blob)
    ) {
      continue;
    }
    // Not admitted here: authorized_keys may still admit it (sshd tries
    // both).
    if (check(options.username, ca)) return { restrictions: fromCert() };
    break;
  }
  for (const entry of entries) {
    if (
      entry.key.type !== cert.signatureKey.type ||
      !sameBytes(entry.key.blob, cert.signatureKey.blob)
    ) continue;
    let parsed: KeyOptions;
    try {
      parsed = parseKeyOptions(entry.options);
    } catch (e) {
      refuse((e as Error).message, entry);
      continue;
    }
    if (!parsed.certAuthority) {
      refuse("the CA key is listed without cert-authority", entry);
      continue;
    }
    if (parsed.from && !addressAllowed(parsed.from, address)) {
      refuse(`from= does not allow ${address || "an unknown address"}`, entry);
      continue;
    }
    if (
      parsed.expiryTime &&
      parsed.expiryTime.getTime() <= (options.now ?? Date.now())
    ) {
      refuse(`CA key expired at ${parsed.expiryTime.toISOString()}`, entry);
      continue;
    }
    let principal: string | undefined = options.username;
    if (parsed.principals) {
      principal = cert.principals.find((p) => parsed.principals!.includes(p));
      if (principal === undefined) {
        refuse(
          `none of the certificate's principals (${
            cert.principals.join(",")
          }) is in principals=`,
          entry,
        );
        continue;
      }
    }
    if (!check(principal, entry.key)) continue;
    const c = fromCert();
    if (
      c.forceCommand !== undefined && parsed.command !== undefined &&
      c.forceCommand !== parsed.command
    ) {
      // sshd refuses when the two forced commands disagree.
      refuse(
        "the certificate's force-command and the line's command= differ",
        entry,
      );
      continue;
    }
    return {
      entry,
      restrictions: {
        forceCommand: c.forceCommand ?? parsed.command,
        pty: parsed.pty && c.pty!,
        environment: Object.fromEntries(parsed.environment),
        portForwarding: parsed.portForwarding && c.portForwarding!,
        permitOpen: parsed.permitOpen.length > 0
          ? [...parsed.permitOpen]
          : undefined,
        permitListen: parsed.permitListen.length > 0
          ? [...parsed.permitListen]
          : undefined,
        agentForwarding: parsed.agentForwarding && c.agentForwarding!,
      },
    };
  }
  return null;
}
