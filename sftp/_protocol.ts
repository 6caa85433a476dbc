/**
 * SFTP version 3 wire format (draft-ietf-secsh-filexfer-02) and the OpenSSH
 * extensions (OpenSSH PROTOCOL section 4): packet types, status codes, the
 * ATTRS codec, packet framing with bounded lengths, and `ls -l` style long
 * names. Private to `sftp/`; the public names are re-exported by `mod.ts`.
 *
 * @module
 */

import { SshReader } from "../wire/reader.ts";
import { SshWriter } from "../wire/writer.ts";

/** Packet types (draft-ietf-secsh-filexfer-02 section 3). */
export const FXP = {
  INIT: 1,
  VERSION: 2,
  OPEN: 3,
  CLOSE: 4,
  READ: 5,
  WRITE: 6,
  LSTAT: 7,
  FSTAT: 8,
  SETSTAT: 9,
  FSETSTAT: 10,
  OPENDIR: 11,
  READDIR: 12,
  REMOVE: 13,
  MKDIR: 14,
  RMDIR: 15,
  REALPATH: 16,
  STAT: 17,
  RENAME: 18,
  READLINK: 19,
  SYMLINK: 20,
  STATUS: 101,
  HANDLE: 102,
  DATA: 103,
  NAME: 104,
  ATTRS: 105,
  EXTENDED: 200,
  EXTENDED_REPLY: 201,
} as const;

/**
 * SFTP status codes (draft-ietf-secsh-filexfer-02 section 7), the `code`
 * of an {@linkcode SftpError}.
 */
export const SftpStatus = {
  OK: 0,
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  NO_CONNECTION: 6,
  CONNECTION_LOST: 7,
  OP_UNSUPPORTED: 8,
} as const;

/** The short texts OpenSSH's sftp-server sends with each status code. */
export const STATUS_TEXT: readonly string[] = [
  "Success",
  "End of file",
  "No such file",
  "Permission denied",
  "Failure",
  "Bad message",
  "No connection",
  "Connection lost",
  "Operation unsupported",
];

/** The `SSH_FX_*` name of a status code, for messages. */
export function statusName(code: number): string {
  for (const [name, value] of Object.entries(SftpStatus)) {
    if (value === code) return `SSH_FX_${name}`;
  }
  return `status ${code}`;
}

/** `pflags` of SSH_FXP_OPEN (section 6.3). */
export const OpenFlags = {
  READ: 0x01,
  WRITE: 0x02,
  APPEND: 0x04,
  CREAT: 0x08,
  TRUNC: 0x10,
  EXCL: 0x20,
} as const;

/** ATTRS `flags` bits (section 5). */
export const AttrFlags = {
  SIZE: 0x01,
  UIDGID: 0x02,
  PERMISSIONS: 0x04,
  ACMODTIME: 0x08,
  EXTENDED: 0x8000_0000,
} as const;

/** File type bits of `permissions` (POSIX `st_mode`). */
export const S_IFMT = 0o170000;
/** Directory. */
export const S_IFDIR = 0o040000;
/** Regular file. */
export const S_IFREG = 0o100000;
/** Symbolic link. */
export const S_IFLNK = 0o120000;

/**
 * Largest SFTP packet accepted from a peer, length field excluded: OpenSSH's
 * 256 KiB (`SFTP_MAX_MSG_LENGTH`) plus room for the header of a full-size
 * READ reply or WRITE request.
 */
export const MAX_PACKET = 256 * 1024 + 1024;
/** Most data bytes in one READ or WRITE, as OpenSSH's sftp-server allows. */
export const MAX_DATA = 255 * 1024;
/** Longest path or name accepted in a packet. */
export const MAX_PATH = 8192;
/** Longest handle (draft-ietf-secsh-filexfer-02 section 3: 256 bytes). */
export const MAX_HANDLE = 256;
/** Most extended attribute pairs in one ATTRS. */
export const MAX_EXTENDED_ATTRS = 256;
/** Most extensions announced in a VERSION packet. */
export const MAX_EXTENSIONS = 256;

/**
 * File attributes (draft-ietf-secsh-filexfer-02 section 5). Absent fields
 * were not sent (or are not to be changed).
 */
export interface SftpAttributes {
  /** Size in bytes (exact below 2^53). */
  size?: number;
  /** Owner user id; sent together with `gid`. */
  uid?: number;
  /** Owner group id; sent together with `uid`. */
  gid?: number;
  /** POSIX mode: permission bits, and the file type bits when stat-ed. */
  permissions?: number;
  /** Access time, seconds since the epoch; sent together with `mtime`. */
  atime?: number;
  /** Modification time, seconds since the epoch; sent together with `atime`. */
  mtime?: number;
  /** Extended attributes as name/value pairs. */
  extended?: Array<[string, Uint8Array]>;
}

function uint32Field(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new RangeError(`Invalid ${what}: ${value} is not a uint32`);
  }
  return value;
}

/** Appends an ATTRS structure (section 5). */
export function writeAttrs(w: SshWriter, a: SftpAttributes): SshWriter {
  let flags = 0;
  if (a.size !== undefined) flags |= AttrFlags.SIZE;
  if (a.uid !== undefined || a.gid !== undefined) {
    if (a.uid === undefined || a.gid === undefined) {
      throw new TypeError("Invalid attributes: uid and gid go together");
    }
    flags |= AttrFlags.UIDGID;
  }
  if (a.permissions !== undefined) flags |= AttrFlags.PERMISSIONS;
  if (a.atime !== undefined || a.mtime !== undefined) {
    if (a.atime === undefined || a.mtime === undefined) {
      throw new TypeError("Invalid attributes: atime and mtime go together");
    }
    flags |= AttrFlags.ACMODTIME;
  }
  if (a.extended !== undefined && a.extended.length > 0) {
    flags |= AttrFlags.EXTENDED;
  }
  w.uint32(flags >>> 0);
  if (a.size !== undefined) {
    if (!Number.isSafeInteger(a.size) || a.size < 0) {
      throw new RangeError(`Invalid size: ${a.size}`);
    }
    w.uint64(BigInt(a.size));
  }
  if (flags & AttrFlags.UIDGID) {
    w.uint32(uint32Field(a.uid!, "uid")).uint32(uint32Field(a.gid!, "gid"));
  }
  if (a.permissions !== undefined) {
    w.uint32(uint32Field(a.permissions, "permissions"));
  }
  if (flags & AttrFlags.ACMODTIME) {
    w.uint32(uint32Field(Math.floor(a.atime!), "atime"))
      .uint32(uint32Field(Math.floor(a.mtime!), "mtime"));
  }
  if (flags & AttrFlags.EXTENDED) {
    w.uint32(a.extended!.length);
    for (const [name, value] of a.extended!) w.string(name).string(value);
  }
  return w;
}

/** Reads an ATTRS structure; every count is bounded by the bytes left. */
export function readAttrs(r: SshReader): SftpAttributes {
  const flags = r.uint32();
  const a: SftpAttributes = {};
  if (flags & AttrFlags.SIZE) a.size = Number(r.uint64());
  if (flags & AttrFlags.UIDGID) {
    a.uid = r.uint32();
    a.gid = r.uint32();
  }
  if (flags & AttrFlags.PERMISSIONS) a.permissions = r.uint32();
  if (flags & AttrFlags.ACMODTIME) {
    a.atime = r.uint32();
    a.mtime = r.uint32();
  }
  if (flags & AttrFlags.EXTENDED) {
    const count = r.uint32();
    // Each pair takes at least 8 bytes: never trust the count alone.
    if (count > MAX_EXTENDED_ATTRS || count * 8 > r.remaining) {
      throw new RangeError(
        `Malformed ${r.context}: ${count} extended attributes do not fit`,
      );
    }
    a.extended = [];
    for (let i = 0; i < count; i++) {
      const name = r.utf8(MAX_PATH);
      a.extended.push([name, r.string().slice()]);
    }
  }
  return a;
}

/** Attributes of a local file, as sftp-server reports them. */
export function attrsFromFileInfo(info: Deno.FileInfo): SftpAttributes {
  const a: SftpAttributes = { size: info.size };
  if (info.uid !== null && info.gid !== null) {
    a.uid = info.uid;
    a.gid = info.gid;
  }
  let mode = info.mode;
  if (mode === null) {
    // Not POSIX: make up the type bits so clients can tell what it is.
    mode = info.isDirectory
      ? S_IFDIR | 0o755
      : info.isSymlink
      ? S_IFLNK | 0o777
      : S_IFREG | 0o644;
  }
  a.permissions = mode;
  const secs = (d: Date | null) =>
    d === null
      ? 0
      : Math.max(0, Math.min(0xffff_ffff, Math.floor(d.getTime() / 1000)));
  a.atime = secs(info.atime ?? info.mtime);
  a.mtime = secs(info.mtime);
  return a;
}

/** Whether attributes describe a directory. */
export function isDirectory(a: SftpAttributes): boolean {
  return a.permissions !== undefined && (a.permissions & S_IFMT) === S_IFDIR;
}

/** Whether attributes describe a symbolic link. */
export function isSymlink(a: SftpAttributes): boolean {
  return a.permissions !== undefined && (a.permissions & S_IFMT) === S_IFLNK;
}

/** Whether attributes describe a regular file. */
export function isRegularFile(a: SftpAttributes): boolean {
  return a.permissions !== undefined && (a.permissions & S_IFMT) === S_IFREG;
}

const TYPE_CHARS: Record<number, string> = {
  [0o010000]: "p",
  [0o020000]: "c",
  [S_IFDIR]: "d",
  [0o060000]: "b",
  [S_IFREG]: "-",
  [S_IFLNK]: "l",
  [0o140000]: "s",
};

/** `drwxr-xr-x` from a mode, as ls(1) shows it. */
export function modeString(mode: number): string {
  let s = TYPE_CHARS[mode & S_IFMT] ?? "?";
  const rwx = (bits: number, special: boolean, ch: string) =>
    (bits & 4 ? "r" : "-") + (bits & 2 ? "w" : "-") +
    (special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? "x" : "-");
  s += rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, "s");
  s += rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, "s");
  s += rwx(mode & 7, (mode & 0o1000) !== 0, "t");
  return s;
}

const MONTHS = [
  "Jan",
  "Feb",
  "Mar",
  "Apr",
  "May",
  "Jun",
  "Jul",
  "Aug",
  "Sep",
  "Oct",
  "Nov",
  "Dec",
];

/**
 * One `ls -l` line for `name`, in the layout of OpenSSH's `ls_file()`:
 * mode, link count, owner, group, size, date (time of day within six
 * months, else the year) and name. Owner and group are numeric unless given.
 */
export function longName(
  name: string,
  a: SftpAttributes,
  options: { nlink?: number; user?: string; group?: string; now?: number } = {},
): string {
  const mode = modeString(a.permissions ?? 0);
  const user = options.user ?? String(a.uid ?? 0);
  const group = options.group ?? String(a.gid ?? 0);
  const now = options.now ?? Date.now() / 1000;
  const t = a.mtime ?? 0;
  const d = new Date(t * 1000);
  const day = String(d.getDate()).padStart(2, " ");
  const recent = t > now - 182 * 86400 && t < now + 182 * 86400;
  const when = recent
    ? `${MONTHS[d.getMonth()]} ${day} ${
      String(d.getHours()).padStart(2, "0")
    }:${String(d.getMinutes()).padStart(2, "0")}`
    : `${MONTHS[d.getMonth()]} ${day}  ${d.getFullYear()}`;
  return `${mode} ${String(options.nlink ?? 1).padStart(3)} ${user.padEnd(8)} ${
    group.padEnd(8)
  } ${String(a.size ?? 0).padStart(8)} ${when} ${name}`;
}

/**
 * Splits a byte stream into SFTP packets (uint32 length, then that many
 * bytes). Lengths are checked against `maxPacket` before anything is
 * allocated; a packet that sits whole inside one chunk is handed over as a
 * view, without a copy.
 */
export class PacketFramer {
  readonly #max: number;
  readonly #head = new Uint8Array(4);
  #headFill = 0;
  #body: Uint8Array | null = null;
  #bodyFill = 0;

  /** `maxPacket` bounds the length field (the type byte included). */
  constructor(maxPacket: number = MAX_PACKET) {
    this.#max = maxPacket;
  }

  /** Whether part of a packet is buffered (a stream ending now is truncated). */
  get partial(): boolean {
    return this.#headFill > 0 || this.#body !== null;
  }

  /**
   * Feeds `chunk`; calls `onPacket` for each complete packet (type byte
   * first). Throws a `RangeError` for a length of 0 or over the limit.
   */
  push(chunk: Uint8Array, onPacket: (packet: Uint8Array) => void): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#body === null) {
        if (this.#headFill === 0 && chunk.length - pos >= 4) {
          const len = readLength(chunk, pos, this.#max);
          if (chunk.length - pos - 4 >= len) {
            onPacket(chunk.subarray(pos + 4, pos + 4 + len));
            pos += 4 + len;
            continue;
          }
          this.#body = new Uint8Array(len);
          this.#bodyFill = 0;
          pos += 4;
          continue;
        }
        const n = Math.min(4 - this.#headFill, chunk.length - pos);
        this.#head.set(chunk.subarray(pos, pos + n), this.#headFill);
        this.#headFill += n;
        pos += n;
        if (this.#headFill < 4) return;
        this.#headFill = 0;
        this.#body = new Uint8Array(readLength(this.#head, 0, this.#max));
        this.#bodyFill = 0;
        continue;
      }
      const body = this.#body;
      const n = Math.min(body.length - this.#bodyFill, chunk.length - pos);
      body.set(chunk.subarray(pos, pos + n), this.#bodyFill);
      this.#bodyFill += n;
      pos += n;
      if (this.#bodyFill === body.length) {
        this.#body = null;
        onPacket(body);
      }
    }
  }
}

function readLength(buf: Uint8Array, pos: number, max: number): number {
  const len = ((buf[pos] << 24) | (buf[pos + 1] << 16) | (buf[pos + 2] << 8) |
    buf[pos + 3]) >>> 0;
  if (len === 0) throw new RangeError("SFTP packet of length 0");
  if (len > max) {
    throw new RangeError(
      `SFTP packet of ${len} bytes exceeds the limit of ${max}`,
    );
  }
  return len;
}

/**
 * Starts a packet: a writer holding the length placeholder, the type and
 * (for everything but INIT/VERSION) the request id. Finish with
 * {@linkcode finishPacket}.
 */
export function startPacket(
  type: number,
  id: number | null,
  size = 64,
): SshWriter {
  const w = new SshWriter(size + 9).uint32(0).byte(type);
  if (id !== null) w.uint32(id);
  return w;
}

/** Returns the bytes of a packet begun with {@linkcode startPacket}. */
export function finishPacket(w: SshWriter): Uint8Array {
  const bytes = w.bytes();
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(0, bytes.length - 4);
  return bytes;
}

/** A reader over one packet body after the type byte. */
export function packetReader(packet: Uint8Array, what: string): SshReader {
  return new SshReader(packet.subarray(1), what);
}

/** Names of packet types, for messages. */
export const FXP_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(FXP).map(([k, v]) => [v, `SSH_FXP_${k}`]),
);
