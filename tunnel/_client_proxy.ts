/**
 * Which HTTP proxy a tunnel URL goes through: `HTTPS_PROXY` /
 * `https_proxy` for `wss:`, `HTTP_PROXY` / `http_proxy` for `ws:`, and
 * `NO_PROXY` / `no_proxy` exceptions, as curl and most tools read them.
 *
 * @module
 */

/** A proxy URL, or null to connect directly. */
export type ProxyChoice = URL | null;

/**
 * Parses a proxy URL (`http://user:pass@host:port`; a bare `host:port`
 * means `http://`). Only plain-HTTP proxies are supported: CONNECT goes in
 * clear text to the proxy, the tunnel's own TLS runs inside it.
 */
export function parseProxyUrl(text: string): URL {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text)
    ? text
    : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new TypeError(`Invalid proxy URL: ${JSON.stringify(text)}`);
  }
  if (url.protocol !== "http:") {
    throw new TypeError(
      `Invalid proxy URL ${url.protocol}//${url.host}: only http:// proxies are supported`,
    );
  }
  if (url.hostname === "") {
    throw new TypeError(`Invalid proxy URL: ${JSON.stringify(text)}: no host`);
  }
  return url;
}

/**
 * Whether `NO_PROXY` exempts `host` (and `port`): `*` exempts everything;
 * each comma-separated entry matches the host itself and, for names, its
 * subdomains (`example.com` and `.example.com` both match
 * `api.example.com`); an entry with `:port` matches that port only.
 */
export function noProxyMatches(
  noProxy: string,
  host: string,
  port: number,
): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "");
  for (const raw of noProxy.split(/[,\s]+/)) {
    let entry = raw.trim().toLowerCase();
    if (entry === "") continue;
    if (entry === "*") return true;
    let entryPort: number | null = null;
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (m !== null) {
      entry = m[1];
      entryPort = Number(m[2]);
    }
    entry = entry.replace(/^\[(.*)\]$/, "$1").replace(/^\*?\./, "")
      .replace(/\.$/, "");
    if (entryPort !== null && entryPort !== port) continue;
    if (h === entry || h.endsWith(`.${entry}`)) return true;
  }
  return false;
}

/** The proxy for `url` from environment variables `env`, or null. */
export function proxyFor(url: URL, env: Record<string, string>): ProxyChoice {
  const secure = url.protocol === "wss:" || url.protocol === "https:";
  const value = secure
    ? env.HTTPS_PROXY ?? env.https_proxy
    : env.HTTP_PROXY ?? env.http_proxy;
  if (value === undefined || value.trim() === "") return null;
  const noProxy = env.NO_PROXY ?? env.no_proxy ?? "";
  const port = url.port !== "" ? Number(url.port) : secure ? 443 : 80;
  if (noProxyMatches(noProxy, url.hostname, port)) return null;
  return parseProxyUrl(value.trim());
}
