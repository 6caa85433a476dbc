import assert from "node:assert/strict";
import {
  constants,
  createDeflate,
  deflateRawSync,
  deflateSync,
  inflateSync,
} from "node:zlib";
import {
  COMPRESSION_NAMES,
  createCompressor,
  createDecompressor,
  loadCompression,
} from "../transport/compression.ts";

// Loaded lazily by the transport; the unit tests load it up front. The
// first test checks the error before loading.
Deno.test("createCompressor() before loadCompression() says what to do", async () => {
  // Each test module gets its own runtime, and this test runs first.
  assert.throws(
    () => createCompressor("zlib@openssh.com"),
    /not loaded yet: await loadCompression\(\) first/,
  );
  assert.throws(
    () => createDecompressor("zlib"),
    /not loaded yet: await loadCompression\(\) first/,
  );
  assert.equal(createCompressor("none"), null);
  await loadCompression();
  assert.ok(createCompressor("zlib@openssh.com"));
});

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

/** Packets that look like SSH traffic: text-ish, repetitive, some random. */
function makePackets(count: number, seed: number): Uint8Array[] {
  const rand = prng(seed);
  const words = ["ls -la ", "drwxr-xr-x ", "root ", "\r\n", "SSH ", "fynx "];
  const packets: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const kind = rand();
    const size = kind < 0.6
      ? Math.floor(rand() * 200) + 1
      : Math.floor(rand() * 40000) + 1;
    const p = new Uint8Array(size);
    if (kind < 0.85) {
      const text = new TextEncoder().encode(
        Array.from({ length: size }, () => words[Math.floor(rand() * 6)])
          .join(""),
      );
      p.set(text.subarray(0, size));
    } else {
      for (let j = 0; j < size; j++) p[j] = Math.floor(rand() * 256);
    }
    packets.push(p);
  }
  packets.push(new Uint8Array(0));
  return packets;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

Deno.test("COMPRESSION_NAMES lists none and both zlib names", () => {
  assert.deepEqual([...COMPRESSION_NAMES], [
    "none",
    "zlib@openssh.com",
    "zlib",
  ]);
  assert.equal(createCompressor("none"), null);
  assert.equal(createDecompressor("none"), null);
  assert.throws(() => createCompressor("lz4"), TypeError);
  assert.throws(() => createDecompressor("zstd"), TypeError);
  assert.throws(() => createCompressor("zlib", { level: 10 }), TypeError);
  assert.throws(() => createDecompressor("zlib", { maxSize: 0 }), TypeError);
});

for (const name of ["zlib", "zlib@openssh.com"]) {
  Deno.test(`${name}: many packets round-trip through one stream`, () => {
    for (const level of [1, 6, 9, 0]) {
      const tx = createCompressor(name, { level })!;
      const rx = createDecompressor(name)!;
      const packets = makePackets(300, level + 1);
      let compressed = 0;
      let plain = 0;
      for (const [i, p] of packets.entries()) {
        const c = tx.compress(p);
        compressed += c.length;
        plain += p.length;
        assert.deepEqual(rx.decompress(c), p, `packet ${i} at level ${level}`);
      }
      if (level > 0) assert.ok(compressed < plain * 0.7, "stream compresses");
    }
  });
}

Deno.test("node:zlib inflates our concatenated packets", () => {
  const tx = createCompressor("zlib@openssh.com")!;
  const packets = makePackets(200, 42);
  const stream = concat(packets.map((p) => tx.compress(p)));
  const inflated = inflateSync(stream, { finishFlush: constants.Z_SYNC_FLUSH });
  assert.deepEqual(new Uint8Array(inflated), concat(packets));
});

Deno.test("decompresses a node:zlib packet with Z_SYNC_FLUSH", () => {
  const payload = new TextEncoder().encode("hello hello hello ".repeat(100));
  const packet = deflateSync(payload, { finishFlush: constants.Z_SYNC_FLUSH });
  const rx = createDecompressor("zlib")!;
  assert.deepEqual(rx.decompress(packet), payload);
});

/** Compresses packets like OpenSSH: one deflater, Z_PARTIAL_FLUSH each. */
async function nodeStream(packets: Uint8Array[]): Promise<Uint8Array[]> {
  const deflate = createDeflate({ level: 6 });
  const out: Uint8Array[] = [];
  let current: Uint8Array[] = [];
  deflate.on("data", (chunk: Uint8Array) => current.push(chunk));
  for (const p of packets) {
    deflate.write(p);
    await new Promise<void>((resolve) =>
      deflate.flush(constants.Z_PARTIAL_FLUSH, () => resolve())
    );
    out.push(concat(current));
    current = [];
  }
  await new Promise<void>((resolve) => deflate.end(() => resolve()));
  await new Promise<void>((resolve) => {
    if (deflate.destroyed) resolve();
    else deflate.on("close", () => resolve());
  });
  return out;
}

Deno.test("decompresses an OpenSSH-style Z_PARTIAL_FLUSH stream packet by packet", async () => {
  const packets = makePackets(150, 7).filter((p) => p.length > 0);
  const compressed = await nodeStream(packets);
  const rx = createDecompressor("zlib@openssh.com")!;
  for (const [i, c] of compressed.entries()) {
    assert.deepEqual(rx.decompress(c), packets[i], `packet ${i}`);
  }
});

Deno.test("decompresses a stream split at arbitrary byte boundaries", async () => {
  const packets = makePackets(60, 9).filter((p) => p.length > 0);
  const stream = concat(await nodeStream(packets));
  const rand = prng(3);
  const rx = createDecompressor("zlib", { maxSize: 1 << 24 })!;
  const out: Uint8Array[] = [];
  for (let at = 0; at < stream.length;) {
    const n = Math.min(stream.length - at, Math.floor(rand() * 3000) + 1);
    out.push(rx.decompress(stream.subarray(at, at + n)));
    at += n;
  }
  assert.deepEqual(concat(out), concat(packets));
});

Deno.test("a decompression bomb throws RangeError without inflating it all", () => {
  // DEFLATE tops out near 1032:1, so 100 MiB needs ~100 KiB of input: 100
  // sync-flushed raw blocks of 1 MiB of zeros each, behind a zlib header.
  const block = deflateRawSync(new Uint8Array(1 << 20), {
    level: 9,
    finishFlush: constants.Z_SYNC_FLUSH,
  });
  const bomb = concat([
    new Uint8Array([0x78, 0xda]),
    ...Array.from({ length: 100 }, () => block),
  ]);
  assert.ok(bomb.length < 150_000, `bomb is ${bomb.length} bytes`);
  const rx = createDecompressor("zlib@openssh.com")!;
  const before = Deno.memoryUsage().external;
  const start = performance.now();
  assert.throws(() => rx.decompress(bomb), RangeError);
  const elapsed = performance.now() - start;
  const grown = Deno.memoryUsage().external - before;
  assert.ok(elapsed < 500, `took ${elapsed} ms`);
  assert.ok(grown < 32 * 2 ** 20, `external memory grew ${grown} bytes`);
  // The stream is dead now: later packets fail too.
  assert.throws(
    () => rx.decompress(new Uint8Array([0, 0, 0xff, 0xff])),
    RangeError,
  );
});

Deno.test("output just under the cap passes, just over fails", () => {
  const tx = createCompressor("zlib")!;
  const rx = createDecompressor("zlib", { maxSize: 5000 })!;
  const ok = new Uint8Array(5000).fill(7);
  assert.deepEqual(rx.decompress(tx.compress(ok)), ok);
  assert.throws(
    () => rx.decompress(tx.compress(new Uint8Array(5001))),
    RangeError,
  );
});

/** LSB-first bit writer for hand-made DEFLATE data (RFC 1951 3.1.1). */
function bits(fields: [value: number, width: number, huffman?: boolean][]) {
  const out: number[] = [];
  let acc = 0;
  let n = 0;
  for (const [value, width, huffman] of fields) {
    for (let i = 0; i < width; i++) {
      // Huffman codes are packed starting with their most significant bit.
      const bit = huffman ? (value >> (width - 1 - i)) & 1 : (value >> i) & 1;
      acc |= bit << n++;
      if (n === 8) out.push(acc), acc = 0, n = 0;
    }
  }
  if (n) out.push(acc);
  return new Uint8Array(out);
}

Deno.test("corrupt data throws SyntaxError", () => {
  const header = [0x78, 0x9c];
  // A bad zlib header: compression method 7.
  assert.throws(
    () => createDecompressor("zlib")!.decompress(new Uint8Array([0x77, 0x01])),
    SyntaxError,
  );
  // A preset dictionary is never used by SSH.
  assert.throws(
    () => createDecompressor("zlib")!.decompress(new Uint8Array([0x78, 0xbb])),
    SyntaxError,
  );
  // Block type 3 is reserved (RFC 1951 section 3.2.3).
  const reserved = bits([[0, 1], [3, 2], [0, 13]]);
  assert.throws(
    () =>
      createDecompressor("zlib")!.decompress(
        new Uint8Array([...header, ...reserved]),
      ),
    SyntaxError,
  );
  // A fixed-Huffman match of length 3 at distance 1 before any output.
  const farBack = bits([[0, 1], [1, 2], [1, 7, true], [0, 5, true], [0, 16]]);
  const rx = createDecompressor("zlib@openssh.com")!;
  assert.throws(
    () => rx.decompress(new Uint8Array([...header, ...farBack])),
    SyntaxError,
  );
  assert.throws(() => rx.decompress(new Uint8Array([0])), SyntaxError);
});
