/**
 * Hostile input to our SFTP server, sent raw over a real `sftp` subsystem
 * channel (our client and server over an in-memory SSH connection):
 * malformed and truncated packets, huge and zero lengths, oversized counts,
 * packets before INIT, unknown types, handles used after close or forged,
 * the handle table limit, paths with NUL and `..`, and a flood of requests
 * whose replies are not read.
 *
 * Every violation must end that SFTP session cleanly (exit status 1 with
 * the reason on stderr) and leave the server serving new sessions. The
 * other way round, a fake server checks that our client bounds what a
 * server sends.
 */
import assert from "node:assert/strict";
import { commandSessionHandler } from "../server.ts";
import type { ClientSession } from "../connection/session.ts";
import {
  openSftp,
  SftpClient,
  SftpError,
  SftpStatus,
  sftpSubsystem,
} from "../sftp/mod.ts";
import { FXP, PacketFramer } from "../sftp/_protocol.ts";
import { SshWriter } from "../wire/writer.ts";
import { connectPair, type Pair } from "./_helpers.ts";

interface Raw {
  session: ClientSession;
  send(bytes: Uint8Array): Promise<void>;
  /** Sends EOF. */
  eof(): Promise<void>;
  /** The next reply packet (type byte first), or null once stdout ended. */
  next(): Promise<Uint8Array | null>;
  stderr: Promise<string>;
  close(): Promise<void>;
}

async function rawSftp(pair: Pair, init = true): Promise<Raw> {
  const session = await pair.client.openSession();
  await session.subsystem("sftp");
  const writer = session.stdin.getWriter();
  const reader = session.stdout.getReader();
  const framer = new PacketFramer();
  const queue: Uint8Array[] = [];
  const stderr = new Response(session.stderr).text();
  stderr.catch(() => {});
  const raw: Raw = {
    session,
    send: (bytes) => writer.write(bytes),
    eof: () => writer.close(),
    async next() {
      while (queue.length === 0) {
        const { value, done } = await reader.read();
        if (done) return null;
        framer.push(value, (p) => queue.push(p.slice()));
      }
      return queue.shift()!;
    },
    stderr,
    async close() {
      await session.close();
      reader.releaseLock();
    },
  };
  if (init) {
    await raw.send(packet(FXP.INIT, (w) => w.uint32(3)));
    const version = await raw.next();
    assert.equal(version?.[0], FXP.VERSION);
  }
  return raw;
}

/** One packet: length, type, then what `body` writes. */
function packet(type: number, body: (w: SshWriter) => void): Uint8Array {
  const w = new SshWriter().uint32(0).byte(type);
  body(w);
  const bytes = w.bytes();
  new DataView(bytes.buffer).setUint32(0, bytes.length - 4);
  return bytes;
}

function statusOf(reply: Uint8Array | null): { id: number; code: number } {
  assert.ok(reply !== null, "session ended instead of replying");
  assert.equal(reply[0], FXP.STATUS, `expected STATUS, got type ${reply[0]}`);
  const v = new DataView(reply.buffer, reply.byteOffset);
  return { id: v.getUint32(1), code: v.getUint32(5) };
}

function handleOf(reply: Uint8Array | null): Uint8Array {
  assert.ok(reply !== null);
  assert.equal(reply[0], FXP.HANDLE, `expected HANDLE, got type ${reply[0]}`);
  const len = new DataView(reply.buffer, reply.byteOffset).getUint32(5);
  return reply.slice(9, 9 + len);
}

/** Expects the session to end: no more replies, exit status 1, a reason. */
async function expectEnded(raw: Raw, reason: RegExp): Promise<void> {
  assert.equal(await raw.next(), null);
  const exit = await raw.session.exit;
  assert.equal(exit.code, 1);
  assert.match(await raw.stderr, reason);
  await raw.close();
}

/** The server still works: a fresh, well-behaved session. */
async function stillServes(pair: Pair): Promise<void> {
  const sftp = await openSftp(pair.client);
  assert.equal((await sftp.stat("/")).permissions! & 0o170000, 0o040000);
  await sftp.close();
}

async function withServer(
  fn: (pair: Pair, root: string) => Promise<void>,
  options: { maxHandles?: number } = {},
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "fynx-sftp-hostile-" });
  await Deno.writeTextFile(`${root}/file`, "0123456789");
  const pair = await connectPair({
    onSession: commandSessionHandler({
      subsystems: { sftp: sftpSubsystem({ root, ...options }) },
    }),
  });
  try {
    await fn(pair, root);
  } finally {
    await pair.close();
    await Deno.remove(root, { recursive: true });
  }
}

function lengthOnly(n: number, extra: number[] = []): Uint8Array {
  const b = new Uint8Array(4 + extra.length);
  new DataView(b.buffer).setUint32(0, n);
  b.set(extra, 4);
  return b;
}

Deno.test("sftp hostile: huge, zero and oversized packet lengths end the session", async () => {
  await withServer(async (pair) => {
    for (
      const [bytes, reason] of [
        [lengthOnly(0xffff_ffff, [FXP.OPEN]), /exceeds the limit/],
        [lengthOnly(256 * 1024 + 1025, [FXP.WRITE]), /exceeds the limit/],
        [lengthOnly(0), /length 0/],
      ] as const
    ) {
      const raw = await rawSftp(pair);
      await raw.send(bytes);
      await expectEnded(raw, reason);
    }
    await stillServes(pair);
  });
});

Deno.test("sftp hostile: malformed packets end the session cleanly", async () => {
  await withServer(async (pair) => {
    const cases: [string, Uint8Array, RegExp][] = [
      // READ with the handle but no offset or length.
      [
        "truncated READ",
        packet(FXP.READ, (w) => w.uint32(1).string(new Uint8Array(4))),
        /Malformed/,
      ],
      // A path string claiming 4 GiB inside a small packet.
      [
        "string length past the packet",
        packet(
          FXP.STAT,
          (w) => w.uint32(1).uint32(0xffff_fff0).raw(new Uint8Array(8)),
        ),
        /Malformed/,
      ],
      // A path over the limit.
      [
        "path too long",
        packet(FXP.STAT, (w) => w.uint32(1).string("a".repeat(9000))),
        /Malformed|limit/,
      ],
      // ATTRS claiming 2^32-1 extended pairs.
      [
        "extended attribute count",
        packet(
          FXP.SETSTAT,
          (w) =>
            w.uint32(1).string("/file").uint32(0x8000_0000).uint32(0xffff_ffff),
        ),
        /Malformed/,
      ],
      // Invalid UTF-8 in a path.
      [
        "invalid UTF-8",
        packet(
          FXP.LSTAT,
          (w) => w.uint32(1).string(new Uint8Array([0xff, 0xfe])),
        ),
        /Malformed/,
      ],
      // A packet with only the type byte (no id).
      ["no request id", lengthOnly(1, [FXP.STAT]), /Malformed/],
      // A second INIT.
      ["second INIT", packet(FXP.INIT, (w) => w.uint32(3)), /INIT/],
    ];
    for (const [what, bytes, reason] of cases) {
      const raw = await rawSftp(pair);
      await raw.send(bytes);
      await expectEnded(raw, reason).catch((e) => {
        throw new Error(`${what}: ${e.message}`, { cause: e });
      });
    }
    // Before INIT, anything else ends the session.
    const early = await rawSftp(pair, false);
    await early.send(packet(FXP.OPEN, (w) => w.uint32(1).string("/file")));
    await expectEnded(early, /expected SSH_FXP_INIT/);
    // A packet cut short by EOF.
    const cut = await rawSftp(pair);
    await cut.send(lengthOnly(100, [FXP.STAT, 0, 0]));
    await cut.eof();
    await expectEnded(cut, /truncated/);
    // Random garbage.
    const junk = await rawSftp(pair);
    const noise = new Uint8Array(4096);
    crypto.getRandomValues(noise);
    noise.set([0, 0, 0, 50, 250], 0);
    await junk.send(noise);
    assert.equal(statusOf(await junk.next()).code, SftpStatus.OP_UNSUPPORTED);
    await stillServes(pair);
    await junk.close();
    await stillServes(pair);
  });
});

Deno.test("sftp hostile: unknown requests get OP_UNSUPPORTED and the session goes on", async () => {
  await withServer(async (pair) => {
    const raw = await rawSftp(pair);
    await raw.send(packet(99, (w) => w.uint32(7).string("x")));
    assert.deepEqual(statusOf(await raw.next()), {
      id: 7,
      code: SftpStatus.OP_UNSUPPORTED,
    });
    await raw.send(packet(FXP.EXTENDED, (w) => w.uint32(8).string("evil@x")));
    assert.deepEqual(statusOf(await raw.next()), {
      id: 8,
      code: SftpStatus.OP_UNSUPPORTED,
    });
    // A NUL inside a path is refused, not truncated.
    await raw.send(packet(FXP.STAT, (w) => w.uint32(9).string("/file\0.txt")));
    assert.deepEqual(statusOf(await raw.next()), {
      id: 9,
      code: SftpStatus.BAD_MESSAGE,
    });
    // `..` above the root stays at the root: this is <root>/etc/passwd.
    await raw.send(
      packet(
        FXP.OPEN,
        (w) =>
          w.uint32(10).string("../../../../etc/passwd").uint32(1).uint32(0),
      ),
    );
    assert.deepEqual(statusOf(await raw.next()), {
      id: 10,
      code: SftpStatus.NO_SUCH_FILE,
    });
    // A READ asking for 4 GiB gets at most 255 KiB (here the whole file).
    await raw.send(
      packet(FXP.OPEN, (w) => w.uint32(11).string("/file").uint32(1).uint32(0)),
    );
    const h = handleOf(await raw.next());
    await raw.send(
      packet(
        FXP.READ,
        (w) => w.uint32(12).string(h).uint64(0n).uint32(0xffff_ffff),
      ),
    );
    const data = await raw.next();
    assert.equal(data?.[0], FXP.DATA);
    assert.equal(new TextDecoder().decode(data!.subarray(9)), "0123456789");
    await raw.eof();
    assert.equal(await raw.next(), null);
    assert.equal((await raw.session.exit).code, 0);
    await raw.close();
  });
});

Deno.test("sftp hostile: handles after close, forged handles, the handle limit", async () => {
  await withServer(async (pair) => {
    const raw = await rawSftp(pair);
    let id = 100;
    const open = async () => {
      await raw.send(
        packet(
          FXP.OPEN,
          (w) => w.uint32(++id).string("/file").uint32(1).uint32(0),
        ),
      );
      return await raw.next();
    };
    const h = handleOf(await open());
    await raw.send(packet(FXP.CLOSE, (w) => w.uint32(++id).string(h)));
    assert.equal(statusOf(await raw.next()).code, SftpStatus.OK);
    for (const type of [FXP.READ, FXP.CLOSE, FXP.FSTAT]) {
      await raw.send(
        packet(type, (w) => {
          w.uint32(++id).string(h);
          if (type === FXP.READ) w.uint64(0n).uint32(10);
        }),
      );
      assert.deepEqual(statusOf(await raw.next()), {
        id,
        code: SftpStatus.FAILURE,
      });
    }
    // Forged handles: wrong length, unknown number, longer than allowed.
    for (const forged of [new Uint8Array(3), new Uint8Array([0, 0, 0, 77])]) {
      await raw.send(packet(FXP.FSTAT, (w) => w.uint32(++id).string(forged)));
      assert.equal(statusOf(await raw.next()).code, SftpStatus.FAILURE);
    }
    // A new handle never equals a closed one.
    const h2 = handleOf(await open());
    assert.notDeepEqual(h2, h);
    // A directory handle is not a file handle, and vice versa.
    await raw.send(packet(FXP.OPENDIR, (w) => w.uint32(++id).string("/")));
    const dh = handleOf(await raw.next());
    await raw.send(
      packet(FXP.READ, (w) => w.uint32(++id).string(dh).uint64(0n).uint32(1)),
    );
    assert.equal(statusOf(await raw.next()).code, SftpStatus.FAILURE);
    await raw.send(packet(FXP.READDIR, (w) => w.uint32(++id).string(h2)));
    assert.equal(statusOf(await raw.next()).code, SftpStatus.FAILURE);
    // The table holds 8 here: 2 are open, 6 more fit, then FAILURE.
    for (let i = 0; i < 6; i++) handleOf(await open());
    const over = statusOf(await open());
    assert.equal(over.code, SftpStatus.FAILURE);
    await raw.send(packet(FXP.CLOSE, (w) => w.uint32(++id).string(h2)));
    assert.equal(statusOf(await raw.next()).code, SftpStatus.OK);
    handleOf(await open());
    // Ending the session closes every handle (the sanitizers check leaks).
    await raw.eof();
    assert.equal(await raw.next(), null);
    await raw.close();
    await stillServes(pair);
  }, { maxHandles: 8 });
});

Deno.test("sftp hostile: a flood of requests whose replies are not read", async () => {
  await withServer(async (pair, root) => {
    const raw = await rawSftp(pair);
    await raw.send(
      packet(FXP.OPEN, (w) => w.uint32(1).string("/file").uint32(1).uint32(0)),
    );
    const h = handleOf(await raw.next());
    // 400 reads of 255 KiB are 100 MiB of replies: the server waits for the
    // channel window instead of buffering them. Send them all, then read.
    await Deno.writeFile(`${root}/file`, new Uint8Array(300 * 1024));
    const N = 400;
    const all = new SshWriter(N * 40);
    for (let i = 0; i < N; i++) {
      all.raw(
        packet(
          FXP.READ,
          (w) => w.uint32(1000 + i).string(h).uint64(0n).uint32(255 * 1024),
        ),
      );
    }
    const sending = raw.send(all.bytes());
    await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < N; i++) {
      const reply = await raw.next();
      assert.equal(reply?.[0], FXP.DATA);
      const v = new DataView(reply!.buffer, reply!.byteOffset);
      assert.equal(v.getUint32(1), 1000 + i);
      assert.equal(v.getUint32(5), 255 * 1024);
    }
    await sending;
    await raw.close();
    await stillServes(pair);
  });
});

/** A fake server: answers INIT, then hands each request to `reply`. */
async function fakeServer(
  reply: (request: Uint8Array) => Uint8Array[],
): Promise<{ sftp: SftpClient; done: Promise<void> }> {
  const up = new TransformStream<Uint8Array, Uint8Array>();
  const down = new TransformStream<Uint8Array, Uint8Array>();
  const done = (async () => {
    const w = down.writable.getWriter();
    const framer = new PacketFramer();
    const requests: Uint8Array[] = [];
    try {
      for await (const chunk of up.readable) {
        framer.push(chunk, (p) => requests.push(p.slice()));
        while (requests.length > 0) {
          const p = requests.shift()!;
          const out = p[0] === FXP.INIT
            ? [packet(FXP.VERSION, (x) => x.uint32(3))]
            : reply(p);
          for (const o of out) await w.write(o);
        }
      }
      await w.close();
    } catch {
      await w.abort().catch(() => {});
    }
  })();
  const sftp = await SftpClient.open({
    readable: down.readable,
    writable: up.writable,
  });
  return { sftp, done };
}

function idOf(request: Uint8Array): number {
  return new DataView(request.buffer, request.byteOffset).getUint32(1);
}

Deno.test("sftp hostile server: our client bounds what a server sends", async () => {
  const cases: [string, (req: Uint8Array) => Uint8Array[], RegExp][] = [
    [
      "NAME count far beyond the packet",
      (
        req,
      ) => [packet(FXP.NAME, (w) => w.uint32(idOf(req)).uint32(0xffff_ffff))],
      /entries do not fit/,
    ],
    [
      "a reply to a request never made",
      () => [packet(FXP.STATUS, (w) => w.uint32(999_999).uint32(0))],
      /unknown request 999999/,
    ],
    [
      "a 4 GiB packet length",
      () => [lengthOnly(0xffff_ffff, [FXP.DATA])],
      /exceeds the limit/,
    ],
    [
      "a string longer than its packet",
      (req) => [
        packet(
          FXP.NAME,
          (w) =>
            w.uint32(idOf(req)).uint32(1).uint32(0x7fff_ffff).raw(
              new Uint8Array(64),
            ),
        ),
      ],
      /Malformed|do not fit/,
    ],
  ];
  for (const [what, reply, reason] of cases) {
    const { sftp, done } = await fakeServer(reply);
    const e = await sftp.realpath(".").catch((e) => e);
    assert.ok(e instanceof SftpError, `${what}: ${e}`);
    assert.match(e.message, reason, what);
    assert.ok(
      e.code === SftpStatus.BAD_MESSAGE ||
        e.code === SftpStatus.CONNECTION_LOST,
      `${what}: code ${e.code}`,
    );
    await sftp.close();
    await done;
  }
  // A DATA reply longer than the read asked for is refused.
  const { sftp, done } = await fakeServer((req) =>
    req[0] === FXP.OPEN
      ? [packet(FXP.HANDLE, (w) => w.uint32(idOf(req)).string("h"))]
      : req[0] === FXP.READ
      ? [
        packet(
          FXP.DATA,
          (w) => w.uint32(idOf(req)).string(new Uint8Array(100)),
        ),
      ]
      : [packet(FXP.STATUS, (w) => w.uint32(idOf(req)).uint32(0))]
  );
  const f = await sftp.open("/x", "r");
  const e = await new Response(f.createReadable({ chunkSize: 10 }))
    .arrayBuffer()
    .catch((e) => e);
  assert.match(String(e), /sent 100 bytes for a read of 10/);
  await f.close();
  await sftp.close();
  await done;
});
