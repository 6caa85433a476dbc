/**
 * Agent forwarding (OpenSSH PROTOCOL.agent) against a real `ssh-agent`:
 *
 * - OpenSSH `ssh -A` to `fynx sshd`: `ssh-add -l` on the far side lists the
 *   agent's keys; `no-agent-forwarding`, `restrict` and
 *   `AllowAgentForwarding=no` refuse it; the socket directory is private
 *   and gone after the session;
 * - `fynx ssh -A` to OpenSSH `sshd` (root only): `ssh-add -l` on the far
 *   side lists the keys, `-a` and the default do not forward;
 * - our client and server together (`forwardAgent`, `commandSessionHandler`),
 *   cleanup when the connection drops, and a server that opens
 *   `auth-agent@openssh.com` channels nobody asked for.
 */
import assert from "node:assert/strict";
import {
  AGENT_CHANNEL_TYPE,
  AgentClient,
  forwardAgent,
  listenAgentSocket,
} from "../agent/mod.ts";
import type { SshClient } from "../client.ts";
import { commandSessionHandler } from "../connection/mod.ts";
import type { ServerSession } from "../connection/session.ts";
import { ChannelOpenError } from "../errors.ts";
import { parseAuthorizedKeys } from "../keys/mod.ts";
import { findAuthorizedKey } from "../keys/authorized_key_options.ts";
import { serve } from "../server.ts";
import { ChannelOpenFailure } from "../wire/messages.ts";
import { connectPair, testKey } from "./_helpers.ts";
import { fynx } from "./_fynx.ts";
import {
  type KeyFiles,
  knownHostsLine,
  run,
  skipOpenssh,
  SSH,
  sshArgs,
  sshKeygen,
  startSshd,
} from "./_openssh.ts";
import {
  agentSkipReason,
  type SshAgent,
  startFynxSshd,
  startSshAgent,
} from "./_ssh_agent.ts";

if (agentSkipReason) {
  console.warn(`[skip] agent forwarding: ${agentSkipReason}`);
}
const noAgent = agentSkipReason !== null;

const NO_AGENT = /Could not open a connection to your authentication agent/;
/** Remote script: list the agent's keys, then say where the socket was. */
const PROBE =
  'ssh-add -l -E sha256; echo "status=$?"; echo "sock=$SSH_AUTH_SOCK"; ' +
  '[ -n "$SSH_AUTH_SOCK" ] && stat -c "mode=%a" "${SSH_AUTH_SOCK%/*}"; true';

/** An agent holding an Ed25519 and an RSA key made by ssh-keygen. */
async function agentWithKeys(): Promise<
  { agent: SshAgent; keys: KeyFiles[]; fingerprints: string[] }
> {
  const agent = await startSshAgent();
  try {
    const keys = [
      await sshKeygen(agent.dir, "fwd_ed25519", "ed25519", {
        comment: "fwd-ed25519",
      }),
      await sshKeygen(agent.dir, "fwd_rsa", "rsa", {
        bits: 2048,
        comment: "fwd-rsa",
      }),
    ];
    for (const k of keys) {
      const r = await agent.sshAdd(["-q", k.path]);
      assert.equal(r.code, 0, r.stderrText);
    }
    const fingerprints = await agent.fingerprints();
    assert.equal(fingerprints.length, 2);
    return { agent, keys, fingerprints };
  } catch (e) {
    await agent.stop();
    throw e;
  }
}

function parseProbe(stdout: string): {
  listed: string[];
  status: number;
  sock: string;
  mode: string | null;
} {
  const listed = [...stdout.matchAll(/^\d+ (SHA256:\S+) /gm)].map((m) => m[1]);
  return {
    listed,
    status: Number(stdout.match(/^status=(\d+)$/m)?.[1] ?? -1),
    sock: stdout.match(/^sock=(.*)$/m)?.[1] ?? "",
    mode: stdout.match(/^mode=(\d+)$/m)?.[1] ?? null,
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Waits (up to 5 s) until `path` is gone; the server cleans up right after the channel closes. */
async function gone(path: string): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (!(await exists(path))) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

Deno.test({
  name:
    "OpenSSH ssh -A to fynx sshd: ssh-add -l sees the agent; no-agent-forwarding, restrict and AllowAgentForwarding=no refuse it",
  ignore: noAgent,
  async fn() {
    const { agent, fingerprints } = await agentWithKeys();
    const sshds: { stop(): Promise<unknown> }[] = [];
    try {
      const dir = agent.dir;
      const login = await sshKeygen(dir, "login", "ed25519");
      const noFwd = await sshKeygen(dir, "nofwd", "ed25519");
      const restricted = await sshKeygen(dir, "restricted", "ed25519");
      const authorizedKeys = `${dir}/authorized_keys`;
      await Deno.writeTextFile(
        authorizedKeys,
        [
          login.publicLine,
          `no-agent-forwarding ${noFwd.publicLine}`,
          `restrict ${restricted.publicLine}`,
        ].join("\n") + "\n",
      );
      const hostKey = `${dir}/host_key`;
      // fynx sshd's own SSH_AUTH_SOCK must never reach a session.
      const start = async (extra: string[] = []) => {
        const s = await startFynxSshd(
          [
            "--host-key",
            hostKey,
            "--authorized-keys",
            authorizedKeys,
            ...extra,
          ],
          { SSH_AUTH_SOCK: agent.socket },
        );
        sshds.push(s);
        const knownHosts = `${dir}/known_hosts_${s.port}`;
        await Deno.writeTextFile(
          knownHosts,
          knownHostsLine(
            "127.0.0.1",
            s.port,
            (await Deno.readTextFile(`${hostKey}.pub`)).trim(),
          ) + "\n",
        );
        return { sshd: s, knownHosts };
      };
      const ssh = (
        target: { sshd: { port: number }; knownHosts: string },
        identity: string,
        flags: string[],
      ) =>
        run(SSH, [
          ...sshArgs({
            port: target.sshd.port,
            user: "anyone",
            knownHostsPath: target.knownHosts,
            identity,
            // Log in with the key file; forward this agent.
            options: { IdentityAgent: agent.socket },
            flags,
          }),
          PROBE,
        ], { timeout: 20_000 });

      const on = await start();
      let r = await ssh(on, login.path, ["-A"]);
      assert.equal(r.code, 0, r.stderrText + on.sshd.log());
      let p = parseProbe(r.stdoutText);
      assert.equal(p.status, 0, r.stdoutText);
      assert.deepEqual(p.listed.sort(), [...fingerprints].sort());
      assert.match(p.sock, /\/fynx-agent-[^/]+\/agent\.sock$/);
      assert.notEqual(p.sock, agent.socket);
      assert.equal(p.mode, "700", "the socket directory is private");
      assert.ok(await gone(p.sock.replace(/\/agent\.sock$/, "")), p.sock);

      // Without -A nothing is forwarded, and the server's own agent stays
      // out of the session.
      r = await ssh(on, login.path, []);
      p = parseProbe(r.stdoutText);
      assert.equal(p.sock, "", r.stdoutText);
      assert.equal(p.status, 2);
      assert.match(r.stderrText, NO_AGENT);

      // The same on a PTY (a different spawn path on the server).
      r = await ssh(on, login.path, ["-A", "-tt"]);
      p = parseProbe(r.stdoutText.replaceAll("\r", ""));
      assert.deepEqual(p.listed.sort(), [...fingerprints].sort(), r.stdoutText);
      assert.match(p.sock, /\/fynx-agent-[^/]+\/agent\.sock$/);
      r = await ssh(on, login.path, ["-tt"]);
      p = parseProbe(r.stdoutText.replaceAll("\r", ""));
      assert.equal(p.sock, "", r.stdoutText);
      assert.equal(p.status, 2);

      for (const key of [noFwd, restricted]) {
        r = await ssh(on, key.path, ["-A"]);
        assert.equal(r.code, 0, r.stderrText);
        p = parseProbe(r.stdoutText);
        assert.equal(p.sock, "", `${key.path}: ${r.stdoutText}`);
        assert.equal(p.status, 2);
        assert.match(r.stderrText, NO_AGENT);
      }

      const off = await start(["-o", "AllowAgentForwarding=no"]);
      r = await ssh(off, login.path, ["-A"]);
      assert.equal(r.code, 0, r.stderrText);
      p = parseProbe(r.stdoutText);
      assert.equal(p.sock, "", r.stdoutText);
      assert.match(r.stderrText, NO_AGENT);
    } finally {
      for (const s of sshds) await s.stop();
      await agent.stop();
    }
  },
});

Deno.test({
  name:
    "fynx ssh -A to OpenSSH sshd: ssh-add -l on the far side sees the agent's keys",
  ignore: noAgent || skipOpenssh("fynx ssh -A to sshd"),
  async fn() {
    const { agent, keys, fingerprints } = await agentWithKeys();
    try {
      await using sshd = await startSshd({
        hostKeyTypes: ["ed25519"],
        authorizedKeys: keys.map((k) => k.publicLine),
      });
      // No key files anywhere: the agent is the only way in.
      const home = `${agent.dir}/home`;
      await Deno.mkdir(home);
      const env = { ...agent.env, HOME: home };
      const fynxSsh = (flags: string[]) =>
        fynx([
          "ssh",
          "-o",
          `UserKnownHostsFile=${sshd.knownHostsPath}`,
          "-o",
          "StrictHostKeyChecking=yes",
          "-o",
          "BatchMode=yes",
          "-p",
          String(sshd.port),
          ...flags,
          "root@127.0.0.1",
          PROBE,
        ], { env, timeout: 20_000 });

      let r = await fynxSsh(["-v", "-A"]);
      assert.equal(r.code, 0, r.stderrText + sshd.log().slice(-2000));
      let p = parseProbe(r.stdoutText);
      assert.equal(p.status, 0, r.stdoutText);
      assert.deepEqual(p.listed.sort(), [...fingerprints].sort());
      assert.match(p.sock, /^\/tmp\/ssh-[^/]+\/agent\.\d+$/);
      assert.match(
        r.stderrText,
        /Offering public key: fwd-ed25519 ED25519 SHA256:\S+ agent/,
      );
      assert.match(
        r.stderrText,
        /Requesting authentication agent forwarding\./,
      );

      // ForwardAgent=yes does the same; -a after it (or nothing) does not.
      r = await fynxSsh(["-o", "ForwardAgent=yes"]);
      assert.deepEqual(
        parseProbe(r.stdoutText).listed.sort(),
        [...fingerprints].sort(),
      );
      for (const flags of [["-A", "-a"], []]) {
        r = await fynxSsh(flags);
        assert.equal(r.code, 0, r.stderrText);
        p = parseProbe(r.stdoutText);
        assert.equal(p.sock, "", `${flags}: ${r.stdoutText}`);
        assert.match(r.stderrText, NO_AGENT);
      }
    } finally {
      await agent.stop();
    }
  },
});

/** Opens a session, forwards the agent on it, runs `command`. */
async function execForwarded(
  client: SshClient,
  socketPath: string,
  command: string,
): Promise<
  { accepted: boolean; stdout: string; stderr: string; code: number | null }
> {
  const session = await client.openSession();
  const stdout = new Response(session.stdout).text();
  const stderr = new Response(session.stderr).text();
  const accepted = await forwardAgent(client, {
    session,
    socketPath,
    wantReply: true,
  });
  await session.exec(command);
  await session.stdin.close();
  const [out, err, status] = await Promise.all([stdout, stderr, session.exit]);
  return { accepted, stdout: out, stderr: err, code: status.code };
}

Deno.test({
  name:
    "forwardAgent and commandSessionHandler: ssh-add -l through our client and server, refused by restrictions and agentForwarding: false",
  ignore: noAgent,
  async fn() {
    const { agent, fingerprints } = await agentWithKeys();
    const key = testKey("ed25519");
    const restricted = testKey("ecdsa-p256");
    const entries = parseAuthorizedKeys(
      `${key.publicKey}\nrestrict ${restricted.publicKey}\n`,
    );
    const publicKey = ({ key: k }: { key: typeof key.publicKey }) => {
      const m = findAuthorizedKey(entries, k);
      return m ? { restrictions: m.restrictions } : false;
    };
    // The server process's own agent must not show through.
    const saved = Deno.env.get("SSH_AUTH_SOCK");
    Deno.env.set("SSH_AUTH_SOCK", `${agent.dir}/not-this-one`);
    try {
      for (const handlerOn of [true, false]) {
        const pair = await connectPair(
          {
            password: undefined,
            publicKey,
            onSession: commandSessionHandler({ agentForwarding: handlerOn }),
          },
          { password: undefined, privateKeys: [key] },
          "tcp",
        );
        try {
          const r = await execForwarded(pair.client, agent.socket, PROBE);
          const p = parseProbe(r.stdout);
          assert.equal(r.accepted, handlerOn);
          if (handlerOn) {
            assert.deepEqual(
              p.listed.sort(),
              [...fingerprints].sort(),
              r.stderr,
            );
            assert.equal(p.mode, "700");
            assert.ok(
              await gone(p.sock),
              `${p.sock} removed after the session`,
            );
            // Twice on one connection: each session gets its own socket.
            const again = await execForwarded(pair.client, agent.socket, PROBE);
            const q = parseProbe(again.stdout);
            assert.equal(q.listed.length, 2);
            assert.notEqual(q.sock, p.sock);
          } else {
            assert.equal(p.sock, "");
            assert.match(r.stderr, NO_AGENT);
          }
        } finally {
          await pair.close();
        }
      }
      const pair = await connectPair({
        password: undefined,
        publicKey,
        onSession: commandSessionHandler(),
      }, { password: undefined, privateKeys: [restricted] });
      try {
        const r = await execForwarded(pair.client, agent.socket, PROBE);
        assert.equal(r.accepted, false, "restrict refuses agent forwarding");
        assert.equal(parseProbe(r.stdout).sock, "");
        assert.match(r.stderr, NO_AGENT);
        // The refused request leaves the client refusing agent channels.
        await assert.rejects(
          pair.server.connection!.openChannel(AGENT_CHANNEL_TYPE),
          (e: unknown) =>
            e instanceof ChannelOpenError &&
            e.reason === ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED,
        );
      } finally {
        await pair.close();
      }
    } finally {
      if (saved === undefined) Deno.env.delete("SSH_AUTH_SOCK");
      else Deno.env.set("SSH_AUTH_SOCK", saved);
      await agent.stop();
    }
  },
});

Deno.test({
  name: "the agent socket directory is removed when the connection drops",
  ignore: noAgent,
  async fn() {
    const { agent } = await agentWithKeys();
    try {
      const pair = await connectPair({ onSession: commandSessionHandler() });
      let pid = 0;
      let sock = "";
      try {
        const session = await pair.client.openSession();
        assert.equal(
          await forwardAgent(pair.client, {
            session,
            socketPath: agent.socket,
            wantReply: true,
          }),
          true,
        );
        await session.exec('echo "$$ $SSH_AUTH_SOCK"; exec sleep 30');
        const reader = session.stdout.pipeThrough(new TextDecoderStream())
          .getReader();
        let line = "";
        while (!line.includes("\n")) {
          const { value, done } = await reader.read();
          if (done) break;
          line += value;
        }
        reader.releaseLock();
        [pid, sock] = line.trim().split(" ").map((x, i) =>
          i ? x : Number(x)
        ) as [
          number,
          string,
        ];
        assert.ok(await exists(sock), sock);
        // A local client of the forwarded socket works meanwhile.
        const viaForward = await AgentClient.connect(sock);
        try {
          assert.equal((await viaForward.listIdentities()).length, 2);
        } finally {
          viaForward.close();
        }
      } finally {
        await pair.close();
      }
      assert.ok(await gone(sock.replace(/\/agent\.sock$/, "")), sock);
      // The command got SIGHUP; wait until it is reaped.
      for (let i = 0; i < 200; i++) {
        if ((await run("kill", ["-0", String(pid)])).code !== 0) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      await agent.stop();
    }
  },
});

Deno.test({
  name:
    "our client refuses auth-agent@openssh.com opens it did not ask for; with -A our server reads the agent through it",
  ignore: noAgent,
  async fn() {
    const { agent, fingerprints } = await agentWithKeys();
    const hostKey = testKey("ed25519");
    // A server that, on every exec, tries to open an agent channel back and
    // reports what happened (a hostile server would do this unasked).
    const onSession = (session: ServerSession) => {
      session.onRequest = (req) => {
        if (req.type === "auth-agent-req@openssh.com") return true;
        if (req.type !== "exec") return false;
        (async () => {
          let report: string;
          try {
            const channel = await session.openChannel(AGENT_CHANNEL_TYPE);
            const client = new AgentClient(channel);
            try {
              const ids = await client.listIdentities();
              report = `opened ${
                ids.map((i) => i.key.fingerprint()).sort().join(",")
              }`;
            } finally {
              client.close();
              await channel.close();
            }
          } catch (e) {
            report = e instanceof ChannelOpenError
              ? `refused ${e.reason}`
              : `error ${(e as Error).message}`;
          }
          const w = session.stdout.getWriter();
          await w.write(new TextEncoder().encode(report + "\n"));
          await w.close();
          await session.exit(0);
        })();
        return true;
      };
    };
    const server = serve({
      hostname: "127.0.0.1",
      port: 0,
      hostKeys: [hostKey],
      password: () => true,
      publicKey: () => true,
      onSession,
    });
    try {
      const port = server.addr.port;
      const knownHosts = `${agent.dir}/known_hosts`;
      await Deno.writeTextFile(
        knownHosts,
        knownHostsLine("127.0.0.1", port, hostKey.publicKey.toString()) + "\n",
      );
      const home = `${agent.dir}/home`;
      await Deno.mkdir(home);
      const fynxSsh = (flags: string[]) =>
        fynx([
          "ssh",
          "-o",
          `UserKnownHostsFile=${knownHosts}`,
          "-o",
          "BatchMode=yes",
          "-p",
          String(port),
          ...flags,
          "someone@127.0.0.1",
          "probe",
        ], { env: { ...agent.env, HOME: home }, timeout: 20_000 });
      let r = await fynxSsh([]);
      assert.equal(r.code, 0, r.stderrText);
      assert.equal(
        r.stdoutText,
        `refused ${ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE}\n`,
      );
      r = await fynxSsh(["-A"]);
      assert.equal(r.code, 0, r.stderrText);
      assert.equal(
        r.stdoutText,
        `opened ${[...fingerprints].sort().join(",")}\n`,
      );

      // The library client: nothing asked, nothing accepted.
      const pair = await connectPair({ onSession });
      try {
        const res = await pair.client.exec("probe");
        assert.equal(
          new TextDecoder().decode(res.stdout),
          `refused ${ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE}\n`,
        );
        const fwd = await execForwarded(pair.client, agent.socket, "probe");
        assert.equal(fwd.accepted, true);
        assert.equal(
          fwd.stdout,
          `opened ${[...fingerprints].sort().join(",")}\n`,
        );
      } finally {
        await pair.close();
      }
    } finally {
      await server.close();
      await agent.stop();
    }
  },
});

Deno.test("forwardAgent and listenAgentSocket reject bad arguments", async () => {
  const pair = await connectPair({
    onSession: (s) => {
      s.onRequest = () => false;
    },
  });
  try {
    const session = await pair.client.openSession();
    const saved = Deno.env.get("SSH_AUTH_SOCK");
    Deno.env.delete("SSH_AUTH_SOCK");
    try {
      await assert.rejects(
        forwardAgent(pair.client, { session }),
        /SSH_AUTH_SOCK is not set/,
      );
    } finally {
      if (saved !== undefined) Deno.env.set("SSH_AUTH_SOCK", saved);
    }
    await assert.rejects(
      forwardAgent(pair.client, { session: undefined as never }),
      TypeError,
    );
    await assert.rejects(
      forwardAgent(pair.client, {
        session,
        socketPath: "/x",
        maxConnections: 0,
      }),
      RangeError,
    );
    await assert.rejects(listenAgentSocket({} as never), TypeError);
    await session.close();
  } finally {
    await pair.close();
  }
});

Deno.test("listenAgentSocket: private directory, connection limit, removed on close", async () => {
  let serverSession: ServerSession | undefined;
  const ready = Promise.withResolvers<void>();
  const pair = await connectPair({
    onSession: (s) => {
      serverSession = s;
      s.onRequest = () => false;
      ready.resolve();
    },
  });
  try {
    // The client accepts agent channels (forwarding asked for, but the
    // "agent" is a socket of ours that echoes).
    const echoDir = await Deno.makeTempDir({ prefix: "fynx-echo-" });
    const echoPath = `${echoDir}/echo.sock`;
    const echo = Deno.listen({ transport: "unix", path: echoPath });
    const echoing = (async () => {
      const conns: Promise<void>[] = [];
      for await (const c of echo) {
        conns.push(
          c.readable.pipeTo(c.writable).catch(() => {}),
        );
      }
      await Promise.all(conns);
    })();
    const session = await pair.client.openSession();
    await ready.promise;
    assert.equal(
      await forwardAgent(pair.client, { session, socketPath: echoPath }),
      true,
    );
    const sock = await listenAgentSocket(serverSession!, {
      maxConnections: 1,
    });
    try {
      const info = await Deno.stat(sock.directory);
      assert.equal(info.mode! & 0o777, 0o700);
      assert.ok((await Deno.lstat(sock.path)).isSocket);
      const a = await Deno.connect({ transport: "unix", path: sock.path });
      await a.write(new TextEncoder().encode("ping"));
      const buf = new Uint8Array(4);
      let n = 0;
      while (n < 4) n += (await a.read(buf.subarray(n))) ?? 4;
      assert.equal(new TextDecoder().decode(buf), "ping");
      // Over the limit: closed at once.
      const b = await Deno.connect({ transport: "unix", path: sock.path });
      assert.equal(await b.read(new Uint8Array(1)), null);
      b.close();
      a.close();
    } finally {
      await sock.close();
    }
    assert.equal(await exists(sock.directory), false);
    await sock.closed;
    await session.close();
    echo.close();
    await echoing;
    await Deno.remove(echoDir, { recursive: true });
  } finally {
    await pair.close();
  }
});
