/**
 * The `fynx` CLI end to end: `fynx ssh` against `fynx sshd`, OpenSSH's ssh
 * against `fynx sshd`, host key checking, and argument handling. Every run
 * goes through `deno run` with exactly the permissions of the `fynx` task.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { splitAtFirstPositional } from "../cli/_args.ts";
import {
  checkKnownHost,
  formatKnownHost,
  knownHostName,
} from "../cli/_known_hosts.ts";
import { parseConfigOption, SSH_OPTION_NAMES } from "../cli/_options.ts";

import {
  FYNX_PERMISSIONS,
  type FynxSshd as Sshd,
  startFynxSshd as startSshd,
} from "./_fynx.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = new URL("../cli/main.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Uint8Array;
}

/** Runs `fynx args...` with optional stdin, killed after `timeout` ms. */
async function fynx(
  args: string[],
  options: { stdin?: Uint8Array; timeout?: number } = {},
): Promise<RunResult> {
  return await run(Deno.execPath(), [
    "run",
    "-q",
    ...FYNX_PERMISSIONS,
    MAIN,
    ...args,
  ], options);
}

async function run(
  cmd: string,
  args: string[],
  options: { stdin?: Uint8Array; timeout?: number } = {},
): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, options.timeout ?? 30_000);
  try {
    const writer = child.stdin.getWriter();
    const feeding = (async () => {
      try {
        if (options.stdin) await writer.write(options.stdin);
        await writer.close();
      } catch {
        // The child stopped reading.
      }
    })();
    const out = await child.output();
    await feeding;
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
      stdoutBytes: out.stdout,
    };
  } finally {
    clearTimeout(timer);
  }
}

async function sshKeygen(path: string): Promise<void> {
  const r = await run("ssh-keygen", [
    "-q",
    "-t",
    "ed25519",
    "-N",
    "",
    "-C",
    "cli-test",
    "-f",
    path,
  ]);
  assert.equal(r.code, 0, r.stderr);
}

function hasScript(): boolean {
  try {
    return Deno.statSync("/usr/bin/script").isFile;
  } catch {
    return false;
  }
}

function sha256hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

// ---------------------------------------------------------------- arguments

Deno.test("fynx --help, fynx ssh --help and fynx sshd --help print usage", async () => {
  for (
    const args of [["--help"], ["ssh", "--help"], ["sshd", "--help"], [
      "help",
      "ssh",
    ]]
  ) {
    const r = await fynx(args);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stdout, /^Usage: fynx/, args.join(" "));
  }
});

Deno.test("fynx with an unknown command exits 1", async () => {
  const r = await fynx(["frobnicate"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /unknown command 'frobnicate'/);
});

Deno.test("fynx ssh: a bad flag exits 255 with one line", async () => {
  const r = await fynx(["ssh", "-z", "host"]);
  assert.equal(r.code, 255);
  assert.equal(r.stderr.trim().split("\n").length, 1);
  assert.match(r.stderr, /unknown option '-z'/);
});

Deno.test("fynx ssh: an unknown -o option exits 255 as OpenSSH words it", async () => {
  const r = await fynx(["ssh", "-o", "Foo=bar", "host"]);
  assert.equal(r.code, 255);
  assert.match(r.stderr, /command-line: line 0: Bad configuration option: foo/);
});

Deno.test("fynx ssh: a bad port and a missing destination exit 255", async () => {
  let r = await fynx(["ssh", "-p", "99999", "host"]);
  assert.equal(r.code, 255);
  assert.match(r.stderr, /Bad port '99999'/);
  r = await fynx(["ssh", "-p", "22"]);
  assert.equal(r.code, 255);
  assert.match(r.stderr, /missing destination/);
  r = await fynx(["ssh", "-o", "Ciphers=rot13", "host"]);
  assert.equal(r.code, 255);
  assert.match(r.stderr, /rot13/);
});

Deno.test("fynx ssh: connection refused exits 255 with OpenSSH's message", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const r = await fynx([
    "ssh",
    "-o",
    "BatchMode=yes",
    "-p",
    String(port),
    "u@127.0.0.1",
    "true",
  ]);
  assert.equal(r.code, 255);
  assert.match(
    r.stderr,
    new RegExp(
      `connect to host 127\\.0\\.0\\.1 port ${port}: Connection refused`,
    ),
  );
});

Deno.test("fynx sshd: a bad flag or value exits 1 with one line", async () => {
  let r = await fynx(["sshd", "--bogus"]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim().split("\n").length, 1);
  assert.match(r.stderr, /unknown option '--bogus'/);
  r = await fynx([
    "sshd",
    "--host-key",
    "/nonexistent/k",
    "--listen",
    "nowhere",
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Bad --listen address 'nowhere'/);
  r = await fynx(["sshd", "--host-key", "k", "-o", "NoSuchThing=1"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Bad configuration option: nosuchthing/);
});

Deno.test("splitAtFirstPositional() stops at the destination like OpenSSH", () => {
  const table = {
    port: { type: "string", short: "p" },
    tty: { type: "boolean", short: "t", multiple: true },
    option: { type: "string", short: "o", multiple: true },
  } as const;
  assert.deepEqual(
    splitAtFirstPositional(["-p", "2222", "host", "ls", "-la"], table),
    {
      options: ["-p", "2222"],
      positionals: ["host", "ls", "-la"],
    },
  );
  assert.deepEqual(
    splitAtFirstPositional(["-tp2222", "-o", "A=b", "h", "-t"], table),
    {
      options: ["-tp2222", "-o", "A=b"],
      positionals: ["h", "-t"],
    },
  );
  assert.deepEqual(splitAtFirstPositional(["-tt", "--", "-h", "x"], table), {
    options: ["-tt"],
    positionals: ["-h", "x"],
  });
});

Deno.test("parseConfigOption() takes Name=value and Name value, case-insensitively", () => {
  assert.deepEqual(
    parseConfigOption("stricthostkeychecking=no", SSH_OPTION_NAMES),
    {
      name: "StrictHostKeyChecking",
      value: "no",
    },
  );
  assert.deepEqual(parseConfigOption("ConnectTimeout 5", SSH_OPTION_NAMES), {
    name: "ConnectTimeout",
    value: "5",
  });
  assert.deepEqual(parseConfigOption('User = "bob"', SSH_OPTION_NAMES), {
    name: "User",
    value: "bob",
  });
  assert.throws(
    () => parseConfigOption("Nope=1", SSH_OPTION_NAMES),
    /Bad configuration option: nope/,
  );
  assert.throws(
    () => parseConfigOption("Port=", SSH_OPTION_NAMES),
    /missing argument/,
  );
});

Deno.test("known_hosts: plain, [host]:port, hashed entries, other types and revocations", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const blob = (n: number) => new Uint8Array(51).fill(n);
    const a = { type: "ssh-ed25519", blob: blob(1) };
    const b = { type: "ssh-ed25519", blob: blob(2) };
    const rsa = { type: "ssh-rsa", blob: blob(3) };
    const name = knownHostName("Example.COM", 2222);
    assert.equal(name, "[example.com]:2222");
    assert.equal(knownHostName("h", 22), "h");
    const text = `${formatKnownHost(name, a)}\n${
      formatKnownHost("other,!bad*", rsa)
    }\n`;
    assert.equal(checkKnownHost(text, name, a).status, "ok");
    assert.equal(checkKnownHost(text, name, b).status, "changed");
    assert.equal(checkKnownHost(text, "nobody", a).status, "unknown");
    // A key of another type than the one on record is a mismatch.
    assert.equal(checkKnownHost(text, "other", a).status, "changed");
    assert.equal(checkKnownHost(text, "bad1", rsa).status, "unknown");
    assert.equal(
      checkKnownHost(
        `@revoked * ${formatKnownHost("", a).trim()}\n${text}`,
        name,
        a,
      ).status,
      "revoked",
    );
    // Hash the file with ssh-keygen -H and check the |1|salt|hash form.
    const file = `${dir}/known_hosts`;
    await Deno.writeTextFile(file, text);
    const r = await run("ssh-keygen", ["-H", "-f", file]);
    assert.equal(r.code, 0, r.stderr);
    const hashed = await Deno.readTextFile(file);
    assert.match(hashed, /^\|1\|/);
    assert.equal(checkKnownHost(hashed, name, a).status, "ok");
    assert.equal(checkKnownHost(hashed, name, b).status, "changed");
    assert.equal(
      checkKnownHost(hashed, "[example.com]:2223", a).status,
      "unknown",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// -------------------------------------------------------------- end to end

Deno.test("fynx ssh against fynx sshd", async (t) => {
  const dir = await Deno.makeTempDir();
  const hostKey = `${dir}/host_key`;
  const userKey = `${dir}/id_ed25519`;
  const otherKey = `${dir}/other_key`;
  const authorized = `${dir}/authorized_keys`;
  const knownHosts = `${dir}/known_hosts`;
  await sshKeygen(userKey);
  await sshKeygen(otherKey);
  await Deno.writeTextFile(
    authorized,
    await Deno.readTextFile(`${userKey}.pub`),
  );
  let sshd: Sshd | null = null;
  try {
    sshd = await startSshd([
      "--listen",
      "127.0.0.1:0",
      "--host-key",
      hostKey,
      "--authorized-keys",
      authorized,
    ]);
    const port = String(sshd.port);
    const base = [
      "ssh",
      "-i",
      userKey,
      "-o",
      `UserKnownHostsFile=${knownHosts}`,
      "-p",
      port,
    ];

    await t.step(
      "a missing host key file is created with mode 0600",
      async () => {
        const info = await Deno.stat(hostKey);
        assert.equal(info.mode! & 0o777, 0o600);
        assert.match(
          await Deno.readTextFile(hostKey),
          /BEGIN OPENSSH PRIVATE KEY/,
        );
        assert.match(
          await Deno.readTextFile(`${hostKey}.pub`),
          /^ssh-ed25519 /,
        );
        assert.match(sshd!.log(), /generated host key .* SHA256:/);
      },
    );

    await t.step(
      "StrictHostKeyChecking=yes refuses an unknown host",
      async () => {
        const r = await fynx([
          ...base,
          "-o",
          "StrictHostKeyChecking=yes",
          "u@127.0.0.1",
          "true",
        ]);
        assert.equal(r.code, 255);
        assert.match(r.stderr, /Host key verification failed/);
        assert.equal(await Deno.readTextFile(knownHosts).catch(() => ""), "");
      },
    );

    await t.step(
      "exec keeps stdout and stderr apart and returns the exit code",
      async () => {
        const r = await fynx([
          ...base,
          "-o",
          "StrictHostKeyChecking=accept-new",
          "user@127.0.0.1",
          "echo out; echo err >&2; exit 7",
        ]);
        assert.equal(r.code, 7, r.stderr);
        assert.equal(r.stdout, "out\n");
        assert.match(r.stderr, /err/);
        assert.match(
          r.stderr,
          /Permanently added '\[127\.0\.0\.1\]:\d+' \(ED25519\)/,
        );
      },
    );

    await t.step("known_hosts got the host key", async () => {
      const pub = (await Deno.readTextFile(`${hostKey}.pub`)).trim().split(" ");
      const known = await Deno.readTextFile(knownHosts);
      assert.equal(known, `[127.0.0.1]:${port} ${pub[0]} ${pub[1]}\n`);
      assert.match(
        sshd!.log(),
        /auth ok user=user method=publickey key=SHA256:/,
      );
    });

    await t.step(
      "words after the destination form the remote command",
      async () => {
        const r = await fynx([
          ...base,
          "user@127.0.0.1",
          "printf",
          "'%s\\n'",
          "-la",
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, "-la\n");
      },
    );

    await t.step("stdin is forwarded: 1 MiB through cat", async () => {
      const payload = crypto.getRandomValues(new Uint8Array(65536));
      const big = new Uint8Array(1 << 20);
      for (let i = 0; i < big.length; i += payload.length) big.set(payload, i);
      const r = await fynx([...base, "user@127.0.0.1", "cat"], {
        stdin: big,
        timeout: 60_000,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdoutBytes.length, big.length);
      assert.equal(sha256hex(r.stdoutBytes), sha256hex(big));
    });

    await t.step("a key not in authorized_keys is denied", async () => {
      const r = await fynx([
        "ssh",
        "-i",
        otherKey,
        "-o",
        `UserKnownHostsFile=${knownHosts}`,
        "-o",
        "BatchMode=yes",
        "-p",
        port,
        "user@127.0.0.1",
        "true",
      ]);
      assert.equal(r.code, 255);
      assert.match(r.stderr, /Permission denied \(publickey\)/);
    });

    await t.step("authorized_keys is re-read on every attempt", async () => {
      await Deno.writeTextFile(
        authorized,
        await Deno.readTextFile(`${otherKey}.pub`),
        { append: true },
      );
      const r = await fynx([
        "ssh",
        "-i",
        otherKey,
        "-o",
        `UserKnownHostsFile=${knownHosts}`,
        "-p",
        port,
        "u@127.0.0.1",
        "echo ok",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "ok\n");
    });

    await t.step("OpenSSH's ssh runs a command on fynx sshd", async () => {
      const r = await run("/usr/bin/ssh", [
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-i",
        userKey,
        "-p",
        port,
        "root@127.0.0.1",
        "echo",
        "hi",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "hi\n");
    });

    await t.step({
      name: "-tt gets a pty of the local size and restores the terminal",
      ignore: !hasScript(),
      fn: async () => {
        // script(1) gives fynx ssh a terminal; `stty -g` before and after
        // shows the local terminal modes were restored.
        const inner = [
          Deno.execPath(),
          "run",
          "-q",
          ...FYNX_PERMISSIONS,
          MAIN,
          ...base,
          "-tt",
          "u@127.0.0.1",
        ]
          .map((w) => `'${w}'`).join(" ");
        const r = await run("script", [
          "-qfec",
          `stty cols 100 rows 30; stty -g; ${inner}; rc=$?; stty -g; exit $rc`,
          "/dev/null",
        ], { stdin: new TextEncoder().encode("stty size; exit 5\r") });
        assert.equal(r.code, 5, r.stdout + r.stderr);
        assert.match(r.stdout, /30 100/);
        const modes = r.stdout.split(/\r?\n/).filter((l) =>
          /^[0-9a-f]+(:[0-9a-f]+){20,}\r?$/.test(l)
        );
        assert.equal(modes.length, 2, r.stdout);
        assert.equal(modes[0], modes[1]);
      },
    });

    await t.step("SIGTERM stops fynx sshd with exit status 0", async () => {
      const code = await sshd!.stop("SIGTERM");
      sshd = null;
      assert.equal(code, 0);
    });

    await t.step(
      "a changed host key is refused with OpenSSH's warning",
      async () => {
        // Same port, another host key: the known_hosts entry no longer matches.
        const otherHostKey = `${dir}/host_key2`;
        sshd = await startSshd([
          "--listen",
          `127.0.0.1:${port}`,
          "--host-key",
          otherHostKey,
          "--authorized-keys",
          authorized,
        ]);
        const r = await fynx([
          ...base,
          "-o",
          "StrictHostKeyChecking=accept-new",
          "u@127.0.0.1",
          "echo no",
        ]);
        assert.equal(r.code, 255);
        assert.equal(r.stdout, "");
        assert.match(
          r.stderr,
          /WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!/,
        );
        assert.match(r.stderr, /Offending ED25519 key in .*known_hosts:1/);
        assert.match(r.stderr, /Host key verification failed\./);
      },
    );
  } finally {
    if (sshd) await sshd.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});
