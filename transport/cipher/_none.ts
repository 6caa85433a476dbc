/**
 * The `none` cipher with no MAC: the state before the first NEWKEYS
 * (RFC 4253 section 6: "the initial encryption is none").
 *
 * @module
 */
import { readUint32 } from "./_common.ts";
import type { PacketCipher } from "./types.ts";

/** Pass-through packet protection: 8-byte padding blocks, no tag. */
export class NoneCipher implements PacketCipher {
  /** RFC 4253 section 6: padding to a multiple of 8 when the cipher's block is smaller. */
  readonly blockSize: number = 8;
  /** The length field is aligned with the rest of the packet. */
  readonly lengthInClear: boolean = false;
  /** Only the uint32 length is needed. */
  readonly headLength: number = 4;
  /** No MAC. */
  readonly tagLength: number = 0;

  /** Returns the packet itself (no copy). */
  seal(_seq: number, packet: Uint8Array): Uint8Array {
    return packet;
  }

  /** Reads the clear `packet_length`. */
  packetLength(_seq: number, head: Uint8Array): number {
    return readUint32(head);
  }

  /** Returns the bytes after the length field (a view, no copy). */
  open(_seq: number, wire: Uint8Array): Uint8Array {
    return wire.subarray(4);
  }
}
