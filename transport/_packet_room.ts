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
const handedOver = new WeakSet<ArrayBufferLike>();

/**
 * A payload of `length` bytes at offset {@linkcode PACKET_HEADROOM} of a
 * buffer with {@linkcode PACKET_TAILROOM} spare bytes after it. It may hold
 * old bytes (see {@linkcode takeBuffer}): the caller overwrites all of it,
 * hands it to the transport once and never touches the buffer again.
 */
export function allocPayload(length: number): Uint8Array {
  const buf = takeBuffer(PACKET_HEADROOM + length + PACKET_TAILROOM);
  return new Uint8Array(buf, PACKET_HEADROOM, length);
}

/**
 * Size of the pooled packet buffers: a full 32 KiB channel packet (RFC 4254
 * CHANNEL_DATA header, RFC 4253 packet header, padding, tag) with room.
 */
export const POOLED_BUFFER_SIZE = 40 * 1024;
/** Size of the pooled buffers that join sealed packets into one write. */
export const POOLED_BATCH_SIZE = 256 * 1024;
/** Smaller packets get buffers of their own size. */
const POOLED_MIN = 4096;
/** Buffers kept for reuse, process-wide: 1.25 MiB of packets, 1 MiB of batches. */
const packets: ArrayBuffer[] = [];
const batches: ArrayBuffer[] = [];
const PACKETS_KEPT = 32;
const BATCHES_KEPT = 4;

/**
 * A buffer of at least `size` bytes for one packet (or one batch of
 * packets), from a pool when `size` fits a pooled size. Its contents are
 * NOT zeroed: callers overwrite every byte they use, and bytes past what
 * they use never leave the process (they are scratch, or outside the views
 * handed on).
 */
export function takeBuffer(size: number): ArrayBuffer {
  let buf: ArrayBuffer | undefined;
  if (size >= POOLED_MIN && size <= POOLED_BUFFER_SIZE) {
    buf = packets.pop() ?? new ArrayBuffer(POOLED_BUFFER_SIZE);
  } else if (size > POOLED_BUFFER_SIZE && size <= POOLED_BATCH_SIZE) {
    buf = batches.pop() ?? new ArrayBuffer(POOLED_BATCH_SIZE);
  } else {
    buf = new ArrayBuffer(size);
  }
  roomy.add(buf);
  return buf;
}

/**
 * Gives a buffer from {@linkcode takeBuffer} back once nothing refers to
 * it any more: a packet once the cipher has produced its output elsewhere
 * (or once it was written), a batch once written. Other buffers, and
 * buffers whose bytes were handed to a receiver, are ignored.
 */
export function recycleBuffer(buf: ArrayBufferLike): void {
  if (!roomy.has(buf) || handedOver.has(buf)) return;
  if (buf.byteLength === POOLED_BUFFER_SIZE) {
    if (packets.length < PACKETS_KEPT) packets.push(buf as ArrayBuffer);
  } else if (buf.byteLength === POOLED_BATCH_SIZE) {
    if (batches.length < BATCHES_KEPT) batches.push(buf as ArrayBuffer);
  }
}

/**
 * Carries a buffer's pooled status over to the buffer a BYOB read returned
 * for it (the read transfers, so the bytes live on under a new object).
 */
export function adoptRoom(from: ArrayBufferLike, to: ArrayBufferLike): void {
  if (roomy.has(from)) roomy.add(to);
}

/**
 * Bytes free after `bytes` in its buffer when that buffer came from
 * {@linkcode allocPayload} or {@linkcode takeBuffer}; 0 otherwise.
 */
export function roomAfter(bytes: Uint8Array): number {
  if (!roomy.has(bytes.buffer)) return 0;
  return bytes.buffer.byteLength - bytes.byteOffset - bytes.byteLength;
}

/** Bytes free before `bytes` in its buffer, on the same terms. */
export function roomBefore(bytes: Uint8Array): number {
  return roomy.has(bytes.buffer) ? bytes.byteOffset : 0;
}

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
