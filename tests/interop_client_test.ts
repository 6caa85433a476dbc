/**
 * Interop: our client against a real OpenSSH `sshd` (started privately by
 * tests/_openssh.ts on 127.0.0.1 with its own config and keys).
 *
 * Covers password and publickey authentication (every key type ssh-keygen
 * makes, plus a passphrase-protected key), exec exit codes, stderr, exit
 * signals, 16 MiB stdin, every cipher/MAC/KEX/host key algorithm both sides
 * implement, compression, rekeying (sshd `RekeyLimit 1M`, our `rekeyBytes`
 * and `rekey()`), and a PTY shell.
 *
 * Needs root and OpenSSH; otherwise the tests are ignored with a message.
 * Password authentication uses the system user `fynxtest`, created (if
 * missing) with a random password by `ensureTestUser()` in the harness.
 */
import assert from "node:assert/strict";
import { connect, type ConnectOptions, type SshClient } from "../client.ts";
import { parsePrivateKey } from "../keys/mod.ts";
import type { PrivateKey, PublicKey } from "../keys/types.ts";
import { SUPPORTED_ALGORITHMS } from "../transport/algorithms.ts";
import {
  bytesEqual,
  ensureTestUser,
  type KeyFiles,
  KEYGEN_TYPES,
  opensshAlgorithms,
  randomBytes,
  REQUIRED_ALGORITHMS,
  run,
  sha256hex,
  skipOpenssh,
  SSH_KEYGEN,
  type Sshd,
  sshKeygen,
  startSshd,
} from "./_openssh.ts";

const ignore = skipOpenssh("interop client tests (our client -> OpenSSH sshd)");
const decoder = new TextDecoder();
const encoder = new TextEncoder();
const MiB = 1 << 20;

/** The required algorithms, plus zlib@openssh.com compression. */
const REQUIRED = { ...REQUIRED_ALGORITHMS, compression: ["zlib@openssh.com"] };

/** The required names plus anything else both we and OpenSSH implement. */
async function algorithmMatrix(): Promise<typeof REQUIRED> {
  const theirs = await opensshAlgorithms();
  const both = (
    ours: readonly string[],
    openssh: string[],
    required: readonly string[],
  ) => {
    const extra = ours.filter((a) =>
      openssh.includes(a) && !required.includes(a) && !a.includes("-cert-v01@")
    );
    return [...required, ...extra];
  };
  return {
    kex: both(SUPPORTED_ALGORITHMS.kex, theirs.kex, REQUIRED.kex),
    cipher: both(SUPPORTED_ALGORITHMS.cipher, theirs.cipher, REQUIRED.cipher),
    mac: both(SUPPORTED_ALGORITHMS.mac, theirs.mac, REQUIRED.mac),
    hostKey: both(
      SUPPORTED_ALGORITHMS.hostKey,
      theirs.hostKey,
      REQUIRED.hostKey,
    ),
    // sshd has offered only the delayed `zlib@openssh.com` since OpenSSH 7.4
    // (`Compression yes` means "none,zlib@openssh.com"), so plain `zlib`
    // cannot be tested against it.
    compression: REQUIRED.compression,
  };
}

function isAead(cipher: string): boolean {
  return cipher.includes("gcm") || cipher.includes("poly1305");
}

/** Host key verification against the keys sshd was started with. */
function verifierFor(
  sshd: Sshd,
  seen?: { key?: PublicKey; algorithm?: string },
) {
  return (key: PublicKey, info: { algorithm: string }): boolean => {
    if (seen) {
      seen.key = key;
      seen.algorithm = info.algorithm;
    }
    return sshd.hostKeys.some((k) => bytesEqual(k.blob, key.blob));
  };
}

/** Connects with sshd's diagnostics attached to any failure. */
async function connectTo(
  sshd: Sshd,
  options: Partial<ConnectOptions> & { username: string },
): Promise<SshClient> {
  try {
    return await connect({
      hostname: "127.0.0.1",
      port: sshd.port,
      verifyHostKey: verifierFor(sshd),
      connectTimeout: 30_000,
      ...options,
    });
  } catch (e) {
    throw new Error(
      `connect(${
        JSON.stringify({
          ...options,
          password: undefined,
          privateKeys: undefined,
        })
      }) failed: ${(e as Error)?.stack ?? e}\n--- sshd log (tail) ---\n${
        sshd.log().slice(-3000)
      }`,
      { cause: e },
    );
  }
}

/** Runs `body` with a connected client, always closing it. */
async function withClient<T>(
  sshd: Sshd,
  options: Partial<ConnectOptions> & { username: string },
  body: (client: SshClient) => Promise<T>,
): Promise<T> {
  const client = await connectTo(sshd, options);
  try {
    return await body(client);
  } catch (e) {
    throw new Error(
      `${(e as Error)?.stack ?? e}\n--- sshd log (tail) ---\n${
        sshd.log().slice(-3000)
      }`,
      { cause: e },
    );
  } finally {
    await client.close();
  }
}

/** `ssh-keygen -lf`: `SHA256:...` of a public key file. */
async function fingerprintOf(publicPath: string): Promise<string> {
  const r = await run(SSH_KEYGEN, ["-l", "-E", "sha256", "-f", publicPath]);
  assert.equal(r.code, 0, r.stderrText);
  return r.stdoutText.split(/\s+/)[1];
}

/** User keys made by ssh-keygen, parsed by us. */
interface UserKey {
  files: KeyFiles;
  key: PrivateKey;
  passphrase?: string;
}

async function makeUserKeys(dir: string): Promise<UserKey[]> {
  const out: UserKey[] = [];
  for (const kind of KEYGEN_TYPES) {
    const files = await sshKeygen(dir, `user_${kind}`, kind, {
      bits: 3072,
      comment: `user-${kind}`,
    });
    out.push({ files, key: parsePrivateKey(files.privateText) });
  }
  const passphrase = "correct horse battery staple";
  for (const kind of ["ed25519", "rsa"] as const) {
    const files = await sshKeygen(dir, `user_${kind}_encrypted`, kind, {
      bits: 3072,
      passphrase,
      comment: `user-${kind}-encrypted`,
    });
    out.push({
      files,
      key: parsePrivateKey(files.privateText, { passphrase }),
      passphrase,
    });
  }
  return out;
}

/** Reads a stream to the end. */
async function readAll(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

Deno.test({
  name: "interop client: authentication and sessions against OpenSSH sshd",
  ignore,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "fynx-interop-client-" });
    let sshd: Sshd | null = null;
    try {
      const user = await ensureTestUser();
      const userKeys = await makeUserKeys(dir);
      sshd = await startSshd({
        authorizedKeys: userKeys.map((k) => k.files.publicLine),
      });
      const s = sshd;
      const rootKey = userKeys[0].key;

      await t.step("password authentication as the test user", async () => {
        await withClient(s, {
          username: user.username,
          password: user.password,
          methods: ["password"],
        }, async (c) => {
          const r = await c.exec("id -un");
          assert.equal(decoder.decode(r.stdout), `${user.username}\n`);
          assert.equal(r.code, 0);
        });
        assert.match(
          s.log(),
          new RegExp(
            `Accepted password for ${user.username} from 127\\.0\\.0\\.1`,
          ),
        );
      });

      await t.step("a wrong password is refused", async () => {
        await assert.rejects(
          connect({
            hostname: "127.0.0.1",
            port: s.port,
            username: user.username,
            password: "definitely not it",
            methods: ["password"],
            passwordAttempts: 1,
            verifyHostKey: verifierFor(s),
          }),
          (e: Error) => e.name === "AuthError",
        );
      });

      for (const uk of userKeys) {
        const label = `${uk.files.type}${
          uk.passphrase ? " (passphrase-protected)" : ""
        }`;
        await t.step(`publickey authentication with ${label}`, async () => {
          const fp = await fingerprintOf(uk.files.publicPath);
          assert.equal(
            uk.key.publicKey.fingerprint(),
            fp,
            "our fingerprint matches ssh-keygen -l",
          );
          await withClient(s, {
            username: "root",
            privateKeys: [uk.key],
            methods: ["publickey"],
          }, async (c) => {
            const r = await c.exec("echo $USER");
            assert.equal(decoder.decode(r.stdout), "root\n");
          });
          assert.ok(
            s.log().includes(`Accepted publickey for root from 127.0.0.1`) &&
              s.log().includes(fp),
            `sshd accepted ${fp}`,
          );
        });
      }

      await t.step("exec: exit codes, stderr, exit signals", async () => {
        await withClient(
          s,
          { username: "root", privateKeys: [rootKey] },
          async (c) => {
            const ok = await c.exec("exit 0");
            assert.equal(ok.code, 0);
            assert.equal(ok.signal ?? null, null);
            const fail = await c.exec("exit 42");
            assert.equal(fail.code, 42);
            const both = await c.exec(
              "echo to-stdout; echo to-stderr >&2; exit 7",
            );
            assert.equal(decoder.decode(both.stdout), "to-stdout\n");
            assert.equal(decoder.decode(both.stderr), "to-stderr\n");
            assert.equal(both.code, 7);
            const killed = await c.exec("kill -TERM $$");
            assert.equal(killed.signal, "TERM");
            // Several commands on one connection, concurrently.
            const many = await Promise.all(
              [1, 2, 3, 4].map((n) => c.exec(`echo ${n}; exit ${n}`)),
            );
            assert.deepEqual(
              many.map((r) => [decoder.decode(r.stdout), r.code]),
              [
                ["1\n", 1],
                ["2\n", 2],
                ["3\n", 3],
                ["4\n", 4],
              ],
            );
          },
        );
      });

      await t.step(
        "exec: 16 MiB on stdin through sha256sum and cat",
        async () => {
          const data = randomBytes(16 * MiB);
          const expected = sha256hex(data);
          await withClient(
            s,
            { username: "root", privateKeys: [rootKey] },
            async (c) => {
              const sum = await c.exec("sha256sum", { stdin: data });
              assert.equal(sum.code, 0, decoder.decode(sum.stderr));
              assert.equal(decoder.decode(sum.stdout).split(" ")[0], expected);
              const echoed = await c.exec("cat", { stdin: data });
              assert.equal(echoed.code, 0);
              assert.equal(echoed.stdout.length, data.length);
              assert.equal(sha256hex(echoed.stdout), expected);
            },
          );
        },
      );

      await t.step(
        "PTY shell: stty size reports the requested size",
        async () => {
          await withClient(
            s,
            { username: "root", privateKeys: [rootKey] },
            async (c) => {
              const session = await c.openSession();
              await session.requestPty({
                term: "xterm",
                columns: 100,
                rows: 40,
              });
              await session.shell();
              const writer = session.stdin.getWriter();
              await writer.write(encoder.encode("stty size; exit\n"));
              const reader = session.stdout.getReader();
              let text = "";
              const deadline = Date.now() + 15_000;
              while (!text.includes("40 100") && Date.now() < deadline) {
                const { value, done } = await reader.read();
                if (done) break;
                text += decoder.decode(value, { stream: true });
              }
              assert.ok(
                text.includes("40 100"),
                `stty size output: ${JSON.stringify(text)}`,
              );
              // Drain to EOF so the channel closes cleanly.
              for (;;) {
                const { done } = await reader.read();
                if (done) break;
              }
              reader.releaseLock();
              await writer.close().catch(() => {});
              writer.releaseLock();
              await session.stderr.cancel().catch(() => {});
              const status = await session.exit;
              assert.equal(status.code, 0);
            },
          );
        },
      );
    } finally {
      await sshd?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "interop client: every algorithm against OpenSSH sshd",
  ignore,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "fynx-interop-client-algs-" });
    let sshd: Sshd | null = null;
    try {
      const matrix = await algorithmMatrix();
      const userKey = await sshKeygen(dir, "user", "ed25519");
      const key = parsePrivateKey(userKey.privateText);
      sshd = await startSshd({
        authorizedKeys: [userKey.publicLine],
        algorithms: matrix,
      });
      const s = sshd;
      const base = {
        username: "root",
        privateKeys: [key],
        methods: ["publickey"],
      };
      const payload = randomBytes(256 * 1024);
      const expected = sha256hex(payload);

      /** One connection with `algorithms`; checks the negotiated set and a round trip. */
      const check = async (
        algorithms: ConnectOptions["algorithms"],
        expect: Record<string, string | null>,
      ) => {
        const seen: { key?: PublicKey; algorithm?: string } = {};
        await withClient(s, {
          ...base,
          algorithms,
          verifyHostKey: verifierFor(s, seen),
        }, async (c) => {
          const negotiated = c.algorithms;
          for (const [field, value] of Object.entries(expect)) {
            assert.equal(
              negotiated[field],
              value,
              `negotiated ${field} in ${JSON.stringify(negotiated)}`,
            );
          }
          const r = await c.exec("cat", { stdin: payload });
          assert.equal(r.code, 0);
          assert.equal(sha256hex(r.stdout), expected);
        });
        return seen;
      };

      for (const cipher of matrix.cipher) {
        for (const mac of isAead(cipher) ? [null] : matrix.mac) {
          await t.step(
            `cipher ${cipher}${mac ? ` + ${mac}` : ""}`,
            async () => {
              await check(
                { cipher: [cipher], ...(mac ? { mac: [mac] } : {}) },
                {
                  cipherC2S: cipher,
                  cipherS2C: cipher,
                  macC2S: mac,
                  macS2C: mac,
                },
              );
            },
          );
        }
      }

      for (const kex of matrix.kex) {
        await t.step(`kex ${kex}`, async () => {
          await check({ kex: [kex] }, { kex });
        });
      }

      const keyTypeOf = (alg: string) =>
        alg.startsWith("rsa-sha2-") ? "ssh-rsa" : alg;
      for (const hostKey of matrix.hostKey) {
        await t.step(`host key ${hostKey}`, async () => {
          const seen = await check({ hostKey: [hostKey] }, { hostKey });
          assert.equal(seen.key?.type, keyTypeOf(hostKey));
        });
      }

      for (const compression of matrix.compression) {
        await t.step(`compression ${compression}`, async () => {
          const text = encoder.encode(
            "all work and no play makes jack a dull boy\n".repeat(50_000),
          );
          await withClient(
            s,
            { ...base, algorithms: { compression: [compression] } },
            async (c) => {
              assert.equal(c.algorithms.compC2S, compression);
              assert.equal(c.algorithms.compS2C, compression);
              const r = await c.exec("cat", { stdin: text });
              assert.equal(r.code, 0);
              assert.equal(sha256hex(r.stdout), sha256hex(text));
            },
          );
        });
      }
    } finally {
      await sshd?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "interop client: rekeying with OpenSSH sshd",
  ignore,
  async fn(t) {
    const dir = await Deno.makeTempDir({
      prefix: "fynx-interop-client-rekey-",
    });
    let sshd: Sshd | null = null;
    try {
      const userKey = await sshKeygen(dir, "user", "ed25519");
      const key = parsePrivateKey(userKey.privateText);
      sshd = await startSshd({
        hostKeyTypes: ["ed25519"],
        authorizedKeys: [userKey.publicLine],
        config: ["RekeyLimit 1M"],
      });
      const s = sshd;
      const base = {
        username: "root",
        privateKeys: [key],
        methods: ["publickey"],
      };
      const data = randomBytes(16 * MiB);
      const expected = sha256hex(data);

      await t.step(
        "sshd RekeyLimit 1M while pushing 16 MiB each way",
        async () => {
          await withClient(s, base, async (c) => {
            const r = await c.exec("cat", { stdin: data });
            assert.equal(r.code, 0, decoder.decode(r.stderr));
            assert.equal(r.stdout.length, data.length);
            assert.equal(sha256hex(r.stdout), expected);
            // sshd rekeys after every MiB in either direction.
            assert.ok(
              c.transport.kexCount > 8,
              `key exchanges: ${c.transport.kexCount}`,
            );
            // Still usable afterwards.
            assert.equal(
              decoder.decode((await c.exec("echo after")).stdout),
              "after\n",
            );
          });
        },
      );

      await t.step(
        "our rekeyBytes 1 MiB while pushing 16 MiB each way",
        async () => {
          await withClient(s, { ...base, rekeyBytes: MiB }, async (c) => {
            const r = await c.exec("sha256sum", { stdin: data });
            assert.equal(decoder.decode(r.stdout).split(" ")[0], expected);
            assert.ok(
              c.transport.kexCount > 8,
              `key exchanges: ${c.transport.kexCount}`,
            );
          });
        },
      );

      await t.step("client-initiated rekey() during a transfer", async () => {
        await withClient(s, base, async (c) => {
          const session = await c.openSession();
          await session.exec("cat");
          const received = readAll(session.stdout);
          const stderr = readAll(session.stderr);
          const writer = session.stdin.getWriter();
          const chunk = 256 * 1024;
          const rekeys: Promise<void>[] = [];
          for (let i = 0; i < data.length; i += chunk) {
            await writer.write(data.subarray(i, i + chunk));
            if (i % (4 * MiB) === 0) rekeys.push(c.rekey());
          }
          await writer.close();
          await Promise.all(rekeys);
          const out = await received;
          await stderr;
          assert.equal(out.length, data.length);
          assert.equal(sha256hex(out), expected);
          assert.equal((await session.exit).code, 0);
          const before = c.transport.kexCount;
          assert.ok(before >= 2, `key exchanges after rekey(): ${before}`);
          await c.rekey();
          await c.rekey();
          assert.equal(c.transport.kexCount, before + 2);
          assert.equal(
            decoder.decode((await c.exec("echo after")).stdout),
            "after\n",
          );
        });
      });
    } finally {
      await sshd?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
