/**
 * The traffic ends of bench/forward_throughput.ts in their own process, so
 * that the forwarders measured (our client or server in the bench process,
 * OpenSSH in theirs) do not share a thread with the bytes' source and sink.
 *
 * Prints `sink PORT` once listening: the sink reads each connection to its
 * end and answers with the byte count. Each `push PORT BYTES` line on stdin
 * sends BYTES zeros-like bytes to 127.0.0.1:PORT, half-closes, checks the
 * count the sink answers and prints `rate MBPS` (or `error TEXT`). Stdin EOF
 * stops it, and so does a 10-minute limit.
 *
 * Usage: deno run --allow-net=127.0.0.1 bench/_forward_peer.ts
 *
 * @module
 */
import { lines } from "./_lines.ts";

const sink = Deno.listen({ hostname: "127.0.0.1", port: 0 });
(async () => {
  for await (const conn of sink) {
    (async () => {
      const buf = new Uint8Array(256 * 1024);
      let n = 0;
      for (;;) {
        const got = await conn.read(buf);
        if (got === null) break;
        n += got;
      }
      await conn.write(new TextEncoder().encode(`${n}\n`));
      conn.close();
    })().catch(() => {});
  }
})();

/** Pushes `total` bytes through 127.0.0.1:port; returns MB/s. */
async function push(port: number, total: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunk = new Uint8Array(256 * 1024).fill(0x5a);
  const start = performance.now();
  for (let sent = 0; sent < total;) {
    const n = Math.min(chunk.length, total - sent);
    let off = 0;
    while (off < n) off += await conn.write(chunk.subarray(off, n));
    sent += n;
  }
  await conn.closeWrite();
  const reply = new TextDecoder().decode(
    new Uint8Array(await new Response(conn.readable).arrayBuffer()),
  );
  const seconds = (performance.now() - start) / 1000;
  if (Number(reply.trim()) !== total) {
    throw new Error(`sink got ${reply.trim()} bytes, expected ${total}`);
  }
  return total / 1e6 / seconds;
}

const limit = setTimeout(() => Deno.exit(1), 10 * 60_000);
const out = (line: string) =>
  Deno.stdout.write(new TextEncoder().encode(line + "\n"));
await out(`sink ${(sink.addr as Deno.NetAddr).port}`);
for await (const line of lines(Deno.stdin.readable)) {
  const [cmd, port, bytes] = line.trim().split(" ");
  if (cmd !== "push") continue;
  try {
    await out(`rate ${await push(Number(port), Number(bytes))}`);
  } catch (e) {
    await out(`error ${(e as Error).message}`);
  }
}
clearTimeout(limit);
sink.close();
