/**
 * Interop: the real OpenSSH `ssh` client against our server (`serve()` on
 * 127.0.0.1 with `commandSessionHandler()`).
 *
 * Host key verification is real: `ssh` gets a known_hosts file holding our
 * host keys and `StrictHostKeyChecking=yes`. Covers publickey with every key
 * type ssh-keygen makes, password through `SSH_ASKPASS` (no tty, `setsid`),
 * exec exit codes, stderr, 16 MiB stdin, every cipher/MAC/KEX/host key
 * algorithm both sides implement, `ssh -tt` with a PTY, `RekeyLimit 1M`
 * and compression.
 *
 * Needs only the OpenSSH client (`ssh`, `ssh-keygen`), not root; without it
 * the test is ignored with a message.
 */
import assert from "node:assert/strict";
import { commandSessionHandler, serve, type SshServer } from "../server.ts";
import { generatePrivateKey } from "../keys/mod.ts";
import type { PrivateKey } from "../keys/types.ts";
import { SUPPORTED_ALGORITHMS } from "../transport/algorithms.ts";
import {
  bytesEqual,
  type KeyFiles,
  KEYGEN_TYPES,
  knownHostsLine,
  opensshAlgorithms,
  randomBytes,
  REQUIRED_ALGORITHMS,
  run,
  type RunOptions,
  type RunResult,
  sha256hex,
  skipOpenssh,
  SSH,
  sshArgs,
  type SshArgsOptions,
  sshKeygen,
  toBase64,
} from "./_openssh.ts";

const ignore = skipOpenssh("interop server tests (OpenSSH ssh -> our server)", {
  needServer: false,
});
const MiB = 1 << 20;
const USER = "tester";
const PASSWORD = "open sesame 42";

const REQUIRED = REQUIRED_ALGORITHMS;

function isAead(cipher: string): boolean {
  return cipher.includes("gcm") || cipher.includes("poly1305");
}

/** Reads `ssh -v` output for what was negotiated. */
function negotiatedFrom(
  stderr: string,
): {
  kex?: string;
  hostKey?: string;
  cipher?: string;
  mac?: string;
  comp?: string;
} {
  const kex = /kex: algorithm: (\S+)/.exec(stderr)?.[1];
  const hostKey = /kex: host key algorithm: (\S+)/.exec(stderr)?.[1];
  const c2s = /kex: client->server cipher: (\S+) MAC: (\S+) compression: (\S+)/
    .exec(stderr);
  return { kex, hostKey, cipher: c2s?.[1], mac: c2s?.[2], comp: c2s?.[3] };
}

Deno.test({
  name: "interop server: OpenSSH ssh against our server",
  ignore,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "fynx-interop-server-" });
    let server: SshServer | null = null;
    try {
      const theirs = await opensshAlgorithms();
      const both = (
        ours: readonly string[],
        openssh: string[],
        required: readonly string[],
      ) => [
        ...required,
        ...ours.filter((a) =>
          openssh.includes(a) && !required.includes(a) &&
          !a.includes("-cert-v01@")
        ),
      ];
      const matrix = {
        kex: both(SUPPORTED_ALGORITHMS.kex, theirs.kex, REQUIRED.kex),
        cipher: both(
          SUPPORTED_ALGORITHMS.cipher,
          theirs.cipher,
          REQUIRED.cipher,
        ),
        mac: both(SUPPORTED_ALGORITHMS.mac, theirs.mac, REQUIRED.mac),
        hostKey: both(
          SUPPORTED_ALGORITHMS.hostKey,
          theirs.hostKey,
          REQUIRED.hostKey,
        ),
      };

      // Our host keys, one per type; ssh trusts exactly these.
      const hostKeys: PrivateKey[] = [
        generatePrivateKey("ed25519"),
        generatePrivateKey("ecdsa-p256"),
        generatePrivateKey("ecdsa-p384"),
        generatePrivateKey("ecdsa-p521"),
        generatePrivateKey("rsa", { bits: 3072 }),
      ];
      // User keys made by ssh-keygen.
      const userKeys: KeyFiles[] = [];
      for (const kind of KEYGEN_TYPES) {
        userKeys.push(
          await sshKeygen(dir, `user_${kind}`, kind, { bits: 3072 }),
        );
      }
      const accepted: string[] = [];
      const logs: string[] = [];

      server = serve({
        hostname: "127.0.0.1",
        port: 0,
        hostKeys,
        // Everything we implement, so ssh can pick non-default algorithms.
        algorithms: {
          kex: [...SUPPORTED_ALGORITHMS.kex],
          hostKey: [...SUPPORTED_ALGORITHMS.hostKey],
          cipher: [...SUPPORTED_ALGORITHMS.cipher],
          mac: [...SUPPORTED_ALGORITHMS.mac],
          compression: [...SUPPORTED_ALGORITHMS.compression],
        },
        password: ({ username, password }) =>
          username === USER && password === PASSWORD,
        publicKey: ({ username, key }) => {
          const ok = username === USER &&
            userKeys.some((k) => bytesEqual(k.blob, key.blob));
          if (ok) accepted.push(key.type);
          return ok;
        },
        onSession: commandSessionHandler(),
        onLog: (e) => logs.push(JSON.stringify(e)),
      });
      const srv = server;
      const port = srv.addr.port;
      const knownHostsPath = `${dir}/known_hosts`;
      await Deno.writeTextFile(
        knownHostsPath,
        hostKeys.map((k) =>
          knownHostsLine(
            "127.0.0.1",
            port,
            `${k.publicKey.type} ${toBase64(k.publicKey.blob)}`,
          ) + "\n"
        ).join(""),
      );
      const ed25519 = userKeys[0];

      /** Waits until the server has no connections left (keeps steps' ops tidy). */
      const settle = async () => {
        const deadline = Date.now() + 10_000;
        while (srv.connections > 0 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 10));
        }
      };

      /** Runs ssh with publickey auth; failures carry ssh's stderr and our log. */
      const ssh = async (
        command: string,
        o: Partial<SshArgsOptions> = {},
        runOptions: RunOptions = {},
      ): Promise<RunResult> => {
        const args = sshArgs({
          port,
          user: USER,
          knownHostsPath,
          identity: ed25519.path,
          ...o,
        });
        try {
          return await run(SSH, [...args, command], {
            timeout: 90_000,
            ...runOptions,
          });
        } finally {
          await settle();
        }
      };
      const explain = (r: RunResult) =>
        `ssh exited ${r.code}; stderr:\n${r.stderrText}\nserver log:\n${
          logs.slice(-10).join("\n")
        }`;

      for (const uk of userKeys) {
        await t.step(`publickey authentication with ${uk.type}`, async () => {
          const before = accepted.length;
          const r = await ssh("echo hello", { identity: uk.path });
          assert.equal(r.code, 0, explain(r));
          assert.equal(r.stdoutText, "hello\n");
          assert.ok(
            accepted.slice(before).includes(uk.type as never),
            `server accepted ${uk.type}: ${accepted}`,
          );
        });
      }

      await t.step("password authentication through SSH_ASKPASS", async () => {
        const askpass = `${dir}/askpass.sh`;
        await Deno.writeTextFile(
          askpass,
          `#!/bin/sh\nprintf '%s\\n' '${PASSWORD}'\n`,
          { mode: 0o700 },
        );
        const args = sshArgs({
          port,
          user: USER,
          knownHostsPath,
          options: {
            PreferredAuthentications: "password",
            PubkeyAuthentication: "no",
            NumberOfPasswordPrompts: "1",
          },
        });
        // setsid: no controlling terminal, so ssh must use the askpass program.
        const r = await run(
          "setsid",
          ["-w", SSH, ...args, "echo via-password"],
          {
            env: {
              SSH_ASKPASS: askpass,
              SSH_ASKPASS_REQUIRE: "force",
              DISPLAY: ":0",
            },
            timeout: 60_000,
          },
        );
        await settle();
        assert.equal(r.code, 0, explain(r));
        assert.equal(r.stdoutText, "via-password\n");
      });

      await t.step("a wrong key is refused", async () => {
        const stranger = await sshKeygen(dir, "stranger", "ed25519");
        const r = await ssh("echo nope", { identity: stranger.path });
        assert.equal(r.code, 255);
        assert.match(r.stderrText, /Permission denied/);
      });

      await t.step("exec: exit codes and separate stderr", async () => {
        assert.equal((await ssh("exit 0")).code, 0);
        assert.equal((await ssh("exit 42")).code, 42);
        const r = await ssh("echo to-stdout; echo to-stderr >&2; exit 3");
        assert.equal(r.code, 3, explain(r));
        assert.equal(r.stdoutText, "to-stdout\n");
        assert.equal(r.stderrText, "to-stderr\n");
      });

      await t.step(
        "exec: 16 MiB on stdin through sha256sum and cat",
        async () => {
          const data = randomBytes(16 * MiB);
          const expected = sha256hex(data);
          const sum = await ssh("sha256sum", {}, { stdin: data });
          assert.equal(sum.code, 0, explain(sum));
          assert.equal(sum.stdoutText.split(" ")[0], expected);
          const echoed = await ssh("cat", {}, { stdin: data });
          assert.equal(echoed.code, 0, explain(echoed));
          assert.equal(echoed.stdout.length, data.length);
          assert.equal(sha256hex(echoed.stdout), expected);
        },
      );

      const payload = randomBytes(256 * 1024);
      const payloadSum = sha256hex(payload);
      /** One ssh run with `-v` and the given options; returns what ssh says it negotiated. */
      const algorithmRun = async (options: Record<string, string>) => {
        const r = await ssh("cat", {
          options: { ...options, LogLevel: "DEBUG1" },
        }, { stdin: payload });
        assert.equal(r.code, 0, explain(r));
        assert.equal(sha256hex(r.stdout), payloadSum);
        return negotiatedFrom(r.stderrText);
      };

      for (const cipher of matrix.cipher) {
        for (const mac of isAead(cipher) ? [null] : matrix.mac) {
          await t.step(
            `ssh -o Ciphers=${cipher}${mac ? ` -o MACs=${mac}` : ""}`,
            async () => {
              const n = await algorithmRun({
                Ciphers: cipher,
                ...(mac ? { MACs: mac } : {}),
              });
              assert.equal(n.cipher, cipher);
              if (mac) assert.equal(n.mac, mac);
            },
          );
        }
      }

      for (const kex of matrix.kex) {
        await t.step(`ssh -o KexAlgorithms=${kex}`, async () => {
          const n = await algorithmRun({ KexAlgorithms: kex });
          assert.equal(n.kex, kex);
        });
      }

      for (const hostKey of matrix.hostKey) {
        await t.step(`ssh -o HostKeyAlgorithms=${hostKey}`, async () => {
          const n = await algorithmRun({ HostKeyAlgorithms: hostKey });
          assert.equal(n.hostKey, hostKey);
        });
      }

      await t.step("ssh -o Compression=yes", async () => {
        const text = new TextEncoder().encode(
          "all work and no play makes jack a dull boy\n".repeat(50_000),
        );
        const r = await ssh("cat", {
          options: { Compression: "yes", LogLevel: "DEBUG1" },
        }, { stdin: text });
        assert.equal(r.code, 0, explain(r));
        assert.equal(sha256hex(r.stdout), sha256hex(text));
        const comp = negotiatedFrom(r.stderrText).comp;
        assert.ok(
          comp === "zlib@openssh.com" || comp === "zlib",
          `compression negotiated: ${comp}`,
        );
      });

      await t.step("ssh -o RekeyLimit=1M pushing 16 MiB", async () => {
        const data = randomBytes(16 * MiB);
        const r = await ssh("cat", {
          options: { RekeyLimit: "1M", LogLevel: "DEBUG1" },
        }, { stdin: data });
        assert.equal(r.code, 0, explain(r));
        assert.equal(r.stdout.length, data.length);
        assert.equal(sha256hex(r.stdout), sha256hex(data));
        const rekeys = r.stderrText.split("\n").filter((l) =>
          l.includes("SSH2_MSG_KEXINIT sent")
        ).length;
        assert.ok(
          rekeys > 4,
          `expected many key exchanges, ssh logged ${rekeys}`,
        );
      });

      await t.step("ssh -tt: a command typed through the PTY", async () => {
        const args = sshArgs({
          port,
          user: USER,
          knownHostsPath,
          identity: ed25519.path,
          flags: ["-tt"],
        });
        const child = new Deno.Command(SSH, {
          args,
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {
            // Gone.
          }
        }, 30_000);
        const writer = child.stdin.getWriter();
        try {
          const stderr = new Response(child.stderr).text();
          const stdout = new Response(child.stdout).text();
          await writer.write(
            new TextEncoder().encode("echo $((6*7)); exit 5\n"),
          );
          const status = await child.status;
          const out = await stdout;
          const err = await stderr;
          // The typed line is echoed by the PTY and never contains "42"
          // itself; the shell may print its prompt ("$ " or "# ") on the
          // same line as the result, depending on timing.
          assert.ok(
            /42\r?\n/.test(out),
            `PTY output: ${JSON.stringify(out)} stderr: ${err}`,
          );
          assert.equal(status.code, 5, `ssh -tt status; stderr: ${err}`);
        } finally {
          clearTimeout(timer);
          await writer.close().catch(() => {});
          await settle();
        }
      });
    } finally {
      await server?.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
