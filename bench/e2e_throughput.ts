/**
 * End-to-end throughput, side by side in one run: pushes N MiB (default 256)
 * through an exec channel running `cat > /dev/null`, per cipher, for
 *
 * - our client -> OpenSSH sshd,
 * - OpenSSH ssh -> OpenSSH sshd (the reference),
 * - OpenSSH ssh -> our server,
 *
 * and prints MB/s and the ratios to the reference. Everything runs on
 * 127.0.0.1 and stops by itself.
 *
 * Usage: deno task bench:e2e [--size MiB] [--cipher name]...
 */
import { parseArgs } from "node:util";
import { connect } from "../client.ts";
import { commandSessionHandler, serve } from "../server.ts";
import { parsePrivateKey } from "../keys/mod.ts";
import { CIPHER_NAMES, cipherInfo } from "../transport/cipher/mod.ts";
import {
  knownHostsLine,
  run,
  SSH,
  sshArgs,
  sshKeygen,
  startSshd,
} from "../tests/_openssh.ts";

const { values } = parseArgs({
  options: {
    size: { type: "string", default: "256" },
    cipher: { type: "string", multiple: true },
  },
});
const sizeMiB = Number(values.size);
if (!Number.isInteger(sizeMiB) || sizeMiB <= 0 || sizeMiB > 4096) {
  console.error(
    `--size must be a whole number of MiB between 1 and 4096, got ${values.size}`,
  );
  Deno.exit(2);
}
const total = sizeMiB * 1024 * 1024;
const ciphers = values.cipher ?? [...CIPHER_NAMES];
const mac = "hmac-sha2-256-etm@openssh.com";

const dir = await Deno.makeTempDir({ prefix: "fynx-bench-" });
const user = await sshKeygen(dir, "user", "ed25519", { comment: "bench" });
const userKey = parsePrivateKey(await Deno.readTextFile(user.path));
const sshd = await startSshd({
  hostKeyTypes: ["ed25519"],
  authorizedKeys: [user.publicLine],
  algorithms: {
    cipher: CIPHER_NAMES,
    mac: ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-256"],
  },
});
const hostKeyFile = await sshKeygen(dir, "ours", "ed25519", {
  comment: "bench-host",
});
const ourServer = serve({
  hostname: "127.0.0.1",
  port: 0,
  hostKeys: [parsePrivateKey(await Deno.readTextFile(hostKeyFile.path))],
  publicKey: ({ key }) => key.fingerprint() === userKey.publicKey.fingerprint(),
  onSession: commandSessionHandler(),
  algorithms: { cipher: [...CIPHER_NAMES], mac: [mac] },
});
const ourKnownHosts = `${dir}/known_hosts_ours`;
await Deno.writeTextFile(
  ourKnownHosts,
  knownHostsLine("127.0.0.1", ourServer.addr.port, hostKeyFile.publicLine) +
    "\n",
);

function mbps(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000);
}

async function ourClientToSshd(cipher: string): Promise<number> {
  // Timed from before connecting, like the OpenSSH runs (process start and
  // handshake included), so the ratios compare like with like.
  const start = performance.now();
  const client = await connect({
    hostname: "127.0.0.1",
    port: sshd.port,
    username: "root",
    privateKeys: [userKey],
    verifyHostKey: () => true,
    algorithms: { cipher: [cipher], mac: [mac] },
  });
  try {
    const chunk = new Uint8Array(256 * 1024);
    let sent = 0;
    const stdin = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= total) return controller.close();
        sent += chunk.length;
        controller.enqueue(chunk.slice());
      },
    }, { highWaterMark: 0 });
    const result = await client.exec("cat > /dev/null", { stdin });
    const ms = performance.now() - start;
    if (result.code !== 0) throw new Error(`remote cat exited ${result.code}`);
    return mbps(total, ms);
  } finally {
    await client.close();
  }
}

async function opensshTo(
  port: number,
  knownHosts: string,
  cipher: string,
): Promise<number> {
  const args = sshArgs({
    port,
    user: "root",
    knownHostsPath: knownHosts,
    identity: user.path,
    options: { Ciphers: cipher, MACs: mac, Compression: "no" },
  });
  const quoted = [SSH, ...args, "cat > /dev/null"].map((a) =>
    `'${a.replaceAll("'", `'\\''`)}'`
  ).join(" ");
  const start = performance.now();
  const r = await run("bash", ["-c", `head -c ${total} /dev/zero | ${quoted}`]);
  const ms = performance.now() - start;
  if (r.code !== 0) throw new Error(`ssh exited ${r.code}: ${r.stderrText}`);
  return mbps(total, ms);
}

const rows: string[][] = [];
try {
  console.log(
    `Pushing ${sizeMiB} MiB through 'cat > /dev/null' on 127.0.0.1 (MB/s, higher is better)\n`,
  );
  for (const cipher of ciphers) {
    const label = cipherInfo(cipher).aead ? cipher : `${cipher}+${mac}`;
    const reference = await opensshTo(sshd.port, sshd.knownHostsPath, cipher);
    const ours = await ourClientToSshd(cipher);
    const toOurs = await opensshTo(ourServer.addr.port, ourKnownHosts, cipher);
    rows.push([
      label,
      reference.toFixed(0),
      ours.toFixed(0),
      (ours / reference).toFixed(2),
      toOurs.toFixed(0),
      (toOurs / reference).toFixed(2),
    ]);
    console.log(
      `${label}: ssh->sshd ${reference.toFixed(0)}, fynx->sshd ${
        ours.toFixed(0)
      }, ssh->fynx ${toOurs.toFixed(0)}`,
    );
  }
} finally {
  await ourServer.close();
  await sshd.stop();
  await Deno.remove(dir, { recursive: true });
}

const header = [
  "cipher",
  "ssh->sshd",
  "fynx->sshd",
  "ratio",
  "ssh->fynx",
  "ratio",
];
const widths = header.map((h, i) =>
  Math.max(h.length, ...rows.map((r) => r[i].length))
);
const line = (cells: string[]) =>
  cells.map((c, i) => c.padEnd(widths[i])).join("  ");
console.log("\n" + line(header));
for (const r of rows) console.log(line(r));
