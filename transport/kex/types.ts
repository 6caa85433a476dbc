/**
 * The contract between the key-exchange state machine and each KEX method.
 *
 * Every method we support uses messages 30 (client's public value) and 31
 * (server's reply). The exchange hash is
 * `HASH(V_C || V_S || I_C || I_S || K_S || Q_C || Q_S || K)` where Q_C, Q_S
 * and K are the wire encodings returned here (string or mpint, with length
 * prefix), so the state machine needs no per-method knowledge.
 *
 * @module
 */
import type { SshReader } from "../../wire/reader.ts";

/** Hash names as `node:crypto` spells them. */
export type HashName = "sha256" | "sha384" | "sha512";

/** The client side of one exchange. */
export interface KexClient {
  /** Q_C or e, wire-encoded (with length prefix), sent in message 30. */
  readonly publicEncoded: Uint8Array;
  /**
   * Reads Q_S or f from the reply (the reader is positioned at that field;
   * read exactly that field), validates it and computes K.
   */
  finish(reply: SshReader): KexResult;
}

/** What an exchange produced. */
export interface KexResult {
  /** The peer's public value exactly as encoded on the wire. */
  readonly peerEncoded: Uint8Array;
  /** K, encoded as it enters the exchange hash and key derivation. */
  readonly sharedSecret: Uint8Array;
}

/** The server side: answers a client's public value. */
export interface KexServerResult extends KexResult {
  /** Q_S or f, wire-encoded (with length prefix), sent in message 31. */
  readonly publicEncoded: Uint8Array;
}

/** One key-exchange method (e.g. `curve25519-sha256`). */
export interface KexMethod {
  /** Negotiated name. */
  readonly name: string;
  /** Hash for H and key derivation. */
  readonly hash: HashName;
  /** Starts the client side (generates an ephemeral key). */
  client(): KexClient;
  /** Runs the server side against the client's message 30 (reader at Q_C/e). */
  server(init: SshReader): KexServerResult;
}
