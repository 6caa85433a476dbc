/**
 * Forwarding interop: the real OpenSSH `ssh -L/-R/-D -N` through our
 * server (`fynx sshd`, which runs `serve()` with `serverForwarding()`):
 * 100 concurrent connections of 1 MiB, SOCKS through OpenSSH's -D,
 * half-close, Unix sockets both ways, GatewayPorts and AllowTcpForwarding
 * options, `authorized_keys` `no-port-forwarding`, `permitopen=` and
 * `permitlisten=` enforced, and every socket closed when ssh goes away.
 *
 * Needs only the OpenSSH client; otherwise the tests are ignored.
 */
import assert from "node:assert/strict";
import {
  freePort,
  knownHostsLine,
  skipOpenssh,
  SSH,
  sshArgs,
  sshKeygen,
} from "./_openssh.ts";
import { FYNX_MAIN, FYNX_PERMISSIONS } from "./_fynx.ts";
import {
  concurrentEchoes,
  dial,
  digestAfterEof,
  echo,
  echoRoundTrip,
  halfCloseRoundTrip,
  pseudoRandomBytes,
  readAll,
  socks5,
  spawn,
  type Spawned,
  startTarget,
  withSockets,
} from "./_forward_helpers.ts";

const ignore = skipOpenssh("forwarding interop (OpenSSH ssh -> fynx sshd)", {
  needServer: false,
});
const MiB = 1 << 20;
const decoder = new TextDecoder();

interface Server {
  dir: string;
  port: number;
  knownHosts: string;
  /** Private key files, by name, each with a line in authorized_keys. */
  keys: Record<string, string>;
  proc: Spawned;
}

/**
 * Runs `fynx sshd` with an authorized_keys file holding one key per entry
 * of `keyOptions` (name -> options prefix, "" for none).
 */
async function withFynxSshd(
  keyOptions: Record<string, string>,
  sshdOptions: string[],
  fn: (s: Server) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fynx-fwd-server-" });
  let proc: Spawned | null = null;
  try {
    const keys: Record<string, string> = {};
    const lines: string[] = [];
    for (const [name, options] of Object.entries(keyOptions)) {
      const k = await sshKeygen(dir, `id_${name}`, "ed25519");
      keys[name] = k.path;
      lines.push(`${options ? options + " " : ""}${k.publicLine}`);
    }
    await Deno.writeTextFile(`${dir}/authorized_keys`, lines.join("\n") + "\n");
    proc = spawn(Deno.execPath(), [
      "run",
      "-q",
      ...FYNX_PERMISSIONS,
      FYNX_MAIN,
      "sshd",
      "--listen",
      "127.0.0.1:0",
      "--host-key",
      `${dir}/host_ed25519`,
      "--authorized-keys",
      `${dir}/authorized_keys`,
      ...sshdOptions.flatMap((o) => ["-o", o]),
    ]);
    const port = Number(
      (await proc.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1],
    );
    const hostLine = (await Deno.readTextFile(`${dir}/host_ed25519.pub`))
      .trim();
    const knownHosts = `${dir}/known_hosts`;
    await Deno.writeTextFile(
      knownHosts,
      knownHostsLine("127.0.0.1", port, hostLine) + "\n",
    );
    await fn({ dir, port, knownHosts, keys, proc });
  } finally {
    await proc?.stop("SIGTERM");
    await Deno.remove(dir, { recursive: true });
  }
}

/** Starts `ssh -N` with `flags` as the user of key `key`. */
function sshN(s: Server, key: string, flags: string[]): Spawned {
  return spawn(
    SSH,
    sshArgs({
      port: s.port,
      user: "tester",
      knownHostsPath: s.knownHosts,
      identity: s.keys[key],
      options: { LogLevel: "DEBUG1", ExitOnForwardFailure: "yes" },
      flags: ["-N", ...flags],
    }),
  );
}

/** Waits until ssh reports its -L / -D listener on `port`. */
function listening(proc: Spawned, port: number): Promise<RegExpMatchArray> {
  return proc.waitFor(
    new RegExp(`Local forwarding listening on 127\\.0\\.0\\.1 port ${port}\\.`),
  );
}

/** Waits until ssh reports the port the server allocated for a -R. */
async function allocated(proc: Spawned, target: string): Promise<number> {
  const m = await proc.waitFor(
    new RegExp(
      `Allocated port (\\d+) for remote forward to ${
        target.replaceAll(".", "\\.")
      }`,
    ),
  );
  return Number(m[1]);
}

Deno.test({
  name:
    "forward interop: OpenSSH ssh -L/-R/-D -N through fynx sshd (100 x 1 MiB, SOCKS, half-close)",
  ignore,
  async fn() {
    await withFynxSshd({ user: "" }, [], async (s) => {
      const target = startTarget(echo);
      const digest = startTarget(digestAfterEof(100_000));
      const lPort = freePort();
      const hPort = freePort();
      const dPort = freePort();
      const ssh = sshN(s, "user", [
        "-L",
        `${lPort}:127.0.0.1:${target.port}`,
        "-L",
        `127.0.0.1:${hPort}:127.0.0.1:${digest.port}`,
        "-R",
        `0:127.0.0.1:${target.port}`,
        "-R",
        `0:127.0.0.1:${digest.port}`,
        "-D",
        `127.0.0.1:${dPort}`,
      ]);
      try {
        await listening(ssh, lPort);
        await listening(ssh, hPort);
        await listening(ssh, dPort);
        const rPort = await allocated(ssh, `127.0.0.1:${target.port}`);
        const rhPort = await allocated(ssh, `127.0.0.1:${digest.port}`);
        await concurrentEchoes(lPort, 100, MiB);
        await concurrentEchoes(rPort, 20, MiB);
        assert.equal(target.accepted, 120);
        // Half-close both ways through our server.
        const payload = pseudoRandomBytes(2 * MiB, 9);
        await halfCloseRoundTrip(hPort, payload, 100_000);
        await halfCloseRoundTrip(rhPort, payload, 100_000);
        // OpenSSH's SOCKS proxy, our server connecting.
        const r = await socks5(dPort, "localhost", target.port);
        assert.ok(r.ok);
        await r.conn.write(new TextEncoder().encode("via ssh -D"));
        await r.conn.closeWrite();
        assert.equal(decoder.decode(await readAll(r.conn)), "via ssh -D");
        r.conn.close();
        // Idle connections through -L and -R; ssh going away closes them
        // all, and the server's listener for -R.
        const viaL = await dial(lPort);
        const viaR = await dial(rPort);
        for (const c of [viaL, viaR]) {
          await c.write(new Uint8Array([1]));
          assert.equal(await c.read(new Uint8Array(1)), 1);
        }
        await target.waitOpen(2);
        await ssh.stop("SIGKILL");
        await target.waitOpen(0);
        for (const c of [viaL, viaR]) {
          await readAll(c).catch(() => {});
          c.close();
        }
        // The server stopped listening for the dead connection's -R.
        const deadline = Date.now() + 5000;
        for (;;) {
          const ok = await dial(rPort).then((c) => {
            c.close();
            return true;
          }, () => false);
          if (!ok) break;
          assert.ok(Date.now() < deadline, "-R listener still open");
          await new Promise((r) => setTimeout(r, 50));
        }
      } finally {
        await ssh.stop("SIGKILL");
        await target.close();
        await digest.close();
      }
    });
  },
});

Deno.test({
  name: "forward interop: OpenSSH ssh Unix-socket forwards through fynx sshd",
  ignore,
  async fn() {
    await withSockets(["srv-target", "srv-local", "srv-remote"], async (
      targetPath,
      localPath,
      remotePath,
    ) => {
      await withFynxSshd({ user: "" }, [], async (s) => {
        const unixTarget = startTarget(echo, { path: targetPath });
        const tcpTarget = startTarget(echo);
        const lPort = freePort();
        const ssh = sshN(s, "user", [
          // Local TCP port -> socket (direct-streamlocal@openssh.com).
          "-L",
          `${lPort}:${targetPath}`,
          // Local socket -> TCP.
          "-L",
          `${localPath}:127.0.0.1:${tcpTarget.port}`,
          // Server socket -> local socket (streamlocal-forward@openssh.com).
          "-R",
          `${remotePath}:${targetPath}`,
        ]);
        try {
          await listening(ssh, lPort);
          await ssh.waitFor(/remote forward success for: listen \/tmp/);
          await echoRoundTrip(lPort, pseudoRandomBytes(MiB, 1));
          await echoRoundTrip(localPath, pseudoRandomBytes(MiB, 2));
          await echoRoundTrip(remotePath, pseudoRandomBytes(MiB, 3));
          assert.equal(unixTarget.accepted, 2);
          assert.equal(tcpTarget.accepted, 1);
        } finally {
          await ssh.stop();
          await unixTarget.close();
          await tcpTarget.close();
        }
      });
    });
  },
});

Deno.test({
  name:
    "forward interop: authorized_keys no-port-forwarding, permitopen and permitlisten against OpenSSH ssh",
  ignore,
  async fn() {
    const target = startTarget(echo);
    const other = startTarget(echo);
    const allowedListen = freePort();
    try {
      await withFynxSshd(
        {
          none: "no-port-forwarding",
          open: `permitopen="127.0.0.1:${target.port}"`,
          listen: `permitlisten="localhost:${allowedListen}"`,
          restricted: "restrict,port-forwarding",
        },
        [],
        async (s) => {
          // no-port-forwarding: -R is refused (ExitOnForwardFailure: 255).
          {
            const ssh = sshN(s, "none", ["-R", `0:127.0.0.1:${target.port}`]);
            const status = await ssh.status;
            assert.equal(status.code, 255, ssh.output());
            assert.match(
              ssh.output(),
              /Error: remote port forwarding failed for listen port 0/,
            );
          }
          // no-port-forwarding: a -L connection is refused with our reason.
          {
            const lPort = freePort();
            const ssh = sshN(s, "none", [
              "-L",
              `${lPort}:127.0.0.1:${target.port}`,
            ]);
            try {
              await listening(ssh, lPort);
              const conn = await dial(lPort);
              assert.equal((await readAll(conn)).length, 0);
              conn.close();
              await ssh.waitFor(
                /open failed: administratively prohibited: Port forwarding is disabled for this login/,
              );
              assert.equal(target.accepted, 0);
            } finally {
              await ssh.stop();
            }
          }
          // permitopen: only the listed host:port.
          {
            const a = freePort();
            const b = freePort();
            const ssh = sshN(s, "open", [
              "-L",
              `${a}:127.0.0.1:${target.port}`,
              "-L",
              `${b}:127.0.0.1:${other.port}`,
            ]);
            try {
              await listening(ssh, a);
              await listening(ssh, b);
              await echoRoundTrip(a, pseudoRandomBytes(1000, 1));
              const conn = await dial(b);
              assert.equal((await readAll(conn)).length, 0);
              conn.close();
              await ssh.waitFor(
                /open failed: administratively prohibited: Not permitted by permitopen of the key/,
              );
              assert.equal(other.accepted, 0);
            } finally {
              await ssh.stop();
            }
          }
          // permitlisten: only the listed port (on localhost).
          {
            const ssh = sshN(s, "listen", [
              "-R",
              `${allowedListen}:127.0.0.1:${target.port}`,
            ]);
            try {
              await ssh.waitFor(/remote forward success/);
              await echoRoundTrip(allowedListen, pseudoRandomBytes(1000, 2));
            } finally {
              await ssh.stop();
            }
            const refused = sshN(s, "listen", [
              "-R",
              `0:127.0.0.1:${target.port}`,
            ]);
            assert.equal((await refused.status).code, 255, refused.output());
            assert.match(
              refused.output(),
              /remote port forwarding failed for listen port 0/,
            );
          }
          // restrict then port-forwarding re-enables it.
          {
            const ssh = sshN(s, "restricted", [
              "-R",
              `0:127.0.0.1:${target.port}`,
            ]);
            try {
              const port = await allocated(ssh, `127.0.0.1:${target.port}`);
              await echoRoundTrip(port, pseudoRandomBytes(1000, 3));
            } finally {
              await ssh.stop();
            }
          }
          // fynx sshd logged the refusals with the user and reason.
          assert.match(
            s.proc.output(),
            /forward refused direct-tcpip to 127\.0\.0\.1:\d+ user=tester from=127\.0\.0\.1:\d+ reason="Not permitted by permitopen/,
          );
        },
      );
    } finally {
      await target.close();
      await other.close();
    }
  },
});

Deno.test({
  name:
    "forward interop: fynx sshd -o GatewayPorts, AllowTcpForwarding and PermitOpen with OpenSSH ssh",
  ignore,
  async fn() {
    const target = startTarget(echo);
    try {
      await withFynxSshd({ user: "" }, [
        "GatewayPorts=clientspecified",
        "AllowTcpForwarding=remote",
      ], async (s) => {
        // clientspecified: "*" (sent as "") binds every interface, so
        // 127.0.0.2 reaches it.
        const ssh = sshN(s, "user", ["-R", `*:0:127.0.0.1:${target.port}`]);
        try {
          const port = await allocated(ssh, `127.0.0.1:${target.port}`);
          await echoRoundTrip(port, pseudoRandomBytes(1000, 1));
          const wide = await Deno.connect({ hostname: "127.0.0.2", port });
          wide.close();
        } finally {
          await ssh.stop();
        }
        // AllowTcpForwarding remote: -L is refused.
        const lPort = freePort();
        const l = sshN(s, "user", ["-L", `${lPort}:127.0.0.1:${target.port}`]);
        try {
          await listening(l, lPort);
          const conn = await dial(lPort);
          assert.equal((await readAll(conn)).length, 0);
          conn.close();
          await l.waitFor(
            /administratively prohibited: Local TCP forwarding is disabled on this server/,
          );
        } finally {
          await l.stop();
        }
      });
      await withFynxSshd({ user: "" }, [
        `PermitOpen=127.0.0.1:${target.port}`,
        "PermitListen=none",
      ], async (s) => {
        // Default GatewayPorts no: a -R for "*" still binds loopback only.
        const r = sshN(s, "user", ["-R", `0:127.0.0.1:${target.port}`]);
        assert.equal((await r.status).code, 255, r.output());
        const lPort = freePort();
        const l = sshN(s, "user", ["-L", `${lPort}:localhost:${target.port}`]);
        try {
          await listening(l, lPort);
          const conn = await dial(lPort);
          assert.equal((await readAll(conn)).length, 0);
          conn.close();
          await l.waitFor(/Not permitted by PermitOpen/);
        } finally {
          await l.stop();
        }
      });
      await withFynxSshd({ user: "" }, [], async (s) => {
        // GatewayPorts no (the default): "*" is forced to loopback.
        const ssh = sshN(s, "user", ["-R", `*:0:127.0.0.1:${target.port}`]);
        try {
          const port = await allocated(ssh, `127.0.0.1:${target.port}`);
          await echoRoundTrip(port, pseudoRandomBytes(1000, 1));
          await assert.rejects(
            Deno.connect({ hostname: "127.0.0.2", port }),
          );
        } finally {
          await ssh.stop();
        }
      });
    } finally {
      await target.close();
    }
  },
});
