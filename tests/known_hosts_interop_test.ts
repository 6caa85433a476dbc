/**
 * `fynx ssh` host key checking against a real `sshd`, side by side with
 * OpenSSH's `ssh` reading the same known_hosts files: a new host under each
 * StrictHostKeyChecking mode, a known host (plain, hashed, wildcard), a
 * changed key, and a revoked key. Both clients must reach the same verdict.
 */
import assert from "node:assert/strict";
import {
  KEYGEN_TYPES,
  run,
  skipOpenssh,
  SSH,
  SSH_KEYGEN,
  sshArgs,
  type Sshd,
  sshKeygen,
  startSshd,
} from "./_openssh.ts";
import { fynx } from "./_fynx.ts";

interface Setup {
  sshd: Sshd;
  dir: string;
  identity: string;
  /** `[127.0.0.1]:port`. */
  name: string;
  /** The sshd's Ed25519 host key line without comment: `type base64`. */
  hostKey: string;
}

/** ssh's warning when it records the sshd's key (ours says the same). */
const ADDED =
  /Warning: Permanently added '\[127\.0\.0\.1\]:\d+' \(ED25519\) to the list of known hosts\./;

/** `fynx ssh` to the sshd with `-o` options, running `echo known-ok`. */
function fynxSsh(s: Setup, knownHosts: string, options: string[]) {
  const opts = [
    `UserKnownHostsFile=${knownHosts}`,
    "BatchMode=yes",
    "HostKeyAlgorithms=ssh-ed25519",
    ...options,
  ].flatMap((o) => ["-o", o]);
  return fynx([
    "ssh",
    "-p",
    String(s.sshd.port),
    "-i",
    s.identity,
    ...opts,
    "root@127.0.0.1",
    "echo known-ok",
  ], { timeout: 30_000 });
}

/** OpenSSH `ssh` with the same known_hosts file and strict checking. */
function opensshSsh(
  s: Setup,
  knownHosts: string,
  extra: Record<string, string> = {},
) {
  return run(SSH, [
    ...sshArgs({
      port: s.sshd.port,
      user: "root",
      knownHostsPath: knownHosts,
      identity: s.identity,
      options: {
        HostKeyAlgorithms: "ssh-ed25519",
        LogLevel: "INFO",
        ...extra,
      },
    }),
    "echo known-ok",
  ], { timeout: 30_000 });
}

async function otherEd25519(dir: string, name: string): Promise<string> {
  const k = await sshKeygen(dir, name, "ed25519");
  return k.publicLine.split(" ").slice(0, 2).join(" ");
}

Deno.test({
  name: "known_hosts: fynx ssh and OpenSSH ssh agree against a real sshd",
  ignore: skipOpenssh("known_hosts against sshd"),
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "fynx-known-" });
    try {
      const user = await sshKeygen(dir, "user", "ed25519");
      await using sshd = await startSshd({
        hostKeyTypes: KEYGEN_TYPES.filter((k) => k === "ed25519"),
        authorizedKeys: [user.publicLine],
      });
      const host = sshd.hostKeys[0];
      const s: Setup = {
        sshd,
        dir,
        identity: user.path,
        name: `[127.0.0.1]:${sshd.port}`,
        hostKey: host.publicLine.split(" ").slice(0, 2).join(" "),
      };
      let n = 0;
      const file = async (text: string) => {
        const path = `${dir}/known_hosts_${n++}`;
        if (text !== "") await Deno.writeTextFile(path, text);
        return path;
      };

      await t.step(
        "unknown host with StrictHostKeyChecking=yes: refused, file untouched",
        async () => {
          const kh = await file("");
          const r = await fynxSsh(s, kh, ["StrictHostKeyChecking=yes"]);
          assert.equal(r.code, 255, r.stderrText);
          assert.match(
            r.stderrText,
            new RegExp(
              `No ED25519 host key is known for \\[127\\.0\\.0\\.1\\]:${sshd.port} and you have requested strict checking\\.`,
            ),
          );
          assert.match(r.stderrText, /Host key verification failed\./);
          await assert.rejects(Deno.stat(kh), Deno.errors.NotFound);
          const o = await opensshSsh(s, kh);
          assert.equal(o.code, 255);
          assert.match(o.stderrText, /Host key verification failed\./);
        },
      );

      await t.step(
        "UserKnownHostsFile=/dev/null remembers nothing and says what ssh says",
        async () => {
          const r = await fynxSsh(s, "/dev/null", [
            "StrictHostKeyChecking=no",
          ]);
          assert.equal(r.code, 0, r.stderrText);
          assert.equal(r.stdoutText, "known-ok\n");
          assert.match(r.stderrText, ADDED);
          assert.doesNotMatch(r.stderrText, /Failed to add/);
          const o = await opensshSsh(s, "/dev/null", {
            StrictHostKeyChecking: "no",
          });
          assert.equal(o.code, 0, o.stderrText);
          assert.match(o.stderrText, /Permanently added/);
        },
      );

      await t.step(
        "accept-new with HashKnownHosts=yes adds a hashed line that ssh and ssh-keygen accept",
        async () => {
          const kh = await file("");
          const r = await fynxSsh(s, kh, [
            "StrictHostKeyChecking=accept-new",
            "HashKnownHosts=yes",
          ]);
          assert.equal(r.code, 0, r.stderrText);
          assert.equal(r.stdoutText, "known-ok\n");
          assert.match(r.stderrText, ADDED);
          const text = await Deno.readTextFile(kh);
          const lines = text.trimEnd().split("\n");
          assert.equal(lines.length, 1);
          assert.match(lines[0], /^\|1\|[A-Za-z0-9+/=]+\|[A-Za-z0-9+/=]+ /);
          assert.ok(lines[0].endsWith(` ${s.hostKey}`), lines[0]);
          assert.equal((await Deno.stat(kh)).mode! & 0o777, 0o600);
          // ssh-keygen -F computes the same HMAC-SHA1 over the name.
          const f = await run(SSH_KEYGEN, ["-F", s.name, "-f", kh]);
          assert.equal(f.code, 0, f.stderrText);
          assert.ok(f.stdoutText.includes(lines[0]), f.stdoutText);
          // Now known: strict checking passes for both clients.
          const again = await fynxSsh(s, kh, ["StrictHostKeyChecking=yes"]);
          assert.equal(again.code, 0, again.stderrText);
          assert.equal(again.stdoutText, "known-ok\n");
          assert.doesNotMatch(again.stderrText, /Permanently added/);
          const o = await opensshSsh(s, kh);
          assert.equal(o.code, 0, o.stderrText);
          assert.equal(o.stdoutText, "known-ok\n");
        },
      );

      await t.step(
        "accept-new writes a plain [host]:port line, identical to what ssh writes",
        async () => {
          const ours = await file("");
          const r = await fynxSsh(s, ours, [
            "StrictHostKeyChecking=accept-new",
          ]);
          assert.equal(r.code, 0, r.stderrText);
          const theirs = `${dir}/known_hosts_openssh`;
          const o = await run(SSH, [
            ...sshArgs({
              port: sshd.port,
              user: "root",
              knownHostsPath: theirs,
              identity: s.identity,
              options: {
                StrictHostKeyChecking: "accept-new",
                HashKnownHosts: "no",
                HostKeyAlgorithms: "ssh-ed25519",
              },
            }),
            "true",
          ]);
          assert.equal(o.code, 0, o.stderrText);
          assert.equal(
            await Deno.readTextFile(ours),
            await Deno.readTextFile(theirs),
          );
          assert.equal(
            await Deno.readTextFile(ours),
            `${s.name} ${s.hostKey}\n`,
          );
        },
      );

      await t.step(
        "a wildcard pattern and a negation are honoured as ssh honours them",
        async () => {
          const wild = await file(`[127.0.0.?]:${sshd.port} ${s.hostKey}\n`);
          const r = await fynxSsh(s, wild, ["StrictHostKeyChecking=yes"]);
          assert.equal(r.code, 0, r.stderrText);
          assert.equal((await opensshSsh(s, wild)).code, 0);
          const negated = await file(
            `[127.0.0.?]:${sshd.port},![127.0.0.1]:${sshd.port} ${s.hostKey}\n`,
          );
          const rn = await fynxSsh(s, negated, ["StrictHostKeyChecking=yes"]);
          assert.equal(rn.code, 255, rn.stderrText);
          assert.match(rn.stderrText, /Host key verification failed\./);
          assert.equal((await opensshSsh(s, negated)).code, 255);
        },
      );

      await t.step(
        "a changed key: refused with OpenSSH's warning, naming the offending line",
        async () => {
          const stale = await otherEd25519(dir, "stale");
          const kh = await file(`# comment\n${s.name} ${stale}\n`);
          const r = await fynxSsh(s, kh, ["StrictHostKeyChecking=accept-new"]);
          assert.equal(r.code, 255, r.stderrText);
          assert.match(
            r.stderrText,
            /WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!/,
          );
          const offending = `Offending ED25519 key in ${kh}:2`;
          assert.ok(r.stderrText.includes(offending), r.stderrText);
          assert.match(
            r.stderrText,
            /Host key for \[127\.0\.0\.1\]:\d+ has changed and you have requested strict checking\./,
          );
          assert.equal(r.stdoutText, "");
          const o = await opensshSsh(s, kh);
          assert.equal(o.code, 255);
          assert.ok(o.stderrText.includes(offending), o.stderrText);
          // The file is left as it was: no silent replacement.
          assert.equal(
            await Deno.readTextFile(kh),
            `# comment\n${s.name} ${stale}\n`,
          );
        },
      );

      await t.step(
        "a changed key with StrictHostKeyChecking=no: warned, passwords off, key auth still works",
        async () => {
          const stale = await otherEd25519(dir, "stale2");
          const kh = await file(`${s.name} ${stale}\n`);
          const r = await fynxSsh(s, kh, ["StrictHostKeyChecking=no"]);
          assert.equal(r.code, 0, r.stderrText);
          assert.equal(r.stdoutText, "known-ok\n");
          assert.match(r.stderrText, /REMOTE HOST IDENTIFICATION HAS CHANGED/);
          assert.match(r.stderrText, /Password authentication is disabled/);
        },
      );

      await t.step(
        "a revoked key is refused even next to a matching entry",
        async () => {
          const kh = await file(
            `${s.name} ${s.hostKey}\n@revoked * ${s.hostKey}\n`,
          );
          const r = await fynxSsh(s, kh, ["StrictHostKeyChecking=no"]);
          assert.equal(r.code, 255, r.stderrText);
          assert.match(r.stderrText, /REVOKED HOST KEY DETECTED/);
          assert.equal(r.stdoutText, "");
          const o = await opensshSsh(s, kh);
          assert.equal(o.code, 255);
          assert.match(o.stderrText, /REVOKED HOST KEY DETECTED/);
        },
      );

      await t.step(
        "fynx keygen -F finds and -R removes the hashed entry",
        async () => {
          const kh = await file("");
          const add = await fynxSsh(s, kh, [
            "StrictHostKeyChecking=accept-new",
            "HashKnownHosts=yes",
          ]);
          assert.equal(add.code, 0, add.stderrText);
          const line = (await Deno.readTextFile(kh)).trimEnd();
          const f = await fynx(["keygen", "-F", s.name, "-f", kh]);
          assert.equal(f.code, 0, f.stderrText);
          assert.ok(f.stdoutText.includes(line), f.stdoutText);
          const rm = await fynx(["keygen", "-R", s.name, "-f", kh]);
          assert.equal(rm.code, 0, rm.stderrText);
          assert.equal((await Deno.readTextFile(kh)).trim(), "");
          const strict = await fynxSsh(s, kh, ["StrictHostKeyChecking=yes"]);
          assert.equal(strict.code, 255);
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
