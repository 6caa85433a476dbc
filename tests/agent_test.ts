/**
 * ssh-agent client tests: against a real OpenSSH `ssh-agent` (keys made by
 * `ssh-keygen`, added and checked with `ssh-add`), and against a fake agent
 * on our own Unix socket that sends hostile replies.
 */
import assert from "node:assert/strict";
import {
  AgentClient,
  AgentError,
  type AgentSigner,
  agentSigner,
} from "../agent/mod.ts";
import { generatePrivateKey, parsePrivateKey } from "../keys/mod.ts";
import type { PublicKey } from "../keys/types.ts";
import type { Signer } from "../auth/client.ts";
import { SshWriter } from "../wire/writer.ts";
import { SshReader } from "../wire/reader.ts";
import { connectPair } from "./_helpers.ts";
import { memoryDuplexPair } from "../transport/duplex.ts";
import { agentSkipReason, startSshAgent } from "./_ssh_agent.ts";
import {
  bytesEqual,
  run,
  skipOpenssh,
  SSH_KEYGEN,
  sshKeygen,
  startSshd,
} from "./_openssh.ts";
import { fynx } from "./_fynx.ts";
import { connect } from "../client.ts";
import { parsePublicKeyText } from "../keys/mod.ts";

const noOpenSsh = agentSkipReason !== null;
if (noOpenSsh) console.warn(`[skip] ssh-agent tests: ${agentSkipReason}`);

async function mustRun(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<string> {
  const r = await run(cmd, args, { env });
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderrText}`);
  }
  return r.stdoutText;
}

const data = new TextEncoder().encode("session id and request");

Deno.test({
  name: "AgentClient works against OpenSSH ssh-agent",
  ignore: noOpenSsh,
  async fn(t) {
    const sshAgent = await startSshAgent();
    const { dir, socket: sock } = sshAgent;
    let agent: AgentClient | null = null;
    try {
      // Keys made by ssh-keygen; the ed25519 one also gets a certificate,
      // which ssh-add loads too and which we must skip, not fail on.
      const specs = [
        ["ed25519", ["-t", "ed25519"]],
        ["ecdsa", ["-t", "ecdsa", "-b", "256"]],
        ["rsa", ["-t", "rsa", "-b", "3072"]],
      ] as const;
      for (const [name, args] of specs) {
        await mustRun(SSH_KEYGEN, [
          ...args,
          "-q",
          "-N",
          "",
          "-C",
          `${name}-comment`,
          "-f",
          `${dir}/${name}`,
        ]);
      }
      await mustRun(SSH_KEYGEN, [
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-f",
        `${dir}/ca`,
      ]);
      await mustRun(SSH_KEYGEN, [
        "-q",
        "-s",
        `${dir}/ca`,
        "-I",
        "cert-id",
        "-n",
        "someone",
        `${dir}/ed25519.pub`,
      ]);
      for (const [name] of specs) {
        const r = await sshAgent.sshAdd(["-q", `${dir}/${name}`]);
        assert.equal(r.code, 0, r.stderrText);
      }
      const agentFingerprints = () => sshAgent.fingerprints();

      // Straight to the Unix socket: the `test` permission set has net
      // access, which Deno 2.9 requires for Unix sockets (`unix:<path>`
      // rules match exact paths only, and this one is made per run).
      agent = await AgentClient.connect(sock);
      const client = agent;
      let ids: { key: PublicKey; comment: string }[] = [];

      await t.step("listIdentities matches ssh-add -l", async () => {
        const listed = await agentFingerprints();
        assert.equal(listed.length, 4, "three keys and one certificate");
        ids = await client.listIdentities();
        assert.equal(ids.length, 3, "the certificate is skipped");
        assert.deepEqual(
          ids.map((i) => i.key.fingerprint()).sort(),
          [...new Set(listed)].sort(),
        );
        assert.deepEqual(
          ids.map((i) => i.comment).sort(),
          ["ecdsa-comment", "ed25519-comment", "rsa-comment"],
        );
        assert.deepEqual(
          ids.map((i) => i.key.type).sort(),
          ["ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-rsa"],
        );
      });

      await t.step("sign with every key and RSA SHA-2 flag", async () => {
        for (const { key } of ids) {
          for (const alg of [undefined, ...key.signatureAlgorithms]) {
            const sig = await client.sign(key, data, alg);
            const used = alg ?? key.signatureAlgorithms[0];
            assert.ok(key.verify(data, sig, used), `${key.type} ${used}`);
            assert.equal(
              new SshReader(sig).utf8(),
              used,
              "algorithm in the blob",
            );
          }
        }
        const rsa = ids.find((i) => i.key.type === "ssh-rsa")!;
        await assert.rejects(
          () => client.sign(rsa.key, data, "ssh-rsa"),
          TypeError,
        );
        const big = new Uint8Array(300 * 1024);
        await assert.rejects(() => client.sign(rsa.key, big), RangeError);
      });

      await t.step("agentSigner fits the auth Signer interface", async () => {
        for (const id of ids) {
          const signer: AgentSigner = agentSigner(client, id);
          const asAuth: Signer = signer;
          const sig = await asAuth.sign(data);
          assert.ok(
            id.key.verify(data, sig, id.key.signatureAlgorithms[0]),
          );
          assert.equal(agentSigner(client, id.key).publicKey, id.key);
        }
      });

      await t.step("publickey auth to our server via agentSigner", async () => {
        for (const id of ids) {
          const pair = await connectPair({
            password: undefined,
            publicKey: ({ key }) => key.fingerprint() === id.key.fingerprint(),
          }, { password: undefined, privateKeys: [agentSigner(client, id)] });
          assert.equal(
            pair.server.info.auth?.key?.fingerprint(),
            id.key.fingerprint(),
          );
          await pair.close();
        }
      });

      await t.step("connect() defaults to SSH_AUTH_SOCK", async () => {
        const saved = Deno.env.get("SSH_AUTH_SOCK");
        Deno.env.set("SSH_AUTH_SOCK", sock);
        try {
          const viaEnv = await AgentClient.connect();
          try {
            assert.equal((await viaEnv.listIdentities()).length, 3);
          } finally {
            viaEnv.close();
          }
        } finally {
          if (saved === undefined) Deno.env.delete("SSH_AUTH_SOCK");
          else Deno.env.set("SSH_AUTH_SOCK", saved);
        }
      });

      await t.step("lock and unlock", async () => {
        await client.lock("open sesame");
        assert.deepEqual(await client.listIdentities(), []);
        await assert.rejects(() => client.sign(ids[0].key, data), AgentError);
        await assert.rejects(() => client.unlock("wrong"), AgentError);
        await client.unlock("open sesame");
        assert.equal((await client.listIdentities()).length, 3);
      });

      await t.step("removeIdentity and removeAll", async () => {
        const ed = ids.find((i) => i.key.type === "ssh-ed25519")!;
        await client.removeIdentity(ed.key);
        const left = await agentFingerprints();
        // The certificate for the same key stays until removed on its own.
        assert.equal(left.length, 3);
        assert.equal((await client.listIdentities()).length, 2);
        await assert.rejects(() => client.sign(ed.key, data), AgentError);
        await client.removeAll();
        assert.deepEqual(await agentFingerprints(), []);
        assert.deepEqual(await client.listIdentities(), []);
      });

      await t.step("addIdentity with our keys and constraints", async () => {
        const fromFile = parsePrivateKey(
          await Deno.readTextFile(`${dir}/ecdsa`),
        );
        const keys = [
          generatePrivateKey("ed25519", { comment: "gen-ed25519" }),
          generatePrivateKey("ecdsa-p384"),
          generatePrivateKey("ecdsa-p521"),
          generatePrivateKey("rsa", { bits: 2048 }),
          fromFile,
        ];
        await client.addIdentity(keys[0]);
        await client.addIdentity(keys[1], { lifetime: 600 });
        await client.addIdentity(keys[2], { comment: "p521" });
        await client.addIdentity(keys[3], { lifetime: 60 });
        await client.addIdentity(keys[4], { confirm: true, comment: "c" });
        const listed = await agentFingerprints();
        assert.deepEqual(
          listed.sort(),
          keys.map((k) => k.publicKey.fingerprint()).sort(),
        );
        const mine = await client.listIdentities();
        assert.equal(
          mine.find((i) => i.key.type === "ssh-ed25519")?.comment,
          "gen-ed25519",
        );
        // Sign with the unconfirmed ones (confirm would need ssh-askpass).
        for (const k of keys.slice(0, 4)) {
          for (const alg of k.publicKey.signatureAlgorithms) {
            const sig = await client.sign(k.publicKey, data, alg);
            assert.ok(k.publicKey.verify(data, sig, alg));
          }
        }
        await assert.rejects(
          () => client.addIdentity(keys[0], { lifetime: 0 }),
          TypeError,
        );
        await client.removeAll();
      });
    } finally {
      agent?.close();
      await sshAgent.stop();
    }
  },
});

/**
 * Runs a fake agent over an in-memory duplex: `reply` gets each request
 * payload and returns raw bytes to send (null to hang up, "silent" to say
 * nothing until the client gives up).
 */
async function withFakeAgent(
  reply: (request: Uint8Array) => Uint8Array | null | "silent",
  body: (agent: AgentClient) => Promise<void>,
  timeout?: number,
): Promise<void> {
  const [ours, theirs] = memoryDuplexPair();
  const reader = theirs.readable.getReader();
  const writer = theirs.writable.getWriter();
  const served = (async () => {
    let pending = new Uint8Array(0);
    const need = async (n: number): Promise<boolean> => {
      while (pending.length < n) {
        const { value, done } = await reader.read();
        if (done) return false;
        const next = new Uint8Array(pending.length + value.length);
        next.set(pending);
        next.set(value, pending.length);
        pending = next;
      }
      return true;
    };
    try {
      for (;;) {
        if (!await need(4)) return;
        const len = new DataView(pending.buffer).getUint32(0);
        if (!await need(4 + len)) return;
        const payload = pending.slice(4, 4 + len);
        pending = pending.slice(4 + len);
        const out = reply(payload);
        if (out === null) {
          await writer.close();
          return;
        }
        if (out === "silent") {
          await reader.read(); // until the client gives up
          return;
        }
        await writer.write(out);
      }
    } catch {
      // the client closed its side
    } finally {
      reader.releaseLock();
      writer.releaseLock();
    }
  })();
  const agent = new AgentClient(ours, { timeout });
  try {
    await body(agent);
  } finally {
    agent.close();
    await served;
    await theirs.readable.cancel().catch(() => {});
    await theirs.writable.abort().catch(() => {});
  }
}

function frame(payload: Uint8Array): Uint8Array {
  return new SshWriter().string(payload).bytes();
}

Deno.test("AgentClient rejects a huge reply length without waiting", async () => {
  await withFakeAgent(
    () => new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5]),
    async (agent) => {
      await assert.rejects(() => agent.listIdentities(), RangeError);
      // The connection is out of sync now: later calls fail too.
      await assert.rejects(() => agent.removeAll(), RangeError);
    },
  );
});

Deno.test("AgentClient rejects malformed replies with SyntaxError", async () => {
  const cases: Uint8Array[] = [
    // identity count far beyond the bytes present
    frame(new SshWriter().byte(12).uint32(0xffffffff).bytes()),
    // count one more than present
    frame(new SshWriter().byte(12).uint32(1).bytes()),
    // a key blob longer than the frame
    frame(new SshWriter().byte(12).uint32(1).uint32(0xffffffff).bytes()),
    // unknown message type
    frame(new Uint8Array([99, 1, 2, 3])),
    // garbage after a valid answer
    frame(new SshWriter().byte(12).uint32(0).raw(new Uint8Array(3)).bytes()),
    // empty frame
    new Uint8Array(4),
  ];
  for (const bytes of cases) {
    await withFakeAgent(() => bytes, async (agent) => {
      await assert.rejects(() => agent.listIdentities(), SyntaxError);
    });
  }
});

Deno.test("AgentClient skips key types it cannot parse", async () => {
  const key = generatePrivateKey("ed25519").publicKey;
  const dss = new SshWriter().string("ssh-dss").string("junk").bytes();
  const answer = new SshWriter().byte(12).uint32(2)
    .string(dss).string("old")
    .string(key.blob).string("good")
    .bytes();
  await withFakeAgent(() => frame(answer), async (agent) => {
    const ids = await agent.listIdentities();
    assert.equal(ids.length, 1);
    assert.equal(ids[0].comment, "good");
    assert.equal(ids[0].key.fingerprint(), key.fingerprint());
  });
});

Deno.test("AgentClient rejects a signature that does not verify", async () => {
  const key = generatePrivateKey("ed25519");
  const other = generatePrivateKey("ed25519");
  await withFakeAgent(
    (req) => {
      assert.equal(req[0], 13);
      const forged = other.sign(data);
      return frame(new SshWriter().byte(14).string(forged).bytes());
    },
    async (agent) => {
      await assert.rejects(
        () => agent.sign(key.publicKey, data),
        (e: unknown) =>
          e instanceof AgentError && /verification/.test(e.message),
      );
    },
  );
});

Deno.test("AgentClient reports FAILURE, hang-up and silence", async () => {
  await withFakeAgent(() => frame(new Uint8Array([5])), async (agent) => {
    await assert.rejects(
      () => agent.removeAll(),
      (e: unknown) => e instanceof AgentError && e.reply === 5,
    );
    // A FAILURE keeps the connection usable.
    await assert.rejects(() => agent.lock("x"), AgentError);
  });
  await withFakeAgent(() => null, async (agent) => {
    await assert.rejects(() => agent.listIdentities(), AgentError);
  });
  await withFakeAgent(() => "silent", async (agent) => {
    await assert.rejects(
      () => agent.listIdentities(),
      (e: unknown) =>
        e instanceof AgentError && /within 200 ms/.test(e.message),
    );
  }, 200);
});

Deno.test("AgentClient.connect needs a path", async () => {
  const saved = Deno.env.get("SSH_AUTH_SOCK");
  Deno.env.delete("SSH_AUTH_SOCK");
  try {
    await assert.rejects(() => AgentClient.connect(), TypeError);
  } finally {
    if (saved !== undefined) Deno.env.set("SSH_AUTH_SOCK", saved);
  }
});

const needSshd = noOpenSsh || skipOpenssh("agent logins to OpenSSH sshd");

/** `text` as a literal inside a RegExp (fingerprints hold `+` and `/`). */
function esc(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

Deno.test({
  name:
    "our client logs in to OpenSSH sshd with agent keys only (RSA with rsa-sha2-512), and skips a key the agent cannot sign with",
  ignore: needSshd,
  async fn() {
    await using sshAgent = await startSshAgent();
    const dir = sshAgent.dir;
    const files = [
      await sshKeygen(dir, "ed", "ed25519", { comment: "ed" }),
      await sshKeygen(dir, "ec", "ecdsa-256", { comment: "ec" }),
      await sshKeygen(dir, "rsa", "rsa", { bits: 3072, comment: "rsa" }),
      await sshKeygen(dir, "gone", "ed25519", { comment: "gone" }),
    ];
    for (const f of files) {
      assert.equal((await sshAgent.sshAdd(["-q", f.path])).code, 0);
      // No key files: the agent is all there is.
      await Deno.remove(f.path);
    }
    // sshd takes nothing but SHA-2 RSA signatures here, and 512 at that.
    await using sshd = await startSshd({
      hostKeyTypes: ["ed25519"],
      authorizedKeys: files.map((f) => f.publicLine),
      config: [
        "PubkeyAcceptedAlgorithms ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512",
      ],
    });
    const agent = await AgentClient.connect(sshAgent.socket);
    try {
      const ids = await agent.listIdentities();
      assert.equal(ids.length, 4);
      const byComment = (c: string) => ids.find((i) => i.comment === c)!;
      for (const name of ["ed", "ec", "rsa"]) {
        const id = byComment(name);
        const used: string[] = [];
        const inner = agentSigner(agent, id);
        const signer: Signer = {
          publicKey: inner.publicKey,
          async sign(data, algorithm) {
            const sig = await inner.sign(data, algorithm);
            used.push(new SshReader(sig).utf8());
            return sig;
          },
        };
        const client = await connect({
          hostname: "127.0.0.1",
          port: sshd.port,
          username: "root",
          privateKeys: [signer],
          verifyHostKey: (k) =>
            sshd.hostKeys.some((h) => bytesEqual(h.blob, k.blob)),
        });
        try {
          const r = await client.exec("echo agent-login");
          assert.equal(new TextDecoder().decode(r.stdout), "agent-login\n");
        } finally {
          await client.close();
        }
        assert.deepEqual(
          used,
          [name === "rsa" ? "rsa-sha2-512" : id.key.signatureAlgorithms[0]],
        );
        assert.match(
          sshd.log(),
          new RegExp(
            `Accepted publickey for root .*${esc(id.key.fingerprint())}`,
          ),
        );
      }
      // The agent forgets a key after listing it: signing fails, and the
      // client goes on with the next key instead of giving up.
      const gone = byComment("gone");
      assert.equal(
        (await sshAgent.sshAdd(["-d", `${dir}/gone.pub`])).code,
        0,
      );
      const client = await connect({
        hostname: "127.0.0.1",
        port: sshd.port,
        username: "root",
        privateKeys: [
          agentSigner(agent, gone),
          agentSigner(agent, byComment("ed")),
        ],
        verifyHostKey: (k) =>
          sshd.hostKeys.some((h) => bytesEqual(h.blob, k.blob)),
      });
      await client.close();
    } finally {
      agent.close();
    }
  },
});

Deno.test({
  name:
    "fynx ssh logs in with agent keys: no key file needed, an encrypted identity file the agent holds is not decrypted, IdentitiesOnly and IdentityAgent",
  ignore: needSshd,
  async fn() {
    await using sshAgent = await startSshAgent();
    const dir = sshAgent.dir;
    const enc = await sshKeygen(dir, "enc", "ed25519", { comment: "enc" });
    const rsa = await sshKeygen(dir, "rsa", "rsa", {
      bits: 2048,
      comment: "agent-rsa",
    });
    const other = await sshKeygen(dir, "other", "ecdsa-256", {
      comment: "other",
    });
    for (const f of [enc, rsa]) {
      assert.equal((await sshAgent.sshAdd(["-q", f.path])).code, 0);
    }
    // Now only a passphrase unlocks the file; the agent has the key.
    await mustRun(SSH_KEYGEN, [
      "-q",
      "-p",
      "-P",
      "",
      "-N",
      "secret",
      "-f",
      enc.path,
    ]);
    await Deno.remove(rsa.path);
    await mustRun(SSH_KEYGEN, [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-f",
      `${dir}/ca`,
    ]);
    await using sshd = await startSshd({
      hostKeyTypes: ["ed25519"],
      authorizedKeys: [enc.publicLine],
      config: [
        "PubkeyAcceptedAlgorithms ssh-ed25519,ssh-ed25519-cert-v01@openssh.com,rsa-sha2-512",
        `TrustedUserCAKeys ${dir}/ca.pub`,
      ],
    });
    const home = `${dir}/home`;
    await Deno.mkdir(home);
    const ssh = (args: string[], env: Record<string, string> = sshAgent.env) =>
      fynx([
        "ssh",
        "-v",
        "-o",
        `UserKnownHostsFile=${sshd.knownHostsPath}`,
        "-o",
        "BatchMode=yes",
        "-p",
        String(sshd.port),
        ...args,
        "root@127.0.0.1",
        "echo in",
      ], { env: { ...env, HOME: home }, timeout: 20_000 });
    const fp = (f: { publicLine: string }) =>
      parsePublicKeyText(f.publicLine).fingerprint();

    // The encrypted file names the agent's key: offered through the agent,
    // never decrypted (BatchMode could not ask for the passphrase anyway).
    let r = await ssh(["-i", enc.path, "-o", "IdentitiesOnly=yes"]);
    assert.equal(r.code, 0, r.stderrText);
    assert.equal(r.stdoutText, "in\n");
    assert.match(
      r.stderrText,
      new RegExp(
        `Offering public key: ${esc(enc.path)} ED25519 ${
          esc(fp(enc))
        } explicit agent`,
      ),
    );
    assert.doesNotMatch(r.stderrText, /agent-rsa|passphrase/);

    // Without FILE.pub the public key comes from the encrypted file's header.
    await Deno.remove(enc.publicPath);
    r = await ssh(["-i", enc.path, "-o", "IdentitiesOnly=yes"]);
    assert.equal(r.code, 0, r.stderrText);
    assert.match(
      r.stderrText,
      /Offering public key: .*enc ED25519 .* explicit agent/,
    );

    // IdentitiesOnly with an unrelated file leaves the agent's keys out.
    r = await ssh(["-i", other.path, "-o", "IdentitiesOnly=yes"]);
    assert.equal(r.code, 255);
    assert.match(r.stderrText, /Permission denied \(publickey/);
    assert.doesNotMatch(r.stderrText, /Offering public key: enc/);

    // Only the RSA key, only in the agent: rsa-sha2-512 gets in.
    await Deno.writeTextFile(
      `${sshd.dir}/authorized_keys`,
      rsa.publicLine + "\n",
    );
    r = await ssh([]);
    assert.equal(r.code, 0, r.stderrText);
    assert.match(
      r.stderrText,
      new RegExp(`Server accepts key: agent-rsa RSA ${esc(fp(rsa))} agent`),
    );
    assert.match(
      sshd.log(),
      new RegExp(`Accepted publickey for root .*RSA ${esc(fp(rsa))}`),
    );

    // IdentityAgent: none turns the agent off; a path picks it over
    // SSH_AUTH_SOCK.
    r = await ssh(["-o", "IdentityAgent=none"]);
    assert.equal(r.code, 255);
    assert.match(r.stderrText, /Permission denied/);
    r = await ssh(["-o", `IdentityAgent=${sshAgent.socket}`], {
      SSH_AUTH_SOCK: `${dir}/no-such-agent`,
    });
    assert.equal(r.code, 0, r.stderrText);

    // A certificate beside the file (FILE-cert.pub), the key in the agent:
    // the certificate is offered and the agent signs for it.
    await Deno.writeTextFile(`${sshd.dir}/authorized_keys`, "");
    await Deno.writeTextFile(enc.publicPath, enc.publicLine + "\n");
    await mustRun(SSH_KEYGEN, [
      "-q",
      "-s",
      `${dir}/ca`,
      "-I",
      "agent-cert",
      "-n",
      "root",
      enc.publicPath,
    ]);
    r = await ssh(["-i", enc.path, "-o", "IdentitiesOnly=yes"]);
    assert.equal(r.code, 0, r.stderrText);
    assert.match(
      r.stderrText,
      new RegExp(
        `Server accepts key: ${esc(enc.path)} ED25519-CERT ${
          esc(fp(enc))
        } explicit agent`,
      ),
    );
    assert.match(
      sshd.log(),
      /Accepted publickey for root .*ED25519-CERT .*ID agent-cert/,
    );
  },
});
