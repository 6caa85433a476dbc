/**
 * `aes128-gcm@openssh.com` and `aes256-gcm@openssh.com`: RFC 5647 as changed
 * by OpenSSH PROTOCOL section 1.6. `packet_length` travels in clear as the
 * additional authenticated data; the 12-byte nonce is the derived IV whose
 * last 8 bytes are a big-endian invocation counter incremented after every
 * packet (RFC 5647 section 7.1); the tag is 16 bytes.
 *
 * Backends, chosen by measurement (bench/cipher_bench.ts, Deno 2.9.6):
 * node:crypto AES-GCM is synchronous with little setup cost but slow on big
 * inputs (about 190 MB/s); Web Crypto costs about 55 us per call (it runs off
 * the main thread) but reaches 600 MB/s on 256 KiB. Small packets use
 * node:crypto, large ones Web Crypto.
 *
 * node:crypto's GCM decipher compares tags with a plain slice comparison, so
 * small packets are opened without it: AES-CTR from counter block
 * `nonce || 2` (the GCM keystream, NIST SP 800-38D section 7.2) decrypts, the
 * GCM cipher re-encrypts to get the expected tag, and we compare in constant
 * time before returning anything. Web Crypto checks the tag itself (RustCrypto
 * `aes-gcm`, constant time) and returns nothing on a mismatch.
 *
 * @module
 */
import { type CipherGCMTypes, createCipheriv } from "node:crypto";
import {
  checkKeyLength,
  checkSeq,
  constantTimeEqual,
  MacError,
  readUint32,
  streamXor,
  view,
} from "./_common.ts";
import type { DirectionKeys, PacketCipher } from "./types.ts";
import { takeBuffer } from "../_packet_room.ts";

const TAG = 16;
/** Ciphertext bytes from which sealing uses Web Crypto. */
export const WEB_SEAL_MIN = 8192;
/** Ciphertext bytes from which opening uses Web Crypto. */
export const WEB_OPEN_MIN = 4096;

/** One direction of AES-GCM as OpenSSH uses it. */
export class GcmCipher implements PacketCipher {
  /** The AES block. */
  readonly blockSize: number = 16;
  /** The length is the AAD, in clear. */
  readonly lengthInClear: boolean = true;
  /** The clear uint32 length. */
  readonly headLength: number = 4;
  /** The GCM tag. */
  readonly tagLength: number = TAG;
  readonly #key: Uint8Array;
  readonly #gcm: CipherGCMTypes;
  readonly #ctr: string;
  /** The nonce for the next packet; bytes 4..11 are the invocation counter. */
  readonly #nonce: Uint8Array;
  #webKey: Promise<CryptoKey> | null = null;

  /**
   * @param keyBits 128 or 256.
   * @param keys Key (keyBits / 8 bytes) and IV (12 bytes); no MAC key.
   */
  constructor(keyBits: 128 | 256, keys: DirectionKeys) {
    checkKeyLength(`aes${keyBits}-gcm@openssh.com key`, keys.key, keyBits / 8);
    checkKeyLength(`aes${keyBits}-gcm@openssh.com IV`, keys.iv, 12);
    this.#key = keys.key.slice();
    this.#nonce = keys.iv.slice();
    this.#gcm = keyBits === 128 ? "aes-128-gcm" : "aes-256-gcm";
    this.#ctr = `aes-${keyBits}-ctr`;
  }

  /** Returns this packet's nonce and advances the invocation counter (mod 2^64). */
  #nextNonce(): Uint8Array {
    const nonce = this.#nonce.slice();
    for (let i = 11; i >= 4; i--) {
      this.#nonce[i] = (this.#nonce[i] + 1) & 0xff;
      if (this.#nonce[i] !== 0) break;
    }
    return nonce;
  }

  #web(): Promise<CryptoKey> {
    return this.#webKey ??= crypto.subtle.importKey(
      "raw",
      this.#key as Uint8Array<ArrayBuffer>,
      "AES-GCM",
      false,
      [
        "encrypt",
        "decrypt",
      ],
    );
  }

  /** Returns `packet_length || ciphertext || tag`. */
  seal(seq: number, packet: Uint8Array): Uint8Array | Promise<Uint8Array> {
    checkSeq(seq);
    const n = packet.length;
    const nonce = this.#nextNonce();
    if (n - 4 >= WEB_SEAL_MIN) return this.#sealWeb(nonce, packet);
    const c = createCipheriv(this.#gcm, this.#key, nonce);
    c.setAAD(packet.subarray(0, 4));
    const out = new Uint8Array(n + TAG);
    out.set(packet.subarray(0, 4));
    out.set(c.update(packet.subarray(4)), 4);
    c.final();
    out.set(c.getAuthTag(), n);
    return out;
  }

  async #sealWeb(nonce: Uint8Array, packet: Uint8Array): Promise<Uint8Array> {
    const sealed = await crypto.subtle.encrypt(
      {
        name: "AES-GCM",
        iv: nonce as Uint8Array<ArrayBuffer>,
        additionalData: packet.subarray(0, 4) as Uint8Array<ArrayBuffer>,
      },
      await this.#web(),
      packet.subarray(4) as Uint8Array<ArrayBuffer>,
    );
    const size = packet.length + TAG;
    // A pooled buffer: the transport recycles it once it is written.
    const out = new Uint8Array(takeBuffer(size), 0, size);
    out.set(packet.subarray(0, 4));
    out.set(new Uint8Array(sealed), 4);
    return out;
  }

  /** Reads the clear length. */
  packetLength(seq: number, head: Uint8Array): number {
    if (head.length < 4) {
      throw new RangeError(
        `Cannot read length of packet ${seq}: need 4 bytes, got ${head.length}`,
      );
    }
    return readUint32(head);
  }

  /** Verifies the tag, then returns the decrypted `padding_length || payload || padding`. */
  open(seq: number, wire: Uint8Array): Uint8Array | Promise<Uint8Array> {
    checkSeq(seq);
    const n = wire.length - TAG;
    if (n < 4) {
      throw new RangeError(
        `Cannot open packet ${seq}: ${wire.length} bytes is too short`,
      );
    }
    const nonce = this.#nextNonce();
    if (n - 4 >= WEB_OPEN_MIN) return this.#openWeb(seq, nonce, wire);
    const counter = new Uint8Array(16);
    counter.set(nonce);
    counter[15] = 2; // J0 + 1: the first keystream block for a 96-bit nonce
    const plain = streamXor(this.#ctr, this.#key, counter, wire.subarray(4, n));
    const c = createCipheriv(this.#gcm, this.#key, nonce);
    c.setAAD(wire.subarray(0, 4));
    c.update(plain);
    c.final();
    if (!constantTimeEqual(c.getAuthTag(), wire.subarray(n))) {
      throw new MacError(
        `Cannot open packet ${seq}: authentication tag mismatch`,
      );
    }
    return view(plain);
  }

  async #openWeb(
    seq: number,
    nonce: Uint8Array,
    wire: Uint8Array,
  ): Promise<Uint8Array> {
    const key = await this.#web();
    try {
      return new Uint8Array(
        await crypto.subtle.decrypt(
          {
            name: "AES-GCM",
            iv: nonce as Uint8Array<ArrayBuffer>,
            additionalData: wire.subarray(0, 4) as Uint8Array<ArrayBuffer>,
          },
          key,
          wire.subarray(4) as Uint8Array<ArrayBuffer>,
        ),
      );
    } catch (e) {
      throw new MacError(
        `Cannot open packet ${seq}: authentication tag mismatch`,
        { cause: e },
      );
    }
  }
}
