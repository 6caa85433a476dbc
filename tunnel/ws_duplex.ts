/**
 * A WebSocket as a byte {@linkcode Duplex} for the SSH transport, with the
 * tunnel's JSON control messages (ping/pong, reconnect) on text frames.
 *
 * Binary messages carry raw SSH bytes in any chunking. Outgoing writes wait
 * while the socket's `bufferedAmount` is above a high-water mark, so a slow
 * peer slows the SSH transport (and through the channel windows, every
 * producer) instead of filling memory. Incoming bytes wait in a bounded
 * queue (the transport reads them as it processes packets); SSH's channel
 * windows keep an honest peer far below the bound, and a peer that exceeds
 * it, or sends a message larger than the limit, is disconnected with close
 * code 1008. Liveness: every `pingInterval` we send `{"type":"ping"}`; a
 * peer from which nothing at all arrived for `pingTimeout` is closed.
 *
 * @module
 */
import type { Duplex } from "../transport/duplex.ts";

/** Options for {@linkcode webSocketDuplex}. */
export interface WebSocketDuplexOptions {
  /**
   * Largest binary or text message accepted, in bytes.
   * @default {1048576}
   */
  maxMessageSize?: number;
  /**
   * Most received bytes waiting for the reader before the peer is cut off.
   * @default {16777216}
   */
  maxQueuedBytes?: number;
  /**
   * Writes wait while more than this many bytes are buffered in the socket.
   * @default {1048576}
   */
  highWaterMark?: number;
  /**
   * Milliseconds between our `ping` control messages (0 disables).
   * @default {20000}
   */
  pingInterval?: number;
  /**
   * Milliseconds of silence from the peer after which it is dead.
   * @default {3 * pingInterval}
   */
  pingTimeout?: number;
  /** A control message other than ping/pong arrived. */
  onControl?: (message: Record<string, unknown>) => void;
  /** A limit or liveness problem closed the socket. */
  onViolation?: (kind: "message-size" | "queue" | "dead-peer") => void;
}

/** A WebSocket seen as SSH bytes plus control messages. */
export interface WebSocketDuplex extends Duplex {
  /** Sends a JSON control message (ignored once closed). */
  sendControl(message: Record<string, unknown>): void;
  /** Closes the socket with a code and reason (idempotent). */
  close(code?: number, reason?: string): void;
  /**
   * The code and reason used when the writable side is closed (the SSH
   * transport finished): 1000 by default, 1012 during a shutdown.
   */
  setCloseReason(code: number, reason: string): void;
  /** Resolves with the close code and reason once the socket has closed. */
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Binary bytes received so far. */
  readonly bytesIn: number;
  /** Binary bytes sent so far. */
  readonly bytesOut: number;
}

const OPEN = 1;

/**
 * Wraps `socket` (open or still connecting) as a {@linkcode WebSocketDuplex}.
 *
 * @example A byte pair over a real loopback WebSocket
 * ```ts
 * import { webSocketDuplex } from "@fynx/ssh/tunnel";
 * import assert from "node:assert/strict";
 *
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
 *   const { socket, response } = Deno.upgradeWebSocket(req);
 *   const duplex = webSocketDuplex(socket, { pingInterval: 0 });
 *   duplex.readable.pipeTo(duplex.writable).catch(() => {}); // echo
 *   return response;
 * });
 * const ws = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
 * const client = webSocketDuplex(ws, { pingInterval: 0 });
 * const writer = client.writable.getWriter();
 * await writer.write(new TextEncoder().encode("hello"));
 * const { value } = await client.readable.getReader().read();
 * assert.equal(new TextDecoder().decode(value), "hello");
 * client.close(1000, "done");
 * await client.closed;
 * await server.shutdown();
 * ```
 */
export function webSocketDuplex(
  socket: WebSocket,
  options: WebSocketDuplexOptions = {},
): WebSocketDuplex {
  const maxMessage = options.maxMessageSize ?? 1024 * 1024;
  const maxQueued = options.maxQueuedBytes ?? 16 * 1024 * 1024;
  const highWater = options.highWaterMark ?? 1024 * 1024;
  const pingInterval = options.pingInterval ?? 20_000;
  const pingTimeout = options.pingTimeout ?? pingInterval * 3;
  socket.binaryType = "arraybuffer";
  let bytesIn = 0;
  let bytesOut = 0;
  let lastSeen = Date.now();
  let pingId = 0;
  let closing = false;
  let endCode = 1000;
  let endReason = "done";
  const { promise: closed, resolve: resolveClosed } = Promise.withResolvers<
    { code: number; reason: string }
  >();
  const { promise: opened, resolve: resolveOpened, reject: rejectOpened } =
    Promise.withResolvers<void>();
  opened.catch(() => {});
  if (socket.readyState === OPEN) resolveOpened();

  let controller!: ReadableByteStreamController;
  let readableDone = false;
  const readable = new ReadableStream({
    type: "bytes",
    start(c: ReadableByteStreamController) {
      controller = c;
    },
    cancel() {
      readableDone = true;
      close(1000, "reader done");
    },
  }, { highWaterMark: 0 });

  const close = (code = 1000, reason = "") => {
    if (closing) return;
    closing = true;
    try {
      // Close reasons are limited to 123 bytes of UTF-8.
      socket.close(code, reason.slice(0, 120));
    } catch {
      // Already closed.
    }
  };

  const violate = (
    kind: "message-size" | "queue" | "dead-peer",
    reason: string,
  ) => {
    options.onViolation?.(kind);
    close(1008, reason);
  };

  socket.addEventListener("open", () => resolveOpened());
  socket.addEventListener("message", (event: MessageEvent) => {
    lastSeen = Date.now();
    const data = event.data;
    if (typeof data === "string") {
      if (data.length > maxMessage) {
        return violate("message-size", "message too big");
      }
      let message: unknown;
      try {
        message = JSON.parse(data);
      } catch {
        return; // Not a control message we know; ignore.
      }
      if (typeof message !== "object" || message === null) return;
      const m = message as Record<string, unknown>;
      if (m.type === "ping") {
        sendControl({ type: "pong", id: m.id });
      } else if (m.type !== "pong") {
        options.onControl?.(m);
      }
      return;
    }
    if (!(data instanceof ArrayBuffer)) return;
    if (data.byteLength > maxMessage) {
      return violate("message-size", "message too big");
    }
    if (readableDone || data.byteLength === 0) return;
    bytesIn += data.byteLength;
    controller.enqueue(new Uint8Array(data));
    if (-(controller.desiredSize ?? 0) > maxQueued) {
      violate("queue", "receive queue overflow");
    }
  });
  const finish = (code: number, reason: string) => {
    closing = true;
    clearInterval(pinger);
    rejectOpened(new Error(`WebSocket closed (${code})`));
    if (!readableDone) {
      readableDone = true;
      try {
        controller.close();
        // A BYOB read in progress must be answered even when nothing is left.
        controller.byobRequest?.respond(0);
      } catch {
        // Already closed or errored.
      }
    }
    resolveClosed({ code, reason });
  };
  socket.addEventListener(
    "close",
    (event: CloseEvent) => finish(event.code, event.reason),
  );
  socket.addEventListener("error", () => {
    // A close event follows; nothing to do here but keep it handled.
  });

  const pinger = pingInterval > 0
    ? setInterval(() => {
      if (socket.readyState !== OPEN) return;
      if (Date.now() - lastSeen > pingTimeout) {
        violate("dead-peer", "peer not responding");
        // A dead peer never completes the closing handshake.
        finish(1006, "peer not responding");
        return;
      }
      sendControl({ type: "ping", id: ++pingId });
    }, pingInterval)
    : undefined;

  const sendControl = (message: Record<string, unknown>) => {
    if (socket.readyState !== OPEN) return;
    try {
      socket.send(JSON.stringify(message));
    } catch {
      // Closing meanwhile.
    }
  };

  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      await opened;
      if (socket.readyState !== OPEN) throw new Error("WebSocket is closed");
      socket.send(chunk);
      bytesOut += chunk.byteLength;
      // Backpressure: wait for the socket to drain below the mark.
      let delay = 1;
      while (socket.readyState === OPEN && socket.bufferedAmount > highWater) {
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 50);
      }
    },
    close() {
      close(endCode, endReason);
    },
    abort() {
      close(1011, "aborted");
    },
  });

  return {
    readable,
    writable,
    sendControl,
    close,
    setCloseReason: (code: number, reason: string) => {
      endCode = code;
      endReason = reason;
    },
    closed,
    get bytesIn() {
      return bytesIn;
    },
    get bytesOut() {
      return bytesOut;
    },
  };
}
