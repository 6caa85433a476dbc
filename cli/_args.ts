/**
 * Argument helpers shared by the `fynx` commands: OpenSSH-style splitting at
 * the first positional argument, a usage error type carrying the exit code,
 * and small value parsers.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** A command-line mistake: printed as one line on stderr, then exit `code`. */
export class UsageError extends Error {
  /** Process exit status to use. */
  readonly code: number;
  /** Creates the error. */
  constructor(message: string, code = 1) {
    super(message);
    this.name = "UsageError";
    this.code = code;
  }
}

/** Option table in `node:util` `parseArgs` form. */
export type OptionTable = NonNullable<ParseArgsConfig["options"]>;

/**
 * Splits `argv` where the first positional argument starts, the way
 * OpenSSH's getopt does: everything after it (including words that look like
 * flags, e.g. `ls -la`) belongs to the positionals. Short options in
 * `table` that take a value consume the next word unless the value is
 * attached (`-p2222`). A literal `--` ends the options and is dropped.
 */
export function splitAtFirstPositional(
  argv: readonly string[],
  table: OptionTable,
): { options: string[]; positionals: string[] } {
  const takesValue = new Set<string>();
  for (const [long, spec] of Object.entries(table)) {
    if (spec.type !== "string") continue;
    takesValue.add(`--${long}`);
    if (spec.short) takesValue.add(spec.short);
  }
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i];
    if (arg === "--") {
      return { options: argv.slice(0, i), positionals: argv.slice(i + 1) };
    }
    if (!arg.startsWith("-") || arg === "-") break;
    if (arg.startsWith("--")) {
      i += !arg.includes("=") && takesValue.has(arg) ? 2 : 1;
      continue;
    }
    // A group of short flags: the first one taking a value ends the group,
    // and takes the next word when nothing follows it in this one.
    let consumedNext = false;
    for (let j = 1; j < arg.length; j++) {
      if (takesValue.has(arg[j])) {
        consumedNext = j === arg.length - 1;
        break;
      }
    }
    i += consumedNext ? 2 : 1;
  }
  return {
    options: argv.slice(0, Math.min(i, argv.length)),
    positionals: argv.slice(i),
  };
}

/**
 * Parses `args` strictly against `table`; any mistake becomes a
 * {@linkcode UsageError} with `code` and a one-line message.
 */
export function parseFlags(
  command: string,
  args: string[],
  table: OptionTable,
  code: number,
  allowPositionals = false,
): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: attachDashValues(args, table),
      options: table,
      allowPositionals,
      strict: true,
    });
    return { values: values as Record<string, unknown>, positionals };
  } catch (e) {
    throw new UsageError(
      `${command}: ${cleanParseError(e)} (see '${command} --help')`,
      code,
    );
  }
}

/**
 * getopt(3) takes the word after an option that needs a value as that value
 * even when it starts with `-` (`ssh-keygen -V -1d:+52w`); parseArgs calls
 * that ambiguous. Joining such pairs (`-V-1d:+52w`) gives getopt's reading.
 */
function attachDashValues(args: string[], table: OptionTable): string[] {
  const takesValue = new Set(
    Object.values(table).filter((o) => o.type === "string" && o.short)
      .map((o) => o.short),
  );
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      out.push(...args.slice(i));
      break;
    }
    const next = args[i + 1];
    if (
      /^-[A-Za-z0-9]$/.test(arg) && takesValue.has(arg[1]) &&
      next !== undefined && next.startsWith("-") && next !== "--"
    ) {
      out.push(arg + next);
      i++;
      continue;
    }
    out.push(arg);
  }
  return out;
}

/** Shortens node's parseArgs messages to what a user needs. */
function cleanParseError(e: unknown): string {
  const message = (e as Error)?.message ?? String(e);
  const unknown = message.match(/^Unknown option '([^']+)'/);
  if (unknown) return `unknown option '${unknown[1]}'`;
  const missing = message.match(
    /^Option '(?:-(\w), )?(--[\w-]+) <value>' argument missing/,
  );
  if (missing) {
    return `option '${
      missing[1] ? "-" + missing[1] : missing[2]
    }' needs a value`;
  }
  const positional = message.match(/^Unexpected argument '([^']+)'/);
  if (positional) return `unexpected argument '${positional[1]}'`;
  return message.split("\n")[0].replace(/\. To specify .*$/, "");
}

/** Values given for a `multiple` string option, or none. */
export function stringList(value: unknown): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value.map(String) : [String(value)];
}

/** How many times a `multiple` boolean flag was given. */
export function flagCount(value: unknown): number {
  if (value === undefined || value === false) return 0;
  return Array.isArray(value) ? value.length : 1;
}

/** Parses a TCP port (1..65535, or 0 when `allowZero`). */
export function parsePort(
  text: string,
  what: string,
  allowZero = false,
): number {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(n <= 65535 && (n >= 1 || (allowZero && n === 0)))) {
    throw new TypeError(`Bad ${what} '${text}'`);
  }
  return n;
}

/** Parses a non-negative integer. */
export function parseCount(text: string, what: string, min = 0): number {
  const n = /^\d{1,9}$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!(n >= min)) throw new TypeError(`Bad ${what} '${text}'`);
  return n;
}

/**
 * Parses an sshd_config(5) time value: seconds, or a sum of numbers with
 * `s`, `m`, `h`, `d`, `w` suffixes (`1h30m`). Returns seconds.
 */
export function parseSeconds(text: string, what: string): number {
  const t = text.trim().toLowerCase();
  if (/^\d{1,9}$/.test(t)) return Number(t);
  const units: Record<string, number> = {
    s: 1,
    m: 60,
    h: 3600,
    d: 86400,
    w: 604800,
  };
  if (!/^(\d{1,9}[smhdw])+$/.test(t)) {
    throw new TypeError(`Bad ${what} '${text}'`);
  }
  let total = 0;
  for (const [, n, u] of t.matchAll(/(\d+)([smhdw])/g)) {
    total += Number(n) * units[u];
  }
  return total;
}

/** Parses `yes`/`no` (and `true`/`false`, `on`/`off`), case-insensitively. */
export function parseYesNo(text: string, what: string): boolean {
  const t = text.trim().toLowerCase();
  if (t === "yes" || t === "true" || t === "on") return true;
  if (t === "no" || t === "false" || t === "off") return false;
  throw new TypeError(`Bad ${what} value '${text}' (expected yes or no)`);
}

/** Expands a leading `~` to the home directory. */
export function expandHome(path: string): string {
  if (path === "~" || path.startsWith("~/")) return homeDir() + path.slice(1);
  return path;
}

/** The home directory, from `$HOME` (or `/` when unset). */
export function homeDir(): string {
  return Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE") ?? "/";
}

/**
 * The local user name: `$USER`, `$LOGNAME`, else the `/etc/passwd` entry of
 * our uid (what `whoami` prints), else "root" for uid 0.
 */
export function localUserName(): string {
  const fromEnv = Deno.env.get("USER") || Deno.env.get("LOGNAME");
  if (fromEnv) return fromEnv;
  let uid: number | null = null;
  try {
    uid = Deno.uid();
  } catch {
    // No sys permission or not POSIX.
  }
  if (uid !== null) {
    try {
      for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
        const f = line.split(":");
        if (f.length > 2 && Number(f[2]) === uid && f[0]) return f[0];
      }
    } catch {
      // Unreadable: fall through.
    }
    if (uid === 0) return "root";
  }
  throw new UsageError(
    "fynx: cannot determine the local user name; set $USER or use -l",
    255,
  );
}

/** An ISO 8601 UTC timestamp without milliseconds, for log lines. */
export function timestamp(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A key type as OpenSSH labels it in messages (ED25519, ECDSA, RSA). */
export function keyTypeLabel(type: string): string {
  if (type === "ssh-ed25519") return "ED25519";
  if (type.startsWith("ecdsa-")) return "ECDSA";
  if (type === "ssh-rsa") return "RSA";
  return type.toUpperCase();
}
