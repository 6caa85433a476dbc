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

/** Whether a controlling terminal exists that a prompt would block on. */
const HAS_TTY: boolean = (() => {
  try {
    Deno.openSync("/dev/tty", { read: true }).close();
    return true;
  } catch {
    return false;
  }
})();

/** A key made by ssh-keygen in `dir`, returning its path. */
async function theirKey(
  dir: string,
  type: string,
  bits: string[],
  extra: string[] = [],
): Promise<string> {
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
    ...extra,
  ]);
  assert.equal(made.code, 0, made.stderrText);
  return path;
}

/** The first line of a file. */
async function firstLine(path: string): Promise<string> {
  return (await Deno.readTextFile(path)).split("\n")[0];
}

/** `type base64` of a public key line. */
function bare(line: string): string {
  return line.trim().split(" ").slice(0, 2).join(" ");
}

Deno.test({
  name: "fynx keygen -m PEM|PKCS8|RFC4716 writes keys ssh-keygen loads",
  ignore,
  async fn() {
    await withDir(async (dir) => {
      for (
        const [type, bits] of [["ecdsa", ["-b", "384"]], ["ed25519", []]] as [
          string,
          string[],
        ][]
      ) {
        for (const format of ["PEM", "PKCS8", "RFC4716"]) {
          for (const pass of ["", "correct horse"]) {
            const label = `${type} -m ${format} ${pass ? "enc" : "plain"}`;
            const path = `${dir}/${type}-${format}${pass ? "-enc" : ""}`;
            const made = await keygen([
              "-q",
              "-t",
              type,
              ...bits,
              "-m",
              format.toLowerCase(),
              "-N",
              pass,
              "-C",
              "c@x",
              "-f",
              path,
            ]);
            assert.equal(made.code, 0, made.stderrText);
            assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
            // As ssh-keygen: Ed25519 is always openssh-key-v1.
            const want = format === "RFC4716" || type === "ed25519"
              ? "OPENSSH PRIVATE KEY"
              : format === "PEM"
              ? "EC PRIVATE KEY"
              : pass
              ? "ENCRYPTED PRIVATE KEY"
              : "PRIVATE KEY";
            assert.equal(await firstLine(path), `-----BEGIN ${want}-----`);
            const theirs = await run(SSH_KEYGEN, [
              "-y",
              "-P",
              pass,
              "-f",
              path,
            ]);
            assert.equal(theirs.code, 0, `${label}: ${theirs.stderrText}`);
            const pub = await Deno.readTextFile(`${path}.pub`);
            assert.equal(bare(theirs.stdoutText), bare(pub), label);
            assert.match(pub, / c@x\n$/);
          }
        }
      }
      // PEM and PKCS#8 passphrases need five characters, as in ssh-keygen;
      // nothing is written.
      const short = await keygen([
        "-q",
        "-t",
        "ecdsa",
        "-m",
        "PEM",
        "-N",
        "abcd",
        "-f",
        `${dir}/short`,
      ]);
      assert.equal(short.code, 1);
      assert.match(
        short.stderrText,
        /passphrase is too short \(minimum five characters\)/,
      );
      assert.equal(await exists(`${dir}/short`), false);
    });
  },
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "fynx keygen -p changes passphrase and format in place, as ssh-keygen",
  ignore,
  async fn() {
    await withDir(async (dir) => {
      for (
        const [type, bits] of [
          ["ecdsa", ["-b", "256"]],
          ["rsa", ["-b", "2048"]],
          ["ed25519", []],
        ] as [string, string[]][]
      ) {
        const path = await theirKey(dir, type, bits);
        const pub = bare(await Deno.readTextFile(`${path}.pub`));
        const pem = type === "rsa"
          ? "RSA PRIVATE KEY"
          : type === "ecdsa"
          ? "EC PRIVATE KEY"
          : "OPENSSH PRIVATE KEY";
        // [fynx -p flags, old passphrase, new passphrase, expected armor]
        const steps: [string[], string, string, string][] = [
          [["-m", "PEM"], "", "first pass", pem],
          // Without -m the format stays.
          [[], "first pass", "second pass", pem],
          [
            ["-m", "PKCS8"],
            "second pass",
            "third pass",
            type === "ed25519" ? pem : "ENCRYPTED PRIVATE KEY",
          ],
          [["-m", "RFC4716"], "third pass", "", "OPENSSH PRIVATE KEY"],
        ];
        for (const [flags, old, next, armor] of steps) {
          const label = `${type} -p ${flags.join(" ")} -N "${next}"`;
          const before = await Deno.readTextFile(path);
          const r = await keygen([
            "-p",
            ...flags,
            ...(old ? ["-P", old] : []),
            "-N",
            next,
            "-f",
            path,
          ]);
          assert.equal(r.code, 0, `${label}: ${r.stderrText}`);
          assert.match(
            r.stdoutText,
            /Your identification has been saved with the new passphrase\.\n$/,
          );
          // ssh-keygen names the comment of formats that store one.
          assert.equal(
            r.stdoutText.startsWith("Key has comment 'them@y'\n"),
            before.startsWith("-----BEGIN OPENSSH"),
            label,
          );
          assert.equal(await firstLine(path), `-----BEGIN ${armor}-----`);
          assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
          const theirs = await run(SSH_KEYGEN, ["-y", "-P", next, "-f", path]);
          assert.equal(theirs.code, 0, `${label}: ${theirs.stderrText}`);
          assert.equal(bare(theirs.stdoutText), pub, label);
        }
        // Failures leave the file as it was.
        const kept = await Deno.readTextFile(path);
        await Deno.chmod(path, 0o600);
        await run(SSH_KEYGEN, ["-p", "-N", "kept pass", "-f", path]);
        let encrypted = await Deno.readTextFile(path);
        for (
          const [args, pattern] of [
            [["-P", "wrong pass", "-N", "x"], /wrong passphrase/],
            [
              ["-P", "kept pass", "-m", "PKCS8", "-N", "abc"],
              /Saving key ".*" failed: passphrase is too short/,
            ],
            // Without -P it would ask on a terminal; only where none is.
            ...(HAS_TTY
              ? []
              : [[["-N", "x"], /a passphrase is needed \(use -P\)/]] as const),
          ] as const
        ) {
          const r = await keygen(["-p", ...args, "-f", path]);
          if (
            type === "ed25519" && (args as readonly string[]).includes("PKCS8")
          ) {
            // Ed25519 stays openssh-key-v1, where short passphrases are fine.
            assert.equal(r.code, 0, r.stderrText);
            await keygen(["-p", "-P", "abc", "-N", "kept pass", "-f", path]);
            encrypted = await Deno.readTextFile(path);
            continue;
          }
          assert.equal(r.code, 1, args.join(" "));
          assert.match(r.stderrText, pattern);
          assert.equal(r.stderrText.trim().split("\n").length, 1);
          assert.equal(await Deno.readTextFile(path), encrypted);
        }
        assert.notEqual(kept, encrypted);
      }
      // No temporary files are left behind.
      const names = [];
      for await (const e of Deno.readDir(dir)) names.push(e.name);
      assert.deepEqual(
        names.filter((n) => n.endsWith(".tmp") || n.startsWith(".")),
        [],
      );
      // Through a symlink: the target changes, the link stays.
      const target = await theirKey(dir, "ecdsa", ["-b", "521"]);
      await Deno.symlink(target, `${dir}/link`);
      const r = await keygen(["-p", "-N", "linked pass", "-f", `${dir}/link`]);
      assert.equal(r.code, 0, r.stderrText);
      assert.ok((await Deno.lstat(`${dir}/link`)).isSymlink);
      const y = await run(SSH_KEYGEN, [
        "-y",
        "-P",
        "linked pass",
        "-f",
        target,
      ]);
      assert.equal(y.code, 0, y.stderrText);
    });
  },
});

Deno.test({
  name: "fynx keygen -e prints what ssh-keygen -e prints, byte for byte",
  ignore,
  async fn() {
    await withDir(async (dir) => {
      for (const [type, bits] of TYPES) {
        const path = await theirKey(dir, type, bits);
        for (
          const args of [
            ["-e", "-f", path],
            ["-e", "-f", `${path}.pub`],
            ["-e", "-m", "RFC4716", "-f", path],
            ["-e", "-m", "pkcs8", "-f", path],
            ["-e", "-m", "PEM", "-f", `${path}.pub`],
          ]
        ) {
          const label = `${type} ${bits.join("")} ${args.join(" ")}`;
          const ours = await keygen(args);
          const theirs = await run(SSH_KEYGEN, args);
          assert.equal(ours.code, 0, `${label}: ${ours.stderrText}`);
          if (
            type === "ed25519" && args.includes("-m") &&
            !args.includes("RFC4716")
          ) {
            // ssh-keygen 9.2 exports Ed25519 only as RFC 4716; we write its
            // SPKI (RFC 8410), which OpenSSL reads.
            assert.notEqual(theirs.code, 0);
            assert.match(ours.stdoutText, /^-----BEGIN PUBLIC KEY-----\n/);
            continue;
          }
          assert.equal(theirs.code, 0, theirs.stderrText);
          assert.equal(ours.stdoutText, theirs.stdoutText, label);
        }
      }
      // An encrypted openssh-key-v1 without its .pub needs the passphrase.
      const enc = await theirKey(dir, "ecdsa", [], ["-N", "enc pass"]);
      await Deno.remove(`${enc}.pub`);
      const ours = await keygen([
        "-e",
        "-m",
        "PKCS8",
        "-P",
        "enc pass",
        "-f",
        enc,
      ]);
      const theirs = await run(SSH_KEYGEN, ["-e", "-m", "PKCS8", "-f", enc]);
      assert.equal(ours.code, 0, ours.stderrText);
      assert.equal(ours.stdoutText, theirs.stdoutText);
    });
  },
});

Deno.test({
  name: "fynx keygen -i reads ssh-keygen -e output as ssh-keygen -i does",
  ignore,
  async fn() {
    await withDir(async (dir) => {
      for (const [type, bits] of TYPES) {
        const path = await theirKey(dir, type, bits);
        const formats = type === "ed25519"
          ? ["RFC4716"]
          : type === "rsa"
          ? ["RFC4716", "PKCS8", "PEM"]
          : ["RFC4716", "PKCS8"];
        for (const format of formats) {
          const exported = `${path}.${format}`;
          const e = await run(SSH_KEYGEN, ["-e", "-m", format, "-f", path]);
          await Deno.writeTextFile(exported, e.stdoutText);
          const args = ["-i", "-m", format, "-f", exported];
          const ours = await keygen(args);
          const theirs = await run(SSH_KEYGEN, args);
          assert.equal(theirs.code, 0, theirs.stderrText);
          assert.equal(ours.code, 0, ours.stderrText);
          assert.equal(ours.stdoutText, theirs.stdoutText, args.join(" "));
        }
        if (type === "ed25519") continue;
        // An unencrypted PEM private key (ssh-keygen -i has no such mode).
        await run(SSH_KEYGEN, ["-p", "-m", "PEM", "-N", "", "-f", path]);
        const ours = await keygen(["-i", "-m", "PEM", "-f", path]);
        assert.equal(ours.code, 0, ours.stderrText);
        const y = await run(SSH_KEYGEN, ["-y", "-f", path]);
        assert.equal(ours.stdoutText, `${bare(y.stdoutText)}\n`);
        await run(SSH_KEYGEN, [
          "-p",
          "-m",
          "PEM",
          "-N",
          "enc pass",
          "-f",
          path,
        ]);
        const locked = await keygen(["-i", "-f", path]);
        assert.equal(locked.code, 1);
        assert.match(locked.stderrText, /encrypted; use fynx keygen -y/);
      }
    });
  },
});

Deno.test("fynx keygen -p, -e, -i and -m report bad input in one line", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/junk`, "not a key\n");
    for (
      const [args, pattern] of [
        [
          ["-m", "ssh1", "-e", "-f", `${dir}/junk`],
          /Unsupported conversion format "ssh1"/,
        ],
        [["-p", "-N", "x"], /-p needs -f file/],
        [["-e"], /-e needs -f file/],
        [["-i"], /-i needs -f file/],
        [["-p", "-e", "-f", `${dir}/junk`], /use only one of/],
        [["-i", "-f", `${dir}/junk`], /not a recognised key format/],
        [["-e", "-f", `${dir}/junk`], /is not a key file/],
        [["-p", "-N", "x", "-f", `${dir}/junk`], /junk/],
        [["-i", "-f", `${dir}/missing`], /No such file/],
      ] as const
    ) {
      const r = await keygen([...args]);
      assert.equal(r.code, 1, args.join(" "));
      assert.match(r.stderrText, pattern);
      assert.equal(r.stderrText.trim().split("\n").length, 1, r.stderrText);
    }
  });
});
