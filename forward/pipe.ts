/**
 * Joins a forwarded channel and a socket: bytes flow both ways with
 * backpressure, and each direction ends on its own (half-close).
 *
 * @module
 */
import type { ByteChannel } from "../connection/channel.ts";

/** Bytes read from the socket at a time. */
const BUFFER_SIZE = 64 * 1024;

/** Options for {@linkcode pipeChannel}. */
export interface PipeChannelOptions {
  /**
   * Bytes to send on the channel before anything read from the socket
   * (e.g. what a SOCKS client sent right behind its request).
   */
  head?: Uint8Array;
  /**
   * Whether the peer's EOF shuts down the socket's sending side
   * (`closeWrite`). Turn it off for peers that take a half-close as an
   * abort (Deno's and other HTTP servers drop a request whose connection
   * half-closes before they read its body); the socket still closes when
   * the channel closes.
   * @default {true}
   */
  halfClose?: boolean;
}

async function writeAll(socket: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let offset = 0; offset < data.length;) {
    offset += await socket.write(data.subarray(offset));
  }
}

/**
 * Copies bytes between `channel` and `socket` in both directions until both
 * ended, then closes both; resolves once they are closed. Never rejects.
 *
 * - Backpressure: the socket is read only as fast as the SSH window lets
 *   the channel send, and the channel is read (so its window re-opens) only
 *   as fast as the socket takes the bytes.
 * - Half-close: end of data from the socket sends CHANNEL_EOF while the
 *   other direction keeps flowing; the peer's EOF shuts down the socket's
 *   sending side (`closeWrite`) while the socket may still send.
 * - A socket error (reset), the peer closing the channel or the connection
 *   ending closes both at once; data the peer sent before closing is still
 *   written to the socket first (as OpenSSH drains its buffers).
 *
 * @example Forward one TCP connection through a channel
 * ```ts ignore
 * import { openDirect, pipeChannel } from "@fynx/ssh/forward";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 8080 });
 * const socket = await listener.accept();
 * const channel = await openDirect(client, { hostname: "intranet", port: 80 });
 * await pipeChannel(channel, socket);
 * ```
 */
export async function pipeChannel(
  channel: ByteChannel,
  socket: Deno.Conn,
  options: PipeChannelOptions = {},
): Promise<void> {
  let socketClosed = false;
  const closeSocket = (): void => {
    if (socketClosed) return;
    socketClosed = true;
    try {
      socket.close();
    } catch {
      // Already closed.
    }
  };
  const abort = (): void => {
    closeSocket();
    channel.close().catch(() => {});
  };

  // Channel to socket. Ends with the peer's EOF (shut down our sending
  // side) or CLOSE, or fails when the connection fails or the socket stops
  // taking data.
  const toSocket = (async () => {
    const reader = channel.readable.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        await writeAll(socket, value);
      }
    } catch {
      abort();
      reader.cancel().catch(() => {});
      return;
    }
    if (socketClosed || options.halfClose === false) return;
    try {
      await socket.closeWrite();
    } catch {
      // The socket is gone already; the other direction finds out.
    }
  })();

  // Socket to channel. Ends with the socket's end of data (send EOF), or
  // fails when the socket is reset or closed, or the channel is closed.
  const toChannel = (async () => {
    const writer = channel.writable.getWriter();
    const buffer = new Uint8Array(BUFFER_SIZE);
    try {
      if (options.head !== undefined && options.head.length > 0) {
        await writer.write(options.head);
      }
      for (;;) {
        const n = await socket.read(buffer);
        if (n === null) break;
        // The channel copies the bytes into packets before this write
        // resolves, so the buffer can be reused right after.
        await writer.write(buffer.subarray(0, n));
      }
      await writer.close();
    } catch {
      if (!socketClosed) {
        // The socket failed (reset), or the channel is closing: no more
        // data can go this way. What the peer already sent still goes to
        // the socket (toSocket ends once the channel's data ends).
        writer.abort().catch(() => {});
        await toSocket;
        abort();
      }
    }
  })();

  // The channel is gone (both CLOSEs, or the connection ended): once its
  // remaining data is written, close the socket, which also ends a read
  // that would otherwise wait forever.
  channel.closed.then(async () => {
    await toSocket;
    closeSocket();
  });

  await Promise.all([toSocket, toChannel]);
  closeSocket();
  await channel.close();
}
