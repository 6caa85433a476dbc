/**
 * Private transport bench: upload AND download through an exec channel,
 * our client -> sshd and OpenSSH ssh -> our server (plus ssh -> sshd as the
 * reference), one cipher at a time. Median of --runs.
 *
 * Usage: deno run -A bench/_xfer.ts [--size MiB] [--runs n] [--cipher c]...
 *   [--only fynx-up|fynx-down|ssh-fynx-up|ssh-fynx-down|ssh-sshd-up|ssh-sshd-down]...
 */
import { parseArgs } from "node:util";
import { connect } from "../client.ts";
import { commandSessionHandler, serve } from "../server.ts";
import { parsePrivateKey } from "../keys/mod.ts";
import {
  knownHostsLine,
  run,
  SSH,
  sshArgs,
  sshKeygen,
  startSshd,
} from "../tests/_openssh.ts";
import { CIPHER_NAMES } from "../transport/cipher/mod.ts";

const { values } = parseArgs({
  options: {
    size: { type: "string", default: "256" },
    runs: { type: "string", default: "3" },
    cipher: { type: "string", multiple: true },
    only: { type: "string", multiple: true },
  },
});
const total = Number(values.size) * 1024 * 1024;
const runs = Number(values.runs);
const ciphers = values.cipher ??
  ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"];
const mac = "hmac-sha2-256-etm@openssh.com";
const only = new Set(
  values.only ??
    [
      "ssh-sshd-up",
      "ssh-sshd-down",
      "fynx-up",
      "fynx-down",
      "ssh-fynx-up",
      "ssh-fynx-down",
    ],
);

const dir = await Deno.makeTempDir({ prefix: "fynx-xfer-" });
const user = await sshKeygen(dir, "user", "ed25519", { comment: "bench" });
const userKey = parsePrivateKey(await Deno.readTextFile(user.path));
const sshd = await startSshd({
  hostKeyTypes: ["ed25519"],
  authorizedKeys: [user.publicLine],
  algorithms: { cipher: CIPHER_NAMES, mac: [mac] },
});
const hostKeyFile = await sshKeygen(dir, "ours", "ed25519", { comment: "h" });
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
const mbps = (ms: number) => total / 1e6 / (ms / 1000);

async function fynx(cipher: string, up: boolean): Promise<number> {
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
    const session = await client.openSession();
    await session.exec(up ? "cat > /dev/null" : `head -c ${total} /dev/zero`);
    if (up) {
      const w = session.stdin.getWriter();
      const chunk = new Uint8Array(256 * 1024);
      for (let sent = 0; sent < total; sent += chunk.length) {
        await w.write(chunk.slice());
      }
      await w.close();
      for await (const _ of session.stdout) { /* none */ }
    } else {
      await session.stdin.close();
      let got = 0;
      for await (const c of session.stdout) got += c.length;
      if (got !== total) throw new Error(`got ${got}`);
    }
    await session.exit;
    return mbps(performance.now() - start);
  } finally {
    await client.close();
  }
}

async function ssh(
  port: number,
  knownHosts: string,
  cipher: string,
  up: boolean,
): Promise<number> {
  const args = sshArgs({
    port,
    user: "root",
    knownHostsPath: knownHosts,
    identity: user.path,
    options: { Ciphers: cipher, MACs: mac, Compression: "no" },
  });
  const q = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;
  const cmd = [SSH, ...args].map(q).join(" ");
  const line = up
    ? `head -c ${total} /dev/zero | ${cmd} 'cat > /dev/null'`
    : `${cmd} 'head -c ${total} /dev/zero' | wc -c`;
  const start = performance.now();
  const r = await run("bash", ["-c", line]);
  const ms = performance.now() - start;
  if (r.code !== 0) throw new Error(`ssh exited ${r.code}: ${r.stderrText}`);
  return mbps(ms);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
try {
  for (const cipher of ciphers) {
    const res: Record<string, number[]> = {};
    for (let i = 0; i < runs; i++) {
      for (const k of only) {
        const up = k.endsWith("-up");
        const v = k.startsWith("fynx")
          ? await fynx(cipher, up)
          : k.startsWith("ssh-sshd")
          ? await ssh(sshd.port, sshd.knownHostsPath, cipher, up)
          : await ssh(ourServer.addr.port, ourKnownHosts, cipher, up);
        (res[k] ??= []).push(v);
      }
    }
    console.log(
      cipher + ": " +
        Object.entries(res).map(([k, v]) => `${k} ${median(v).toFixed(0)}`)
          .join(", "),
    );
  }
} finally {
  await ourServer.close();
  await sshd.stop();
  await Deno.remove(dir, { recursive: true });
}
