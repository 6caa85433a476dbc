/**
 * The pipelined transport (several packets in the cipher at once, in order)
 * with the asynchronous AES-GCM path: big packets go through Web Crypto, and
 * rekeys switch keys exactly at NEWKEYS while packets sealed or read under
 * the old keys are still in flight.
 */
import assert from "node:assert/strict";
import { commandSessionHandler } from "../connection/mod.ts";
import { connectPair, pseudoRandomBytes, sha256hex } from "./_helpers.ts";

const echoHandler = commandSessionHandler();

for (const cipher of ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]) {
  for (const via of ["memory", "tcp"] as const) {
    Deno.test(`pipeline: ${cipher} over ${via}, many rekeys mid-transfer in both directions`, async () => {
      const algorithms = { cipher: [cipher] };
      const pair = await connectPair(
        { algorithms, onSession: echoHandler, rekeyBytes: 512 * 1024 },
        { algorithms, rekeyBytes: 700 * 1024 },
        via,
      );
      try {
        assert.equal(pair.client.algorithms.cipherC2S, cipher);
        const payload = pseudoRandomBytes(6 * 1024 * 1024, 5);
        const result = await pair.client.exec("cat", { stdin: payload });
        assert.equal(result.stdout.length, payload.length);
        assert.equal(sha256hex(result.stdout), sha256hex(payload));
        assert.ok(
          pair.client.transport.kexCount > 10,
          `only ${pair.client.transport.kexCount} key exchanges`,
        );
        // Small messages still flow after the bulk transfer.
        const again = await pair.client.exec("echo still here");
        assert.equal(new TextDecoder().decode(again.stdout), "still here\n");
      } finally {
        await pair.close();
      }
    });
  }
}

Deno.test("pipeline: several channels at once keep their data apart and whole", async () => {
  const algorithms = { cipher: ["aes128-gcm@openssh.com"] };
  const pair = await connectPair({ algorithms, onSession: echoHandler }, {
    algorithms,
  });
  try {
    const payloads = [1, 2, 3, 4].map((seed) =>
      pseudoRandomBytes(1024 * 1024 + seed * 4099, seed)
    );
    const results = await Promise.all(
      payloads.map((p) => pair.client.exec("cat", { stdin: p })),
    );
    for (let i = 0; i < payloads.length; i++) {
      assert.equal(sha256hex(results[i].stdout), sha256hex(payloads[i]));
    }
  } finally {
    await pair.close();
  }
});

/** Writes `line` and reads until it has come back (echoed by `cat`). */
async function echoRoundTrip(
  writer: WritableStreamDefaultWriter<Uint8Array>,
  reader: ReadableStreamDefaultReader<Uint8Array>,
  line: string,
): Promise<void> {
  await writer.write(new TextEncoder().encode(line));
  let got = "";
  while (got.length < line.length) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stdout ended after ${JSON.stringify(got)}`);
    got += new TextDecoder().decode(value);
  }
  assert.equal(got, line);
}

for (const direction of ["download", "upload"] as const) {
  Deno.test(`pipeline: a saturating ${direction} on one channel does not starve another`, async () => {
    // Large packets and a large window are the defaults; the bulk channel
    // keeps both full for the whole test, so every interactive byte has to
    // find its turn between bulk packets in the send pipelines.
    const algorithms = { cipher: ["aes128-gcm@openssh.com"] };
    const pair = await connectPair(
      { algorithms, onSession: echoHandler },
      { algorithms },
      "tcp",
    );
    const bulk = await pair.client.openSession();
    let moved = 0;
    let stop = false;
    let bulkDone: Promise<unknown>;
    if (direction === "download") {
      await bulk.exec("cat /dev/zero");
      bulkDone = (async () => {
        for await (const chunk of bulk.stdout) {
          moved += chunk.length;
          if (stop) break;
        }
      })();
    } else {
      await bulk.exec("cat > /dev/null");
      bulkDone = (async () => {
        const writer = bulk.stdin.getWriter();
        const chunk = new Uint8Array(256 * 1024);
        while (!stop) {
          await writer.write(chunk);
          moved += chunk.length;
        }
        await writer.close();
      })();
    }
    const interactive = await pair.client.openSession();
    try {
      await interactive.exec("cat");
      const writer = interactive.stdin.getWriter();
      const reader = interactive.stdout.getReader();
      // Let the bulk transfer fill the window and pipelines first.
      while (moved < 8 * 1024 * 1024) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const before = moved;
      let hang: ReturnType<typeof setTimeout> | undefined;
      const exchange = (async () => {
        for (let i = 0; i < 20; i++) {
          await echoRoundTrip(writer, reader, `ping ${i}\n`);
        }
      })();
      // A guard so a starved channel fails the test instead of hanging it.
      await Promise.race([
        exchange,
        new Promise((_, reject) => {
          hang = setTimeout(
            () =>
              reject(
                new Error(
                  `interactive channel starved: ${moved} bulk bytes moved`,
                ),
              ),
            30_000,
          );
        }),
      ]).finally(() => clearTimeout(hang));
      // The bulk channel kept moving while the echoes went through.
      assert.ok(
        moved > before,
        `the bulk ${direction} stalled at ${before} bytes`,
      );
      stop = true;
      await writer.close();
      reader.releaseLock();
      assert.equal((await interactive.exit).code, 0);
      if (direction === "download") await bulk.close();
      await bulkDone.catch(() => {});
    } finally {
      stop = true;
      await pair.close();
    }
  });
}
