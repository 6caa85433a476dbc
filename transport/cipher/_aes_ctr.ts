/**
 * `aes128-ctr`, `aes192-ctr`, `aes256-ctr` (RFC 4344 section 4) with an
 * HMAC-SHA2 MAC, classic (encrypt-and-MAC, RFC 4253 section 6.4) or
 * encrypt-then-MAC (OpenSSH PROTOCOL section 1.7).
 *
 * RFC 4344 section 4: the counter starts at the derived IV and runs on across
 * packets as one 128-bit big-endian integer. We keep it ourselves: each
 * packet's starting counter is the IV plus the blocks consumed before it, so
 * packets can be encrypted independently and several at once. Every
 * encrypted span is whole AES blocks (the transport aligns and checks packet
 * lengths), which keeps the counter arithmetic exact.
 *
 * Backends, by measurement (bench/primitives_bench.ts): Web Crypto AES-CTR
 * (`length: 128`, the whole block is the counter as in RFC 4344) is about 3x
 * node:crypto on 32 KiB but costs ~30 us per call, so spans of
 * {@linkcode WEB_CTR_MIN} bytes or more go to Web Crypto (asynchronously,
 * pipelined by the transport) and smaller ones to node:crypto, each cipher
 * finished at once (Deno keeps a node:crypto cipher as a resource until
 * `final()`). The HMAC stays on node:crypto (native, synchronous, faster
 * than Web Crypto's `sign` at every size measured).
 *
 * Classic mode encrypts `packet_length`, so {@linkcode CtrCipher.packetLength}
 * decrypts the first block and keeps it for {@linkcode CtrCipher.open}. A
 * corrupted length then yields a garbage length (the caller bounds it) or a
 * MAC mismatch, never wrong plaintext. EtM sends the length in clear and
 * verifies the MAC before decrypting anything.
 *
 * @module
 */
import {
  checkKeyLength,
  checkSeq,
  constantTimeEqual,
  MacError,
  readUint32,
  streamXor,
  view,
} from "./_common.ts";
import { type HmacAlgorithm, packetMac } from "./_hmac.ts";
import type { DirectionKeys, PacketCipher } from "./types.ts";

/** AES block size; also the padding block and the classic-mode head. */
const BLOCK = 16;
/** Encrypted bytes from which a span goes to Web Crypto. */
export const WEB_CTR_MIN = 8192;

/** One direction of AES-CTR with HMAC. */
export class CtrCipher implements PacketCipher {
  /** The AES block. */
  readonly blockSize: number = BLOCK;
  /** True for EtM. */
  readonly lengthInClear: boolean;
  /** 4 for EtM, one AES block otherwise. */
  readonly headLength: number;
  /** The MAC length. */
  readonly tagLength: number;
  readonly #mac: HmacAlgorithm;
  readonly #macKey: Uint8Array;
  readonly #key: Uint8Array;
  readonly #algo: string;
  /** The big-endian counter block for the next keystream byte. */
  readonly #counter: Uint8Array;
  /** Classic mode: the first block decrypted by packetLength, awaiting open. */
  #first: Uint8Array | null = null;
  #webKey: Promise<CryptoKey> | null = null;

  /**
   * @param keyBits 128, 192 or 256.
   * @param mac The negotiated MAC.
   * @param keys Key (keyBits / 8 bytes), IV (16 bytes) and MAC key.
   */
  constructor(
    keyBits: 128 | 192 | 256,
    mac: HmacAlgorithm,
    keys: DirectionKeys,
  ) {
    const name = `aes${keyBits}-ctr`;
    checkKeyLength(`${name} key`, keys.key, keyBits / 8);
    checkKeyLength(`${name} IV`, keys.iv, BLOCK);
    checkKeyLength(`${mac.name} key`, keys.macKey, mac.keyLength);
    this.#mac = mac;
    this.#macKey = keys.macKey.slice();
    this.#key = keys.key.slice();
    this.#counter = keys.iv.slice();
    this.#algo = `aes-${keyBits}-ctr`;
    this.lengthInClear = mac.etm;
    this.headLength = mac.etm ? 4 : BLOCK;
    this.tagLength = mac.length;
  }

  #web(): Promise<CryptoKey> {
    return this.#webKey ??= crypto.subtle.importKey(
      "raw",
      this.#key as Uint8Array<ArrayBuffer>,
      "AES-CTR",
      false,
      ["encrypt"],
    );
  }

  /**
   * Encrypts or decrypts whole blocks at the counter and advances the
   * counter at once (so later packets may start before this one finishes).
   * Large spans return a Promise (Web Crypto).
   */
  #xor(seq: number, data: Uint8Array): Uint8Array | Promise<Uint8Array> {
    if (data.length % BLOCK !== 0) {
      throw new RangeError(
        `Cannot process packet ${seq}: ${data.length} encrypted bytes is not a multiple of ${BLOCK}`,
      );
    }
    const counter = this.#counter.slice();
    this.#advance(data.length / BLOCK);
    if (data.length < WEB_CTR_MIN) {
      return view(streamXor(this.#algo, this.#key, counter, data));
    }
    return this.#web().then((key) =>
      crypto.subtle.encrypt(
        { name: "AES-CTR", counter, length: 128 },
        key,
        data as Uint8Array<ArrayBuffer>,
      )
    ).then((b) => new Uint8Array(b));
  }

  /** Encrypts the packet (all of it, or all but the length for EtM) and appends the MAC. */
  seal(seq: number, packet: Uint8Array): Uint8Array | Promise<Uint8Array> {
    checkSeq(seq);
    const n = packet.length;
    const out = new Uint8Array(n + this.tagLength);
    if (this.#mac.etm) {
      out.set(packet.subarray(0, 4));
      const finish = (ct: Uint8Array) => {
        out.set(ct, 4);
        out.set(
          packetMac(this.#mac, this.#macKey, seq, out.subarray(0, n)),
          n,
        );
        return out;
      };
      const ct = this.#xor(seq, packet.subarray(4));
      return ct instanceof Uint8Array ? finish(ct) : ct.then(finish);
    }
    out.set(packetMac(this.#mac, this.#macKey, seq, packet), n);
    const finish = (ct: Uint8Array) => {
      out.set(ct);
      return out;
    };
    const ct = this.#xor(seq, packet);
    return ct instanceof Uint8Array ? finish(ct) : ct.then(finish);
  }

  /** EtM: reads the clear length. Classic: decrypts the first block (advancing the counter). */
  packetLength(seq: number, head: Uint8Array): number {
    if (head.length < this.headLength) {
      throw new RangeError(
        `Cannot read length of packet ${seq}: need ${this.headLength} bytes, got ${head.length}`,
      );
    }
    if (this.#mac.etm) return readUint32(head);
    this.#first = this.#xor(seq, head.subarray(0, BLOCK)) as Uint8Array;
    return readUint32(this.#first);
  }

  /** Verifies the MAC (before decrypting, for EtM) and returns `padding_length || payload || padding`. */
  open(seq: number, wire: Uint8Array): Uint8Array | Promise<Uint8Array> {
    checkSeq(seq);
    const n = wire.length - this.tagLength;
    if (n < this.headLength) {
      throw new RangeError(
        `Cannot open packet ${seq}: ${wire.length} bytes is too short`,
      );
    }
    const tag = wire.subarray(n);
    if (this.#mac.etm) {
      // OpenSSH PROTOCOL 1.7: MAC over `seq || packet_length || ciphertext`, checked first.
      const expected = packetMac(
        this.#mac,
        this.#macKey,
        seq,
        wire.subarray(0, n),
      );
      if (!constantTimeEqual(expected, tag)) {
        throw new MacError(`Cannot open packet ${seq}: MAC mismatch`);
      }
      return this.#xor(seq, wire.subarray(4, n));
    }
    const first = this.#first;
    if (first === null) {
      throw new Error(
        `Cannot open packet ${seq}: packetLength() was not called first`,
      );
    }
    this.#first = null;
    const finish = (rest: Uint8Array) => {
      // RFC 4253 section 6.4: MAC over `seq || unencrypted packet`.
      const expected = packetMac(this.#mac, this.#macKey, seq, first, rest);
      if (!constantTimeEqual(expected, tag)) {
        throw new MacError(`Cannot open packet ${seq}: MAC mismatch`);
      }
      const out = new Uint8Array(n - 4);
      out.set(first.subarray(4));
      out.set(rest, BLOCK - 4);
      return out;
    };
    const rest = this.#xor(seq, wire.subarray(BLOCK, n));
    return rest instanceof Uint8Array ? finish(rest) : rest.then(finish);
  }

  /** counter += blocks, as a 128-bit big-endian integer (mod 2^128). */
  #advance(blocks: number): void {
    let carry = blocks;
    for (let i = 15; i >= 0 && carry > 0; i--) {
      const sum = this.#counter[i] + (carry % 256);
      this.#counter[i] = sum & 0xff;
      carry = Math.floor(carry / 256) + (sum >> 8);
    }
  }
}
