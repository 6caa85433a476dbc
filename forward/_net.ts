/**
 * Socket helpers shared by both sides of forwarding: which addresses a
 * forward listens on (OpenSSH's `channel_fwd_bind_addr()` rules), binding
 * one listener per address family on one port, connecting with a timeout,
 * and short OS error texts.
 *
 * @module
 */

/** Where a TCP forward listens, after the GatewayPorts rules. */
export type BindPlan =
  | { kind: "wildcard" }
  | { kind: "loopback" }
  | { kind: "address"; address: string };

/** The GatewayPorts values of sshd_config(5) and ssh_config(5). */
export type GatewayPorts = "no" | "yes" | "clientspecified";

/**
 * Where the client binds a `-L` / `-D` listener (OpenSSH
 * `channel_fwd_bind_addr()` with `is_client`): no address means loopback,
 * or every interface with `GatewayPorts yes`; `""` and `*` mean every
 * interface; `localhost` means loopback in both families; anything else is
 * bound as given.
 */
export function clientBindPlan(
  address: string | undefined,
  gatewayPorts: boolean,
): BindPlan {
  if (address === undefined) {
    return gatewayPorts ? { kind: "wildcard" } : { kind: "loopback" };
  }
  if (address === "" || address === "*") return { kind: "wildcard" };
  if (address === "localhost") return { kind: "loopback" };
  return { kind: "address", address };
}

/**
 * Where the server binds a `tcpip-forward` listener for the address the
 * client sent (sshd's `GatewayPorts`): `no` forces loopback, except that an
 * explicit `127.0.0.1` or `::1` picks that family; `yes` binds every
 * interface whatever was asked; `clientspecified` honours the request
 * (`""` and `*` are every interface, `localhost` is loopback).
 */
export function serverBindPlan(
  address: string,
  gatewayPorts: GatewayPorts,
): BindPlan {
  if (gatewayPorts === "yes") return { kind: "wildcard" };
  if (gatewayPorts === "clientspecified") {
    if (address === "" || address === "*") return { kind: "wildcard" };
    if (address === "localhost") return { kind: "loopback" };
    return { kind: "address", address };
  }
  if (address === "127.0.0.1" || address === "::1") {
    return { kind: "address", address };
  }
  return { kind: "loopback" };
}

/** Whether we may bind or connect `host` without a permission prompt. */
function netGranted(host: string): boolean {
  try {
    return Deno.permissions.querySync({ name: "net", host }).state ===
      "granted";
  } catch {
    return false;
  }
}

/**
 * Binds TCP listeners for `plan` on `port` (0 picks one; every family then
 * shares the port picked first, as OpenSSH does). The first address of a
 * plan must bind; the second family (`::1` after `127.0.0.1`, `::` after
 * `0.0.0.0`) is best effort: it may be missing, already covered by a
 * dual-stack socket, or not permitted.
 */
export function bindTcp(plan: BindPlan, port: number): Deno.TcpListener[] {
  const [first, ...others] = plan.kind === "wildcard"
    ? ["0.0.0.0", "::"]
    : plan.kind === "loopback"
    ? ["127.0.0.1", "::1"]
    : [plan.address.replace(/^\[(.*)\]$/, "$1")];
  const listeners = [Deno.listen({ hostname: first, port })];
  const bound = (listeners[0].addr as Deno.NetAddr).port;
  for (const hostname of others) {
    if (!netGranted(hostname.includes(":") ? `[${hostname}]` : hostname)) {
      continue;
    }
    try {
      listeners.push(Deno.listen({ hostname, port: bound }));
    } catch {
      // Best effort (see above).
    }
  }
  return listeners;
}

/** `host:port`, with brackets around IPv6 addresses. */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A socket address for messages: `host:port` or the Unix path. */
export function addrText(addr: Deno.Addr): string {
  if ("path" in addr) return addr.path ?? "(unnamed socket)";
  if ("hostname" in addr) return hostPort(addr.hostname, addr.port);
  return "(unknown address)";
}

/** An OS error's text without Deno's `(os error N)` suffix. */
export function errorText(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.replace(/\s*\(os error \d+\)$/, "");
}

/** Connects to a TCP or Unix target, failing after `timeout` ms. */
export async function connectTo(
  target: { hostname: string; port: number } | { path: string },
  timeout: number,
): Promise<Deno.Conn> {
  const connecting: Promise<Deno.Conn> = "path" in target
    ? Deno.connect({ transport: "unix", path: target.path })
    : Deno.connect({ hostname: target.hostname, port: target.port });
  if (timeout <= 0) return await connecting;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new Deno.errors.TimedOut("Connection timed out"));
    }, timeout);
  });
  // A connection that lands after the timeout is closed at once.
  connecting.then((c) => {
    if (timedOut) c.close();
  }, () => {});
  try {
    const conn = await Promise.race([connecting, expired]);
    if (conn.remoteAddr.transport === "tcp") {
      (conn as Deno.TcpConn).setNoDelay(true);
    }
    return conn;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Formats 16 bytes as an IPv6 address in RFC 5952 form (lower case, the
 * longest run of two or more zero groups as `::`).
 */
export function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${
    hex.slice(bestStart + bestLength).join(":")
  }`;
}
