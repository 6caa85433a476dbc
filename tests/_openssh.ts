/**
 * Harness for interoperability tests and benchmarks against real OpenSSH:
 * runs `ssh-keygen`, starts a private `sshd` on 127.0.0.1 and runs `ssh`.
 *
 * Nothing here reads or changes `/etc/ssh`: every `sshd` gets its own
 * `sshd_config`, host keys and `authorized_keys` in a fresh temporary
 * directory, listens on a free loopback port, and is stopped (SIGTERM, then
 * awaited) by {@linkcode Sshd.stop}.
 *
 * Side effects on the machine, only when running as root:
 * - `/run/sshd` (sshd's privilege-separation directory) is created if it
 *   is missing;
 * - {@linkcode ensureTestUser} creates the system user `fynxtest`
 *   (`useradd -m -s /bin/bash fynxtest`) if it does not exist, and sets a
 *   fresh random password for it through `chpasswd` once per process, because
 *   sshd checks real system passwords. Both commands run with argument
 *   arrays (no shell).
 *
 * Without root or without OpenSSH installed, {@linkcode opensshSkipReason}
 * says why and the sshd tests are ignored; tests that only run `ssh`
 * against our server need just the client ({@linkcode sshClientSkipReason}).
 *
 * The harness depends on nothing in the library, so benchmarks can use it
 * to compare against OpenSSH.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** Path of the OpenSSH server. */
export const SSHD: string = "/usr/sbin/sshd";
/** Path of the OpenSSH client. */
export const SSH: string = "/usr/bin/ssh";
/** Path of `ssh-keygen`. */
export const SSH_KEYGEN: string = "/usr/bin/ssh-keygen";
/** Path of OpenSSH's SFTP server. */
export const SFTP_SERVER: string = "/usr/lib/openssh/sftp-server";

/** Name of the system user used for password authentication against sshd. */
export const TEST_USER = "fynxtest";

function isExecutable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}

function computeSkipReason(needServer: boolean): string | null {
  if (Deno.build.os !== "linux") {
    return `OpenSSH interop tests run on Linux only (this is ${Deno.build.os})`;
  }
  for (const path of needServer ? [SSHD, SSH, SSH_KEYGEN] : [SSH, SSH_KEYGEN]) {
    if (!isExecutable(path)) {
      return `${path} is not installed (apt-get install openssh-server openssh-client)`;
    }
  }
  if (!needServer) return null;
  let uid: number | null = null;
  try {
    uid = Deno.uid();
  } catch {
    // No sys permission: treat as unknown, i.e. not root.
  }
  if (uid !== 0) {
    return `running sshd needs root (privilege separation, the fynxtest user); uid is ${uid}`;
  }
  return null;
}

/**
 * Why tests that start `sshd` cannot run here (not Linux, OpenSSH missing,
 * not root), or null when they can. Computed once at load time; use it as
 * `Deno.test({ ignore: ... })`.
 */
export const opensshSkipReason: string | null = computeSkipReason(true);

/**
 * Why tests that only run the `ssh` client (against our server) cannot run
 * here, or null when they can. They need neither root nor sshd.
 */
export const sshClientSkipReason: string | null = computeSkipReason(false);

/**
 * Returns whether tests should be ignored, printing the reason once per
 * `what` so a skipped run says why. `needServer: false` for tests that only
 * run the `ssh` client.
 */
export function skipOpenssh(
  what: string,
  options: { needServer?: boolean } = {},
): boolean {
  const reason = options.needServer === false
    ? sshClientSkipReason
    : opensshSkipReason;
  if (reason) console.warn(`[skip] ${what}: ${reason}`);
  return reason !== null;
}

/** Outcome of {@linkcode run}. */
export interface RunResult {
  /** Exit code (128 + n when killed by signal n, as Deno reports it). */
  code: number;
  /** Signal name when the process was killed by one. */
  signal: Deno.Signal | null;
  /** Everything written to stdout. */
  stdout: Uint8Array;
  /** Everything written to stderr. */
  stderr: Uint8Array;
  /** stderr decoded as UTF-8 (for messages). */
  stderrText: string;
  /** stdout decoded as UTF-8. */
  stdoutText: string;
}

/** Options for {@linkcode run}. */
export interface RunOptions {
  /** Bytes written to stdin (stdin is /dev/null without it). */
  stdin?: Uint8Array | string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Replace the environment instead of extending it. */
  clearEnv?: boolean;
  /**
   * Milliseconds before the process is killed (SIGKILL) and the call rejects.
   * @default {60000}
   */
  timeout?: number;
}

const decoder = new TextDecoder();

async function readAll(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * Runs a program with an argument array (never a shell), feeding `stdin`
 * while collecting stdout and stderr. Rejects on timeout, with stderr in
 * the message.
 */
export async function run(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const child = new Deno.Command(command, {
    args: [...args],
    stdin: options.stdin !== undefined ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    env: options.env,
    clearEnv: options.clearEnv,
  }).spawn();
  const timeout = options.timeout ?? 60_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, timeout);
  try {
    const writing = (async () => {
      if (options.stdin === undefined) return;
      const data = typeof options.stdin === "string"
        ? new TextEncoder().encode(options.stdin)
        : options.stdin;
      const writer = child.stdin.getWriter();
      try {
        // Chunked so a peer that stops reading cannot pin one huge write.
        for (let i = 0; i < data.length; i += 1 << 20) {
          await writer.write(data.subarray(i, i + (1 << 20)));
        }
        await writer.close();
      } catch {
        // The process exited without reading everything; its status tells.
        await writer.abort().catch(() => {});
      }
    })();
    const [stdout, stderr, status] = await Promise.all([
      readAll(child.stdout),
      readAll(child.stderr),
      child.status,
    ]);
    await writing;
    const stderrText = decoder.decode(stderr);
    if (timedOut) {
      throw new Error(
        `${command} ${
          args.join(" ")
        } timed out after ${timeout} ms; stderr:\n${stderrText}`,
      );
    }
    return {
      code: status.code,
      signal: status.signal,
      stdout,
      stderr,
      stderrText,
      stdoutText: decoder.decode(stdout),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** SHA-256 of bytes, hex. */
export function sha256hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** `n` random bytes (any size; getRandomValues is limited to 64 KiB a call). */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

/** Key kinds `ssh-keygen` makes for the tests. */
export type KeygenType =
  | "ed25519"
  | "ecdsa-256"
  | "ecdsa-384"
  | "ecdsa-521"
  | "rsa";

/** Every {@linkcode KeygenType}. */
export const KEYGEN_TYPES: readonly KeygenType[] = [
  "ed25519",
  "ecdsa-256",
  "ecdsa-384",
  "ecdsa-521",
  "rsa",
];

/** Files written by {@linkcode sshKeygen}. */
export interface KeyFiles {
  /** What was asked for. */
  kind: KeygenType;
  /** The SSH key type name, e.g. `ecdsa-sha2-nistp384`. */
  type: string;
  /** Private key file. */
  path: string;
  /** Public key file (`path` + `.pub`). */
  publicPath: string;
  /** Private key file contents (OpenSSH format). */
  privateText: string;
  /** The public key line: `type base64 comment`. */
  publicLine: string;
  /** The public key blob (decoded base64 field). */
  blob: Uint8Array;
}

/** Options for {@linkcode sshKeygen}. */
export interface KeygenOptions {
  /**
   * RSA modulus size.
   * @default {3072}
   */
  bits?: number;
  /**
   * Passphrase to encrypt the private key with.
   * @default {""}
   */
  passphrase?: string;
  /**
   * Key comment.
   * @default {"fynx-test"}
   */
  comment?: string;
}

/** Decodes standard base64. */
export function fromBase64(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Encodes standard base64. */
export function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/** Generates a key with `ssh-keygen` into `dir/name` (and `dir/name.pub`). */
export async function sshKeygen(
  dir: string,
  name: string,
  kind: KeygenType,
  options: KeygenOptions = {},
): Promise<KeyFiles> {
  const path = `${dir}/${name}`;
  const [t, b] = kind === "rsa"
    ? ["rsa", String(options.bits ?? 3072)]
    : kind === "ed25519"
    ? ["ed25519", null]
    : ["ecdsa", kind.slice("ecdsa-".length)];
  const args = [
    "-q",
    "-t",
    t,
    "-f",
    path,
    "-N",
    options.passphrase ?? "",
    "-C",
    options.comment ?? "fynx-test",
  ];
  if (b) args.push("-b", b);
  const result = await run(SSH_KEYGEN, args);
  if (result.code !== 0) {
    throw new Error(
      `ssh-keygen ${
        args.join(" ")
      } failed (${result.code}): ${result.stderrText}`,
    );
  }
  const privateText = await Deno.readTextFile(path);
  const publicLine = (await Deno.readTextFile(`${path}.pub`)).trim();
  const [type, b64] = publicLine.split(/\s+/);
  return {
    kind,
    type,
    path,
    publicPath: `${path}.pub`,
    privateText,
    publicLine,
    blob: fromBase64(b64),
  };
}

/** A `known_hosts` line for `host:port` (bracketed form for non-22 ports). */
export function knownHostsLine(
  host: string,
  port: number,
  publicLine: string,
): string {
  const [type, b64] = publicLine.trim().split(/\s+/);
  const name = port === 22 ? host : `[${host}]:${port}`;
  return `${name} ${type} ${b64}`;
}

/** Byte equality (for comparing host key blobs). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A port that was free a moment ago on 127.0.0.1 (callers retry on a bind race). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

let versionCache:
  | Promise<{ major: number; minor: number; text: string }>
  | null = null;
/** The installed OpenSSH version (`ssh -V`). */
export function opensshVersion(): Promise<
  { major: number; minor: number; text: string }
> {
  versionCache ??= (async () => {
    const r = await run(SSH, ["-V"]);
    const text = (r.stderrText || r.stdoutText).trim();
    const m = /OpenSSH_(\d+)\.(\d+)/.exec(text);
    return { major: m ? Number(m[1]) : 0, minor: m ? Number(m[2]) : 0, text };
  })();
  return versionCache;
}

/** Algorithm names OpenSSH knows, per category (from `ssh -Q`). */
export interface OpensshAlgorithms {
  /** `ssh -Q kex`. */
  kex: string[];
  /** `ssh -Q cipher`. */
  cipher: string[];
  /** `ssh -Q mac`. */
  mac: string[];
  /** `ssh -Q HostKeyAlgorithms`. */
  hostKey: string[];
  /** `ssh -Q compression`. */
  compression: string[];
}

let algorithmsCache: Promise<OpensshAlgorithms> | null = null;
/** What the installed OpenSSH implements (`ssh -Q ...`). */
export function opensshAlgorithms(): Promise<OpensshAlgorithms> {
  algorithmsCache ??= (async () => {
    const q = async (what: string) => {
      const r = await run(SSH, ["-Q", what]);
      if (r.code !== 0) {
        throw new Error(`ssh -Q ${what} failed: ${r.stderrText}`);
      }
      return r.stdoutText.split("\n").map((s) => s.trim()).filter((s) =>
        s !== ""
      );
    };
    return {
      kex: await q("kex"),
      cipher: await q("cipher"),
      mac: await q("mac"),
      hostKey: await q("HostKeyAlgorithms"),
      compression: await q("compression"),
    };
  })();
  return algorithmsCache;
}

let testUser: Promise<{ username: string; password: string }> | null = null;
/**
 * Makes sure the system user {@linkcode TEST_USER} exists and knows a random
 * password set through `chpasswd` (once per process). Root only.
 */
export function ensureTestUser(): Promise<
  { username: string; password: string }
> {
  testUser ??= (async () => {
    if (opensshSkipReason) throw new Error(opensshSkipReason);
    const id = await run("id", ["-u", TEST_USER]);
    if (id.code !== 0) {
      const add = await run("useradd", ["-m", "-s", "/bin/bash", TEST_USER]);
      // Exit 9: created concurrently by another test process.
      if (add.code !== 0 && add.code !== 9) {
        throw new Error(
          `useradd ${TEST_USER} failed (${add.code}): ${add.stderrText}`,
        );
      }
    }
    // Letters and digits only, so chpasswd's "user:password" line is unambiguous.
    const raw = randomBytes(24);
    const alphabet =
      "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    const password = Array.from(raw, (b) => alphabet[b % alphabet.length]).join(
      "",
    );
    const chpasswd = await run("chpasswd", [], {
      stdin: `${TEST_USER}:${password}\n`,
    });
    if (chpasswd.code !== 0) {
      throw new Error(
        `chpasswd for ${TEST_USER} failed (${chpasswd.code}): ${chpasswd.stderrText}`,
      );
    }
    return { username: TEST_USER, password };
  })();
  return testUser;
}

/** Options for {@linkcode startSshd}. */
export interface SshdOptions {
  /**
   * Host key kinds to generate (one `HostKey` line each).
   * @default {KEYGEN_TYPES}
   */
  hostKeyTypes?: readonly KeygenType[];
  /** Lines for the `authorized_keys` file (root and the test user share it). */
  authorizedKeys?: readonly string[];
  /**
   * Explicit `KexAlgorithms`, `Ciphers`, `MACs` and `HostKeyAlgorithms`
   * lists (each only if given; names sshd does not know make startup fail
   * with `sshd -t`'s message), plus `Compression yes`. Without it sshd keeps
   * its defaults.
   */
  algorithms?: {
    kex?: readonly string[];
    cipher?: readonly string[];
    mac?: readonly string[];
    hostKey?: readonly string[];
  };
  /** Extra `sshd_config` lines (e.g. `RekeyLimit 1M`). */
  config?: readonly string[];
  /**
   * Milliseconds to wait for sshd to listen.
   * @default {10000}
   */
  startTimeout?: number;
}

/** A running private sshd. */
export interface Sshd {
  /** Loopback port it listens on. */
  readonly port: number;
  /** Its temporary directory (config, keys, authorized_keys). */
  readonly dir: string;
  /** Its host keys. */
  readonly hostKeys: readonly KeyFiles[];
  /** Path of a known_hosts file listing every host key for `[127.0.0.1]:port`. */
  readonly knownHostsPath: string;
  /**
   * Process id of the listening sshd. The sessions it forks are its
   * children, so their CPU time ends up in its `/proc/<pid>/stat` once they
   * are reaped (bench/e2e_throughput.ts reads it).
   */
  readonly pid: number;
  /** Everything sshd has logged so far (LogLevel VERBOSE, via `-e`). */
  log(): string;
  /** Stops sshd (SIGTERM, then waits) and removes its directory. */
  stop(): Promise<void>;
  /** Same as {@linkcode Sshd.stop}. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts `sshd -D -e -f <config> -p <port>` on 127.0.0.1 with its own
 * config and host keys. Retries on another port when the bind races.
 */
export async function startSshd(options: SshdOptions = {}): Promise<Sshd> {
  if (opensshSkipReason) throw new Error(opensshSkipReason);
  await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 });
  const dir = await Deno.makeTempDir({ prefix: "fynx-sshd-" });
  try {
    const hostKeys: KeyFiles[] = [];
    for (const kind of options.hostKeyTypes ?? KEYGEN_TYPES) {
      hostKeys.push(
        await sshKeygen(dir, `host_${kind}`, kind, {
          bits: 3072,
          comment: "fynx-sshd-host",
        }),
      );
    }
    const authorizedKeys = `${dir}/authorized_keys`;
    await Deno.writeTextFile(
      authorizedKeys,
      (options.authorizedKeys ?? []).map((l) => l.trim() + "\n").join(""),
    );
    const version = await opensshVersion();
    const lines = [
      "ListenAddress 127.0.0.1",
      ...hostKeys.map((k) => `HostKey ${k.path}`),
      "PidFile none",
      "UsePAM no",
      "StrictModes no",
      `AuthorizedKeysFile ${authorizedKeys}`,
      "PermitRootLogin yes",
      "PasswordAuthentication yes",
      "PubkeyAuthentication yes",
      "KbdInteractiveAuthentication no",
      "LogLevel VERBOSE",
      `Subsystem sftp ${SFTP_SERVER}`,
      "MaxAuthTries 20",
      "MaxSessions 64",
      "MaxStartups 100:30:200",
      "UseDNS no",
      "PrintMotd no",
      "PrintLastLog no",
      "AcceptEnv LANG LC_*",
    ];
    // OpenSSH 9.8+ penalises sources that fail often; tests fail on purpose.
    if (version.major > 9 || (version.major === 9 && version.minor >= 8)) {
      lines.push("PerSourcePenalties no");
    }
    const a = options.algorithms;
    if (a) {
      if (a.kex) lines.push(`KexAlgorithms ${a.kex.join(",")}`);
      if (a.cipher) lines.push(`Ciphers ${a.cipher.join(",")}`);
      if (a.mac) lines.push(`MACs ${a.mac.join(",")}`);
      if (a.hostKey) lines.push(`HostKeyAlgorithms ${a.hostKey.join(",")}`);
      lines.push("Compression yes");
    }
    lines.push(...(options.config ?? []));
    const configPath = `${dir}/sshd_config`;
    await Deno.writeTextFile(configPath, lines.join("\n") + "\n");

    // Validate the config first: a bad line is reported clearly, not as a timeout.
    const test = await run(SSHD, ["-t", "-f", configPath]);
    if (test.code !== 0) {
      throw new Error(
        `sshd -t rejected the config (${test.code}):\n${test.stderrText}\nconfig:\n${
          lines.join("\n")
        }`,
      );
    }

    let lastError = "";
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = freePort();
      const started = await spawnSshd(
        configPath,
        port,
        options.startTimeout ?? 10_000,
      );
      if ("error" in started) {
        lastError = started.error;
        if (/Address already in use|Cannot bind/i.test(started.error)) continue;
        break;
      }
      const knownHostsPath = `${dir}/known_hosts`;
      await Deno.writeTextFile(
        knownHostsPath,
        hostKeys.map((k) =>
          knownHostsLine("127.0.0.1", port, k.publicLine) + "\n"
        ).join(""),
      );
      let stopped: Promise<void> | null = null;
      const stop = () => {
        stopped ??= (async () => {
          await started.stop();
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        })();
        return stopped;
      };
      return {
        port,
        dir,
        hostKeys,
        knownHostsPath,
        pid: started.pid,
        log: started.log,
        stop,
        [Symbol.asyncDispose]: stop,
      };
    }
    throw new Error(`sshd did not start: ${lastError}`);
  } catch (e) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
}

type Spawned = {
  pid: number;
  log: () => string;
  stop: () => Promise<void>;
} | {
  error: string;
};

async function spawnSshd(
  configPath: string,
  port: number,
  timeout: number,
): Promise<Spawned> {
  const child = new Deno.Command(SSHD, {
    args: ["-D", "-e", "-f", configPath, "-p", String(port)],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const textDecoder = new TextDecoder();
  // Drained continuously so sshd never blocks on a full pipe.
  const draining = (async () => {
    for await (const chunk of child.stderr) {
      log += textDecoder.decode(chunk, { stream: true });
    }
  })();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Exited meanwhile.
      }
    }
    const killer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Gone.
      }
    }, 5000);
    await status;
    clearTimeout(killer);
    await draining;
  };
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    if (exited) {
      await draining;
      return {
        error: `sshd exited with ${
          (await status).code
        } before listening:\n${log}`,
      };
    }
    if (log.includes(`Server listening on 127.0.0.1 port ${port}`)) {
      // Belt and braces: make sure the socket accepts.
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conn.close();
        return { pid: child.pid, log: () => log, stop };
      } catch {
        // Not yet.
      }
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  await stop();
  return {
    error: `sshd did not listen on port ${port} within ${timeout} ms:\n${log}`,
  };
}

/** Options for {@linkcode sshArgs}. */
export interface SshArgsOptions {
  /** Server port on 127.0.0.1. */
  port: number;
  /** User to log in as. */
  user: string;
  /** known_hosts file holding the server's key (strict checking is on). */
  knownHostsPath: string;
  /** Private key file for publickey auth (IdentitiesOnly). */
  identity?: string;
  /** More `-o` options, e.g. `{ Ciphers: "aes128-ctr" }`. */
  options?: Record<string, string>;
  /** Extra flags placed before the destination (e.g. `-tt`). */
  flags?: readonly string[];
}

/**
 * Arguments for `ssh` to 127.0.0.1 that ignore the user's config, agent and
 * keys, and verify the host key strictly against `knownHostsPath`. Append
 * the remote command.
 */
export function sshArgs(o: SshArgsOptions): string[] {
  const opts: Record<string, string> = {
    UserKnownHostsFile: o.knownHostsPath,
    GlobalKnownHostsFile: "/dev/null",
    StrictHostKeyChecking: "yes",
    UpdateHostKeys: "no",
    CheckHostIP: "no",
    IdentitiesOnly: "yes",
    IdentityAgent: "none",
    ConnectTimeout: "15",
    LogLevel: "ERROR",
    ...(o.identity
      ? {
        BatchMode: "yes",
        PasswordAuthentication: "no",
        KbdInteractiveAuthentication: "no",
      }
      : {}),
    ...o.options,
  };
  const args = ["-F", "none", "-p", String(o.port)];
  if (o.identity) args.push("-i", o.identity);
  for (const [k, v] of Object.entries(opts)) args.push("-o", `${k}=${v}`);
  args.push(...(o.flags ?? []), `${o.user}@127.0.0.1`);
  return args;
}

/**
 * The algorithms the SSH core issue names: each must interoperate with
 * OpenSSH in both directions. Pinned here rather than taken from our own
 * lists, so dropping one from the library fails the interop tests.
 */
export const REQUIRED_ALGORITHMS: {
  readonly kex: readonly string[];
  readonly cipher: readonly string[];
  readonly mac: readonly string[];
  readonly hostKey: readonly string[];
} = {
  kex: [
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group14-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
  ],
  cipher: [
    "chacha20-poly1305@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
  ],
  mac: [
    "hmac-sha2-256",
    "hmac-sha2-512",
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
  ],
  hostKey: [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
  ],
};
