/**
 * `fynx keygen -s` (sign certificates) and `fynx keygen -L` (show them),
 * with ssh-keygen(1)'s flags, validity syntax, `-O` options and output.
 *
 * @module
 */
import {
  CERT_FOREVER,
  type Certificate,
  type CertificateType,
  DEFAULT_USER_EXTENSIONS,
  formatCertTime,
  parseAuthorizedKeys,
  parseCertificateText,
  signCertificate,
} from "../keys/mod.ts";
import type { PrivateKey, PublicKey } from "../keys/types.ts";
import { keyTypeLabel, UsageError } from "./_args.ts";

/** What `fynx keygen -s` was given. */
export interface SignFlags {
  /** CA private key file (`-s`). */
  ca: string;
  /** Key id (`-I`). */
  keyId: string | undefined;
  /** Comma-separated principals (`-n`). */
  principals: string | undefined;
  /** Validity interval (`-V`). */
  validity: string | undefined;
  /** Serial number (`-z`). */
  serial: string | undefined;
  /** Certificate options (`-O`, repeatable). */
  options: string[];
  /** Host certificate (`-h`). */
  host: boolean;
  /** Public key files to certify. */
  files: string[];
  /** Less output (`-q`). */
  quiet: boolean;
}

const SECOND = 1n;
const UNITS: Record<string, bigint> = {
  "": SECOND,
  s: SECOND,
  m: 60n,
  h: 3600n,
  d: 86400n,
  w: 604800n,
};

function fail(message: string): never {
  throw new UsageError(`fynx keygen: ${message}`);
}

/** Seconds of a relative time spec such as `1h30m` or `52w`. */
function parseSpan(text: string, what: string): bigint {
  if (!/^(\d+[smhdwSMHDW]?)+$/.test(text)) {
    fail(`invalid relative time ${JSON.stringify(text)} in ${what}`);
  }
  let total = 0n;
  for (const [, n, unit] of text.matchAll(/(\d+)([smhdwSMHDW]?)/g)) {
    total += BigInt(n) * UNITS[unit.toLowerCase()];
  }
  return total;
}

/**
 * An absolute time: `YYYYMMDD`, `YYYYMMDDHHMM[SS]` (local time, or UTC with a
 * trailing `Z`), or `0x` + hex seconds since the epoch.
 */
function parseAbsolute(text: string, what: string): bigint {
  if (/^0x[0-9a-fA-F]{1,16}$/.test(text)) return BigInt(text);
  const m = text.match(
    /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(Z?)$/,
  );
  if (!m) fail(`invalid time ${JSON.stringify(text)} in ${what}`);
  const [, y, mo, d, h = "0", mi = "0", s = "0", z] = m;
  const parts = [y, mo, d, h, mi, s].map(Number);
  const ms = z === "Z"
    ? Date.UTC(parts[0], parts[1] - 1, parts[2], parts[3], parts[4], parts[5])
    : new Date(parts[0], parts[1] - 1, parts[2], parts[3], parts[4], parts[5])
      .getTime();
  const check = new Date(ms);
  const month = z === "Z" ? check.getUTCMonth() : check.getMonth();
  if (Number.isNaN(ms) || month !== parts[1] - 1 || parts[3] > 23) {
    fail(`invalid date ${JSON.stringify(text)} in ${what}`);
  }
  return BigInt(Math.floor(ms / 1000));
}

function parseBound(
  text: string,
  now: bigint,
  side: "from" | "to",
  what: string,
): bigint {
  if (side === "from" && text === "always") return 0n;
  if (side === "to" && text === "forever") return CERT_FOREVER;
  if (text.startsWith("+")) return now + parseSpan(text.slice(1), what);
  if (text.startsWith("-")) return now - parseSpan(text.slice(1), what);
  return parseAbsolute(text, what);
}

/**
 * Parses a `-V` validity interval as ssh-keygen does: `from:to` with each
 * side `always`/`forever`, `[+-]span` relative to now (`+52w`, `-1d`), or an
 * absolute date; a single `+span` means from a minute ago until then.
 *
 * @param now seconds since the epoch
 */
export function parseValidity(
  spec: string,
  now: bigint,
): { validAfter: bigint; validBefore: bigint } {
  const what = `validity interval ${JSON.stringify(spec)}`;
  let validAfter: bigint;
  let validBefore: bigint;
  const colon = spec.indexOf(":");
  if (colon < 0) {
    // Back-dated to the previous minute to allow for clock skew.
    validAfter = (now - 59n) / 60n * 60n;
    validBefore = parseBound(spec, now, "to", what);
  } else {
    validAfter = parseBound(spec.slice(0, colon), now, "from", what);
    validBefore = parseBound(spec.slice(colon + 1), now, "to", what);
  }
  if (validAfter < 0n) validAfter = 0n;
  if (validBefore <= validAfter) {
    fail(`${what}: the end is not after the start`);
  }
  return { validAfter, validBefore };
}

/**
 * Applies `-O` options (ssh-keygen's names) to the default critical options
 * and extensions of a certificate type.
 */
export function parseCertOptions(
  options: readonly string[],
  type: CertificateType,
): { critical: Record<string, string>; extensions: Record<string, string> } {
  const critical: Record<string, string> = {};
  let extensions: Record<string, string> = type === "user"
    ? Object.fromEntries(DEFAULT_USER_EXTENSIONS.map((e) => [e, ""]))
    : {};
  const flags: Record<string, string> = {
    "agent-forwarding": "permit-agent-forwarding",
    "port-forwarding": "permit-port-forwarding",
    "pty": "permit-pty",
    "user-rc": "permit-user-rc",
    "x11-forwarding": "permit-X11-forwarding",
  };
  for (const raw of options) {
    const lower = raw.toLowerCase();
    const eq = raw.indexOf("=");
    const value = eq < 0 ? "" : raw.slice(eq + 1);
    if (lower === "clear") {
      extensions = {};
      for (const k of Object.keys(critical)) delete critical[k];
    } else if (lower.startsWith("no-") && flags[lower.slice(3)]) {
      delete extensions[flags[lower.slice(3)]];
    } else if (lower.startsWith("permit-") && flags[lower.slice(7)]) {
      extensions[flags[lower.slice(7)]] = "";
    } else if (lower.startsWith("force-command=")) {
      if (value === "") fail("-O force-command= needs a command");
      critical["force-command"] = value;
    } else if (lower.startsWith("source-address=")) {
      if (!/^[0-9a-fA-F.:/,*?!]+$/.test(value)) {
        fail(`invalid source-address list ${JSON.stringify(value)}`);
      }
      critical["source-address"] = value;
    } else if (lower === "verify-required") {
      critical["verify-required"] = "";
    } else if (
      lower.startsWith("extension:") || lower.startsWith("critical:")
    ) {
      const colon = raw.indexOf(":");
      const name = eq < 0 ? raw.slice(colon + 1) : raw.slice(colon + 1, eq);
      if (name === "") fail(`-O ${raw}: empty option name`);
      if (lower.startsWith("critical:")) critical[name] = value;
      else extensions[name] = value;
    } else {
      fail(`unsupported certificate option ${JSON.stringify(raw)}`);
    }
  }
  if (type === "host" && Object.keys(critical).length > 0) {
    fail("host certificates take no critical options");
  }
  return { critical, extensions };
}

/** `file.pub` → `file-cert.pub`, as ssh-keygen names certificates. */
export function certificatePath(publicKeyPath: string): string {
  const base = publicKeyPath.endsWith(".pub")
    ? publicKeyPath.slice(0, -4)
    : publicKeyPath;
  return `${base}-cert.pub`;
}

/** Signs each public key file with the CA; returns the exit status. */
export async function signMode(
  flags: SignFlags,
  loadCa: (path: string) => Promise<PrivateKey>,
  log: (line: string) => void,
): Promise<number> {
  if (flags.keyId === undefined) fail("-s needs a key id (-I)");
  if (flags.files.length === 0) fail("-s needs public key files to certify");
  const type: CertificateType = flags.host ? "host" : "user";
  const principals = flags.principals === undefined
    ? []
    : flags.principals.split(",").map((p) => p.trim());
  if (principals.some((p) => p === "")) {
    fail(`empty principal in -n ${JSON.stringify(flags.principals)}`);
  }
  let serial = 0n;
  if (flags.serial !== undefined) {
    if (
      !/^\d{1,20}$/.test(flags.serial) || BigInt(flags.serial) > CERT_FOREVER
    ) {
      fail(`invalid serial number ${JSON.stringify(flags.serial)}`);
    }
    serial = BigInt(flags.serial);
  }
  const now = BigInt(Math.floor(Date.now() / 1000));
  const { validAfter, validBefore } = flags.validity === undefined
    ? { validAfter: 0n, validBefore: CERT_FOREVER }
    : parseValidity(flags.validity, now);
  const { critical, extensions } = parseCertOptions(flags.options, type);
  const ca = await loadCa(flags.ca);
  for (const file of flags.files) {
    let key: PublicKey;
    let comment: string;
    try {
      const entries = parseAuthorizedKeys(await Deno.readTextFile(file));
      if (entries.length !== 1) {
        fail(`${file}: expected one public key, found ${entries.length}`);
      }
      key = entries[0].key;
      comment = entries[0].comment;
    } catch (e) {
      if (e instanceof UsageError) throw e;
      if (e instanceof Deno.errors.NotFound) {
        fail(`${file}: No such file or directory`);
      }
      fail(`${file}: not a public key file: ${(e as Error).message}`);
    }
    const cert = signCertificate(ca, key, {
      type,
      keyId: flags.keyId,
      principals,
      serial,
      validAfter,
      validBefore,
      criticalOptions: critical,
      extensions,
      comment,
    });
    const out = certificatePath(file);
    await Deno.writeTextFile(out, cert.toString() + "\n", { mode: 0o644 });
    if (!flags.quiet) {
      log(
        `Signed ${type} key ${out}: id ${
          JSON.stringify(flags.keyId)
        } serial ${serial}${
          principals.length > 0 ? ` for ${principals.join(",")}` : ""
        } ${validityText(cert)}`,
      );
    }
  }
  return 0;
}

/** "valid forever", "valid from X to Y", ... as ssh-keygen -s logs it. */
function validityText(cert: Certificate): string {
  const v = validity(cert);
  return v === "forever" ? "valid forever" : `valid ${v}`;
}

function validity(cert: Certificate): string {
  const { validAfter: a, validBefore: b } = cert;
  if (a === 0n && b === CERT_FOREVER) return "forever";
  if (a === 0n) return `before ${formatCertTime(b)}`;
  if (b === CERT_FOREVER) return `after ${formatCertTime(a)}`;
  return `from ${formatCertTime(a)} to ${formatCertTime(b)}`;
}

const FLAG_EXTENSIONS = new Set([
  ...DEFAULT_USER_EXTENSIONS,
  "no-touch-required",
]);

function hex(text: string): string {
  // The option's data field as ssh-keygen dumps it: string(value).
  const bytes = new TextEncoder().encode(text);
  const all = new Uint8Array(4 + bytes.length);
  new DataView(all.buffer).setUint32(0, bytes.length);
  all.set(bytes, 4);
  return [...all].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function showOptions(
  options: ReadonlyMap<string, string>,
  critical: boolean,
): string {
  if (options.size === 0) return " (none)\n";
  let out = " \n";
  for (const [name, value] of options) {
    out += `                ${name}`;
    if (!critical && FLAG_EXTENSIONS.has(name) && value === "") {
      out += "\n";
    } else if (
      critical && (name === "force-command" || name === "source-address")
    ) {
      out += ` ${value}\n`;
    } else if (critical && name === "verify-required" && value === "") {
      out += "\n";
    } else if (value !== "") {
      const h = hex(value);
      out += ` UNKNOWN OPTION: ${h} (len ${h.length / 2})\n`;
    } else {
      out += " UNKNOWN FLAG OPTION\n";
    }
  }
  return out;
}

/** The `ssh-keygen -L` description of a certificate. */
export function describeCertificate(path: string, cert: Certificate): string {
  const pad = "        ";
  let out = `${path}:\n`;
  out += `${pad}Type: ${cert.type} ${cert.certType} certificate\n`;
  out += `${pad}Public key: ${
    keyTypeLabel(cert.key.type)
  }-CERT ${cert.key.fingerprint()}\n`;
  out += `${pad}Signing CA: ${
    keyTypeLabel(cert.signatureKey.type)
  } ${cert.signatureKey.fingerprint()} (using ${cert.signatureAlgorithm})\n`;
  out += `${pad}Key ID: ${JSON.stringify(cert.keyId)}\n`;
  out += `${pad}Serial: ${cert.serial}\n`;
  out += `${pad}Valid: ${validity(cert)}\n`;
  out += `${pad}Principals: `;
  if (cert.principals.length === 0) out += "(none)\n";
  else {
    out += "\n";
    for (const p of cert.principals) out += `${pad}${pad}${p}\n`;
  }
  out += `${pad}Critical Options:${showOptions(cert.criticalOptions, true)}`;
  out += `${pad}Extensions:${showOptions(cert.extensions, false)}`;
  return out;
}

/** `fynx keygen -L -f file`: prints each certificate in the file. */
export async function showMode(
  file: string | undefined,
  write: (text: string) => void,
): Promise<number> {
  if (!file) fail("-L needs -f file");
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      fail(`${file}: No such file or directory`);
    }
    fail(`${file}: ${(e as Error).message}`);
  }
  const lines = text.split("\n").filter((l) =>
    l.trim() !== "" && !l.trimStart().startsWith("#")
  );
  if (lines.length === 0) fail(`${file} is not a certificate`);
  for (const line of lines) {
    let cert: Certificate;
    try {
      cert = parseCertificateText(line);
    } catch (e) {
      fail(`${file} is not a valid certificate: ${(e as Error).message}`);
    }
    write(describeCertificate(file, cert));
  }
  return 0;
}
