/**
 * The `known_hosts` glue of `fynx ssh`: file reading and appending around
 * the library's {@linkcode KnownHosts} (keys/known_hosts.ts), with the
 * name-based helpers the CLI uses (`host` or `[host]:port`).
 *
 * @module
 */
import {
  type AddKnownHostOptions,
  formatHostPort,
  KnownHosts,
} from "../keys/known_hosts.ts";
import { encodeBase64 } from "../keys/_util.ts";

/** The parts of a host key that known_hosts records. */
export interface HostKeyLike {
  /** Key type, e.g. `ssh-ed25519`. */
  readonly type: string;
  /** Public key blob. */
  readonly blob: Uint8Array;
}

/** Outcome of checking a host key against known_hosts text. */
export interface KnownHostResult {
  /**
   * `ok`: a matching entry; `unknown`: no entry for this host; `changed`: the
   * host has entries but none with this key (another type counts too);
   * `revoked`: the key is marked `@revoked`.
   */
  status: "ok" | "unknown" | "changed" | "revoked";
  /** 1-based line of the entry that decided (`ok`, `revoked`, offending one). */
  line?: number;
  /** Key types on record for this host. */
  knownTypes: string[];
}

/** The name known_hosts uses for a host: `host`, or `[host]:port` off port 22. */
export function knownHostName(host: string, port: number): string {
  return formatHostPort(host, port);
}

/** Splits a {@linkcode knownHostName} back into host and port. */
function splitName(name: string): [string, number] {
  const m = /^\[(.*)\]:(\d+)$/.exec(name);
  return m === null ? [name, 22] : [m[1], Number(m[2])];
}

/** Checks `key` for host `name` (see {@linkcode knownHostName}) against known_hosts `text`. */
export function checkKnownHost(
  text: string,
  name: string,
  key: HostKeyLike,
): KnownHostResult {
  const [host, port] = splitName(name);
  const r = KnownHosts.parse(text).lookup(host, port, key);
  if (r.status === "revoked") {
    return { status: "revoked", line: r.line, knownTypes: [] };
  }
  const knownTypes = [
    ...new Set(
      r.matches.filter((e) => e.marker === null).map((e) => e.keyType),
    ),
  ];
  return {
    status: r.status === "known" ? "ok" : r.status,
    line: r.line,
    knownTypes,
  };
}

/** Key types on record for host `name` (to prefer them in negotiation, as OpenSSH does). */
export function knownKeyTypes(text: string, name: string): string[] {
  const [host, port] = splitName(name);
  const types = KnownHosts.parse(text).find(host, port)
    .filter((e) => e.marker === null).map((e) => e.keyType);
  return [...new Set(types)];
}

/** The known_hosts line for `key` at host `name` (plain, not hashed). */
export function formatKnownHost(name: string, key: HostKeyLike): string {
  return `${name} ${key.type} ${encodeBase64(key.blob)}`;
}

/** Reads a known_hosts file; a missing file reads as empty. */
export async function readKnownHosts(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return "";
    throw e;
  }
}

/**
 * Appends an entry for `key` at host `name`, creating the file (mode 0600)
 * and its directory (mode 0700) if needed; `options.hash` writes the name
 * hashed, as `HashKnownHosts yes` does. `/dev/null` (ssh's way to remember
 * nothing) is left alone: Deno only lets `--allow-all` write to a device.
 */
export async function addKnownHost(
  path: string,
  name: string,
  key: HostKeyLike,
  options: AddKnownHostOptions = {},
): Promise<void> {
  const [host, port] = splitName(name);
  const line = KnownHosts.parse("").add(host, port, key, options);
  if (path === "/dev/null") return;
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
  if (dir) await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const existing = await readKnownHosts(path);
  const sep = existing === "" || existing.endsWith("\n") ? "" : "\n";
  await Deno.writeTextFile(path, `${sep}${line}\n`, {
    append: true,
    mode: 0o600,
  });
}
