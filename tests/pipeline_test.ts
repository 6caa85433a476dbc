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
