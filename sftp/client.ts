/**
 * The SFTP version 3 client (draft-ietf-secsh-filexfer-02 with OpenSSH's
 * extensions, OpenSSH PROTOCOL section 4): {@linkcode SftpClient},
 * {@linkcode openSftp}, files with pipelined Web Streams, and `get`/`put`.
 *
 * @module
 */

import { SshReader } from "../wire/reader.ts";
import {
  finishPacket,
  FXP,
  FXP_NAMES,
  MAX_DATA,
  MAX_EXTENSIONS,
  MAX_HANDLE,
  MAX_PACKET,
  MAX_PATH,
  OpenFlags,
  PacketFramer,
  readAttrs as decodeAttrs,
  type SftpAttributes,
  SftpStatus,
  startPacket,
  STATUS_TEXT,
  statusName,
  writeAttrs,
} from "./_protocol.ts";

/** A byte stream pair an SFTP session runs over (a subsystem channel). */
export interface SftpStream {
  /** Bytes from the server. */
  readable: ReadableStream<Uint8Array>;
  /** Bytes to the server. */
  writable: WritableStream<Uint8Array>;
}

/**
 * What {@linkcode openSftp} needs from a session channel: an `SshClient`'s
 * `ClientSession` is one.
 */
export interface SftpSubsystemChannel extends SftpStreamPair {
  /** Asks the server to start subsystem `name`. */
  subsystem(name: string): Promise<void>;
  /** Diagnostics from the server side. */
  readonly stderr: ReadableStream<Uint8Array>;
  /** Closes the channel. */
  close(): Promise<void>;
}

/** The standard streams of a session channel. */
export interface SftpStreamPair {
  /** Bytes to the server. */
  readonly stdin: WritableStream<Uint8Array>;
  /** Bytes from the server. */
  readonly stdout: ReadableStream<Uint8Array>;
}

/** What {@linkcode openSftp} needs from a client: an `SshClient` is one. */
export interface SftpSessionOpener {
  /** Opens a new session channel. */
  openSession(): Promise<SftpSubsystemChannel>;
}

/**
 * An SFTP status other than OK, or a failure of the SFTP session itself.
 * `code` is one of {@linkcode SftpStatus} (`CONNECTION_LOST` when the
 * session ended, `BAD_MESSAGE` when the server sent something malformed).
 */
export class SftpError extends Error {
  /** The SFTP status code. */
  readonly code: number;
  /** The path (or handle's path) the request was about, if any. */
  readonly path: string | undefined;
  /** The server's own message text, if it sent one. */
  readonly serverMessage: string;

  /** Creates the error; `message` is the full text. */
  constructor(
    message: string,
    code: number,
    options: { path?: string; serverMessage?: string; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "SftpError";
    this.code = code;
    this.path = options.path;
    this.serverMessage = options.serverMessage ?? "";
  }
}

/** What `limits@openssh.com` reports, or our defaults without it. */
export interface SftpLimits {
  /** Largest packet the server accepts. */
  maxPacketLength: number;
  /** Largest READ the server answers in full. */
  maxReadLength: number;
  /** Largest WRITE the server accepts. */
  maxWriteLength: number;
  /** Most open handles (0: no fixed limit). */
  maxOpenHandles: number;
}

/** One directory entry (an SSH_FXP_NAME element). */
export interface SftpEntry {
  /** The file name (no directory part). */
  filename: string;
  /** The server's `ls -l` line (empty for REALPATH/READLINK answers). */
  longname: string;
  /** Its attributes (lstat: a symlink is reported as itself). */
  attrs: SftpAttributes;
}

/** `statvfs@openssh.com` results (OpenSSH PROTOCOL section 4.4). */
export interface SftpStatVfs {
  /** File system block size. */
  bsize: number;
  /** Fundamental block size. */
  frsize: number;
  /** Blocks, in `frsize` units. */
  blocks: number;
  /** Free blocks. */
  bfree: number;
  /** Free blocks for unprivileged users. */
  bavail: number;
  /** Inodes. */
  files: number;
  /** Free inodes. */
  ffree: number;
  /** Free inodes for unprivileged users. */
  favail: number;
  /** File system id. */
  fsid: number;
  /** Flags: 1 read-only, 2 no setuid. */
  flag: number;
  /** Longest file name. */
  namemax: number;
}

/** Progress of a transfer. */
export interface SftpProgress {
  /** Bytes transferred so far. */
  bytes: number;
  /** Total size if known (the source's size when the transfer started). */
  total: number | undefined;
}

/** Options for {@linkcode SftpClient.get} and {@linkcode SftpClient.put}. */
export interface SftpTransferOptions {
  /** Called as data moves (at most once per request completed). */
  onProgress?: (progress: SftpProgress) => void;
  /** Requests in flight. @default the client's `concurrency` */
  concurrency?: number;
  /** Bytes per request. @default from the server's limits */
  chunkSize?: number;
  /**
   * `put`: file mode for a new remote file (as OpenSSH: the local file's
   * permission bits).
   * @default the local file's mode
   */
  mode?: number;
}

/** Options for {@linkcode SftpFile.createReadable}. */
export interface SftpReadOptions {
  /** First byte to read. @default 0 */
  start?: number;
  /** Stop before this offset. @default the end of the file */
  end?: number;
  /** Bytes per READ request. @default the client's read size */
  chunkSize?: number;
  /** READ requests in flight. @default the client's `concurrency` */
  concurrency?: number;
}

/** Options for {@linkcode SftpFile.createWritable}. */
export interface SftpWriteOptions {
  /** Offset of the first byte written. @default 0 */
  start?: number;
  /** Largest WRITE request. @default the client's write size */
  chunkSize?: number;
  /** WRITE requests in flight. @default the client's `concurrency` */
  concurrency?: number;
}

/** Options for {@linkcode SftpClient.open} and {@linkcode openSftp}. */
export interface SftpClientOptions {
  /**
   * Requests in flight per transfer stream (OpenSSH's sftp uses 64).
   * @default 64
   */
  concurrency?: number;
  /**
   * Bytes per READ request. Without `limits@openssh.com` OpenSSH's default
   * of 32 KiB is used; with it, the server's maximum (at most 255 KiB).
   * @default from the server's limits
   */
  readSize?: number;
  /**
   * Bytes per WRITE request (the server's limit, at most 255 KiB).
   * @default from the server's limits
   */
  writeSize?: number;
  /**
   * Largest packet accepted from the server.
   * @default 263168 (256 KiB + 1 KiB)
   */
  maxPacket?: number;
}

/** Open modes for {@linkcode SftpClient.open}, as `fopen(3)` names them. */
export type SftpOpenMode = "r" | "r+" | "w" | "w+" | "wx" | "a" | "a+";

const MODE_FLAGS: Record<SftpOpenMode, number> = {
  "r": OpenFlags.READ,
  "r+": OpenFlags.READ | OpenFlags.WRITE,
  "w": OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.TRUNC,
  "w+": OpenFlags.READ | OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.TRUNC,
  "wx": OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.EXCL,
  "a": OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.APPEND,
  "a+": OpenFlags.READ | OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.APPEND,
};

const DEFAULT_CONCURRENCY = 64;
const DEFAULT_BUFLEN = 32 * 1024;
const MAX_NAMES = 100_000;

interface Reply {
  type: number;
  r: SshReader;
}

interface Waiter {
  resolve(reply: Reply): void;
  reject(error: Error): void;
}

function posInt(
  value: number | undefined,
  fallback: number,
  what: string,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1 || v > max) {
    throw new RangeError(`Invalid ${what}: ${v} (1..${max})`);
  }
  return v;
}

function offsetArg(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`Invalid ${what}: ${value}`);
  }
  return value;
}

function pathArg(path: string, what = "path"): string {
  if (typeof path !== "string") {
    throw new TypeError(`Invalid ${what}: ${String(path)} is not a string`);
  }
  return path;
}

/**
 * An SFTP version 3 session. Every method sends one request (or a pipeline
 * of them) and maps a non-OK status to an {@linkcode SftpError} whose
 * message names the operation and the path.
 *
 * Requests may be issued concurrently: replies are matched by id, so
 * independent operations overlap on the wire.
 *
 * @example Write, read back, list and remove a file (against our own server)
 * ```ts
 * import { SftpClient, serveSftp } from "@fynx/ssh/sftp";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * // Two in-memory pipes stand in for an SSH subsystem channel.
 * const up = new TransformStream<Uint8Array, Uint8Array>();
 * const down = new TransformStream<Uint8Array, Uint8Array>();
 * const served = serveSftp(
 *   { readable: up.readable, writable: down.writable },
 *   { root },
 * );
 * const sftp = await SftpClient.open({
 *   readable: down.readable,
 *   writable: up.writable,
 * });
 *
 * await sftp.writeFile("/hello.txt", new TextEncoder().encode("hi there"));
 * assert.equal(
 *   new TextDecoder().decode(await sftp.readFile("/hello.txt")),
 *   "hi there",
 * );
 * assert.deepEqual((await sftp.list("/")).map((e) => e.filename), ["hello.txt"]);
 * await sftp.remove("/hello.txt");
 * await sftp.close();
 * await served;
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export class SftpClient {
  /** Protocol version the server answered with (3). */
  readonly version: number;
  /** Extensions the server announced: name to version string. */
  readonly extensions: ReadonlyMap<string, string>;
  /** The server's limits (from `limits@openssh.com`, else defaults). */
  readonly limits: SftpLimits;
  /** Bytes per READ request in streams. */
  readonly readSize: number;
  /** Bytes per WRITE request in streams. */
  readonly writeSize: number;
  /** Requests in flight per stream. */
  readonly concurrency: number;

  readonly #conn: Conn;
  readonly #onClose: () => Promise<void>;

  private constructor(
    conn: Conn,
    init: {
      version: number;
      extensions: Map<string, string>;
      limits: SftpLimits;
      readSize: number;
      writeSize: number;
      concurrency: number;
      onClose: () => Promise<void>;
    },
  ) {
    this.#conn = conn;
    this.version = init.version;
    this.extensions = init.extensions;
    this.limits = init.limits;
    this.readSize = init.readSize;
    this.writeSize = init.writeSize;
    this.concurrency = init.concurrency;
    this.#onClose = init.onClose;
  }

  /**
   * Starts SFTP over `stream` (e.g. a session channel on which the `sftp`
   * subsystem was started): sends INIT, reads VERSION and asks for the
   * server's limits when it offers `limits@openssh.com`.
   */
  static async open(
    stream: SftpStream,
    options: SftpClientOptions & {
      /** Called by {@linkcode SftpClient.close} after the streams closed. */
      onClose?: () => Promise<void>;
    } = {},
  ): Promise<SftpClient> {
    const concurrency = posInt(
      options.concurrency,
      DEFAULT_CONCURRENCY,
      "concurrency",
      4096,
    );
    const maxPacket = posInt(
      options.maxPacket,
      MAX_PACKET,
      "maxPacket",
      16 * 1024 * 1024,
    );
    const conn = new Conn(stream, maxPacket);
    try {
      const hello = await conn.hello();
      const r = replyReader(hello, "SSH_FXP_VERSION");
      const version = r.uint32();
      const extensions = new Map<string, string>();
      while (r.remaining > 0) {
        if (extensions.size >= MAX_EXTENSIONS) {
          throw new SftpError(
            `Malformed SSH_FXP_VERSION: more than ${MAX_EXTENSIONS} extensions`,
            SftpStatus.BAD_MESSAGE,
          );
        }
        const name = r.utf8(MAX_PATH);
        extensions.set(name, r.utf8(MAX_PATH));
      }
      if (version < 3) {
        throw new SftpError(
          `SFTP server speaks version ${version}; version 3 is required`,
          SftpStatus.OP_UNSUPPORTED,
        );
      }
      let limits: SftpLimits = {
        maxPacketLength: 34000,
        maxReadLength: DEFAULT_BUFLEN,
        maxWriteLength: DEFAULT_BUFLEN,
        maxOpenHandles: 0,
      };
      let readSize = DEFAULT_BUFLEN;
      let writeSize = DEFAULT_BUFLEN;
      if (extensions.get("limits@openssh.com") === "1") {
        const reply = await conn.request(
          finishPacket(
            startPacket(FXP.EXTENDED, conn.nextId()).string(
              "limits@openssh.com",
            ),
          ),
        );
        const lr = expectReply(reply, FXP.EXTENDED_REPLY, "limits", undefined);
        const num = () => Number(lr.uint64());
        limits = {
          maxPacketLength: num(),
          maxReadLength: num(),
          maxWriteLength: num(),
          maxOpenHandles: num(),
        };
        // As OpenSSH's sftp: the server's sizes, within one 256 KiB packet.
        const cap = (n: number) =>
          Math.max(64, Math.min(n || DEFAULT_BUFLEN, MAX_DATA));
        readSize = cap(limits.maxReadLength);
        writeSize = cap(limits.maxWriteLength);
      }
      if (options.readSize !== undefined) {
        readSize = posInt(options.readSize, readSize, "readSize", MAX_DATA);
      }
      if (options.writeSize !== undefined) {
        writeSize = posInt(options.writeSize, writeSize, "writeSize", MAX_DATA);
      }
      return new SftpClient(conn, {
        version,
        extensions,
        limits,
        readSize,
        writeSize,
        concurrency,
        onClose: options.onClose ?? (() => Promise.resolve()),
      });
    } catch (e) {
      await conn.close();
      throw e;
    }
  }

  /** Whether the server announced extension `name` (with `version`, if given). */
  supports(name: string, version?: string): boolean {
    const v = this.extensions.get(name);
    return v !== undefined && (version === undefined || v === version);
  }

  /** Resolves when the session has ended (closed by either side). */
  get closed(): Promise<void> {
    return this.#conn.ended;
  }

  #id(): number {
    return this.#conn.nextId();
  }

  /** Sends one request and returns its reply; maps a failed send to CONNECTION_LOST. */
  #call(packet: Uint8Array): Promise<Reply> {
    return this.#conn.request(packet);
  }

  async #status(packet: Uint8Array, op: string, path: string): Promise<void> {
    expectStatus(await this.#call(packet), op, path);
  }

  #pathPacket(type: number, path: string): Uint8Array {
    return finishPacket(
      startPacket(type, this.#id(), path.length * 3).string(pathArg(path)),
    );
  }

  #ext(name: string): SshWriterLike {
    return startPacket(FXP.EXTENDED, this.#id()).string(name);
  }

  #need(name: string, version: string, op: string, path: string): void {
    if (!this.supports(name, version)) {
      throw new SftpError(
        `Cannot ${op} ${path}: the server does not support ${name}`,
        SftpStatus.OP_UNSUPPORTED,
        { path },
      );
    }
  }

  /**
   * Opens a file. `mode` is an `fopen(3)`-style string or raw SSH_FXF_*
   * flags; `attrs` apply when the file is created (e.g. `permissions`).
   */
  async open(
    path: string,
    mode: SftpOpenMode | number = "r",
    attrs: SftpAttributes = {},
  ): Promise<SftpFile> {
    const flags = typeof mode === "number" ? mode : MODE_FLAGS[mode];
    if (flags === undefined || !Number.isInteger(flags) || flags < 0) {
      throw new TypeError(`Invalid open mode: ${String(mode)}`);
    }
    const w = startPacket(FXP.OPEN, this.#id(), path.length * 3 + 32)
      .string(pathArg(path)).uint32(flags);
    writeAttrs(w, attrs);
    const reply = await this.#call(finishPacket(w));
    const handle = expectHandle(reply, "open", path);
    return makeFile(this, this.#conn, handle, path, flags);
  }

  /** Attributes of `path`, following symlinks. */
  async stat(path: string): Promise<SftpAttributes> {
    const reply = await this.#call(this.#pathPacket(FXP.STAT, path));
    return readAttrs(expectReply(reply, FXP.ATTRS, "stat", path));
  }

  /** Attributes of `path` itself (a symlink is not followed). */
  async lstat(path: string): Promise<SftpAttributes> {
    const reply = await this.#call(this.#pathPacket(FXP.LSTAT, path));
    return readAttrs(expectReply(reply, FXP.ATTRS, "lstat", path));
  }

  /** Whether `path` exists (a dangling symlink counts). */
  async exists(path: string): Promise<boolean> {
    try {
      await this.lstat(path);
      return true;
    } catch (e) {
      if (e instanceof SftpError && e.code === SftpStatus.NO_SUCH_FILE) {
        return false;
      }
      throw e;
    }
  }

  /** Changes attributes of `path` (size truncates, permissions chmod, ...). */
  setstat(path: string, attrs: SftpAttributes): Promise<void> {
    const w = startPacket(FXP.SETSTAT, this.#id()).string(pathArg(path));
    writeAttrs(w, attrs);
    return this.#status(finishPacket(w), "setstat", path);
  }

  /** Opens a directory for reading; see {@linkcode SftpClient.list}. */
  async opendir(path: string): Promise<SftpDir> {
    const reply = await this.#call(this.#pathPacket(FXP.OPENDIR, path));
    return makeDir(this.#conn, expectHandle(reply, "opendir", path), path);
  }

  /**
   * Every entry of directory `path` except `.` and `..`, in the server's
   * order.
   */
  async list(path: string): Promise<SftpEntry[]> {
    const dir = await this.opendir(path);
    const all: SftpEntry[] = [];
    try {
      for await (const entry of dir) {
        if (entry.filename !== "." && entry.filename !== "..") all.push(entry);
      }
    } finally {
      await dir.close().catch(() => {});
    }
    return all;
  }

  /** Creates directory `path` (`attrs.permissions` for its mode). */
  mkdir(path: string, attrs: SftpAttributes = {}): Promise<void> {
    const w = startPacket(FXP.MKDIR, this.#id()).string(pathArg(path));
    writeAttrs(w, attrs);
    return this.#status(finishPacket(w), "mkdir", path);
  }

  /** Removes the empty directory `path`. */
  rmdir(path: string): Promise<void> {
    return this.#status(this.#pathPacket(FXP.RMDIR, path), "rmdir", path);
  }

  /** Removes the file (or symlink) `path`. */
  remove(path: string): Promise<void> {
    return this.#status(this.#pathPacket(FXP.REMOVE, path), "remove", path);
  }

  /**
   * Renames `from` to `to` with SFTP v3 semantics: fails when `to` exists.
   * See {@linkcode SftpClient.posixRename} to replace it.
   */
  rename(from: string, to: string): Promise<void> {
    const w = startPacket(FXP.RENAME, this.#id()).string(pathArg(from))
      .string(pathArg(to, "new path"));
    return this.#status(finishPacket(w), "rename", `${from} to ${to}`);
  }

  /**
   * Renames with POSIX `rename(2)` semantics (replaces `to`):
   * `posix-rename@openssh.com` (OpenSSH PROTOCOL section 4.3).
   */
  posixRename(from: string, to: string): Promise<void> {
    const what = `${from} to ${to}`;
    this.#need("posix-rename@openssh.com", "1", "rename", what);
    const w = this.#ext("posix-rename@openssh.com").string(pathArg(from))
      .string(pathArg(to, "new path"));
    return this.#status(finishPacket(w), "rename", what);
  }

  /**
   * Creates symlink `linkPath` pointing at `target`. Sent in OpenSSH's
   * argument order, target first (OpenSSH PROTOCOL section 4.1).
   */
  symlink(target: string, linkPath: string): Promise<void> {
    const w = startPacket(FXP.SYMLINK, this.#id()).string(
      pathArg(target, "target"),
    ).string(pathArg(linkPath));
    return this.#status(finishPacket(w), "symlink", linkPath);
  }

  /** The target of symlink `path`. */
  async readlink(path: string): Promise<string> {
    const reply = await this.#call(this.#pathPacket(FXP.READLINK, path));
    return readSingleName(reply, "readlink", path);
  }

  /** The canonical absolute form of `path` (`"."` gives the start directory). */
  async realpath(path: string): Promise<string> {
    const reply = await this.#call(this.#pathPacket(FXP.REALPATH, path));
    return readSingleName(reply, "realpath", path);
  }

  /** File system statistics: `statvfs@openssh.com` (PROTOCOL section 4.4). */
  async statvfs(path: string): Promise<SftpStatVfs> {
    this.#need("statvfs@openssh.com", "2", "statvfs", path);
    const w = this.#ext("statvfs@openssh.com").string(pathArg(path));
    const reply = await this.#call(finishPacket(w));
    return readStatVfs(
      expectReply(reply, FXP.EXTENDED_REPLY, "statvfs", path),
    );
  }

  /** Creates hard link `newPath` to `oldPath`: `hardlink@openssh.com`. */
  hardlink(oldPath: string, newPath: string): Promise<void> {
    this.#need("hardlink@openssh.com", "1", "hardlink", newPath);
    const w = this.#ext("hardlink@openssh.com").string(pathArg(oldPath))
      .string(pathArg(newPath, "new path"));
    return this.#status(
      finishPacket(w),
      "hardlink",
      `${oldPath} to ${newPath}`,
    );
  }

  /**
   * Copies `length` bytes (0: to the end) from `from` at `fromOffset` to
   * `to` at `toOffset` on the server itself: the `copy-data` extension
   * (OpenSSH PROTOCOL section 4.10). Both must be open files of this client.
   */
  async copyData(
    from: SftpFile,
    fromOffset: number,
    length: number,
    to: SftpFile,
    toOffset: number,
  ): Promise<void> {
    this.#need("copy-data", "1", "copy", from.path);
    const w = this.#ext("copy-data").string(from.handle)
      .uint64(BigInt(offsetArg(fromOffset, "offset")))
      .uint64(BigInt(offsetArg(length, "length"))).string(to.handle)
      .uint64(BigInt(offsetArg(toOffset, "offset")));
    await this.#status(finishPacket(w), "copy", `${from.path} to ${to.path}`);
  }

  /**
   * Copies remote file `from` to remote `to` without moving the data over
   * the network (`copy-data`); `to` is created or truncated.
   */
  async copy(from: string, to: string): Promise<void> {
    this.#need("copy-data", "1", "copy", from);
    const src = await this.open(from, "r");
    try {
      const attrs = await src.stat();
      const dst = await this.open(to, "w", {
        permissions: (attrs.permissions ?? 0o644) & 0o777,
      });
      try {
        await this.copyData(src, 0, 0, dst, 0);
      } finally {
        await dst.close();
      }
    } finally {
      await src.close().catch(() => {});
    }
  }

  /** Expands `~` and `~user` paths: `expand-path@openssh.com`. */
  async expandPath(path: string): Promise<string> {
    this.#need("expand-path@openssh.com", "1", "expand", path);
    const w = this.#ext("expand-path@openssh.com").string(pathArg(path));
    return readSingleName(await this.#call(finishPacket(w)), "expand", path);
  }

  /** Reads a whole remote file (pipelined). */
  async readFile(path: string): Promise<Uint8Array> {
    const file = await this.open(path, "r");
    try {
      const parts: Uint8Array[] = [];
      let total = 0;
      for await (const chunk of file.createReadable()) {
        parts.push(chunk);
        total += chunk.length;
      }
      const out = new Uint8Array(total);
      let pos = 0;
      for (const p of parts) {
        out.set(p, pos);
        pos += p.length;
      }
      return out;
    } finally {
      await file.close().catch(() => {});
    }
  }

  /** Writes `data` to a remote file, created or truncated (pipelined). */
  async writeFile(
    path: string,
    data: Uint8Array,
    attrs: SftpAttributes = {},
  ): Promise<void> {
    const file = await this.open(path, "w", attrs);
    try {
      const writer = file.createWritable().getWriter();
      await writer.write(data);
      await writer.close();
    } finally {
      await file.close();
    }
  }

  /**
   * Downloads remote file `remote` to local path `local` (created or
   * truncated), with up to `concurrency` reads in flight.
   */
  async get(
    remote: string,
    local: string,
    options: SftpTransferOptions = {},
  ): Promise<void> {
    const file = await this.open(remote, "r");
    let out: Deno.FsFile | null = null;
    try {
      const attrs = await file.stat();
      out = await Deno.open(local, {
        write: true,
        create: true,
        truncate: true,
        mode: (options.mode ?? attrs.permissions ?? 0o644) & 0o777,
      });
      const total = attrs.size;
      let bytes = 0;
      options.onProgress?.({ bytes, total });
      const stream = file.createReadable({
        chunkSize: options.chunkSize,
        concurrency: options.concurrency,
      });
      // One local write in flight while the next chunk is pulled.
      const sink = out;
      const writeAll = async (chunk: Uint8Array) => {
        let pos = 0;
        while (pos < chunk.length) {
          pos += await sink.write(chunk.subarray(pos));
        }
        bytes += chunk.length;
        options.onProgress?.({ bytes, total });
      };
      let writing: Promise<void> = Promise.resolve();
      try {
        for await (const chunk of stream) {
          await writing;
          writing = writeAll(chunk);
        }
      } finally {
        await writing.catch(() => {});
      }
      await writing;
    } finally {
      out?.close();
      await file.close().catch(() => {});
    }
  }

  /**
   * Uploads local file `local` to `remote` (created or truncated), with up
   * to `concurrency` writes in flight. Local data is read straight into
   * the request packets.
   */
  async put(
    local: string,
    remote: string,
    options: SftpTransferOptions = {},
  ): Promise<void> {
    const input = await Deno.open(local, { read: true });
    try {
      const info = await input.stat();
      if (info.isDirectory) {
        throw new TypeError(`Cannot upload ${local}: it is a directory`);
      }
      const file = await this.open(remote, "w", {
        permissions: (options.mode ?? info.mode ?? 0o644) & 0o777,
      });
      try {
        await file.upload(input, info.size, options);
      } finally {
        await file.close();
      }
    } finally {
      input.close();
    }
  }

  /**
   * Ends the session: closes the stream to the server and waits for the
   * server's side to end. Pending requests fail with CONNECTION_LOST.
   */
  async close(): Promise<void> {
    await this.#conn.close();
    await this.#onClose();
  }

  /** Same as {@linkcode SftpClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

type SshWriterLike = ReturnType<typeof startPacket>;

let makeDir: (conn: Conn, handle: Uint8Array, path: string) => SftpDir;
let makeFile: (
  client: SftpClient,
  conn: Conn,
  handle: Uint8Array,
  path: string,
  flags: number,
) => SftpFile;

/**
 * Starts the `sftp` subsystem on a new session channel of `client` and
 * returns an {@linkcode SftpClient}; closing it closes the channel.
 */
export async function openSftp(
  client: SftpSessionOpener,
  options: SftpClientOptions = {},
): Promise<SftpClient> {
  const session = await client.openSession();
  try {
    await session.subsystem("sftp");
  } catch (e) {
    await session.close().catch(() => {});
    throw new SftpError(
      `Cannot start the sftp subsystem: ${(e as Error).message}`,
      SftpStatus.NO_CONNECTION,
      { cause: e },
    );
  }
  // Diagnostics from the server side go nowhere but must not stall it.
  session.stderr.cancel().catch(() => {});
  return await SftpClient.open(
    { readable: session.stdout, writable: session.stdin },
    { ...options, onClose: () => session.close() },
  );
}

/** Turns a decoding failure of a server's packet into BAD_MESSAGE. */
function badMessage(e: unknown): unknown {
  if (e instanceof SftpError) return e;
  if (e instanceof RangeError || e instanceof SyntaxError) {
    return new SftpError(
      `Malformed data from the SFTP server: ${e.message}`,
      SftpStatus.BAD_MESSAGE,
      { cause: e },
    );
  }
  return e;
}

/**
 * A reader over a server's packet whose bound and format errors are
 * {@linkcode SftpError}s with BAD_MESSAGE, whatever method hits them.
 */
class ReplyReader extends SshReader {
  override byte(): number {
    try {
      return super.byte();
    } catch (e) {
      throw badMessage(e);
    }
  }
  override uint32(): number {
    try {
      return super.uint32();
    } catch (e) {
      throw badMessage(e);
    }
  }
  override uint64(): bigint {
    try {
      return super.uint64();
    } catch (e) {
      throw badMessage(e);
    }
  }
  override raw(n: number): Uint8Array {
    try {
      return super.raw(n);
    } catch (e) {
      throw badMessage(e);
    }
  }
  override string(max?: number): Uint8Array {
    try {
      return super.string(max);
    } catch (e) {
      throw badMessage(e);
    }
  }
  override utf8(max?: number): string {
    try {
      return super.utf8(max);
    } catch (e) {
      throw badMessage(e);
    }
  }
}

function replyReader(packet: Uint8Array, what: string): SshReader {
  return new ReplyReader(packet.subarray(1), what);
}

function readAttrs(r: SshReader): SftpAttributes {
  try {
    return decodeAttrs(r);
  } catch (e) {
    throw badMessage(e);
  }
}

/** The request/reply machinery over one stream pair. */
class Conn {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #framer: PacketFramer;
  readonly #waiting = new Map<number, Waiter>();
  #helloWaiter:
    | { resolve(p: Uint8Array): void; reject(e: Error): void }
    | null = null;
  #nextId = 1;
  #error: Error | null = null;
  #closing = false;
  readonly ended: Promise<void>;

  constructor(stream: SftpStream, maxPacket: number) {
    this.#writer = stream.writable.getWriter();
    this.#reader = stream.readable.getReader();
    this.#framer = new PacketFramer(maxPacket);
    this.ended = this.#readLoop();
  }

  nextId(): number {
    const id = this.#nextId;
    this.#nextId = (this.#nextId + 1) >>> 0;
    return id;
  }

  hello(): Promise<Uint8Array> {
    const p = new Promise<Uint8Array>((resolve, reject) =>
      this.#helloWaiter = { resolve, reject }
    );
    this.#send(finishPacket(startPacket(FXP.INIT, null).uint32(3))).catch(
      (e) => this.#fail(e),
    );
    return p;
  }

  /** Sends a request packet (its id at bytes 5..8) and waits for the reply. */
  request(packet: Uint8Array): Promise<Reply> {
    if (this.#error !== null) return Promise.reject(this.#error);
    const id = new DataView(packet.buffer, packet.byteOffset).getUint32(5);
    const reply = new Promise<Reply>((resolve, reject) =>
      this.#waiting.set(id, { resolve, reject })
    );
    this.#send(packet).catch((e) => this.#fail(e));
    return reply;
  }

  /**
   * Sends a request and returns both the reply and the promise that the
   * packet was handed to the stream (for writers that want backpressure).
   */
  requestWithSent(
    packet: Uint8Array,
  ): { reply: Promise<Reply>; sent: Promise<void> } {
    if (this.#error !== null) {
      return {
        reply: Promise.reject(this.#error),
        sent: Promise.resolve(),
      };
    }
    const id = new DataView(packet.buffer, packet.byteOffset).getUint32(5);
    const reply = new Promise<Reply>((resolve, reject) =>
      this.#waiting.set(id, { resolve, reject })
    );
    const sent = this.#send(packet).catch((e) => this.#fail(e));
    return { reply, sent };
  }

  #send(packet: Uint8Array): Promise<void> {
    return this.#writer.write(packet);
  }

  #fail(cause: unknown): void {
    if (this.#error !== null) return;
    const error = cause instanceof SftpError ? cause : new SftpError(
      this.#closing
        ? "SFTP session closed"
        : `SFTP session ended: ${(cause as Error)?.message ?? String(cause)}`,
      SftpStatus.CONNECTION_LOST,
      { cause },
    );
    this.#error = error;
    this.#helloWaiter?.reject(error);
    this.#helloWaiter = null;
    const waiting = [...this.#waiting.values()];
    this.#waiting.clear();
    for (const w of waiting) w.reject(error);
    this.#reader.cancel().catch(() => {});
    this.#writer.abort(error).catch(() => {});
  }

  #onPacket(packet: Uint8Array): void {
    const type = packet[0];
    if (this.#helloWaiter !== null) {
      if (type !== FXP.VERSION) {
        throw new SftpError(
          `SFTP server answered INIT with ${FXP_NAMES[type] ?? type}`,
          SftpStatus.BAD_MESSAGE,
        );
      }
      const w = this.#helloWaiter;
      this.#helloWaiter = null;
      w.resolve(packet);
      return;
    }
    if (packet.length < 5) {
      throw new SftpError(
        `Malformed SFTP reply of ${packet.length} bytes`,
        SftpStatus.BAD_MESSAGE,
      );
    }
    const id = ((packet[1] << 24) | (packet[2] << 16) | (packet[3] << 8) |
      packet[4]) >>> 0;
    const w = this.#waiting.get(id);
    if (w === undefined) {
      throw new SftpError(
        `SFTP server sent ${
          FXP_NAMES[type] ?? `type ${type}`
        } for unknown request ${id}`,
        SftpStatus.BAD_MESSAGE,
      );
    }
    this.#waiting.delete(id);
    w.resolve({
      type,
      r: replyReader(packet.subarray(4), FXP_NAMES[type] ?? `type ${type}`),
    });
  }

  async #readLoop(): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await this.#reader.read();
        if (done) break;
        this.#framer.push(value, (p) => this.#onPacket(p));
      }
      this.#fail(
        new SftpError(
          this.#closing
            ? "SFTP session closed"
            : "SFTP server ended the session",
          SftpStatus.CONNECTION_LOST,
        ),
      );
    } catch (e) {
      this.#fail(
        e instanceof RangeError || e instanceof SyntaxError
          ? new SftpError(
            `Malformed data from the SFTP server: ${e.message}`,
            SftpStatus.BAD_MESSAGE,
            { cause: e },
          )
          : e,
      );
    }
  }

  async close(): Promise<void> {
    this.#closing = true;
    if (this.#error === null) {
      // EOF to the server; it ends the session and its side closes.
      await this.#writer.close().catch(() => {});
    }
    const timer = setTimeout(() => this.#fail(new Error("close")), 5000);
    await this.ended;
    clearTimeout(timer);
  }
}

function expectReply(
  reply: Reply,
  type: number,
  op: string,
  path: string | undefined,
): SshReader {
  if (reply.type === type) return reply.r;
  if (reply.type === FXP.STATUS) throw statusError(reply.r, op, path);
  throw new SftpError(
    `Cannot ${op}${path === undefined ? "" : " " + path}: unexpected ${
      FXP_NAMES[reply.type] ?? `type ${reply.type}`
    } reply`,
    SftpStatus.BAD_MESSAGE,
    { path },
  );
}

function expectStatus(reply: Reply, op: string, path: string): void {
  if (reply.type !== FXP.STATUS) {
    throw new SftpError(
      `Cannot ${op} ${path}: unexpected ${
        FXP_NAMES[reply.type] ?? `type ${reply.type}`
      } reply`,
      SftpStatus.BAD_MESSAGE,
      { path },
    );
  }
  const err = statusError(reply.r, op, path);
  if (err.code !== SftpStatus.OK) throw err;
}

function expectHandle(reply: Reply, op: string, path: string): Uint8Array {
  const r = expectReply(reply, FXP.HANDLE, op, path);
  return r.string(MAX_HANDLE).slice();
}

/** Reads a STATUS body into an error (code OK included). */
function statusError(
  r: SshReader,
  op: string,
  path: string | undefined,
): SftpError {
  const code = r.uint32();
  let serverMessage = "";
  try {
    // Version 3 servers send message and language; very old ones do not.
    if (r.remaining > 0) serverMessage = r.utf8(4096);
  } catch {
    serverMessage = "";
  }
  const text = serverMessage || STATUS_TEXT[code] || "Unknown error";
  return new SftpError(
    `Cannot ${op}${path === undefined ? "" : " " + path}: ${text} (${
      statusName(code)
    })`,
    code,
    { path, serverMessage },
  );
}

function readNames(r: SshReader): SftpEntry[] {
  const count = r.uint32();
  // Each entry needs at least 12 bytes: bound the count by what is there.
  if (count > MAX_NAMES || count * 12 > r.remaining) {
    throw new SftpError(
      `Malformed SSH_FXP_NAME: ${count} entries do not fit in ${r.remaining} bytes`,
      SftpStatus.BAD_MESSAGE,
    );
  }
  const out: SftpEntry[] = [];
  for (let i = 0; i < count; i++) {
    const filename = r.utf8(MAX_PATH);
    const longname = r.utf8(MAX_PATH);
    out.push({ filename, longname, attrs: readAttrs(r) });
  }
  return out;
}

function readSingleName(reply: Reply, op: string, path: string): string {
  const names = readNames(expectReply(reply, FXP.NAME, op, path));
  if (names.length !== 1) {
    throw new SftpError(
      `Cannot ${op} ${path}: the server sent ${names.length} names instead of 1`,
      SftpStatus.BAD_MESSAGE,
      { path },
    );
  }
  return names[0].filename;
}

function readStatVfs(r: SshReader): SftpStatVfs {
  const n = () => Number(r.uint64());
  return {
    bsize: n(),
    frsize: n(),
    blocks: n(),
    bfree: n(),
    bavail: n(),
    files: n(),
    ffree: n(),
    favail: n(),
    fsid: n(),
    flag: n(),
    namemax: n(),
  };
}

/** An open remote directory; iterate it with `for await`. */
export class SftpDir {
  readonly #conn: Conn;
  /** The server's handle. */
  readonly handle: Uint8Array;
  /** The path it was opened with. */
  readonly path: string;
  #closed = false;

  static {
    makeDir = (conn, handle, path) => new SftpDir(conn, handle, path);
  }

  private constructor(conn: Conn, handle: Uint8Array, path: string) {
    this.#conn = conn;
    this.handle = handle;
    this.path = path;
  }

  /** The next batch of entries, or `null` at the end. */
  async read(): Promise<SftpEntry[] | null> {
    const w = startPacket(FXP.READDIR, this.#conn.nextId()).string(
      this.handle,
    );
    const reply = await this.#conn.request(finishPacket(w));
    if (reply.type === FXP.STATUS) {
      const err = statusError(reply.r, "read directory", this.path);
      if (err.code === SftpStatus.EOF) return null;
      throw err;
    }
    return readNames(expectReply(reply, FXP.NAME, "read directory", this.path));
  }

  /** Every remaining entry, batch by batch. */
  async *[Symbol.asyncIterator](): AsyncIterator<SftpEntry> {
    for (;;) {
      const batch = await this.read();
      if (batch === null) return;
      yield* batch;
    }
  }

  /** Closes the handle (again: no-op). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const w = startPacket(FXP.CLOSE, this.#conn.nextId()).string(this.handle);
    expectStatus(await this.#conn.request(finishPacket(w)), "close", this.path);
  }
}

/**
 * An open remote file. {@linkcode SftpFile.readable} and
 * {@linkcode SftpFile.writable} stream the whole file with many requests in
 * flight; {@linkcode SftpFile.read} and {@linkcode SftpFile.write} are
 * single requests at explicit offsets.
 */
export class SftpFile {
  readonly #client: SftpClient;
  readonly #conn: Conn;
  /** The server's handle. */
  readonly handle: Uint8Array;
  /** The path it was opened with (for messages). */
  readonly path: string;
  /** The SSH_FXF_* flags it was opened with. */
  readonly flags: number;
  #closed = false;
  #readable: ReadableStream<Uint8Array> | null = null;
  #writable: WritableStream<Uint8Array> | null = null;

  static {
    makeFile = (client, conn, handle, path, flags) =>
      new SftpFile(client, conn, handle, path, flags);
  }

  private constructor(
    client: SftpClient,
    conn: Conn,
    handle: Uint8Array,
    path: string,
    flags: number,
  ) {
    this.#client = client;
    this.#conn = conn;
    this.handle = handle;
    this.path = path;
    this.flags = flags;
  }

  /** The whole file from offset 0, pipelined (created on first use). */
  get readable(): ReadableStream<Uint8Array> {
    this.#readable ??= this.createReadable();
    return this.#readable;
  }

  /** A stream writing from offset 0, pipelined (created on first use). */
  get writable(): WritableStream<Uint8Array> {
    this.#writable ??= this.createWritable();
    return this.#writable;
  }

  #readPacket(offset: number, length: number): Uint8Array {
    const w = startPacket(
      FXP.READ,
      this.#conn.nextId(),
      this.handle.length + 16,
    )
      .string(this.handle).uint64(BigInt(offset)).uint32(length);
    return finishPacket(w);
  }

  /** Reads up to `length` bytes at `offset`; `null` at end of file. */
  async read(offset: number, length: number): Promise<Uint8Array | null> {
    offsetArg(offset, "offset");
    posInt(length, 1, "length", 0xffff_ffff);
    return parseData(
      await this.#conn.request(this.#readPacket(offset, length)),
      this.path,
    );
  }

  /** Builds a WRITE packet for `length` bytes; data goes at the returned offset. */
  #writePacket(offset: number, length: number): [Uint8Array, number] {
    const header = 4 + 1 + 4 + 4 + this.handle.length + 8 + 4;
    const packet = new Uint8Array(header + length);
    const view = new DataView(packet.buffer);
    view.setUint32(0, packet.length - 4);
    packet[4] = FXP.WRITE;
    view.setUint32(5, this.#conn.nextId());
    view.setUint32(9, this.handle.length);
    packet.set(this.handle, 13);
    let p = 13 + this.handle.length;
    view.setBigUint64(p, BigInt(offset));
    p += 8;
    view.setUint32(p, length);
    return [packet, header];
  }

  /** Writes all of `data` at `offset` (split into requests the server takes). */
  async write(offset: number, data: Uint8Array): Promise<void> {
    offsetArg(offset, "offset");
    const size = this.#client.writeSize;
    const replies: Promise<Reply>[] = [];
    for (let pos = 0; pos < data.length; pos += size) {
      const n = Math.min(size, data.length - pos);
      const [packet, at] = this.#writePacket(offset + pos, n);
      packet.set(data.subarray(pos, pos + n), at);
      const reply = this.#conn.request(packet);
      reply.catch(() => {});
      replies.push(reply);
    }
    for (const r of replies) expectStatus(await r, "write", this.path);
  }

  /** Attributes of the open file (`SSH_FXP_FSTAT`). */
  async stat(): Promise<SftpAttributes> {
    const w = startPacket(FXP.FSTAT, this.#conn.nextId()).string(this.handle);
    const reply = await this.#conn.request(finishPacket(w));
    return readAttrs(expectReply(reply, FXP.ATTRS, "fstat", this.path));
  }

  /** Changes attributes of the open file (`SSH_FXP_FSETSTAT`). */
  async setstat(attrs: SftpAttributes): Promise<void> {
    const w = startPacket(FXP.FSETSTAT, this.#conn.nextId()).string(
      this.handle,
    );
    writeAttrs(w, attrs);
    expectStatus(
      await this.#conn.request(finishPacket(w)),
      "fsetstat",
      this.path,
    );
  }

  /** Flushes the file to disk on the server: `fsync@openssh.com`. */
  async fsync(): Promise<void> {
    if (!this.#client.supports("fsync@openssh.com", "1")) {
      throw new SftpError(
        `Cannot fsync ${this.path}: the server does not support fsync@openssh.com`,
        SftpStatus.OP_UNSUPPORTED,
        { path: this.path },
      );
    }
    const w = startPacket(FXP.EXTENDED, this.#conn.nextId()).string(
      "fsync@openssh.com",
    ).string(this.handle);
    expectStatus(await this.#conn.request(finishPacket(w)), "fsync", this.path);
  }

  /**
   * A stream of the file's bytes from `start` to `end` (or the end of the
   * file), with up to `concurrency` READ requests in flight, delivered in
   * order. Short reads are re-requested, so any server works.
   */
  createReadable(options: SftpReadOptions = {}): ReadableStream<Uint8Array> {
    const chunk = posInt(
      options.chunkSize,
      this.#client.readSize,
      "chunkSize",
      0xffff_ffff,
    );
    const depth = posInt(
      options.concurrency,
      this.#client.concurrency,
      "concurrency",
      4096,
    );
    let next = offsetArg(options.start ?? 0, "start");
    const end = options.end === undefined
      ? Infinity
      : offsetArg(options.end, "end");
    const queue: { offset: number; length: number; reply: Promise<Reply> }[] =
      [];
    let eof = false;
    // Grow the pipeline gradually, as OpenSSH's sftp does, so small files
    // cost one or two requests.
    let window = 1;
    const issue = (offset: number, length: number, at?: number) => {
      const reply = this.#conn.request(this.#readPacket(offset, length));
      reply.catch(() => {});
      const entry = { offset, length, reply };
      if (at === undefined) queue.push(entry);
      else queue.splice(at, 0, entry);
    };
    const fill = () => {
      while (!eof && queue.length < window && next < end) {
        const n = Math.min(chunk, end - next);
        issue(next, n);
        next += n;
      }
    };
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        for (;;) {
          fill();
          const head = queue.shift();
          if (head === undefined) {
            controller.close();
            return;
          }
          const data = parseData(await head.reply, this.path);
          if (data === null || data.length === 0) {
            // End of file: later requests are moot (their replies are
            // awaited by nobody but still matched, so nothing leaks).
            eof = true;
            queue.length = 0;
            controller.close();
            return;
          }
          if (data.length > head.length) {
            throw new SftpError(
              `Cannot read ${this.path}: the server sent ${data.length} bytes for a read of ${head.length}`,
              SftpStatus.BAD_MESSAGE,
              { path: this.path },
            );
          }
          if (data.length < head.length) {
            // A short read: ask for the rest before anything later.
            issue(head.offset + data.length, head.length - data.length, 0);
          } else if (window < depth) {
            window = Math.min(depth, window * 2);
          }
          controller.enqueue(data);
          return;
        }
      },
      cancel: () => {
        eof = true;
        queue.length = 0;
      },
    }, { highWaterMark: 0 });
  }

  /**
   * A stream writing at `start` onwards, split into WRITE requests of
   * `chunkSize`, with up to `concurrency` of them unanswered. A failed
   * write errors the stream; `close()` resolves once every write was
   * acknowledged.
   */
  createWritable(options: SftpWriteOptions = {}): WritableStream<Uint8Array> {
    const size = posInt(
      options.chunkSize,
      this.#client.writeSize,
      "chunkSize",
      MAX_DATA,
    );
    const depth = posInt(
      options.concurrency,
      this.#client.concurrency,
      "concurrency",
      4096,
    );
    let offset = offsetArg(options.start ?? 0, "start");
    const pending: Promise<Reply>[] = [];
    const settle = async (keep: number) => {
      while (pending.length > keep) {
        expectStatus(await pending.shift()!, "write", this.path);
      }
    };
    return new WritableStream<Uint8Array>({
      write: async (data) => {
        if (!(data instanceof Uint8Array)) {
          throw new TypeError(
            `Cannot write to ${this.path}: chunk is not a Uint8Array`,
          );
        }
        for (let pos = 0; pos < data.length; pos += size) {
          const n = Math.min(size, data.length - pos);
          const [packet, at] = this.#writePacket(offset, n);
          packet.set(data.subarray(pos, pos + n), at);
          offset += n;
          const { reply, sent } = this.#conn.requestWithSent(packet);
          reply.catch(() => {});
          pending.push(reply);
          await sent;
          await settle(depth - 1);
        }
      },
      close: () => settle(0),
      abort: async () => {
        await Promise.allSettled(pending);
      },
    });
  }

  /**
   * Writes `size` bytes of `input` from its current position at offset 0,
   * reading local data straight into WRITE packets. Used by `put`.
   */
  async upload(
    input: Deno.FsFile,
    size: number,
    options: SftpTransferOptions = {},
  ): Promise<void> {
    const chunk = posInt(
      options.chunkSize,
      this.#client.writeSize,
      "chunkSize",
      MAX_DATA,
    );
    const depth = posInt(
      options.concurrency,
      this.#client.concurrency,
      "concurrency",
      4096,
    );
    const pending: { reply: Promise<Reply>; length: number }[] = [];
    let offset = 0;
    let acked = 0;
    options.onProgress?.({ bytes: 0, total: size });
    const settleOne = async () => {
      const p = pending.shift()!;
      expectStatus(await p.reply, "write", this.path);
      acked += p.length;
      options.onProgress?.({ bytes: acked, total: size });
    };
    // Local data goes straight into the next WRITE packet, read while the
    // previous one is being sent.
    const readChunk = async (at: number) => {
      const [packet, header] = this.#writePacket(at, chunk);
      let filled = 0;
      while (filled < chunk) {
        const n = await input.read(packet.subarray(header + filled));
        if (n === null) break;
        filled += n;
      }
      return { packet, header, filled };
    };
    let reading:
      | Promise<
        { packet: Uint8Array; header: number; filled: number }
      >
      | null = readChunk(0);
    try {
      while (reading !== null) {
        const { packet, header: at, filled } = await reading;
        reading = null;
        if (filled === 0) break;
        if (filled === chunk) reading = readChunk(offset + filled);
        let out = packet;
        if (filled < chunk) {
          out = packet.subarray(0, at + filled);
          const view = new DataView(out.buffer, out.byteOffset);
          view.setUint32(0, out.length - 4);
          view.setUint32(at - 4, filled);
        }
        offset += filled;
        const { reply, sent } = this.#conn.requestWithSent(out);
        reply.catch(() => {});
        pending.push({ reply, length: filled });
        await sent;
        while (pending.length >= depth) await settleOne();
      }
      while (pending.length > 0) await settleOne();
    } finally {
      await (reading as Promise<unknown> | null)?.catch(() => {});
      await Promise.allSettled(pending.map((p) => p.reply));
    }
  }

  /** Closes the handle (again: no-op). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const w = startPacket(FXP.CLOSE, this.#conn.nextId()).string(this.handle);
    expectStatus(await this.#conn.request(finishPacket(w)), "close", this.path);
  }

  /** Same as {@linkcode SftpFile.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function parseData(reply: Reply, path: string): Uint8Array | null {
  if (reply.type === FXP.STATUS) {
    const err = statusError(reply.r, "read", path);
    if (err.code === SftpStatus.EOF) return null;
    throw err;
  }
  const r = expectReply(reply, FXP.DATA, "read", path);
  return r.string();
}
