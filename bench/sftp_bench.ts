/**
 * SFTP throughput, side by side in one run: `get` and `put` of an N MiB
 * file (default 256) for
 *
 * - our client (`@fynx/ssh/sftp`) -> OpenSSH sshd's sftp-server,
 * - OpenSSH `sftp` -> OpenSSH sshd's sftp-server (the reference),
 * - OpenSSH `sftp` -> our server (`sftpSubsystem`),
 *
 * printing MB/s and the ratios to the reference as a markdown table. Every
 * run is timed from before connecting (process start and handshake
 * included for OpenSSH, connect and subsystem start for ours), so like is
 * compared with like. Files live in /dev/shm when it exists, so the disk
 * does not set the pace. Everything runs on 127.0.0.1 and cleans up.
 *
 * Usage: deno task bench:sftp [--size MiB] [--cipher name]... [--rounds N]
 * Needs root (sshd) and OpenSSH with its sftp-server.
 */
import { parseArgs } from "node:util";
import { connect } from "../client.ts";
import { commandSessionHandler, serve } from "../server.ts";
import { parsePrivateKey } from "../keys/mod.ts";
import { openSftp, sftpSubsystem } from "../sftp/mod.ts";
import {
  knownHostsLine,
  opensshSkipReason,
  run,
  sha256hex,
  sshArgs,
  sshKeygen,
  startSshd,
} from "../tests/_openssh.ts";

const { values } = parseArgs({
  options: {
    size: { type: "string", default: "256" },
    cipher: { type: "string", multiple: true },
    rounds: { type: "string", default: "1" },
  },
});
const sizeMiB = Number(values.size);
const rounds = Number(values.rounds);
if (!Number.isInteger(sizeMiB) || sizeMiB <= 0 || sizeMiB > 4096) {
  console.error(`--size must be 1..4096 MiB, got ${values.size}`);
  Deno.exit(2);
}
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) {
  console.error(`--rounds must be 1..20, got ${values.rounds}`);
  Deno.exit(2);
}
if (opensshSkipReason) {
  console.error(`Cannot run: ${opensshSkipReason}`);
  Deno.exit(2);
}
const total = sizeMiB * 1024 * 1024;
const ciphers = values.cipher ?? [
  "aes128-gcm@openssh.com",
  "chacha20-poly1305@openssh.com",
];

let shm = false;
try {
  shm = Deno.statSync("/dev/shm").isDirectory;
} catch {
  // No tmpfs: use the default temporary directory.
}
const dir = await Deno.makeTempDir({
  prefix: "fynx-sftp-bench-",
  dir: shm ? "/dev/shm" : undefined,
});
const user = await sshKeygen(dir, "user", "ed25519", { comment: "bench" });
const userKey = parsePrivateKey(await Deno.readTextFile(user.path));
const sshd = await startSshd({
  hostKeyTypes: ["ed25519"],
  authorizedKeys: [user.publicLine],
  algorithms: { cipher: ciphers },
});
const hostKeyFile = await sshKeygen(dir, "ours", "ed25519", {
  comment: "bench-host",
});
const ourServer = serve({
  hostname: "127.0.0.1",
  port: 0,
  hostKeys: [parsePrivateKey(await Deno.readTextFile(hostKeyFile.path))],
  publicKey: ({ key }) => key.fingerprint() === userKey.publicKey.fingerprint(),
  onSession: commandSessionHandler({
    subsystems: { sftp: sftpSubsystem({ root: "/" }) },
  }),
  algorithms: { cipher: ciphers },
});
const ourKnownHosts = `${dir}/known_hosts_ours`;
await Deno.writeTextFile(
  ourKnownHosts,
  knownHostsLine("127.0.0.1", ourServer.addr.port, hostKeyFile.publicLine) +
    "\n",
);

// The payload: random, so nothing along the way can compress it.
const source = `${dir}/source.bin`;
{
  const f = await Deno.open(source, { write: true, create: true });
  const block = new Uint8Array(1 << 20);
  for (let i = 0; i < sizeMiB; i++) {
    for (let j = 0; j < block.length; j += 65536) {
      crypto.getRandomValues(block.subarray(j, j + 65536));
    }
    await f.write(block);
  }
  f.close();
}
const digest = sha256hex(await Deno.readFile(source));

function mbps(ms: number): number {
  return total / 1e6 / (ms / 1000);
}

async function check(path: string): Promise<void> {
  const got = sha256hex(await Deno.readFile(path));
  if (got !== digest) throw new Error(`${path}: checksum mismatch`);
  await Deno.remove(path);
}

type Op = "put" | "get";

async function ours(op: Op, cipher: string): Promise<number> {
  const remote = `${dir}/remote-ours.bin`;
  if (op === "get") await Deno.copyFile(source, remote);
  const local = `${dir}/local-ours.bin`;
  const start = performance.now();
  const client = await connect({
    hostname: "127.0.0.1",
    port: sshd.port,
    username: "root",
    privateKeys: [userKey],
    verifyHostKey: () => true,
    algorithms: { cipher: [cipher] },
  });
  try {
    const sftp = await openSftp(client);
    if (op === "put") await sftp.put(source, remote);
    else await sftp.get(remote, local);
    await sftp.close();
  } finally {
    await client.close();
  }
  const ms = performance.now() - start;
  if (op === "put") await check(remote);
  else {
    await check(local);
    await Deno.remove(remote);
  }
  return mbps(ms);
}

async function openssh(
  op: Op,
  cipher: string,
  port: number,
  knownHosts: string,
): Promise<number> {
  const remote = `${dir}/remote-openssh.bin`;
  const local = `${dir}/local-openssh.bin`;
  if (op === "get") await Deno.copyFile(source, remote);
  const batch = `${dir}/batch`;
  await Deno.writeTextFile(
    batch,
    op === "put" ? `put ${source} ${remote}\n` : `get ${remote} ${local}\n`,
  );
  const args = sshArgs({
    port,
    user: "root",
    knownHostsPath: knownHosts,
    identity: user.path,
    options: { Ciphers: cipher, Compression: "no" },
  }).map((a) => a === "-p" ? "-P" : a);
  args.splice(args.length - 1, 0, "-q", "-b", batch);
  const start = performance.now();
  const r = await run("sftp", args, { timeout: 600_000 });
  const ms = performance.now() - start;
  if (r.code !== 0) throw new Error(`sftp exited ${r.code}: ${r.stderrText}`);
  if (op === "put") await check(remote);
  else {
    await check(local);
    await Deno.remove(remote);
  }
  return mbps(ms);
}

function best(xs: number[]): number {
  return Math.max(...xs);
}

const rows: string[][] = [];
try {
  console.log(
    `SFTP ${sizeMiB} MiB get/put on 127.0.0.1, best of ${rounds} (MB/s, higher is better)${
      shm ? ", files in /dev/shm" : ""
    }\n`,
  );
  for (const cipher of ciphers) {
    for (const op of ["put", "get"] as const) {
      const ref: number[] = [];
      const mine: number[] = [];
      const toOurs: number[] = [];
      for (let i = 0; i < rounds; i++) {
        ref.push(await openssh(op, cipher, sshd.port, sshd.knownHostsPath));
        mine.push(await ours(op, cipher));
        toOurs.push(
          await openssh(op, cipher, ourServer.addr.port, ourKnownHosts),
        );
      }
      const r = best(ref);
      const m = best(mine);
      const o = best(toOurs);
      rows.push([
        op,
        cipher,
        r.toFixed(0),
        m.toFixed(0),
        (m / r).toFixed(2),
        o.toFixed(0),
        (o / r).toFixed(2),
      ]);
      console.log(
        `${op} ${cipher}: sftp->sftp-server ${
          r.toFixed(0)
        }, fynx->sftp-server ${m.toFixed(0)}, sftp->fynx ${o.toFixed(0)}`,
      );
    }
  }
} finally {
  await ourServer.close();
  await sshd.stop();
  await Deno.remove(dir, { recursive: true });
}

const header = [
  "op",
  "cipher",
  "OpenSSH sftp -> sshd",
  "fynx client -> sshd",
  "ratio",
  "OpenSSH sftp -> fynx server",
  "ratio",
];
console.log("\n| " + header.join(" | ") + " |");
console.log(
  "|" + header.map((h) => " " + "-".repeat(h.length) + " ").join("|") + "|",
);
for (const r of rows) console.log("| " + r.join(" | ") + " |");
