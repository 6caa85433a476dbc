/**
 * `fynx sshd`: a user-level SSH server that runs commands and shells as the
 * current OS user.
 *
 * Authentication is by public key against an `authorized_keys` file (re-read
 * on every attempt), and optionally by one password taken from an
 * environment variable (`--password-env VAR`; nothing else enables
 * passwords). One log line per connection, authentication result and close
 * goes to stderr; `listening on HOST:PORT` is printed on stdout once ready.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import {
  commandSessionHandler,
  serve,
  type ServerLogEvent,
  type SshServer,
} from "../server.ts";
import {
  type AuthorizedKey,
  encodePrivateKey,
  generatePrivateKey,
  parseAuthorizedKeys,
  parsePrivateKey,
} from "../keys/mod.ts";
import type { PrivateKey, PublicKey } from "../keys/types.ts";
import {
  authorizeCertificate,
  findAuthorizedKey,
} from "../keys/authorized_key_options.ts";
import { type Certificate, parseCertificateText } from "../keys/certificate.ts";
import { equalBytes } from "../keys/_util.ts";
import { sftpSubsystem } from "../sftp/server.ts";
import type { AlgorithmPreferences } from "../transport/algorithms.ts";
import {
  expandHome,
  type OptionTable,
  parseCount,
  parseFlags,
  parsePort,
  parseSeconds,
  parseYesNo,
  stringList,
  timestamp,
  UsageError,
} from "./_args.ts";
import {
  applyAlgorithmOption,
  isAlgorithmOption,
  parseConfigOption,
  SSHD_OPTION_NAMES,
} from "./_options.ts";
import {
  parseSshdForwardOptions,
  SSHD_FORWARD_USAGE,
  sshdForwarding,
} from "./_forward_options.ts";
import type { ServerForwardingOptions } from "../forward/mod.ts";

/** Usage text of `fynx sshd`. */
export const SSHD_USAGE: string = `Usage: fynx sshd [options]

A user-level SSH server: commands, shells and PTYs run as the current user.

Options:
  --listen HOST:PORT       Address to listen on (default 127.0.0.1:2222;
                           port 0 picks a free one; [v6addr]:port for IPv6)
  --host-key FILE          Host private key; repeatable. A missing file is
                           created as a new Ed25519 key (mode 0600, plus
                           FILE.pub). Required.
  --authorized-keys FILE   Public keys allowed to log in, re-read on every
                           attempt (default ~/.ssh/authorized_keys)
  --password-env VAR       Also accept password authentication with the
                           password in environment variable VAR (removed
                           from the environment of sessions). Off by default.
  --allow-user NAME        Accept only this login name; repeatable
                           (default: any name, all mapped to this user)
  --max-auth-tries N       Failed attempts per connection (default 6)
  --login-grace-time TIME  Seconds (or 1m, 1h30m) to authenticate (default 120)
  --sftp-root DIR          Serve the sftp subsystem chroot-style under DIR
                           (default: the whole file system, starting in $HOME)
  --sftp-read-only         Refuse sftp requests that change files
  --no-sftp                Do not serve the sftp subsystem
  -o OPTION=VALUE          sshd_config option; repeatable (see below)
  -q, --quiet              No log lines (only errors and "listening on")
  --help                   Show this help

Options for -o (case-insensitive; "Name=value" or "Name value"):
  KexAlgorithms, Ciphers, MACs, HostKeyAlgorithms LIST
                           Replace, or +append, -remove, ^prepend
  MaxAuthTries N, LoginGraceTime TIME, ClientAliveInterval TIME,
  ClientAliveCountMax N, MaxStartups START[:RATE:FULL], Banner FILE|none,
  HostKey FILE, AuthorizedKeysFile FILE, ListenAddress HOST, Port N,
  AllowUsers "NAME ...", PasswordAuthentication yes|no,
  PubkeyAuthentication yes|no, HostCertificate FILE (repeatable),
  TrustedUserCAKeys FILE, AllowAgentForwarding yes|no (default yes)
${SSHD_FORWARD_USAGE}

authorized_keys options are enforced: command= (the client's command goes in
SSH_ORIGINAL_COMMAND), from=, no-pty / restrict / pty, environment=,
expiry-time=, cert-authority with principals= (user certificates signed by
that key), and the forwarding options. A key with an unknown or malformed
option is refused. User certificates are accepted from a CA in
TrustedUserCAKeys (the login name must be a principal) or a cert-authority
line; their force-command, source-address and permit-* extensions apply.

Stops on SIGINT or SIGTERM (exit status 0).
`;

const FLAGS: OptionTable = {
  listen: { type: "string" },
  "host-key": { type: "string", multiple: true },
  "authorized-keys": { type: "string" },
  "password-env": { type: "string" },
  "allow-user": { type: "string", multiple: true },
  "max-auth-tries": { type: "string" },
  "login-grace-time": { type: "string" },
  "sftp-root": { type: "string" },
  "sftp-read-only": { type: "boolean" },
  "no-sftp": { type: "boolean" },
  option: { type: "string", short: "o", multiple: true },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
};

interface SshdConfig {
  hostname: string;
  port: number;
  hostKeys: string[];
  authorizedKeys: string;
  password: string | null;
  pubkey: boolean;
  allowUsers: string[];
  maxAuthTries: number;
  loginGraceTime: number;
  aliveInterval: number;
  aliveCountMax: number;
  maxStartups: { start: number; rate: number; full: number } | undefined;
  banner: string | undefined;
  hostCertificates: string[];
  trustedUserCaKeys: string | undefined;
  algorithms: Partial<AlgorithmPreferences>;
  quiet: boolean;
  agentForwarding: boolean;
  /** null: no sftp subsystem. */
  sftp: { root: string; readOnly: boolean } | null;
  forwarding: ServerForwardingOptions;
}

function parseListen(text: string): { hostname: string; port: number } {
  const m = text.match(/^\[([^\]]+)\]:(\d+)$/) ?? text.match(/^([^:]*):(\d+)$/);
  if (m) {
    return {
      hostname: m[1] || "0.0.0.0",
      port: parsePort(m[2], "listen port", true),
    };
  }
  if (/^\d+$/.test(text)) {
    return {
      hostname: "127.0.0.1",
      port: parsePort(text, "listen port", true),
    };
  }
  throw new TypeError(`Bad --listen address '${text}' (expected HOST:PORT)`);
}

function parseSshdArgs(argv: string[]): SshdConfig | "help" {
  const { values } = parseFlags("fynx sshd", argv, FLAGS, 1);
  if (values.help) return "help";
  const cfg: SshdConfig = {
    hostname: "127.0.0.1",
    port: 2222,
    hostKeys: stringList(values["host-key"]).map(expandHome),
    authorizedKeys: expandHome(
      String(values["authorized-keys"] ?? "~/.ssh/authorized_keys"),
    ),
    password: null,
    pubkey: true,
    allowUsers: stringList(values["allow-user"]),
    maxAuthTries: 6,
    loginGraceTime: 120,
    aliveInterval: 0,
    aliveCountMax: 3,
    maxStartups: undefined,
    banner: undefined,
    hostCertificates: [],
    trustedUserCaKeys: undefined,
    algorithms: {},
    quiet: Boolean(values.quiet),
    agentForwarding: true,
    sftp: values["no-sftp"] ? null : {
      root: values["sftp-root"] === undefined
        ? "/"
        : expandHome(String(values["sftp-root"])),
      readOnly: Boolean(values["sftp-read-only"]),
    },
    forwarding: {},
  };
  let passwordAuth = true;
  try {
    if (values.listen !== undefined) {
      Object.assign(cfg, parseListen(String(values.listen)));
    }
    if (values["max-auth-tries"] !== undefined) {
      cfg.maxAuthTries = parseCount(
        String(values["max-auth-tries"]),
        "--max-auth-tries",
        1,
      );
    }
    if (values["login-grace-time"] !== undefined) {
      cfg.loginGraceTime = parseSeconds(
        String(values["login-grace-time"]),
        "--login-grace-time",
      );
    }
    const forwardOptions = parseSshdForwardOptions(stringList(values.option));
    cfg.forwarding = forwardOptions.forwarding;
    for (const raw of forwardOptions.rest) {
      const o = parseConfigOption(raw, SSHD_OPTION_NAMES);
      const v = o.value;
      if (isAlgorithmOption(o.name)) {
        applyAlgorithmOption(cfg.algorithms, o);
        continue;
      }
      switch (o.name) {
        case "MaxAuthTries":
          cfg.maxAuthTries = parseCount(v, o.name, 1);
          break;
        case "LoginGraceTime":
          cfg.loginGraceTime = parseSeconds(v, o.name);
          break;
        case "ClientAliveInterval":
          cfg.aliveInterval = parseSeconds(v, o.name);
          break;
        case "ClientAliveCountMax":
          cfg.aliveCountMax = parseCount(v, o.name, 1);
          break;
        case "MaxStartups": {
          const parts = v.split(":");
          if (parts.length === 1) {
            const n = parseCount(parts[0], o.name, 1);
            cfg.maxStartups = { start: n, rate: 100, full: n };
          } else if (parts.length === 3) {
            const [start, rate, full] = parts.map((p) => parseCount(p, o.name));
            if (start < 1 || rate > 100 || full < start) {
              throw new TypeError(`Bad MaxStartups '${v}'`);
            }
            cfg.maxStartups = { start, rate, full };
          } else {
            throw new TypeError(
              `Bad MaxStartups '${v}' (expected START or START:RATE:FULL)`,
            );
          }
          break;
        }
        case "Banner":
          cfg.banner = v.toLowerCase() === "none" ? undefined : expandHome(v);
          break;
        case "HostKey":
          cfg.hostKeys.push(expandHome(v));
          break;
        case "HostCertificate":
          cfg.hostCertificates.push(expandHome(v));
          break;
        case "TrustedUserCAKeys":
          cfg.trustedUserCaKeys = v.toLowerCase() === "none"
            ? undefined
            : expandHome(v);
          break;
        case "AuthorizedKeysFile":
          cfg.authorizedKeys = expandHome(v.split(/\s+/)[0]);
          break;
        case "ListenAddress": {
          const l = /:\d+$/.test(v)
            ? parseListen(v)
            : { hostname: v.replace(/^\[|\]$/g, ""), port: cfg.port };
          cfg.hostname = l.hostname;
          cfg.port = l.port;
          break;
        }
        case "Port":
          cfg.port = parsePort(v, "port", true);
          break;
        case "AllowUsers":
          cfg.allowUsers.push(...v.split(/\s+/).filter(Boolean));
          break;
        case "PasswordAuthentication":
          passwordAuth = parseYesNo(v, o.name);
          break;
        case "PubkeyAuthentication":
          cfg.pubkey = parseYesNo(v, o.name);
          break;
        case "AllowAgentForwarding":
          cfg.agentForwarding = parseYesNo(v, o.name);
          break;
      }
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`fynx sshd: ${(e as Error).message}`, 1);
  }
  if (cfg.hostKeys.length === 0) {
    throw new UsageError(
      "fynx sshd: missing --host-key FILE (see 'fynx sshd --help')",
      1,
    );
  }
  if (values["password-env"] !== undefined) {
    const name = String(values["password-env"]);
    const pw = Deno.env.get(name);
    if (pw === undefined || pw === "") {
      throw new UsageError(
        `fynx sshd: environment variable ${name} (from --password-env) is not set`,
        1,
      );
    }
    // Sessions inherit our environment: do not hand them the password.
    Deno.env.delete(name);
    if (passwordAuth) cfg.password = pw;
  }
  return cfg;
}

/** Loads a host key, creating an Ed25519 one when the file does not exist. */
async function loadOrCreateHostKey(
  path: string,
  log: (line: string) => void,
): Promise<PrivateKey> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new UsageError(
        `fynx sshd: cannot read host key ${path}: ${(e as Error).message}`,
        1,
      );
    }
    const key = generatePrivateKey("ed25519");
    try {
      // createNew: never overwrite a key another process created meanwhile.
      await Deno.writeTextFile(path, encodePrivateKey(key), {
        mode: 0o600,
        createNew: true,
      });
      await Deno.chmod(path, 0o600);
      await Deno.writeTextFile(`${path}.pub`, `${key.publicKey.toString()}\n`, {
        mode: 0o644,
      });
    } catch (e) {
      throw new UsageError(
        `fynx sshd: cannot create host key ${path}: ${(e as Error).message}`,
        1,
      );
    }
    log(
      `generated host key ${path} ${key.publicKey.type} ${key.publicKey.fingerprint()}`,
    );
    return key;
  }
  try {
    const key = parsePrivateKey(text);
    log(
      `host key ${path} ${key.publicKey.type} ${key.publicKey.fingerprint()}`,
    );
    return key;
  } catch (e) {
    throw new UsageError(
      `fynx sshd: cannot load host key ${path}: ${(e as Error).message}`,
      1,
    );
  }
}

/** Host part of a `host:port` address (`[v6]:port` or `v6:port` too). */
function addressHost(remote: string | undefined): string {
  if (!remote) return "";
  const m = remote.match(/^\[([^\]]+)\]:\d+$/);
  if (m) return m[1];
  const i = remote.lastIndexOf(":");
  return i > 0 ? remote.slice(0, i) : remote;
}

function sha256(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

/** Formats one serve() log event as a line (without timestamp). */
function formatEvent(e: ServerLogEvent): string {
  switch (e.type) {
    case "connect":
      return `connect ${e.remoteAddress}`;
    case "refused":
      return `refused ${e.remoteAddress} reason=${JSON.stringify(e.reason)}`;
    case "auth":
      return `auth ok user=${JSON.stringify(e.username).slice(1, -1)} method=${
        e.methods.join(",")
      }` +
        (e.key ? ` key=${e.key}` : "") + ` from=${e.remoteAddress}`;
    case "auth-failed":
      return `auth failed from=${e.remoteAddress} reason=${
        JSON.stringify(e.reason)
      }`;
    case "close":
      return `close ${e.remoteAddress}` +
        (e.username ? ` user=${JSON.stringify(e.username).slice(1, -1)}` : "") +
        (e.reason ? ` reason=${JSON.stringify(e.reason)}` : "");
  }
}

/**
 * Runs `fynx sshd` with `args` (the words after `sshd`) until SIGINT or
 * SIGTERM; returns the exit status.
 */
export async function sshdCommand(args: string[]): Promise<number> {
  let parsed: SshdConfig | "help";
  try {
    parsed = parseSshdArgs(args);
  } catch (e) {
    console.error((e as Error).message);
    return e instanceof UsageError ? e.code : 1;
  }
  if (parsed === "help") {
    console.log(SSHD_USAGE);
    return 0;
  }
  const cfg = parsed;
  const log = (line: string) => {
    if (!cfg.quiet) console.error(`${timestamp()} ${line}`);
  };
  let hostKeys: PrivateKey[];
  const hostCertificates: Certificate[] = [];
  let banner: string | undefined;
  try {
    hostKeys = [];
    for (const path of cfg.hostKeys) {
      hostKeys.push(await loadOrCreateHostKey(path, log));
    }
    for (const path of cfg.hostCertificates) {
      hostCertificates.push(await loadHostCertificate(path, hostKeys));
    }
    if (cfg.banner !== undefined) {
      try {
        banner = await Deno.readTextFile(cfg.banner);
      } catch (e) {
        throw new UsageError(
          `fynx sshd: cannot read Banner ${cfg.banner}: ${
            (e as Error).message
          }`,
          1,
        );
      }
    }
  } catch (e) {
    console.error((e as Error).message);
    return 1;
  }
  if (cfg.sftp !== null) {
    const info = await Deno.stat(cfg.sftp.root).catch(() => null);
    if (!info?.isDirectory) {
      console.error(
        `fynx sshd: --sftp-root ${cfg.sftp.root} is not a directory`,
      );
      return 1;
    }
  }
  if (cfg.pubkey) {
    try {
      await Deno.stat(cfg.authorizedKeys);
    } catch {
      log(
        `warning: ${cfg.authorizedKeys} does not exist yet; public key logins fail until it does`,
      );
    }
  }

  const expected = cfg.password === null ? null : sha256(cfg.password);
  const userAllowed = (name: string) =>
    cfg.allowUsers.length === 0 || cfg.allowUsers.includes(name);

  const publicKey = async (
    { username, key, certificate, remoteAddress }: {
      username: string;
      key: PublicKey;
      certificate?: Certificate;
      remoteAddress?: string;
    },
  ) => {
    if (!userAllowed(username)) return false;
    let text = "";
    try {
      text = await Deno.readTextFile(cfg.authorizedKeys);
    } catch {
      if (!certificate) return false;
    }
    let entries: AuthorizedKey[];
    try {
      entries = parseAuthorizedKeys(text, {
        onInvalidLine: (e) =>
          log(`warning: ${cfg.authorizedKeys}: ${e.message}`),
      });
    } catch (e) {
      log(
        `warning: cannot parse ${cfg.authorizedKeys}: ${(e as Error).message}`,
      );
      return false;
    }
    const ip = addressHost(remoteAddress);
    if (certificate) {
      const trusted = await readTrustedCaKeys(cfg.trustedUserCaKeys, log);
      const granted = authorizeCertificate(entries, certificate, {
        username,
        address: ip,
        trustedCaKeys: trusted,
        onRefused: (reason, entry) =>
          log(
            `${
              entry ? `${cfg.authorizedKeys}:${entry.line}: ` : ""
            }certificate ${
              JSON.stringify(certificate.keyId)
            } serial ${certificate.serial} refused: ${reason}`,
          ),
      });
      if (granted) {
        log(
          `accepted certificate ID ${
            JSON.stringify(certificate.keyId)
          } serial ${certificate.serial} signed by ${certificate.signatureKey.type} CA ${certificate.signatureKey.fingerprint()} via ${
            granted.entry
              ? `${cfg.authorizedKeys}:${granted.entry.line}`
              : cfg.trustedUserCaKeys
          }`,
        );
        return { restrictions: granted.restrictions };
      }
      return false;
    }
    const match = findAuthorizedKey(entries, key, {
      address: ip,
      onRefused: (entry, reason) =>
        log(`${cfg.authorizedKeys}:${entry.line}: ${reason}; key refused`),
    });
    if (match) return { restrictions: match.restrictions };
    return false;
  };

  const password = expected === null
    ? undefined
    : ({ username, password }: { username: string; password: string }) => {
      if (!userAllowed(username)) return false;
      return timingSafeEqual(sha256(password), expected);
    };

  let server: SshServer;
  try {
    server = serve({
      hostname: cfg.hostname,
      port: cfg.port,
      hostKeys,
      hostCertificates,
      algorithms: cfg.algorithms,
      publicKey: cfg.pubkey ? publicKey : undefined,
      password,
      banner,
      maxAuthTries: cfg.maxAuthTries,
      loginGraceTime: cfg.loginGraceTime * 1000,
      keepaliveInterval: cfg.aliveInterval * 1000,
      keepaliveCountMax: cfg.aliveCountMax,
      maxStartups: cfg.maxStartups,
      onSession: commandSessionHandler({
        agentForwarding: cfg.agentForwarding,
        subsystems: cfg.sftp === null ? {} : {
          sftp: sftpSubsystem({
            ...cfg.sftp,
            // Like internal-sftp: relative paths start in the home directory.
            home: cfg.sftp.root === "/" ? Deno.env.get("HOME") ?? "/" : "/",
            onError: (e) => log(`sftp: ${e.message}`),
          }),
        },
      }),
      ...sshdForwarding(cfg.forwarding, log),
      onLog: (event) => log(formatEvent(event)),
    });
  } catch (e) {
    console.error(
      `fynx sshd: cannot listen on ${cfg.hostname}:${cfg.port}: ${
        (e as Error).message
      }`,
    );
    return 1;
  }
  const addr = server.addr;
  const shown = addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
  // On stdout, apart from the log lines, so scripts can wait for it.
  console.log(`listening on ${shown}`);

  let stop!: (signal: string) => void;
  const stopped = new Promise<string>((resolve) => (stop = resolve));
  const onInt = () => stop("SIGINT");
  const onTerm = () => stop("SIGTERM");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  try {
    const signal = await Promise.race([
      stopped,
      server.finished.then(() => ""),
    ]);
    if (signal) log(`${signal} received, shutting down`);
    await server.close();
  } finally {
    Deno.removeSignalListener("SIGINT", onInt);
    Deno.removeSignalListener("SIGTERM", onTerm);
  }
  return 0;
}

/** Reads sshd's `TrustedUserCAKeys` file (one public key per line). */
async function readTrustedCaKeys(
  path: string | undefined,
  log: (line: string) => void,
): Promise<PublicKey[]> {
  if (path === undefined) return [];
  try {
    return parseAuthorizedKeys(await Deno.readTextFile(path), {
      onInvalidLine: (e) => log(`warning: ${path}: ${e.message}`),
    }).map((e) => e.key);
  } catch (e) {
    log(
      `warning: cannot read TrustedUserCAKeys ${path}: ${(e as Error).message}`,
    );
    return [];
  }
}

/** Loads a `HostCertificate` file; it must certify one of the host keys. */
async function loadHostCertificate(
  path: string,
  hostKeys: readonly PrivateKey[],
): Promise<Certificate> {
  let cert: Certificate;
  try {
    cert = parseCertificateText(await Deno.readTextFile(path));
  } catch (e) {
    throw new UsageError(
      `fynx sshd: cannot load HostCertificate ${path}: ${(e as Error).message}`,
      1,
    );
  }
  if (cert.certType !== "host") {
    throw new UsageError(
      `fynx sshd: HostCertificate ${path} is a ${cert.certType} certificate`,
      1,
    );
  }
  if (!hostKeys.some((k) => equalBytes(k.publicKey.blob, cert.key.blob))) {
    throw new UsageError(
      `fynx sshd: HostCertificate ${path} certifies ${cert.key.fingerprint()}, which is not a host key`,
      1,
    );
  }
  return cert;
}
