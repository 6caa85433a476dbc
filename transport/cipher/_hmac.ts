/**
 * HMAC-SHA2 MACs for SSH packets: `hmac-sha2-256` and `hmac-sha2-512`
 * (RFC 6668) and their encrypt-then-MAC forms `hmac-sha2-256-etm@openssh.com`
 * and `hmac-sha2-512-etm@openssh.com` (OpenSSH PROTOCOL section 1.7).
 *
 * The MAC input is `uint32 sequence_number || packet` (RFC 4253 section
 * 6.4), where `packet` is the whole plaintext packet for the classic MACs
 * and `packet_length || ciphertext` for EtM. node:crypto HMAC is native.
 *
 * @module
 */
import { createHmac } from "node:crypto";
import { writeUint32 } from "./_common.ts";

/** One MAC algorithm. */
export interface HmacAlgorithm {
  /** SSH name. */
  readonly name: string;
  /** node:crypto hash name. */
  readonly hash: "sha256" | "sha512";
  /** Key bytes (RFC 6668: the hash output size). */
  readonly keyLength: number;
  /** MAC bytes on the wire (not truncated). */
  readonly length: number;
  /** Encrypt-then-MAC. */
  readonly etm: boolean;
}

/** The MACs we implement, by SSH name. */
export const HMACS: ReadonlyMap<string, HmacAlgorithm> = new Map(
  [
    ["hmac-sha2-256-etm@openssh.com", "sha256", 32, true],
    ["hmac-sha2-512-etm@openssh.com", "sha512", 64, true],
    ["hmac-sha2-256", "sha256", 32, false],
    ["hmac-sha2-512", "sha512", 64, false],
  ].map(([name, hash, length, etm]) => [
    name as string,
    {
      name: name as string,
      hash: hash as "sha256" | "sha512",
      keyLength: length as number,
      length: length as number,
      etm: etm as boolean,
    },
  ]),
);

/**
 * Computes `HMAC(key, uint32 seq || a || b)`; `b` lets a caller MAC a packet
 * held in two pieces without joining them.
 */
export function packetMac(
  alg: HmacAlgorithm,
  key: Uint8Array,
  seq: number,
  a: Uint8Array,
  b?: Uint8Array,
): Uint8Array {
  const seqBytes = new Uint8Array(4);
  writeUint32(seqBytes, seq);
  const h = createHmac(alg.hash, key).update(seqBytes).update(a);
  if (b) h.update(b);
  return h.digest();
}
