/**
 * One run of our client in a fresh process, for bench/e2e_throughput.ts:
 * the parent times it from process start to exit (or to the first output),
 * exactly as it times OpenSSH `ssh` and the `ssh2` Node script.
 *
 * Usage (the parent builds this):
 *   deno run --allow-net=127.0.0.1 --allow-read bench/_e2e_client.ts \
 *     --mode upload|download|first --port N --key FILE --host-key FP \
 *     [--size BYTES] [--cipher NAME] [--mac NAME]
 *
 * - upload: `cat > /dev/null` fed with --size zero bytes;
 * - download: `head -c SIZE /dev/zero`, every byte counted;
 * - first: `echo hi`, written to stdout as soon as it arrives.
 *
 * Exits 0 on success, 1 with a message on stderr otherwise.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { connect } from "../client.ts";
import { parsePrivateKey } from "../keys/mod.ts";

const { values } = parseArgs({
  options: {
    mode: { type: "string" },
    port: { type: "string" },
    key: { type: "string" },
    "host-key": { type: "string" },
    size: { type: "string", default: "0" },
    cipher: { type: "string" },
    mac: { type: "string" },
  },
});
const size = Number(values.size);
const port = Number(values.port);
if (!values.key || !values["host-key"] || !(port > 0)) {
  console.error("_e2e_client.ts: --port, --key and --host-key are required");
  Deno.exit(2);
}
const hostKeyFp = values["host-key"];

const client = await connect({
  hostname: "127.0.0.1",
  port,
  username: "root",
  privateKeys: [parsePrivateKey(await Deno.readTextFile(values.key))],
  verifyHostKey: (key) => key.fingerprint() === hostKeyFp,
  algorithms: values.cipher
    ? {
      cipher: [values.cipher],
      ...(values.mac ? { mac: [values.mac] } : {}),
    }
    : {},
});
try {
  const session = await client.openSession();
  const stderr = new Response(session.stderr).text();
  if (values.mode === "upload") {
    await session.exec("cat > /dev/null");
    // Output is empty; read it so the channel can finish.
    const stdout = new Response(session.stdout).arrayBuffer();
    const writer = session.stdin.getWriter();
    // The same zero-filled chunk each time: its contents never change, so
    // the library may keep a view of it as long as it likes.
    const chunk = new Uint8Array(256 * 1024);
    let sent = 0;
    while (sent < size) {
      const n = Math.min(chunk.length, size - sent);
      await writer.ready;
      writer.write(n === chunk.length ? chunk : chunk.subarray(0, n)).catch(
        () => {},
      );
      sent += n;
    }
    await writer.close();
    await stdout;
  } else if (values.mode === "download") {
    await session.exec(`head -c ${size} /dev/zero`);
    session.stdin.close().catch(() => {});
    let got = 0;
    for await (const chunk of session.stdout) got += chunk.length;
    if (got !== size) throw new Error(`received ${got} bytes, not ${size}`);
  } else if (values.mode === "first") {
    await session.exec("echo hi");
    session.stdin.close().catch(() => {});
    const writer = Deno.stdout.writable.getWriter();
    for await (const chunk of session.stdout) await writer.write(chunk);
    writer.releaseLock();
  } else {
    throw new Error(`unknown --mode ${values.mode}`);
  }
  const status = await session.exit;
  if (status.code !== 0) {
    throw new Error(`remote exited ${status.code}: ${await stderr}`);
  }
} catch (e) {
  console.error(`_e2e_client.ts: ${(e as Error).message}`);
  await client.close();
  Deno.exit(1);
}
await client.close();
