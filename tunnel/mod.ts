/**
 * The tunnel server: SSH over WebSocket with remote forwards served as
 * public HTTP routes, a byte relay for OpenSSH's `ProxyCommand`, limits,
 * state on Deno KV, metrics and a status page. Run it with
 * `deno task serve`, or deploy `tunnel/deploy.ts` to Deno Deploy.
 *
 * - {@linkcode createTunnelApp}: the Hono app and its lifecycle.
 * - {@linkcode TunnelStore}: routes, connections, rate limits and audit
 *   events on Deno KV.
 * - {@linkcode JwtVerifier} / {@linkcode signJwt}: bearer tokens.
 * - {@linkcode webSocketDuplex}: a WebSocket as an SSH byte stream.
 *
 * @example Start a server on a loopback port
 * ```ts
 * import { createTunnelApp, TunnelStore } from "@fynx/ssh/tunnel";
 *
 * const tunnel = await createTunnelApp({
 *   auth: { secret: "a development secret of 32 bytes!" },
 *   store: await TunnelStore.open(":memory:"),
 *   log: () => {},
 * });
 * const server = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   tunnel.fetch,
 * );
 * console.log(`ws://127.0.0.1:${server.addr.port}/v1/ssh`);
 * await tunnel.shutdown({ deadline: 100 });
 * await tunnel.store.close();
 * await server.shutdown();
 * ```
 *
 * @module
 */
export {
  createTunnelApp,
  type HttpApp,
  NAME_PATTERN,
  type TunnelApp,
} from "./app.ts";
export type {
  LogEvent,
  RateLimit,
  ServerStatus,
  TunnelConfig,
  TunnelLimits,
  TunnelStatus,
} from "./types.ts";
export {
  type AuditEvent,
  type ClaimResult,
  type RouteRecord,
  TunnelStore,
} from "./store.ts";
export {
  base64url,
  type JwtClaims,
  type JwtConfig,
  JwtError,
  JwtVerifier,
  signJwt,
} from "./jwt.ts";
export {
  type WebSocketDuplex,
  webSocketDuplex,
  type WebSocketDuplexOptions,
} from "./ws_duplex.ts";
export { Metrics } from "./_metrics.ts";
export type { Duplex } from "../transport/duplex.ts";
export type { KeyType, PrivateKey, PublicKey } from "../keys/types.ts";
