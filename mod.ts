/**
 * `@fynx/ssh`: SSH client and server for Deno on Web Streams.
 *
 * An SSH session runs over any `{ readable, writable }` byte stream: a TCP
 * connection, a WebSocket, a child process's stdio, or an in-memory pair.
 * Channels are Web Streams whose backpressure follows the SSH window.
 *
 * - {@linkcode connect} (also in `@fynx/ssh/client`) opens a client
 *   connection; {@linkcode SshClient.exec} runs a command.
 * - {@linkcode serve} and {@linkcode acceptConnection} (also in
 *   `@fynx/ssh/server`) run a server.
 * - Keys: {@linkcode generatePrivateKey}, {@linkcode parsePrivateKey},
 *   {@linkcode parsePublicKeyText}, {@linkcode parseAuthorizedKeys}.
 *
 * @example Generate a host key and print its fingerprint
 * ```ts
 * import { generatePrivateKey } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const key = generatePrivateKey("ed25519");
 * assert.match(key.publicKey.fingerprint(), /^SHA256:[A-Za-z0-9+/]{43}$/);
 * ```
 *
 * @module
 */
export {
  connect,
  type ConnectOptions,
  SshClient,
  withCertificate,
} from "./client.ts";
export type {
  ClientAuthOptions,
  InteractiveChallenge,
  InteractivePrompt,
  Signer,
} from "./auth/client.ts";
export {
  acceptConnection,
  commandSessionHandler,
  type ConnectionInfo,
  serve,
  type ServeOptions,
  type ServerConnection,
  type ServerConnectionOptions,
  type ServerLogEvent,
  type SshServer,
} from "./server.ts";
export type {
  AuthContext,
  PublicKeyDecision,
  ServerAuthOptions,
  ServerAuthResult,
} from "./auth/server.ts";
export * from "./connection/mod.ts";
export {
  AuthError,
  ChannelOpenError,
  DisconnectError,
  HostKeyError,
} from "./errors.ts";
export {
  ChannelOpenFailure,
  DisconnectReason,
  Msg,
  SshReader,
  SshWriter,
} from "./wire/mod.ts";
export {
  type AlgorithmPreferences,
  applyAlgorithmSpec,
  DEFAULT_ALGORITHMS,
  SUPPORTED_ALGORITHMS,
} from "./transport/algorithms.ts";
export {
  type Duplex,
  type HostKeyVerifier,
  Transport,
  type TransportOptions,
} from "./transport/transport.ts";
export type { KexInit, Negotiated } from "./transport/algorithms.ts";
export {
  type CommandDuplex,
  commandDuplex,
  type CommandDuplexOptions,
  type MemoryDuplexOptions,
  memoryDuplexPair,
} from "./transport/duplex.ts";
export * from "./keys/mod.ts";
