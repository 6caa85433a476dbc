/**
 * Forwarding throughput, side by side in one run: one TCP connection
 * through a `-L` forward pushes N MiB (default 256) to a sink on 127.0.0.1
 * that answers with the byte count (both in a child process,
 * bench/_forward_peer.ts), for
 *
 * - our client (forwardLocal) -> OpenSSH sshd,
 * - OpenSSH ssh -L -> OpenSSH sshd (the reference),
 * - OpenSSH ssh -L -> our server (serve() with serverForwarding()),
 *
 * and prints MB/s and the ratio to the reference. Default algorithms on
 * both sides. Needs root (sshd) and OpenSSH; stops by itself.
 *
 * Usage: deno run --allow-read --allow-write --allow-run
 *   --allow-net=127.0.0.1 --allow-env --allow-sys=uid
 *   bench/forward_throughput.ts [--size MiB]
 */
import { parseArgs } from "node:util";
import { connect } from "../client.ts";
import { serve } from "../server.ts";
import { parsePrivateKey } from "../keys/mod.ts";
import { forwardLocal, serverForwarding } from "../forward/mod.ts";
import {
  freePort,
  knownHostsLine,
  SSH,
  sshArgs,
  sshKeygen,
  startSshd,
} from "../tests/_openssh.ts";
import { lineReader } from "./_lines.ts";

const { values } = parseArgs({
  options: { size: { type: "string", default: "256" } },
});
const sizeMiB = Number(values.size);
if (!Number.isInteger(sizeMiB) || sizeMiB <= 0 || sizeMiB > 4096) {
  console.error(`--size must be 1..4096 MiB, got ${values.size}`);
  Deno.exit(2);
}
const total = sizeMiB * 1024 * 1024;

// The traffic's source and sink, in a child process of their own
// (bench/_forward_peer.ts): in this one they would share a thread with our
// client or server and slow it down, while OpenSSH runs in its own.
const peer = new Deno.Command("deno", {
  args: [
    "run",
    "-q",
    "--allow-net=127.0.0.1",
    new URL("./_forward_peer.ts", import.meta.url).pathname,
  ],
  stdin: "piped",
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const peerLines = lineReader(peer.stdout, "bench/_forward_peer.ts");
const peerInput = peer.stdin.getWriter();
const sinkPort = Number((await peerLines.next()).split(" ")[1]);

/** Pushes `total` bytes through 127.0.0.1:port from the peer; MB/s. */
async function push(port: number): Promise<number> {
  await peerInput.write(new TextEncoder().encode(`push ${port} ${total}\n`));
  const [kind, ...rest] = (await peerLines.next()).split(" ");
  if (kind !== "rate") throw new Error(`push failed: ${rest.join(" ")}`);
  return Number(rest[0]);
}

/** Starts `ssh -N -L` and waits until it listens. */
async function sshForward(
  port: number,
  knownHostsPath: string,
  identity: string,
  user: string,
): Promise<{ port: number; stop(): Promise<void> }> {
  const local = freePort();
  const child = new Deno.Command(SSH, {
    args: sshArgs({
      port,
      user,
      knownHostsPath,
      identity,
      options: { LogLevel: "DEBUG1" },
      flags: ["-N", "-L", `${local}:127.0.0.1:${sinkPort}`],
    }),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const draining = (async () => {
    for await (const c of child.stderr) log += new TextDecoder().decode(c);
  })();
  const deadline = Date.now() + 15_000;
  while (!log.includes(`listening on 127.0.0.1 port ${local}.`)) {
    if (Date.now() > deadline) throw new Error(`ssh -L did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    port: local,
    async stop() {
      child.kill("SIGKILL");
      await child.status;
      await draining;
    },
  };
}

const dir = await Deno.makeTempDir({ prefix: "fynx-bench-fwd-" });
const user = await sshKeygen(dir, "user", "ed25519");
const sshd = await startSshd({
  hostKeyTypes: ["ed25519"],
  authorizedKeys: [user.publicLine],
  config: ["AllowTcpForwarding yes"],
});
const host = await sshKeygen(dir, "host", "ed25519");
const ours = serve({
  hostname: "127.0.0.1",
  port: 0,
  hostKeys: [parsePrivateKey(host.privateText)],
  publicKey: ({ key }) =>
    key.toString().split(" ")[1] === user.publicLine.split(" ")[1],
  ...serverForwarding(),
});
const oursKnown = `${dir}/known_ours`;
await Deno.writeTextFile(
  oursKnown,
  knownHostsLine("127.0.0.1", ours.addr.port, host.publicLine) + "\n",
);

const results: Record<string, number> = {};
try {
  const client = await connect({
    hostname: "127.0.0.1",
    port: sshd.port,
    username: "root",
    privateKeys: [parsePrivateKey(user.privateText)],
    verifyHostKey: () => true,
  });
  const forward = await forwardLocal(client, {
    listen: { hostname: "127.0.0.1", port: 0 },
    target: { hostname: "127.0.0.1", port: sinkPort },
  });
  results["fynx client -> sshd"] = await push(
    (forward.addr as Deno.NetAddr).port,
  );
  await forward.close();
  await client.close();

  const ref = await sshForward(
    sshd.port,
    sshd.knownHostsPath,
    user.path,
    "root",
  );
  results["ssh -> sshd"] = await push(ref.port);
  await ref.stop();

  const toOurs = await sshForward(ours.addr.port, oursKnown, user.path, "me");
  results["ssh -> fynx server"] = await push(toOurs.port);
  await toOurs.stop();
} finally {
  await ours.close();
  await sshd.stop();
  await peerInput.close();
  await peer.status;
  await Deno.remove(dir, { recursive: true });
}
const reference = results["ssh -> sshd"];
console.log(`${sizeMiB} MiB through one -L connection (default algorithms):`);
for (const [name, rate] of Object.entries(results)) {
  console.log(
    `  ${name.padEnd(22)} ${rate.toFixed(1).padStart(7)} MB/s  ${
      (rate / reference).toFixed(2)
    }x`,
  );
}
