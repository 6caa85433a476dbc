/**
 * `mlkem768x25519-sha256`: the ML-KEM-768 + X25519 hybrid of
 * draft-ietf-sshm-mlkem-hybrid-kex (OpenSSH 9.9+, its default from 10.0),
 * and the hybrid KEM construction it shares with
 * `sntrup761x25519-sha512` (see `./_sntrup761x25519.ts`).
 *
 * Wire format (draft section 2.1/2.2): the client's message 30 carries
 * `string C_INIT = C_PK2 || C_PK1`, the KEM public key followed by its
 * 32-byte X25519 public key; the server's message 31 carries
 * `string S_REPLY = S_CT2 || S_PK1`, the KEM ciphertext followed by its
 * X25519 public key. Both compute `K = HASH(K_PQ || K_CL)` where K_CL is the
 * raw 32-byte X25519 output, and K enters the exchange hash and the key
 * derivation as an SSH `string`, not an `mpint` (draft section 2.4).
 *
 * ML-KEM-768 backend: `@noble/post-quantum` (FIPS 203, audited pure JS).
 * Deno's Web Crypto has no ML-KEM (generateKey rejects "ML-KEM-768"), and
 * Web Crypto is asynchronous while {@linkcode KexMethod} is synchronous.
 * Measured: keygen + encapsulate + decapsulate in about 2.6 ms.
 *
 * @module
 */
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { createHash } from "node:crypto";
import type { SshReader } from "../../wire/reader.ts";
import type {
  HashName,
  KexClient,
  KexMethod,
  KexResult,
  KexServerResult,
} from "./types.ts";
import { withLength } from "./_exchange.ts";
import { x25519Key } from "./_curve25519.ts";

/** X25519 public values are 32 bytes (RFC 7748). */
const X25519_BYTES = 32;

/** A key encapsulation mechanism with fixed sizes, as the hybrids use it. */
export interface Kem {
  /** Name for error messages (`ML-KEM-768`, `sntrup761`). */
  readonly name: string;
  /** Public (encapsulation) key length in bytes. */
  readonly publicKeyBytes: number;
  /** Ciphertext length in bytes. */
  readonly cipherTextBytes: number;
  /** Makes a fresh key pair. */
  keygen(): { publicKey: Uint8Array; secretKey: Uint8Array };
  /** Encapsulates a fresh shared secret to `publicKey`. */
  encapsulate(
    publicKey: Uint8Array,
  ): { cipherText: Uint8Array; sharedSecret: Uint8Array };
  /** Recovers the shared secret (implicit rejection: never throws on a bad ciphertext). */
  decapsulate(cipherText: Uint8Array, secretKey: Uint8Array): Uint8Array;
}

/** ML-KEM-768 (FIPS 203) through `@noble/post-quantum`. */
export const ML_KEM_768: Kem = {
  name: "ML-KEM-768",
  publicKeyBytes: 1184,
  cipherTextBytes: 1088,
  keygen: () => ml_kem768.keygen(),
  // noble runs the FIPS 203 section 7.2 encapsulation-key check (every
  // coefficient < q) and throws on failure; callers map that to RangeError.
  encapsulate: (publicKey) => ml_kem768.encapsulate(publicKey),
  decapsulate: (cipherText, secretKey) =>
    ml_kem768.decapsulate(cipherText, secretKey),
};

/** Reads one `string` field of exactly `expected` bytes; RangeError otherwise. */
function readExact(
  r: SshReader,
  expected: number,
  what: string,
): { encoded: Uint8Array; body: Uint8Array } {
  // Check the declared length before reading the body.
  const len = r.uint32();
  if (len !== expected) {
    throw new RangeError(
      `Invalid ${what}: expected ${expected} bytes, got ${len}`,
    );
  }
  const encoded = withLength(r.raw(expected));
  return { encoded, body: encoded.subarray(4) };
}

/** K = HASH(K_PQ || K_CL), encoded as an SSH string (draft section 2.4). */
function combine(
  hash: HashName,
  kemSecret: Uint8Array,
  ecdhSecret: Uint8Array,
): Uint8Array {
  const digest = createHash(hash).update(kemSecret).update(ecdhSecret)
    .digest();
  const out = withLength(new Uint8Array(digest));
  kemSecret.fill(0);
  ecdhSecret.fill(0);
  return out;
}

/**
 * Builds a KEM + X25519 hybrid method: the client generates a KEM key pair
 * and an X25519 key, the server encapsulates to the KEM key and answers
 * with the ciphertext and its own X25519 key.
 */
export function hybridKemMethod(
  name: string,
  hash: HashName,
  kem: Kem,
): KexMethod {
  const initBytes = kem.publicKeyBytes + X25519_BYTES;
  const replyBytes = kem.cipherTextBytes + X25519_BYTES;
  return {
    name,
    hash,
    client(): KexClient {
      const pair = kem.keygen();
      const ecdh = x25519Key();
      const init = new Uint8Array(initBytes);
      init.set(pair.publicKey);
      init.set(ecdh.publicKey, kem.publicKeyBytes);
      let secretKey: Uint8Array | null = pair.secretKey;
      return {
        publicEncoded: withLength(init),
        finish(reply: SshReader): KexResult {
          if (!secretKey) {
            throw new Error(`${name}: this key exchange has already finished`);
          }
          const field = readExact(
            reply,
            replyBytes,
            `${name} reply from the server (${kem.name} ciphertext || X25519 key)`,
          );
          const ct = field.body.subarray(0, kem.cipherTextBytes);
          const peer = field.body.subarray(kem.cipherTextBytes);
          // X25519 first: it throws RangeError on a low-order point.
          const ecdhSecret = ecdh.agree(peer);
          const kemSecret = kem.decapsulate(ct, secretKey);
          secretKey.fill(0);
          secretKey = null;
          return {
            peerEncoded: field.encoded,
            sharedSecret: combine(hash, kemSecret, ecdhSecret),
          };
        },
      };
    },
    server(init: SshReader): KexServerResult {
      const field = readExact(
        init,
        initBytes,
        `${name} init from the client (${kem.name} public key || X25519 key)`,
      );
      const publicKey = field.body.subarray(0, kem.publicKeyBytes);
      const peer = field.body.subarray(kem.publicKeyBytes);
      const ecdh = x25519Key();
      const ecdhSecret = ecdh.agree(peer);
      let encap: { cipherText: Uint8Array; sharedSecret: Uint8Array };
      try {
        encap = kem.encapsulate(publicKey);
      } catch (e) {
        throw new RangeError(
          `Invalid ${kem.name} public key from the client: ${
            e instanceof Error ? e.message : String(e)
          }`,
        );
      }
      const reply = new Uint8Array(replyBytes);
      reply.set(encap.cipherText);
      reply.set(ecdh.publicKey, kem.cipherTextBytes);
      return {
        publicEncoded: withLength(reply),
        peerEncoded: field.encoded,
        sharedSecret: combine(hash, encap.sharedSecret, ecdhSecret),
      };
    },
  };
}

/** Builds `mlkem768x25519-sha256`. */
export function mlkem768x25519Method(): KexMethod {
  return hybridKemMethod("mlkem768x25519-sha256", "sha256", ML_KEM_768);
}
