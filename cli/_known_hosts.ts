/**
 * A minimal OpenSSH `known_hosts` reader and writer for `fynx ssh`
 * (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): plain host patterns with `*`,
 * `?` and `!` negation, `[host]:port` for non-default ports, hashed
 * `|1|salt|hash` entries (HMAC-SHA1 of the host name keyed with the salt)
 * and the `@revoked` marker. `@cert-authority` lines are skipped: we do not
 * verify host certificates yet.
 *
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";

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
  /** 1-based line of the entry that decided (`ok`, `revoked`, first `changed` one). */
  line?: number;
  /** Key types on record for this host. */
  knownTypes: string[];
}

/** The name known_hosts uses for a host: `host`, or `[host]:port` off port 22. */
export function knownHostName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

interface Entry {
  marker: string | null;
  hosts: string;
  type: string;
  blob: Uint8Array;
  line: number;
}

function parseEntries(text: string): Entry[] {
  const out: Entry[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const fields = line.split(/\s+/);
    let marker: string | null = null;
    if (fields[0].startsWith("@")) marker = fields.shift()!.toLowerCase();
    if (fields.length < 3) continue;
    let blob: Uint8Array;
    try {
      blob = Uint8Array.from(atob(fields[2]), (c) => c.charCodeAt(0));
    } catch {
      continue;
    }
    out.push({ marker, hosts: fields[0], type: fields[1], blob, line: i + 1 });
  }
  return out;
}

function globMatch(pattern: string, name: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${re}$`, "i").test(name);
}

/** Whether the hosts field of an entry names `name` (a `knownHostName`). */
export function hostsFieldMatches(field: string, name: string): boolean {
  if (field.startsWith("|1|")) {
    const [, , salt64, hash64] = field.split("|");
    try {
      const salt = Uint8Array.from(atob(salt64), (c) => c.charCodeAt(0));
      const want = Uint8Array.from(atob(hash64), (c) => c.charCodeAt(0));
      const got = createHmac("sha1", salt).update(name).digest();
      return want.length === got.length && timingSafeEqual(want, got);
    } catch {
      return false;
    }
  }
  let matched = false;
  for (const pattern of field.split(",")) {
    if (pattern.startsWith("!")) {
      if (globMatch(pattern.slice(1), name)) return false;
    } else if (globMatch(pattern, name)) {
      matched = true;
    }
  }
  return matched;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** Checks `key` for host `name` (see {@linkcode knownHostName}) against known_hosts `text`. */
export function checkKnownHost(
  text: string,
  name: string,
  key: HostKeyLike,
): KnownHostResult {
  const knownTypes = new Set<string>();
  let okLine: number | undefined;
  let changedLine: number | undefined;
  for (const e of parseEntries(text)) {
    if (e.marker === "@revoked") {
      // Revocations apply to the key whatever the host field says.
      if (sameBytes(e.blob, key.blob)) {
        return { status: "revoked", line: e.line, knownTypes: [] };
      }
      continue;
    }
    if (e.marker !== null) continue;
    if (!hostsFieldMatches(e.hosts, name)) continue;
    knownTypes.add(e.type);
    if (e.type === key.type && sameBytes(e.blob, key.blob)) okLine ??= e.line;
    else changedLine ??= e.line;
  }
  const types = [...knownTypes];
  if (okLine !== undefined) {
    return { status: "ok", line: okLine, knownTypes: types };
  }
  if (changedLine !== undefined) {
    return { status: "changed", line: changedLine, knownTypes: types };
  }
  return { status: "unknown", knownTypes: types };
}

/** Key types on record for host `name` (to prefer them in negotiation, as OpenSSH does). */
export function knownKeyTypes(text: string, name: string): string[] {
  const types = new Set<string>();
  for (const e of parseEntries(text)) {
    if (e.marker === null && hostsFieldMatches(e.hosts, name)) {
      types.add(e.type);
    }
  }
  return [...types];
}

/** The known_hosts line for `key` at host `name` (plain, not hashed). */
export function formatKnownHost(name: string, key: HostKeyLike): string {
  let bin = "";
  for (const b of key.blob) bin += String.fromCharCode(b);
  return `${name} ${key.type} ${btoa(bin)}`;
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
 * and its directory (mode 0700) if needed.
 */
export async function addKnownHost(
  path: string,
  name: string,
  key: HostKeyLike,
): Promise<void> {
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
  if (dir) await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const existing = await readKnownHosts(path);
  const sep = existing === "" || existing.endsWith("\n") ? "" : "\n";
  await Deno.writeTextFile(path, `${sep}${formatKnownHost(name, key)}\n`, {
    append: true,
    mode: 0o600,
  });
}
