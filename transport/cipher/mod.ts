/**
 * SSH packet ciphers and MACs (RFC 4253 section 6, RFC 4344, RFC 5647 with
 * OpenSSH PROTOCOL sections 1.6 and 1.7, OpenSSH
 * PROTOCOL.chacha20poly1305).
 *
 * @example Seal and open one packet
 * ```ts
 * import { createPacketCipher } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const keys = { key: new Uint8Array(64).fill(7), iv: new Uint8Array(0), macKey: new Uint8Array(0) };
 * const seal = createPacketCipher("chacha20-poly1305@openssh.com", null, keys, "seal");
 * const open = createPacketCipher("chacha20-poly1305@openssh.com", null, keys, "open");
 * // uint32 packet_length = 12, padding_length = 6, payload "hello", 6 bytes of padding
 * const packet = new Uint8Array([0, 0, 0, 12, 6, 104, 101, 108, 108, 111, 0, 0, 0, 0, 0, 0]);
 * const wire = await seal.seal(0, packet);
 * assert.equal(await open.packetLength(0, wire.subarray(0, open.headLength)), 12);
 * assert.deepEqual(await open.open(0, wire), packet.subarray(4));
 * ```
 *
 * @module
 */
import { ChachaPolyCipher } from "./_chacha20_poly1305.ts";
import { GcmCipher } from "./_aes_gcm.ts";
import { CtrCipher } from "./_aes_ctr.ts";
import { HMACS } from "./_hmac.ts";
import { NoneCipher } from "./_none.ts";
import type {
  CipherInfo,
  DirectionKeys,
  MacInfo,
  PacketCipher,
} from "./types.ts";

export { MacError } from "./_common.ts";
export type {
  CipherInfo,
  DirectionKeys,
  MacInfo,
  PacketCipher,
} from "./types.ts";

/** Ciphers we implement, in our default order of preference. */
export const CIPHER_NAMES: readonly string[] = Object.freeze([
  "chacha20-poly1305@openssh.com",
  "aes256-gcm@openssh.com",
  "aes128-gcm@openssh.com",
  "aes256-ctr",
  "aes192-ctr",
  "aes128-ctr",
]);

/** MACs we implement, in our default order of preference (EtM first). */
export const MAC_NAMES: readonly string[] = Object.freeze([
  "hmac-sha2-256-etm@openssh.com",
  "hmac-sha2-512-etm@openssh.com",
  "hmac-sha2-256",
  "hmac-sha2-512",
]);

const CIPHERS: ReadonlyMap<string, CipherInfo> = new Map(
  (
    [
      ["chacha20-poly1305@openssh.com", 64, 0, 8, true],
      ["aes256-gcm@openssh.com", 32, 12, 16, true],
      ["aes128-gcm@openssh.com", 16, 12, 16, true],
      ["aes256-ctr", 32, 16, 16, false],
      ["aes192-ctr", 24, 16, 16, false],
      ["aes128-ctr", 16, 16, 16, false],
    ] as const
  ).map(([name, keyLength, ivLength, blockSize, aead]) => [
    name,
    Object.freeze({ name, keyLength, ivLength, blockSize, aead }),
  ]),
);

/**
 * Key, IV and block sizes of a cipher.
 *
 * @param name A name from {@linkcode CIPHER_NAMES}.
 * @throws {TypeError} for an unknown cipher.
 */
export function cipherInfo(name: string): CipherInfo {
  const info = CIPHERS.get(name);
  if (!info) throw new TypeError(`Cannot use cipher "${name}": not supported`);
  return info;
}

/**
 * Key and output sizes of a MAC.
 *
 * @param name A name from {@linkcode MAC_NAMES}.
 * @throws {TypeError} for an unknown MAC.
 */
export function macInfo(name: string): MacInfo {
  const mac = HMACS.get(name);
  if (!mac) throw new TypeError(`Cannot use MAC "${name}": not supported`);
  return {
    name: mac.name,
    keyLength: mac.keyLength,
    length: mac.length,
    etm: mac.etm,
  };
}

/**
 * Creates one direction of packet protection after NEWKEYS.
 *
 * Every implementation here is synchronous except AES-GCM on packets of
 * 4 KiB or more and AES-CTR on spans of 8 KiB or more, which return a
 * Promise (Web Crypto is faster there).
 * `open` may return a view of a fresh buffer; it never modifies `wire`.
 *
 * @param cipher A name from {@linkcode CIPHER_NAMES}.
 * @param mac A name from {@linkcode MAC_NAMES}; ignored (may be null) for AEAD ciphers.
 * @param keys Derived keys sized per {@linkcode cipherInfo} and {@linkcode macInfo}.
 * @param mode `"seal"` for sending, `"open"` for receiving.
 * @throws {TypeError} for an unknown cipher or MAC, a missing MAC, or wrong key sizes.
 */
export function createPacketCipher(
  cipher: string,
  mac: string | null,
  keys: DirectionKeys,
  mode: "seal" | "open",
): PacketCipher {
  if (mode !== "seal" && mode !== "open") {
    throw new TypeError(`Cannot create cipher: bad mode "${mode}"`);
  }
  switch (cipherInfo(cipher).name) {
    case "chacha20-poly1305@openssh.com":
      return new ChachaPolyCipher(keys);
    case "aes256-gcm@openssh.com":
      return new GcmCipher(256, keys);
    case "aes128-gcm@openssh.com":
      return new GcmCipher(128, keys);
  }
  if (mac === null) {
    throw new TypeError(`Cannot create cipher "${cipher}": it needs a MAC`);
  }
  const alg = HMACS.get(mac);
  if (!alg) throw new TypeError(`Cannot use MAC "${mac}": not supported`);
  const bits = cipher === "aes256-ctr"
    ? 256
    : cipher === "aes192-ctr"
    ? 192
    : 128;
  return new CtrCipher(bits, alg, keys);
}

/**
 * The `none` cipher with no MAC, for packets before the first NEWKEYS
 * (RFC 4253 section 6): block size 8, clear length, no tag.
 */
export function createNoneCipher(): PacketCipher {
  return new NoneCipher();
}
