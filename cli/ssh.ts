/**
 * `fynx ssh`: an OpenSSH-compatible client command.
 *
 * `fynx ssh [options] [user@]host [command...]` runs `command` (or a shell)
 * on the server; stdout and stderr stay separate, stdin is forwarded, and
 * the exit status is the remote command's (255 for connection and
 * authentication failures, as ssh(1)).
 *
 * @module
 */
import { connect, type SshClient } from "../client.ts";
import type { ClientSession, InteractiveChallenge } from "../client.ts";
import { AuthError, DisconnectError, HostKeyError } from "../errors.ts";
import { checkCertificate, formatCertTime, KnownHosts } from "../keys/mod.ts";
import type { Certificate } from "../keys/mod.ts";
import { sameBlob } from "../keys/certificate.ts";
import type { PublicKey } from "../keys/types.ts";
import { forwardAgent } from "../agent/mod.ts";
import type { AlgorithmPreferences } from "../transport/algorithms.ts";
import { DEFAULT_ALGORITHMS } from "../transport/algorithms.ts";
import {
  expandHome,
  flagCount,
  keyTypeLabel,
  localUserName,
  type OptionTable,
  parseCount,
  parseFlags,
  parsePort,
  parseYesNo,
  splitAtFirstPositional,
  stringList,
  UsageError,
} from "./_args.ts";
import {
  agentSocketPath,
  type Identities,
  lastAgentFlag,
  parseForwardAgent,
  prepareIdentities,
} from "./_agent.ts";
import {
  addKnownHost,
  checkKnownHost,
  knownHostName,
  knownKeyTypes,
  readKnownHosts,
} from "./_known_hosts.ts";
import {
  applyAlgorithmOption,
  isAlgorithmOption,
  parseConfigOption,
  SSH_OPTION_NAMES,
} from "./_options.ts";
import {
  enterRawMode,
  hasTty,
  PromptInterrupted,
  promptLine,
  restoreTerminal,
  terminalSize,
} from "./_terminal.ts";
import {
  FORWARD_FLAGS,
  FORWARD_OPTIONS_USAGE,
  FORWARD_USAGE,
  type ForwardConfig,
  parseForwardArgs,
  runWithForwarding,
} from "./_forward.ts";

/** Usage text of `fynx ssh`. */
export const SSH_USAGE: string =
  `Usage: fynx ssh [options] [user@]host[:port] | ssh://[user@]host[:port] [command [arg...]]

Runs a command (or a login shell) on an SSH server.

Options (they end at the destination; words after it form the command):
  -p PORT            Port to connect to (default 22)
  -l USER            User to log in as (default: the local user)
  -i FILE            Identity (private key) file; repeatable
                     (default: ~/.ssh/id_ed25519, id_ecdsa, id_rsa);
                     keys in the agent ($SSH_AUTH_SOCK) are tried first
  -A                 Forward the agent (auth-agent-req@openssh.com)
  -a                 Do not forward the agent
  -o OPTION=VALUE    ssh_config option; repeatable (see below)
  -t                 Request a pseudo-terminal; -tt forces one even
                     when stdin is not a terminal
  -T                 Do not request a pseudo-terminal
  -n                 Read stdin from /dev/null
${FORWARD_USAGE}
  -C                 Request compression (same as -o Compression=yes)
  -q                 Quiet: no warnings or banners
  -v                 Verbose debug output on stderr (repeatable)
  -V                 Print the version and exit
  --help             Show this help

Options for -o (case-insensitive; "Name=value" or "Name value"):
  BatchMode yes|no                 Never prompt (default no)
  StrictHostKeyChecking yes|no|accept-new|ask   (default ask)
  UserKnownHostsFile FILE          (default ~/.ssh/known_hosts)
  HashKnownHosts yes|no            Hash host names added (default no)
  Ciphers, KexAlgorithms, MACs, HostKeyAlgorithms LIST
                                   Replace, or +append, -remove, ^prepend
  Compression yes|no               Offer zlib@openssh.com first
  ConnectTimeout SECONDS           TCP connect timeout
  ServerAliveInterval SECONDS, ServerAliveCountMax N
  ForwardAgent yes|no|SOCKET       Forward the agent (default no)
  IdentityAgent SOCKET|none|SSH_AUTH_SOCK   Agent to use
  IdentitiesOnly yes|no            Agent keys only if they match -i files
  Port, User, IdentityFile, Hostname, LogLevel, RequestTTY
  CertificateFile FILE             A certificate for one of the identities
                                   (FILE-cert.pub beside a key is used too)
  PasswordAuthentication, PubkeyAuthentication,
  KbdInteractiveAuthentication yes|no, NumberOfPasswordPrompts N
${FORWARD_OPTIONS_USAGE}

~/.ssh/config is not read.
Exit status: the remote command's, or 255 when connecting or
authenticating failed.
`;

const FLAGS: OptionTable = {
  port: { type: "string", short: "p" },
  login: { type: "string", short: "l" },
  identity: { type: "string", short: "i", multiple: true },
  "forward-agent": { type: "boolean", short: "A" },
  "no-forward-agent": { type: "boolean", short: "a" },
  option: { type: "string", short: "o", multiple: true },
  tty: { type: "boolean", short: "t", multiple: true },
  "no-tty": { type: "boolean", short: "T" },
  "null-stdin": { type: "boolean", short: "n" },
  compression: { type: "boolean", short: "C" },
  quiet: { type: "boolean", short: "q" },
  verbose: { type: "boolean", short: "v", multiple: true },
  version: { type: "boolean", short: "V" },
  help: { type: "boolean", short: "h" },
  ...FORWARD_FLAGS,
};

type StrictMode = "yes" | "no" | "accept-new" | "ask";

/** Everything `fynx ssh` was told, after parsing. */
export interface SshConfig {
  host: string;
  port: number;
  user: string;
  identities: string[];
  identitiesExplicit: boolean;
  identitiesOnly: boolean;
  /** IdentityAgent as given (undefined: $SSH_AUTH_SOCK). */
  identityAgent: string | undefined;
  /** ForwardAgent: yes/no or the socket to forward. */
  forwardAgent: boolean | string;
  certificateFiles: string[];
  command: string | null;
  tty: number; // -t count
  noTty: boolean;
  nullStdin: boolean;
  requestTty: "auto" | "yes" | "no" | "force";
  quiet: boolean;
  verbose: number;
  batch: boolean;
  strict: StrictMode;
  knownHostsFile: string;
  hashKnownHosts: boolean;
  algorithms: Partial<AlgorithmPreferences>;
  hostKeyAlgorithmsSet: boolean;
  connectTimeout: number;
  aliveInterval: number;
  aliveCountMax: number;
  passwordAuth: boolean;
  pubkeyAuth: boolean;
  kbdAuth: boolean;
  passwordPrompts: number;
  forward: ForwardConfig;
}

const NAME = "fynx";

/** Parses `fynx ssh` arguments; throws {@linkcode UsageError} (code 255) on mistakes. */
export function parseSshArgs(argv: string[]): SshConfig | "help" | "version" {
  const { options: optionArgs, positionals } = splitAtFirstPositional(
    argv,
    FLAGS,
  );
  const { values } = parseFlags("fynx ssh", optionArgs, FLAGS, 255);
  if (values.help) return "help";
  if (values.version) return "version";
  if (positionals.length === 0) {
    throw new UsageError(
      "fynx ssh: missing destination (see 'fynx ssh --help')",
      255,
    );
  }
  const bad = (e: unknown): never => {
    throw new UsageError((e as Error).message, 255);
  };

  const cfg: SshConfig = {
    host: "",
    port: 22,
    user: "",
    identities: [],
    identitiesExplicit: false,
    identitiesOnly: false,
    identityAgent: undefined,
    forwardAgent: false,
    certificateFiles: [],
    command: null,
    tty: flagCount(values.tty),
    noTty: Boolean(values["no-tty"]),
    nullStdin: Boolean(values["null-stdin"]),
    requestTty: "auto",
    quiet: Boolean(values.quiet),
    verbose: flagCount(values.verbose),
    batch: false,
    strict: "ask",
    knownHostsFile: expandHome("~/.ssh/known_hosts"),
    hashKnownHosts: false,
    algorithms: {},
    hostKeyAlgorithmsSet: false,
    connectTimeout: 0,
    aliveInterval: 0,
    aliveCountMax: 3,
    passwordAuth: true,
    pubkeyAuth: true,
    kbdAuth: true,
    passwordPrompts: 3,
    forward: {
      specs: [],
      noCommand: false,
      exitOnForwardFailure: false,
      gatewayPorts: false,
    },
  };

  // Destination first, so that -p / -l / -o override it as in OpenSSH
  // (command-line flags win over the destination's parts).
  let destUser: string | undefined;
  let destPort: number | undefined;
  const dest = positionals[0];
  try {
    if (dest.startsWith("ssh://")) {
      const m = dest.slice(6).match(
        /^(?:([^@/]*)@)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/,
      );
      if (!m) throw new TypeError(`Bad destination '${dest}'`);
      destUser = m[1] ? decodeURIComponent(m[1]) : undefined;
      cfg.host = m[2].replace(/^\[|\]$/g, "");
      if (m[3]) destPort = parsePort(m[3], "port");
    } else {
      const at = dest.lastIndexOf("@");
      if (at >= 0) destUser = dest.slice(0, at);
      cfg.host = dest.slice(at + 1).replace(/^\[|\]$/g, "");
    }
    if (cfg.host === "" || destUser === "") {
      throw new TypeError(`Bad destination '${dest}'`);
    }
  } catch (e) {
    bad(e);
  }
  if (positionals.length > 1) cfg.command = positionals.slice(1).join(" ");

  let optPort: number | undefined;
  let optUser: string | undefined;
  let compression: boolean | undefined = values.compression ? true : undefined;
  const optIdentities: string[] = [];
  const forwardArgs = parseForwardArgs(values, stringList(values.option));
  cfg.forward = forwardArgs.config;
  for (const raw of forwardArgs.rest) {
    try {
      const o = parseConfigOption(raw, SSH_OPTION_NAMES);
      const v = o.value;
      if (isAlgorithmOption(o.name)) {
        applyAlgorithmOption(cfg.algorithms, o);
        if (o.name === "HostKeyAlgorithms") cfg.hostKeyAlgorithmsSet = true;
        continue;
      }
      switch (o.name) {
        case "BatchMode":
          cfg.batch = parseYesNo(v, o.name);
          break;
        case "StrictHostKeyChecking": {
          const t = v.toLowerCase();
          if (t === "yes" || t === "true") cfg.strict = "yes";
          else if (t === "no" || t === "false" || t === "off") {
            cfg.strict = "no";
          } else if (t === "accept-new") cfg.strict = "accept-new";
          else if (t === "ask") cfg.strict = "ask";
          else {throw new TypeError(
              `command-line: line 0: unsupported option "${v}".`,
            );}
          break;
        }
        case "HashKnownHosts":
          cfg.hashKnownHosts = parseYesNo(v, o.name);
          break;
        case "UserKnownHostsFile":
          // OpenSSH allows several files; the first one is written to.
          cfg.knownHostsFile = expandHome(v.split(/\s+/)[0]);
          break;
        case "Compression":
          compression = parseYesNo(v, o.name);
          break;
        case "ConnectTimeout":
          cfg.connectTimeout = v.toLowerCase() === "none"
            ? 0
            : parseCount(v, "ConnectTimeout");
          break;
        case "ServerAliveInterval":
          cfg.aliveInterval = parseCount(v, "ServerAliveInterval");
          break;
        case "ServerAliveCountMax":
          cfg.aliveCountMax = parseCount(v, "ServerAliveCountMax", 1);
          break;
        case "Port":
          optPort ??= parsePort(v, "port");
          break;
        case "User":
          optUser ??= v;
          break;
        case "Hostname":
          cfg.host = v;
          break;
        case "IdentityFile":
          optIdentities.push(v);
          break;
        case "IdentitiesOnly":
          cfg.identitiesOnly = parseYesNo(v, o.name);
          break;
        case "IdentityAgent":
          cfg.identityAgent ??= v;
          break;
        case "ForwardAgent":
          cfg.forwardAgent = parseForwardAgent(v);
          break;
        case "CertificateFile":
          cfg.certificateFiles.push(expandHome(v));
          break;
        case "PasswordAuthentication":
          cfg.passwordAuth = parseYesNo(v, o.name);
          break;
        case "PubkeyAuthentication":
          cfg.pubkeyAuth = parseYesNo(v, o.name);
          break;
        case "KbdInteractiveAuthentication":
          cfg.kbdAuth = parseYesNo(v, o.name);
          break;
        case "NumberOfPasswordPrompts":
          cfg.passwordPrompts = parseCount(v, o.name);
          break;
        case "LogLevel": {
          const t = v.toUpperCase();
          if (t === "QUIET" || t === "FATAL" || t === "ERROR") cfg.quiet = true;
          else if (t.startsWith("DEBUG")) {
            cfg.verbose = Math.max(cfg.verbose, Number(t.slice(5) || "1"));
          } else if (t !== "INFO" && t !== "VERBOSE") {
            throw new TypeError(
              `command-line: line 0: unsupported log level '${v}'`,
            );
          }
          break;
        }
        case "RequestTTY": {
          const t = v.toLowerCase();
          if (t === "yes" || t === "no" || t === "force" || t === "auto") {
            cfg.requestTty = t;
          } else {throw new TypeError(
              `command-line: line 0: unsupported option "${v}".`,
            );}
          break;
        }
      }
    } catch (e) {
      bad(e);
    }
  }
  // -A / -a win over -o ForwardAgent; the last of them counts.
  const agentFlag = lastAgentFlag(optionArgs, FLAGS);
  if (agentFlag !== null) cfg.forwardAgent = agentFlag;
  try {
    // -p and -l win over -o and over the destination, like ssh(1).
    cfg.port = values.port !== undefined
      ? parsePort(String(values.port), "port")
      : optPort ?? destPort ?? 22;
  } catch (e) {
    bad(e);
  }
  cfg.user = values.login !== undefined
    ? String(values.login)
    : optUser ?? destUser ?? localUserName();
  if (cfg.user === "") bad(new TypeError("Bad user name ''"));
  const explicit = [...stringList(values.identity), ...optIdentities].map(
    expandHome,
  );
  cfg.identitiesExplicit = explicit.length > 0;
  cfg.identities = explicit.length > 0
    ? explicit
    : ["~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"].map(expandHome);
  if (compression === true) {
    cfg.algorithms.compression = ["zlib@openssh.com", "none"];
  } else if (compression === false) {
    cfg.algorithms.compression = ["none", "zlib@openssh.com"];
  }
  return cfg;
}

/** Signature algorithms that use keys of `type`. */
function algorithmsForType(type: string): string[] {
  if (type === "ssh-rsa") return ["rsa-sha2-512", "rsa-sha2-256"];
  return [type];
}

/** Debug, warning and error lines on stderr, as ssh(1) prints them. */
export class Output {
  constructor(readonly verbose: number, readonly quiet: boolean) {}
  debug(line: string): void {
    if (this.verbose > 0) console.error(`debug1: ${line}`);
  }
  warn(line: string): void {
    if (!this.quiet) console.error(line);
  }
  error(line: string): void {
    console.error(line);
  }
}

/** Dials TCP with OpenSSH's messages on failure. */
async function dial(cfg: SshConfig, out: Output): Promise<Deno.TcpConn> {
  out.debug(`Connecting to ${cfg.host} port ${cfg.port}.`);
  const controller = new AbortController();
  const signal = controller.signal;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const connecting = Deno.connect(
      { hostname: cfg.host, port: cfg.port, signal } as Deno.ConnectOptions,
    );
    let conn: Deno.TcpConn;
    if (cfg.connectTimeout > 0) {
      // Race a timer as well: the signal alone may not interrupt a connect
      // everywhere. A connection that lands after the timeout is closed.
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          controller.abort();
          reject(new Deno.errors.TimedOut("Connection timed out"));
        }, cfg.connectTimeout * 1000);
      });
      connecting.then((c) => signal.aborted && c.close(), () => {});
      conn = await Promise.race([connecting, timeout]);
    } else {
      conn = await connecting;
    }
    conn.setNoDelay(true);
    out.debug(`Connection established.`);
    return conn;
  } catch (e) {
    const err = e as Error;
    let why: string;
    if (signal.aborted) why = "Connection timed out";
    else if (e instanceof Deno.errors.ConnectionRefused) {
      why = "Connection refused";
    } else if (e instanceof Deno.errors.TimedOut) why = "Connection timed out";
    else if (
      /failed to lookup|name or service not known|no address|dns/i.test(
        err.message,
      )
    ) {
      throw new UsageError(
        `${NAME}: Could not resolve hostname ${cfg.host}: Name or service not known`,
        255,
      );
    } else why = err.message.replace(/\s*\(os error \d+\)$/, "");
    throw new UsageError(
      `${NAME}: connect to host ${cfg.host} port ${cfg.port}: ${why}`,
      255,
    );
  } finally {
    clearTimeout(timer);
  }
}

const CHANGED_BANNER = [
  "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
  "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @",
  "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
  "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!",
  "Someone could be eavesdropping on you right now (man-in-the-middle attack)!",
  "It is also possible that a host key has just been changed.",
];

/** State the host key check leaves for the rest of the run. */
export interface HostKeyState {
  /** Set when the check failed; the message is already printed. */
  failed: boolean;
  /** Password-type methods disabled after a changed key with checking off. */
  noPasswords: boolean;
}

/** The host key verifier: known_hosts, StrictHostKeyChecking, prompts. */
function makeVerifier(cfg: SshConfig, out: Output, state: HostKeyState) {
  const name = knownHostName(cfg.host, cfg.port);
  const file = cfg.knownHostsFile;
  return async (
    key: PublicKey,
    info?: { certificate?: Certificate },
  ): Promise<boolean> => {
    const fp = key.fingerprint();
    const label = keyTypeLabel(key.type);
    const cert = info?.certificate;
    out.debug(
      cert
        ? `Server host certificate: ${cert.type} ${fp}, serial ${cert.serial} ID ${
          JSON.stringify(cert.keyId)
        } CA ${cert.signatureKey.type} ${cert.signatureKey.fingerprint()} valid ${
          formatCertTime(cert.validAfter)
        } to ${formatCertTime(cert.validBefore)}`
        : `Server host key: ${key.type} ${fp}`,
    );
    const fail = (lines: string[]): boolean => {
      for (const l of lines) out.error(l);
      state.failed = true;
      return false;
    };
    let text: string;
    try {
      text = await readKnownHosts(file);
    } catch (e) {
      return fail([
        `Failed to read ${file}: ${(e as Error).message}`,
        "Host key verification failed.",
      ]);
    }
    if (cert) {
      // A host certificate is trusted through an @cert-authority line for
      // this host (sshd(8) SSH_KNOWN_HOSTS); without one, ssh(1) falls back
      // to the plain key below. A trusted CA with an invalid certificate
      // (expired, wrong host) fails outright, as in ssh(1).
      const known = KnownHosts.parse(text);
      const [h, p] = [cfg.host, cfg.port];
      const caRevoked =
        known.lookup(h, p, cert.signatureKey).status === "revoked";
      const cas = caRevoked ? [] : known.certificateAuthorities(h, p);
      const trusted = (ca: PublicKey) =>
        cas.some((c) => c.type === ca.type && sameBlob(c, ca));
      if (trusted(cert.signatureKey)) {
        try {
          checkCertificate(cert, {
            type: "host",
            principal: cfg.host,
            trustedCa: trusted,
          });
        } catch (e) {
          return fail([
            `Certificate invalid: ${(e as Error).message}`,
            "Host key verification failed.",
          ]);
        }
        if (known.lookup(h, p, key).status === "revoked") {
          return fail([
            `The ${label} host key for ${name} is marked as revoked.`,
            "Host key verification failed.",
          ]);
        }
        out.debug(
          `Host '${name}' is known and matches the ${label}-CERT host certificate.`,
        );
        return true;
      }
      out.debug("No matching CA found. Retry with plain key");
    }
    const result = checkKnownHost(text, name, key);
    if (result.status === "ok") {
      out.debug(`Host '${name}' is known and matches the ${label} host key.`);
      out.debug(`Found key in ${file}:${result.line}`);
      return true;
    }
    if (result.status === "revoked") {
      return fail([
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
        "@       WARNING: REVOKED HOST KEY DETECTED!               @",
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
        `The ${label} host key for ${name} is marked as revoked.`,
        "This could mean that a stolen key is being used to",
        "impersonate this host.",
        `${label} host key for ${name} was revoked and you have requested strict checking.`,
        "Host key verification failed.",
      ]);
    }
    if (result.status === "changed") {
      const lines = [
        ...CHANGED_BANNER,
        `The fingerprint for the ${label} key sent by the remote host is`,
        `${fp}.`,
        "Please contact your system administrator.",
        `Add correct host key in ${file} to get rid of this message.`,
        `Offending ${label} key in ${file}:${result.line}`,
      ];
      const other = result.knownTypes.filter((t) => t !== key.type);
      if (other.length > 0 && !result.knownTypes.includes(key.type)) {
        lines.push(
          `Host ${name} is known with another key type (${
            other.map(keyTypeLabel).join(", ")
          }).`,
        );
      }
      if (cfg.strict === "no") {
        for (const l of lines) out.error(l);
        out.error(
          "Password authentication is disabled to avoid man-in-the-middle attacks.",
        );
        out.error(
          "Keyboard-interactive authentication is disabled to avoid man-in-the-middle attacks.",
        );
        state.noPasswords = true;
        return true;
      }
      return fail([
        ...lines,
        `Host key for ${name} has changed and you have requested strict checking.`,
        "Host key verification failed.",
      ]);
    }
    // Unknown host.
    let accept = false;
    if (cfg.strict === "no" || cfg.strict === "accept-new") {
      accept = true;
    } else if (cfg.strict === "ask" && !cfg.batch && hasTty()) {
      out.error(
        `The authenticity of host '${name} (${name})' can't be established.`,
      );
      out.error(`${label} key fingerprint is ${fp}.`);
      out.error("This key is not known by any other names.");
      let answer = await promptLine(
        "Are you sure you want to continue connecting (yes/no/[fingerprint])? ",
        true,
      );
      for (;;) {
        const a = answer?.trim().toLowerCase() ?? "no";
        if (a === "yes" || answer?.trim() === fp) {
          accept = true;
          break;
        }
        if (a === "no") break;
        answer = await promptLine(
          "Please type 'yes', 'no' or the fingerprint: ",
          true,
        );
      }
      if (!accept) return fail(["Host key verification failed."]);
    } else {
      return fail([
        `No ${label} host key is known for ${name} and you have requested strict checking.`,
        "Host key verification failed.",
      ]);
    }
    try {
      await addKnownHost(file, name, key, { hash: cfg.hashKnownHosts });
      out.warn(
        `Warning: Permanently added '${name}' (${label}) to the list of known hosts.`,
      );
    } catch (e) {
      out.warn(
        `Failed to add the host to the list of known hosts (${file}): ${
          (e as Error).message
        }`,
      );
    }
    return true;
  };
}

/** Whether a pseudo-terminal is requested, with OpenSSH's rules. */
function wantPty(cfg: SshConfig, out: Output): boolean {
  const stdinTty = Deno.stdin.isTerminal();
  let mode = cfg.requestTty;
  if (cfg.tty >= 2) mode = "force";
  else if (cfg.tty === 1) mode = "yes";
  if (cfg.noTty) mode = "no";
  if (mode === "no") return false;
  if (mode === "force") return true;
  if (mode === "auto") return cfg.command === null && stdinTty;
  if (!stdinTty) {
    out.warn(
      "Pseudo-terminal will not be allocated because stdin is not a terminal.",
    );
    return false;
  }
  return true;
}

/** Forwards local I/O to the session and returns the exit status. */
async function runSession(
  client: SshClient,
  cfg: SshConfig,
  out: Output,
): Promise<number> {
  const session: ClientSession = await client.openSession();
  const pty = wantPty(cfg, out);
  if (pty) {
    const size = terminalSize();
    await session.requestPty({
      term: Deno.env.get("TERM") ?? "dumb",
      columns: size.columns,
      rows: size.rows,
    });
    out.debug(`Requested a pty: ${size.columns}x${size.rows}`);
  }
  if (cfg.forwardAgent !== false) {
    const socketPath = agentSocketPath(
      cfg.forwardAgent === true ? cfg.identityAgent : cfg.forwardAgent,
    );
    if (socketPath === null) {
      out.debug("No agent to forward");
    } else {
      out.debug("Requesting authentication agent forwarding.");
      await forwardAgent(client, { session, socketPath });
    }
  }
  if (cfg.command === null) await session.shell();
  else {
    out.debug(`Sending command: ${cfg.command}`);
    await session.exec(cfg.command);
  }

  let restoreRaw: () => void = () => {};
  const cleanups: (() => void)[] = [];
  try {
    if (pty && Deno.stdin.isTerminal()) {
      restoreRaw = enterRawMode();
      const onWinch = () => {
        const s = terminalSize();
        session.windowChange({ columns: s.columns, rows: s.rows }).catch(
          () => {},
        );
      };
      try {
        Deno.addSignalListener("SIGWINCH", onWinch);
        cleanups.push(() => Deno.removeSignalListener("SIGWINCH", onWinch));
      } catch {
        // Not on this platform.
      }
    }
    const stdout = session.stdout.pipeTo(Deno.stdout.writable, {
      preventClose: true,
    }).catch(() => {});
    const stderr = session.stderr.pipeTo(Deno.stderr.writable, {
      preventClose: true,
    }).catch(() => {});
    if (cfg.nullStdin) {
      session.stdin.close().catch(() => {});
    } else {
      // EOF on our stdin becomes EOF on the channel (pipeTo closes it).
      Deno.stdin.readable.pipeTo(session.stdin).catch(() => {});
    }
    const status = await session.exit;
    await Promise.all([stdout, stderr]);
    if (status.signal !== undefined && status.signal !== null) {
      out.debug(`Remote command killed by signal ${status.signal}`);
      // ssh(1) exits 255 when the remote side died of a signal.
      return 255;
    }
    return status.code ?? 255;
  } finally {
    for (const c of cleanups) c();
    restoreRaw();
  }
}

/** Prints a connect()/auth failure the way ssh(1) words it. */
export function reportFailure(
  e: unknown,
  cfg: SshConfig,
  out: Output,
  hostState: HostKeyState,
): void {
  if (e instanceof UsageError) {
    out.error(e.message);
  } else if (e instanceof HostKeyError || hostState.failed) {
    if (!hostState.failed) out.error("Host key verification failed.");
  } else if (e instanceof AuthError) {
    const methods = e.methods.length ? e.methods.join(",") : "no methods left";
    out.error(`${cfg.user}@${cfg.host}: Permission denied (${methods}).`);
  } else if (e instanceof PromptInterrupted) {
    out.error("");
  } else if (e instanceof DisconnectError) {
    if (e.fromPeer) {
      out.error(
        `Received disconnect from ${cfg.host} port ${cfg.port}:${e.reason}: ${e.message}`,
      );
    } else {out.error(
        `Connection to ${cfg.host} port ${cfg.port}: ${e.message}`,
      );}
  } else {
    out.error(`${NAME}: ${(e as Error)?.message ?? String(e)}`);
  }
}

/**
 * Loads identities, dials and connects as `cfg` says (known_hosts,
 * StrictHostKeyChecking, passwords and keyboard-interactive prompts when
 * allowed); what `fynx ssh` and `fynx sftp` share. Failures are thrown for
 * {@linkcode reportFailure}.
 */
export async function sshConnect(
  cfg: SshConfig,
  out: Output,
  hostState: HostKeyState,
): Promise<SshClient> {
  let identities: Identities | null = null;
  let client: SshClient;
  try {
    const prompts = !cfg.batch && hasTty();
    if (cfg.pubkeyAuth) {
      identities = await prepareIdentities({
        files: cfg.identities,
        explicit: cfg.identitiesExplicit,
        identitiesOnly: cfg.identitiesOnly,
        certificateFiles: cfg.certificateFiles,
        agentPath: agentSocketPath(cfg.identityAgent),
        prompt: prompts ? (q) => promptLine(q) : null,
        attempts: cfg.passwordPrompts,
        log: out,
      });
    }
    const algorithms: Partial<AlgorithmPreferences> = { ...cfg.algorithms };
    const knownName = knownHostName(cfg.host, cfg.port);
    if (!cfg.hostKeyAlgorithmsSet) {
      // As OpenSSH: prefer the host key types already on record, so a host
      // with several keys presents the one we know.
      const known = knownKeyTypes(
        await readKnownHosts(cfg.knownHostsFile).catch(() => ""),
        knownName,
      );
      if (known.length > 0) {
        const base = [...DEFAULT_ALGORITHMS.hostKey];
        const preferred = known.flatMap(algorithmsForType).filter((a) =>
          base.includes(a)
        );
        algorithms.hostKey = [
          ...preferred,
          ...base.filter((a) => !preferred.includes(a)),
        ];
      }
    }
    const methods = [
      ...(cfg.pubkeyAuth ? ["publickey"] : []),
      ...(cfg.kbdAuth && prompts ? ["keyboard-interactive"] : []),
      ...(cfg.passwordAuth && prompts ? ["password"] : []),
    ];
    let passwordAsked = 0;
    const conn = await dial(cfg, out);
    try {
      client = await connect({
        transport: conn,
        username: cfg.user,
        privateKeys: identities?.signers ?? [],
        onPublicKeyOffer: (signer) =>
          out.debug(`Offering public key: ${identities!.describe(signer)}`),
        methods,
        passwordAttempts: cfg.passwordPrompts,
        password: prompts
          ? () => {
            if (hostState.noPasswords) return null;
            if (passwordAsked++ > 0) {
              out.error("Permission denied, please try again.");
            }
            return promptLine(`${cfg.user}@${cfg.host}'s password: `);
          }
          : undefined,
        keyboardInteractive: prompts
          ? async (challenge: InteractiveChallenge) => {
            if (hostState.noPasswords) return null;
            if (challenge.name) console.error(challenge.name);
            if (challenge.instruction) console.error(challenge.instruction);
            const answers: string[] = [];
            for (const p of challenge.prompts) {
              const a = await promptLine(p.prompt, p.echo);
              if (a === null) return null;
              answers.push(a);
            }
            return answers;
          }
          : undefined,
        onBanner: (text) => {
          if (!cfg.quiet) Deno.stderr.writeSync(new TextEncoder().encode(text));
        },
        verifyHostKey: makeVerifier(cfg, out, hostState),
        algorithms,
        connectTimeout: 0,
        keepaliveInterval: cfg.aliveInterval * 1000,
        keepaliveCountMax: cfg.aliveCountMax,
      });
    } catch (e) {
      try {
        conn.close();
      } catch {
        // Already closed by connect().
      }
      throw e;
    }
    if (cfg.verbose > 0) {
      const a = client.algorithms;
      out.debug(`Remote protocol version: ${client.serverVersion}`);
      out.debug(`kex: algorithm: ${a.kex}`);
      out.debug(`kex: host key algorithm: ${a.hostKey}`);
      out.debug(
        `kex: server->client cipher: ${a.cipherS2C} MAC: ${
          a.macS2C ?? "<implicit>"
        } compression: ${a.compS2C}`,
      );
      out.debug(
        `kex: client->server cipher: ${a.cipherC2S} MAC: ${
          a.macC2S ?? "<implicit>"
        } compression: ${a.compC2S}`,
      );
      out.debug(
        `Authenticated to ${cfg.host} ([${cfg.host}]:${cfg.port}) as ${cfg.user}.`,
      );
    }
  } finally {
    // Signing is over once authenticated; forwarding connects anew.
    identities?.close();
  }
  return client;
}

/**
 * Runs `fynx ssh` with `args` (the words after `ssh`) and returns the exit
 * status. Prints usage errors as one line on stderr (status 255).
 */
export async function sshCommand(args: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseSshArgs>;
  try {
    parsed = parseSshArgs(args);
  } catch (e) {
    console.error((e as Error).message);
    return e instanceof UsageError ? e.code : 255;
  }
  if (parsed === "help") {
    console.log(SSH_USAGE);
    return 0;
  }
  if (parsed === "version") {
    console.error("fynx ssh (@fynx/ssh)");
    return 0;
  }
  const cfg = parsed;
  const out = new Output(cfg.verbose, cfg.quiet);
  const hostState: HostKeyState = { failed: false, noPasswords: false };
  let client: SshClient | null = null;
  const onTerm = () => {
    restoreTerminal();
    out.error("Killed by signal 15.");
    client?.close().catch(() => {});
    Deno.exit(255);
  };
  const onHup = () => {
    restoreTerminal();
    Deno.exit(255);
  };
  Deno.addSignalListener("SIGTERM", onTerm);
  Deno.addSignalListener("SIGHUP", onHup);
  try {
    client = await sshConnect(cfg, out, hostState);
  } catch (e) {
    reportFailure(e, cfg, out, hostState);
    Deno.removeSignalListener("SIGTERM", onTerm);
    Deno.removeSignalListener("SIGHUP", onHup);
    return 255;
  }
  try {
    const code = await runWithForwarding(
      client,
      cfg.forward,
      out,
      () => runSession(client!, cfg, out),
    );
    out.debug(`Exit status ${code}`);
    return code;
  } catch (e) {
    if (e instanceof DisconnectError) {
      out.error(`Connection to ${cfg.host} closed by remote host.`);
    } else {
      out.error(`${NAME}: ${(e as Error)?.message ?? String(e)}`);
    }
    return 255;
  } finally {
    restoreTerminal();
    Deno.removeSignalListener("SIGTERM", onTerm);
    Deno.removeSignalListener("SIGHUP", onHup);
    await client.close().catch(() => {});
  }
}
