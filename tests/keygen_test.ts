/**
 * `fynx keygen` against real `ssh-keygen`: keys we make load in it, its keys
 * load in ours, fingerprints and randomart match byte for byte, and
 * known_hosts lookups and removals agree.
 */
import assert from "node:assert/strict";
import { run, SSH_KEYGEN, sshClientSkipReason } from "./_openssh.ts";
import { fynx } from "./_fynx.ts";

function keygen(args: string[]) {
  return fynx(["keygen", ...args]);
}

const ignore = sshClientSkipReason !== null;

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fynx-keygen-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const TYPES: [string, string[]][] = [
  ["ed25519", []],
  ["ecdsa", ["-b", "256"]],
  ["ecdsa", ["-b", "384"]],
  ["ecdsa", ["-b", "521"]],
  ["rsa", ["-b", "2048"]],
];

Deno.test({
  name:
    "keys fynx keygen makes load in ssh-keygen, with and without a passphrase",
  ignore,
  async fn() {
    await withDir(async (dir) => {
      for (const [type, bits] of TYPES) {
        for (const pass of ["", "correct horse"]) {
          const path = `${dir}/${type}${bits.join("")}${pass ? "-enc" : ""}`;
          const made = await keygen([
            "-q",
            "-t",
            type,
            ...bits,
            "-N",
            pass,
            "-C",
            "c@x",
            "-f",
            path,
          ]);
          assert.equal(made.code, 0, made.stderrText);
          assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
          const theirs = await run(SSH_KEYGEN, ["-y", "-P", pass, "-f", path]);
          assert.equal(theirs.code, 0, theirs.stderrText);
          const pub = (await Deno.readTextFile(`${path}.pub`)).trim();
          assert.equal(theirs.stdoutText.trim(), pub);
          if (pass) {
            const wrong = await run(SSH_KEYGEN, [
              "-y",
              "-P",
              "nope",
              "-f",
              path,
            ]);
            assert.notEqual(wrong.code, 0);
          }
        }
      }
    });
  },
});

Deno.test({
  name: "fynx keygen -l, -lv, -E md5 and -y match ssh-keygen byte for byte",
  ignore,
  async fn() {
    await withDir(async (dir) => {
      for (const [type, bits] of TYPES) {
        const path = `${dir}/${type}${bits.join("")}`;
        const made = await run(SSH_KEYGEN, [
          "-q",
          "-t",
          type,
          ...bits,
          "-N",
          "",
          "-C",
          "them@y",
          "-f",
          path,
        ]);
        assert.equal(made.code, 0, made.stderrText);
        for (
          const args of [
            ["-l", "-f", `${path}.pub`],
            ["-lv", "-f", `${path}.pub`],
            ["-l", "-E", "md5", "-f", `${path}.pub`],
            ["-lv", "-E", "md5", "-f", `${path}.pub`],
            ["-l", "-f", path],
            ["-y", "-f", path],
          ]
        ) {
          const ours = await keygen(args);
          const theirs = await run(SSH_KEYGEN, args);
          assert.equal(ours.code, 0, ours.stderrText);
          assert.equal(
            ours.stdoutText,
            theirs.stdoutText,
            `${type} ${bits} ${args.join(" ")}`,
          );
        }
      }
    });
  },
});

Deno.test({
  name: "fynx keygen never overwrites a key without --force",
  ignore,
  async fn() {
    await withDir(async (dir) => {
      const path = `${dir}/k`;
      assert.equal((await keygen(["-q", "-N", "", "-f", path])).code, 0);
      const before = await Deno.readTextFile(path);
      const again = await keygen(["-q", "-N", "", "-f", path]);
      assert.equal(again.code, 1);
      assert.match(again.stderrText, /already exists/);
      assert.equal(await Deno.readTextFile(path), before);
      await Deno.chmod(path, 0o644);
      const forced = await keygen(["-q", "-N", "", "--force", "-f", path]);
      assert.equal(forced.code, 0, forced.stderrText);
      assert.notEqual(await Deno.readTextFile(path), before);
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    });
  },
});

Deno.test({
  name: "fynx keygen -F and -R agree with ssh-keygen on known_hosts",
  ignore,
  async fn() {
    await withDir(async (dir) => {
      const key = `${dir}/hk`;
      await run(SSH_KEYGEN, ["-q", "-t", "ed25519", "-N", "", "-f", key]);
      const [type, b64] = (await Deno.readTextFile(`${key}.pub`)).split(" ");
      const text = [
        `example.com ${type} ${b64}`,
        `[example.com]:2222 ${type} ${b64}`,
        `other.org,example.net ${type} ${b64}`,
        `@revoked example.com ${type} ${b64}`,
      ].join("\n") + "\n";
      const hashed = `${dir}/kh_hashed`;
      await Deno.writeTextFile(hashed, text);
      await run(SSH_KEYGEN, ["-H", "-f", hashed]);
      for (const file of ["plain", "hashed"]) {
        const path = file === "plain" ? `${dir}/kh_plain` : hashed;
        if (file === "plain") await Deno.writeTextFile(path, text);
        for (
          const host of [
            "example.com",
            "[example.com]:2222",
            "example.net",
            "missing.test",
          ]
        ) {
          const ours = await keygen(["-F", host, "-f", path]);
          const theirs = await run(SSH_KEYGEN, ["-F", host, "-f", path]);
          assert.equal(ours.code, theirs.code, `${file} -F ${host}`);
          // The found entries (not the comment lines) must be the same.
          const entries = (s: string) =>
            s.split("\n").filter((l) => l && !l.startsWith("#"));
          assert.deepEqual(
            entries(ours.stdoutText),
            entries(theirs.stdoutText),
            `${file} -F ${host}`,
          );
        }
        const a = `${path}.a`;
        const b = `${path}.b`;
        await Deno.copyFile(path, a);
        await Deno.copyFile(path, b);
        assert.equal((await keygen(["-R", "example.com", "-f", a])).code, 0);
        assert.equal(
          (await run(SSH_KEYGEN, ["-R", "example.com", "-f", b])).code,
          0,
        );
        assert.equal(
          await Deno.readTextFile(a),
          await Deno.readTextFile(b),
          `${file} -R`,
        );
        assert.equal(
          await Deno.readTextFile(`${a}.old`),
          await Deno.readTextFile(path),
        );
      }
    });
  },
});

Deno.test("fynx keygen reports bad input in one line", async () => {
  await withDir(async (dir) => {
    for (
      const [args, pattern] of [
        [["-t", "dsa", "-f", `${dir}/x`], /unknown key type "dsa"/],
        [["-t", "rsa", "-b", "1024", "-f", `${dir}/x`], /2048\.\.16384/],
        [["-t", "ecdsa", "-b", "300", "-f", `${dir}/x`], /256, 384 or 521/],
        [["-l", "-f", `${dir}/missing`], /No such file/],
        [["-s", `${dir}/ca`, "-I", "id", `${dir}/x.pub`], /ca: No such file/],
        [["-l", "stray", "-f", `${dir}/x`], /unexpected argument "stray"/],
        [["--bogus"], /unknown option '--bogus'/],
      ] as const
    ) {
      const r = await keygen([...args]);
      assert.equal(r.code, 1, args.join(" "));
      assert.match(r.stderrText, pattern);
      assert.equal(r.stderrText.trim().split("\n").length, 1, r.stderrText);
    }
  });
});
