/**
 * Our server in its own process, for bench/e2e_throughput.ts, so that its
 * CPU and resident memory are measured alone: `serve()` with an Ed25519
 * host key and `commandSessionHandler()` on 127.0.0.1, accepting one user
 * key.
 *
 * Usage (the parent builds this):
 *   deno run --allow-net=127.0.0.1 --allow-read --allow-run \
 *     --v8-flags=--expose-gc bench/_e2e_server.ts --host-key FILE --user-key FP
 *
 * Prints `listening PORT` once ready. Each `mem` line on stdin is answered
 * with one JSON line: `Deno.memoryUsage()` plus the number of connections
 * authenticated so far and currently open; `gc` does the same after a full
 * garbage collection (with `--v8-flags=--expose-gc`). Stdin EOF stops the server, and
 * so does a 15-minute limit, so it never outlives the bench.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { commandSessionHandler, serve } from "../server.ts";
import { parsePrivateKey } from "../keys/mod.ts";
import { lines } from "./_lines.ts";

const { values } = parseArgs({
  options: {
    "host-key": { type: "string" },
    "user-key": { type: "string" },
  },
});
if (!values["host-key"] || !values["user-key"]) {
  console.error("_e2e_server.ts: --host-key and --user-key are required");
  Deno.exit(2);
}
const userFp = values["user-key"];
let authenticated = 0;
let open = 0;
const server = serve({
  hostname: "127.0.0.1",
  port: 0,
  hostKeys: [parsePrivateKey(await Deno.readTextFile(values["host-key"]))],
  publicKey: ({ key }) => key.fingerprint() === userFp,
  onSession: commandSessionHandler(),
  onAuthenticated: (info) => {
    authenticated++;
    open++;
    info.closed?.then(() => open--, () => open--);
  },
});
const limit = setTimeout(() => {
  console.error("_e2e_server.ts: 15-minute limit reached, stopping");
  Deno.exit(1);
}, 15 * 60_000);
console.log(`listening ${server.addr.port}`);

const encoder = new TextEncoder();
for await (const raw of lines(Deno.stdin.readable)) {
  const line = raw.trim();
  if (line === "gc" || line === "mem") {
    // Needs --v8-flags=--expose-gc; without it the answer is as is.
    if (line === "gc") {
      (globalThis as { gc?: () => void }).gc?.();
    }
    const reply = { ...Deno.memoryUsage(), authenticated, open };
    await Deno.stdout.write(encoder.encode(JSON.stringify(reply) + "\n"));
  }
}
clearTimeout(limit);
await server.close();
