/**
 * Forwarding interop: our client (the library and `fynx ssh`) through a
 * real OpenSSH `sshd` (tests/_openssh.ts, with AllowTcpForwarding and
 * AllowStreamLocalForwarding set in its config): -L with 100 concurrent
 * connections of 1 MiB, -R with port 0, half-close, Unix sockets both
 * ways, -D (SOCKS4a and SOCKS5 with a domain name and IPv6 ::1), refusals
 * reported with host:port and the reason, and `fynx ssh -N -L/-R/-D` with
 * `ExitOnForwardFailure`.
 *
 * Needs root and OpenSSH; otherwise the tests are ignored with a message.
 */
import assert from "node:assert/strict";
import { connect, type SshClient } from "../client.ts";
import { ChannelOpenError } from "../errors.ts";
import { parsePrivateKey } from "../keys/mod.ts";
import { ChannelOpenFailure } from "../wire/messages.ts";
import {
  forwardLocal,
  forwardRemote,
  openDirect,
  serveSocks,
} from "../forward/mod.ts";
import {
  bytesEqual,
  type KeyFiles,
  skipOpenssh,
  type Sshd,
  sshKeygen,
  startSshd,
} from "./_openssh.ts";
import { fynx, FYNX_MAIN, FYNX_PERMISSIONS } from "./_fynx.ts";
import {
  concurrentEchoes,
  dial,
  digestAfterEof,
  echo,
  echoRoundTrip,
  halfCloseRoundTrip,
  pseudoRandomBytes,
  readAll,
  socks4,
  socks5,
  spawn,
  startTarget,
  withSockets,
} from "./_forward_helpers.ts";

const ignore = skipOpenssh(
  "forwarding interop (our client -> OpenSSH sshd)",
);
const MiB = 1 << 20;
const decoder = new TextDecoder();

function portOf(addr: Deno.Addr): number {
  return (addr as Deno.NetAddr).port;
}

interface Setup {
  dir: string;
  sshd: Sshd;
  key: KeyFiles;
}

async function withSshd(
  config: string[],
  fn: (s: Setup) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fynx-fwd-client-" });
  try {
    const key = await sshKeygen(dir, "id_ed25519", "ed25519");
    const sshd = await startSshd({
      hostKeyTypes: ["ed25519"],
      authorizedKeys: [key.publicLine],
      config,
    });
    try {
      await fn({ dir, sshd, key });
    } finally {
      await sshd.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function connectTo(s: Setup): Promise<SshClient> {
  return connect({
    hostname: "127.0.0.1",
    port: s.sshd.port,
    username: "root",
    privateKeys: [parsePrivateKey(s.key.privateText)],
    verifyHostKey: (key) =>
      s.sshd.hostKeys.some((k) => bytesEqual(k.blob, key.blob)),
  });
}

const FORWARDING = [
  "AllowTcpForwarding yes",
  "AllowStreamLocalForwarding yes",
  "GatewayPorts no",
  "StreamLocalBindUnlink yes",
];

Deno.test({
  name:
    "forward interop: our -L through sshd, 100 concurrent connections of 1 MiB",
  ignore,
  async fn() {
    await withSshd(FORWARDING, async (s) => {
      const target = startTarget(echo);
      const client = await connectTo(s);
      try {
        const forward = await forwardLocal(client, {
          listen: { hostname: "127.0.0.1", port: 0 },
          target: { hostname: "127.0.0.1", port: target.port },
        });
        await concurrentEchoes(portOf(forward.addr), 100, MiB);
        assert.equal(target.accepted, 100);
        await forward.close();
        await target.waitOpen(0);
      } finally {
        await client.close();
        await target.close();
      }
    });
  },
});

Deno.test({
  name:
    "forward interop: our -R through sshd (port 0 allocated), half-close both ways",
  ignore,
  async fn() {
    await withSshd(FORWARDING, async (s) => {
      const target = startTarget(echo);
      const digest = startTarget(digestAfterEof(200_000));
      const client = await connectTo(s);
      try {
        const remote = await forwardRemote(client, {
          bind: { port: 0 },
          target: { hostname: "127.0.0.1", port: target.port },
        });
        const port = remote.port;
        assert.ok(port > 0);
        await concurrentEchoes(port, 20, MiB);
        // Half-close through sshd: EOF goes out, the reply still comes back.
        const local = await forwardLocal(client, {
          listen: { hostname: "127.0.0.1", port: 0 },
          target: { hostname: "127.0.0.1", port: digest.port },
        });
        const remote2 = await forwardRemote(client, {
          bind: { hostname: "127.0.0.1", port: 0 },
          target: { hostname: "127.0.0.1", port: digest.port },
        });
        const payload = pseudoRandomBytes(2 * MiB, 3);
        await halfCloseRoundTrip(portOf(local.addr), payload, 200_000);
        await halfCloseRoundTrip(
          remote2.port,
          payload,
          200_000,
        );
        await remote.close();
        await remote2.close();
        await local.close();
        await assert.rejects(dial(port));
      } finally {
        await client.close();
        await target.close();
        await digest.close();
      }
    });
  },
});

Deno.test({
  name: "forward interop: Unix sockets both ways through sshd",
  ignore,
  async fn() {
    await withSockets(["cli-target", "cli-local", "cli-remote"], async (
      targetPath,
      localPath,
      remotePath,
    ) => {
      await withSshd(FORWARDING, async (s) => {
        const unixTarget = startTarget(echo, { path: targetPath });
        const tcpTarget = startTarget(echo);
        const client = await connectTo(s);
        try {
          // Local TCP port -> socket on the server's side.
          const a = await forwardLocal(client, {
            listen: { hostname: "127.0.0.1", port: 0 },
            target: { path: targetPath },
          });
          await echoRoundTrip(portOf(a.addr), pseudoRandomBytes(MiB, 1));
          // Local socket -> TCP on the server's side.
          const b = await forwardLocal(client, {
            listen: { path: localPath },
            target: { hostname: "127.0.0.1", port: tcpTarget.port },
          });
          await echoRoundTrip(localPath, pseudoRandomBytes(MiB, 2));
          // A socket sshd listens on -> our socket target.
          const c = await forwardRemote(client, {
            bind: { path: remotePath },
            target: { path: targetPath },
          });
          await echoRoundTrip(remotePath, pseudoRandomBytes(MiB, 3));
          assert.equal(unixTarget.accepted, 2);
          assert.equal(tcpTarget.accepted, 1);
          for (const f of [a, b, c]) await f.close();
        } finally {
          await client.close();
          await unixTarget.close();
          await tcpTarget.close();
        }
      });
    });
  },
});

Deno.test({
  name: "forward interop: our SOCKS proxy (-D) through sshd: 4, 4a, 5, IPv6",
  ignore,
  async fn() {
    await withSshd(FORWARDING, async (s) => {
      const target = startTarget(echo);
      let v6: Deno.TcpListener | null = null;
      try {
        v6 = Deno.listen({ hostname: "::1", port: 0 });
      } catch {
        console.warn("[skip] SOCKS5 IPv6: ::1 is not available on loopback");
      }
      const v6Served = v6 === null ? Promise.resolve() : (async () => {
        for await (const conn of v6!) {
          await echo(conn).catch(() => {});
          conn.close();
        }
      })();
      const client = await connectTo(s);
      const proxy = await serveSocks(client, {
        listen: { hostname: "127.0.0.1", port: 0 },
      });
      const port = portOf(proxy.addr);
      const roundTrip = async (conn: Deno.Conn, text: string) => {
        await conn.write(new TextEncoder().encode(text));
        await conn.closeWrite();
        assert.equal(decoder.decode(await readAll(conn)), text);
        conn.close();
      };
      try {
        for (
          const [kind, host] of [
            ["4", "127.0.0.1"],
            ["4a", "localhost"],
            ["5", "127.0.0.1"],
            ["5", "localhost"],
          ]
        ) {
          const r = kind === "5"
            ? await socks5(port, host, target.port)
            : await socks4(port, host, target.port);
          assert.ok(r.ok, `SOCKS${kind} ${host}`);
          await roundTrip(r.conn, `SOCKS${kind} ${host}`);
        }
        if (v6 !== null) {
          const r = await socks5(port, "::1", portOf(v6.addr));
          assert.ok(r.ok);
          await roundTrip(r.conn, "over IPv6");
        }
        const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        const closedPort = portOf(closed.addr);
        closed.close();
        assert.deepEqual(await socks5(port, "127.0.0.1", closedPort), {
          ok: false,
          code: 5,
        });
        assert.deepEqual(await socks5(port, "no-such-host.invalid", 80), {
          ok: false,
          code: 4,
        });
      } finally {
        await proxy.close();
        await client.close();
        await target.close();
        v6?.close();
        await v6Served;
      }
    });
  },
});

Deno.test({
  name: "forward interop: sshd refusals are reported with host:port and reason",
  ignore,
  async fn() {
    await withSshd([
      "AllowTcpForwarding local",
      "PermitOpen 127.0.0.1:1",
    ], async (s) => {
      const client = await connectTo(s);
      try {
        await assert.rejects(
          openDirect(client, { hostname: "127.0.0.1", port: 2 }),
          (e: unknown) =>
            e instanceof ChannelOpenError &&
            e.reason === ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED &&
            /^Cannot forward to 127\.0\.0\.1:2: administratively prohibited/
              .test(e.message),
        );
        await assert.rejects(
          openDirect(client, { hostname: "127.0.0.1", port: 1 }),
          (e: unknown) =>
            e instanceof ChannelOpenError &&
            e.reason === ChannelOpenFailure.CONNECT_FAILED &&
            e.message ===
              "Cannot forward to 127.0.0.1:1: connect failed: Connection refused",
        );
        await assert.rejects(
          forwardRemote(client, {
            bind: { port: 0 },
            target: { hostname: "127.0.0.1", port: 1 },
          }),
          /Remote port forwarding failed for listen port 0 on localhost: refused by the server/,
        );
      } finally {
        await client.close();
      }
    });
  },
});

/** `fynx ssh` arguments for sshd as root with the test key. */
function sshFlags(s: Setup): string[] {
  return [
    "-p",
    String(s.sshd.port),
    "-i",
    s.key.path,
    "-o",
    `UserKnownHostsFile=${s.sshd.knownHostsPath}`,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
  ];
}

function spawnFynx(args: string[]) {
  return spawn(Deno.execPath(), [
    "run",
    "-q",
    ...FYNX_PERMISSIONS,
    FYNX_MAIN,
    ...args,
  ]);
}

Deno.test({
  name: "forward interop: fynx ssh -N -L -R -D through sshd",
  ignore,
  async fn() {
    await withSshd(FORWARDING, async (s) => {
      const target = startTarget(echo);
      const proc = spawnFynx([
        "ssh",
        ...sshFlags(s),
        "-v",
        "-N",
        "-L",
        `127.0.0.1:0:127.0.0.1:${target.port}`,
        "-o",
        `RemoteForward=0 127.0.0.1:${target.port}`,
        "-D",
        "127.0.0.1:0",
        // No bind address with GatewayPorts yes: every interface.
        "-o",
        "GatewayPorts=yes",
        "-o",
        `LocalForward=0 127.0.0.1:${target.port}`,
        "root@127.0.0.1",
      ]);
      try {
        const l = await proc.waitFor(
          /Local forwarding listening on 127\.0\.0\.1 port (\d+)\./,
        );
        const d = await proc.waitFor(
          /Local SOCKS proxy listening on 127\.0\.0\.1 port (\d+)\./,
        );
        const r = await proc.waitFor(
          new RegExp(
            `Allocated port (\\d+) for remote forward to 127\\.0\\.0\\.1:${target.port}`,
          ),
        );
        const wide = await proc.waitFor(
          /Local forwarding listening on 0\.0\.0\.0 port (\d+)\./,
        );
        // 127.0.0.2 is loopback too, but only a wildcard listener takes it.
        const viaWide = await Deno.connect({
          hostname: "127.0.0.2",
          port: Number(wide[1]),
        });
        await viaWide.write(new TextEncoder().encode("wide"));
        await viaWide.closeWrite();
        assert.equal(decoder.decode(await readAll(viaWide)), "wide");
        viaWide.close();
        await echoRoundTrip(Number(l[1]), pseudoRandomBytes(MiB, 1));
        await echoRoundTrip(Number(r[1]), pseudoRandomBytes(MiB, 2));
        const socks = await socks5(Number(d[1]), "localhost", target.port);
        assert.ok(socks.ok);
        await socks.conn.write(new TextEncoder().encode("via -D"));
        await socks.conn.closeWrite();
        assert.equal(decoder.decode(await readAll(socks.conn)), "via -D");
        socks.conn.close();
        // A connection left open: killing ssh closes it.
        const idle = await dial(Number(l[1]));
        await idle.write(new Uint8Array([7]));
        assert.deepEqual(
          [
            ...await (async () => {
              const b = new Uint8Array(1);
              await idle.read(b);
              return b;
            })(),
          ],
          [7],
        );
        const status = await proc.stop("SIGTERM");
        assert.equal(status.code, 255, proc.output());
        assert.equal((await readAll(idle)).length, 0);
        idle.close();
        await target.waitOpen(0);
        await assert.rejects(dial(Number(l[1])));
      } finally {
        await proc.stop("SIGKILL");
        await target.close();
      }
    });
  },
});

Deno.test({
  name:
    "forward interop: fynx ssh ExitOnForwardFailure exits 255 on a refused forward",
  ignore,
  async fn() {
    await withSshd(["AllowTcpForwarding local"], async (s) => {
      const refused = await fynx([
        "ssh",
        ...sshFlags(s),
        "-o",
        "ExitOnForwardFailure=yes",
        "-N",
        "-R",
        "0:127.0.0.1:1",
        "root@127.0.0.1",
      ], { timeout: 30_000 });
      assert.equal(refused.code, 255, refused.stderrText);
      assert.match(
        refused.stderrText,
        /Error: remote port forwarding failed for listen port 0/,
      );
      // Without it: a warning, and the command still runs.
      const warned = await fynx([
        "ssh",
        ...sshFlags(s),
        "-R",
        "8:127.0.0.1:1",
        "root@127.0.0.1",
        "echo ran",
      ], { timeout: 30_000 });
      assert.equal(warned.code, 0, warned.stderrText);
      assert.equal(warned.stdoutText, "ran\n");
      assert.match(
        warned.stderrText,
        /Warning: remote port forwarding failed for listen port 8/,
      );
      // A local port that cannot be bound.
      const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      try {
        const bound = await fynx([
          "ssh",
          ...sshFlags(s),
          "-o",
          "ExitOnForwardFailure=yes",
          "-L",
          `127.0.0.1:${portOf(busy.addr)}:127.0.0.1:1`,
          "root@127.0.0.1",
          "echo never",
        ], { timeout: 30_000 });
        assert.equal(bound.code, 255, bound.stderrText);
        assert.equal(bound.stdoutText, "");
        assert.match(
          bound.stderrText,
          new RegExp(
            `bind 127\\.0\\.0\\.1:${portOf(busy.addr)}: Address already in use`,
          ),
        );
        assert.match(bound.stderrText, /Could not request local forwarding\./);
      } finally {
        busy.close();
      }
      // A -L whose target the server refuses: the connection is closed and
      // the reason printed, naming host:port.
      const proc = spawnFynx([
        "ssh",
        ...sshFlags(s),
        "-v",
        "-N",
        "-L",
        "127.0.0.1:0:127.0.0.1:1",
        "root@127.0.0.1",
      ]);
      try {
        const l = await proc.waitFor(
          /Local forwarding listening on 127\.0\.0\.1 port (\d+)\./,
        );
        const conn = await dial(Number(l[1]));
        assert.equal((await readAll(conn)).length, 0);
        conn.close();
        await proc.waitFor(
          /Cannot forward to 127\.0\.0\.1:1: connect failed: Connection refused/,
        );
      } finally {
        await proc.stop();
      }
    });
  },
});
