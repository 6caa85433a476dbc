/**
 * Interop: our SFTP client (`@fynx/ssh/sftp`) against OpenSSH's
 * `sftp-server`, reached through a real `sshd` (tests/_openssh.ts starts it
 * with `Subsystem sftp /usr/lib/openssh/sftp-server`).
 *
 * Covers every operation and extension the client has, the error paths
 * (missing file, not a directory, permission denied, existing targets,
 * handles used after close), 64 MiB up and down with SHA-256 checksums and
 * a 10,000-entry directory listing.
 *
 * Needs root and OpenSSH (like every sshd test); otherwise ignored with a
 * message. Permission-denied cases log in as the unprivileged `fynxtest`
 * user, because root is never denied by file modes.
 */
import assert from "node:assert/strict";
import { connect, type SshClient } from "../client.ts";
import { parsePrivateKey } from "../keys/mod.ts";
import {
  openSftp,
  type SftpClient,
  SftpError,
  SftpStatus,
} from "../sftp/mod.ts";
import {
  bytesEqual,
  ensureTestUser,
  randomBytes,
  run,
  sha256hex,
  skipOpenssh,
  type Sshd,
  sshKeygen,
  startSshd,
  TEST_USER,
} from "./_openssh.ts";

const ignore = skipOpenssh("sftp client tests (our client -> sftp-server)");
const MiB = 1 << 20;
const enc = new TextEncoder();
const dec = new TextDecoder();

interface Setup {
  sshd: Sshd;
  dir: string;
  key: ReturnType<typeof parsePrivateKey>;
}

async function setup(): Promise<Setup> {
  const dir = await Deno.makeTempDir({ prefix: "fynx-sftp-client-" });
  const user = await sshKeygen(dir, "user", "ed25519");
  const sshd = await startSshd({
    hostKeyTypes: ["ed25519"],
    authorizedKeys: [user.publicLine],
  });
  return {
    sshd,
    dir,
    key: parsePrivateKey(await Deno.readTextFile(user.path)),
  };
}

async function teardown(s: Setup): Promise<void> {
  await s.sshd.stop();
  await Deno.remove(s.dir, { recursive: true });
}

async function connectTo(
  s: Setup,
  auth: { username: string; password?: string } = { username: "root" },
): Promise<SshClient> {
  return await connect({
    hostname: "127.0.0.1",
    port: s.sshd.port,
    username: auth.username,
    privateKeys: auth.password === undefined ? [s.key] : [],
    password: auth.password,
    verifyHostKey: (key) =>
      s.sshd.hostKeys.some((k) => bytesEqual(k.blob, key.blob)),
  });
}

async function withSftp<T>(
  s: Setup,
  body: (sftp: SftpClient, client: SshClient) => Promise<T>,
  auth?: { username: string; password?: string },
): Promise<T> {
  const client = await connectTo(s, auth);
  try {
    const sftp = await openSftp(client);
    try {
      return await body(sftp, client);
    } finally {
      await sftp.close();
    }
  } catch (e) {
    throw new Error(
      `${(e as Error)?.stack ?? e}\n--- sshd log (tail) ---\n${
        s.sshd.log().slice(-2000)
      }`,
      { cause: e },
    );
  } finally {
    await client.close();
  }
}

async function rejectsWith(
  p: Promise<unknown>,
  code: number,
  path: string,
): Promise<SftpError> {
  const e = await p.then(() => null, (e) => e);
  assert.ok(e instanceof SftpError, `expected SftpError, got ${e}`);
  assert.equal(
    e.code,
    code,
    `code ${e.code} instead of ${code}: ${e.message}`,
  );
  assert.ok(e.message.includes(path), `"${e.message}" does not name ${path}`);
  return e;
}

Deno.test({
  name: "sftp client: every operation against OpenSSH sftp-server",
  ignore,
  async fn(t) {
    const s = await setup();
    const base = `${s.dir}/files`;
    await Deno.mkdir(base);
    try {
      await withSftp(s, async (sftp) => {
        await t.step("version, extensions and limits", () => {
          assert.equal(sftp.version, 3);
          for (
            const ext of [
              "posix-rename@openssh.com",
              "statvfs@openssh.com",
              "hardlink@openssh.com",
              "fsync@openssh.com",
              "limits@openssh.com",
              "copy-data",
            ]
          ) assert.ok(sftp.supports(ext), `${ext} not announced`);
          assert.equal(sftp.limits.maxPacketLength, 256 * 1024);
          assert.equal(sftp.limits.maxReadLength, 255 * 1024);
          // As OpenSSH's sftp: request sizes follow the server's limits.
          assert.equal(sftp.readSize, 255 * 1024);
          assert.equal(sftp.writeSize, 255 * 1024);
        });

        await t.step("realpath and expand-path", async () => {
          assert.equal(await sftp.realpath(`${base}/./../files`), base);
          assert.equal(await sftp.realpath("/"), "/");
          assert.equal(await sftp.realpath("."), "/root");
          assert.equal(await sftp.expandPath("~"), "/root");
        });

        await t.step("open, write, read, fstat, close", async () => {
          const f = await sftp.open(`${base}/a.txt`, "w", {
            permissions: 0o640,
          });
          await f.write(0, enc.encode("hello "));
          await f.write(6, enc.encode("world"));
          const st = await f.stat();
          assert.equal(st.size, 11);
          await f.close();
          assert.equal(await Deno.readTextFile(`${base}/a.txt`), "hello world");
          assert.equal((await Deno.stat(`${base}/a.txt`)).mode! & 0o777, 0o640);
          const r = await sftp.open(`${base}/a.txt`, "r");
          assert.equal(dec.decode((await r.read(6, 100))!), "world");
          assert.equal(await r.read(11, 100), null);
          await r.close();
          // Append mode writes at the end whatever the offset.
          const a = await sftp.open(`${base}/a.txt`, "a");
          await a.write(0, enc.encode("!"));
          await a.close();
          assert.equal(
            dec.decode(await sftp.readFile(`${base}/a.txt`)),
            "hello world!",
          );
          // Exclusive create fails on an existing file.
          await rejectsWith(
            sftp.open(`${base}/a.txt`, "wx"),
            SftpStatus.FAILURE,
            `${base}/a.txt`,
          );
        });

        await t.step("readable and writable streams", async () => {
          const data = randomBytes(3 * MiB + 12345);
          const w = await sftp.open(`${base}/stream.bin`, "w");
          await new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeTo(
            w.writable,
          );
          await w.close();
          assert.equal(
            sha256hex(await Deno.readFile(`${base}/stream.bin`)),
            sha256hex(data),
          );
          const r = await sftp.open(`${base}/stream.bin`, "r");
          const back = new Uint8Array(
            await new Response(r.readable).arrayBuffer(),
          );
          await r.close();
          assert.equal(sha256hex(back), sha256hex(data));
          // A range, in small requests.
          const r2 = await sftp.open(`${base}/stream.bin`, "r");
          const part = new Uint8Array(
            await new Response(
              r2.createReadable({ start: 1000, end: 71000, chunkSize: 4096 }),
            ).arrayBuffer(),
          );
          await r2.close();
          assert.ok(bytesEqual(part, data.subarray(1000, 71000)));
        });

        await t.step("stat, lstat, setstat, fsetstat", async () => {
          const p = `${base}/a.txt`;
          await sftp.setstat(p, { permissions: 0o600 });
          assert.equal((await sftp.stat(p)).permissions! & 0o7777, 0o600);
          await sftp.setstat(p, { atime: 1_000_000, mtime: 2_000_000 });
          const st = await sftp.stat(p);
          assert.equal(st.mtime, 2_000_000);
          assert.equal(st.atime, 1_000_000);
          await sftp.setstat(p, { size: 5 });
          assert.equal(await Deno.readTextFile(p), "hello");
          const f = await sftp.open(p, "r+");
          await f.setstat({ size: 2, permissions: 0o644 });
          assert.equal((await f.stat()).size, 2);
          await f.close();
          assert.equal((await Deno.stat(p)).mode! & 0o777, 0o644);
          await sftp.setstat(p, { uid: 0, gid: 0 });
          assert.equal((await sftp.stat(p)).uid, 0);
          const dirAttrs = await sftp.stat(base);
          assert.equal(dirAttrs.permissions! & 0o170000, 0o040000);
        });

        await t.step("mkdir, opendir/readdir, list, rmdir", async () => {
          await sftp.mkdir(`${base}/d`, { permissions: 0o750 });
          assert.equal((await Deno.stat(`${base}/d`)).mode! & 0o777, 0o750);
          await Deno.writeTextFile(`${base}/d/x`, "x");
          await Deno.writeTextFile(`${base}/d/y`, "yy");
          const dir = await sftp.opendir(`${base}/d`);
          const seen: string[] = [];
          for await (const e of dir) seen.push(e.filename);
          await dir.close();
          assert.deepEqual(seen.sort(), [".", "..", "x", "y"]);
          const list = await sftp.list(`${base}/d`);
          assert.deepEqual(list.map((e) => e.filename).sort(), ["x", "y"]);
          const y = list.find((e) => e.filename === "y")!;
          assert.equal(y.attrs.size, 2);
          assert.match(y.longname, /^-rw.* y$/);
          await sftp.remove(`${base}/d/x`);
          await sftp.remove(`${base}/d/y`);
          await sftp.rmdir(`${base}/d`);
          assert.equal(await sftp.exists(`${base}/d`), false);
        });

        await t.step("rename and posix-rename", async () => {
          await Deno.writeTextFile(`${base}/r1`, "one");
          await Deno.writeTextFile(`${base}/r2`, "two");
          // v3 rename refuses to replace.
          await rejectsWith(
            sftp.rename(`${base}/r1`, `${base}/r2`),
            SftpStatus.FAILURE,
            `${base}/r1`,
          );
          await sftp.rename(`${base}/r1`, `${base}/r3`);
          assert.equal(await Deno.readTextFile(`${base}/r3`), "one");
          await sftp.posixRename(`${base}/r3`, `${base}/r2`);
          assert.equal(await Deno.readTextFile(`${base}/r2`), "one");
          assert.equal(await sftp.exists(`${base}/r3`), false);
        });

        await t.step("symlink, readlink, lstat, realpath", async () => {
          await sftp.symlink("r2", `${base}/link`);
          assert.equal(await Deno.readLink(`${base}/link`), "r2");
          assert.equal(await sftp.readlink(`${base}/link`), "r2");
          const l = await sftp.lstat(`${base}/link`);
          assert.equal(l.permissions! & 0o170000, 0o120000);
          const st = await sftp.stat(`${base}/link`);
          assert.equal(st.size, 3);
          assert.equal(await sftp.realpath(`${base}/link`), `${base}/r2`);
          await sftp.remove(`${base}/link`);
        });

        await t.step("hardlink, fsync, statvfs", async () => {
          await sftp.hardlink(`${base}/r2`, `${base}/hard`);
          assert.equal((await Deno.stat(`${base}/hard`)).nlink, 2);
          const f = await sftp.open(`${base}/hard`, "a");
          await f.write(0, enc.encode("+"));
          await f.fsync();
          await f.close();
          assert.equal(await Deno.readTextFile(`${base}/r2`), "one+");
          const vfs = await sftp.statvfs(base);
          assert.ok(vfs.bsize > 0 && vfs.blocks > 0 && vfs.namemax >= 255);
        });

        await t.step("copy-data", async () => {
          const data = randomBytes(700_000);
          await Deno.writeFile(`${base}/src`, data);
          await sftp.copy(`${base}/src`, `${base}/dst`);
          assert.equal(
            sha256hex(await Deno.readFile(`${base}/dst`)),
            sha256hex(data),
          );
          const src = await sftp.open(`${base}/src`, "r");
          const dst = await sftp.open(`${base}/part`, "w");
          await sftp.copyData(src, 100, 1000, dst, 10);
          await src.close();
          await dst.close();
          const part = await Deno.readFile(`${base}/part`);
          assert.equal(part.length, 1010);
          assert.ok(bytesEqual(part.subarray(10), data.subarray(100, 1100)));
        });

        await t.step("concurrent requests are matched by id", async () => {
          const names = Array.from({ length: 50 }, (_, i) => `${base}/c${i}`);
          await Promise.all(
            names.map((n, i) => sftp.writeFile(n, enc.encode(String(i)))),
          );
          const back = await Promise.all(names.map((n) => sftp.readFile(n)));
          assert.deepEqual(
            back.map((b) => dec.decode(b)),
            names.map((_, i) => String(i)),
          );
        });
      });
    } finally {
      await teardown(s);
    }
  },
});

Deno.test({
  name: "sftp client: error paths name the path and carry the status code",
  ignore,
  async fn(t) {
    const s = await setup();
    const base = `${s.dir}/files`;
    await Deno.mkdir(base);
    await Deno.writeTextFile(`${base}/file`, "data");
    try {
      await withSftp(s, async (sftp) => {
        await t.step("missing file", async () => {
          const e = await rejectsWith(
            sftp.stat(`${base}/missing`),
            SftpStatus.NO_SUCH_FILE,
            `${base}/missing`,
          );
          assert.match(e.message, /SSH_FX_NO_SUCH_FILE/);
          await rejectsWith(
            sftp.open(`${base}/missing`, "r"),
            SftpStatus.NO_SUCH_FILE,
            `${base}/missing`,
          );
          await rejectsWith(
            sftp.remove(`${base}/missing`),
            SftpStatus.NO_SUCH_FILE,
            `${base}/missing`,
          );
          await rejectsWith(
            sftp.get(`${base}/missing`, `${s.dir}/never`),
            SftpStatus.NO_SUCH_FILE,
            `${base}/missing`,
          );
        });
        await t.step("not a directory (a path under a file)", async () => {
          await rejectsWith(
            sftp.stat(`${base}/file/below`),
            SftpStatus.NO_SUCH_FILE,
            `${base}/file/below`,
          );
          await rejectsWith(
            sftp.mkdir(`${base}/file/below`),
            SftpStatus.NO_SUCH_FILE,
            `${base}/file/below`,
          );
          await rejectsWith(
            sftp.list(`${base}/file`),
            SftpStatus.NO_SUCH_FILE,
            `${base}/file`,
          );
        });
        await t.step("existing targets and non-empty directories", async () => {
          await rejectsWith(
            sftp.mkdir(base),
            SftpStatus.FAILURE,
            base,
          );
          await rejectsWith(sftp.rmdir(base), SftpStatus.FAILURE, base);
          await rejectsWith(sftp.remove(base), SftpStatus.FAILURE, base);
        });
        await t.step("a handle used after close", async () => {
          const f = await sftp.open(`${base}/file`, "r");
          await f.close();
          // Our object refuses nothing itself: the server sees the stale handle.
          await rejectsWith(f.read(0, 10), SftpStatus.FAILURE, `${base}/file`);
          await rejectsWith(f.stat(), SftpStatus.FAILURE, `${base}/file`);
        });
      });
      await t.step("permission denied (as an unprivileged user)", async () => {
        const { username, password } = await ensureTestUser();
        // Root-only directory: the test user can neither look in nor write.
        const secret = `${s.dir}/secret`;
        await Deno.mkdir(secret, { mode: 0o700 });
        await Deno.chmod(secret, 0o700);
        await Deno.writeTextFile(`${secret}/f`, "x");
        await Deno.chmod(s.dir, 0o755);
        await withSftp(s, async (sftp) => {
          await rejectsWith(
            sftp.stat(`${secret}/f`),
            SftpStatus.PERMISSION_DENIED,
            `${secret}/f`,
          );
          await rejectsWith(
            sftp.list(secret),
            SftpStatus.PERMISSION_DENIED,
            secret,
          );
          await rejectsWith(
            sftp.writeFile(`${s.dir}/nope`, enc.encode("x")),
            SftpStatus.PERMISSION_DENIED,
            `${s.dir}/nope`,
          );
        }, { username, password });
        assert.equal(username, TEST_USER);
      });
    } finally {
      await teardown(s);
    }
  },
});

Deno.test({
  name: "sftp client: 64 MiB put and get with SHA-256 checksums",
  ignore,
  async fn() {
    const s = await setup();
    try {
      const data = randomBytes(64 * MiB);
      const digest = sha256hex(data);
      await Deno.writeFile(`${s.dir}/up.bin`, data);
      await withSftp(s, async (sftp) => {
        const seen: number[] = [];
        await sftp.put(`${s.dir}/up.bin`, `${s.dir}/remote.bin`, {
          onProgress: (p) => {
            assert.equal(p.total, 64 * MiB);
            seen.push(p.bytes);
          },
        });
        assert.equal(seen.at(-1), 64 * MiB);
        assert.ok(seen.every((v, i) => i === 0 || v >= seen[i - 1]));
        const r1 = await run("sha256sum", [`${s.dir}/remote.bin`]);
        assert.equal(r1.stdoutText.split(" ")[0], digest);

        let last = 0;
        await sftp.get(`${s.dir}/remote.bin`, `${s.dir}/down.bin`, {
          onProgress: (p) => last = p.bytes,
        });
        assert.equal(last, 64 * MiB);
        const r2 = await run("sha256sum", [`${s.dir}/down.bin`]);
        assert.equal(r2.stdoutText.split(" ")[0], digest);
      });
    } finally {
      await teardown(s);
    }
  },
});

Deno.test({
  name: "sftp client: a 10,000-entry directory listing",
  ignore,
  async fn() {
    const s = await setup();
    try {
      const big = `${s.dir}/big`;
      await Deno.mkdir(big);
      const names = new Set<string>();
      for (let i = 0; i < 10_000; i++) {
        const name = `entry-${String(i).padStart(5, "0")}`;
        names.add(name);
        Deno.writeFileSync(`${big}/${name}`, new Uint8Array(i % 7));
      }
      await withSftp(s, async (sftp) => {
        const list = await sftp.list(big);
        assert.equal(list.length, 10_000);
        for (const e of list) {
          assert.ok(names.has(e.filename), e.filename);
          assert.equal(e.attrs.size, Number(e.filename.slice(6)) % 7);
        }
        assert.equal(new Set(list.map((e) => e.filename)).size, 10_000);
      });
    } finally {
      await teardown(s);
    }
  },
});
