/**
 * Hostile-peer tests (../shared/THREATS.md): malformed version lines,
 * oversized lengths, bad padding, bad MACs, out-of-order messages,
 * Terrapin-style injection, stalled and flooding connections. After each,
 * the server must still serve a well-behaved client.
 */
import assert from "node:assert/strict";
import { connect } from "../client.ts";
import {
  serve,
  type ServeOptions,
  type ServerLogEvent,
  type SshServer,
} from "../server.ts";
import { commandSessionHandler } from "../connection/mod.ts";
import { DisconnectError } from "../errors.ts";
import { kexMethod } from "../transport/kex/mod.ts";
import { Transport } from "../transport/transport.ts";
import { CIPHER_NAMES, cipherInfo } from "../transport/cipher/mod.ts";
import { acceptConnection } from "../server.ts";
import { memoryDuplexPair } from "../transport/duplex.ts";
import { DisconnectReason, Msg } from "../wire/messages.ts";
import { SshWriter } from "../wire/writer.ts";
import { clientKexInit, RawPeer } from "./_raw_peer.ts";
import { testKey } from "./_helpers.ts";

const hostKey = testKey("ed25519");

/** A server on a loopback port that lets alice in with her password. */
function startServer(options: Partial<ServeOptions>): SshServer {
  return serve({
    hostname: "127.0.0.1",
    port: 0,
    hostKeys: [hostKey],
    password: ({ username, password }) =>
      username === "alice" && password === "wonderland",
    onSession: commandSessionHandler(),
    ...options,
  });
}

/** Logs in as alice with `password` (our client, over TCP). */
function login(port: number, password = "wonderland") {
  return connect({
    hostname: "127.0.0.1",
    port,
    username: "alice",
    password,
    verifyHostKey: () => true,
  });
}

async function withServer(
  options: Partial<ServeOptions>,
  fn: (server: SshServer, port: number) => Promise<void>,
): Promise<void> {
  const server = startServer(options);
  try {
    await fn(server, server.addr.port);
    // Whatever happened, the server still serves a well-behaved client.
    const client = await login(server.addr.port);
    const r = await client.exec("echo alive");
    assert.equal(new TextDecoder().decode(r.stdout), "alive\n");
    await client.close();
  } finally {
    await server.close();
  }
}

/** Runs `fn` with a raw peer that has exchanged version lines with a fresh server. */
function withRawPeer(
  options: Partial<ServeOptions>,
  fn: (peer: RawPeer) => Promise<void>,
): Promise<void> {
  return withServer(options, async (_s, port) => {
    const peer = await rawAfterVersion(port);
    try {
      await fn(peer);
    } finally {
      peer.close();
    }
  });
}

async function rawAfterVersion(port: number): Promise<RawPeer> {
  const peer = await RawPeer.connect(port);
  await peer.write("SSH-2.0-hostile\r\n");
  const line = await peer.readLine();
  assert.match(line, /^SSH-2\.0-/);
  return peer;
}

Deno.test("server closes on a first line that is not SSH-2.0", async () => {
  await withServer({}, async (_s, port) => {
    const peer = await RawPeer.connect(port);
    try {
      await peer.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      assert.match(await peer.readLine(), /^SSH-2\.0-Fynx/);
      assert.equal(await peer.waitClosed(), true);
    } finally {
      peer.close();
    }
  });
});

Deno.test("server closes on an identification line over 255 bytes", async () => {
  await withServer({}, async (_s, port) => {
    const peer = await RawPeer.connect(port);
    try {
      await peer.write("SSH-2.0-" + "a".repeat(300) + "\r\n");
      assert.equal(await peer.waitClosed(), true);
    } finally {
      peer.close();
    }
  });
});

for (
  const [name, bytes] of [
    [
      "packet length 0xFFFFFFFF",
      RawPeer.frame(new Uint8Array([Msg.IGNORE, 0, 0, 0, 0]), {
        lengthOverride: 0xffffffff,
      }),
    ],
    ["packet length 0", new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0])],
    [
      "packet length 262145",
      RawPeer.frame(new Uint8Array([Msg.IGNORE]), { lengthOverride: 262145 }),
    ],
    [
      "length not a multiple of the block size",
      RawPeer.frame(new Uint8Array([Msg.IGNORE]), { lengthOverride: 13 }),
    ],
    [
      "padding shorter than 4 bytes",
      RawPeer.frame(new Uint8Array([Msg.IGNORE]), { padding: 2 }),
    ],
    [
      "padding longer than the packet",
      RawPeer.frame(new Uint8Array([Msg.IGNORE, 0, 0, 0, 0, 0, 0, 0, 0, 0]), {
        padding: 250,
      }),
    ],
  ] as const
) {
  Deno.test(`server sends DISCONNECT for ${name}`, async () => {
    await withRawPeer({}, async (peer) => {
      await peer.write(bytes);
      const d = await peer.readUntilDisconnect();
      assert.ok(d, "expected a DISCONNECT");
      assert.equal(d.reason, DisconnectReason.PROTOCOL_ERROR, d.description);
      assert.equal(await peer.waitClosed(), true);
    });
  });
}

for (
  const [name, payload] of [
    [
      "a name-list length of 0xFFFFFFFF",
      new Uint8Array([
        Msg.KEXINIT,
        ...new Uint8Array(16),
        0xff,
        0xff,
        0xff,
        0xff,
        0x61,
      ]),
    ],
    [
      "a name-list length of remaining+1",
      new Uint8Array([Msg.KEXINIT, ...new Uint8Array(16), 0, 0, 0, 2, 0x61]),
    ],
    ["a truncated KEXINIT", new Uint8Array([Msg.KEXINIT, 1, 2, 3])],
  ] as const
) {
  Deno.test(`server sends DISCONNECT for ${name}`, async () => {
    await withRawPeer({}, async (peer) => {
      await peer.sendPacket(payload);
      const d = await peer.readUntilDisconnect();
      assert.ok(d);
      assert.equal(d.reason, DisconnectReason.PROTOCOL_ERROR);
      assert.match(d.description, /Malformed KEXINIT/);
    });
  });
}

Deno.test("Terrapin: IGNORE before KEXINIT is fatal under strict kex", async () => {
  await withRawPeer({}, async (peer) => {
    await peer.sendPacket(
      new SshWriter().byte(Msg.IGNORE).string("x").bytes(),
    );
    await peer.sendPacket(clientKexInit({ strict: true }));
    const d = await peer.readUntilDisconnect();
    assert.ok(d);
    assert.equal(d.reason, DisconnectReason.PROTOCOL_ERROR);
    assert.match(d.description, /not the first packet/);
  });
});

/**
 * Runs a manual curve25519 exchange up to the server's NEWKEYS, optionally
 * with an IGNORE before KEXINIT, another first KEX method, or a guessed
 * packet (first_kex_packet_follows) sent right after KEXINIT.
 */
async function kexUntilNewKeys(
  peer: RawPeer,
  options: {
    strict: boolean;
    ignoreFirst?: boolean;
    kex?: string[];
    /** Announce a guess; the exchange's own KEX_INIT then is the guess. */
    firstKexFollows?: boolean;
    /** A wrong guess to send before the real KEX_INIT. */
    guess?: Uint8Array;
  },
): Promise<void> {
  if (options.ignoreFirst) {
    await peer.sendPacket(new SshWriter().byte(Msg.IGNORE).string("x").bytes());
  }
  await peer.sendPacket(
    clientKexInit({
      strict: options.strict,
      kex: options.kex,
      firstKexFollows: options.firstKexFollows ?? options.guess !== undefined,
    }),
  );
  if (options.guess) await peer.sendPacket(options.guess);
  const kex = kexMethod("curve25519-sha256").client();
  await peer.sendPacket(
    new SshWriter().byte(Msg.KEX_INIT).raw(kex.publicEncoded).bytes(),
  );
  const types: number[] = [];
  for (let i = 0; i < 3; i++) {
    const p = await peer.readPacket();
    assert.ok(p, "server closed during kex");
    types.push(p[0]);
  }
  assert.deepEqual(types, [Msg.KEXINIT, Msg.KEX_REPLY, Msg.NEWKEYS]);
}

Deno.test("Terrapin: IGNORE before KEXINIT is tolerated without strict kex", async () => {
  await withRawPeer({}, async (peer) => {
    await kexUntilNewKeys(peer, { strict: false, ignoreFirst: true });
  });
});

Deno.test("Terrapin: IGNORE between KEX reply and NEWKEYS is fatal under strict kex", async () => {
  await withRawPeer({}, async (peer) => {
    await kexUntilNewKeys(peer, { strict: true });
    await peer.sendPacket(
      new SshWriter().byte(Msg.IGNORE).string("x").bytes(),
    );
    // The server has switched its sending keys, so its DISCONNECT is
    // encrypted; what we can observe is that it closes at once.
    assert.equal(await peer.waitClosed(2000), true);
  });
});

Deno.test("Terrapin: IGNORE between KEX reply and NEWKEYS is tolerated without strict kex", async () => {
  await withRawPeer({}, async (peer) => {
    await kexUntilNewKeys(peer, { strict: false });
    await peer.sendPacket(
      new SshWriter().byte(Msg.IGNORE).string("x").bytes(),
    );
    assert.equal(await peer.waitClosed(300), false);
  });
});

Deno.test("a wrongly guessed first KEX packet is ignored (RFC 4253 section 7)", async () => {
  await withRawPeer({}, async (peer) => {
    // We guess NIST P-256, which the server does not offer by default; the
    // guessed packet is junk the server must drop unread.
    await kexUntilNewKeys(peer, {
      strict: true,
      kex: ["ecdh-sha2-nistp256", "curve25519-sha256"],
      guess: new SshWriter().byte(Msg.KEX_INIT).string(
        new Uint8Array(65).fill(7),
      ).bytes(),
    });
  });
});

Deno.test("a correctly guessed first KEX packet is used", async () => {
  await withRawPeer({}, async (peer) => {
    await kexUntilNewKeys(peer, { strict: true, firstKexFollows: true });
  });
});

Deno.test("a message that belongs after kex, sent during kex, is fatal", async () => {
  await withRawPeer({}, async (peer) => {
    await peer.sendPacket(clientKexInit({ strict: false }));
    await peer.sendPacket(
      new SshWriter().byte(Msg.SERVICE_REQUEST).string("ssh-userauth")
        .bytes(),
    );
    const d = await peer.readUntilDisconnect();
    assert.ok(d);
    assert.equal(d.reason, DisconnectReason.PROTOCOL_ERROR);
  });
});

/** Our transport as a raw client: real keys, then whatever messages the test sends. */
async function rawTransport(port: number): Promise<Transport> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const t = new Transport(conn, {
    side: "client",
    verifyHostKey: () => true,
    onMessage: () => {},
  });
  await t.start();
  return t;
}

for (
  const [name, payload] of [
    ["USERAUTH_SUCCESS from a client", new Uint8Array([Msg.USERAUTH_SUCCESS])],
    [
      "CHANNEL_OPEN before authentication",
      new SshWriter().byte(Msg.CHANNEL_OPEN).string("session").uint32(0).uint32(
        65536,
      ).uint32(32768).bytes(),
    ],
    [
      "USERAUTH_REQUEST before SERVICE_REQUEST",
      new SshWriter().byte(Msg.USERAUTH_REQUEST).string("alice").string(
        "ssh-connection",
      ).string("none").bytes(),
    ],
    [
      "GLOBAL_REQUEST before authentication",
      new SshWriter().byte(Msg.GLOBAL_REQUEST).string("x").boolean(true)
        .bytes(),
    ],
  ] as const
) {
  Deno.test(`server disconnects on ${name}`, async () => {
    await withServer({}, async (_s, port) => {
      const t = await rawTransport(port);
      await t.send(payload).catch(() => {});
      const reason = await t.closed;
      assert.ok(reason instanceof DisconnectError, String(reason));
      assert.equal(reason.fromPeer, true);
      assert.equal(reason.reason, DisconnectReason.PROTOCOL_ERROR);
    });
  });
}

Deno.test("server disconnects on data for an unknown channel after auth", async () => {
  await withServer({}, async (_s, port) => {
    const client = await login(port);
    await client.transport.send(
      new SshWriter().byte(Msg.CHANNEL_DATA).uint32(99).string("x").bytes(),
    ).catch(() => {});
    const reason = await client.closed;
    assert.ok(reason instanceof DisconnectError);
    assert.equal(reason.reason, DisconnectReason.PROTOCOL_ERROR);
  });
});

Deno.test("a flipped byte after kex always ends in a MAC or length error", async () => {
  for (const cipher of CIPHER_NAMES) {
    const macs = cipherInfo(cipher).aead
      ? [undefined]
      : ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-256"];
    for (const mac of macs) {
      const algorithms = { cipher: [cipher], ...(mac ? { mac: [mac] } : {}) };
      let flip = false;
      const [a, b] = memoryDuplexPair();
      // Man in the middle on the client-to-server direction.
      const tamper = new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          if (flip && chunk.length >= 16) {
            flip = false;
            const copy = chunk.slice();
            copy[copy.length >> 1] ^= 0x01;
            controller.enqueue(copy);
          } else controller.enqueue(chunk);
        },
      });
      const clientSide = { readable: a.readable, writable: tamper.writable };
      tamper.readable.pipeTo(a.writable).catch(() => {});
      const server = await acceptConnection(b, {
        hostKeys: [hostKey],
        password: () => true,
        onSession: commandSessionHandler(),
        algorithms,
      });
      const client = await connect({
        transport: clientSide,
        username: "u",
        password: "p",
        verifyHostKey: () => true,
        algorithms,
      });
      flip = true;
      await assert.rejects(client.exec("echo hi"));
      const reason = await server.closed;
      assert.ok(
        reason instanceof DisconnectError,
        `${cipher}/${mac}: ${reason}`,
      );
      assert.ok(
        reason.reason === DisconnectReason.MAC_ERROR ||
          reason.reason === DisconnectReason.PROTOCOL_ERROR,
        `${cipher}/${mac}: reason ${reason.reason} ${reason.message}`,
      );
      await client.closed;
    }
  }
});

Deno.test("connections stalled at every handshake stage are released after the login grace time", async () => {
  await withServer({ loginGraceTime: 400 }, async (server, port) => {
    const peers: RawPeer[] = [];
    const transports: Transport[] = [];
    try {
      // Raw peers stall: before anything, after the version line, after
      // KEXINIT, and after the server's NEWKEYS (ours never sent).
      for (let stage = 0; stage < 4; stage++) {
        const p = await RawPeer.connect(port);
        peers.push(p);
        if (stage === 0) continue;
        await p.write("SSH-2.0-staller\r\n");
        await p.readLine();
        if (stage === 2) await p.sendPacket(clientKexInit());
        if (stage === 3) await kexUntilNewKeys(p, { strict: true });
      }
      // Our transport stalls after the first key exchange, and after the
      // service request.
      for (let stage = 0; stage < 2; stage++) {
        const t = await rawTransport(port);
        transports.push(t);
        if (stage === 1) {
          await t.send(
            new SshWriter().byte(Msg.SERVICE_REQUEST).string("ssh-userauth")
              .bytes(),
          );
        }
      }
      const total = peers.length + transports.length;
      assert.equal(server.unauthenticated, total);
      for (const p of peers) assert.equal(await p.waitClosed(3000), true);
      for (const t of transports) {
        const reason = await t.closed;
        assert.ok(reason instanceof DisconnectError);
        assert.match(reason.message, /Authentication timeout/);
      }
      const until = Date.now() + 2000;
      while (server.connections > 0 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(server.unauthenticated, 0);
      assert.equal(server.connections, 0);
    } finally {
      for (const p of peers) p.close();
    }
  });
});

Deno.test("MaxStartups refuses connections beyond the hard cap", async () => {
  await withServer({
    maxStartups: { start: 3, rate: 100, full: 3 },
    loginGraceTime: 2000,
  }, async (server, port) => {
    const peers: RawPeer[] = [];
    try {
      for (let i = 0; i < 3; i++) peers.push(await RawPeer.connect(port));
      const deadline = Date.now() + 2000;
      while (server.unauthenticated < 3 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      const extra = await RawPeer.connect(port);
      peers.push(extra);
      assert.equal(await extra.waitClosed(2000), true);
    } finally {
      for (const p of peers) p.close();
    }
    const until = Date.now() + 3000;
    while (server.unauthenticated > 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 10));
    }
  });
});

Deno.test("serve(): every connection is logged to its close, close() waits for that, and a throwing onLog changes nothing", async () => {
  const events: ServerLogEvent[] = [];
  const server = startServer({
    onLog: (e) => {
      events.push(e);
      throw new Error(`onLog fails on ${e.type}`);
    },
  });
  const port = server.addr.port;
  try {
    // One connection ends with a failed login, two stay open.
    await assert.rejects(login(port, "wrong"));
    const a = await login(port);
    const b = await login(port);
    const r = await b.exec("echo still serving");
    assert.equal(new TextDecoder().decode(r.stdout), "still serving\n");
    assert.equal(server.connections, 2);
    assert.equal(server.unauthenticated, 0);
    // close() resolves only once both open connections are closed and
    // logged.
    await server.close();
    assert.equal(server.connections, 0);
    const kinds = (type: string) => events.filter((e) => e.type === type);
    assert.equal(kinds("connect").length, 3);
    assert.equal(kinds("auth").length, 2);
    assert.equal(kinds("auth-failed").length, 1);
    assert.equal(kinds("close").length, 3);
    for (const e of kinds("close")) {
      assert.match(e.remoteAddress, /^127\.0\.0\.1:\d+$/);
    }
    assert.deepEqual(
      kinds("close").map((e) => e.type === "close" && e.username).sort(),
      ["alice", "alice", undefined],
    );
    await Promise.all([a.closed, b.closed]);
  } finally {
    await server.close();
  }
});

Deno.test("auth failures take the same time for known and unknown users", async () => {
  await withServer({
    maxAuthTries: 1000,
    failureDelay: 5,
    password: ({ username, password }) => {
      if (username !== "alice") return false;
      // Simulate real password hashing work for a known user only.
      const end = performance.now() + 2;
      while (performance.now() < end) { /* busy */ }
      return password === "wonderland";
    },
  }, async (_s, port) => {
    const medians: Record<string, number> = {};
    for (
      const [user, password] of [["alice", "x"], ["nobody", "x"], [
        "alice",
        "y".repeat(1000),
      ], ["nobody", "y".repeat(1000)]]
    ) {
      const replies: ((p: Uint8Array) => void)[] = [];
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const t = new Transport(conn, {
        side: "client",
        verifyHostKey: () => true,
        onMessage: (p) => replies.shift()?.(p),
      });
      await t.start();
      const next = () => new Promise<Uint8Array>((r) => replies.push(r));
      let reply = next();
      await t.send(
        new SshWriter().byte(Msg.SERVICE_REQUEST).string("ssh-userauth")
          .bytes(),
      );
      await reply;
      const times: number[] = [];
      for (let i = 0; i < 200; i++) {
        reply = next();
        const start = performance.now();
        await t.send(
          new SshWriter().byte(Msg.USERAUTH_REQUEST).string(user).string(
            "ssh-connection",
          ).string("password")
            .boolean(false).string(password).bytes(),
        );
        const p = await reply;
        times.push(performance.now() - start);
        assert.equal(p[0], Msg.USERAUTH_FAILURE);
      }
      times.sort((x, y) => x - y);
      medians[`${user}/${password.length}`] = times[100];
      await t.disconnect();
    }
    const values = Object.values(medians);
    const spread = Math.max(...values) - Math.min(...values);
    assert.ok(
      spread < 1,
      `medians differ by ${spread.toFixed(2)} ms: ${JSON.stringify(medians)}`,
    );
  });
});

Deno.test("an IGNORE flood is absorbed without growing memory", async () => {
  await withServer({}, async (_s, port) => {
    const client = await login(port);
    try {
      const ignore = new SshWriter().byte(Msg.IGNORE).string(new Uint8Array(64))
        .bytes();
      const before = Deno.memoryUsage().heapUsed;
      for (let i = 0; i < 100_000; i++) await client.transport.send(ignore);
      const r = await client.exec("echo after flood");
      assert.equal(new TextDecoder().decode(r.stdout), "after flood\n");
      const grown = Deno.memoryUsage().heapUsed - before;
      assert.ok(grown < 64 * 1024 * 1024, `heap grew by ${grown} bytes`);
    } finally {
      await client.close();
    }
  });
});
