/**
 * Direct I/O on connections we open or accept ourselves (`connect()` with a
 * hostname, `serve()`): `read()` and `write()` on the `Deno.Conn` instead of
 * its `readable`/`writable` streams.
 *
 * Why: each `Deno.Conn` stream pair is some twenty JS objects per
 * connection (controllers, readers, writers, queues, promises, closures),
 * which is a fair share of what an idle session costs, and every read or
 * write through them takes several promise hops more than the op itself.
 * Only connections whose streams nobody has touched qualify: a caller's
 * `Deno.Conn` passed as a duplex may already have bytes queued in its
 * `readable`, so it keeps the stream path.
 *
 * @module
 */
import { SETTLED } from "./_settled.ts";

/** What the transport uses of a `Deno.Conn`. */
export interface RawConn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

const ours = new WeakSet<object>();

/** Marks a connection we created, whose streams nobody has used. */
export function markRaw(conn: RawConn): void {
  ours.add(conn);
}

/** The connection, when it was marked by {@linkcode markRaw}. */
export function asRaw(duplex: object): RawConn | null {
  return ours.has(duplex) ? duplex as RawConn : null;
}

/** Closes, ignoring a connection that is already closed. */
export function closeQuietly(conn: RawConn): void {
  try {
    conn.close();
  } catch {
    // Already closed (BadResource): closing is all we wanted.
  }
}

/**
 * The part of `WritableStreamDefaultWriter` the transport uses, over
 * `conn.write()`. Writes go out in order, one at a time; `ready` waits
 * while one is in flight, as a stream with a high-water mark of one chunk
 * (the `Deno.Conn` writable's) does, so the caller prepares the next batch
 * while the kernel takes this one.
 */
export class RawWriter {
  readonly #conn: RawConn;
  #tail: Promise<void> = SETTLED;
  #inFlight = 0;
  #error: unknown = null;
  #waiter: PromiseWithResolvers<void> | null = null;
  #closed = false;

  constructor(conn: RawConn) {
    this.#conn = conn;
  }

  /** Resolves when no write is in flight; rejects once a write failed. */
  get ready(): Promise<void> {
    if (this.#error !== null) return Promise.reject(this.#error);
    if (this.#inFlight === 0) return Promise.resolve();
    this.#waiter ??= Promise.withResolvers<void>();
    return this.#waiter.promise;
  }

  /** Queues `bytes`; resolves once the kernel has taken all of them. */
  write(bytes: Uint8Array): Promise<void> {
    if (this.#error !== null) return Promise.reject(this.#error);
    if (this.#closed) {
      return Promise.reject(new TypeError("The connection is closed"));
    }
    this.#inFlight++;
    const p = this.#tail.then(async () => {
      if (this.#error !== null) throw this.#error;
      // A short write is normal for a socket: go on from where it stopped.
      for (let o = 0; o < bytes.length;) {
        o += await this.#conn.write(bytes.subarray(o));
      }
    });
    this.#tail = p.then(() => {
      if (--this.#inFlight === 0) this.#wake(null);
    }, (e) => {
      this.#inFlight--;
      this.#error ??= e;
      this.#wake(this.#error);
    });
    return p;
  }

  /** Waits for queued writes, then closes the connection. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#tail;
    closeQuietly(this.#conn);
    if (this.#error !== null) throw this.#error;
  }

  /** Closes the connection at once (queued writes fail). */
  abort(): Promise<void> {
    this.#closed = true;
    closeQuietly(this.#conn);
    return Promise.resolve();
  }

  #wake(error: unknown): void {
    const w = this.#waiter;
    this.#waiter = null;
    if (w === null) return;
    if (error === null) w.resolve();
    else w.reject(error);
  }
}
