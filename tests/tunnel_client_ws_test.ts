/**
 * The tunnel client's own WebSocket client (tunnel/_client_ws.ts) against
 * a raw TCP server on 127.0.0.1 that speaks the upgrade and frames by
 * hand, so it can send what a well-behaved server never would: huge
 * declared lengths, masked frames, a wrong accept key, fragments, pings.
 */
import assert from "node:assert/strict";
import { dialWebSocket, WsHandshakeError } from "../tunnel/_client_ws.ts";
import { encodeBase64 } from "../keys/_util.ts";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Serves one connection: answers the upgrade, then runs `script`. */
function rawServer(
  script: (conn: Deno.Conn, request: string) => Promise<void>,
  options: { badAccept?: boolean } = {},
): { port: number; done: Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    const conn = await listener.accept();
    listener.close();
    try {
      let head = "";
      const buf = new Uint8Array(4096);
      while (!head.includes("\r\n\r\n")) {
        const n = await conn.read(buf);
        if (n === null) return;
        head += new TextDecoder().decode(buf.subarray(0, n));
      }
      const key = /sec-websocket-key: (\S+)/i.exec(head)![1];
      const accept = encodeBase64(
        new Uint8Array(
          await crypto.subtle.digest(
            "SHA-1",
            new TextEncoder().encode(
              (options.badAccept ? "x" : "") + key + GUID,
            ),
          ),
        ),
      );
      await conn.write(
        new TextEncoder().encode(
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
            `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
        ),
      );
      await script(conn, head);
    } finally {
      try {
        conn.close();
      } catch {
        // Closed.
      }
    }
  })();
  return { port: (listener.addr as Deno.NetAddr).port, done };
}

/** Reads one (masked) client frame: opcode and unmasked payload. */
async function readFrame(
  conn: Deno.Conn,
): Promise<{ opcode: number; payload: Uint8Array }> {
  const read = async (n: number) => {
    const out = new Uint8Array(n);
    for (let got = 0; got < n;) {
      const k = await conn.read(out.subarray(got));
      if (k === null) throw new Error("EOF");
      got += k;
    }
    return out;
  };
  const h = await read(2);
  assert.ok(h[1] & 0x80, "client frames are masked");
  let len = h[1] & 0x7f;
  if (len === 126) {
    const e = await read(2);
    len = (e[0] << 8) | e[1];
  } else if (len === 127) {
    len = Number(new DataView((await read(8)).buffer).getBigUint64(0));
  }
  const mask = await read(4);
  const payload = await read(len);
  for (let i = 0; i < len; i++) payload[i] ^= mask[i & 3];
  return { opcode: h[0] & 0x0f, payload };
}

const url = (port: number) => new URL(`ws://127.0.0.1:${port}/v1/ssh?x=1`);

Deno.test("WebSocket client: headers on the upgrade, fragments, pings, close", async () => {
  let request = "";
  const server = rawServer(async (conn, head) => {
    request = head;
    // A binary message in two fragments, with a ping in between.
    await conn.write(new Uint8Array([0x02, 3, 1, 2, 3]));
    await conn.write(new Uint8Array([0x89, 2, 0x68, 0x69]));
    await conn.write(new Uint8Array([0x80, 2, 4, 5]));
    const pong = await readFrame(conn);
    assert.equal(pong.opcode, 10);
    assert.deepEqual([...pong.payload], [0x68, 0x69]);
    // A text message.
    await conn.write(new Uint8Array([0x81, 2, 0x7b, 0x7d]));
    const binary = await readFrame(conn);
    assert.equal(binary.opcode, 2);
    assert.deepEqual([...binary.payload], [9, 8, 7]);
    // Close 1000 from the client.
    const close = await readFrame(conn);
    assert.equal(close.opcode, 8);
    assert.deepEqual([...close.payload.subarray(0, 2)], [0x03, 0xe8]);
    await conn.write(new Uint8Array([0x88, 2, 0x03, 0xe8]));
  });
  const ws = await dialWebSocket(url(server.port), {
    proxy: null,
    headers: { Authorization: "Bearer abc", "X-Team": "blue" },
  });
  const texts: string[] = [];
  ws.onText = (t) => texts.push(t);
  const reader = ws.readable.getReader();
  const { value } = await reader.read();
  assert.deepEqual([...value!], [1, 2, 3, 4, 5]);
  const writer = ws.writable.getWriter();
  await writer.write(new Uint8Array([9, 8, 7]));
  writer.releaseLock();
  reader.releaseLock();
  await ws.close(1000, "");
  assert.deepEqual(await ws.closed, { code: 1000, reason: "", local: true });
  await server.done;
  assert.deepEqual(texts, ["{}"]);
  assert.match(request, /^GET \/v1\/ssh\?x=1 HTTP\/1\.1\r\n/);
  assert.match(request, /\r\nHost: 127\.0\.0\.1:\d+\r\n/);
  assert.match(request, /\r\nAuthorization: Bearer abc\r\n/);
  assert.match(request, /\r\nX-Team: blue\r\n/);
  assert.match(request, /\r\nSec-WebSocket-Version: 13\r\n/);
});

Deno.test("WebSocket client: a huge declared length closes with 1009 before allocating", async () => {
  const server = rawServer(async (conn) => {
    // 2^62 bytes declared.
    const frame = new Uint8Array(10);
    frame[0] = 0x82;
    frame[1] = 127;
    new DataView(frame.buffer).setBigUint64(2, 1n << 62n);
    await conn.write(frame);
    const close = await readFrame(conn);
    assert.equal(close.opcode, 8);
    assert.equal((close.payload[0] << 8) | close.payload[1], 1009);
  });
  const ws = await dialWebSocket(url(server.port), { proxy: null });
  const info = await ws.closed;
  assert.equal(info.code, 1009);
  assert.match(info.reason, /larger than 4194304 bytes/);
  await assert.rejects(ws.readable.getReader().read(), /larger than/);
  await server.done;
});

Deno.test("WebSocket client: masked server frames and unknown opcodes close with 1002", async () => {
  for (
    const [frame, reason] of [
      [[0x82, 0x81, 1, 2, 3, 4, 5], /Masked frame/],
      [[0x83, 0], /Unknown opcode 3/],
      [[0x00, 0], /Unexpected continuation/],
      [[0x89, 126, 0, 200], /Invalid control frame/],
    ] as const
  ) {
    const server = rawServer(async (conn) => {
      await conn.write(new Uint8Array(frame));
      const close = await readFrame(conn);
      assert.equal((close.payload[0] << 8) | close.payload[1], 1002);
    });
    const ws = await dialWebSocket(url(server.port), { proxy: null });
    const info = await ws.closed;
    assert.equal(info.code, 1002);
    assert.match(info.reason, reason);
    await ws.readable.cancel().catch(() => {});
    await server.done;
  }
});

Deno.test("WebSocket client: a wrong Sec-WebSocket-Accept and non-101 answers fail the dial", async () => {
  const bad = rawServer(async () => {}, { badAccept: true });
  await assert.rejects(
    dialWebSocket(url(bad.port), { proxy: null }),
    (e: Error) =>
      e instanceof WsHandshakeError &&
      /wrong Sec-WebSocket-Accept/.test(e.message),
  );
  await bad.done;

  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    listener.close();
    await conn.read(new Uint8Array(4096));
    const body = '{"error":"too many connections for dev\\u0007"}';
    await conn.write(
      new TextEncoder().encode(
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n" +
          `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      ),
    );
    conn.close();
  })();
  await assert.rejects(
    dialWebSocket(url((listener.addr as Deno.NetAddr).port), { proxy: null }),
    (e: Error) =>
      e instanceof WsHandshakeError && e.status === 429 &&
      e.retryAfter === 7 &&
      e.message.endsWith(
        "refused the WebSocket upgrade: 429 Too Many Requests: too many connections for dev",
      ),
  );
  await serving;

  // A server that never answers: the dial times out.
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    held.push(await silent.accept());
  })();
  await assert.rejects(
    dialWebSocket(url((silent.addr as Deno.NetAddr).port), {
      proxy: null,
      timeout: 300,
    }),
    /timed out after 300 ms/,
  );
  await accepting;
  for (const c of held) c.close();
  silent.close();
});
