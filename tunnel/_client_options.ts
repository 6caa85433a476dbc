/**
 * Option checking for the tunnel client: exposed names and their local
 * targets, the SSH user name from the token, backoff arithmetic.
 *
 * @module
 */

/** A name the server routes (`[a-z0-9][a-z0-9-]{0,62}`, contract). */
export const NAME_PATTERN: RegExp = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** A local TCP target. */
export interface LocalTarget {
  /** Host name or address. */
  hostname: string;
  /** Port. */
  port: number;
}

/**
 * Parses a local target: `http://host:port`, `host:port` or a bare port
 * (loopback). The client pipes bytes and does not speak TLS to the local
 * service, so `https://` is refused.
 */
export function parseLocalTarget(text: string, name: string): LocalTarget {
  const bad = (why: string) =>
    new TypeError(
      `Invalid local target for ${name}: ${JSON.stringify(text)}: ${why}`,
    );
  if (typeof text !== "string" || text === "") throw bad("empty");
  if (/^\d+$/.test(text)) {
    const port = Number(text);
    if (port < 1 || port > 65535) throw bad("port out of range");
    return { hostname: "127.0.0.1", port };
  }
  let url: URL;
  try {
    url = new URL(
      /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `tcp://${text}`,
    );
  } catch {
    throw bad("not a URL or host:port");
  }
  if (url.protocol === "https:") {
    throw bad("https targets are not supported (the tunnel pipes plain bytes)");
  }
  if (url.protocol !== "http:" && url.protocol !== "tcp:") {
    throw bad(`unsupported scheme ${url.protocol}`);
  }
  if (url.pathname !== "" && url.pathname !== "/") {
    throw bad("a path is not supported");
  }
  const port = url.port === ""
    ? (url.protocol === "http:" ? 80 : NaN)
    : Number(url.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw bad("no port");
  }
  return { hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"), port };
}

/** Checks the expose map and parses its targets. */
export function parseExpose(
  expose: Record<string, string | LocalTarget>,
): Map<string, LocalTarget> {
  if (expose === null || typeof expose !== "object") {
    throw new TypeError("Invalid expose: expected { name: target }");
  }
  const out = new Map<string, LocalTarget>();
  for (const [name, target] of Object.entries(expose)) {
    if (!NAME_PATTERN.test(name)) {
      throw new TypeError(
        `Invalid name ${
          JSON.stringify(name)
        }: use 1-63 of a-z, 0-9 and '-', starting with a letter or digit`,
      );
    }
    if (typeof target === "string") {
      out.set(name, parseLocalTarget(target, name));
    } else if (
      target !== null && typeof target === "object" &&
      typeof target.hostname === "string" && Number.isInteger(target.port) &&
      target.port >= 1 && target.port <= 65535
    ) {
      out.set(name, { hostname: target.hostname, port: target.port });
    } else {
      throw new TypeError(`Invalid local target for ${name}`);
    }
  }
  if (out.size === 0) {
    throw new TypeError("Nothing to expose: give at least one name");
  }
  return out;
}

/**
 * The `sub` claim of a JWT, read without verifying it (the server
 * verifies; the client only needs the name it will be known by).
 */
export function tokenSubject(token: string): string | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = JSON.parse(
      new TextDecoder().decode(
        Uint8Array.from(
          atob(b64 + "=".repeat((4 - b64.length % 4) % 4)),
          (c) => c.charCodeAt(0),
        ),
      ),
    );
    return typeof json?.sub === "string" && json.sub !== ""
      ? json.sub
      : undefined;
  } catch {
    return undefined;
  }
}

/** Backoff settings (milliseconds). */
export interface BackoffOptions {
  /**
   * Upper bound of the first delay.
   * @default {1000}
   */
  initial?: number;
  /**
   * Largest delay.
   * @default {60000}
   */
  max?: number;
  /**
   * Growth per failed attempt.
   * @default {2}
   */
  multiplier?: number;
  /**
   * A connection that stayed up this long resets the backoff.
   * @default {30000}
   */
  stableAfter?: number;
}

/**
 * "Full jitter" backoff: a uniformly random delay between 0 and
 * `min(max, initial * multiplier^(attempt-1))`, so that many clients
 * dropped at once spread their reconnects instead of arriving together.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const initial = options.initial ?? 1000;
  const max = options.max ?? 60_000;
  const multiplier = options.multiplier ?? 2;
  const ceiling = Math.min(
    max,
    initial * multiplier ** Math.max(0, Math.min(attempt - 1, 64)),
  );
  return Math.floor(random() * ceiling);
}

/** Normalises a `SHA256:...` fingerprint for comparison. */
export function normalizeFingerprint(fp: string): string {
  const m = /^SHA256:([A-Za-z0-9+/]{43})=?$/.exec(fp.trim());
  if (m === null) {
    throw new TypeError(
      `Invalid host key fingerprint ${
        JSON.stringify(fp)
      }: expected SHA256: and 43 base64 characters (as ssh-keygen -l prints)`,
    );
  }
  return `SHA256:${m[1]}`;
}
