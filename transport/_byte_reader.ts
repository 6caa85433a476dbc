/**
 * Exact-length reads from a byte stream.
 *
 * Reads a connection of our own (see `./_raw_conn.ts`) with `read()` into
 * our buffers, without the stream machinery; uses a BYOB reader when the
 * stream is a byte stream (our in-memory pairs, a `Deno.Conn` handed in by
 * the caller), so a packet lands directly in the buffer it will be
 * decrypted from; falls back to a default reader and a chunk queue
 * otherwise. Bytes read past what a caller asked for (only possible in the
 * fallback mode and while reading the version line) are kept for the next
 * read, never re-scanned.
 *
 * @module
 */
import { adoptRoom, recycleBuffer, takeBuffer } from "./_packet_room.ts";
import { closeQuietly, type RawConn } from "./_raw_conn.ts";

/**
 * Most bytes asked of the stream at once by {@linkcode ByteReader.ensure}:
 * a pooled 256 KiB buffer holds several 32 KiB packets.
 */
export const CHUNK_BYTES: number = 256 * 1024;
/** Fewest: what an idle connection's pending read holds on to. */
export const MIN_READ_BYTES: number = 256;

export class ByteReader {
  readonly #raw: RawConn | null = null;
  readonly #byob: ReadableStreamBYOBReader | null = null;
  readonly #plain: ReadableStreamDefaultReader<Uint8Array> | null = null;
  /** Bytes already read from the stream but not yet consumed. */
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;

  constructor(source: ReadableStream<Uint8Array> | RawConn) {
    if (!(source instanceof ReadableStream)) {
      this.#raw = source;
      return;
    }
    try {
      this.#byob = source.getReader({ mode: "byob" });
    } catch {
      this.#plain = source.getReader();
    }
  }

  /** Pushes bytes back to be returned first by the next read. */
  unshift(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#pending.unshift(bytes);
    this.#pendingBytes += bytes.length;
  }

  /**
   * Reads up to `max` bytes (at least one); null at end of stream. Used for
   * the version exchange, where the line length is unknown in advance.
   */
  async readSome(max: number): Promise<Uint8Array | null> {
    if (this.#pendingBytes > 0) {
      const first = this.#pending.shift()!;
      this.#pendingBytes -= first.length;
      if (first.length > max) {
        this.unshift(first.subarray(max));
        return first.subarray(0, max);
      }
      return first;
    }
    if (this.#raw) {
      const buf = new Uint8Array(max);
      const n = await this.#raw.read(buf);
      return n === null ? null : buf.subarray(0, n);
    }
    if (this.#byob) {
      const { value, done } = await this.#byob.read(new Uint8Array(max));
      if (done || !value) return null;
      return value;
    }
    const { value, done } = await this.#plain!.read();
    if (done || !value) return null;
    if (value.length > max) {
      this.unshift(value.subarray(max));
      return value.subarray(0, max);
    }
    return value;
  }

  // ----- Chunked reading: one read per many packets, packets as views. -----

  /** The buffer being read from, as filled so far, and the read offset. */
  #chunk: Uint8Array = new Uint8Array(0);
  #pos = 0;
  /** Bytes to ask for in the next read (see {@linkcode ensure}). */
  #readSize = MIN_READ_BYTES;
  /**
   * Views handed out and not yet released, per chunk buffer; null when
   * there are none, so an idle connection holds no map.
   */
  #views: Map<ArrayBufferLike, number> | null = null;

  /** Bytes buffered and not yet taken. */
  get buffered(): number {
    return this.#chunk.length - this.#pos + this.#pendingBytes;
  }

  /**
   * Whether the next `n` bytes are ready for {@linkcode peek} and
   * {@linkcode take} without {@linkcode ensure}: callers skip an `await`
   * (a microtask per packet) when they are.
   */
  has(n: number): boolean {
    return this.#chunk.length - this.#pos >= n && this.#pendingBytes === 0;
  }

  /**
   * Makes at least `n` bytes available to {@linkcode peek} and
   * {@linkcode take}; false when the stream ends before the first of them,
   * throws when it ends midway. Reads go into a fresh buffer each time (the
   * bytes left over from the previous one are copied to its start), sized
   * between {@linkcode MIN_READ_BYTES} and {@linkcode CHUNK_BYTES} by how
   * full the last reads were, so during a bulk transfer one system call
   * brings many packets; views taken earlier stay valid, since a BYOB read
   * detaches only the buffer it reads into.
   */
  async ensure(n: number): Promise<boolean> {
    if (this.has(n)) return true;
    const have = this.buffered;
    let next = this.#rechunk(have >= n ? have : Math.max(n, this.#readSize));
    let got = have;
    while (got < n) {
      let value: Uint8Array | undefined;
      let done: boolean;
      if (this.#raw) {
        // Into the rest of the buffer: whatever the kernel has, up to that.
        const k = await this.#raw.read(next.subarray(got));
        done = k === null;
        value = k === null ? undefined : next.subarray(got, got + k);
      } else if (this.#byob) {
        // The read transfers the buffer: `next` is detached (length 0)
        // until rebuilt on the buffer it returns.
        const old = next.buffer;
        const size = next.length;
        ({ value, done } = await this.#byob.read(
          new Uint8Array(old, got, size - got),
          { min: n - got },
        ));
        if (value) {
          adoptRoom(old, value.buffer);
          next = new Uint8Array(value.buffer, 0, size);
        }
      } else {
        ({ value, done } = await this.#plain!.read());
        if (value && value.length > next.length - got) {
          const bigger = new Uint8Array(takeBuffer(got + value.length));
          bigger.set(next.subarray(0, got));
          next = bigger;
        }
        if (value) next.set(value, got);
      }
      if (done || !value) {
        this.#chunk = next.subarray(0, got);
        this.#pos = 0;
        if (got === 0) return false;
        throw new SyntaxError(
          `Connection closed in the middle of a packet (${got} of ${n} bytes)`,
        );
      }
      got += value.length;
      // Adapt the next read's size: a full buffer means more was waiting
      // (a bulk transfer: grow towards CHUNK_BYTES); a mostly empty one
      // means an interactive or idle connection, whose pending read should
      // not pin a large buffer.
      if (got === next.length) {
        this.#readSize = Math.min(this.#readSize * 4, CHUNK_BYTES);
      } else if (got < next.length / 4) {
        // Straight back down: this read may be the one an idle connection
        // then waits in.
        this.#readSize = MIN_READ_BYTES;
      }
    }
    this.#chunk = next.subarray(0, got);
    this.#pos = 0;
    return true;
  }

  /**
   * Moves the unread bytes (pending ones first) to the start of a new
   * buffer with room for at least `size` bytes, retires the current one and
   * returns the whole new buffer (the caller sets the filled length).
   */
  #rechunk(size: number): Uint8Array {
    const next = new Uint8Array(takeBuffer(size));
    let at = 0;
    for (const p of this.#pending) {
      next.set(p, at);
      at += p.length;
    }
    this.#pending = [];
    this.#pendingBytes = 0;
    next.set(this.#chunk.subarray(this.#pos), at);
    this.#retire(this.#chunk.buffer);
    this.#chunk = next.subarray(0, 0);
    this.#pos = 0;
    return next;
  }

  /** The next `n` bytes (after {@linkcode ensure}), not consumed. */
  peek(n: number): Uint8Array {
    return this.#chunk.subarray(this.#pos, this.#pos + n);
  }

  /**
   * Consumes the next `n` bytes (after {@linkcode ensure}) and returns them
   * as a view; give it back with {@linkcode release} once nothing reads it,
   * so the buffer can be reused.
   */
  take(n: number): Uint8Array {
    const view = this.#chunk.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    const buf = view.buffer;
    const views = this.#views ??= new Map();
    views.set(buf, (views.get(buf) ?? 0) + 1);
    return view;
  }

  /** Ends a view from {@linkcode take}. */
  release(view: Uint8Array): void {
    const buf = view.buffer;
    const views = this.#views;
    const left = (views?.get(buf) ?? 1) - 1;
    if (left > 0) {
      views!.set(buf, left);
      return;
    }
    if (views?.delete(buf) && views.size === 0) this.#views = null;
    if (buf !== this.#chunk.buffer) recycleBuffer(buf);
  }

  /** A buffer stops being current: reuse it once its views are released. */
  #retire(buf: ArrayBufferLike): void {
    if (!this.#views?.has(buf) && buf.byteLength > 0) recycleBuffer(buf);
  }

  /** Cancels the underlying stream and releases the lock (closes a raw
   * connection). */
  async cancel(reason?: unknown): Promise<void> {
    if (this.#raw) {
      closeQuietly(this.#raw);
      return;
    }
    const r = this.#byob ?? this.#plain!;
    try {
      await r.cancel(reason);
    } catch {
      // The stream may already be errored; nothing left to release.
    }
    try {
      r.releaseLock();
    } catch {
      // Already released.
    }
  }
}
