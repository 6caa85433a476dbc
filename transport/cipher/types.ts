/**
 * The contract between the packet layer and every cipher/MAC combination.
 *
 * The packet layer builds `uint32 packet_length || byte padding_length ||
 * payload || padding` (RFC 4253 section 6) and hands it to {@linkcode
 * PacketCipher.seal}. On receive it reads {@linkcode PacketCipher.headLength}
 * bytes, asks {@linkcode PacketCipher.packetLength} for the length, bounds it,
 * reads the rest plus {@linkcode PacketCipher.tagLength} bytes and calls
 * {@linkcode PacketCipher.open}.
 *
 * @module
 */

/** Key material for one direction, derived per RFC 4253 section 7.2. */
export interface DirectionKeys {
  /** Initial IV (letter A or B). */
  readonly iv: Uint8Array;
  /** Encryption key (letter C or D). */
  readonly key: Uint8Array;
  /** Integrity key (letter E or F); empty for AEAD ciphers. */
  readonly macKey: Uint8Array;
}

/** Sizes the key derivation needs for a cipher. */
export interface CipherInfo {
  /** Algorithm name as negotiated. */
  readonly name: string;
  /** Key bytes to derive. */
  readonly keyLength: number;
  /** IV bytes to derive (0 when unused). */
  readonly ivLength: number;
  /** Padding block size (at least 8). */
  readonly blockSize: number;
  /** True when the cipher authenticates itself and no MAC is negotiated. */
  readonly aead: boolean;
}

/** Sizes the key derivation needs for a MAC. */
export interface MacInfo {
  /** Algorithm name as negotiated. */
  readonly name: string;
  /** Key bytes to derive. */
  readonly keyLength: number;
  /** MAC output bytes on the wire. */
  readonly length: number;
  /** Encrypt-then-MAC: the length is sent in clear and the MAC covers ciphertext. */
  readonly etm: boolean;
}

/** One direction of packet protection (sealing or opening, never both). */
export interface PacketCipher {
  /** Padding alignment. */
  readonly blockSize: number;
  /**
   * True when `packet_length` is outside the encrypted/aligned part (AEAD and
   * EtM modes): padding then aligns `padding_length || payload || padding`
   * instead of the whole packet.
   */
  readonly lengthInClear: boolean;
  /** Bytes needed before {@linkcode packetLength} can answer (4 or a block). */
  readonly headLength: number;
  /** Bytes of tag or MAC after each packet. */
  readonly tagLength: number;
  /**
   * Encrypts and authenticates one whole plaintext packet (starting with its
   * uint32 length); returns the wire bytes including the tag.
   */
  seal(seq: number, packet: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /**
   * Returns `packet_length` from the first {@linkcode headLength} wire bytes.
   * Must be called exactly once per packet, before {@linkcode open}.
   */
  packetLength(seq: number, head: Uint8Array): number;
  /**
   * Verifies (in constant time, before decrypting anything it returns) and
   * decrypts one whole wire packet (length field + body + tag). Returns
   * `padding_length || payload || padding`. Throws on a bad MAC or tag.
   */
  open(seq: number, wire: Uint8Array): Uint8Array | Promise<Uint8Array>;
}
