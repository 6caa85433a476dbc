/**
 * A real pseudo-terminal for the server's `pty-req` and `shell` requests
 * (RFC 4254 sections 6.2 and 6.5), built on the C library through Deno FFI.
 *
 * How the child gets its terminal: `posix_openpt` gives the master side;
 * `posix_spawnp` starts the command with `POSIX_SPAWN_SETSID`, so the child
 * leads a new session, and with a file action that opens the slave's path
 * onto fd 0 (then duplicates it to 1 and 2). The first terminal a session
 * leader without one opens becomes its controlling terminal, so the shell
 * gets job control, `SIGINT` from Ctrl-C and `SIGWINCH` on resize, with no
 * code running in the child between fork and exec.
 *
 * All descriptors this module opens are close-on-exec and non-blocking. The
 * only calls that may wait run on Deno's worker threads (`nonblocking` FFI):
 * `poll` on the master plus a private "wake" pipe, and `waitpid`. Closing the
 * terminal writes to the wake pipe, so every such call returns before the
 * descriptors are closed and the library is released; nothing is left in
 * flight for Deno's op sanitizer to report.
 *
 * Needs `--allow-ffi` (and `--allow-env` unless `clearEnv` is set).
 *
 * @module
 */

import { acquireLibc, type Libc, releaseLibc } from "./_libc.ts";

/** Options for {@linkcode spawnPty}. */
export interface PtyOptions {
  /** Arguments after the command name. @default [] */
  args?: string[];
  /**
   * Variables to set for the child, on top of this process's environment
   * (or instead of it with `clearEnv`). Set `TERM` from the `pty-req` here.
   * @default {}
   */
  env?: Record<string, string>;
  /** Start from an empty environment instead of this process's. @default false */
  clearEnv?: boolean;
  /**
   * Working directory of the child. Needs
   * `posix_spawn_file_actions_addchdir_np` (glibc 2.29+, macOS 10.15+).
   * @default the current directory
   */
  cwd?: string;
  /** Terminal width in characters. @default 80 */
  cols?: number;
  /** Terminal height in rows. @default 24 */
  rows?: number;
  /** Terminal width in pixels. @default 0 */
  widthPixels?: number;
  /** Terminal height in pixels. @default 0 */
  heightPixels?: number;
  /**
   * Encoded terminal modes from the `pty-req` (RFC 4254 section 8), applied
   * before the child starts. Linux only; ignored elsewhere.
   * @default none
   */
  terminalModes?: Uint8Array;
}

/** How the child ended, from `waitpid`. */
export interface PtyExit {
  /** Exit code when the child exited normally, else `null`. */
  code: number | null;
  /**
   * Name of the signal that ended the child without the `SIG` prefix, as the
   * SSH `exit-signal` request carries it (RFC 4254 section 6.10): `"TERM"`,
   * `"KILL"`, ... A signal number with no name is given as its decimal
   * number. `null` when the child exited normally.
   */
  signal: string | null;
  /** Whether the child dumped core. */
  coreDumped: boolean;
}

/** A child process running on a pseudo-terminal. */
export interface PtyProcess {
  /** Process id of the child, which also leads its session and process group. */
  readonly pid: number;
  /**
   * What the child writes to the terminal. Ends when the terminal hangs up
   * (every process closed the slave side) or after {@linkcode close}.
   * Cancelling it closes the terminal.
   */
  readonly readable: ReadableStream<Uint8Array>;
  /**
   * Input to the terminal, as if typed. Closing it does nothing to the
   * terminal (a terminal has no half-close; send `\x04` for end-of-file).
   * Writes fail once the terminal is closed or hung up.
   */
  readonly writable: WritableStream<Uint8Array>;
  /** Sets the window size; the kernel sends `SIGWINCH` to the foreground job. No-op after close. */
  resize(
    size: {
      cols: number;
      rows: number;
      widthPixels?: number;
      heightPixels?: number;
    },
  ): void;
  /**
   * Sends a signal to the child's process group. Does nothing once the child
   * has been reaped (its pid may belong to someone else by then) or when the
   * group is gone.
   * @default "SIGTERM"
   */
  kill(signal?: Deno.Signal): void;
  /** Settles when the child exits. */
  readonly status: Promise<PtyExit>;
  /**
   * Closes the master side (idempotent). The child's session gets `SIGHUP`
   * from the kernel, `readable` ends and writes fail. Called automatically
   * once the child has exited and `readable` reached its end.
   */
  close(): void;
}

const encoder = new TextEncoder();

function cString(value: string, what: string): Uint8Array<ArrayBuffer> {
  if (value.includes("\0")) {
    throw new TypeError(
      `Cannot spawn a terminal: ${what} contains a NUL byte: ${
        JSON.stringify(value)
      }`,
    );
  }
  const bytes = new Uint8Array(encoder.encode(value).length + 1);
  encoder.encodeInto(value, bytes);
  return bytes;
}

/** A NULL-terminated `char *[]`; the strings must stay referenced while it is used. */
function pointerArray(
  strings: Uint8Array<ArrayBuffer>[],
): BigUint64Array<ArrayBuffer> {
  const array = new BigUint64Array(strings.length + 1);
  strings.forEach((s, i) => {
    array[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s)));
  });
  return array;
}

function checkDimension(value: unknown, name: string): number {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new TypeError(
      `Invalid terminal ${name}: ${String(value)} is not an integer`,
    );
  }
  if (value < 0 || value > 0xffff) {
    throw new RangeError(
      `Invalid terminal ${name}: ${value} is outside 0..65535`,
    );
  }
  return value;
}

function winsize(
  size: {
    cols?: number;
    rows?: number;
    widthPixels?: number;
    heightPixels?: number;
  },
): Uint8Array<ArrayBuffer> {
  // struct winsize { unsigned short ws_row, ws_col, ws_xpixel, ws_ypixel; }
  const buf = new Uint16Array([
    checkDimension(size.rows ?? 24, "rows"),
    checkDimension(size.cols ?? 80, "cols"),
    checkDimension(size.widthPixels ?? 0, "widthPixels"),
    checkDimension(size.heightPixels ?? 0, "heightPixels"),
  ]);
  return new Uint8Array(buf.buffer);
}

function errnoError(libc: Libc, call: string, code: number): Error {
  return new Error(`Pseudo-terminal ${call} failed: ${libc.describe(code)}`);
}

let supported: boolean | undefined;

/**
 * Whether {@linkcode spawnPty} can work here: Linux (x86_64, aarch64) or
 * macOS, with the C library loadable and FFI permitted. Tests use it to skip
 * cleanly elsewhere. The answer is cached.
 *
 * @example Skip when there is no pseudo-terminal support
 * ```ts ignore
 * import { ptySupported } from "./pty.ts";
 * Deno.test({ name: "shell", ignore: !ptySupported(), fn() {} });
 * ```
 */
export function ptySupported(): boolean {
  if (supported !== undefined) return supported;
  try {
    if (Deno.permissions.querySync?.({ name: "ffi" }).state !== "granted") {
      return supported = false;
    }
    acquireLibc();
    releaseLibc();
    supported = true;
  } catch {
    supported = false;
  }
  return supported;
}

/**
 * Starts `command` on a new pseudo-terminal. The command is looked up in
 * `PATH` like `posix_spawnp` does (the `PATH` of this process, not of
 * `options.env`) unless it contains a `/`.
 *
 * Either read `readable` to its end and let the child exit, or call
 * `close()`; in both cases await `status` (kill the child first if needed)
 * so that no `waitpid` is left running.
 *
 * @throws {TypeError} bad arguments (NUL bytes, `=` in an env name).
 * @throws {RangeError} a window dimension outside 0..65535.
 * @throws {Error} the system refused (message names the call and errno),
 * e.g. the command was not found.
 *
 * @example Run a command on a terminal
 * ```ts ignore
 * import { spawnPty } from "./pty.ts";
 * const pty = spawnPty("sh", { args: ["-c", "stty size"], rows: 30, cols: 100 });
 * const text = await new Response(pty.readable).text(); // "30 100\r\n"
 * console.log(text, await pty.status); // { code: 0, signal: null, ... }
 * ```
 */
export function spawnPty(
  command: string,
  options: PtyOptions = {},
): PtyProcess {
  if (typeof command !== "string" || command === "") {
    throw new TypeError(
      `Cannot spawn a terminal: invalid command ${JSON.stringify(command)}`,
    );
  }
  const size = winsize(options);
  const file = cString(command, "command");
  const argStrings = [file];
  for (const arg of options.args ?? []) {
    if (typeof arg !== "string") {
      throw new TypeError(
        `Cannot spawn a terminal: argument ${String(arg)} is not a string`,
      );
    }
    argStrings.push(cString(arg, "argument"));
  }
  const vars: Record<string, string> = options.clearEnv
    ? {}
    : Deno.env.toObject();
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (name === "" || name.includes("=")) {
      throw new TypeError(
        `Cannot spawn a terminal: invalid environment name ${
          JSON.stringify(name)
        }`,
      );
    }
    vars[name] = String(value);
  }
  const envStrings = Object.entries(vars).map(([k, v]) =>
    cString(`${k}=${v}`, "environment variable")
  );
  const cwd = options.cwd === undefined
    ? undefined
    : cString(options.cwd, "cwd");
  return new Pty(
    file,
    argStrings,
    envStrings,
    cwd,
    size,
    options.terminalModes,
  );
}

class Pty implements PtyProcess {
  readonly pid: number;
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly status: Promise<PtyExit>;

  readonly #libc: Libc;
  readonly #master: number;
  readonly #wakeRead: number;
  readonly #wakeWrite: number;
  /** close() was called (or the terminal finished): stop all I/O. */
  #closing = false;
  #fdsClosed = false;
  #released = false;
  #exited = false;
  #readEnded = false;
  /** `poll` calls running on worker threads. */
  #inFlight = 0;
  #pulling = false;
  #controller?: ReadableStreamDefaultController<Uint8Array>;
  readonly #readBuffer = new Uint8Array(64 * 1024);

  constructor(
    file: Uint8Array<ArrayBuffer>,
    argStrings: Uint8Array<ArrayBuffer>[],
    envStrings: Uint8Array<ArrayBuffer>[],
    cwd: Uint8Array<ArrayBuffer> | undefined,
    size: Uint8Array<ArrayBuffer>,
    modes: Uint8Array | undefined,
  ) {
    const libc = acquireLibc();
    const s = libc.symbols;
    const c = libc.constants;
    const toClose: number[] = [];
    try {
      const fail = (call: string, code = libc.errno()): never => {
        throw errnoError(libc, call, code);
      };
      const linux = Deno.build.os === "linux";
      // Linux accepts O_CLOEXEC and O_NONBLOCK here (it is an open of
      // /dev/ptmx); macOS wants them set afterwards.
      const master = s.posix_openpt(
        c.O_RDWR | c.O_NOCTTY | (linux ? c.O_CLOEXEC | c.O_NONBLOCK : 0),
      );
      if (master < 0) fail("posix_openpt");
      toClose.push(master);
      if (!linux) {
        setFlags(libc, master, fail);
      }
      if (s.grantpt(master) !== 0) fail("grantpt");
      if (s.unlockpt(master) !== 0) fail("unlockpt");
      const name = slaveName(libc, master, fail);

      // Hold the slave open ourselves until the child has it, so the master
      // never sees a hang-up in between, and set size and modes on it first.
      const slave = s.open(name, c.O_RDWR | c.O_NOCTTY | c.O_CLOEXEC);
      if (slave < 0) fail(`open(${decodeCString(name)})`);
      toClose.push(slave);
      if (s.ioctl(slave, c.TIOCSWINSZ, ...padding(), size) !== 0) {
        fail("ioctl(TIOCSWINSZ)");
      }
      if (modes !== undefined && linux) applyModes(libc, slave, modes, fail);

      const pipeFds = new Int32Array(2);
      if (s.pipe(pipeFds) !== 0) fail("pipe");
      toClose.push(pipeFds[0], pipeFds[1]);
      setFlags(libc, pipeFds[0], fail);
      setFlags(libc, pipeFds[1], fail);

      const pid = spawn(libc, file, argStrings, envStrings, cwd, name, fail);
      s.close(slave);
      toClose.splice(toClose.indexOf(slave), 1);

      this.pid = pid;
      this.#libc = libc;
      this.#master = master;
      this.#wakeRead = pipeFds[0];
      this.#wakeWrite = pipeFds[1];
    } catch (error) {
      for (const fd of toClose) s.close(fd);
      releaseLibc();
      throw error;
    }

    this.status = this.#wait();
    // Mark as handled: a caller who never awaits status must not crash the
    // process with an unhandled rejection (waitpid fails only if someone
    // else reaped the child).
    this.status.catch(() => {});
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: (controller) => this.#pull(controller),
      cancel: () => this.close(),
    }, { highWaterMark: 0 });
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => this.#write(chunk),
    });
  }

  resize(
    size: {
      cols: number;
      rows: number;
      widthPixels?: number;
      heightPixels?: number;
    },
  ): void {
    if (size === null || typeof size !== "object") {
      throw new TypeError(
        `Cannot resize terminal: invalid size ${String(size)}`,
      );
    }
    const buf = winsize({
      cols: checkDimension(size.cols, "cols"),
      rows: checkDimension(size.rows, "rows"),
      widthPixels: size.widthPixels,
      heightPixels: size.heightPixels,
    });
    if (this.#closing) return;
    const s = this.#libc.symbols;
    if (
      s.ioctl(
        this.#master,
        this.#libc.constants.TIOCSWINSZ,
        ...padding(),
        buf,
      ) !== 0
    ) {
      throw errnoError(this.#libc, "ioctl(TIOCSWINSZ)", this.#libc.errno());
    }
  }

  kill(signal: Deno.Signal = "SIGTERM"): void {
    const number = this.#libc.constants.signals[signal];
    if (number === undefined) {
      throw new TypeError(
        `Cannot signal terminal process: unknown signal ${
          JSON.stringify(signal)
        } on ${Deno.build.os}`,
      );
    }
    if (this.#exited) return;
    if (this.#libc.symbols.kill(-this.pid, number) !== 0) {
      const code = this.#libc.errno();
      if (code === this.#libc.constants.ESRCH) return;
      throw errnoError(this.#libc, `kill(-${this.pid}, ${signal})`, code);
    }
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    if (!this.#fdsClosed) {
      // Wake every poll() in flight; the byte is never read.
      this.#libc.symbols.write(this.#wakeWrite, new Uint8Array(1), 1n);
    }
    if (!this.#pulling) this.#endRead();
    this.#finish();
  }

  /** Ends `readable` (keeping chunks already queued). */
  #endRead(): void {
    if (this.#readEnded) return;
    this.#readEnded = true;
    try {
      this.#controller?.close();
    } catch {
      // Already errored or closed.
    }
  }

  /** Closes descriptors and releases the library once nothing uses them. */
  #finish(): void {
    if (!this.#closing && this.#readEnded && this.#exited) {
      // The child is gone and its output drained: close on our own.
      this.close();
      return;
    }
    const s = this.#libc.symbols;
    if (this.#closing && this.#inFlight === 0 && !this.#fdsClosed) {
      this.#fdsClosed = true;
      s.close(this.#master);
      s.close(this.#wakeRead);
      s.close(this.#wakeWrite);
    }
    if (this.#fdsClosed && this.#exited && !this.#released) {
      this.#released = true;
      releaseLibc();
    }
  }

  /** Waits (on a worker thread) until the master is ready or we are woken. */
  async #poll(events: number): Promise<void> {
    // struct pollfd { int fd; short events; short revents; } x 2
    const fds = new Int32Array(4);
    const view = new DataView(fds.buffer);
    view.setInt32(0, this.#master, LE);
    view.setInt16(4, events, LE);
    view.setInt32(8, this.#wakeRead, LE);
    view.setInt16(12, this.#libc.constants.POLLIN, LE);
    this.#inFlight++;
    try {
      // A -1 (EINTR) just sends the caller round its loop again.
      await this.#libc.symbols.poll(fds, 2, -1);
    } finally {
      this.#inFlight--;
      this.#finish();
    }
  }

  async #pull(
    controller: ReadableStreamDefaultController<Uint8Array>,
  ): Promise<void> {
    const libc = this.#libc;
    const { EAGAIN, EINTR, EIO } = libc.constants;
    this.#pulling = true;
    try {
      for (;;) {
        if (this.#closing) return this.#endRead();
        const n = Number(
          libc.symbols.read(
            this.#master,
            this.#readBuffer,
            BigInt(this.#readBuffer.length),
          ),
        );
        if (n > 0) {
          controller.enqueue(this.#readBuffer.slice(0, n));
          return;
        }
        if (n === 0) return this.#endRead();
        const code = libc.errno();
        if (code === EAGAIN) {
          await this.#poll(libc.constants.POLLIN);
        } else if (code === EIO) {
          // Linux reports the slave's hang-up as EIO after the last byte.
          return this.#endRead();
        } else if (code !== EINTR) {
          this.#readEnded = true;
          controller.error(errnoError(libc, "read", code));
          return;
        }
      }
    } finally {
      this.#pulling = false;
      this.#finish();
    }
  }

  async #write(chunk: Uint8Array): Promise<void> {
    if (!(chunk instanceof Uint8Array)) {
      throw new TypeError(
        `Cannot write to terminal: expected Uint8Array, got ${typeof chunk}`,
      );
    }
    const libc = this.#libc;
    const { EAGAIN, EINTR } = libc.constants;
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#closing) {
        throw new Error("Cannot write to terminal: it is closed");
      }
      const rest = chunk.subarray(offset);
      const n = Number(
        libc.symbols.write(this.#master, rest, BigInt(rest.length)),
      );
      if (n >= 0) {
        offset += n;
        continue;
      }
      const code = libc.errno();
      if (code === EAGAIN) await this.#poll(libc.constants.POLLOUT);
      else if (code !== EINTR) throw errnoError(libc, "write", code);
    }
  }

  async #wait(): Promise<PtyExit> {
    const libc = this.#libc;
    const s = libc.symbols;
    try {
      const status = new Int32Array(1);
      for (;;) {
        const pid = await s.waitpid_async(this.pid, status, 0);
        if (pid === this.pid) return decodeStatus(libc, status[0]);
        // The worker thread's errno is out of reach; ask again here without
        // blocking to learn whether it was EINTR (retry) or a real error.
        const again = s.waitpid(this.pid, status, libc.constants.WNOHANG);
        if (again === this.pid) return decodeStatus(libc, status[0]);
        if (again < 0) {
          const code = libc.errno();
          if (code !== libc.constants.EINTR) {
            throw errnoError(libc, `waitpid(${this.pid})`, code);
          }
        }
      }
    } finally {
      this.#exited = true;
      this.#finish();
    }
  }
}

/** Host byte order, for C structs built with a DataView. */
const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Extra arguments for variadic calls on Apple arm64 (see `_libc.ts`). */
function padding(): bigint[] {
  return Deno.build.os === "darwin" && Deno.build.arch === "aarch64"
    ? [0n, 0n, 0n, 0n, 0n, 0n]
    : [];
}

function setFlags(libc: Libc, fd: number, fail: (call: string) => never): void {
  const s = libc.symbols;
  const c = libc.constants;
  if (s.fcntl(fd, c.F_SETFD, ...padding(), BigInt(c.FD_CLOEXEC)) !== 0) {
    fail("fcntl(F_SETFD)");
  }
  const flags = s.fcntl(fd, c.F_GETFL, ...padding(), 0n);
  if (flags < 0) fail("fcntl(F_GETFL)");
  if (
    s.fcntl(fd, c.F_SETFL, ...padding(), BigInt(flags | c.O_NONBLOCK)) !== 0
  ) fail("fcntl(F_SETFL)");
}

function slaveName(
  libc: Libc,
  master: number,
  fail: (call: string, code?: number) => never,
): Uint8Array<ArrayBuffer> {
  const s = libc.symbols;
  if (s.ptsname_r !== null) {
    const buf = new Uint8Array(1024);
    const rc = s.ptsname_r(master, buf, BigInt(buf.length));
    // glibc returns the error number; older macOS returns -1 and sets errno.
    if (rc !== 0) fail("ptsname_r", rc > 0 ? rc : libc.errno());
    return buf.slice(0, buf.indexOf(0) + 1);
  }
  const p = s.ptsname(master);
  if (p === null) fail("ptsname");
  return cString(Deno.UnsafePointerView.getCString(p!), "terminal name");
}

function decodeCString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

function spawn(
  libc: Libc,
  file: Uint8Array<ArrayBuffer>,
  argStrings: Uint8Array<ArrayBuffer>[],
  envStrings: Uint8Array<ArrayBuffer>[],
  cwd: Uint8Array<ArrayBuffer> | undefined,
  ttyName: Uint8Array<ArrayBuffer>,
  fail: (call: string, code?: number) => never,
): number {
  const s = libc.symbols;
  const c = libc.constants;
  const actions = new Uint8Array(libc.opaqueSize);
  const attr = new Uint8Array(libc.opaqueSize);
  const argv = pointerArray(argStrings);
  const envp = pointerArray(envStrings);
  let rc = s.posix_spawn_file_actions_init(actions);
  if (rc !== 0) fail("posix_spawn_file_actions_init", rc);
  try {
    rc = s.posix_spawnattr_init(attr);
    if (rc !== 0) fail("posix_spawnattr_init", rc);
    try {
      if (cwd !== undefined) {
        const addchdir = s.posix_spawn_file_actions_addchdir_np;
        if (addchdir === null) {
          throw new Error(
            "Cannot spawn a terminal with cwd: posix_spawn_file_actions_addchdir_np is missing (needs glibc 2.29+ or macOS 10.15+)",
          );
        }
        rc = addchdir(actions, cwd);
        if (rc !== 0) fail("posix_spawn_file_actions_addchdir_np", rc);
      }
      // No O_NOCTTY: opening the slave makes it the new session's
      // controlling terminal.
      rc = s.posix_spawn_file_actions_addopen(actions, 0, ttyName, c.O_RDWR, 0);
      if (rc !== 0) fail("posix_spawn_file_actions_addopen", rc);
      for (const fd of [1, 2]) {
        rc = s.posix_spawn_file_actions_adddup2(actions, 0, fd);
        if (rc !== 0) fail("posix_spawn_file_actions_adddup2", rc);
      }
      // Deno ignores SIGPIPE, and ignored signals survive exec: give the
      // child default dispositions and an empty signal mask.
      const all = new Uint8Array(libc.sigsetSize);
      const none = new Uint8Array(libc.sigsetSize);
      s.sigfillset(all);
      s.sigemptyset(none);
      rc = s.posix_spawnattr_setsigdefault(attr, all);
      if (rc !== 0) fail("posix_spawnattr_setsigdefault", rc);
      rc = s.posix_spawnattr_setsigmask(attr, none);
      if (rc !== 0) fail("posix_spawnattr_setsigmask", rc);
      rc = s.posix_spawnattr_setflags(
        attr,
        c.POSIX_SPAWN_SETSID | c.POSIX_SPAWN_SETSIGDEF |
          c.POSIX_SPAWN_SETSIGMASK,
      );
      if (rc !== 0) fail("posix_spawnattr_setflags", rc);
      const pid = new Int32Array(1);
      rc = s.posix_spawnp(
        pid,
        file,
        actions,
        attr,
        new Uint8Array(argv.buffer),
        new Uint8Array(envp.buffer),
      );
      if (rc !== 0) fail(`posix_spawnp(${decodeCString(file)})`, rc);
      return pid[0];
    } finally {
      s.posix_spawnattr_destroy(attr);
    }
  } finally {
    s.posix_spawn_file_actions_destroy(actions);
    // The strings must stay alive until posix_spawnp has returned.
    void argStrings;
    void envStrings;
  }
}

function decodeStatus(libc: Libc, status: number): PtyExit {
  const low = status & 0x7f;
  if (low === 0) {
    return { code: (status >> 8) & 0xff, signal: null, coreDumped: false };
  }
  const entry = Object.entries(libc.constants.signals).find(([, n]) =>
    n === low
  );
  return {
    code: null,
    signal: entry === undefined ? String(low) : entry[0].slice(3),
    coreDumped: (status & 0x80) !== 0,
  };
}

// ---------------------------------------------------------------------------
// Terminal modes (RFC 4254 section 8, RFC 8160 for IUTF8)

/**
 * Decodes the encoded terminal modes of a `pty-req` (RFC 4254 section 8):
 * opcode bytes each followed by a uint32, ended by `TTY_OP_END` (0) or the
 * end of the data. Opcodes 160 to 255 have no defined argument, so decoding
 * stops at the first of them (as OpenSSH does). A later duplicate wins.
 *
 * @throws {SyntaxError} when an argument is cut short.
 *
 * @example Decode ECHO off
 * ```ts ignore
 * import { decodeTerminalModes } from "./pty.ts";
 * // ECHO (53) off, then TTY_OP_END.
 * const modes = decodeTerminalModes(new Uint8Array([53, 0, 0, 0, 0, 0]));
 * console.log(modes.get(53)); // 0
 * ```
 */
export function decodeTerminalModes(encoded: Uint8Array): Map<number, number> {
  const modes = new Map<number, number>();
  const view = new DataView(
    encoded.buffer,
    encoded.byteOffset,
    encoded.byteLength,
  );
  let i = 0;
  while (i < encoded.length) {
    const opcode = encoded[i++];
    if (opcode === 0 || opcode >= 160) break;
    if (i + 4 > encoded.length) {
      throw new SyntaxError(
        `Malformed terminal modes: opcode ${opcode} at offset ${
          i - 1
        } needs a uint32 argument`,
      );
    }
    modes.set(opcode, view.getUint32(i));
    i += 4;
  }
  return modes;
}

// Linux <asm-generic/termbits.h>: struct termios is c_iflag, c_oflag,
// c_cflag, c_lflag (uint32 each), c_line, c_cc[32]; glibc appends the speeds.
const CC_OFFSET = 17;
const CC: Record<number, number> = {
  1: 0, // VINTR
  2: 1, // VQUIT
  3: 2, // VERASE
  4: 3, // VKILL
  5: 4, // VEOF
  6: 11, // VEOL
  7: 16, // VEOL2
  8: 8, // VSTART
  9: 9, // VSTOP
  10: 10, // VSUSP
  12: 12, // VREPRINT
  13: 14, // VWERASE
  14: 15, // VLNEXT
  16: 7, // VSWTC
  18: 13, // VDISCARD
};
/** SSH opcode -> [flag word offset, bit]. */
const FLAGS: Record<number, [number, number]> = {
  30: [0, 0o4], // IGNPAR
  31: [0, 0o10], // PARMRK
  32: [0, 0o20], // INPCK
  33: [0, 0o40], // ISTRIP
  34: [0, 0o100], // INLCR
  35: [0, 0o200], // IGNCR
  36: [0, 0o400], // ICRNL
  37: [0, 0o1000], // IUCLC
  38: [0, 0o2000], // IXON
  39: [0, 0o4000], // IXANY
  40: [0, 0o10000], // IXOFF
  41: [0, 0o20000], // IMAXBEL
  42: [0, 0o40000], // IUTF8 (RFC 8160)
  50: [12, 0o1], // ISIG
  51: [12, 0o2], // ICANON
  52: [12, 0o4], // XCASE
  53: [12, 0o10], // ECHO
  54: [12, 0o20], // ECHOE
  55: [12, 0o40], // ECHOK
  56: [12, 0o100], // ECHONL
  57: [12, 0o200], // NOFLSH
  58: [12, 0o400], // TOSTOP
  59: [12, 0o100000], // IEXTEN
  60: [12, 0o1000], // ECHOCTL
  61: [12, 0o4000], // ECHOKE
  62: [12, 0o40000], // PENDIN
  70: [4, 0o1], // OPOST
  71: [4, 0o2], // OLCUC
  72: [4, 0o4], // ONLCR
  73: [4, 0o10], // OCRNL
  74: [4, 0o20], // ONOCR
  75: [4, 0o40], // ONLRET
  92: [8, 0o400], // PARENB
  93: [8, 0o1000], // PARODD
};
const CSIZE = 0o60;

/**
 * Applies decoded modes with tcgetattr/tcsetattr (Linux layout). Speeds
 * (128, 129) mean nothing to a pseudo-terminal and are ignored, as are
 * opcodes Linux lacks (VDSUSP, VSTATUS, VFLUSH).
 */
function applyModes(
  libc: Libc,
  fd: number,
  encoded: Uint8Array,
  fail: (call: string) => never,
): void {
  const modes = decodeTerminalModes(encoded);
  if (modes.size === 0) return;
  const termios = new Uint8Array(256);
  if (libc.symbols.tcgetattr(fd, termios) !== 0) fail("tcgetattr");
  const view = new DataView(termios.buffer);
  for (const [opcode, value] of modes) {
    const cc = CC[opcode];
    if (cc !== undefined) {
      // 255 means "disabled", which is _POSIX_VDISABLE (0) on Linux.
      termios[CC_OFFSET + cc] = value === 255 ? 0 : value & 0xff;
      continue;
    }
    const flag = FLAGS[opcode];
    if (flag !== undefined) {
      const [offset, bit] = flag;
      const word = view.getUint32(offset, LE);
      view.setUint32(offset, value !== 0 ? word | bit : word & ~bit, LE);
    } else if ((opcode === 90 || opcode === 91) && value !== 0) {
      // CS7 / CS8 select the character size.
      const word = view.getUint32(8, LE) & ~CSIZE;
      view.setUint32(8, word | (opcode === 90 ? 0o40 : 0o60), LE);
    }
  }
  if (libc.symbols.tcsetattr(fd, libc.constants.TCSANOW, termios) !== 0) {
    fail("tcsetattr");
  }
}
