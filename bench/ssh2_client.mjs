// One run of the `ssh2` npm package (Node), for bench/e2e_throughput.ts:
// the same three modes as bench/_e2e_client.ts, timed by the parent from
// process start.
//
//   node bench/ssh2_client.mjs --ssh2 DIR --mode upload|download|first \
//     --port N --key FILE --host-key SHA256:... [--size BYTES] \
//     [--cipher NAME] [--mac NAME]
//
// DIR is where `npm install ssh2` was run (it holds node_modules/ssh2):
//   mkdir -p .tmp/ssh2 && npm install --prefix .tmp/ssh2 ssh2
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    ssh2: { type: "string" },
    mode: { type: "string" },
    port: { type: "string" },
    key: { type: "string" },
    "host-key": { type: "string" },
    size: { type: "string", default: "0" },
    cipher: { type: "string" },
    mac: { type: "string" },
  },
});
const require = createRequire(resolve(values.ssh2) + "/");
const { Client } = require("ssh2");
const size = Number(values.size);

function fail(message) {
  process.stderr.write(`ssh2_client.mjs: ${message}\n`);
  process.exit(1);
}

const command = {
  upload: "cat > /dev/null",
  download: `head -c ${size} /dev/zero`,
  first: "echo hi",
}[values.mode];
if (!command) fail(`unknown --mode ${values.mode}`);

const conn = new Client();
conn.on("error", (e) => fail(e.message));
conn.on("ready", () => {
  conn.exec(command, (err, stream) => {
    if (err) fail(err.message);
    let code = null;
    let got = 0;
    let stderr = "";
    stream.on("exit", (c) => code = c);
    stream.stderr.on("data", (d) => stderr += d);
    stream.on("close", () => {
      if (code !== 0) fail(`remote exited ${code}: ${stderr}`);
      if (values.mode === "download" && got !== size) {
        fail(`received ${got} bytes, not ${size}`);
      }
      conn.end();
    });
    if (values.mode === "upload") {
      stream.resume();
      // ssh2 encrypts inside write(), so one buffer can be reused.
      const chunk = Buffer.alloc(256 * 1024);
      let sent = 0;
      const pump = () => {
        while (sent < size) {
          const n = Math.min(chunk.length, size - sent);
          sent += n;
          const ok = stream.write(
            n === chunk.length ? chunk : chunk.subarray(0, n),
          );
          if (!ok) return stream.once("drain", pump);
        }
        stream.end();
      };
      pump();
    } else if (values.mode === "download") {
      stream.end();
      stream.on("data", (d) => got += d.length);
    } else {
      stream.end();
      stream.on("data", (d) => process.stdout.write(d));
    }
  });
});
const expected = values["host-key"];
conn.connect({
  host: "127.0.0.1",
  port: Number(values.port),
  username: "root",
  privateKey: readFileSync(values.key),
  hostVerifier: (key) =>
    "SHA256:" +
        createHash("sha256").update(key).digest("base64").replace(/=+$/, "") ===
      expected,
  algorithms: values.cipher
    ? {
      cipher: [values.cipher],
      ...(values.mac ? { hmac: [values.mac] } : {}),
    }
    : undefined,
  readyTimeout: 30000,
});
