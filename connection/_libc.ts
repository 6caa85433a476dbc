/**
 * Deno FFI bindings to the C library, used by the pseudo-terminal in
 * `pty.ts`. Private to `connection/`.
 *
 * The library handle is reference counted: {@linkcode acquireLibc} opens it
 * on first use and {@linkcode releaseLibc} closes it when the last user is
 * done. Deno's resource sanitizer reports a dynamic library left open after a
 * test, so a process-wide singleton would make every test that spawns a
 * terminal fail; counting keeps it open exactly while a terminal lives.
 *
 * Supported: Linux (glibc or musl) on x86_64 and aarch64, and macOS. The
 * constants below are the values of those platforms' headers.
 *
 * @module
 */

/** Platform constants taken from the system headers. */
export interface LibcConstants {
  readonly O_RDWR: number;
  readonly O_NOCTTY: number;
  readonly O_CLOEXEC: number;
  readonly O_NONBLOCK: number;
  readonly F_GETFL: number;
  readonly F_SETFL: number;
  readonly F_SETFD: number;
  readonly FD_CLOEXEC: number;
  /** `ioctl` request that sets `struct winsize`. */
  readonly TIOCSWINSZ: bigint;
  readonly POSIX_SPAWN_SETSIGDEF: number;
  readonly POSIX_SPAWN_SETSIGMASK: number;
  readonly POSIX_SPAWN_SETSID: number;
  readonly EINTR: number;
  readonly EAGAIN: number;
  readonly EIO: number;
  readonly ESRCH: number;
  readonly POLLIN: number;
  readonly POLLOUT: number;
  readonly WNOHANG: number;
  readonly TCSANOW: number;
  /** Signal name (as in `Deno.Signal`) to number. */
  readonly signals: Readonly<Record<string, number>>;
}

const LINUX_SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPOLL: 29,
  SIGPWR: 30,
  SIGSYS: 31,
  SIGUNUSED: 31,
};

const DARWIN_SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGEMT: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGBUS: 10,
  SIGSEGV: 11,
  SIGSYS: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGURG: 16,
  SIGSTOP: 17,
  SIGTSTP: 18,
  SIGCONT: 19,
  SIGCHLD: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGIO: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGINFO: 29,
  SIGUSR1: 30,
  SIGUSR2: 31,
};

const LINUX: LibcConstants = {
  O_RDWR: 0o2,
  O_NOCTTY: 0o400,
  O_CLOEXEC: 0o2000000,
  O_NONBLOCK: 0o4000,
  F_GETFL: 3,
  F_SETFL: 4,
  F_SETFD: 2,
  FD_CLOEXEC: 1,
  TIOCSWINSZ: 0x5414n,
  // glibc spawn.h; POSIX_SPAWN_SETSID needs glibc >= 2.26.
  POSIX_SPAWN_SETSIGDEF: 0x04,
  POSIX_SPAWN_SETSIGMASK: 0x08,
  POSIX_SPAWN_SETSID: 0x80,
  EINTR: 4,
  EAGAIN: 11,
  EIO: 5,
  ESRCH: 3,
  POLLIN: 0x1,
  POLLOUT: 0x4,
  WNOHANG: 1,
  TCSANOW: 0,
  signals: LINUX_SIGNALS,
};

const DARWIN: LibcConstants = {
  O_RDWR: 0x2,
  O_NOCTTY: 0x20000,
  O_CLOEXEC: 0x1000000,
  O_NONBLOCK: 0x4,
  F_GETFL: 3,
  F_SETFL: 4,
  F_SETFD: 2,
  FD_CLOEXEC: 1,
  TIOCSWINSZ: 0x80087467n,
  POSIX_SPAWN_SETSIGDEF: 0x04,
  POSIX_SPAWN_SETSIGMASK: 0x08,
  // macOS 10.15 and later.
  POSIX_SPAWN_SETSID: 0x400,
  EINTR: 4,
  EAGAIN: 35,
  EIO: 5,
  ESRCH: 3,
  POLLIN: 0x1,
  POLLOUT: 0x4,
  WNOHANG: 1,
  TCSANOW: 0,
  signals: DARWIN_SIGNALS,
};

/**
 * On Apple's arm64 ABI the variadic arguments of `ioctl` and `fcntl` go on
 * the stack, not in registers. Deno FFI cannot declare a variadic function,
 * so there we declare six unused integer parameters that fill the remaining
 * argument registers (x2..x7) and push the real third argument to the first
 * stack slot, where the callee's `va_arg` looks. Everywhere else (System V
 * x86_64, Linux aarch64) variadic integers travel like fixed ones.
 */
const APPLE_ARM64 = Deno.build.os === "darwin" && Deno.build.arch === "aarch64";
const PAD: Deno.NativeType[] = APPLE_ARM64
  ? ["i64", "i64", "i64", "i64", "i64", "i64"]
  : [];

const SYMBOLS = {
  posix_openpt: { parameters: ["i32"], result: "i32" },
  grantpt: { parameters: ["i32"], result: "i32" },
  unlockpt: { parameters: ["i32"], result: "i32" },
  ptsname_r: {
    parameters: ["i32", "buffer", "usize"],
    result: "i32",
    optional: true,
  },
  ptsname: { parameters: ["i32"], result: "pointer" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  pipe: { parameters: ["buffer"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", ...PAD, "i64"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", ...PAD, "buffer"], result: "i32" },
  // Runs on a worker thread and returns a Promise. nfds_t is an unsigned
  // long on Linux and an unsigned int on macOS; both fit a u32 argument.
  poll: {
    parameters: ["buffer", "u32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  waitpid_async: {
    name: "waitpid",
    parameters: ["i32", "buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  kill: { parameters: ["i32", "i32"], result: "i32" },
  posix_spawnp: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_addopen: {
    parameters: ["buffer", "i32", "buffer", "i32", "u32"],
    result: "i32",
  },
  posix_spawn_file_actions_adddup2: {
    parameters: ["buffer", "i32", "i32"],
    result: "i32",
  },
  // glibc >= 2.29, macOS >= 10.15; optional so older systems still load.
  posix_spawn_file_actions_addchdir_np: {
    parameters: ["buffer", "buffer"],
    result: "i32",
    optional: true,
  },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  posix_spawnattr_setsigmask: {
    parameters: ["buffer", "buffer"],
    result: "i32",
  },
  posix_spawnattr_setsigdefault: {
    parameters: ["buffer", "buffer"],
    result: "i32",
  },
  sigemptyset: { parameters: ["buffer"], result: "i32" },
  sigfillset: { parameters: ["buffer"], result: "i32" },
  tcgetattr: { parameters: ["i32", "buffer"], result: "i32" },
  tcsetattr: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: {
    parameters: [],
    result: "pointer",
    optional: Deno.build.os !== "linux",
  },
  __error: {
    parameters: [],
    result: "pointer",
    optional: Deno.build.os !== "darwin",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded C library's functions. */
export type LibcSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** An open C library with the constants of the platform it runs on. */
export interface Libc {
  readonly symbols: LibcSymbols;
  readonly constants: LibcConstants;
  /** Size in bytes to allocate for `posix_spawn_file_actions_t` / `posix_spawnattr_t`. */
  readonly opaqueSize: number;
  /** Size in bytes to allocate for `sigset_t`. */
  readonly sigsetSize: number;
  /** The calling thread's `errno` (read right after a synchronous call). */
  errno(): number;
  /** `strerror(code)` and the code, e.g. `No such file or directory (errno 2)`. */
  describe(code: number): string;
}

function libraryPaths(): string[] {
  switch (Deno.build.os) {
    case "linux":
      // glibc, then musl (whose libc.so is the loader itself).
      return ["libc.so.6", "libc.so", "libc.musl-x86_64.so.1"];
    case "darwin":
      return ["/usr/lib/libSystem.B.dylib"];
    default:
      return [];
  }
}

function constantsFor(): LibcConstants | undefined {
  if (Deno.build.os === "linux") {
    // The ioctl numbers and O_* flags above are the asm-generic values;
    // alpha, mips, powerpc and sparc differ.
    return Deno.build.arch === "x86_64" || Deno.build.arch === "aarch64"
      ? LINUX
      : undefined;
  }
  return Deno.build.os === "darwin" ? DARWIN : undefined;
}

let handle: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;
let shared: Libc | undefined;
let users = 0;

function open(): Libc {
  const constants = constantsFor();
  if (constants === undefined) {
    throw new Error(
      `Cannot load the C library: pseudo-terminals are not supported on ${Deno.build.os}/${Deno.build.arch}`,
    );
  }
  let lastError: unknown;
  for (const path of libraryPaths()) {
    try {
      handle = Deno.dlopen(path, SYMBOLS);
      break;
    } catch (error) {
      // A permission error will not go away with another path.
      if (error instanceof Deno.errors.NotCapable) throw error;
      lastError = error;
    }
  }
  if (handle === undefined) {
    throw new Error(`Cannot load the C library: ${String(lastError)}`, {
      cause: lastError,
    });
  }
  const symbols = handle.symbols;
  const location = symbols.__errno_location ?? symbols.__error;
  if (location === null) {
    handle.close();
    handle = undefined;
    throw new Error("Cannot load the C library: no errno accessor found");
  }
  const errno = (): number => {
    const p = location();
    return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
  };
  const describe = (code: number): string => {
    const p = symbols.strerror(code);
    const text = p === null
      ? "unknown error"
      : Deno.UnsafePointerView.getCString(p);
    return `${text} (errno ${code})`;
  };
  return {
    symbols,
    constants,
    // glibc x86_64: 80 and 336 bytes; macOS: one pointer. Generous on purpose.
    opaqueSize: 512,
    // glibc: 128 bytes; macOS: 4 bytes.
    sigsetSize: 128,
    errno,
    describe,
  };
}

/**
 * Opens the C library (or takes another reference to the open one). Every
 * call must be paired with one {@linkcode releaseLibc} once no FFI call made
 * through it is still in flight.
 */
export function acquireLibc(): Libc {
  if (shared === undefined) shared = open();
  users++;
  return shared;
}

/** Drops one reference; the last one closes the dynamic library. */
export function releaseLibc(): void {
  if (users === 0) return;
  users--;
  if (users === 0) {
    handle?.close();
    handle = undefined;
    shared = undefined;
  }
}
