/**
 * The `fynx sftp` command and the sftp subsystem of `fynx sshd`, end to
 * end: `fynx sftp -b` against a real OpenSSH `sshd` (its `sftp-server`),
 * and OpenSSH's `sftp -b` against `fynx sshd`. The CLI runs with exactly
 * the `fynx` task's permissions (tests/_fynx.ts).
 *
 * The sshd test needs root and OpenSSH; the `fynx sshd` one only the
 * OpenSSH client. Otherwise they are ignored with a message.
 */
import assert from "node:assert/strict";
import { fynx, startFynxSshd } from "./_fynx.ts";
import {
  randomBytes,
  run,
  sha256hex,
  skipOpenssh,
  sshArgs,
  sshKeygen,
  startSshd,
} from "./_openssh.ts";

const ignoreSshd = skipOpenssh("fynx sftp -b against sshd");
const ignoreClient = skipOpenssh("OpenSSH sftp against fynx sshd", {
  needServer: false,
});

Deno.test("fynx sftp --help and argument errors", async () => {
  const help = await fynx(["sftp", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdoutText, /Usage: fynx sftp/);
  assert.match(help.stdoutText, /-b FILE/);
  const viaHelp = await fynx(["help", "sftp"]);
  assert.match(viaHelp.stdoutText, /Usage: fynx sftp/);
  const main = await fynx(["--help"]);
  assert.match(main.stdoutText, /sftp +Transfer files/);
  const none = await fynx(["sftp"]);
  assert.equal(none.code, 255);
  assert.match(none.stderrText, /missing destination/);
  const bad = await fynx(["sftp", "--bogus", "host"]);
  assert.equal(bad.code, 255);
  assert.match(bad.stderrText, /unknown option '--bogus'/);
  const noBatch = await fynx(["sftp", "-b", "/nonexistent/batch", "host"]);
  assert.equal(noBatch.code, 1);
  assert.match(noBatch.stderrText, /cannot open batch file/);
});

Deno.test({
  name: "fynx sftp -b against OpenSSH sshd: every command, errors, checksums",
  ignore: ignoreSshd,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "fynx-sftp-cli-" });
    const user = await sshKeygen(dir, "user", "ed25519");
    const sshd = await startSshd({
      hostKeyTypes: ["ed25519"],
      authorizedKeys: [user.publicLine],
    });
    const remote = `${dir}/remote`;
    const local = `${dir}/local`;
    await Deno.mkdir(remote);
    await Deno.mkdir(local);
    const base = [
      "sftp",
      "-P",
      String(sshd.port),
      "-i",
      user.path,
      "-o",
      `UserKnownHostsFile=${sshd.knownHostsPath}`,
      "-o",
      "StrictHostKeyChecking=yes",
    ];
    const batch = async (lines: string[], dest = "root@127.0.0.1") => {
      const file = `${dir}/batch`;
      await Deno.writeTextFile(file, lines.join("\n") + "\n");
      return await fynx([...base, "-b", file, dest]);
    };
    try {
      const data = randomBytes(5 * 1024 * 1024 + 77);
      await Deno.writeFile(`${local}/data.bin`, data);
      await Deno.writeTextFile(`${local}/note.txt`, "note\n");

      await t.step("every command", async () => {
        const r = await batch([
          `lcd ${local}`,
          "lpwd",
          `cd ${remote}`,
          "pwd",
          "mkdir sub",
          "put data.bin",
          "put note.txt sub",
          "ls",
          "ls -l",
          "ls -1 sub",
          "rename data.bin moved.bin",
          "chmod 640 moved.bin",
          "ln -s moved.bin link.bin",
          "ln moved.bin hard.bin",
          "get link.bin back.bin",
          "get sub/note.txt",
          "rm hard.bin",
          "rm sub/note.txt",
          "rmdir sub",
          "-rm missing-file",
          "help",
          "quit",
          "mkdir never-run",
        ]);
        assert.equal(r.code, 0, r.stderrText);
        const o = r.stdoutText;
        assert.match(o, /sftp> lpwd\nLocal working directory: /);
        assert.match(o, new RegExp(`Remote working directory: ${remote}\n`));
        assert.match(o, /sftp> ls\n(.*\n)*data\.bin\n/);
        assert.match(o, /-rw-r--r-- .* root .* note\.txt|sub/);
        assert.match(o, /sftp> ls -1 sub\nsub\/note\.txt\n/);
        assert.match(o, /Available commands:/);
        assert.match(r.stderrText, /missing-file.*No such file/);
        assert.equal(
          sha256hex(await Deno.readFile(`${local}/back.bin`)),
          sha256hex(data),
        );
        assert.equal(await Deno.readTextFile(`${local}/note.txt`), "note\n");
        assert.equal(
          (await Deno.stat(`${remote}/moved.bin`)).mode! & 0o777,
          0o640,
        );
        assert.equal(await Deno.readLink(`${remote}/link.bin`), "moved.bin");
        assert.deepEqual(
          [...Deno.readDirSync(remote)].map((e) => e.name).sort(),
          ["link.bin", "moved.bin"],
        );
      });

      await t.step(
        "the first failing command aborts with status 1",
        async () => {
          const r = await batch([
            `cd ${remote}`,
            "rm no-such-file",
            "mkdir should-not-exist",
          ]);
          assert.equal(r.code, 1);
          assert.match(r.stderrText, /no-such-file: No such file/);
          assert.equal(
            await Deno.stat(`${remote}/should-not-exist`).catch(() => null),
            null,
          );
          const unknown = await batch(["frobnicate"]);
          assert.equal(unknown.code, 1);
          assert.match(unknown.stderrText, /Invalid command 'frobnicate'/);
        },
      );

      await t.step("host:path starts in that directory", async () => {
        const r = await batch(["pwd"], `root@127.0.0.1:${remote}`);
        assert.equal(r.code, 0, r.stderrText);
        assert.match(
          r.stdoutText,
          new RegExp(`Remote working directory: ${remote}\n`),
        );
      });

      await t.step(
        "an unknown host key fails like fynx ssh (255)",
        async () => {
          const file = `${dir}/batch`;
          await Deno.writeTextFile(file, "pwd\n");
          const r = await fynx([
            "sftp",
            "-P",
            String(sshd.port),
            "-i",
            user.path,
            "-o",
            `UserKnownHostsFile=${dir}/empty_known_hosts`,
            "-b",
            file,
            "root@127.0.0.1",
          ]);
          assert.equal(r.code, 255);
          assert.match(r.stderrText, /Host key verification failed/);
        },
      );
    } finally {
      await sshd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "OpenSSH sftp -b against fynx sshd (sftp served by default)",
  ignore: ignoreClient,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "fynx-sshd-sftp-" });
    const user = await sshKeygen(dir, "user", "ed25519");
    await Deno.writeTextFile(`${dir}/authorized_keys`, user.publicLine + "\n");
    const hostKey = `${dir}/host_ed25519`;
    const servers: { stop(): Promise<unknown>; log(): string }[] = [];
    const start = async (extra: string[]) => {
      const s = await startFynxSshd([
        "--listen",
        "127.0.0.1:0",
        "--host-key",
        hostKey,
        "--authorized-keys",
        `${dir}/authorized_keys`,
        ...extra,
      ]);
      servers.push(s);
      const pub = (await Deno.readTextFile(`${hostKey}.pub`)).trim();
      const known = `${dir}/known_hosts_${s.port}`;
      await Deno.writeTextFile(
        known,
        `[127.0.0.1]:${s.port} ${pub.split(" ").slice(0, 2).join(" ")}\n`,
      );
      const args = sshArgs({
        port: s.port,
        user: "tester",
        knownHostsPath: known,
        identity: user.path,
      }).map((a) => a === "-p" ? "-P" : a);
      return { ...s, args };
    };
    const sftpBatch = async (args: string[], lines: string[]) => {
      await Deno.writeTextFile(`${dir}/batch`, lines.join("\n") + "\n");
      const a = [...args];
      a.splice(a.length - 1, 0, "-b", `${dir}/batch`);
      return await run("sftp", a);
    };
    try {
      const data = randomBytes(3 * 1024 * 1024 + 5);
      await Deno.writeFile(`${dir}/up.bin`, data);

      await t.step(
        "default: the whole file system, starting in $HOME",
        async () => {
          const s = await start([]);
          const home = Deno.env.get("HOME") ?? "/";
          const r = await sftpBatch(s.args, [
            "pwd",
            `put ${dir}/up.bin ${dir}/remote.bin`,
            `get ${dir}/remote.bin ${dir}/down.bin`,
            `ls -l ${dir}`,
          ]);
          assert.equal(r.code, 0, `${r.stderrText}\n${s.log()}`);
          assert.match(
            r.stdoutText,
            new RegExp(`Remote working directory: ${home}\n`),
          );
          assert.equal(
            sha256hex(await Deno.readFile(`${dir}/down.bin`)),
            sha256hex(data),
          );
          assert.match(r.stdoutText, /remote\.bin/);
        },
      );

      await t.step(
        "--sftp-root confines, --sftp-read-only refuses",
        async () => {
          const root = `${dir}/jail`;
          await Deno.mkdir(root);
          await Deno.writeTextFile(`${root}/inside.txt`, "in");
          const s = await start(["--sftp-root", root, "--sftp-read-only"]);
          const r = await sftpBatch(s.args, [
            "pwd",
            "cd ..",
            "pwd",
            `get inside.txt ${dir}/inside-copy.txt`,
            `-get ${dir}/up.bin ${dir}/escaped.bin`,
            `-put ${dir}/up.bin /planted.bin`,
          ]);
          assert.equal(r.code, 0, `${r.stderrText}\n${s.log()}`);
          assert.doesNotMatch(r.stdoutText, /Remote working directory: \/.+\n/);
          assert.equal(await Deno.readTextFile(`${dir}/inside-copy.txt`), "in");
          assert.equal(
            await Deno.stat(`${dir}/escaped.bin`).catch(() => null),
            null,
          );
          assert.equal(
            await Deno.stat(`${root}/planted.bin`).catch(() => null),
            null,
          );
          assert.match(r.stderrText, /Permission denied/);
        },
      );

      await t.step("--no-sftp refuses the subsystem", async () => {
        const s = await start(["--no-sftp"]);
        const r = await sftpBatch(s.args, ["pwd"]);
        assert.notEqual(r.code, 0);
        assert.match(
          r.stderrText,
          /subsystem request failed|Connection closed/,
        );
      });
    } finally {
      for (const s of servers) await s.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
