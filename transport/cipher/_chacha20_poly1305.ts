/**
 * `chacha20-poly1305@openssh.com` (OpenSSH PROTOCOL.chacha20poly1305).
 *
 * The 64-byte key is two ChaCha20 keys: K_2 (the first 32 bytes) encrypts the
 * payload and keys Poly1305, K_1 (the last 32 bytes) encrypts only the
 * 4-byte `packet_length`. Both use the original ChaCha20 layout: a 64-bit
 * block counter and a 64-bit nonce, the nonce being the packet sequence
 * number as a big-endian uint64. The Poly1305 key is the first 32 bytes of
 * K_2's block 0; the payload uses blocks from 1 on; the tag covers the
 * encrypted length followed by the encrypted payload and is checked before
 * anything is decrypted.
 *
 * ChaCha20 is node:crypto's native `chacha20` (about 900 MB/s here). Its
 * 16-byte IV is ChaCha state words 12..15 in little-endian order (OpenSSL's
 * layout): for OpenSSH's construction that is the 64-bit counter little-endian
 * followed by the sequence number big-endian. Poly1305 is our WebAssembly
 * one (./_poly1305.ts, 2-lane SIMD, about 2.6 GB/s at 32 KiB against 270 MB/s for
 * @noble/ciphers' pure JS; node:crypto and Web Crypto expose no bare
 * Poly1305).
 *
 * @module
 */
import { createCipheriv } from "node:crypto";
import {
  checkKeyLength,
  checkSeq,
  constantTimeEqual,
  MacError,
  readUint32,
  streamXor,
  view,
} from "./_common.ts";
import { poly1305Wasm } from "./_poly1305.ts";
import { roomAfter } from "../_packet_room.ts";
import type { DirectionKeys, PacketCipher } from "./types.ts";

const TAG = 16;
/** One ChaCha20 block of zeros: its keystream gives the Poly1305 key. */
const BLOCK0 = new Uint8Array(64);

/** The 16-byte node:crypto IV for block 0 and nonce `seq`. */
function chachaIv(seq: number): Uint8Array {
  const iv = new Uint8Array(16);
  // bytes 0..7: counter 0 (little-endian); bytes 8..15: uint64 seq, big-endian.
  iv[12] = seq >>> 24;
  iv[13] = seq >>> 16;
  iv[14] = seq >>> 8;
  iv[15] = seq;
  return iv;
}

/** One direction of chacha20-poly1305@openssh.com. */
export class ChachaPolyCipher implements PacketCipher {
  /** OpenSSH pads to 8 bytes for this cipher. */
  readonly blockSize: number = 8;
  /** The length is encrypted on its own, outside the padded part. */
  readonly lengthInClear: boolean = true;
  /** The encrypted uint32 length. */
  readonly headLength: number = 4;
  /** The Poly1305 tag. */
  readonly tagLength: number = TAG;
  /** K_2 (main) then K_1 (length), as views made per use: see below. */
  readonly #keys: Uint8Array;

  /** @param keys Key (64 bytes); no IV, no MAC key. */
  constructor(keys: DirectionKeys) {
    checkKeyLength("chacha20-poly1305@openssh.com key", keys.key, 64);
    // One copy, no stored views: an idle connection holds two of these
    // ciphers for its lifetime, and each typed array object is about 100
    // bytes of heap; a view per packet is nothing next to the cipher call.
    this.#keys = keys.key.slice(0, 64);
  }

  /** Returns `encrypted length || encrypted rest || tag`. */
  seal(seq: number, packet: Uint8Array): Uint8Array {
    checkSeq(seq);
    const n = packet.length;
    const iv = chachaIv(seq);
    const main = createCipheriv("chacha20", this.#keys.subarray(0, 32), iv);
    let out: Uint8Array;
    let polyKey: Uint8Array;
    if (roomAfter(packet) >= TAG) {
      // One output buffer that is already the wire packet: skip 60 bytes of
      // block 0 (its first 32 are the Poly1305 key), so the 4 length bytes
      // meet keystream bytes 60..63 (replaced below by the K_1-encrypted
      // length) and the payload meets block 1 at offset 4, as the
      // construction requires; the 16 scratch bytes after the packet
      // become the tag.
      polyKey = main.update(BLOCK0.subarray(0, 60)).subarray(0, 32);
      out = view(
        main.update(
          new Uint8Array(packet.buffer, packet.byteOffset, n + TAG),
        ),
      );
    } else {
      // Block 0 yields the Poly1305 key; the stream then continues at block 1.
      polyKey = main.update(BLOCK0).subarray(0, 32);
      out = new Uint8Array(n + TAG);
      out.set(main.update(packet.subarray(4)), 4);
    }
    main.final(); // Deno keeps the cipher as a resource until final()
    out.set(
      streamXor(
        "chacha20",
        this.#keys.subarray(32, 64),
        iv,
        packet.subarray(0, 4),
      ),
    );
    poly1305Wasm(out.subarray(0, n), polyKey, out.subarray(n));
    return out;
  }

  /** Decrypts the 4-byte length with K_1. */
  packetLength(seq: number, head: Uint8Array): number {
    checkSeq(seq);
    if (head.length < 4) {
      throw new RangeError(
        `Cannot read length of packet ${seq}: need 4 bytes, got ${head.length}`,
      );
    }
    return readUint32(
      streamXor(
        "chacha20",
        this.#keys.subarray(32, 64),
        chachaIv(seq),
        head.subarray(0, 4),
      ),
    );
  }

  /** Verifies the tag, then returns the decrypted `padding_length || payload || padding`. */
  open(seq: number, wire: Uint8Array): Uint8Array {
    checkSeq(seq);
    const n = wire.length - TAG;
    if (n < 4) {
      throw new RangeError(
        `Cannot open packet ${seq}: ${wire.length} bytes is too short`,
      );
    }
    const main = createCipheriv(
      "chacha20",
      this.#keys.subarray(0, 32),
      chachaIv(seq),
    );
    try {
      const polyKey = main.update(BLOCK0).subarray(0, 32);
      const tag = poly1305Wasm(wire.subarray(0, n), polyKey);
      if (!constantTimeEqual(tag, wire.subarray(n))) {
        throw new MacError(
          `Cannot open packet ${seq}: authentication tag mismatch`,
        );
      }
      return view(main.update(wire.subarray(4, n)));
    } finally {
      main.final(); // Deno keeps the cipher as a resource until final()
    }
  }
}
