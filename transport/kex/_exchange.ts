/**
 * The shape every ephemeral-key exchange in this folder shares, and the one
 * function that turns it into a {@linkcode KexMethod}.
 *
 * All methods here (RFC 8731 curve25519, RFC 5656 ECDH, RFC 8268 finite-field
 * DH) are one round trip: the client sends Q_C/e in message 30, the server
 * answers with Q_S/f in message 31, and both compute K. Only the encoding of
 * the public values and the arithmetic differ, so each method supplies a
 * {@linkcode KexScheme} and the client/server bookkeeping lives here once.
 *
 * @module
 */
import type { SshReader } from "../../wire/reader.ts";
import type {
  HashName,
  KexClient,
  KexMethod,
  KexResult,
  KexServerResult,
} from "./types.ts";

/** Who sent a public value (used to name it in error messages). */
export type Sender = "client" | "server";

/** A peer's public value, read from the wire and validated. */
export interface PeerValue<P> {
  /** The field exactly as it was on the wire, length prefix included (a copy). */
  readonly encoded: Uint8Array;
  /** The decoded value the scheme computes with. */
  readonly value: P;
}

/** One side's ephemeral key pair. */
export interface EphemeralKey<P> {
  /** Our public value, wire-encoded with its length prefix. */
  readonly publicEncoded: Uint8Array;
  /** Computes K against a validated peer value, wire-encoded as an mpint. */
  agree(peer: P): Uint8Array;
}

/** The method-specific half of an exchange. */
export interface KexScheme<P> {
  /**
   * Reads exactly one public-value field sent by `from`, bounds-checks its
   * length before reading it, and validates it (throws `RangeError` or
   * `SyntaxError`).
   */
  readPeer(reader: SshReader, from: Sender): PeerValue<P>;
  /** Generates a fresh ephemeral key pair. */
  generate(): EphemeralKey<P>;
}

/** Copies `body` behind a big-endian uint32 length, as an SSH `string`. */
export function withLength(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

/** Builds a {@linkcode KexMethod} from a scheme. */
export function schemeMethod<P>(
  name: string,
  hash: HashName,
  scheme: KexScheme<P>,
): KexMethod {
  return {
    name,
    hash,
    client(): KexClient {
      let key: EphemeralKey<P> | null = scheme.generate();
      const publicEncoded = key.publicEncoded;
      return {
        publicEncoded,
        finish(reply: SshReader): KexResult {
          if (!key) {
            throw new Error(`${name}: this key exchange has already finished`);
          }
          const peer = scheme.readPeer(reply, "server");
          const sharedSecret = key.agree(peer.value);
          // An ephemeral key is used for exactly one agreement.
          key = null;
          return { peerEncoded: peer.encoded, sharedSecret };
        },
      };
    },
    server(init: SshReader): KexServerResult {
      // Validate the client's value before spending a key generation on it:
      // finite-field groups make that work expensive (DHEat).
      const peer = scheme.readPeer(init, "client");
      const key = scheme.generate();
      return {
        publicEncoded: key.publicEncoded,
        peerEncoded: peer.encoded,
        sharedSecret: key.agree(peer.value),
      };
    },
  };
}
