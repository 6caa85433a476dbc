/**
 * Byte duplex adapters: what an SSH session can run over.
 *
 * A {@linkcode Duplex} is just a readable and a writable byte stream;
 * `Deno.Conn` already is one. This module adds an in-memory pair (tests,
 * in-process client and server) and a child process's stdio (OpenSSH's
 * `ProxyCommand`). Both readables are byte streams (`type: "bytes"`), so
 * the transport can read a packet straight into its own buffer with a
 * BYOB reader and `read(buffer, { min })`.
 *
 * @example Run bytes through an in-memory pair and a child process
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const pairOptions: MemoryDuplexOptions = { highWaterMark: 1024 };
 * const [a, b]: Duplex[] = memoryDuplexPair(pairOptions);
 * const writer = a.writable.getWriter();
 * const reader = b.readable.getReader({ mode: "byob" });
 * const sent = writer.write(new TextEncoder().encode("SSH-2.0-Fynx\r\n"));
 * const { value } = await reader.read(new Uint8Array(64), { min: 14 });
 * await sent;
 * assert.equal(new TextDecoder().decode(value), "SSH-2.0-Fynx\r\n");
 * await writer.close();
 * assert.equal((await reader.read(new Uint8Array(1))).done, true);
 * await b.writable.close();
 * await a.readable.cancel();
 *
 * // ProxyCommand style: the child's stdout is readable, stdin writable.
 * const options: CommandDuplexOptions = { stderr: "null" };
 * const proxy: CommandDuplex = commandDuplex("cat", [], options);
 * const input = proxy.writable.getWriter();
 * await input.write(new TextEncoder().encode("ping"));
 * await input.close();
 * assert.equal(await new Response(proxy.readable).text(), "ping");
 * await proxy.close();
 * ```
 *
 * @module
 */

/** A bidirectional byte stream an SSH session runs over. */
export interface Duplex {
  /** Bytes from the peer. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer. */
  readonly writable: WritableStream<Uint8Array>;
}

/** Options for {@linkcode memoryDuplexPair}. */
export interface MemoryDuplexOptions {
  /**
   * Bytes that may wait in each direction before writers have to wait
   * (the writable's queue; the reader side buffers nothing of its own).
   *
   * @default {65536}
   */
  highWaterMark?: number;
}

/** A child process's stdio as a {@linkcode Duplex}. */
export interface CommandDuplex extends Duplex {
  /** The running process (`pid`, `status`, `kill()`, piped `stderr`). */
  readonly child: Deno.ChildProcess;
  /**
   * Ends the process and releases what is still unclaimed: closes stdin
   * (when not locked by a writer), waits up to one second for the process
   * to exit and then sends it SIGTERM, cancels stdout and a piped stderr
   * when nobody holds a reader on them, and resolves once the process has
   * exited. A reader still holding stdout sees the end of the stream.
   */
  close(): Promise<void>;
}

/** Options for {@linkcode commandDuplex}. */
export interface CommandDuplexOptions {
  /** Extra environment variables for the process (added to ours). */
  env?: Record<string, string>;
  /**
   * Where the process's stderr goes; with `"piped"` read it from
   * `child.stderr`.
   *
   * @default {"inherit"}
   */
  stderr?: "inherit" | "null" | "piped";
}

/**
 * One direction of an in-memory pair: a writable whose chunks are handed
 * to the peer's readable only when that side asks for bytes.
 *
 * The readable is a byte stream with no queue of its own (high-water mark
 * 0), so `pull` runs only while a read is pending; the written chunk is
 * copied straight into the reader's BYOB buffer (or enqueued as a copy for
 * a default reader). A write settles once all its bytes are delivered, so
 * the writable's own byte-counted queue is the only buffer: writers see
 * `desiredSize <= 0` and a pending `ready` once `highWaterMark` bytes wait.
 */
class Pipe {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  #rc!: ReadableByteStreamController;
  #wc!: WritableStreamDefaultController;
  /** The chunk being delivered and how far. */
  #current:
    | {
      chunk: Uint8Array;
      offset: number;
      resolve: () => void;
      reject: (reason: unknown) => void;
    }
    | null = null;
  /** Settles the pending `pull` (a read is waiting for bytes). */
  #demand: (() => void) | null = null;
  /** Set once the reading side is gone (canceled or errored). */
  #readerGone: { reason: unknown } | null = null;

  constructor(highWaterMark: number) {
    this.readable = new ReadableStream({
      type: "bytes",
      start: (controller) => {
        this.#rc = controller;
      },
      pull: () =>
        new Promise<void>((resolve) => {
          this.#demand = resolve;
          this.#deliver();
        }),
      cancel: (reason) => {
        const err = new Error("Cannot write: the reading side was canceled", {
          cause: reason,
        });
        this.#readerGone = { reason: err };
        this.#satisfyDemand();
        this.#failWrite(err);
        this.#wc.error(err);
      },
    }, { highWaterMark: 0 });

    this.writable = new WritableStream<Uint8Array>({
      start: (controller) => {
        this.#wc = controller;
        // The abort signal fires at once, even while a write waits for a
        // reader; the sink's abort() would only run after that write.
        controller.signal.addEventListener("abort", () => {
          const reason = controller.signal.reason;
          this.#failWrite(reason);
          this.#errorReadable(reason);
        }, { once: true });
      },
      write: (chunk) => this.#write(chunk),
      close: () => {
        if (this.#readerGone) return;
        this.#rc.close();
        // A pending BYOB read must be answered with 0 after close.
        this.#rc.byobRequest?.respond(0);
        this.#satisfyDemand();
      },
      abort: (reason) => this.#errorReadable(reason),
    }, {
      highWaterMark,
      size: (chunk) => chunk.byteLength,
    });
  }

  #write(chunk: Uint8Array): Promise<void> {
    if (!(chunk instanceof Uint8Array)) {
      return Promise.reject(
        new TypeError(`Cannot write: chunk is not a Uint8Array`),
      );
    }
    if (this.#readerGone) {
      return Promise.reject(this.#readerGone.reason);
    }
    if (chunk.byteLength === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#current = { chunk, offset: 0, resolve, reject };
      this.#deliver();
    });
  }

  /** Moves bytes of the current chunk to the waiting read, if both exist. */
  #deliver(): void {
    const current = this.#current;
    if (!current || !this.#demand) return;
    const { chunk } = current;
    const request = this.#rc.byobRequest;
    if (request?.view) {
      const view = new Uint8Array(
        request.view.buffer,
        request.view.byteOffset,
        request.view.byteLength,
      );
      const n = Math.min(view.length, chunk.length - current.offset);
      view.set(chunk.subarray(current.offset, current.offset + n));
      current.offset += n;
      request.respond(n);
    } else {
      // enqueue() transfers the buffer: hand over a copy, never the caller's.
      this.#rc.enqueue(chunk.slice(current.offset));
      current.offset = chunk.length;
    }
    this.#satisfyDemand();
    if (current.offset === chunk.length) {
      this.#current = null;
      current.resolve();
    }
  }

  #satisfyDemand(): void {
    const demand = this.#demand;
    this.#demand = null;
    demand?.();
  }

  #failWrite(reason: unknown): void {
    const current = this.#current;
    this.#current = null;
    current?.reject(reason);
  }

  #errorReadable(reason: unknown): void {
    if (this.#readerGone) return;
    this.#readerGone = { reason };
    try {
      this.#rc.error(reason);
    } catch {
      // Already closed or errored.
    }
    this.#satisfyDemand();
  }
}

/**
 * Creates two connected in-memory duplexes: bytes written to one's
 * `writable` come out of the other's `readable`.
 *
 * Backpressure is real: each direction holds at most `highWaterMark` bytes
 * (plus the chunk being written) before `writer.ready` waits for the
 * reader. Closing a writable ends the peer's readable (`done`); aborting
 * it errors the peer's readable with the abort reason; canceling a
 * readable errors the peer's writable, so its pending and later writes
 * reject. Readables are byte streams and accept BYOB readers.
 *
 * @throws {TypeError} when `highWaterMark` is not a non-negative integer.
 */
export function memoryDuplexPair(
  options: MemoryDuplexOptions = {},
): [Duplex, Duplex] {
  const highWaterMark = options.highWaterMark ?? 65536;
  if (!Number.isSafeInteger(highWaterMark) || highWaterMark < 0) {
    throw new TypeError(`Invalid highWaterMark: ${highWaterMark}`);
  }
  const ab = new Pipe(highWaterMark);
  const ba = new Pipe(highWaterMark);
  return [
    { readable: ba.readable, writable: ab.writable },
    { readable: ab.readable, writable: ba.writable },
  ];
}

/**
 * Starts `command` with `args` and returns its stdio as a duplex, like
 * OpenSSH's `ProxyCommand`: the child's stdout is `readable`, its stdin is
 * `writable`. Needs `--allow-run` for the command.
 *
 * @throws {TypeError} for a non-string command, non-string arguments or an
 * unknown `stderr` mode.
 * @throws {Deno.errors.NotFound} when the command does not exist.
 */
export function commandDuplex(
  command: string,
  args: string[],
  options: CommandDuplexOptions = {},
): CommandDuplex {
  if (typeof command !== "string" || command.length === 0) {
    throw new TypeError(`Invalid command: ${JSON.stringify(command)}`);
  }
  if (!Array.isArray(args) || args.some((a) => typeof a !== "string")) {
    throw new TypeError(`Invalid arguments for ${command}: not all strings`);
  }
  const stderr = options.stderr ?? "inherit";
  if (!["inherit", "null", "piped"].includes(stderr)) {
    throw new TypeError(`Invalid stderr mode: ${JSON.stringify(stderr)}`);
  }
  const child = new Deno.Command(command, {
    args,
    env: options.env,
    stdin: "piped",
    stdout: "piped",
    stderr,
  }).spawn();
  let closing: Promise<void> | null = null;
  return {
    readable: child.stdout,
    writable: child.stdin,
    child,
    close(): Promise<void> {
      closing ??= closeChild(child, stderr === "piped");
      return closing;
    },
  };
}

/** How long {@linkcode CommandDuplex.close} lets the process exit alone. */
const EXIT_GRACE_MS = 1000;

async function closeChild(
  child: Deno.ChildProcess,
  stderrPiped: boolean,
): Promise<void> {
  if (!child.stdin.locked) {
    await child.stdin.close().catch(() => {});
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const exited = await Promise.race([
    child.status.then(() => true),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), EXIT_GRACE_MS);
    }),
  ]);
  clearTimeout(timer);
  if (!exited) {
    try {
      child.kill("SIGTERM");
    } catch {
      // It exited in the meantime.
    }
  }
  if (!child.stdout.locked) await child.stdout.cancel().catch(() => {});
  if (stderrPiped && !child.stderr.locked) {
    await child.stderr.cancel().catch(() => {});
  }
  await child.status;
}
