/**
 * One SSH channel (RFC 4254 section 5): its flow-control windows, Web
 * Streams for data and extended data, request/reply queues and the
 * EOF/CLOSE handshake. Private to `connection/`; the public faces are the
 * session objects in `session.ts`.
 *
 * @module
 */

import { allocPayload, isHandedOver } from "../transport/_packet_room.ts";
import { ignore, SETTLED } from "../transport/_settled.ts";
import { DisconnectError } from "../errors.ts";
import { DisconnectReason, Msg } from "../wire/messages.ts";
import type { SshReader } from "../wire/reader.ts";
import { SshWriter } from "../wire/writer.ts";

/** Largest window either side may have (RFC 4254 section 5.2: uint32). */
export const MAX_WINDOW = 0xffff_ffff;
/**
 * Most data bytes we put in one CHANNEL_DATA, whatever the peer allows: the
 * whole packet must stay within the 256 KiB packet limit of OpenSSH and our
 * transport, so leave room for the header, padding and compression.
 */
export const MAX_PEER_PACKET = 256 * 1024 - 1024;

/** Builds the error that ends the connection for a protocol violation. */
export function protocolError(message: string): DisconnectError {
  return new DisconnectError(DisconnectReason.PROTOCOL_ERROR, message);
}

/** Returns `promise` after marking it handled, so an unobserved rejection never crashes the process. */
export function quiet<T>(promise: Promise<T>): Promise<T> {
  promise.catch(ignore);
  return promise;
}

/** What a channel needs from its connection. */
export interface ChannelHost {
  /** Sends one message payload through the transport. */
  send(payload: Uint8Array): Promise<void>;
  /** Removes the channel from the table (both CLOSE messages exchanged, or open failed). */
  free(channel: Channel): void;
}

/**
 * Handles one incoming channel request; the result answers `want_reply`.
 * `body` holds the type-specific fields.
 */
export type ChannelRequestHandler = (
  type: string,
  body: SshReader,
) => boolean | Promise<boolean>;

/**
 * The receiving half of a data stream. Chunks are handed to the application
 * only when it reads (the stream's high-water mark is zero), and each chunk
 * handed over is reported through `onConsumed`, which is what lets the
 * channel re-open the window: a slow reader slows only its own sender.
 */
class Inbound {
  // The stream is built on first use: most channels never read one of their
  // two (a server session's extended data, a client's unread stderr), and a
  // ReadableStream with its controller and closures costs about 1 KiB.
  #stream: ReadableStream<Uint8Array> | null = null;
  #queue: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #failed: Error | null = null;
  #discard = false;
  #wake: (() => void) | null = null;
  #controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  readonly #onConsumed: (n: number) => void;

  constructor(onConsumed: (n: number) => void) {
    this.#onConsumed = onConsumed;
  }

  get stream(): ReadableStream<Uint8Array> {
    return this.#stream ??= new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
        if (this.#failed) controller.error(this.#failed);
      },
      pull: (controller) => this.#pull(controller),
      cancel: () => {
        // The application does not want this data any more. Keep giving
        // the window back so the peer never stalls on a stream nobody reads
        // (the channel itself stays open: exit statuses still matter).
        this.#discard = true;
        const n = this.#buffered;
        this.#queue = [];
        this.#buffered = 0;
        this.#wakeUp();
        if (n > 0) this.#onConsumed(n);
      },
    }, { highWaterMark: 0 });
  }

  /** Bytes received but not yet read by the application. */
  get buffered(): number {
    return this.#buffered;
  }

  push(chunk: Uint8Array): void {
    if (this.#discard || this.#failed) {
      this.#onConsumed(chunk.length);
      return;
    }
    this.#queue.push(chunk);
    this.#buffered += chunk.length;
    this.#wakeUp();
  }

  /** No more data: the stream ends once the buffered data has been read. */
  end(): void {
    this.#ended = true;
    this.#wakeUp();
  }

  /** Errors the stream unless it already has all its data (EOF seen). */
  fail(error: Error): void {
    if (this.#ended || this.#failed || this.#discard) {
      this.#ended = true;
      this.#wakeUp();
      return;
    }
    this.#failed = error;
    this.#queue = [];
    this.#buffered = 0;
    try {
      // Not built yet: the stream starts errored when it is.
      this.#controller?.error(error);
    } catch {
      // Already closed.
    }
    this.#wakeUp();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  async #pull(
    controller: ReadableStreamDefaultController<Uint8Array>,
  ): Promise<void> {
    for (;;) {
      if (this.#failed || this.#discard) return;
      const chunk = this.#queue.shift();
      if (chunk !== undefined) {
        this.#buffered -= chunk.length;
        controller.enqueue(chunk);
        this.#onConsumed(chunk.length);
        return;
      }
      if (this.#ended) {
        controller.close();
        return;
      }
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }
}

interface Pending {
  resolve(ok: boolean): void;
  reject(error: Error): void;
}

/** One channel of a connection, from open to both CLOSE messages. */
export class Channel {
  /** Our channel number (the peer's "recipient channel"). */
  readonly localId: number;
  /** Channel type, e.g. `"session"`. */
  readonly type: string;
  /** The peer's channel number, once open. */
  remoteId = 0;
  /** Handles incoming channel requests; unset means every request is refused. */
  requestHandler: ChannelRequestHandler | null = null;
  /**
   * Close by ourselves once EOF went both ways (byte channels; a session
   * instead closes after its exit status).
   */
  closeAfterEofs = false;

  readonly #host: ChannelHost;
  #state: "opening" | "open" | "gone" = "opening";
  /** The connection failed (or the open failed): the reason. */
  #error: Error | null = null;

  // Receiving: what the peer may still send, and what was consumed but not
  // yet given back with WINDOW_ADJUST.
  readonly #windowSize: number;
  #localWindow: number;
  #unadjusted = 0;
  readonly #data: Inbound;
  /** Extended data (stderr) in; made on first use (see `#extended`). */
  #extendedIn: Inbound | null = null;

  // Sending.
  #remoteWindow = 0;
  #remoteMaxPacket = 0;
  #windowWaiters: Pending[] = [];
  #writers = 0;
  #writersDone = 0;
  #busy = new Set<Promise<void>>();

  #eofSent = false;
  #eofReceived = false;
  #closeSent = false;
  #closeReceived = false;

  // Requests we sent that want a reply, oldest first (RFC 4254 section 5.4).
  #pendingReplies: Pending[] = [];
  // Incoming requests are answered in order; later ones wait for earlier ones.
  #requestChain: Promise<void> = SETTLED;
  #requestsRunning = 0;

  #resolveOpen!: () => void;
  #rejectOpen!: (error: Error) => void;
  /** Settles when the peer confirms or refuses the open (outgoing channels). */
  readonly opened: Promise<void>;
  #resolveClosed!: () => void;
  /** Resolves once the channel is gone: both CLOSE messages, or the connection ended. Never rejects. */
  readonly closed: Promise<void>;

  constructor(
    host: ChannelHost,
    localId: number,
    type: string,
    windowSize: number,
  ) {
    this.#host = host;
    this.localId = localId;
    this.type = type;
    this.#windowSize = windowSize;
    this.#localWindow = windowSize;
    this.#data = new Inbound((n) => this.#consumed(n));
    this.opened = quiet(
      new Promise<void>((resolve, reject) => {
        this.#resolveOpen = resolve;
        this.#rejectOpen = reject;
      }),
    );
    this.closed = new Promise<void>((resolve) => this.#resolveClosed = resolve);
  }

  /**
   * Most channels never carry extended data (a client sends none on a
   * session), so its queue is only made when something touches it.
   */
  get #extended(): Inbound {
    return this.#extendedIn ??= new Inbound((n) => this.#consumed(n));
  }

  /** Data from the peer (CHANNEL_DATA). */
  get readable(): ReadableStream<Uint8Array> {
    return this.#data.stream;
  }

  /** Extended data of type 1 from the peer (stderr). */
  get stderr(): ReadableStream<Uint8Array> {
    return this.#extended.stream;
  }

  /** True between the open confirmation and the end. */
  get isOpen(): boolean {
    return this.#state === "open";
  }

  /** True until the open is confirmed or refused. */
  get isOpening(): boolean {
    return this.#state === "opening";
  }

  /** The error the connection failed with, if it did. */
  get error(): Error | null {
    return this.#error;
  }

  /** Whether we sent CLOSE (or the channel is gone). */
  get closing(): boolean {
    return this.#closeSent || this.#state === "gone";
  }

  /** Whether the peer sent CLOSE. */
  get closeReceived(): boolean {
    return this.#closeReceived;
  }

  /** Bytes the peer may still send before it must wait for us (tests, limits). */
  get localWindow(): number {
    return this.#localWindow;
  }

  /** Bytes received but not yet read by the application, both streams. */
  get buffered(): number {
    return this.#data.buffered + (this.#extendedIn?.buffered ?? 0);
  }

  /** The open handshake completed: the peer's id, window and max packet. */
  open(remoteId: number, window: number, maxPacket: number): void {
    this.remoteId = remoteId;
    this.#remoteWindow = window;
    // Cap what the peer allows: we never build packets above 256 KiB, and a
    // zero max packet would stall every write forever.
    this.#remoteMaxPacket = Math.max(1, Math.min(maxPacket, MAX_PEER_PACKET));
    this.#state = "open";
    this.#resolveOpen();
    this.#settledOpen();
  }

  /** `opened` has settled: drop its resolvers (a channel may live long). */
  #settledOpen(): void {
    this.#resolveOpen = this.#rejectOpen = ignore;
  }

  /** The peer refused the open, or the connection ended before it answered. */
  openFailed(error: Error): void {
    this.#fail(error);
  }

  // ---- receiving ----------------------------------------------------------

  #consumed(n: number): void {
    this.#unadjusted += n;
    // Give the window back once half of it was consumed: few messages, and
    // the peer always has at least half a window in flight.
    if (
      this.#state !== "open" || this.#closeSent || this.#closeReceived ||
      this.#eofReceived || this.#unadjusted < this.#windowSize / 2
    ) return;
    const n2 = this.#unadjusted;
    this.#unadjusted = 0;
    this.#localWindow += n2;
    this.#sendQuiet(
      new SshWriter(9).byte(Msg.CHANNEL_WINDOW_ADJUST).uint32(this.remoteId)
        .uint32(n2).bytes(),
    );
  }

  #receive(length: number, what: string): boolean {
    if (this.#closeReceived) {
      throw protocolError(
        `Received ${what} on channel ${this.localId} after CLOSE`,
      );
    }
    if (this.#eofReceived) {
      throw protocolError(
        `Received ${what} on channel ${this.localId} after EOF`,
      );
    }
    if (length > this.#localWindow) {
      throw protocolError(
        `Received ${length} bytes of ${what} on channel ${this.localId} but the window is ${this.#localWindow}`,
      );
    }
    this.#localWindow -= length;
    // After our CLOSE the peer may still have data in flight; drop it.
    return !this.#closeSent;
  }

  /** CHANNEL_DATA (RFC 4254 section 5.2). */
  onData(data: Uint8Array): void {
    if (this.#receive(data.length, "CHANNEL_DATA")) {
      // A view suffices when the transport gave up the packet's buffer;
      // other links may reuse theirs, so their bytes are copied.
      this.#data.push(isHandedOver(data) ? data : data.slice());
    }
  }

  /** CHANNEL_EXTENDED_DATA; type 1 is stderr, other types are counted and dropped. */
  onExtendedData(dataType: number, data: Uint8Array): void {
    if (!this.#receive(data.length, "CHANNEL_EXTENDED_DATA")) return;
    if (dataType === 1) {
      this.#extended.push(isHandedOver(data) ? data : data.slice());
    } else this.#consumed(data.length);
  }

  /** CHANNEL_WINDOW_ADJUST. */
  onWindowAdjust(bytes: number): void {
    if (this.#closeReceived) {
      throw protocolError(
        `Received CHANNEL_WINDOW_ADJUST on channel ${this.localId} after CLOSE`,
      );
    }
    if (this.#remoteWindow + bytes > MAX_WINDOW) {
      throw protocolError(
        `CHANNEL_WINDOW_ADJUST of ${bytes} on channel ${this.localId} overflows the window of ${this.#remoteWindow}`,
      );
    }
    this.#remoteWindow += bytes;
    if (bytes > 0) this.#wakeWriters(null);
  }

  /** CHANNEL_EOF: both streams end after their buffered data. */
  onEof(): void {
    if (this.#closeReceived) {
      throw protocolError(
        `Received CHANNEL_EOF on channel ${this.localId} after CLOSE`,
      );
    }
    this.#eofReceived = true;
    this.#data.end();
    this.#extended.end();
    this.#closeIfDone();
  }

  #closeIfDone(): void {
    if (
      this.closeAfterEofs && this.#eofSent && this.#eofReceived &&
      !this.#closeSent && this.#state === "open"
    ) quiet(this.close());
  }

  /** Whether the peer sent CHANNEL_EOF. */
  get eofReceived(): boolean {
    return this.#eofReceived;
  }

  /** Whether we sent CHANNEL_EOF. */
  get eofSent(): boolean {
    return this.#eofSent;
  }

  /** CHANNEL_CLOSE: answer with CLOSE unless sent, then free the channel. */
  onClose(): void {
    if (this.#closeReceived) {
      throw protocolError(
        `Received CHANNEL_CLOSE twice on channel ${this.localId}`,
      );
    }
    this.#closeReceived = true;
    this.#data.end();
    this.#extended.end();
    const error = new Error(`Channel ${this.localId} was closed by the peer`);
    this.#wakeWriters(error);
    this.#rejectPending(error);
    if (!this.#closeSent) this.#sendClose();
    this.#finish();
  }

  /** CHANNEL_REQUEST: run the handler in order, answer if asked. */
  onRequest(type: string, wantReply: boolean, body: SshReader): void {
    if (this.#closeReceived) {
      throw protocolError(
        `Received CHANNEL_REQUEST on channel ${this.localId} after CLOSE`,
      );
    }
    const handler = this.requestHandler;
    const run = (): boolean | Promise<boolean> => {
      if (handler === null || this.#error !== null) return false;
      try {
        return handler(type, body);
      } catch {
        return false;
      }
    };
    const answer = (ok: boolean): void => {
      if (!wantReply || this.#closeSent || this.#state !== "open") return;
      this.#sendQuiet(
        new SshWriter(5).byte(ok ? Msg.CHANNEL_SUCCESS : Msg.CHANNEL_FAILURE)
          .uint32(this.remoteId).bytes(),
      );
    };
    if (this.#requestsRunning === 0) {
      // Fast path: nothing queued, the handler answers synchronously.
      const result = run();
      if (!(result instanceof Promise)) {
        answer(result === true);
        return;
      }
      this.#chainRequest(() => result, answer);
      return;
    }
    this.#chainRequest(run, answer);
  }

  #chainRequest(
    run: () => boolean | Promise<boolean>,
    answer: (ok: boolean) => void,
  ): void {
    this.#requestsRunning++;
    this.#requestChain = this.#requestChain.then(async () => {
      let ok = false;
      try {
        ok = (await run()) === true;
      } catch {
        ok = false;
      }
      this.#requestsRunning--;
      answer(ok);
    });
  }

  /** CHANNEL_SUCCESS / CHANNEL_FAILURE; unsolicited ones are dropped. */
  onReply(ok: boolean): void {
    // An unsolicited reply is dropped rather than matched to a later request
    // (THREATS.md "Unsolicited replies").
    this.#pendingReplies.shift()?.resolve(ok);
  }

  // ---- sending ------------------------------------------------------------

  #sendQuiet(payload: Uint8Array): void {
    this.#host.send(payload).catch(() => {});
  }

  #wakeWriters(error: Error | null): void {
    const waiters = this.#windowWaiters;
    this.#windowWaiters = [];
    for (const w of waiters) {
      if (error === null) w.resolve(true);
      else w.reject(error);
    }
  }

  #rejectPending(error: Error): void {
    const pending = this.#pendingReplies;
    this.#pendingReplies = [];
    for (const p of pending) p.reject(error);
  }

  #checkWritable(): void {
    if (this.#error !== null) throw this.#error;
    if (this.#closeSent || this.#closeReceived || this.#state === "gone") {
      throw new Error(`Cannot write to channel ${this.localId}: it is closed`);
    }
    if (this.#eofSent) {
      throw new Error(
        `Cannot write to channel ${this.localId}: EOF was already sent`,
      );
    }
  }

  /** Sends `chunk` as CHANNEL_DATA (dataType 0) or EXTENDED_DATA, waiting for window. */
  async #write(chunk: Uint8Array, dataType: number): Promise<void> {
    const header = dataType === 0 ? 9 : 13;
    let offset = 0;
    while (offset < chunk.length) {
      this.#checkWritable();
      if (this.#remoteWindow === 0) {
        await new Promise<boolean>((resolve, reject) =>
          this.#windowWaiters.push({ resolve, reject })
        );
        continue;
      }
      const n = Math.min(
        chunk.length - offset,
        this.#remoteWindow,
        this.#remoteMaxPacket,
      );
      this.#remoteWindow -= n;
      // Room around the payload lets the transport frame and seal it in
      // place (transport/_packet_room.ts): no copy per layer.
      const payload = allocPayload(header + n);
      const view = new DataView(
        payload.buffer,
        payload.byteOffset,
        payload.byteLength,
      );
      view.setUint8(
        0,
        dataType === 0 ? Msg.CHANNEL_DATA : Msg.CHANNEL_EXTENDED_DATA,
      );
      view.setUint32(1, this.remoteId);
      if (dataType !== 0) view.setUint32(5, dataType);
      view.setUint32(header - 4, n);
      payload.set(chunk.subarray(offset, offset + n), header);
      offset += n;
      await this.#host.send(payload);
    }
  }

  /**
   * A writable stream for data (0) or extended data of type `dataType`.
   * EOF is sent once every writable made here was closed.
   */
  createWritable(dataType: number): WritableStream<Uint8Array> {
    return this.lazyWritable(dataType)();
  }

  /**
   * Like {@linkcode createWritable}, but the stream is built on the first
   * call of the returned function. The writer counts from now on, so EOF
   * still waits for it; a stream that is never built never needs closing
   * (a server session's stderr, usually). A WritableStream with its
   * controller, abort signal and closures is over 1 KiB, per session.
   */
  lazyWritable(dataType: number): () => WritableStream<Uint8Array> {
    this.#writers++;
    let stream: WritableStream<Uint8Array> | null = null;
    return () => stream ??= this.#buildWritable(dataType);
  }

  #buildWritable(dataType: number): WritableStream<Uint8Array> {
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      this.#writersDone++;
    };
    return new WritableStream<Uint8Array>({
      write: (chunk) => {
        if (!(chunk instanceof Uint8Array)) {
          throw new TypeError(
            `Cannot write to channel ${this.localId}: chunk is not a Uint8Array`,
          );
        }
        const p = this.#write(chunk, dataType);
        const tracked = p.finally(() => this.#busy.delete(tracked));
        this.#busy.add(quiet(tracked));
        return p;
      },
      close: async () => {
        finish();
        if (this.#writersDone === this.#writers) await this.sendEof();
      },
      abort: () => {
        finish();
        quiet(this.close());
      },
    });
  }

  /** Resolves once no write is in progress on any of our writables. */
  async idle(): Promise<void> {
    // A write that completes lets the stream hand its next queued chunk to
    // the sink a few microtasks later; look again after those.
    for (let quietTurns = 0; quietTurns < 8;) {
      if (this.#busy.size > 0) {
        quietTurns = 0;
        await Promise.allSettled([...this.#busy]);
      } else {
        quietTurns++;
        await null;
      }
    }
  }

  /** Sends CHANNEL_EOF unless already sent or the channel is closing. */
  async sendEof(): Promise<void> {
    if (this.#eofSent || this.#closeSent || this.#state !== "open") return;
    this.#eofSent = true;
    const sent = this.#host.send(
      new SshWriter(5).byte(Msg.CHANNEL_EOF).uint32(this.remoteId).bytes(),
    );
    this.#closeIfDone();
    await sent;
  }

  /**
   * Sends a channel request. With `wantReply`, resolves with the peer's
   * answer (true for CHANNEL_SUCCESS); without it, resolves true once sent.
   */
  async request(
    type: string,
    wantReply: boolean,
    body?: Uint8Array,
  ): Promise<boolean> {
    await this.opened;
    if (this.#error !== null) throw this.#error;
    if (this.#closeSent || this.#closeReceived || this.#state !== "open") {
      throw new Error(
        `Cannot send ${type} request on channel ${this.localId}: it is closed`,
      );
    }
    const w = new SshWriter(32 + (body?.length ?? 0)).byte(Msg.CHANNEL_REQUEST)
      .uint32(this.remoteId).string(type).boolean(wantReply);
    if (body !== undefined) w.raw(body);
    let reply: Promise<boolean> | undefined;
    if (wantReply) {
      reply = quiet(
        new Promise<boolean>((resolve, reject) =>
          this.#pendingReplies.push({ resolve, reject })
        ),
      );
    }
    await this.#host.send(w.bytes());
    return reply === undefined ? true : await reply;
  }

  #sendClose(): void {
    this.#closeSent = true;
    const error = new Error(`Channel ${this.localId} is closed`);
    this.#wakeWriters(error);
    this.#sendQuiet(
      new SshWriter(5).byte(Msg.CHANNEL_CLOSE).uint32(this.remoteId).bytes(),
    );
  }

  /**
   * Closes the channel from our side: EOF (if not sent) then CLOSE; the
   * streams end after their buffered data. Resolves once the channel is gone.
   */
  close(): Promise<void> {
    if (this.#state === "opening") {
      // Wait for the answer to our open, then close what was opened.
      return this.opened.then(() => this.close(), () => {});
    }
    if (this.#state === "open" && !this.#closeSent) {
      if (!this.#eofSent) {
        this.#eofSent = true;
        this.#sendQuiet(
          new SshWriter(5).byte(Msg.CHANNEL_EOF).uint32(this.remoteId).bytes(),
        );
      }
      this.#sendClose();
      this.#data.end();
      this.#extended.end();
      this.#rejectPending(new Error(`Channel ${this.localId} is closed`));
      this.#finish();
    }
    return this.closed;
  }

  /** Sends a final request (exit-status, exit-signal) after pending writes, then EOF and CLOSE. */
  async finishWith(type: string, body: Uint8Array): Promise<void> {
    await this.opened;
    await this.idle();
    if (this.#closeSent || this.#state !== "open") return;
    // Sent in this order, synchronously, so the transport keeps the order.
    this.#sendQuiet(
      new SshWriter(32 + body.length).byte(Msg.CHANNEL_REQUEST)
        .uint32(this.remoteId).string(type).boolean(false).raw(body).bytes(),
    );
    await this.close();
  }

  #finish(): void {
    if (!this.#closeSent || !this.#closeReceived || this.#state === "gone") {
      return;
    }
    this.#state = "gone";
    this.#host.free(this);
    // Requests received before CLOSE (exit-status) are handled first.
    this.#requestChain.then(() => this.#resolveClosed());
  }

  /** The connection ended: fail everything still waiting. */
  fail(error: Error): void {
    this.#fail(error);
  }

  #fail(error: Error): void {
    if (this.#state === "gone") {
      // Closed normally but maybe still waiting for a request handler that
      // will never finish now.
      this.#resolveClosed();
      return;
    }
    this.#state = "gone";
    this.#error = error;
    this.#rejectOpen(error);
    this.#settledOpen();
    this.#data.fail(error);
    this.#extended.fail(error);
    this.#wakeWriters(error);
    this.#rejectPending(error);
    this.#host.free(this);
    this.#resolveClosed();
  }
}
