/**
 * Joins an agent channel and a Unix socket connection. Private to `agent/`.
 *
 * Agent traffic is small request/reply frames, but the join still keeps
 * backpressure (the socket is read only as fast as the SSH window lets us
 * send) and half-close (each direction ends on its own), as OpenSSH does for
 * forwarded agent sockets.
 *
 * @module
 */
import type { ByteChannel } from "../connection/channel.ts";

/** Bytes read from the socket at a time. */
const CHUNK = 16 * 1024;

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/**
 * Copies bytes both ways between `channel` and `socket` until both
 * directions ended, then closes both. Resolves once done; never rejects.
 *
 * `Deno.Conn`'s streams are not used: reading `readable` to its end closes
 * the whole socket, which would cut the other direction short.
 */
export async function joinSocket(
  channel: ByteChannel,
  socket: Deno.Conn,
): Promise<void> {
  let closed = false;
  const shut = (): void => {
    if (closed) return;
    closed = true;
    closeQuietly(socket);
    channel.close().catch(() => {});
  };

  // Channel to socket: the peer's EOF shuts down our sending side only.
  const toSocket = (async () => {
    const reader = channel.readable.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (let off = 0; off < value.length;) {
          off += await socket.write(value.subarray(off));
        }
      }
      if (!closed) await socket.closeWrite();
    } catch {
      reader.cancel().catch(() => {});
      shut();
    } finally {
      reader.releaseLock();
    }
  })();

  // Socket to channel: the socket's end of data becomes CHANNEL_EOF.
  const toChannel = (async () => {
    const writer = channel.writable.getWriter();
    try {
      for (;;) {
        // A fresh buffer per read: the channel may still hold the last one.
        const buffer = new Uint8Array(CHUNK);
        const n = await socket.read(buffer);
        if (n === null) break;
        await writer.write(buffer.subarray(0, n));
      }
      await writer.close();
    } catch {
      writer.abort().catch(() => {});
      shut();
    } finally {
      writer.releaseLock();
    }
  })();

  // The channel went away (both CLOSEs, or the connection ended): a read
  // from the socket would otherwise wait forever.
  channel.closed.then(async () => {
    await toSocket;
    shut();
  });

  await Promise.all([toSocket, toChannel]);
  shut();
  await channel.closed;
}
