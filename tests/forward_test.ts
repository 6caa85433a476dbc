/**
 * Port forwarding between our client and our server (forward/): -L, -R
 * (port 0 too), Unix sockets both ways, half-close, 100 concurrent
 * connections of 1 MiB with checksums, refusals with their reasons, the
 * server's policy (AllowTcpForwarding, GatewayPorts, PermitOpen,
 * PermitListen, authorized_keys restrictions, the allow hook, limits),
 * SOCKS4/4a/5, and that closing a forward or losing the connection closes
 * every socket. Targets are TCP servers on 127.0.0.1 port 0 (or Unix
 * sockets in a temporary directory); sanitizers are on.
 */
import assert from "node:assert/strict";
import { ChannelOpenError } from "../errors.ts";
import { ChannelOpenFailure } from "../wire/messages.ts";
import {
  forwardLocal,
  forwardRemote,
  listenRemote,
  openDirect,
  serverForwarding,
  type ServerForwardingOptions,
  serveSocks,
} from "../forward/mod.ts";
import { encodeTcpipOpen } from "../forward/_wire.ts";
import { SshWriter } from "../wire/writer.ts";
import type { SessionRestrictions } from "../connection/session.ts";
import { connectPair, type Pair, testKey } from "./_helpers.ts";
import {
  concurrentEchoes,
  dial,
  digestAfterEof,
  echo,
  echoRoundTrip,
  greet,
  halfCloseRoundTrip,
  pseudoRandomBytes,
  readAll,
  socks4,
  socks5,
  startTarget,
  withSockets,
} from "./_forward_helpers.ts";

const MiB = 1 << 20;
const decoder = new TextDecoder();

function portOf(addr: Deno.Addr): number {
  return (addr as Deno.NetAddr).port;
}

/** Our client and server with forwarding on, over TCP or memory. */
function pairWith(
  options: ServerForwardingOptions = {},
  restrictions?: SessionRestrictions,
): Promise<Pair> {
  if (restrictions === undefined) {
    return connectPair({ ...serverForwarding(options) });
  }
  // Restrictions come with a public key login, as from authorized_keys.
  const key = testKey("ed25519");
  return connectPair(
    {
      ...serverForwarding(options),
      publicKey: ({ key: k }) =>
        k.fingerprint() === key.publicKey.fingerprint()
          ? { restrictions }
          : false,
    },
    { password: undefined, privateKeys: [key] },
  );
}

Deno.test("forward: -L carries 100 concurrent connections of 1 MiB each, checksums intact", async () => {
  const target = startTarget(echo);
  const pair = await pairWith();
  try {
    const forward = await forwardLocal(pair.client, {
      listen: { hostname: "127.0.0.1", port: 0 },
      target: { hostname: "127.0.0.1", port: target.port },
    });
    await concurrentEchoes(portOf(forward.addr), 100, MiB);
    assert.equal(target.accepted, 100);
    await forward.close();
    await target.waitOpen(0);
    assert.equal(pair.client.connection.channelCount, 0);
  } finally {
    await pair.close();
    await target.close();
  }
});

Deno.test("forward: -R with port 0 gets an allocated port; 100 concurrent 1 MiB connections", async () => {
  const target = startTarget(echo);
  const pair = await pairWith();
  try {
    const forward = await forwardRemote(pair.client, {
      bind: { hostname: "localhost", port: 0 },
      target: { hostname: "127.0.0.1", port: target.port },
    });
    const address = forward.address as { hostname: string; port: number };
    assert.equal(address.hostname, "localhost");
    assert.ok(address.port > 0);
    await concurrentEchoes(address.port, 100, MiB);
    assert.equal(target.accepted, 100);
    await forward.close();
    // The server's listener is gone.
    await assert.rejects(dial(address.port));
  } finally {
    await pair.close();
    await target.close();
  }
});

Deno.test("forward: half-close both ways (EOF sent, reply still flows)", async () => {
  const target = startTarget(digestAfterEof(300_000));
  const pair = await pairWith();
  try {
    const local = await forwardLocal(pair.client, {
      listen: { hostname: "127.0.0.1", port: 0 },
      target: { hostname: "127.0.0.1", port: target.port },
    });
    const remote = await forwardRemote(pair.client, {
      bind: { hostname: "127.0.0.1", port: 0 },
      target: { hostname: "127.0.0.1", port: target.port },
    });
    const payload = pseudoRandomBytes(3 * MiB, 5);
    await halfCloseRoundTrip(portOf(local.addr), payload, 300_000);
    await halfCloseRoundTrip(
      remote.port,
      payload,
      300_000,
    );
    // The library channel directly: close the writable, keep reading.
    const channel = await openDirect(pair.client, {
      hostname: "127.0.0.1",
      port: target.port,
    });
    const w = channel.writable.getWriter();
    await w.write(new TextEncoder().encode("abc"));
    await w.close();
    const text = decoder.decode(
      new Uint8Array(await new Response(channel.readable).arrayBuffer()),
    );
    assert.match(text, /^3 ba7816bf/);
    await channel.closed;
    await local.close();
    await remote.close();
  } finally {
    await pair.close();
    await target.close();
  }
});

Deno.test("forward: Unix sockets both ways (-L and -R, socket to TCP and TCP to socket)", async () => {
  await withSockets(["lib-target", "lib-local", "lib-remote"], async (
    targetPath,
    localPath,
    remotePath,
  ) => {
    const unixTarget = startTarget(echo, { path: targetPath });
    const tcpTarget = startTarget(echo);
    const pair = await pairWith();
    try {
      // -L local socket -> server-side TCP target.
      const a = await forwardLocal(pair.client, {
        listen: { path: localPath },
        target: { hostname: "127.0.0.1", port: tcpTarget.port },
      });
      await echoRoundTrip(localPath, pseudoRandomBytes(MiB, 1));
      // -L local TCP port -> server-side Unix socket
      // (direct-streamlocal@openssh.com).
      const b = await forwardLocal(pair.client, {
        listen: { hostname: "127.0.0.1", port: 0 },
        target: { path: targetPath },
      });
      await echoRoundTrip(portOf(b.addr), pseudoRandomBytes(MiB, 2));
      // -R server-side socket -> our Unix socket target
      // (streamlocal-forward@openssh.com).
      const c = await forwardRemote(pair.client, {
        bind: { path: remotePath },
        target: { path: targetPath },
      });
      assert.equal(
        (await Deno.stat(remotePath)).mode! & 0o777,
        0o600,
      );
      await echoRoundTrip(remotePath, pseudoRandomBytes(MiB, 3));
      // -R server-side TCP port -> our Unix socket target.
      const d = await forwardRemote(pair.client, {
        bind: { hostname: "127.0.0.1", port: 0 },
        target: { path: targetPath },
      });
      await echoRoundTrip(
        d.port,
        pseudoRandomBytes(MiB, 4),
      );
      assert.equal(unixTarget.accepted, 3);
      assert.equal(tcpTarget.accepted, 1);
      for (const f of [a, b, c, d]) await f.close();
      // Both listening sockets are removed when their listeners close.
      await assert.rejects(
        Deno.stat(localPath),
        Deno.errors.NotFound,
      );
      await assert.rejects(
        Deno.stat(remotePath),
        Deno.errors.NotFound,
      );
    } finally {
      await pair.close();
      await unixTarget.close();
      await tcpTarget.close();
    }
  });
});

Deno.test("forward: a refused or failed -L names host:port and the reason", async () => {
  const closedPort = (() => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const p = portOf(l.addr);
    l.close();
    return p;
  })();
  const pair = await pairWith({
    allow: (request) =>
      !(request.type === "direct-tcpip" && request.port === 25),
  });
  try {
    await assert.rejects(
      openDirect(pair.client, { hostname: "127.0.0.1", port: closedPort }),
      (e: unknown) =>
        e instanceof ChannelOpenError &&
        e.reason === ChannelOpenFailure.CONNECT_FAILED &&
        e.message ===
          `Cannot forward to 127.0.0.1:${closedPort}: connect failed: Connection refused`,
    );
    await assert.rejects(
      openDirect(pair.client, { hostname: "127.0.0.1", port: 25 }),
      (e: unknown) =>
        e instanceof ChannelOpenError &&
        e.reason === ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED &&
        /^Cannot forward to 127\.0\.0\.1:25: administratively prohibited: Refused by the server's policy: cannot connect to 127\.0\.0\.1:25$/
          .test(e.message),
    );
    // Through a local listener the error goes to onError and the local
    // connection is closed.
    const errors: Error[] = [];
    const forward = await forwardLocal(pair.client, {
      listen: { hostname: "127.0.0.1", port: 0 },
      target: { hostname: "127.0.0.1", port: closedPort },
      onError: (e) => errors.push(e),
    });
    const conn = await dial(portOf(forward.addr));
    assert.equal((await readAll(conn)).length, 0);
    conn.close();
    assert.equal(errors.length, 1);
    assert.match(errors[0].message, /127\.0\.0\.1:\d+: connect failed/);
    await forward.close();
  } finally {
    await pair.close();
  }
});

Deno.test("forward: AllowTcpForwarding and AllowStreamLocalForwarding modes", async () => {
  const target = startTarget(greet("hi"));
  for (
    const [mode, local, remote] of [
      ["no", false, false],
      ["local", true, false],
      ["remote", false, true],
      ["all", true, true],
    ] as const
  ) {
    const pair = await pairWith({
      allowTcpForwarding: mode,
      allowStreamLocalForwarding: "no",
    });
    try {
      const open = openDirect(pair.client, {
        hostname: "127.0.0.1",
        port: target.port,
      });
      if (local) {
        const channel = await open;
        assert.equal(
          await new Response(channel.readable).text(),
          "hi",
          `mode ${mode}`,
        );
        await channel.close();
      } else {
        await assert.rejects(
          open,
          /administratively prohibited: Local TCP forwarding is disabled on this server/,
        );
      }
      const listen = listenRemote(pair.client, {
        bind: { port: 0 },
        onConnection: (c) => c.reject(1, "no"),
      });
      if (remote) await (await listen).close();
      else {
        await assert.rejects(
          listen,
          /Remote port forwarding failed for listen port 0 on localhost: refused by the server/,
        );
      }
      await assert.rejects(
        openDirect(pair.client, { path: "/tmp/x.sock" }),
        /Cannot forward to \/tmp\/x\.sock: administratively prohibited: Local Unix-socket forwarding is disabled/,
      );
    } finally {
      await pair.close();
    }
  }
  await target.close();
});

Deno.test("forward: authorized_keys restrictions (no-port-forwarding, permitopen, permitlisten)", async () => {
  const target = startTarget(greet("ok"));
  try {
    {
      const pair = await pairWith({}, { portForwarding: false });
      try {
        await assert.rejects(
          openDirect(pair.client, { hostname: "127.0.0.1", port: target.port }),
          /Port forwarding is disabled for this login/,
        );
        await assert.rejects(
          forwardRemote(pair.client, {
            bind: { port: 0 },
            target: { hostname: "127.0.0.1", port: 1 },
          }),
          /refused by the server/,
        );
      } finally {
        await pair.close();
      }
    }
    {
      const pair = await pairWith({}, {
        permitOpen: [`127.0.0.1:${target.port}`, "example.org:*"],
        permitListen: ["localhost:*", "0"],
      });
      try {
        const ok = await openDirect(pair.client, {
          hostname: "127.0.0.1",
          port: target.port,
        });
        assert.equal(await new Response(ok.readable).text(), "ok");
        // Same port under another name: sshd compares names literally.
        await assert.rejects(
          openDirect(pair.client, { hostname: "localhost", port: target.port }),
          /Not permitted by permitopen of the key: cannot connect to localhost:\d+/,
        );
        await assert.rejects(
          openDirect(pair.client, { hostname: "127.0.0.1", port: 1 }),
          /administratively prohibited: Not permitted by permitopen/,
        );
        // Unix sockets need a `*` port entry (sshd's open_match()).
        await assert.rejects(
          openDirect(pair.client, { path: "/tmp/whatever.sock" }),
          /Not permitted by permitopen/,
        );
        const l = await listenRemote(pair.client, {
          bind: { hostname: "localhost", port: 0 },
          onConnection: (c) => c.reject(1),
        });
        await l.close();
        await assert.rejects(
          listenRemote(pair.client, {
            bind: { hostname: "127.0.0.1", port: 0 },
            onConnection: (c) => c.reject(1),
          }),
          /refused/,
        );
      } finally {
        await pair.close();
      }
    }
  } finally {
    await target.close();
  }
});

Deno.test("forward: server PermitOpen / PermitListen lists and the policy hook sees the user", async () => {
  const target = startTarget(greet("ok"));
  const seen: string[] = [];
  const refused: string[] = [];
  const pair = await pairWith({
    permitOpen: [`127.0.0.1:${target.port}`],
    permitListen: ["127.0.0.1:*"],
    allow: (request, info) => {
      seen.push(`${info.username} ${request.type}`);
      return true;
    },
    onRefused: (_request, reason) => refused.push(reason),
  });
  try {
    const ok = await openDirect(pair.client, {
      hostname: "127.0.0.1",
      port: target.port,
    });
    assert.equal(await new Response(ok.readable).text(), "ok");
    await assert.rejects(
      openDirect(pair.client, { hostname: "127.0.0.1", port: 2 }),
      /Not permitted by PermitOpen: cannot connect to 127\.0\.0\.1:2/,
    );
    const l = await listenRemote(pair.client, {
      bind: { hostname: "127.0.0.1", port: 0 },
      onConnection: (c) => c.reject(1),
    });
    await l.close();
    await assert.rejects(
      listenRemote(pair.client, {
        bind: { hostname: "localhost", port: 0 },
        onConnection: (c) => c.reject(1),
      }),
      /refused by the server/,
    );
    assert.deepEqual(seen, ["alice direct-tcpip", "alice tcpip-forward"]);
    assert.deepEqual(refused, [
      "Not permitted by PermitOpen: cannot connect to 127.0.0.1:2",
      "Not permitted by PermitListen: cannot listen on localhost:0",
    ]);
  } finally {
    await pair.close();
    await target.close();
  }
});

Deno.test("forward: GatewayPorts no binds loopback; clientspecified honours the address", async () => {
  for (
    const [gatewayPorts, asked, bound] of [
      ["no", "", "127.0.0.1"],
      ["no", "0.0.0.0", "127.0.0.1"],
      ["no", "127.0.0.1", "127.0.0.1"],
      ["clientspecified", "", "0.0.0.0"],
      ["clientspecified", "127.0.0.1", "127.0.0.1"],
      ["yes", "localhost", "0.0.0.0"],
    ] as const
  ) {
    const pair = await pairWith({
      gatewayPorts,
      allow: () => true,
    });
    try {
      const l = await listenRemote(pair.client, {
        bind: { hostname: asked, port: 0 },
        onConnection: (c) => c.reject(1),
      });
      const port = l.port;
      // 127.0.0.2 is loopback too, but only a wildcard listener takes it.
      const wide = await Deno.connect({ hostname: "127.0.0.2", port }).then(
        (c) => {
          c.close();
          return true;
        },
        () => false,
      );
      assert.equal(
        wide ? "0.0.0.0" : "127.0.0.1",
        bound,
        `GatewayPorts ${gatewayPorts}, asked ${JSON.stringify(asked)}`,
      );
      // And loopback always works.
      (await dial(port)).close();
      await l.close();
    } finally {
      await pair.close();
    }
  }
});

Deno.test("forward: limits on listeners and forwarded connections", async () => {
  const target = startTarget(echo);
  const pair = await pairWith({ maxListeners: 2, maxChannels: 3 });
  try {
    const a = await listenRemote(pair.client, {
      bind: { port: 0 },
      onConnection: (c) => c.reject(1),
    });
    const b = await listenRemote(pair.client, {
      bind: { port: 0 },
      onConnection: (c) => c.reject(1),
    });
    await assert.rejects(
      listenRemote(pair.client, {
        bind: { port: 0 },
        onConnection: (c) => c.reject(1),
      }),
      /refused/,
    );
    await a.close();
    await b.close();
    const open = [];
    for (let i = 0; i < 3; i++) {
      open.push(
        await openDirect(pair.client, {
          hostname: "127.0.0.1",
          port: target.port,
        }),
      );
    }
    await assert.rejects(
      openDirect(pair.client, { hostname: "127.0.0.1", port: target.port }),
      (e: unknown) =>
        e instanceof ChannelOpenError &&
        e.reason === ChannelOpenFailure.RESOURCE_SHORTAGE &&
        /Too many forwarded connections \(limit 3\)/.test(e.message),
    );
    await open[0].close();
    await target.waitOpen(2);
    const again = await openDirect(pair.client, {
      hostname: "127.0.0.1",
      port: target.port,
    });
    for (const c of [...open, again]) await c.close();
    await target.waitOpen(0);
  } finally {
    await pair.close();
    await target.close();
  }
});

Deno.test("forward: the client refuses forwarded-tcpip it did not ask for", async () => {
  const pair = await pairWith();
  try {
    const l = await listenRemote(pair.client, {
      bind: { hostname: "localhost", port: 0 },
      onConnection: (c) => c.reject(1, "not now"),
    });
    const conn = pair.server.connection!;
    await assert.rejects(
      conn.openChannel(
        "forwarded-tcpip",
        encodeTcpipOpen({
          host: "localhost",
          port: 1,
          originatorAddress: "127.0.0.1",
          originatorPort: 5,
        }),
      ),
      (e: unknown) =>
        e instanceof ChannelOpenError &&
        e.reason === ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED &&
        /No remote forward was requested for localhost:1/.test(e.message),
    );
    // Other channel types still reach whatever handled them before.
    await assert.rejects(
      conn.openChannel("auth-agent@openssh.com"),
      (e: unknown) =>
        e instanceof ChannelOpenError &&
        e.reason === ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE,
    );
    await l.close();
  } finally {
    await pair.close();
  }
});

Deno.test("forward: closing a forward closes its sockets; losing the connection closes everything", async () => {
  const target = startTarget(echo);
  const pair = await pairWith();
  const local = await forwardLocal(pair.client, {
    listen: { hostname: "127.0.0.1", port: 0 },
    target: { hostname: "127.0.0.1", port: target.port },
  });
  const remote = await forwardRemote(pair.client, {
    bind: { hostname: "127.0.0.1", port: 0 },
    target: { hostname: "127.0.0.1", port: target.port },
  });
  const socks = await serveSocks(pair.client, {
    listen: { hostname: "127.0.0.1", port: 0 },
  });
  try {
    // Idle connections through each forward (no EOF sent).
    const viaLocal = await dial(portOf(local.addr));
    const viaRemote = await dial(remote.port);
    const viaSocks = await socks5(portOf(socks.addr), "127.0.0.1", target.port);
    assert.ok(viaSocks.ok);
    for (const c of [viaLocal, viaRemote, viaSocks.conn]) {
      await c.write(new Uint8Array([1, 2, 3]));
      assert.deepEqual(
        await (async () => {
          const b = new Uint8Array(3);
          let n = 0;
          while (n < 3) n += (await c.read(b.subarray(n)))!;
          return b;
        })(),
        new Uint8Array([1, 2, 3]),
      );
    }
    await target.waitOpen(3);
    assert.equal(local.connections, 1);
    // Closing -L closes its sockets on both ends.
    await local.close();
    assert.equal((await readAll(viaLocal)).length, 0);
    viaLocal.close();
    await target.waitOpen(2);
    await assert.rejects(dial(portOf(local.addr)));
    // Dropping the connection closes everything else.
    await pair.server.close();
    await Promise.all([remote.closed, socks.closed]);
    assert.equal((await readAll(viaRemote)).length, 0);
    assert.equal((await readAll(viaSocks.conn)).length, 0);
    viaRemote.close();
    viaSocks.conn.close();
    await target.waitOpen(0);
    await assert.rejects(dial(remote.port));
    await assert.rejects(dial(portOf(socks.addr)));
  } finally {
    await pair.close();
    await target.close();
  }
});

Deno.test("forward: SOCKS4, SOCKS4a and SOCKS5 (IPv4, domain name, IPv6 ::1)", async () => {
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
  const pair = await pairWith({
    allow: (r) => !(r.type === "direct-tcpip" && r.port === 7),
  });
  const errors: string[] = [];
  const proxy = await serveSocks(pair.client, {
    listen: { hostname: "127.0.0.1", port: 0 },
    onError: (e) => errors.push(e.message),
  });
  const proxyPort = portOf(proxy.addr);
  const roundTrip = async (conn: Deno.Conn, text: string) => {
    await conn.write(new TextEncoder().encode(text));
    await conn.closeWrite();
    assert.equal(decoder.decode(await readAll(conn)), text);
    conn.close();
  };
  try {
    const r4 = await socks4(proxyPort, "127.0.0.1", target.port);
    assert.ok(r4.ok);
    await roundTrip(r4.conn, "socks4");
    const r4a = await socks4(proxyPort, "localhost", target.port);
    assert.ok(r4a.ok);
    await roundTrip(r4a.conn, "socks4a");
    const r5 = await socks5(proxyPort, "127.0.0.1", target.port);
    assert.ok(r5.ok);
    await roundTrip(r5.conn, "socks5 ipv4");
    const r5d = await socks5(proxyPort, "localhost", target.port);
    assert.ok(r5d.ok);
    await roundTrip(r5d.conn, "socks5 domain");
    if (v6 !== null) {
      const r5v6 = await socks5(proxyPort, "::1", portOf(v6.addr));
      assert.ok(r5v6.ok);
      await roundTrip(r5v6.conn, "socks5 ipv6");
    }
    // Failures get their SOCKS codes.
    const closedPort = (() => {
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const p = portOf(l.addr);
      l.close();
      return p;
    })();
    assert.deepEqual(await socks5(proxyPort, "127.0.0.1", closedPort), {
      ok: false,
      code: 5, // connection refused
    });
    assert.deepEqual(await socks5(proxyPort, "127.0.0.1", 7), {
      ok: false,
      code: 2, // not allowed by ruleset
    });
    assert.deepEqual(await socks4(proxyPort, "127.0.0.1", closedPort), {
      ok: false,
      code: 91,
    });
    // Only "no authentication" is offered.
    assert.deepEqual(
      await socks5(proxyPort, "127.0.0.1", target.port, { methods: [2] }),
      { ok: false, code: 0x1ff },
    );
    assert.ok(errors.some((e) => /127\.0\.0\.1:\d+: connect failed/.test(e)));
    assert.ok(errors.some((e) => /no method we support/.test(e)));
  } finally {
    await proxy.close();
    await pair.close();
    await target.close();
    v6?.close();
    await v6Served;
  }
});

Deno.test("forward: SOCKS rejects malformed requests without hanging", async () => {
  const pair = await pairWith();
  const errors: string[] = [];
  const proxy = await serveSocks(pair.client, {
    listen: { hostname: "127.0.0.1", port: 0 },
    handshakeTimeout: 300,
    onError: (e) => errors.push(e.message),
  });
  const port = portOf(proxy.addr);
  try {
    const send = async (bytes: number[], close = true) => {
      const conn = await dial(port);
      await conn.write(new Uint8Array(bytes));
      if (close) await conn.closeWrite();
      const reply = await readAll(conn);
      conn.close();
      return [...reply];
    };
    assert.deepEqual(await send([9, 9, 9]), []); // unknown version
    // SOCKS5 BIND (command 2): "command not supported".
    assert.deepEqual(
      await send([5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80]),
      [5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0],
    );
    // Unknown address type.
    assert.deepEqual(
      await send([5, 1, 0, 5, 1, 0, 9, 0, 80]),
      [5, 0, 5, 8, 0, 1, 0, 0, 0, 0, 0, 0],
    );
    // SOCKS4 with a user id that never ends: bounded, then dropped.
    assert.deepEqual(
      await send([4, 1, 0, 80, 127, 0, 0, 1, ...new Array(300).fill(65)]),
      [],
    );
    // A client that stalls is dropped after the handshake timeout.
    assert.deepEqual(await send([5, 1], false), []);
    assert.ok(errors.some((e) => /only CONNECT/.test(e)));
    assert.ok(errors.some((e) => /address type 9/.test(e)));
    assert.ok(errors.some((e) => /longer than 255 bytes/.test(e)));
    assert.ok(errors.some((e) => /no request within 300 ms/.test(e)));
  } finally {
    await proxy.close();
    await pair.close();
  }
});

Deno.test("forward: a stalled reader holds back only its own sender (SSH window backpressure)", async () => {
  const total = 64 * MiB;
  let written = 0;
  // A target that sends 64 MiB as fast as it is allowed to.
  const flood = startTarget(async (conn) => {
    const chunk = pseudoRandomBytes(64 * 1024, 3);
    while (written < total) {
      written += await conn.write(chunk.subarray(0, total - written));
    }
    await conn.closeWrite();
    while ((await conn.read(new Uint8Array(16))) !== null) { /* drain */ }
  });
  const target = startTarget(echo);
  const pair = await pairWith();
  try {
    const toFlood = await forwardLocal(pair.client, {
      listen: { hostname: "127.0.0.1", port: 0 },
      target: { hostname: "127.0.0.1", port: flood.port },
    });
    const toEcho = await forwardLocal(pair.client, {
      listen: { hostname: "127.0.0.1", port: 0 },
      target: { hostname: "127.0.0.1", port: target.port },
    });
    // Connect and read nothing: the sender must stop after the window and
    // the socket buffers, far short of 64 MiB.
    const stalled = await dial(portOf(toFlood.addr));
    let last = -1;
    for (let quiet = 0, i = 0; quiet < 6 && i < 400; i++) {
      await new Promise((r) => setTimeout(r, 50));
      quiet = written === last ? quiet + 1 : 0;
      last = written;
    }
    assert.ok(written > 0 && written < 32 * MiB, `sender wrote ${written}`);
    // Another connection over the same SSH connection is not held up.
    await echoRoundTrip(portOf(toEcho.addr), pseudoRandomBytes(MiB, 8));
    // Reading resumes the flow; everything arrives.
    await stalled.closeWrite();
    const got = await readAll(stalled);
    stalled.close();
    assert.equal(got.length, total);
    await toFlood.close();
    await toEcho.close();
  } finally {
    await pair.close();
    await flood.close();
    await target.close();
  }
});

Deno.test("forward: malformed requests are refused with a reason; the server carries on", async () => {
  const target = startTarget(greet("still here"));
  const pair = await pairWith();
  try {
    const conn = pair.client.connection;
    const garbage = [
      new Uint8Array([0, 0, 0]),
      new SshWriter().uint32(0xffffffff).bytes(),
      new SshWriter().string("h").uint32(70000).string("o").uint32(1).bytes(),
      new SshWriter().string("h").uint32(80).string("o").uint32(1).byte(0)
        .bytes(),
    ];
    for (const data of garbage) {
      await assert.rejects(
        conn.openChannel("direct-tcpip", data),
        (e: unknown) =>
          e instanceof ChannelOpenError &&
          e.reason === ChannelOpenFailure.CONNECT_FAILED &&
          /Malformed direct-tcpip/.test(e.message),
      );
    }
    // The last one is a well-formed tcpip-forward (trailing bytes are
    // ignored there, as sshd does), so only the others; for
    // streamlocal-forward only the first two are malformed.
    for (const data of garbage.slice(0, 3)) {
      assert.equal(await conn.globalRequest("tcpip-forward", data), null);
    }
    for (const data of garbage.slice(0, 2)) {
      assert.equal(
        await conn.globalRequest("streamlocal-forward@openssh.com", data),
        null,
      );
    }
    await assert.rejects(
      conn.openChannel(
        "direct-streamlocal@openssh.com",
        new SshWriter().uint32(5000).bytes(),
      ),
      /Malformed direct-streamlocal@openssh\.com/,
    );
    // Cancelling what was never requested is refused too.
    assert.equal(
      await conn.globalRequest(
        "cancel-tcpip-forward",
        new SshWriter().string("localhost").uint32(1).bytes(),
      ),
      null,
    );
    const ok = await openDirect(pair.client, {
      hostname: "127.0.0.1",
      port: target.port,
    });
    assert.equal(await new Response(ok.readable).text(), "still here");
  } finally {
    await pair.close();
    await target.close();
  }
});
