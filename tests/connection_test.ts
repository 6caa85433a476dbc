// Tests for connection/: two real Connection instances (client and server)
// joined by an in-memory link with a bounded queue.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ChannelOpenError, DisconnectError } from "../errors.ts";
import { ChannelOpenFailure, DisconnectReason, Msg } from "../wire/messages.ts";
import { SshWriter } from "../wire/writer.ts";
import { connectionPair } from "../connection/_link.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { commandSessionHandler } from "../connection/command_handler.ts";
import type { ServerSession } from "../connection/session.ts";
import {
  Connection,
  type ConnectionOptions,
} from "../connection/connection.ts";
import { ptySupported } from "../connection/pty.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const sh = commandSessionHandler({ shell: "/bin/sh" });

function sha256hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

async function readAll(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function tick(ms = 0): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A custom exec handler: runs `body` for each accepted exec. */
function execHandler(
  body: (session: ServerSession, command: string) => Promise<void>,
): (session: ServerSession) => void {
  return (session) => {
    session.onRequest = (req) => {
      if (req.type !== "exec") return false;
      body(session, req.command).catch(() => {});
      return true;
    };
  };
}

Deno.test("exec through commandSessionHandler: exit codes, stderr, signals", async () => {
  const pair = connectionPair({}, { onSessionOpen: sh });
  try {
    const ok = await pair.client.exec("echo out; echo err >&2; exit 0");
    assert.equal(decoder.decode(ok.stdout), "out\n");
    assert.equal(decoder.decode(ok.stderr), "err\n");
    assert.equal(ok.code, 0);
    assert.equal(ok.signal, null);
    const fail = await pair.client.exec("exit 42");
    assert.equal(fail.code, 42);
    const killed = await pair.client.exec("kill -TERM $$");
    assert.equal(killed.code, null);
    assert.equal(killed.signal, "TERM");
    const input = await pair.client.exec("tr a-z A-Z", { stdin: "shout" });
    assert.equal(decoder.decode(input.stdout), "SHOUT");
    assert.equal(pair.client.channelCount, 0);
    assert.equal(pair.server.channelCount, 0);
  } finally {
    pair.close();
  }
});

Deno.test("exec through a custom handler: exit-status and exit-signal", async () => {
  const pair = connectionPair({}, {
    onSessionOpen: execHandler(async (session, command) => {
      const w = session.stdout.getWriter();
      await w.write(encoder.encode(`ran ${command}`));
      w.releaseLock();
      if (command === "die") {
        await session.exitSignal("SIGSEGV", {
          coreDumped: true,
          message: "boom",
        });
      } else await session.exit(Number(command));
    }),
  });
  try {
    const r = await pair.client.exec("7");
    assert.equal(decoder.decode(r.stdout), "ran 7");
    assert.equal(r.code, 7);
    const d = await pair.client.exec("die");
    assert.equal(d.code, null);
    assert.equal(d.signal, "SEGV");
    assert.equal(d.coreDumped, true);
    assert.equal(d.message, "boom");
  } finally {
    pair.close();
  }
});

Deno.test("16 MiB of stdin through cat comes back intact", async () => {
  const pair = connectionPair({}, { onSessionOpen: sh });
  try {
    const data = pseudoRandomBytes(16 * 1024 * 1024);
    const r = await pair.client.exec("cat", { stdin: data });
    assert.equal(r.code, 0);
    assert.equal(r.stdout.length, data.length);
    assert.equal(sha256hex(r.stdout), sha256hex(data));
    // And as a stream, through an interactive session.
    const session = await pair.client.openSession();
    await session.exec("cat; echo done >&2");
    const out = readAll(session.stdout);
    const err = readAll(session.stderr);
    await new Blob([data.subarray(0, 3 * 1024 * 1024)]).stream().pipeTo(
      session.stdin,
    );
    assert.equal(
      sha256hex(await out),
      sha256hex(data.subarray(0, 3 * 1024 * 1024)),
    );
    assert.equal(decoder.decode(await err), "done\n");
    assert.equal((await session.exit).code, 0);
  } finally {
    pair.close();
  }
});

Deno.test("flow control: a slow reader holds at most one window, and stalls only its channel", async () => {
  const window = 64 * 1024;
  const total = 1024 * 1024;
  const data = pseudoRandomBytes(total);
  let writeDone = false;
  const pair = connectionPair({ windowSize: window, maxPacketSize: 8192 }, {
    onSessionOpen: execHandler(async (session, command) => {
      const w = session.stdout.getWriter();
      if (command === "big") {
        await w.write(data);
        writeDone = true;
      } else await w.write(encoder.encode("small"));
      await w.close();
      await session.exit(0);
    }),
  });
  const sent = new Map<number, number>();
  pair.onMessage = (from, p) => {
    if (from === "server" && p[0] === Msg.CHANNEL_DATA) {
      const id = new DataView(p.buffer, p.byteOffset).getUint32(1);
      const len = new DataView(p.buffer, p.byteOffset).getUint32(5);
      assert.ok(len <= 8192, `packet of ${len} bytes exceeds our max packet`);
      sent.set(id, (sent.get(id) ?? 0) + len);
    }
  };
  try {
    const slow = await pair.client.openSession();
    await slow.exec("big");
    await tick(50);
    // Nobody reads: the server sent exactly one window and waits.
    assert.equal(sent.get(0), window);
    assert.equal(writeDone, false);
    // Another channel on the same connection is not held up.
    const other = await pair.client.exec("small");
    assert.equal(decoder.decode(other.stdout), "small");
    // Read slowly: what is sent never runs more than a window ahead of what was read.
    const reader = slow.stdout.getReader();
    let read = 0;
    const chunks: Uint8Array[] = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
      read += value.length;
      assert.ok(
        sent.get(0)! - read <= window,
        `${sent.get(0)! - read} bytes unread exceed the window`,
      );
      if (chunks.length % 16 === 0) await tick(1);
    }
    assert.equal(read, total);
    assert.equal(
      sha256hex(await new Blob(chunks as BlobPart[]).bytes()),
      sha256hex(data),
    );
    assert.equal(writeDone, true);
    assert.equal((await slow.exit).code, 0);
  } finally {
    pair.close();
  }
});

Deno.test("flow control: the client's writes wait for the server's window", async () => {
  const window = 32 * 1024;
  let server: ServerSession | undefined;
  const pair = connectionPair({}, {
    windowSize: window,
    onSessionOpen: (session) => {
      server = session;
      session.onRequest = (req) => req.type === "shell";
    },
  });
  try {
    const session = await pair.client.openSession();
    await session.shell();
    const writer = session.stdin.getWriter();
    let written = false;
    const write = writer.write(pseudoRandomBytes(200 * 1024)).then(() =>
      written = true
    );
    await tick(30);
    assert.equal(written, false);
    // The server reads: the write completes.
    const received = await (async () => {
      const r = server!.stdin.getReader();
      let n = 0;
      while (n < 200 * 1024) n += (await r.read()).value!.length;
      r.releaseLock();
      return n;
    })();
    await write;
    assert.equal(received, 200 * 1024);
    await writer.close();
    await server!.exit(0);
    assert.equal((await session.exit).code, 0);
  } finally {
    pair.close();
  }
});

Deno.test("EOF and CLOSE ordering loses no data: data, EOF, exit-status, CLOSE", async () => {
  const order: string[] = [];
  const pair = connectionPair({}, {
    onSessionOpen: execHandler(async (session, command) => {
      const out = session.stdout.getWriter();
      const err = session.stderr.getWriter();
      if (command === "status-first") {
        // exit-status before EOF is fine too; exit() sends EOF + CLOSE after.
        await out.write(encoder.encode("a".repeat(100_000)));
        await err.write(encoder.encode("e"));
        await session.exit(5);
        return;
      }
      await out.write(encoder.encode("x".repeat(100_000)));
      await err.write(encoder.encode("warn"));
      await out.close();
      await err.close();
      await session.exit(1);
    }),
  });
  pair.onMessage = (from, p) => {
    if (from !== "server") return;
    if (p[0] === Msg.CHANNEL_DATA) order.push("data");
    else if (p[0] === Msg.CHANNEL_EXTENDED_DATA) order.push("stderr");
    else if (p[0] === Msg.CHANNEL_EOF) order.push("eof");
    else if (p[0] === Msg.CHANNEL_REQUEST) order.push("request");
    else if (p[0] === Msg.CHANNEL_CLOSE) order.push("close");
  };
  try {
    const r = await pair.client.exec("normal");
    assert.equal(r.stdout.length, 100_000);
    assert.equal(decoder.decode(r.stderr), "warn");
    assert.equal(r.code, 1);
    assert.deepEqual(order.slice(order.lastIndexOf("stderr") + 1), [
      "eof",
      "request",
      "close",
    ]);
    order.length = 0;
    const s = await pair.client.exec("status-first");
    assert.equal(s.stdout.length, 100_000);
    assert.equal(decoder.decode(s.stderr), "e");
    assert.equal(s.code, 5);
    assert.deepEqual(order.slice(order.lastIndexOf("stderr") + 1), [
      "request",
      "eof",
      "close",
    ]);
  } finally {
    pair.close();
  }
});

Deno.test("closing with unread data does not hang; aborting stdin closes the channel", async () => {
  let serverWrite: Promise<unknown> | undefined;
  const pair = connectionPair({ windowSize: 16 * 1024 }, {
    onSessionOpen: (session) => {
      session.onRequest = (req) => {
        if (req.type !== "shell") return false;
        serverWrite = session.stdout.getWriter().write(
          new Uint8Array(1024 * 1024),
        )
          .then(() => "written", (e: Error) => e.message);
        return true;
      };
    },
  });
  try {
    const session = await pair.client.openSession();
    await session.shell();
    await tick(10);
    await session.close();
    assert.match(String(await serverWrite), /closed/);
    const status = await session.exit;
    assert.equal(status.code, null);
    // The unread data is still readable, then the stream ends.
    const rest = await readAll(session.stdout);
    assert.ok(rest.length <= 16 * 1024);
    assert.equal(pair.client.channelCount, 0);

    const second = await pair.client.openSession();
    await second.shell();
    await second.stdin.abort(new Error("changed my mind"));
    await second.exit;
    await second.stdout.cancel();
    assert.equal(pair.client.channelCount, 0);
    assert.equal(pair.server.channelCount, 0);
  } finally {
    pair.close();
  }
});

Deno.test("refused requests and opens", async () => {
  const pair = connectionPair({}, { onSessionOpen: sh });
  try {
    const session = await pair.client.openSession();
    await assert.rejects(
      session.subsystem("sftp"),
      /subsystem request refused by server/,
    );
    assert.equal(await session.setEnv("PATH", "/evil"), false);
    assert.equal(await session.setEnv("LC_ALL", "C"), true);
    await session.exec("exit 0");
    await assert.rejects(
      session.exec("echo again"),
      /exec request refused by server/,
    );
    await assert.rejects(session.shell(), /shell request refused by server/);
    await session.stdin.close();
    assert.equal((await session.exit).code, 0);
  } finally {
    pair.close();
  }

  const silent = connectionPair({}, { onSessionOpen: () => {} });
  try {
    await assert.rejects(
      silent.client.exec("true"),
      /exec request refused by server/,
    );
    assert.equal(silent.client.channelCount, 0);
  } finally {
    silent.close();
  }

  const closed = connectionPair({}, {});
  try {
    const err = await closed.client.openSession().catch((e) => e);
    assert.ok(err instanceof ChannelOpenError);
    assert.equal(err.reason, ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED);
    assert.equal(closed.client.channelCount, 0);
    // The server cannot open sessions on a client.
    const back = await closed.server.openSession().catch((e) => e);
    assert.ok(back instanceof ChannelOpenError);
  } finally {
    closed.close();
  }
});

Deno.test("env requests: accepted names reach the command, others are refused", async () => {
  const pair = connectionPair({}, {
    onSessionOpen: commandSessionHandler({
      shell: "/bin/sh",
      env: { FROM_SERVER: "yes" },
      acceptEnv: ["LANG", "LC_*", "FYNX_*"],
    }),
  });
  try {
    const r = await pair.client.exec(
      'echo "$LANG|$LC_TIME|$FYNX_X|$SECRET|$FROM_SERVER"',
      {
        env: { LANG: "C.UTF-8", LC_TIME: "C", FYNX_X: "1", SECRET: "no" },
      },
    );
    assert.equal(decoder.decode(r.stdout), "C.UTF-8|C|1||yes\n");
  } finally {
    pair.close();
  }
});

Deno.test({
  name: "pty-req + shell through a real PTY: stty size, window-change, signals",
  ignore: !ptySupported(),
  fn: async () => {
    const pair = connectionPair({}, { onSessionOpen: sh });
    try {
      const session = await pair.client.openSession();
      await session.requestPty({ term: "xterm", columns: 100, rows: 40 });
      await session.shell();
      const writer = session.stdin.getWriter();
      const reader = session.stdout.getReader();
      let text = "";
      const waitFor = async (needle: string) => {
        const deadline = Date.now() + 10_000;
        while (!text.includes(needle) && Date.now() < deadline) {
          const { value, done } = await reader.read();
          if (done) break;
          text += decoder.decode(value, { stream: true });
        }
        assert.ok(
          text.includes(needle),
          `no ${JSON.stringify(needle)} in ${JSON.stringify(text)}`,
        );
      };
      await writer.write(encoder.encode("stty size; echo T=$TERM\n"));
      await waitFor("40 100");
      await waitFor("T=xterm");
      await session.windowChange({ columns: 120, rows: 50 });
      await writer.write(encoder.encode("stty size\n"));
      await waitFor("50 120");
      await writer.write(encoder.encode("exit 3\n"));
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
      }
      assert.equal((await session.exit).code, 3);
      await writer.close().catch(() => {});

      // exec with a pty, then a signal.
      const r = await pair.client.exec("test -t 0 && echo tty", {
        pty: { columns: 10, rows: 5 },
      });
      assert.match(decoder.decode(r.stdout), /tty/);
      const s2 = await pair.client.openSession();
      await s2.requestPty();
      await s2.exec("sleep 30");
      const out = readAll(s2.stdout);
      await tick(100);
      await s2.signal("INT");
      await out;
      assert.equal((await s2.exit).signal, "INT");
    } finally {
      pair.close();
    }
  },
});

/** A Connection whose peer is the test itself: payloads it sends are recorded. */
function rawConnection(
  options: Omit<ConnectionOptions, "side"> & { side?: "client" | "server" } =
    {},
) {
  const sent: Uint8Array[] = [];
  const conn = new Connection({
    send: (p) => {
      sent.push(p.slice());
      return Promise.resolve();
    },
  }, { side: "client", ...options });
  return { conn, sent };
}

function expectViolation(
  conn: Connection,
  payload: Uint8Array,
  pattern: RegExp,
): void {
  let err: unknown = null;
  try {
    conn.dispatch(payload);
  } catch (e) {
    err = e;
  }
  assert.ok(
    err instanceof DisconnectError,
    `no DisconnectError for ${pattern}`,
  );
  assert.equal(err.reason, DisconnectReason.PROTOCOL_ERROR);
  assert.match(err.message, pattern);
}

const msg = (type: number, id: number) => new SshWriter().byte(type).uint32(id);

Deno.test("protocol violations throw DisconnectError(PROTOCOL_ERROR)", async () => {
  const window = 1024;
  const { conn, sent } = rawConnection({ windowSize: window });
  try {
    const opening = conn.openSession();
    assert.equal(sent[0][0], Msg.CHANNEL_OPEN);
    // A message for a channel still opening.
    expectViolation(
      conn,
      msg(Msg.CHANNEL_DATA, 0).string("x").bytes(),
      /before its open was confirmed/,
    );
    conn.dispatch(
      msg(Msg.CHANNEL_OPEN_CONFIRMATION, 0).uint32(5).uint32(100).uint32(32768)
        .bytes(),
    );
    const session = await opening;
    expectViolation(
      conn,
      msg(Msg.CHANNEL_DATA, 9).string("x").bytes(),
      /unknown channel 9/,
    );
    expectViolation(
      conn,
      msg(Msg.CHANNEL_DATA, 0).string(new Uint8Array(window + 1)).bytes(),
      /window is 1024/,
    );
    expectViolation(
      conn,
      msg(Msg.CHANNEL_WINDOW_ADJUST, 0).uint32(0xffff_ffff).bytes(),
      /overflows/,
    );
    expectViolation(
      conn,
      msg(Msg.CHANNEL_OPEN_CONFIRMATION, 0).uint32(0).uint32(0).uint32(0)
        .bytes(),
      /not opening/,
    );
    expectViolation(
      conn,
      msg(Msg.CHANNEL_OPEN_FAILURE, 5).uint32(1).string("").string("").bytes(),
      /not opening/,
    );
    expectViolation(
      conn,
      new Uint8Array([Msg.CHANNEL_DATA, 0, 0]),
      /Malformed CHANNEL_DATA/,
    );
    expectViolation(
      conn,
      msg(Msg.CHANNEL_EOF, 0).uint32(1).bytes(),
      /Malformed CHANNEL_EOF/,
    );
    expectViolation(conn, new Uint8Array([85]), /Unexpected message 85/);
    // Exactly the window is fine; one byte more is not.
    conn.dispatch(
      msg(Msg.CHANNEL_DATA, 0).string(new Uint8Array(window - 2)).bytes(),
    );
    conn.dispatch(
      msg(Msg.CHANNEL_EXTENDED_DATA, 0).uint32(1).string("ok").bytes(),
    );
    expectViolation(
      conn,
      msg(Msg.CHANNEL_DATA, 0).string("x").bytes(),
      /window is 0/,
    );
    // Reading gives the window back.
    const reader = session.stdout.getReader();
    assert.equal((await reader.read()).value!.length, window - 2);
    const adjust = sent.at(-1)!;
    assert.equal(adjust[0], Msg.CHANNEL_WINDOW_ADJUST);
    assert.equal(new DataView(adjust.buffer).getUint32(1), 5);
    assert.equal(new DataView(adjust.buffer).getUint32(5), window - 2);
    // Data after EOF.
    conn.dispatch(msg(Msg.CHANNEL_DATA, 0).string("ok").bytes());
    conn.dispatch(msg(Msg.CHANNEL_EOF, 0).bytes());
    expectViolation(
      conn,
      msg(Msg.CHANNEL_DATA, 0).string("late").bytes(),
      /after EOF/,
    );
    expectViolation(
      conn,
      msg(Msg.CHANNEL_EXTENDED_DATA, 0).uint32(1).string("late").bytes(),
      /after EOF/,
    );
    assert.equal(decoder.decode((await reader.read()).value), "ok");
    assert.equal((await reader.read()).done, true);
    assert.equal(decoder.decode(await readAll(session.stderr)), "ok");
    // We close first: the peer's CLOSE completes it, a second CLOSE is an error.
    const closing = session.close();
    assert.deepEqual(sent.slice(-2).map((p) => p[0]), [
      Msg.CHANNEL_EOF,
      Msg.CHANNEL_CLOSE,
    ]);
    expectViolation(
      conn,
      msg(Msg.CHANNEL_DATA, 0).string("x").bytes(),
      /after EOF/,
    );
    conn.dispatch(msg(Msg.CHANNEL_CLOSE, 0).bytes());
    await closing;
    expectViolation(
      conn,
      msg(Msg.CHANNEL_CLOSE, 0).bytes(),
      /unknown channel 0/,
    );
    assert.equal(conn.channelCount, 0);
    assert.deepEqual(await session.exit, {
      code: null,
      signal: null,
      coreDumped: false,
      message: "",
    });
  } finally {
    conn.close();
  }

  // The peer closes first and then sends more.
  const server = rawConnection({
    side: "server",
    onSessionOpen: (s) => s.onRequest = () => true,
  });
  try {
    server.conn.dispatch(
      new SshWriter().byte(Msg.CHANNEL_OPEN).string("session").uint32(7).uint32(
        0,
      ).uint32(0).bytes(),
    );
    const confirm = server.sent[0];
    assert.equal(confirm[0], Msg.CHANNEL_OPEN_CONFIRMATION);
    assert.equal(new DataView(confirm.buffer).getUint32(1), 7);
    server.conn.dispatch(
      msg(Msg.CHANNEL_WINDOW_ADJUST, 0).uint32(0xffff_ffff).bytes(),
    );
    expectViolation(
      server.conn,
      msg(Msg.CHANNEL_WINDOW_ADJUST, 0).uint32(1).bytes(),
      /overflows/,
    );
    server.conn.dispatch(msg(Msg.CHANNEL_CLOSE, 0).bytes());
    assert.equal(server.sent.at(-1)![0], Msg.CHANNEL_CLOSE);
    expectViolation(
      server.conn,
      msg(Msg.CHANNEL_CLOSE, 0).bytes(),
      /unknown channel 0/,
    );
    assert.equal(server.conn.channelCount, 0);
    // Unknown channel types are refused, not fatal.
    server.conn.dispatch(
      new SshWriter().byte(Msg.CHANNEL_OPEN).string("x11").uint32(8).uint32(0)
        .uint32(0).bytes(),
    );
    const refused = server.sent.at(-1)!;
    assert.equal(refused[0], Msg.CHANNEL_OPEN_FAILURE);
    assert.equal(
      new DataView(refused.buffer).getUint32(5),
      ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE,
    );
  } finally {
    server.conn.close();
  }
});

Deno.test("unsolicited replies are dropped; global requests", async () => {
  const pair = connectionPair({}, {
    onSessionOpen: sh,
    onGlobalRequest: (name, data) =>
      name === "echo@test" ? data : name === "yes@test",
  });
  try {
    const session = await pair.client.openSession();
    // Unsolicited CHANNEL_SUCCESS must not answer the next request.
    pair.client.dispatch(
      new SshWriter().byte(Msg.CHANNEL_SUCCESS).uint32(0).bytes(),
    );
    pair.client.dispatch(new Uint8Array([Msg.REQUEST_SUCCESS]));
    pair.client.dispatch(new Uint8Array([Msg.REQUEST_FAILURE]));
    assert.equal(await session.setEnv("NOT_ALLOWED", "x"), false);
    assert.equal(
      await pair.client.globalRequest("keepalive@openssh.com"),
      null,
    );
    assert.deepEqual(
      await pair.client.globalRequest("yes@test"),
      new Uint8Array(0),
    );
    assert.deepEqual(
      await pair.client.globalRequest("echo@test", new Uint8Array([1, 2, 3])),
      new Uint8Array([1, 2, 3]),
    );
    assert.equal(
      await pair.client.globalRequest("yes@test", undefined, {
        wantReply: false,
      }),
      null,
    );
    // Pipelined: replies come back in order.
    const many = await Promise.all([
      pair.client.globalRequest("yes@test"),
      pair.client.globalRequest("no@test"),
      pair.client.globalRequest("echo@test", new Uint8Array([9])),
    ]);
    assert.deepEqual(many, [new Uint8Array(0), null, new Uint8Array([9])]);
    // The server asks the client: no handler there, so refused.
    assert.equal(
      await pair.server.globalRequest("keepalive@openssh.com"),
      null,
    );
    await session.close();
  } finally {
    pair.close();
  }
});

Deno.test("many channels in parallel; ids are reused; channel limits", async () => {
  const pair = connectionPair({}, {
    onSessionOpen: execHandler(async (session, command) => {
      const w = session.stdout.getWriter();
      await w.write(encoder.encode(command.repeat(1000)));
      await w.close();
      await session.exit(Number(command) % 256);
    }),
  });
  try {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => pair.client.exec(String(i))),
    );
    results.forEach((r, i) => {
      assert.equal(r.code, i % 256);
      assert.equal(decoder.decode(r.stdout), String(i).repeat(1000));
    });
    assert.equal(pair.client.channelCount, 0);
    assert.equal(pair.server.channelCount, 0);
  } finally {
    pair.close();
  }

  const shells = connectionPair({}, { onSessionOpen: sh });
  try {
    const rs = await Promise.all(
      [1, 2, 3, 4, 5, 6].map((n) => shells.client.exec(`echo ${n}; exit ${n}`)),
    );
    assert.deepEqual(
      rs.map((r) => [decoder.decode(r.stdout), r.code]),
      [1, 2, 3, 4, 5, 6].map((n) => [`${n}\n`, n]),
    );
  } finally {
    shells.close();
  }

  const limited = connectionPair({ maxChannels: 2 }, {
    maxChannels: 3,
    onSessionOpen: () => {},
  });
  try {
    const a = await limited.client.openSession();
    const b = await limited.client.openSession();
    const local = await limited.client.openSession().catch((e) => e);
    assert.ok(local instanceof ChannelOpenError);
    assert.equal(local.reason, ChannelOpenFailure.RESOURCE_SHORTAGE);
    await a.close();
    await b.close();
    assert.equal(limited.client.channelCount, 0);
    assert.equal(limited.server.channelCount, 0);
  } finally {
    limited.close();
  }

  const serverLimited = connectionPair({}, {
    maxChannels: 1,
    onSessionOpen: () => {},
  });
  try {
    const a = await serverLimited.client.openSession();
    const refused = await serverLimited.client.openSession().catch((e) => e);
    assert.ok(refused instanceof ChannelOpenError);
    assert.equal(refused.reason, ChannelOpenFailure.RESOURCE_SHORTAGE);
    assert.equal(serverLimited.client.channelCount, 1);
    await a.close();
    // The id freed by the refusal and the close is used again.
    const again = await serverLimited.client.openSession();
    await again.close();
  } finally {
    serverLimited.close();
  }
});

Deno.test("closing the connection fails pending operations and kills the command", async () => {
  const pair = connectionPair({}, {
    onSessionOpen: (session) => {
      // Accepts exec but never answers anything else.
      session.onRequest = (req) =>
        req.type === "exec" ? new Promise<boolean>(() => {}) : false;
    },
  });
  const pending = pair.client.exec("hang");
  await tick(10);
  assert.equal(pair.client.channelCount, 1);
  const reason = new DisconnectError(
    DisconnectReason.CONNECTION_LOST,
    "link died",
  );
  pair.close(reason);
  await assert.rejects(pending, (e) => e === reason);
  await assert.rejects(pair.client.openSession(), (e) => e === reason);
  await assert.rejects(pair.client.globalRequest("x"), (e) => e === reason);
  assert.equal(pair.client.channelCount, 0);
  assert.equal(pair.server.channelCount, 0);
  pair.client.dispatch(new Uint8Array([Msg.CHANNEL_DATA, 0, 0, 0, 0])); // ignored once closed

  // A running command is killed when the connection goes away.
  const real = connectionPair({}, { onSessionOpen: sh });
  const session = await real.client.openSession();
  await session.exec("echo $$; exec sleep 30");
  const reader = session.stdout.getReader();
  let line = "";
  while (!line.includes("\n")) {
    line += decoder.decode((await reader.read()).value);
  }
  const pid = Number(line.trim());
  real.close();
  await assert.rejects(session.exit);
  await assert.rejects(reader.read());
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    try {
      await Deno.stat(`/proc/${pid}`);
      await tick(20);
    } catch {
      break;
    }
  }
  await tick(50); // let the handler release the pipes after the reap
  await assert.rejects(Deno.stat(`/proc/${pid}`));
});
