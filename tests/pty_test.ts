// Tests for connection/pty.ts: a real pseudo-terminal through Deno FFI.
// Skipped (ignored) where ptySupported() is false: not Linux/macOS, libc not
// loadable, or no --allow-ffi.
import assert from "node:assert/strict";
import {
  decodeTerminalModes,
  type PtyProcess,
  ptySupported,
  spawnPty,
} from "../connection/pty.ts";

const ignore = !ptySupported();
const hasBash = !ignore && (() => {
  try {
    return Deno.statSync("/bin/bash").isFile;
  } catch {
    return false;
  }
})();

/** Rejects after `ms` with a message naming what was awaited. */
async function within<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Collects a terminal's output as text and lets a test wait for a pattern. */
class Screen {
  text = "";
  readonly done: Promise<void>;
  #wake: () => void = () => {};

  constructor(readable: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of readable) {
          this.text += decoder.decode(chunk, { stream: true });
          this.#wake();
        }
      } finally {
        this.#wake();
      }
    })();
  }

  /** Waits until `pattern` matches the output after `from`; returns the match. */
  async waitFor(
    pattern: RegExp,
    from = 0,
    ms = 10_000,
  ): Promise<RegExpMatchArray> {
    const search = async (): Promise<RegExpMatchArray> => {
      for (;;) {
        const match = this.text.slice(from).match(pattern);
        if (match !== null) return match;
        const next = new Promise<void>((resolve) => this.#wake = resolve);
        const ended = await Promise.race([
          next.then(() => false),
          this.done.then(() => true),
        ]);
        if (ended && this.text.slice(from).match(pattern) === null) {
          throw new Error(
            `Output ended without ${pattern}: ${
              JSON.stringify(this.text.slice(-500))
            }`,
          );
        }
      }
    };
    return await within(
      search(),
      ms,
      `${pattern} in ${JSON.stringify(this.text.slice(-300))}`,
    );
  }
}

/** Sends text to the terminal. */
async function type(pty: PtyProcess, text: string): Promise<void> {
  const writer = pty.writable.getWriter();
  try {
    await within(
      writer.write(new TextEncoder().encode(text)),
      10_000,
      `writing ${JSON.stringify(text)}`,
    );
  } finally {
    writer.releaseLock();
  }
}

/** Makes sure a test leaves nothing running, whatever happened. */
async function cleanup(pty: PtyProcess, screen?: Screen): Promise<void> {
  try {
    pty.kill("SIGKILL");
  } catch {
    // Already gone.
  }
  pty.close();
  await within(pty.status, 10_000, "the child to be reaped");
  if (screen !== undefined) {
    await within(screen.done, 10_000, "the output to end");
  }
}

function bash(options: { rows?: number; cols?: number } = {}): PtyProcess {
  return spawnPty("bash", {
    args: ["--norc", "--noprofile", "-i"],
    env: { PS1: "$ ", TERM: "dumb", HISTFILE: "/dev/null" },
    ...options,
  });
}

Deno.test({
  name:
    "spawnPty() gives bash a terminal with size, resize, tty, job control and exit code",
  ignore: !hasBash,
  async fn() {
    const pty = bash();
    const screen = new Screen(pty.readable);
    try {
      assert.ok(pty.pid > 0);
      // Markers use arithmetic so the echoed command line never matches.
      let mark = screen.text.length;
      await type(pty, "stty size; echo SIZE-$((1+1))\n");
      let m = await screen.waitFor(/(\d+) (\d+)\r\nSIZE-2/, mark);
      assert.deepEqual([m[1], m[2]], ["24", "80"]);

      mark = screen.text.length;
      pty.resize({ rows: 50, cols: 132 });
      await type(pty, "stty size; echo SIZE-$((1+2))\n");
      m = await screen.waitFor(/(\d+) (\d+)\r\nSIZE-3/, mark);
      assert.deepEqual([m[1], m[2]], ["50", "132"]);

      mark = screen.text.length;
      await type(pty, "tty; echo TTY-$((2+2))\n");
      m = await screen.waitFor(/(\/dev\/\S+)\r\nTTY-4/, mark);
      assert.match(m[1], /^\/dev\/(pts\/\d+|ttys\d+)$/);

      // Job control only works when bash owns a controlling terminal.
      mark = screen.text.length;
      await type(pty, "sleep 30 &\n");
      await type(pty, "jobs; echo JOBS-$((2+3))\n");
      m = await screen.waitFor(
        /\[1\]\+?\s+Running\s+sleep 30 &\r\nJOBS-5/,
        mark,
      );
      mark = screen.text.length;
      await type(pty, "kill %1; wait; echo KILLED-$((3+3))\n");
      await screen.waitFor(/KILLED-6/, mark);

      await type(pty, "exit 3\n");
      const exit = await within(pty.status, 10_000, "bash to exit");
      assert.deepEqual(exit, { code: 3, signal: null, coreDumped: false });
      await within(screen.done, 10_000, "the output to end");
    } finally {
      await cleanup(pty, screen);
    }
  },
});

Deno.test({
  name:
    "spawnPty() reports the signal that ended the child (kill defaults to TERM)",
  ignore,
  async fn() {
    const pty = spawnPty("sleep", { args: ["30"] });
    const screen = new Screen(pty.readable);
    try {
      pty.kill();
      const exit = await within(pty.status, 10_000, "sleep to die");
      assert.deepEqual(exit, { code: null, signal: "TERM", coreDumped: false });
      await within(screen.done, 10_000, "the output to end");
      // After reaping, kill() is a no-op rather than hitting a reused pid.
      pty.kill("SIGKILL");
    } finally {
      await cleanup(pty, screen);
    }
  },
});

Deno.test({
  name: "spawnPty() delivers 1 MiB of output completely",
  ignore,
  async fn() {
    const size = 1024 * 1024;
    const pty = spawnPty("sh", {
      args: ["-c", `head -c ${size} /dev/zero | tr '\\000' x`],
    });
    try {
      const count = (async () => {
        let n = 0;
        for await (const chunk of pty.readable) {
          for (const byte of chunk) if (byte === 0x78) n++;
        }
        return n;
      })();
      assert.equal(await within(count, 30_000, "1 MiB of output"), size);
      assert.deepEqual(await within(pty.status, 10_000, "sh to exit"), {
        code: 0,
        signal: null,
        coreDumped: false,
      });
    } finally {
      await cleanup(pty);
    }
  },
});

Deno.test({
  name: "spawnPty() writable handles input larger than the terminal buffer",
  ignore,
  async fn() {
    const lines = 2000;
    const pty = spawnPty("sh", {
      args: [
        "-c",
        `stty -echo; n=$(head -n ${lines} | wc -c); echo "COUNT=$((n))"`,
      ],
    });
    const screen = new Screen(pty.readable);
    try {
      // 200,000 bytes: far more than the kernel's pty buffer, so the writer
      // must see EAGAIN and wait for room.
      const line = "y".repeat(99) + "\n";
      await type(pty, line.repeat(lines));
      const m = await screen.waitFor(/COUNT=(\d+)/, 0, 20_000);
      assert.equal(m[1], "200000");
      assert.equal((await within(pty.status, 10_000, "sh to exit")).code, 0);
    } finally {
      await cleanup(pty, screen);
    }
  },
});

Deno.test({
  name: "PtyProcess.close() hangs up a running child and ends readable",
  ignore,
  async fn() {
    const pty = spawnPty("sleep", { args: ["30"] });
    const screen = new Screen(pty.readable);
    try {
      pty.close();
      pty.close();
      await within(screen.done, 10_000, "the output to end");
      const exit = await within(pty.status, 10_000, "sleep to get SIGHUP");
      assert.equal(exit.signal, "HUP");
      pty.resize({ rows: 1, cols: 1 }); // no-op once closed
      const writer = pty.writable.getWriter();
      await assert.rejects(writer.write(new Uint8Array([1])), /closed/);
      writer.releaseLock();
    } finally {
      await cleanup(pty, screen);
    }
  },
});

Deno.test({
  name: "spawnPty() applies cwd, env and terminal modes",
  ignore,
  async fn() {
    // ECHO (53) off, ICANON (51) on, VINTR (1) = ^B (2), TTY_OP_END.
    const modes = new Uint8Array([
      53,
      0,
      0,
      0,
      0,
      51,
      0,
      0,
      0,
      1,
      1,
      0,
      0,
      0,
      2,
      0,
    ]);
    const pty = spawnPty("sh", {
      args: ["-c", 'pwd; echo "v=$FYNX_PTY_TEST"; stty -a'],
      cwd: "/",
      env: { FYNX_PTY_TEST: "hello world" },
      terminalModes: modes,
      rows: 7,
      cols: 33,
    });
    const screen = new Screen(pty.readable);
    try {
      await within(screen.done, 10_000, "the output to end");
      assert.match(screen.text, /^\/\r\nv=hello world\r\n/);
      assert.match(screen.text, /rows 7; columns 33/);
      assert.match(screen.text, /(^|\s)-echo(\s|$)/);
      assert.match(screen.text, /(^|\s)icanon(\s|$)/);
      assert.match(screen.text, /intr = \^B/);
      assert.equal((await within(pty.status, 10_000, "sh to exit")).code, 0);
    } finally {
      await cleanup(pty, screen);
    }
  },
});

Deno.test({
  name: "spawnPty() rejects bad arguments and unknown commands",
  ignore,
  fn() {
    assert.throws(() => spawnPty(""), TypeError);
    assert.throws(() => spawnPty("sh", { args: ["a\0b"] }), TypeError);
    assert.throws(() => spawnPty("sh", { env: { "A=B": "c" } }), TypeError);
    assert.throws(() => spawnPty("sh", { rows: 70000 }), RangeError);
    assert.throws(() => spawnPty("sh", { cols: 1.5 }), TypeError);
    assert.throws(
      () => spawnPty("fynx-no-such-command-here"),
      /posix_spawnp\(fynx-no-such-command-here\) failed: .*errno 2/,
    );
    assert.throws(
      () => spawnPty("sh", { cwd: "/fynx/no/such/dir" }),
      /errno 2/,
    );
  },
});

Deno.test({
  name: "PtyProcess.resize() and kill() validate their arguments",
  ignore,
  async fn() {
    const pty = spawnPty("sleep", { args: ["30"] });
    const screen = new Screen(pty.readable);
    try {
      assert.throws(() => pty.resize({ rows: -1, cols: 80 }), RangeError);
      assert.throws(
        () => pty.resize({ rows: 24, cols: Number.NaN }),
        TypeError,
      );
      assert.throws(() => pty.kill("SIGNOPE" as Deno.Signal), TypeError);
      pty.kill("SIGKILL");
      assert.equal(
        (await within(pty.status, 10_000, "sleep to die")).signal,
        "KILL",
      );
    } finally {
      await cleanup(pty, screen);
    }
  },
});

Deno.test("decodeTerminalModes() follows RFC 4254 section 8", () => {
  assert.deepEqual(
    [...decodeTerminalModes(
      new Uint8Array([53, 0, 0, 0, 1, 128, 0, 0, 0x96, 0, 0]),
    )],
    [[53, 1], [128, 38400]],
  );
  // Opcodes 160..255 have no defined argument: decoding stops there.
  assert.deepEqual([...decodeTerminalModes(new Uint8Array([200, 1, 2]))], []);
  assert.deepEqual([...decodeTerminalModes(new Uint8Array([]))], []);
  assert.throws(
    () => decodeTerminalModes(new Uint8Array([53, 0, 0])),
    SyntaxError,
  );
});
