// Channels other than sessions (connection/channel.ts): opening and
// accepting them both ways, flow control with large transfers, half-close,
// refusal with reason codes, and the default refusal.
import assert from "node:assert/strict";
import { ChannelOpenError } from "../errors.ts";
import { ChannelOpenFailure } from "../wire/messages.ts";
import { SshWriter } from "../wire/writer.ts";
import { SshReader } from "../wire/reader.ts";
import type { ByteChannel, IncomingChannel } from "../connection/mod.ts";
import { connectPair, pseudoRandomBytes, sha256hex } from "./_helpers.ts";

async function readAll(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Accepts every channel and echoes its bytes back, then half-closes. */
function echo(channel: IncomingChannel): void {
  const c = channel.accept();
  c.readable.pipeTo(c.writable).catch(() => {});
}

Deno.test("byte channel: client opens, server echoes 8 MiB with half-close", async () => {
  const seen: { type: string; host: string; port: number }[] = [];
  const pair = await connectPair({
    onChannelOpen(channel) {
      const r = new SshReader(channel.data, "direct-tcpip");
      seen.push({ type: channel.type, host: r.utf8(255), port: r.uint32() });
      echo(channel);
    },
  });
  try {
    const data = new SshWriter().string("example.org").uint32(80)
      .string("127.0.0.1").uint32(5555).bytes();
    const channel = await pair.client.openChannel("direct-tcpip", data);
    assert.equal(channel.type, "direct-tcpip");
    const payload = pseudoRandomBytes(8 * 1024 * 1024, 7);
    const back = readAll(channel.readable);
    const w = channel.writable.getWriter();
    // Many writes larger than one packet and the window together.
    for (let i = 0; i < payload.length; i += 300_000) {
      await w.write(payload.subarray(i, i + 300_000));
    }
    await w.close();
    assert.equal(sha256hex(await back), sha256hex(payload));
    await channel.closed;
    assert.deepEqual(seen, [{
      type: "direct-tcpip",
      host: "example.org",
      port: 80,
    }]);
    assert.equal(pair.client.connection.channelCount, 0);
  } finally {
    await pair.close();
  }
});

Deno.test("byte channel: half-close keeps the other direction flowing", async () => {
  let serverSide: ByteChannel | undefined;
  const ready = Promise.withResolvers<void>();
  const pair = await connectPair({
    onChannelOpen(channel) {
      serverSide = channel.accept();
      ready.resolve();
    },
  });
  try {
    const channel = await pair.client.openChannel("x-test@fynx");
    await ready.promise;
    // The client is done sending at once...
    await channel.writable.close();
    assert.deepEqual(await readAll(serverSide!.readable), new Uint8Array());
    // ...and the server still sends afterwards.
    const w = serverSide!.writable.getWriter();
    await w.write(new TextEncoder().encode("late "));
    await w.write(new TextEncoder().encode("reply"));
    await w.close();
    assert.equal(
      new TextDecoder().decode(await readAll(channel.readable)),
      "late reply",
    );
    await Promise.all([channel.closed, serverSide!.closed]);
  } finally {
    await pair.close();
  }
});

Deno.test("byte channel: server opens a channel to the client", async () => {
  const pair = await connectPair();
  try {
    pair.client.connection.onChannelOpen = (channel) => {
      if (channel.type !== "forwarded-tcpip") {
        channel.reject(ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE, "no");
        return;
      }
      echo(channel);
    };
    await pair.server.authenticated;
    const conn = pair.server.connection!;
    const channel = await conn.openChannel("forwarded-tcpip");
    const w = channel.writable.getWriter();
    await w.write(new TextEncoder().encode("ping"));
    await w.close();
    assert.equal(
      new TextDecoder().decode(await readAll(channel.readable)),
      "ping",
    );
    await assert.rejects(
      conn.openChannel("other"),
      (e: unknown) =>
        e instanceof ChannelOpenError &&
        e.reason === ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE,
    );
  } finally {
    await pair.close();
  }
});

Deno.test("byte channel: refusals carry the reason; no handler refuses", async () => {
  const pair = await connectPair({
    onChannelOpen(channel) {
      channel.reject(
        ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED,
        "forwarding to example.org:25 is not allowed",
      );
      // A second answer is a programming error.
      assert.throws(() => channel.accept(), /twice/);
    },
  });
  try {
    await assert.rejects(
      pair.client.openChannel("direct-tcpip"),
      (e: unknown) =>
        e instanceof ChannelOpenError &&
        e.reason === ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED &&
        /example\.org:25 is not allowed/.test(e.message),
    );
    // The client has no handler: the server's open is refused.
    await pair.server.authenticated;
    await assert.rejects(
      pair.server.connection!.openChannel("auth-agent@openssh.com"),
      (e: unknown) =>
        e instanceof ChannelOpenError &&
        e.reason === ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE,
    );
    await assert.rejects(
      pair.client.openChannel("session"),
      /use openSession/,
    );
    // A handler that throws refuses instead of hanging the peer.
    pair.client.connection.onChannelOpen = () => {
      throw new Error("boom");
    };
    await assert.rejects(
      pair.server.connection!.openChannel("x"),
      (e: unknown) =>
        e instanceof ChannelOpenError &&
        e.reason === ChannelOpenFailure.CONNECT_FAILED,
    );
    // The connection still works: a global request gets its (refusing)
    // answer.
    assert.equal(
      await pair.client.connection.globalRequest("keepalive@openssh.com"),
      null,
    );
  } finally {
    await pair.close();
  }
});

Deno.test("byte channel: closing the connection ends open channels", async () => {
  let serverSide: ByteChannel | undefined;
  const pair = await connectPair({
    onChannelOpen(channel) {
      serverSide = channel.accept();
    },
  });
  const channel = await pair.client.openChannel("x");
  const reading = readAll(channel.readable);
  await pair.close();
  await assert.rejects(reading);
  await channel.closed;
  await serverSide!.closed;
});
