/**
 * Interop: OpenSSH's `sftp` client in batch mode (`sftp -b`) against our
 * server (`serve()` with `commandSessionHandler({ subsystems: { sftp:
 * sftpSubsystem(...) } })` on 127.0.0.1), plus our own client against our
 * server over SSH.
 *
 * Covers every common sftp command, batch error handling (`-` prefix,
 * abort on the first error), 64 MiB up and down with SHA-256 checksums, a
 * 10,000-entry listing, the read-only mode and the chroot-style root
 * (`..`, absolute paths and symlinks that lead out are refused).
 *
 * Needs only the OpenSSH client (`sftp`, `ssh`, `ssh-keygen`), not root.
 */
import assert from "node:assert/strict";
import { connect } from "../client.ts";
import { commandSessionHandler, serve, type SshServer } from "../server.ts";
import { generatePrivateKey } from "../keys/mod.ts";
import {
  openSftp,
  serveSftp,
  SftpClient,
  type SftpServerOptions,
  SftpStatus,
  sftpSubsystem,
} from "../sftp/mod.ts";
import {
  bytesEqual,
  knownHostsLine,
  randomBytes,
  run,
  type RunResult,
  sha256hex,
  skipOpenssh,
  sshArgs,
  sshKeygen,
} from "./_openssh.ts";

const ignore = skipOpenssh("sftp server tests (OpenSSH sftp -> our server)", {
  needServer: false,
});
const SFTP = "/usr/bin/sftp";
const MiB = 1 << 20;
const USER = "tester";

interface Fixture {
  dir: string;
  root: string;
  server: SshServer;
  args: string[];
  stop(): Promise<void>;
}

/** Our server on a free port, serving `root`, and `sftp` arguments for it. */
async function start(
  options: Partial<SftpServerOptions> = {},
): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "fynx-sftp-server-" });
  const root = `${dir}/root`;
  await Deno.mkdir(root);
  const user = await sshKeygen(dir, "user", "ed25519");
  const hostKey = generatePrivateKey("ed25519");
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    hostKeys: [hostKey],
    publicKey: ({ username, key }) =>
      username === USER && bytesEqual(key.blob, user.blob),
    onSession: commandSessionHandler({
      subsystems: { sftp: sftpSubsystem({ root, ...options }) },
    }),
  });
  const port = server.addr.port;
  const knownHostsPath = `${dir}/known_hosts`;
  await Deno.writeTextFile(
    knownHostsPath,
    knownHostsLine("127.0.0.1", port, hostKey.publicKey.toString()) + "\n",
  );
  const ssh = sshArgs({
    port,
    user: USER,
    knownHostsPath,
    identity: user.path,
  });
  // sftp(1) takes the port as -P; everything else is passed to ssh.
  const args = ssh.map((a) => a === "-p" ? "-P" : a);
  return {
    dir,
    root,
    server,
    args,
    async stop() {
      await server.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Runs `sftp -b batch` with `commands`, in local directory `cwd`. */
async function batch(
  f: Fixture,
  commands: string[],
  cwd: string = f.dir,
): Promise<RunResult> {
  const file = `${f.dir}/batch`;
  // run() has no cwd option: start in `cwd` with a silent (`@`) lcd.
  await Deno.writeTextFile(
    file,
    [`@lcd ${cwd}`, ...commands].join("\n") + "\n",
  );
  const args = [...f.args];
  args.splice(args.length - 1, 0, "-b", file);
  return await run(SFTP, args);
}

function ok(r: RunResult): void {
  assert.equal(
    r.code,
    0,
    `sftp failed (${r.code}):\n${r.stderrText}\n${r.stdoutText}`,
  );
}

Deno.test({
  name: "sftp server: OpenSSH sftp -b runs every common command",
  ignore,
  async fn() {
    const f = await start();
    try {
      const local = `${f.dir}/local`;
      await Deno.mkdir(local);
      await Deno.writeTextFile(`${local}/hello.txt`, "hello sftp\n");
      await Deno.writeTextFile(`${local}/second.txt`, "2");
      const r = await batch(f, [
        "pwd",
        "lpwd",
        "mkdir /docs",
        "cd /docs",
        "lcd local",
        "put hello.txt",
        "put second.txt other.txt",
        "ls",
        "ls -l",
        "ls -la /docs",
        "rename other.txt renamed.txt",
        "chmod 600 renamed.txt",
        "ln -s hello.txt link.txt",
        "ln hello.txt hard.txt",
        "get link.txt fetched.txt",
        "get /docs/renamed.txt",
        "mkdir sub",
        "rmdir sub",
        "rm hard.txt",
        "-rm does-not-exist",
        "cd ..",
        "ls /docs",
        "df /",
        "df -h /docs",
        "!true",
      ], f.dir);
      ok(r);
      const out = r.stdoutText;
      assert.match(out, /Remote working directory: \/\n/);
      assert.match(out, /Local working directory: /);
      assert.match(out, /hello\.txt/);
      assert.match(out, /-rw-r--r-- .* hello\.txt/);
      // statvfs@openssh.com, through FFI (the test permissions allow it).
      assert.match(out, /Size +Used +Avail +\(root\) +%Capacity/);
      assert.equal(
        await Deno.readTextFile(`${f.root}/docs/hello.txt`),
        "hello sftp\n",
      );
      assert.equal(await Deno.readTextFile(`${f.root}/docs/renamed.txt`), "2");
      assert.equal(
        (await Deno.stat(`${f.root}/docs/renamed.txt`)).mode! & 0o777,
        0o600,
      );
      assert.equal(await Deno.readLink(`${f.root}/docs/link.txt`), "hello.txt");
      assert.equal(
        await Deno.readTextFile(`${local}/fetched.txt`),
        "hello sftp\n",
      );
      assert.equal(await Deno.readTextFile(`${local}/renamed.txt`), "2");
      assert.equal(
        await Deno.stat(`${f.root}/docs/hard.txt`).catch(() => null),
        null,
      );
      assert.equal(
        await Deno.stat(`${f.root}/docs/sub`).catch(() => null),
        null,
      );

      // Without the "-" prefix, the first error aborts the batch (exit 1).
      const bad = await batch(f, ["rm /nope", "mkdir /never"]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderrText, /nope/);
      assert.equal(await Deno.stat(`${f.root}/never`).catch(() => null), null);

      // Errors OpenSSH's sftp shows for our status codes.
      const errs = await batch(f, [
        "-get /missing",
        "-cd /docs/hello.txt",
        "-mkdir /docs",
        "-rmdir /docs",
        "-rename /docs/hello.txt /docs/renamed.txt",
      ]);
      ok(errs);
      assert.match(errs.stderrText, /missing.* not found|No such file/);
      assert.match(errs.stderrText, /Can't change directory|Not a directory/);
      assert.match(errs.stderrText, /Failure/);
    } finally {
      await f.stop();
    }
  },
});

Deno.test({
  name: "sftp server: 64 MiB put and get with OpenSSH sftp, SHA-256 checked",
  ignore,
  async fn() {
    const f = await start();
    try {
      const data = randomBytes(64 * MiB);
      await Deno.writeFile(`${f.dir}/big.bin`, data);
      const r = await batch(f, [
        "put big.bin /big.bin",
        "get /big.bin back.bin",
      ]);
      ok(r);
      const digest = sha256hex(data);
      assert.equal(sha256hex(await Deno.readFile(`${f.root}/big.bin`)), digest);
      assert.equal(sha256hex(await Deno.readFile(`${f.dir}/back.bin`)), digest);
    } finally {
      await f.stop();
    }
  },
});

Deno.test({
  name: "sftp server: OpenSSH sftp lists a 10,000-entry directory",
  ignore,
  async fn() {
    const f = await start();
    try {
      await Deno.mkdir(`${f.root}/many`);
      for (let i = 0; i < 10_000; i++) {
        Deno.writeFileSync(`${f.root}/many/f${i}`, new Uint8Array(0));
      }
      const r = await batch(f, ["ls -1 /many"]);
      ok(r);
      const names = r.stdoutText.split("\n").map((l) => l.trim()).filter((l) =>
        l.startsWith("/many/f") || l.startsWith("f")
      );
      assert.equal(names.length, 10_000);
      assert.equal(new Set(names).size, 10_000);
    } finally {
      await f.stop();
    }
  },
});

Deno.test({
  name: "sftp server: the root confines every path, read-only refuses writes",
  ignore,
  async fn(t) {
    const outside = await Deno.makeTempDir({ prefix: "fynx-sftp-outside-" });
    await Deno.writeTextFile(`${outside}/secret`, "top secret");
    const f = await start();
    const ro = await start({ readOnly: true });
    try {
      await Deno.writeTextFile(`${f.root}/inside.txt`, "inside");
      await Deno.symlink(outside, `${f.root}/escape`);
      await Deno.symlink(`${outside}/secret`, `${f.root}/secret-link`);
      await Deno.symlink("inside.txt", `${f.root}/ok-link`);

      await t.step("OpenSSH sftp cannot leave the root", async () => {
        const r = await batch(f, [
          "cd ../../..",
          "pwd",
          "ls",
          `-get ${outside}/secret stolen1`,
          "-get ../../../../etc/hostname stolen2",
          "-get /escape/secret stolen3",
          "-get secret-link stolen4",
          "-ls /escape",
          "-put /etc/hostname /escape/planted",
          "get ok-link fine.txt",
        ]);
        ok(r);
        assert.match(r.stdoutText, /Remote working directory: \/\n/);
        for (const n of ["stolen1", "stolen2", "stolen3", "stolen4"]) {
          assert.equal(
            await Deno.stat(`${f.dir}/${n}`).catch(() => null),
            null,
          );
        }
        assert.equal(
          await Deno.stat(`${outside}/planted`).catch(() => null),
          null,
        );
        assert.equal(await Deno.readTextFile(`${f.dir}/fine.txt`), "inside");
        assert.match(r.stderrText, /Permission denied/);
      });

      await t.step("our client sees the same refusals", async () => {
        const sftpRoot = f.root;
        const up = new TransformStream<Uint8Array, Uint8Array>();
        const down = new TransformStream<Uint8Array, Uint8Array>();
        const served = serveSftp({
          readable: up.readable,
          writable: down.writable,
        }, { root: sftpRoot });
        const sftp = await SftpClient.open({
          readable: down.readable,
          writable: up.writable,
        });
        try {
          assert.equal(await sftp.realpath("/../.."), "/");
          assert.equal(await sftp.realpath("ok-link"), "/inside.txt");
          for (
            const p of ["/escape/secret", "/secret-link", "/escape"]
          ) {
            const e = await sftp.stat(p).catch((e) => e);
            assert.equal(e.code, SftpStatus.PERMISSION_DENIED, `${p}: ${e}`);
          }
          const e2 = await sftp.realpath("/escape").catch((e) => e);
          assert.equal(e2.code, SftpStatus.PERMISSION_DENIED);
          const e3 = await sftp.writeFile("/escape/x", new Uint8Array(1))
            .catch((e) => e);
          assert.equal(e3.code, SftpStatus.PERMISSION_DENIED);
          // lstat and readlink of the link itself are fine (it is inside).
          assert.equal(
            (await sftp.lstat("/escape")).permissions! & 0o170000,
            0o120000,
          );
          assert.equal(await sftp.readlink("/escape"), outside);
          // Removing the link removes the link, never its target.
          await sftp.remove("/secret-link");
          assert.equal(
            await Deno.readTextFile(`${outside}/secret`),
            "top secret",
          );
          // An absolute symlink target means the same place inside the root.
          await sftp.symlink("/inside.txt", "/abs-link");
          assert.equal(
            await Deno.readLink(`${f.root}/abs-link`),
            `${await Deno.realPath(f.root)}/inside.txt`,
          );
          assert.equal(await sftp.readlink("/abs-link"), "/inside.txt");
          assert.equal(
            new TextDecoder().decode(await sftp.readFile("/abs-link")),
            "inside",
          );
        } finally {
          await sftp.close();
          await served;
        }
      });

      await t.step("read-only server refuses every change", async () => {
        await Deno.writeTextFile(`${ro.root}/keep.txt`, "keep");
        await Deno.writeTextFile(`${ro.dir}/up.txt`, "up");
        const r = await batch(ro, [
          "get keep.txt got.txt",
          "-put up.txt /up.txt",
          "-rm keep.txt",
          "-mkdir d",
          "-rename keep.txt k2.txt",
          "-chmod 600 keep.txt",
          "-ln -s keep.txt l",
        ]);
        ok(r);
        assert.equal(await Deno.readTextFile(`${ro.dir}/got.txt`), "keep");
        assert.deepEqual(
          [...Deno.readDirSync(ro.root)].map((e) => e.name),
          ["keep.txt"],
        );
        assert.equal(
          (await Deno.stat(`${ro.root}/keep.txt`)).mode! & 0o777,
          0o644,
        );
        assert.match(r.stderrText, /Permission denied/);
      });
    } finally {
      await f.stop();
      await ro.stop();
      await Deno.remove(outside, { recursive: true });
    }
  },
});

Deno.test({
  name: "sftp server: our client through SSH to our server",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "fynx-sftp-self-" });
    const hostKey = generatePrivateKey("ed25519");
    const server = serve({
      hostname: "127.0.0.1",
      port: 0,
      hostKeys: [hostKey],
      password: ({ username, password }) =>
        username === "me" && password === "pw",
      onSession: commandSessionHandler({
        subsystems: { sftp: sftpSubsystem({ root: dir }) },
      }),
    });
    try {
      const client = await connect({
        hostname: "127.0.0.1",
        port: server.addr.port,
        username: "me",
        password: "pw",
        verifyHostKey: (k) =>
          k.fingerprint() === hostKey.publicKey.fingerprint(),
      });
      try {
        const sftp = await openSftp(client);
        assert.equal(sftp.limits.maxWriteLength, 255 * 1024);
        const data = randomBytes(8 * MiB + 3);
        await sftp.writeFile("/x.bin", data);
        assert.ok(bytesEqual(await sftp.readFile("/x.bin"), data));
        await sftp.copy("/x.bin", "/y.bin");
        assert.equal(
          sha256hex(await Deno.readFile(`${dir}/y.bin`)),
          sha256hex(data),
        );
        const f = await sftp.open("/x.bin", "r+");
        await f.fsync();
        await f.close();
        assert.equal(await sftp.expandPath("~"), "/");
        const vfs = await sftp.statvfs("/");
        assert.ok(vfs.bsize > 0 && vfs.blocks > 0 && vfs.namemax >= 255);
        await sftp.hardlink("/x.bin", "/z.bin");
        assert.equal((await Deno.stat(`${dir}/z.bin`)).nlink, 2);
        await sftp.close();
        // A second SFTP session on the same connection.
        const again = await openSftp(client);
        assert.equal((await again.list("/")).length, 3);
        await again.close();
      } finally {
        await client.close();
      }
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
