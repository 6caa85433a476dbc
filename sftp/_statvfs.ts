/**
 * `statvfs(3)` through Deno FFI, for the server's `statvfs@openssh.com`
 * and `fstatvfs@openssh.com` (OpenSSH PROTOCOL section 4.4). Deno has no
 * file system statistics API. Private to `sftp/`.
 *
 * Only 64-bit Linux, where every field of `struct statvfs` is 8 bytes
 * (`unsigned long`, `fsblkcnt_t`, `fsfilcnt_t`), and only with the `ffi`
 * permission; elsewhere the server does not announce the extensions.
 *
 * @module
 */

/** The fields of `struct statvfs`, in order. */
export interface StatVfs {
  bsize: bigint;
  frsize: bigint;
  blocks: bigint;
  bfree: bigint;
  bavail: bigint;
  files: bigint;
  ffree: bigint;
  favail: bigint;
  fsid: bigint;
  flag: bigint;
  namemax: bigint;
}

const FIELDS = [
  "bsize",
  "frsize",
  "blocks",
  "bfree",
  "bavail",
  "files",
  "ffree",
  "favail",
  "fsid",
  "flag",
  "namemax",
] as const;

/** 11 fields of 8 bytes, then `int __f_spare[6]`; room to spare. */
const STRUCT_SIZE = 256;

/** Whether {@linkcode statvfs} can work in this process. */
export function statvfsAvailable(): boolean {
  if (Deno.build.os !== "linux") return false;
  if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
    return false;
  }
  try {
    return Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  } catch {
    return false;
  }
}

/**
 * Calls `statvfs(path)`. The library is opened and closed around the call
 * (a rare request), so nothing stays open between requests.
 */
export function statvfs(path: string): StatVfs {
  let lib:
    | Deno.DynamicLibrary<{
      statvfs: { parameters: ["buffer", "buffer"]; result: "i32" };
    }>
    | null = null;
  for (const name of ["libc.so.6", "libc.so"]) {
    try {
      lib = Deno.dlopen(name, {
        statvfs: { parameters: ["buffer", "buffer"], result: "i32" },
      });
      break;
    } catch {
      // Try the next name.
    }
  }
  if (lib === null) {
    throw new Deno.errors.NotSupported("statvfs is not available");
  }
  try {
    const cpath = new TextEncoder().encode(path + "\0");
    const buf = new Uint8Array(STRUCT_SIZE);
    if (lib.symbols.statvfs(cpath, buf) !== 0) {
      // errno is not reachable through FFI: report the path as missing,
      // the usual cause (the caller has already resolved it).
      throw new Deno.errors.NotFound("statvfs failed");
    }
    const view = new DataView(buf.buffer);
    const out = {} as StatVfs;
    FIELDS.forEach((f, i) => out[f] = view.getBigUint64(i * 8, true));
    return out;
  } finally {
    lib.close();
  }
}
