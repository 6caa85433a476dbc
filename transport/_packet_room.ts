/**
 * Payload buffers with room around them, so bulk data is framed and sealed
 * where it lies instead of being copied into a new packet at each layer.
 *
 * A binary packet is `uint32 packet_length || byte padding_length ||
 * payload || padding` (RFC 4253 section 6), and the AEAD ciphers append a
 * 16-byte tag. A channel that allocates its CHANNEL_DATA payload with
 * {@linkcode allocPayload} leaves {@linkcode PACKET_HEADROOM} bytes before
 * it and {@linkcode PACKET_TAILROOM} after it; the transport then writes the
 * header and padding into that room, and a cipher may use the bytes after
 * the padding as scratch. Only buffers made here are treated so: a payload
 * that is a view into someone else's buffer is always copied, because the
 * bytes around it belong to its owner.
 *
 * @module
 */

/** `packet_length` and `padding_length`. */
export const PACKET_HEADROOM = 5;
/**
 * Largest padding (RFC 4253 section 6: 4 to 255 bytes; we add at most
 * 4 + 2 blocks - 1 = 35 with 16-byte blocks) plus a 16-byte tag of scratch.
 */
export const PACKET_TAILROOM = 64;

const roomy = new WeakSet<ArrayBufferLike>();

/**
 * A zeroed payload of `length` bytes at offset {@linkcode PACKET_HEADROOM}
 * of a buffer with {@linkcode PACKET_TAILROOM} spare bytes after it. The
 * caller fills it and hands it to the transport once; it must not touch the
 * buffer afterwards.
 */
export function allocPayload(length: number): Uint8Array {
  const buf = new ArrayBuffer(PACKET_HEADROOM + length + PACKET_TAILROOM);
  roomy.add(buf);
  return new Uint8Array(buf, PACKET_HEADROOM, length);
}

/** Marks a buffer the transport allocated itself as having room to use. */
export function markRoomy(bytes: Uint8Array): void {
  roomy.add(bytes.buffer);
}

/**
 * Bytes free after `bytes` in its buffer when that buffer came from
 * {@linkcode allocPayload} or {@linkcode markRoomy}; 0 otherwise.
 */
export function roomAfter(bytes: Uint8Array): number {
  if (!roomy.has(bytes.buffer)) return 0;
  return bytes.buffer.byteLength - bytes.byteOffset - bytes.byteLength;
}

/** Bytes free before `bytes` in its buffer, on the same terms. */
export function roomBefore(bytes: Uint8Array): number {
  return roomy.has(bytes.buffer) ? bytes.byteOffset : 0;
}

const handedOver = new WeakSet<ArrayBufferLike>();

/**
 * Marks a received payload's buffer as belonging to whoever takes the
 * payload: the transport allocated it for this one packet and never
 * touches it again, so a channel may hand views of it to the application
 * instead of copying (connection/_channel.ts).
 */
export function markHandedOver(bytes: Uint8Array): void {
  handedOver.add(bytes.buffer);
}

/** Whether `bytes` lies in a buffer marked by {@linkcode markHandedOver}. */
export function isHandedOver(bytes: Uint8Array): boolean {
  return handedOver.has(bytes.buffer);
}
