import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { commandDuplex, memoryDuplexPair } from "../transport/duplex.ts";

/** Deterministic PRNG so failures reproduce. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("memoryDuplexPair moves 16 MiB intact with bounded buffering", async () => {
  const highWaterMark = 65536;
  const maxChunk = 20000;
  const total = 16 * 1024 * 1024;
  const [a, b] = memoryDuplexPair({ highWaterMark });
  const rand = prng(1);
  let written = 0; // bytes passed to write()
  let read = 0;
  let maxInFlight = 0;
  let minDesired = Infinity;
  let waits = 0;

  const sentHash = createHash("sha256");
  const sender = (async () => {
    const writer = a.writable.getWriter();
    // Reuse one source buffer to prove chunks are copied, not aliased.
    const source = new Uint8Array(maxChunk);
    while (written < total) {
      if ((writer.desiredSize ?? 0) <= 0) waits++;
      await writer.ready;
      const n = Math.min(total - written, 1 + Math.floor(rand() * maxChunk));
      for (let i = 0; i < n; i++) source[i] = (written + i * 31) & 0xff;
      const chunk = source.slice(0, n);
      sentHash.update(chunk);
      written += n;
      writer.write(chunk).catch(() => {});
      minDesired = Math.min(minDesired, writer.desiredSize ?? 0);
    }
    await writer.close();
  })();

  const gotHash = createHash("sha256");
  const reader = b.readable.getReader();
  let reads = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    read += value.length;
    gotHash.update(value);
    maxInFlight = Math.max(maxInFlight, written - read);
    // A slow reader: pause now and then so the writer runs ahead.
    if (++reads % 64 === 0) await delay(1);
  }
  await sender;
  assert.equal(read, total);
  assert.equal(gotHash.digest("hex"), sentHash.digest("hex"));
  assert.ok(minDesired <= 0, `desiredSize never fell to 0 (${minDesired})`);
  assert.ok(waits > 0, "the writer never had to wait");
  assert.ok(
    maxInFlight <= highWaterMark + 2 * maxChunk,
    `${maxInFlight} bytes were buffered`,
  );
  await b.writable.close();
  await a.readable.cancel();
});

Deno.test("memoryDuplexPair: a writer stalls while nobody reads", async () => {
  const [a, b] = memoryDuplexPair({ highWaterMark: 1000 });
  const writer = a.writable.getWriter();
  const first = writer.write(new Uint8Array(600));
  const second = writer.write(new Uint8Array(600));
  assert.ok((writer.desiredSize ?? 0) <= 0);
  let ready = false;
  writer.ready.then(() => ready = true);
  let delivered = false;
  first.then(() => delivered = true);
  await delay(10);
  assert.equal(ready, false);
  assert.equal(delivered, false);
  const reader = b.readable.getReader({ mode: "byob" });
  const { value } = await reader.read(new Uint8Array(2000), { min: 1200 });
  assert.equal(value!.length, 1200);
  await Promise.all([first, second, writer.ready]);
  assert.ok(ready);
  await writer.close();
  assert.equal((await reader.read(new Uint8Array(1))).done, true);
  await b.writable.close();
  await a.readable.cancel();
});

Deno.test("memoryDuplexPair: BYOB read with min gathers several writes", async () => {
  const [a, b] = memoryDuplexPair();
  const writer = a.writable.getWriter();
  const reader = b.readable.getReader({ mode: "byob" });
  const pending = reader.read(new Uint8Array(100), { min: 10 });
  for (let i = 0; i < 4; i++) await writer.write(new Uint8Array([i, i, i]));
  const { value, done } = await pending;
  assert.equal(done, false);
  assert.deepEqual([...value!], [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
  // Read into a buffer smaller than the chunk: the rest stays for later.
  await Promise.all([
    writer.write(new Uint8Array([9, 8, 7, 6, 5])),
    (async () => {
      const one = await reader.read(new Uint8Array(2));
      assert.deepEqual([...one.value!], [9, 8]);
      const two = await reader.read(new Uint8Array(8), { min: 3 });
      assert.deepEqual([...two.value!], [7, 6, 5]);
    })(),
  ]);
  // Close while a BYOB read waits: it ends with done.
  const waiting = reader.read(new Uint8Array(4));
  await writer.close();
  assert.equal((await waiting).done, true);
  await b.writable.close();
  await a.readable.cancel();
});

Deno.test("memoryDuplexPair: close and abort reach the peer", async () => {
  {
    const [a, b] = memoryDuplexPair();
    const reader = b.readable.getReader();
    const writer = a.writable.getWriter();
    const sent = writer.write(new Uint8Array([1, 2, 3]));
    const closed = writer.close();
    assert.deepEqual([...(await reader.read()).value!], [1, 2, 3]);
    await Promise.all([sent, closed]);
    assert.equal((await reader.read()).done, true);
    await b.writable.close();
    await a.readable.cancel();
  }
  {
    const [a, b] = memoryDuplexPair();
    const reader = b.readable.getReader({ mode: "byob" });
    const writer = a.writable.getWriter();
    // A write that waits for a reader must not delay the abort.
    const stuck = writer.write(new Uint8Array(10));
    const waiting = reader.read(new Uint8Array(100), { min: 50 });
    const boom = new Error("boom");
    await writer.abort(boom);
    await assert.rejects(stuck);
    await assert.rejects(waiting, (e) => e === boom);
    await b.writable.close();
    await a.readable.cancel();
  }
  {
    const [a, b] = memoryDuplexPair();
    const reader = b.readable.getReader();
    const writer = a.writable.getWriter();
    const stuck = writer.write(new Uint8Array(10));
    await writer.abort(new Error("nobody reads"));
    await assert.rejects(stuck);
    await assert.rejects(reader.read(), /nobody reads/);
    await b.writable.close();
    await a.readable.cancel();
  }
});

Deno.test("memoryDuplexPair: cancel of a readable errors the peer's writes", async () => {
  const [a, b] = memoryDuplexPair({ highWaterMark: 16 });
  const writer = a.writable.getWriter();
  const pending = writer.write(new Uint8Array(100));
  await b.readable.cancel("done reading");
  await assert.rejects(pending, /reading side was canceled/);
  await assert.rejects(writer.write(new Uint8Array(1)));
  await assert.rejects(writer.closed);
  await b.writable.close();
  await a.readable.cancel();
});

Deno.test("memoryDuplexPair: both directions work at once", async () => {
  const [a, b] = memoryDuplexPair({ highWaterMark: 1024 });
  const payload = new Uint8Array(100_000).map((_, i) => i & 0xff);
  const send = async (w: WritableStream<Uint8Array>) => {
    const writer = w.getWriter();
    for (let at = 0; at < payload.length; at += 4096) {
      await writer.write(payload.subarray(at, at + 4096));
    }
    await writer.close();
  };
  const receive = async (r: ReadableStream<Uint8Array>) =>
    new Uint8Array(await new Response(r).arrayBuffer());
  const [, , gotA, gotB] = await Promise.all([
    send(a.writable),
    send(b.writable),
    receive(a.readable),
    receive(b.readable),
  ]);
  assert.deepEqual(gotA, payload);
  assert.deepEqual(gotB, payload);
});

Deno.test("memoryDuplexPair rejects a bad highWaterMark", () => {
  assert.throws(() => memoryDuplexPair({ highWaterMark: -1 }), TypeError);
  assert.throws(() => memoryDuplexPair({ highWaterMark: 1.5 }), TypeError);
});

Deno.test("commandDuplex: cat echoes bytes and closes cleanly", async () => {
  const proxy = commandDuplex("cat", [], { stderr: "null" });
  const writer = proxy.writable.getWriter();
  const reader = proxy.readable.getReader({ mode: "byob" });
  const data = new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff);
  const hash = createHash("sha256").update(data).digest("hex");
  const sending = (async () => {
    for (let at = 0; at < data.length; at += 10_000) {
      await writer.write(data.subarray(at, at + 10_000));
    }
    await writer.close();
  })();
  const got = createHash("sha256");
  let n = 0;
  for (;;) {
    const { value, done } = await reader.read(new Uint8Array(65536));
    if (done) break;
    got.update(value);
    n += value.length;
  }
  await sending;
  assert.equal(n, data.length);
  assert.equal(got.digest("hex"), hash);
  reader.releaseLock();
  await proxy.close();
  assert.equal((await proxy.child.status).code, 0);
});

Deno.test("commandDuplex: close() ends a process that ignores stdin", async () => {
  const proxy = commandDuplex("sleep", ["30"], { stderr: "piped" });
  const start = performance.now();
  await proxy.close();
  const status = await proxy.child.status;
  assert.equal(status.success, false);
  assert.equal(status.signal, "SIGTERM");
  assert.ok(performance.now() - start < 5000);
  await proxy.close(); // idempotent
});

Deno.test("commandDuplex: env reaches the child; bad arguments throw", async () => {
  const proxy = commandDuplex("sh", ["-c", 'printf %s "$FYNX_TEST"'], {
    env: { FYNX_TEST: "hello" },
    stderr: "null",
  });
  await proxy.writable.close();
  assert.equal(await new Response(proxy.readable).text(), "hello");
  await proxy.close();
  assert.throws(() => commandDuplex("", []), TypeError);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => commandDuplex("cat", [1 as any]), TypeError);
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => commandDuplex("cat", [], { stderr: "pipe" as any }),
    TypeError,
  );
});
