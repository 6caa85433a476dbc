/**
 * The SFTP version 3 server: serves a directory of the local file system
 * over any byte stream pair ({@linkcode serveSftp}) or as the `sftp`
 * subsystem of an SSH session ({@linkcode sftpSubsystem}).
 *
 * @module
 */

import { SshReader } from "../wire/reader.ts";
import {
  attrsFromFileInfo,
  finishPacket,
  FXP,
  longName,
  MAX_DATA,
  MAX_HANDLE,
  MAX_PACKET,
  MAX_PATH,
  OpenFlags,
  PacketFramer,
  readAttrs,
  type SftpAttributes,
  SftpStatus,
  startPacket,
  STATUS_TEXT,
  writeAttrs,
} from "./_protocol.ts";
import type { SftpStream } from "./client.ts";
import { statvfs, statvfsAvailable } from "./_statvfs.ts";

/**
 * What {@linkcode sftpSubsystem} needs from a server session: a
 * `ServerSession` is one.
 */
export interface SftpServerChannel {
  /** Bytes from the client. */
  readonly stdin: ReadableStream<Uint8Array>;
  /** Bytes to the client. */
  readonly stdout: WritableStream<Uint8Array>;
  /** Diagnostics to the client. */
  readonly stderr: WritableStream<Uint8Array>;
  /** Whether the channel is closing or closed. */
  readonly isClosed: boolean;
  /** Sends the exit status, then EOF and CLOSE. */
  exit(code: number): Promise<void>;
}

/** Options for {@linkcode serveSftp} and {@linkcode sftpSubsystem}. */
export interface SftpServerOptions {
  /**
   * The directory served, chroot-style: clients see it as `/`, and every
   * path is resolved under it. `..` stops at it, and symlinks that lead
   * out of it are refused (PERMISSION_DENIED). `"/"` serves the whole
   * file system, like OpenSSH's `internal-sftp` without `ChrootDirectory`.
   */
  root: string;
  /**
   * Refuse every request that would change something (PERMISSION_DENIED),
   * like `sftp-server -R`.
   * @default false
   */
  readOnly?: boolean;
  /**
   * The directory relative paths start from, as the client sees it
   * (`realpath(".")`), e.g. the user's home when `root` is `"/"`.
   * @default "/"
   */
  home?: string;
  /**
   * Most open file and directory handles; more opens fail with FAILURE.
   * @default 256
   */
  maxHandles?: number;
  /** Called once with the reason when a client breaks the protocol. */
  onError?: (error: Error) => void;
}

/** A protocol violation: the session ends. */
class Violation extends Error {}

/** A failed request: answered with this status. */
class Refusal extends Error {
  constructor(readonly code: number, message?: string) {
    super(message ?? STATUS_TEXT[code]);
  }
}

interface FileHandle {
  kind: "file";
  file: Deno.FsFile;
  path: string;
  /** Where the OS file position is, or null when unknown. */
  pos: number | null;
  append: boolean;
}

interface DirHandle {
  kind: "dir";
  path: string;
  entries: AsyncIterator<Deno.DirEntry> | null;
  done: boolean;
}

type Handle = FileHandle | DirHandle;

const EXTENSIONS: [string, string][] = [
  ["posix-rename@openssh.com", "1"],
  ["hardlink@openssh.com", "1"],
  ["fsync@openssh.com", "1"],
  ["limits@openssh.com", "1"],
  ["expand-path@openssh.com", "1"],
  ["copy-data", "1"],
  ["home-directory", "1"],
];

/** Entries per NAME reply, as OpenSSH's sftp-server sends. */
const NAMES_PER_REPLY = 100;
/** Bytes of NAME reply beyond which a batch is cut. */
const NAMES_BYTES = 128 * 1024;

/** Maps a Deno file system error to an SFTP status, as sftp-server maps errno. */
function refusalOf(e: unknown): Refusal {
  if (e instanceof Refusal) return e;
  // Deno's messages look like "No such file or directory (os error 2):
  // stat '/real/path'": keep the errno text, never the (real) path.
  const text = String((e as Error)?.message ?? "").split(" (os error")[0]
    .split(":")[0].trim();
  let code: number = SftpStatus.FAILURE;
  if (e instanceof Deno.errors.NotFound) code = SftpStatus.NO_SUCH_FILE;
  else if (e instanceof Deno.errors.NotADirectory) {
    code = SftpStatus.NO_SUCH_FILE;
  } else if (e instanceof Deno.errors.FilesystemLoop) {
    code = SftpStatus.NO_SUCH_FILE;
  } else if (e instanceof Deno.errors.PermissionDenied) {
    code = SftpStatus.PERMISSION_DENIED;
  } else if (e instanceof Deno.errors.NotSupported) {
    code = SftpStatus.OP_UNSUPPORTED;
  }
  return new Refusal(code, text && text.length < 200 ? text : undefined);
}

/** Lexically normalises an absolute path: no `.`, `..` or empty parts. */
function normalize(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}

function parentOf(virtual: string): string {
  const i = virtual.lastIndexOf("/");
  return i <= 0 ? "/" : virtual.slice(0, i);
}

function baseName(virtual: string): string {
  return virtual.slice(virtual.lastIndexOf("/") + 1);
}

/** Reads `name:x:id:...` lines into id -> name. */
function readIdNames(path: string): Map<number, string> {
  const map = new Map<number, string>();
  try {
    for (const line of Deno.readTextFileSync(path).split("\n")) {
      const f = line.split(":");
      if (f.length > 2 && f[0] && /^\d+$/.test(f[2])) {
        const id = Number(f[2]);
        if (!map.has(id)) map.set(id, f[0]);
      }
    }
  } catch {
    // Unreadable or absent: numeric ids.
  }
  return map;
}

/**
 * Serves SFTP version 3 over `stream` until the client's EOF, a protocol
 * violation (malformed or oversized packet: the session ends) or an I/O
 * failure. Resolves when done and closes the stream's writable side; never
 * rejects.
 *
 * Implements OPEN/CLOSE/READ/WRITE, LSTAT/FSTAT/STAT, SETSTAT/FSETSTAT,
 * OPENDIR/READDIR, REMOVE, MKDIR/RMDIR, REALPATH, RENAME, READLINK,
 * SYMLINK (OpenSSH argument order) and the extensions
 * `posix-rename@openssh.com`, `hardlink@openssh.com`, `fsync@openssh.com`,
 * `limits@openssh.com`, `expand-path@openssh.com`, `copy-data`,
 * `home-directory`, and `statvfs@openssh.com`/`fstatvfs@openssh.com` on
 * 64-bit Linux when the `ffi` permission is granted.
 *
 * Containment is checked with `realpath` before each operation; a process
 * that can change the served tree at the same moment could race a check
 * (Deno has no `openat`/`O_NOFOLLOW`), so serve trees that only the
 * client's own user can write, as with any chroot.
 *
 * @example Serve a temporary directory to our own client
 * ```ts
 * import { SftpClient, serveSftp } from "@fynx/ssh/sftp";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/a.txt`, "alpha");
 * const up = new TransformStream<Uint8Array, Uint8Array>();
 * const down = new TransformStream<Uint8Array, Uint8Array>();
 * const served = serveSftp(
 *   { readable: up.readable, writable: down.writable },
 *   { root, readOnly: true },
 * );
 * const sftp = await SftpClient.open({
 *   readable: down.readable,
 *   writable: up.writable,
 * });
 * assert.equal(await sftp.realpath("../../.."), "/");
 * assert.equal((await sftp.stat("/a.txt")).size, 5);
 * await assert.rejects(sftp.remove("/a.txt"), /PERMISSION_DENIED/);
 * await sftp.close();
 * await served;
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function serveSftp(
  stream: SftpStream,
  options: SftpServerOptions,
): Promise<void> {
  const server = new SftpServer(stream, options);
  await server.run();
}

/**
 * A session handler for the `sftp` subsystem: give it to
 * `commandSessionHandler({ subsystems: { sftp: sftpSubsystem(...) } })`, or
 * call it from your own `onRequest` once a `subsystem` request for `sftp`
 * was accepted. It serves the session, then sends exit status 0 (1 after a
 * protocol violation, with the reason on stderr).
 */
export function sftpSubsystem(
  options: SftpServerOptions,
): (session: SftpServerChannel) => void {
  if (typeof options?.root !== "string" || options.root === "") {
    throw new TypeError("sftpSubsystem: options.root is required");
  }
  return (session: SftpServerChannel): void => {
    let failure: Error | null = null;
    const run = serveSftp(
      { readable: session.stdin, writable: session.stdout },
      {
        ...options,
        onError: (e) => {
          failure = e;
          options.onError?.(e);
        },
      },
    );
    run.then(async () => {
      if (session.isClosed) return;
      if (failure !== null) {
        const w = session.stderr.getWriter();
        await w.write(
          new TextEncoder().encode(`sftp-server: ${failure.message}\n`),
        ).catch(() => {});
        w.releaseLock();
      }
      await session.exit(failure === null ? 0 : 1);
    }).catch(() => {});
  };
}

class SftpServer {
  readonly #stream: SftpStream;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #root: string;
  readonly #readOnly: boolean;
  readonly #home: string;
  readonly #maxHandles: number;
  readonly #onError: ((e: Error) => void) | undefined;
  #rootReal = "";
  readonly #handles = new Map<number, Handle>();
  #nextHandle = 1;
  #initialized = false;
  #users: Map<number, string> | null = null;
  #groups: Map<number, string> | null = null;
  #writeFailed = false;
  readonly #statvfs = statvfsAvailable();

  constructor(stream: SftpStream, options: SftpServerOptions) {
    if (typeof options?.root !== "string" || options.root === "") {
      throw new TypeError("serveSftp: options.root is required");
    }
    this.#stream = stream;
    this.#writer = stream.writable.getWriter();
    this.#root = options.root;
    this.#readOnly = options.readOnly === true;
    this.#home = normalize(options.home ?? "/");
    const max = options.maxHandles ?? 256;
    if (!Number.isInteger(max) || max < 1 || max > 65536) {
      throw new RangeError(`Invalid maxHandles: ${max} (1..65536)`);
    }
    this.#maxHandles = max;
    this.#onError = options.onError;
  }

  async run(): Promise<void> {
    const reader = this.#stream.readable.getReader();
    const framer = new PacketFramer(MAX_PACKET);
    const packets: Uint8Array[] = [];
    try {
      this.#rootReal = await Deno.realPath(this.#root);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          if (framer.partial) throw new Violation("truncated packet at EOF");
          break;
        }
        // Packets before a bad length in the same chunk are still served.
        let bad: unknown = null;
        try {
          framer.push(value, (p) => packets.push(p));
        } catch (e) {
          bad = e;
        }
        while (packets.length > 0) {
          await this.#dispatch(packets.shift()!);
          if (this.#writeFailed) return;
          // Backpressure: wait while the client is not reading replies.
          await this.#writer.ready;
        }
        if (bad !== null) throw bad;
      }
    } catch (e) {
      if (!this.#writeFailed) {
        const reason = e instanceof Violation
          ? e
          : e instanceof RangeError || e instanceof SyntaxError
          ? new Violation(e.message)
          : new Violation(`I/O failure: ${(e as Error)?.message ?? e}`);
        this.#onError?.(reason);
      }
    } finally {
      reader.cancel().catch(() => {});
      for (const h of this.#handles.values()) {
        if (h.kind === "file") {
          try {
            h.file.close();
          } catch {
            // Already closed.
          }
        } else {
          await h.entries?.return?.().catch(() => {});
        }
      }
      this.#handles.clear();
      await this.#writer.close().catch(() => {});
    }
  }

  #send(packet: Uint8Array): void {
    this.#writer.write(packet).catch(() => {
      this.#writeFailed = true;
    });
  }

  #status(id: number, code: number, message?: string): void {
    this.#send(
      finishPacket(
        startPacket(FXP.STATUS, id).uint32(code).string(
          message ?? STATUS_TEXT[code] ?? "Failure",
        ).string(""),
      ),
    );
  }

  async #dispatch(packet: Uint8Array): Promise<void> {
    const type = packet[0];
    const r = new SshReader(packet.subarray(1), `SFTP packet type ${type}`);
    if (!this.#initialized) {
      if (type !== FXP.INIT) {
        throw new Violation(`expected SSH_FXP_INIT, got packet type ${type}`);
      }
      r.uint32(); // The client's version; we answer 3 whatever it is.
      this.#initialized = true;
      const w = startPacket(FXP.VERSION, null, 256).uint32(3);
      for (const [name, version] of EXTENSIONS) w.string(name).string(version);
      if (this.#statvfs) {
        w.string("statvfs@openssh.com").string("2");
        w.string("fstatvfs@openssh.com").string("2");
      }
      this.#send(finishPacket(w));
      return;
    }
    if (type === FXP.INIT) throw new Violation("second SSH_FXP_INIT");
    const id = r.uint32();
    try {
      await this.#request(type, id, r);
    } catch (e) {
      if (e instanceof Violation) throw e;
      if (
        (e instanceof SyntaxError || e instanceof RangeError) &&
        e.message.startsWith("Malformed")
      ) throw new Violation(e.message);
      const refusal = refusalOf(e);
      this.#status(id, refusal.code, refusal.message);
    }
  }

  // ---- paths ---------------------------------------------------------------

  /** A client path as an absolute path inside the root. */
  #virtual(r: SshReader): string {
    const path = r.utf8(MAX_PATH);
    if (path.includes("\0")) throw new Refusal(SftpStatus.BAD_MESSAGE);
    return normalize(path.startsWith("/") ? path : `${this.#home}/${path}`);
  }

  #real(virtual: string): string {
    if (this.#rootReal === "/") return virtual;
    return virtual === "/" ? this.#rootReal : this.#rootReal + virtual;
  }

  #inside(real: string): boolean {
    return this.#rootReal === "/" || real === this.#rootReal ||
      real.startsWith(this.#rootReal + "/");
  }

  /** The real path, once its parent directory is known to be inside the root. */
  async #noFollow(virtual: string): Promise<string> {
    if (this.#rootReal === "/") return virtual;
    if (virtual === "/") return this.#rootReal;
    const parent = await Deno.realPath(this.#real(parentOf(virtual)));
    if (!this.#inside(parent)) {
      throw new Refusal(SftpStatus.PERMISSION_DENIED, "Path escapes the root");
    }
    return `${parent === "/" ? "" : parent}/${baseName(virtual)}`;
  }

  /**
   * The real path with symlinks resolved, refused when it leads out of the
   * root; for a path that does not exist (yet), its parent is checked.
   */
  async #follow(virtual: string): Promise<string> {
    if (this.#rootReal === "/") return virtual;
    let resolved: string;
    try {
      resolved = await Deno.realPath(this.#real(virtual));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      // A dangling symlink must not be created through either.
      const parent = await this.#noFollow(virtual);
      try {
        const info = await Deno.lstat(parent);
        if (info.isSymlink) {
          throw new Refusal(
            SftpStatus.PERMISSION_DENIED,
            "Path escapes the root",
          );
        }
      } catch (e2) {
        if (!(e2 instanceof Deno.errors.NotFound)) throw e2;
      }
      return parent;
    }
    if (!this.#inside(resolved)) {
      throw new Refusal(SftpStatus.PERMISSION_DENIED, "Path escapes the root");
    }
    return resolved;
  }

  /** Maps a real path back to what the client sees. */
  #toVirtual(real: string): string {
    if (this.#rootReal === "/") return real;
    if (real === this.#rootReal) return "/";
    return real.slice(this.#rootReal.length);
  }

  #writable(): void {
    if (this.#readOnly) {
      throw new Refusal(SftpStatus.PERMISSION_DENIED, "Read-only server");
    }
  }

  // ---- handles -------------------------------------------------------------

  #newHandle(h: Handle): number {
    if (this.#handles.size >= this.#maxHandles) {
      if (h.kind === "file") h.file.close();
      throw new Refusal(SftpStatus.FAILURE, "Too many open handles");
    }
    // Never reused within a session: a stale handle cannot hit a new file.
    const n = this.#nextHandle++;
    this.#handles.set(n, h);
    return n;
  }

  #sendHandle(id: number, n: number): void {
    const w = startPacket(FXP.HANDLE, id, 16).uint32(4).uint32(n);
    this.#send(finishPacket(w));
  }

  #handle(r: SshReader | Uint8Array): Handle {
    const bytes = r instanceof Uint8Array ? r : r.string(MAX_HANDLE);
    const n = bytes.length === 4
      ? ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0
      : 0;
    const h = this.#handles.get(n);
    if (h === undefined) {
      throw new Refusal(SftpStatus.FAILURE, "Invalid handle");
    }
    return h;
  }

  #fileHandle(r: SshReader | Uint8Array): FileHandle {
    const h = this.#handle(r);
    if (h.kind !== "file") {
      throw new Refusal(SftpStatus.FAILURE, "Not a file handle");
    }
    return h;
  }

  #closeHandle(r: SshReader): Promise<void> | void {
    const bytes = r.string(MAX_HANDLE);
    const n = bytes.length === 4
      ? ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0
      : 0;
    const h = this.#handles.get(n);
    if (h === undefined) {
      throw new Refusal(SftpStatus.FAILURE, "Invalid handle");
    }
    this.#handles.delete(n);
    if (h.kind === "file") h.file.close();
    else if (h.entries?.return) return h.entries.return().then(() => {});
  }

  // ---- replies -------------------------------------------------------------

  #attrs(id: number, a: SftpAttributes): void {
    this.#send(finishPacket(writeAttrs(startPacket(FXP.ATTRS, id, 48), a)));
  }

  #name(id: number, name: string, attrs: SftpAttributes = {}): void {
    const w = startPacket(FXP.NAME, id, name.length * 3 + 32).uint32(1)
      .string(name).string(name);
    this.#send(finishPacket(writeAttrs(w, attrs)));
  }

  #ok(id: number): void {
    this.#status(id, SftpStatus.OK);
  }

  #long(name: string, a: SftpAttributes, nlink: number): string {
    this.#users ??= readIdNames("/etc/passwd");
    this.#groups ??= readIdNames("/etc/group");
    return longName(name, a, {
      nlink,
      user: a.uid === undefined ? undefined : this.#users.get(a.uid),
      group: a.gid === undefined ? undefined : this.#groups.get(a.gid),
    });
  }

  // ---- requests ------------------------------------------------------------

  async #request(type: number, id: number, r: SshReader): Promise<void> {
    switch (type) {
      case FXP.OPEN:
        return await this.#open(id, r);
      case FXP.CLOSE:
        await this.#closeHandle(r);
        return this.#ok(id);
      case FXP.READ:
        return await this.#read(id, r);
      case FXP.WRITE:
        return await this.#write(id, r);
      case FXP.LSTAT: {
        const real = await this.#noFollow(this.#virtual(r));
        return this.#attrs(id, attrsFromFileInfo(await Deno.lstat(real)));
      }
      case FXP.STAT: {
        const real = await this.#follow(this.#virtual(r));
        return this.#attrs(id, attrsFromFileInfo(await Deno.stat(real)));
      }
      case FXP.FSTAT: {
        const h = this.#fileHandle(r);
        return this.#attrs(id, attrsFromFileInfo(await h.file.stat()));
      }
      case FXP.SETSTAT: {
        const virtual = this.#virtual(r);
        const attrs = readAttrs(r);
        this.#writable();
        await this.#setstat(await this.#follow(virtual), attrs, null);
        return this.#ok(id);
      }
      case FXP.FSETSTAT: {
        const handle = r.string(MAX_HANDLE);
        const attrs = readAttrs(r);
        const h = this.#fileHandle(handle);
        this.#writable();
        await this.#setstat(
          await this.#follow(h.path),
          attrs,
          h.file,
        );
        return this.#ok(id);
      }
      case FXP.OPENDIR: {
        const virtual = this.#virtual(r);
        const real = await this.#follow(virtual);
        const info = await Deno.stat(real);
        if (!info.isDirectory) {
          throw new Refusal(SftpStatus.NO_SUCH_FILE, "Not a directory");
        }
        // Opened now, so permission errors show up here, as opendir(3).
        const entries = Deno.readDir(real)[Symbol.asyncIterator]();
        const n = this.#newHandle({
          kind: "dir",
          path: virtual,
          entries,
          done: false,
        });
        return this.#sendHandle(id, n);
      }
      case FXP.READDIR:
        return await this.#readdir(id, r);
      case FXP.REMOVE: {
        const virtual = this.#virtual(r);
        this.#writable();
        const real = await this.#noFollow(virtual);
        if ((await Deno.lstat(real)).isDirectory) {
          throw new Refusal(SftpStatus.FAILURE, "Is a directory");
        }
        await Deno.remove(real);
        return this.#ok(id);
      }
      case FXP.MKDIR: {
        const virtual = this.#virtual(r);
        const attrs = readAttrs(r);
        this.#writable();
        await Deno.mkdir(await this.#noFollow(virtual), {
          mode: (attrs.permissions ?? 0o777) & 0o7777,
        });
        return this.#ok(id);
      }
      case FXP.RMDIR: {
        const virtual = this.#virtual(r);
        this.#writable();
        if (virtual === "/") throw new Refusal(SftpStatus.PERMISSION_DENIED);
        const real = await this.#noFollow(virtual);
        if (!(await Deno.lstat(real)).isDirectory) {
          throw new Refusal(SftpStatus.NO_SUCH_FILE, "Not a directory");
        }
        await Deno.remove(real);
        return this.#ok(id);
      }
      case FXP.REALPATH: {
        const virtual = this.#virtual(r);
        const real = await this.#follow(virtual);
        // Must exist, as sftp-server's realpath.
        await Deno.lstat(real);
        return this.#name(id, this.#toVirtual(real), {});
      }
      case FXP.RENAME:
        return await this.#rename(id, r, false);
      case FXP.READLINK: {
        const real = await this.#noFollow(this.#virtual(r));
        let target = await Deno.readLink(real);
        if (
          this.#rootReal !== "/" && target.startsWith(this.#rootReal + "/")
        ) {
          target = this.#toVirtual(target);
        }
        return this.#name(id, target);
      }
      case FXP.SYMLINK: {
        // OpenSSH order (PROTOCOL section 4.1): target first, then link.
        let target = r.utf8(MAX_PATH);
        const link = this.#virtual(r);
        this.#writable();
        if (target.includes("\0") || target === "") {
          throw new Refusal(SftpStatus.BAD_MESSAGE);
        }
        // An absolute target means the same place the client sees.
        if (this.#rootReal !== "/" && target.startsWith("/")) {
          target = this.#real(normalize(target));
        }
        await Deno.symlink(target, await this.#noFollow(link));
        return this.#ok(id);
      }
      case FXP.EXTENDED:
        return await this.#extended(id, r);
      default:
        throw new Refusal(SftpStatus.OP_UNSUPPORTED);
    }
  }

  async #open(id: number, r: SshReader): Promise<void> {
    const virtual = this.#virtual(r);
    const pflags = r.uint32();
    const attrs = readAttrs(r);
    const writes = OpenFlags.WRITE | OpenFlags.APPEND | OpenFlags.CREAT |
      OpenFlags.TRUNC;
    if (pflags & writes) this.#writable();
    const real = await this.#follow(virtual);
    const create = (pflags & OpenFlags.CREAT) !== 0;
    const file = await Deno.open(real, {
      read: (pflags & OpenFlags.READ) !== 0 ||
        (pflags & (OpenFlags.WRITE | OpenFlags.APPEND)) === 0,
      write: (pflags & OpenFlags.WRITE) !== 0 &&
        (pflags & OpenFlags.APPEND) === 0,
      append: (pflags & OpenFlags.APPEND) !== 0,
      create: create && (pflags & OpenFlags.EXCL) === 0,
      createNew: create && (pflags & OpenFlags.EXCL) !== 0,
      truncate: (pflags & OpenFlags.TRUNC) !== 0,
      mode: create ? (attrs.permissions ?? 0o666) & 0o7777 : undefined,
    });
    let n: number;
    try {
      n = this.#newHandle({
        kind: "file",
        file,
        path: virtual,
        pos: 0,
        append: (pflags & OpenFlags.APPEND) !== 0,
      });
    } catch (e) {
      try {
        file.close();
      } catch {
        // Closed by #newHandle.
      }
      throw e;
    }
    this.#sendHandle(id, n);
  }

  async #seek(h: FileHandle, offset: number): Promise<void> {
    if (h.pos === offset) return;
    h.pos = null;
    await h.file.seek(offset, Deno.SeekMode.Start);
    h.pos = offset;
  }

  async #read(id: number, r: SshReader): Promise<void> {
    const handle = r.string(MAX_HANDLE);
    const offset = Number(r.uint64());
    const len = Math.min(r.uint32(), MAX_DATA);
    const h = this.#fileHandle(handle);
    if (!Number.isSafeInteger(offset)) {
      throw new Refusal(SftpStatus.FAILURE, "Offset too large");
    }
    await this.#seek(h, offset);
    const header = 13;
    const packet = new Uint8Array(header + len);
    let filled = 0;
    while (filled < len) {
      let n: number | null;
      try {
        n = await h.file.read(packet.subarray(header + filled));
      } catch (e) {
        h.pos = null;
        throw e;
      }
      if (n === null) break;
      filled += n;
    }
    h.pos = offset + filled;
    if (filled === 0 && len > 0) {
      return this.#status(id, SftpStatus.EOF);
    }
    const out = packet.subarray(0, header + filled);
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    view.setUint32(0, out.length - 4);
    out[4] = FXP.DATA;
    view.setUint32(5, id);
    view.setUint32(9, filled);
    this.#send(out);
  }

  async #write(id: number, r: SshReader): Promise<void> {
    const handle = r.string(MAX_HANDLE);
    const offset = Number(r.uint64());
    const data = r.string(MAX_PACKET);
    const h = this.#fileHandle(handle);
    this.#writable();
    if (!Number.isSafeInteger(offset)) {
      throw new Refusal(SftpStatus.FAILURE, "Offset too large");
    }
    if (!h.append) await this.#seek(h, offset);
    let pos = 0;
    try {
      while (pos < data.length) pos += await h.file.write(data.subarray(pos));
    } catch (e) {
      h.pos = null;
      throw e;
    }
    h.pos = h.append ? null : offset + data.length;
    this.#ok(id);
  }

  async #setstat(
    real: string,
    a: SftpAttributes,
    file: Deno.FsFile | null,
  ): Promise<void> {
    if (a.size !== undefined) {
      if (file !== null) await file.truncate(a.size);
      else await Deno.truncate(real, a.size);
    }
    if (a.permissions !== undefined) {
      await Deno.chmod(real, a.permissions & 0o7777);
    }
    if (a.uid !== undefined && a.gid !== undefined) {
      await Deno.chown(real, a.uid, a.gid);
    }
    if (a.atime !== undefined && a.mtime !== undefined) {
      if (file !== null) await file.utime(a.atime, a.mtime);
      else await Deno.utime(real, a.atime, a.mtime);
    }
  }

  async #readdir(id: number, r: SshReader): Promise<void> {
    const h = this.#handle(r);
    if (h.kind !== "dir") {
      throw new Refusal(SftpStatus.FAILURE, "Not a directory handle");
    }
    if (h.done || h.entries === null) {
      return this.#status(id, SftpStatus.EOF);
    }
    const names: Deno.DirEntry[] = [];
    while (names.length < NAMES_PER_REPLY) {
      const next = await h.entries.next();
      if (next.done) {
        h.done = true;
        break;
      }
      names.push(next.value);
    }
    if (names.length === 0) return this.#status(id, SftpStatus.EOF);
    const dirReal = this.#real(h.path);
    // Entries that vanish meanwhile are skipped, as sftp-server does.
    const infos = await Promise.all(
      names.map((e) =>
        Deno.lstat(`${dirReal === "/" ? "" : dirReal}/${e.name}`).catch(() =>
          null
        )
      ),
    );
    const w = startPacket(FXP.NAME, id, 8192).uint32(0);
    let count = 0;
    for (let i = 0; i < names.length; i++) {
      const info = infos[i];
      if (info === null) continue;
      const a = attrsFromFileInfo(info);
      const name = names[i].name;
      w.string(name).string(this.#long(name, a, info.nlink ?? 1));
      writeAttrs(w, a);
      count++;
      if (w.length > NAMES_BYTES) break;
    }
    if (count === 0) return this.#status(id, SftpStatus.EOF);
    const packet = finishPacket(w);
    new DataView(packet.buffer, packet.byteOffset).setUint32(9, count);
    this.#send(packet);
  }

  async #rename(id: number, r: SshReader, posix: boolean): Promise<void> {
    const from = this.#virtual(r);
    const to = this.#virtual(r);
    this.#writable();
    const realFrom = await this.#noFollow(from);
    const realTo = await this.#noFollow(to);
    await Deno.lstat(realFrom);
    if (!posix) {
      // SFTP v3: renaming onto an existing name fails (sftp-server does
      // the same with link(2) + unlink(2)).
      let exists = true;
      try {
        await Deno.lstat(realTo);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
        exists = false;
      }
      if (exists) throw new Refusal(SftpStatus.FAILURE, "File exists");
    }
    await Deno.rename(realFrom, realTo);
    this.#ok(id);
  }

  async #extended(id: number, r: SshReader): Promise<void> {
    const name = r.utf8(256);
    switch (name) {
      case "posix-rename@openssh.com":
        return await this.#rename(id, r, true);
      case "hardlink@openssh.com": {
        const from = this.#virtual(r);
        const to = this.#virtual(r);
        this.#writable();
        await Deno.link(await this.#noFollow(from), await this.#noFollow(to));
        return this.#ok(id);
      }
      case "fsync@openssh.com": {
        const h = this.#fileHandle(r);
        await h.file.sync();
        return this.#ok(id);
      }
      case "limits@openssh.com": {
        const w = startPacket(FXP.EXTENDED_REPLY, id, 32)
          .uint64(BigInt(256 * 1024)).uint64(BigInt(MAX_DATA))
          .uint64(BigInt(MAX_DATA)).uint64(BigInt(this.#maxHandles));
        return this.#send(finishPacket(w));
      }
      case "expand-path@openssh.com": {
        let path = r.utf8(MAX_PATH);
        if (path === "~") path = this.#home;
        else if (path.startsWith("~/")) path = `${this.#home}/${path.slice(2)}`;
        else if (path.startsWith("~")) {
          throw new Refusal(SftpStatus.NO_SUCH_FILE, "Unknown user");
        }
        if (path.includes("\0")) throw new Refusal(SftpStatus.BAD_MESSAGE);
        const virtual = normalize(
          path.startsWith("/") ? path : `${this.#home}/${path}`,
        );
        const real = await this.#follow(virtual);
        await Deno.lstat(real);
        return this.#name(id, this.#toVirtual(real));
      }
      case "home-directory": {
        const user = r.utf8(256);
        if (user !== "") {
          throw new Refusal(SftpStatus.FAILURE, "Unknown user");
        }
        return this.#name(id, this.#home);
      }
      case "copy-data":
        return await this.#copyData(id, r);
      case "statvfs@openssh.com":
      case "fstatvfs@openssh.com": {
        const real = name === "statvfs@openssh.com"
          ? await this.#follow(this.#virtual(r))
          : await this.#follow(this.#fileHandle(r).path);
        if (!this.#statvfs) throw new Refusal(SftpStatus.OP_UNSUPPORTED);
        const v = statvfs(real);
        const w = startPacket(FXP.EXTENDED_REPLY, id, 96);
        w.uint64(v.bsize).uint64(v.frsize).uint64(v.blocks).uint64(v.bfree)
          .uint64(v.bavail).uint64(v.files).uint64(v.ffree).uint64(v.favail)
          .uint64(v.fsid)
          // Only ST_RDONLY (1) and ST_NOSUID (2) are defined on the wire;
          // a read-only server reports itself read-only.
          .uint64((v.flag & 3n) | (this.#readOnly ? 1n : 0n))
          .uint64(v.namemax);
        return this.#send(finishPacket(w));
      }
      default:
        throw new Refusal(SftpStatus.OP_UNSUPPORTED);
    }
  }

  async #copyData(id: number, r: SshReader): Promise<void> {
    const srcHandle = r.string(MAX_HANDLE);
    let readOffset = Number(r.uint64());
    const length = Number(r.uint64());
    const dstHandle = r.string(MAX_HANDLE);
    let writeOffset = Number(r.uint64());
    const src = this.#fileHandle(srcHandle);
    const dst = this.#fileHandle(dstHandle);
    this.#writable();
    if (src === dst) {
      throw new Refusal(SftpStatus.FAILURE, "Source and target are the same");
    }
    let left = length === 0 ? Infinity : length;
    const buf = new Uint8Array(64 * 1024);
    while (left > 0) {
      await this.#seek(src, readOffset);
      src.pos = null;
      const n = await src.file.read(
        buf.subarray(0, Math.min(buf.length, left)),
      );
      if (n === null) {
        if (length !== 0) throw new Refusal(SftpStatus.EOF);
        break;
      }
      src.pos = readOffset + n;
      if (!dst.append) await this.#seek(dst, writeOffset);
      dst.pos = null;
      let pos = 0;
      while (pos < n) pos += await dst.file.write(buf.subarray(pos, n));
      dst.pos = dst.append ? null : writeOffset + n;
      readOffset += n;
      writeOffset += n;
      left -= n;
    }
    this.#ok(id);
  }
}
