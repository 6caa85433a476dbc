/**
 * Helpers for the forwarding tests: target servers (TCP on 127.0.0.1 port
 * 0, or a Unix socket in a temporary directory) that echo or digest what
 * they receive, a raw-socket SOCKS client, and many concurrent transfers
 * with checksums.
 */
import { pseudoRandomBytes, sha256hex } from "./_helpers.ts";

export { pseudoRandomBytes, sha256hex };

/**
 * Runs `fn` with socket paths `name.sock` in a fresh temporary directory
 * (short enough for sun_path), and removes the directory afterwards.
 */
export async function withSockets(
  names: readonly string[],
  fn: (...paths: string[]) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fynx-fwd-" });
  try {
    await fn(...names.map((n) => `${dir}/${n}.sock`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A target server; `close()` also closes every connection it accepted. */
export interface TargetServer {
  /** TCP port, or 0 for a Unix socket. */
  readonly port: number;
  /** Unix socket path, or "" for TCP. */
  readonly path: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  /** Resolves once `open` drops to `n`. */
  waitOpen(n: number, timeout?: number): Promise<void>;
  close(): Promise<void>;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length;) {
    off += await conn.write(data.subarray(off));
  }
}

/**
 * Starts a server whose connections run `serve`. `kind` picks TCP on
 * 127.0.0.1 port 0 or a Unix socket at `path`.
 */
export function startTarget(
  serve: (conn: Deno.Conn) => Promise<void>,
  where: { path?: string } = {},
): TargetServer {
  const listener = where.path
    ? Deno.listen({ transport: "unix", path: where.path })
    : Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const running = new Set<Promise<void>>();
  let accepted = 0;
  let waiters: (() => void)[] = [];
  const changed = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  const loop = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      accepted++;
      conns.add(conn);
      const p = serve(conn).catch(() => {}).finally(() => {
        try {
          conn.close();
        } catch {
          // closed
        }
        conns.delete(conn);
        running.delete(p);
        changed();
      });
      running.add(p);
    }
  })();
  return {
    port: where.path ? 0 : (listener.addr as Deno.NetAddr).port,
    path: where.path ?? "",
    get accepted() {
      return accepted;
    },
    get open() {
      return conns.size;
    },
    async waitOpen(n: number, timeout = 10_000) {
      const deadline = Date.now() + timeout;
      while (conns.size !== n) {
        if (Date.now() > deadline) {
          throw new Error(
            `target still has ${conns.size} open connections, expected ${n}`,
          );
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 50);
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
    async close() {
      listener.close();
      await loop;
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // closed
        }
      }
      await Promise.all([...running]);
    },
  };
}

/** Echoes everything; on EOF it half-closes, keeping the socket open. */
export async function echo(conn: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    await writeAll(conn, buf.subarray(0, n));
  }
  await conn.closeWrite();
}

/**
 * Reads until EOF, then answers `<byte count> <sha256 hex>\n` and, after
 * that, `late` more bytes: proves data flows after the client's EOF.
 */
export function digestAfterEof(late = 0) {
  return async (conn: Deno.Conn): Promise<void> => {
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(64 * 1024);
    let total = 0;
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
      total += n;
    }
    const all = new Uint8Array(total);
    let off = 0;
    for (const c of chunks) {
      all.set(c, off);
      off += c.length;
    }
    await writeAll(
      conn,
      new TextEncoder().encode(`${total} ${sha256hex(all)}\n`),
    );
    if (late > 0) await writeAll(conn, pseudoRandomBytes(late, 99));
    await conn.closeWrite();
  };
}

/** Sends a greeting and closes (a target that speaks first). */
export function greet(text: string) {
  return async (conn: Deno.Conn): Promise<void> => {
    await writeAll(conn, new TextEncoder().encode(text));
    await conn.closeWrite();
    // Wait for the other side to finish.
    const buf = new Uint8Array(1024);
    while ((await conn.read(buf)) !== null) { /* drain */ }
  };
}

/** Reads a socket to its end. */
export async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  let total = 0;
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
    total += n;
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Connects to a TCP port on 127.0.0.1 or a Unix socket. */
export function dial(to: number | string): Promise<Deno.Conn> {
  return typeof to === "number"
    ? Deno.connect({ hostname: "127.0.0.1", port: to })
    : Deno.connect({ transport: "unix", path: to });
}

/**
 * Sends `payload` through a fresh connection to `to` while reading the
 * echo, then half-closes and checks the echo's checksum.
 */
export async function echoRoundTrip(
  to: number | string,
  payload: Uint8Array,
): Promise<void> {
  const conn = await dial(to);
  try {
    const back = readAll(conn);
    for (let off = 0; off < payload.length; off += 100_000) {
      await writeAll(conn, payload.subarray(off, off + 100_000));
    }
    await conn.closeWrite();
    const got = await back;
    if (
      got.length !== payload.length || sha256hex(got) !== sha256hex(payload)
    ) {
      throw new Error(
        `echo mismatch: sent ${payload.length} bytes (${
          sha256hex(payload).slice(0, 12)
        }), got ${got.length} (${sha256hex(got).slice(0, 12)})`,
      );
    }
  } finally {
    conn.close();
  }
}

/** `count` concurrent echo round trips of `size` bytes each. */
export async function concurrentEchoes(
  to: number | string,
  count: number,
  size: number,
): Promise<void> {
  await Promise.all(
    Array.from(
      { length: count },
      (_, i) => echoRoundTrip(to, pseudoRandomBytes(size, i + 1)),
    ),
  );
}

/**
 * Sends `payload`, closes the sending side, then reads the digest line
 * and `late` more bytes: the half-close check.
 */
export async function halfCloseRoundTrip(
  to: number | string,
  payload: Uint8Array,
  late: number,
): Promise<void> {
  const conn = await dial(to);
  try {
    await writeAll(conn, payload);
    await conn.closeWrite();
    const got = await readAll(conn);
    const expected = new TextEncoder().encode(
      `${payload.length} ${sha256hex(payload)}\n`,
    );
    const head = got.subarray(0, expected.length);
    if (new TextDecoder().decode(head) !== new TextDecoder().decode(expected)) {
      throw new Error(
        `half-close: unexpected digest ${
          JSON.stringify(new TextDecoder().decode(head))
        }`,
      );
    }
    const tail = got.subarray(expected.length);
    if (
      tail.length !== late ||
      sha256hex(tail) !== sha256hex(pseudoRandomBytes(late, 99))
    ) {
      throw new Error(
        `half-close: got ${tail.length} bytes after the digest, want ${late}`,
      );
    }
  } finally {
    conn.close();
  }
}

// ---- SOCKS client (raw socket) -------------------------------------------

/** Reads exactly `n` bytes or throws at EOF. */
export async function readExactly(
  conn: Deno.Conn,
  n: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  for (let off = 0; off < n;) {
    const got = await conn.read(out.subarray(off));
    if (got === null) {
      throw new Error(`EOF after ${off} of ${n} bytes`);
    }
    off += got;
  }
  return out;
}

/** A SOCKS request outcome: the connected socket or the reply code. */
export type SocksResult =
  | { ok: true; conn: Deno.Conn }
  | { ok: false; code: number };

function portBytes(port: number): number[] {
  return [port >> 8, port & 0xff];
}

/** SOCKS4 (IPv4 address) or SOCKS4a (`host` is a name) CONNECT. */
export async function socks4(
  proxyPort: number,
  host: string,
  port: number,
): Promise<SocksResult> {
  const conn = await dial(proxyPort);
  const ipv4 = /^\d+\.\d+\.\d+\.\d+$/.test(host);
  const ip = ipv4 ? host.split(".").map(Number) : [0, 0, 0, 1];
  const request = [
    4,
    1,
    ...portBytes(port),
    ...ip,
    ...new TextEncoder()
      .encode("user"),
    0,
  ];
  if (!ipv4) request.push(...new TextEncoder().encode(host), 0);
  await writeAll(conn, new Uint8Array(request));
  const reply = await readExactly(conn, 8);
  if (reply[0] !== 0) throw new Error(`SOCKS4 reply version ${reply[0]}`);
  if (reply[1] === 90) return { ok: true, conn };
  conn.close();
  return { ok: false, code: reply[1] };
}

/** SOCKS5 CONNECT to an IPv4 or IPv6 address or a domain name. */
export async function socks5(
  proxyPort: number,
  host: string,
  port: number,
  options: { methods?: number[] } = {},
): Promise<SocksResult> {
  const conn = await dial(proxyPort);
  const methods = options.methods ?? [0];
  await writeAll(conn, new Uint8Array([5, methods.length, ...methods]));
  const choice = await readExactly(conn, 2);
  if (choice[0] !== 5) throw new Error(`SOCKS5 reply version ${choice[0]}`);
  if (choice[1] !== 0) {
    conn.close();
    return { ok: false, code: 0x100 | choice[1] };
  }
  let address: number[];
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) {
    address = [1, ...host.split(".").map(Number)];
  } else if (host.includes(":")) {
    address = [4, ...ipv6Bytes(host)];
  } else {
    const name = new TextEncoder().encode(host);
    address = [3, name.length, ...name];
  }
  await writeAll(
    conn,
    new Uint8Array([5, 1, 0, ...address, ...portBytes(port)]),
  );
  const head = await readExactly(conn, 4);
  const rest = head[3] === 1 ? 4 : head[3] === 4 ? 16 : (await readExactly(
    conn,
    1,
  ))[0];
  await readExactly(conn, rest + 2);
  if (head[1] === 0) return { ok: true, conn };
  conn.close();
  return { ok: false, code: head[1] };
}

/** Parses an IPv6 address (with `::`) into 16 bytes. */
export function ipv6Bytes(text: string): number[] {
  const [left, right] = text.includes("::") ? text.split("::") : [text, null];
  const l = left ? left.split(":") : [];
  const r = right ? right.split(":") : [];
  const groups = right === null
    ? l
    : [...l, ...Array(8 - l.length - r.length).fill("0"), ...r];
  return groups.flatMap((g) => {
    const v = parseInt(g, 16);
    return [v >> 8, v & 0xff];
  });
}

// ---- long-running processes (ssh -N, fynx ssh -N, fynx sshd) -------------

/** A process whose output is collected while it runs. */
export interface Spawned {
  /** stdout and stderr so far, interleaved by arrival. */
  output(): string;
  /** Waits until the output matches `pattern`; returns the match. */
  waitFor(pattern: RegExp, timeout?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit status. */
  readonly status: Promise<Deno.CommandStatus>;
  /** Sends `signal` (if still running) and waits for the exit. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/** Starts `command` with stdin closed, collecting its output. */
export function spawn(command: string, args: readonly string[]): Spawned {
  const child = new Deno.Command(command, {
    args: [...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  let exited = false;
  const textDecoder = new TextDecoder();
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) {
      text += textDecoder.decode(chunk, { stream: true });
    }
  };
  const draining = Promise.all([drain(child.stdout), drain(child.stderr)]);
  const status = child.status.then(async (s) => {
    exited = true;
    await draining;
    return s;
  });
  return {
    output: () => text,
    status,
    async waitFor(pattern: RegExp, timeout = 15_000) {
      const deadline = Date.now() + timeout;
      for (;;) {
        const m = text.match(pattern);
        if (m) return m;
        if (exited || Date.now() > deadline) {
          throw new Error(
            `${command} ${
              exited ? "exited" : "timed out"
            } before printing ${pattern}; output:\n${text}`,
          );
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop(signal: Deno.Signal = "SIGTERM") {
      const send = (s: Deno.Signal) => {
        if (exited) return;
        try {
          child.kill(s);
        } catch {
          // Exited meanwhile.
        }
      };
      send(signal);
      // Again every 250 ms: OpenSSH's ssh can miss a SIGTERM that lands
      // just before it blocks signals to poll. SIGKILL after 5 s.
      let tries = 0;
      const timer = setInterval(() => {
        send(++tries >= 20 ? "SIGKILL" : signal);
      }, 250);
      try {
        return await status;
      } finally {
        clearInterval(timer);
      }
    },
  };
}
