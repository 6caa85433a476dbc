/**
 * sshd's forwarding permission lists, as OpenSSH reads and matches them:
 * `PermitOpen` / `permitopen="host:port"` (channels.c `open_match()`:
 * exact host, `*` for any host or port) and `PermitListen` /
 * `permitlisten="[host:]port"` (`remote_open_match()`: a bare port means
 * any host, the host is a case-insensitive `*`/`?` pattern).
 *
 * @module
 */

/** One `host:port` permission; `"*"` matches any host or port. */
export interface Permission {
  /** Host (IPv6 without brackets), or `*`. */
  host: string;
  /** Port 1..65535, or `*`. */
  port: number | "*";
}

/**
 * A parsed permission list: `null` permits everything (`any`, or no list),
 * an empty array nothing (`none`).
 */
export type PermissionList = Permission[] | null;

/**
 * Splits `host:port` the way OpenSSH's `hpdelim()` does: `[v6addr]:port`,
 * or `host:port` at the first colon (a `/` also separates).
 */
function splitHostPort(text: string): [string, string] | null {
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    if (end < 0) return null;
    const sep = text[end + 1];
    if (sep !== ":" && sep !== "/") return null;
    return [text.slice(1, end), text.slice(end + 2)];
  }
  const i = text.search(/[:/]/);
  if (i < 0) return null;
  return [text.slice(0, i), text.slice(i + 1)];
}

function parsePort(text: string, entry: string, what: string): number | "*" {
  if (text === "*") return "*";
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new SyntaxError(
      `Bad ${what} entry ${JSON.stringify(entry)}: invalid port`,
    );
  }
  return Number(text);
}

/**
 * Parses one `permitopen` / `PermitOpen` entry (`host:port`, `[v6]:port`,
 * `*` for either part).
 *
 * @throws {SyntaxError} naming the entry.
 */
export function parsePermitOpen(text: string, what = "permitopen"): Permission {
  const parts = splitHostPort(text);
  if (parts === null || parts[0] === "" || parts[0].length > 1024) {
    throw new SyntaxError(
      `Bad ${what} entry ${JSON.stringify(text)}: expected host:port`,
    );
  }
  return { host: parts[0], port: parsePort(parts[1], text, what) };
}

/**
 * Parses one `permitlisten` / `PermitListen` entry: `[host:]port`, where a
 * bare port means any listen host.
 *
 * @throws {SyntaxError} naming the entry.
 */
export function parsePermitListen(
  text: string,
  what = "permitlisten",
): Permission {
  return parsePermitOpen(text.includes(":") ? text : `*:${text}`, what);
}

/**
 * Parses an sshd_config list (`PermitOpen`, `PermitListen`): `any` (or no
 * entries) permits all, `none` nothing, otherwise the entries.
 */
export function parsePermissionList(
  entries: readonly string[] | undefined,
  listen: boolean,
  what: string,
): PermissionList {
  if (entries === undefined || entries.length === 0) return null;
  if (entries.length === 1 && entries[0] === "any") return null;
  if (entries.length === 1 && entries[0] === "none") return [];
  return entries.map((e) => {
    if (e === "any" || e === "none") {
      throw new SyntaxError(`${what} ${e} must appear alone`);
    }
    return listen ? parsePermitListen(e, what) : parsePermitOpen(e, what);
  });
}

/**
 * Whether a local-forwarding destination is permitted (OpenSSH
 * `open_match()`): exact host (case-sensitive, no name lookup) or `*`, and
 * the port or `*`. A Unix socket path matches only entries whose port is
 * `*` and whose host is the path or `*`.
 */
export function openPermitted(
  list: PermissionList,
  host: string,
  port: number | "path",
): boolean {
  if (list === null) return true;
  return list.some((p) =>
    (p.port === "*" || p.port === port) && (p.host === "*" || p.host === host)
  );
}

/** `*` and `?` wildcard match of the whole text (OpenSSH `match_pattern`). */
export function matchPattern(text: string, pattern: string): boolean {
  // Iterative glob with backtracking to the last `*`.
  let t = 0;
  let p = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === "?" || pattern[p] === text[t])) {
      t++;
      p++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      mark = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === "*") p++;
  return p === pattern.length;
}

/**
 * Whether a remote-forwarding listen address is permitted (OpenSSH
 * `remote_open_match()`): the requested host, lower-cased, matches the
 * entry's pattern and the port matches (or the entry has `*`). A Unix
 * socket listener is permitted by any entry, as sshd does.
 */
export function listenPermitted(
  list: PermissionList,
  host: string,
  port: number | "path",
): boolean {
  if (list === null) return true;
  if (port === "path") return list.length > 0;
  const lower = host.toLowerCase();
  return list.some((p) =>
    (p.port === "*" || p.port === port) &&
    matchPattern(lower, p.host.toLowerCase())
  );
}
