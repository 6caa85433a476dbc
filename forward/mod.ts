/**
 * Port forwarding, both sides (RFC 4254 section 7, OpenSSH PROTOCOL
 * section 2.4 for Unix sockets).
 *
 * Client:
 * - {@linkcode openDirect}: one channel to a TCP endpoint or Unix socket
 *   the server reaches (`direct-tcpip`, `direct-streamlocal@openssh.com`).
 * - {@linkcode forwardLocal} (`ssh -L`), {@linkcode forwardRemote}
 *   (`ssh -R`, port 0 included), {@linkcode serveSocks} (`ssh -D`, SOCKS4,
 *   4a and 5), and {@linkcode listenRemote} for handling the server's
 *   forwarded channels yourself.
 *
 * Server: {@linkcode serverForwarding} gives `serve()` the handlers, with
 * sshd's `AllowTcpForwarding`, `AllowStreamLocalForwarding`,
 * `GatewayPorts`, `PermitOpen` and `PermitListen`, the `authorized_keys`
 * restrictions of each login, a policy hook and limits.
 *
 * Every forwarded connection is a channel piped to a socket with
 * {@linkcode pipeChannel}: backpressure from the SSH window, half-close
 * both ways, and every socket closed when its forward or the connection
 * ends.
 *
 * @example Local and remote forwarding between our client and server
 * ```ts
 * import { connect, generatePrivateKey, memoryDuplexPair } from "@fynx/ssh";
 * import { acceptConnection } from "@fynx/ssh/server";
 * import {
 *   forwardLocal,
 *   forwardRemote,
 *   serverForwarding,
 * } from "@fynx/ssh/forward";
 * import assert from "node:assert/strict";
 *
 * // A TCP service that says hello.
 * const service = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const serving = (async () => {
 *   for await (const conn of service) {
 *     await conn.write(new TextEncoder().encode("hello"));
 *     conn.close();
 *   }
 * })();
 * const servicePort = (service.addr as Deno.NetAddr).port;
 *
 * const hostKey = generatePrivateKey("ed25519");
 * const [a, b] = memoryDuplexPair();
 * const server = await acceptConnection(b, {
 *   hostKeys: [hostKey],
 *   password: ({ password }) => password === "secret",
 *   ...serverForwarding(),
 * });
 * const client = await connect({
 *   transport: a,
 *   username: "me",
 *   password: "secret",
 *   verifyHostKey: (key) =>
 *     key.fingerprint() === hostKey.publicKey.fingerprint(),
 * });
 *
 * const read = async (port: number) => {
 *   const conn = await Deno.connect({ hostname: "127.0.0.1", port });
 *   return await new Response(conn.readable).text();
 * };
 *
 * // -L: a local port that reaches the service through the server.
 * const local = await forwardLocal(client, {
 *   listen: { hostname: "127.0.0.1", port: 0 },
 *   target: { hostname: "127.0.0.1", port: servicePort },
 * });
 * assert.equal(await read((local.addr as Deno.NetAddr).port), "hello");
 *
 * // -R: a port on the server that reaches the service from here.
 * const remote = await forwardRemote(client, {
 *   bind: { hostname: "127.0.0.1", port: 0 },
 *   target: { hostname: "127.0.0.1", port: servicePort },
 * });
 * assert.equal(await read(remote.port), "hello");
 *
 * await local.close();
 * await remote.close();
 * await client.close();
 * await server.closed;
 * service.close();
 * await serving;
 * ```
 *
 * @module
 */
export type { ByteChannel, IncomingChannel } from "../connection/channel.ts";
export {
  type ForwardedConnectionInfo,
  type ForwardingConnection,
  forwardLocal,
  type ForwardLocalOptions,
  forwardRemote,
  type ForwardRemoteOptions,
  type ForwardTarget,
  listenRemote,
  type ListenRemoteOptions,
  type LocalForward,
  openDirect,
  type RemoteBind,
  type RemoteListener,
  type TcpAddress,
  type UnixAddress,
} from "./client.ts";
export { pipeChannel, type PipeChannelOptions } from "./pipe.ts";
export { serveSocks, type SocksOptions } from "./socks.ts";
export {
  type ForwardingMode,
  type ForwardPolicy,
  type ForwardRequest,
  type GatewayPorts,
  type ServerForwarding,
  serverForwarding,
  type ServerForwardingOptions,
} from "./server.ts";
