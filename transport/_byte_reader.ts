/**
 * Exact-length reads from a byte stream.
 *
 * Uses a BYOB reader when the stream is a byte stream (`Deno.Conn`, our
 * in-memory pairs), so a packet lands directly in the buffer it will be
 * decrypted from; falls back to a default reader and a chunk queue
 * otherwise. Bytes read past what a caller asked for (only possible in the
 * fallback mode and while reading the version line) are kept for the next
 * read, never re-scanned.
 *
 * @module
 */

export class ByteReader {
  readonly #byob: ReadableStreamBYOBReader | null;
  readonly #plain: ReadableStreamDefaultReader<Uint8Array> | null;
  /** Bytes already read from the stream but not yet consumed. */
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;

  constructor(stream: ReadableStream<Uint8Array>) {
    let byob: ReadableStreamBYOBReader | null = null;
    try {
      byob = stream.getReader({ mode: "byob" });
    } catch {
      byob = null;
    }
    this.#byob = byob;
    this.#plain = byob ? null : stream.getReader();
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

  /**
   * Reads exactly `n` bytes into `target` at `offset`. A BYOB read transfers
   * the buffer, so the caller must use the returned array (same bytes, new
   * owner) instead of `target`. Returns null when the stream ends before the
   * first byte; throws when it ends midway.
   */
  async readInto(
    target: Uint8Array,
    offset: number,
    n: number,
  ): Promise<Uint8Array | null> {
    let got = 0;
    while (got < n && this.#pendingBytes > 0) {
      const first = this.#pending[0];
      const take = Math.min(first.length, n - got);
      target.set(first.subarray(0, take), offset + got);
      got += take;
      this.#pendingBytes -= take;
      if (take === first.length) this.#pending.shift();
      else this.#pending[0] = first.subarray(take);
    }
    if (this.#byob) {
      // Captured up front: a detached view reports byteOffset 0.
      const base = target.byteOffset;
      const size = target.length;
      while (got < n) {
        const view = target.subarray(offset + got, offset + n);
        const { value, done } = await this.#byob.read(view, {
          min: view.length,
        });
        if (done || !value) {
          if (got === 0) return null;
          throw new SyntaxError(
            `Connection closed in the middle of a packet (${got} of ${n} bytes)`,
          );
        }
        target = new Uint8Array(value.buffer, base, size);
        got += value.length;
      }
      return target;
    }
    while (got < n) {
      const { value, done } = await this.#plain!.read();
      if (done || !value) {
        if (got === 0) return null;
        throw new SyntaxError(
          `Connection closed in the middle of a packet (${got} of ${n} bytes)`,
        );
      }
      const take = Math.min(value.length, n - got);
      target.set(value.subarray(0, take), offset + got);
      got += take;
      if (take < value.length) this.unshift(value.subarray(take));
    }
    return target;
  }

  /** Cancels the underlying stream and releases the lock. */
  async cancel(reason?: unknown): Promise<void> {
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
