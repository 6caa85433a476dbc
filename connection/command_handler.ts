/**
 * A ready-made server session handler that runs commands and shells as the
 * current OS user, like `sshd` does: what `fynx sshd` uses.
 *
 * @module
 */

import { type AgentSocket, listenAgentSocket } from "../agent/forward.ts";
import { type PtyProcess, ptySupported, spawnPty } from "./pty.ts";
import type {
  ServerSession,
  SessionContext,
  SessionRequest,
  SessionRestrictions,
} from "./session.ts";

/** Options for {@linkcode commandSessionHandler}. */
export interface CommandSessionHandlerOptions {
  /** The shell that runs commands (`shell -c command`) and login shells. @default $SHELL, else "/bin/sh" */
  shell?: string;
  /** Extra environment variables for every child, on top of this process's. @default {} */
  env?: Record<string, string>;
  /** Working directory of every child. @default $HOME, else the current directory */
  cwd?: string;
  /**
   * Which client `env` requests to apply, like OpenSSH's `AcceptEnv`:
   * names, or patterns ending in `*`.
   * @default ["LANG", "LC_*"]
   */
  acceptEnv?: string[];
  /**
   * Milliseconds between SIGHUP and SIGKILL when the client closes the
   * channel while the child still runs.
   * @default 2000
   */
  killGraceMs?: number;
  /**
   * Whether clients may forward their agent (`auth-agent-req@openssh.com`,
   * sshd `AllowAgentForwarding`): the session's commands then find a
   * per-session socket in `SSH_AUTH_SOCK`. A user whose `authorized_keys`
   * line says `no-agent-forwarding` or `restrict` is refused either way.
   * @default true
   */
  agentForwarding?: boolean;
  /**
   * Subsystems served in-process, by name (e.g. `{ sftp:
   * sftpSubsystem({ root: "/" }) }` from `@fynx/ssh/sftp`). The handler
   * takes the session over: it serves it and sends the exit status. A
   * forced command (`command=`) runs instead, as in sshd.
   * @default {}
   */
  subsystems?: Record<string, (session: ServerSession) => void>;
}

const SIGNALS: ReadonlySet<string> = new Set([
  "ABRT",
  "ALRM",
  "FPE",
  "HUP",
  "ILL",
  "INT",
  "KILL",
  "PIPE",
  "QUIT",
  "SEGV",
  "TERM",
  "USR1",
  "USR2",
]);

/** The terminal a `pty-req` asked for. */
interface PtyWanted {
  term: string;
  cols: number;
  rows: number;
  widthPixels: number;
  heightPixels: number;
  modes: Uint8Array;
}

function clamp16(n: number): number {
  return Math.min(Math.max(n, 0), 0xffff);
}

function envGet(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

function envAccepted(name: string, patterns: readonly string[]): boolean {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return false;
  return patterns.some((p) =>
    p.endsWith("*") ? name.startsWith(p.slice(0, -1)) : name === p
  );
}

/**
 * Returns a session handler (for `onSession` / `onSessionOpen`) that runs
 * commands as the current OS user:
 *
 * - `exec` runs `[shell, "-c", command]` with `Deno.Command` (an argument
 *   array, never a concatenated string) and pipes stdin, stdout and stderr
 *   with backpressure both ways;
 * - `shell` runs `[shell, "-l"]`;
 * - after a `pty-req`, both run on a real pseudo-terminal (`TERM` from the
 *   request, `window-change` resizes it) when the platform supports one;
 * - `env` requests are applied when their name is in `acceptEnv`;
 * - `signal` requests signal the child;
 * - when the child ends, `exit-status` (or `exit-signal`) is sent after all
 *   its output, then EOF and CLOSE;
 * - when the client closes the channel first, the child gets SIGHUP (then
 *   SIGKILL after `killGraceMs`);
 * - restrictions in `context.auth.restrictions` (from `authorized_keys`
 *   options) apply: a forced command replaces what the client asked for
 *   (which goes in `SSH_ORIGINAL_COMMAND`), PTYs and agent forwarding can
 *   be forbidden, and extra environment is set;
 * - `auth-agent-req@openssh.com` (before `exec`/`shell`) makes a
 *   per-session agent socket (see `listenAgentSocket` in
 *   `@fynx/ssh/agent`) and sets `SSH_AUTH_SOCK` to it; it is removed when
 *   the session ends. Without forwarding, `SSH_AUTH_SOCK` is removed from
 *   what children inherit from this process.
 *
 * Subsystems are refused unless named in `subsystems`.
 *
 * @example Serve commands to a client (over two back-to-back connections)
 * ```ts
 * import { commandSessionHandler, Connection } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * let server: Connection | undefined;
 * const client = new Connection({
 *   send: async (p) => { await null; server!.dispatch(p.slice()); },
 * }, { side: "client" });
 * server = new Connection({
 *   send: async (p) => { await null; client.dispatch(p.slice()); },
 * }, { side: "server", onSessionOpen: commandSessionHandler({ shell: "/bin/sh" }) });
 *
 * const result = await client.exec("tr a-z A-Z; exit 4", { stdin: "hello" });
 * assert.equal(new TextDecoder().decode(result.stdout), "HELLO");
 * assert.equal(result.code, 4);
 * client.close();
 * server.close();
 * ```
 */
export function commandSessionHandler(
  options: CommandSessionHandlerOptions = {},
): (session: ServerSession, context?: SessionContext) => void {
  const shell = options.shell ?? envGet("SHELL") ?? "/bin/sh";
  if (typeof shell !== "string" || shell === "") {
    throw new TypeError(`Invalid shell: ${JSON.stringify(shell)}`);
  }
  const baseEnv = { ...options.env };
  const acceptEnv = options.acceptEnv ?? ["LANG", "LC_*"];
  const killGraceMs = options.killGraceMs ?? 2000;
  const agentForwarding = options.agentForwarding ?? true;
  const subsystems = { ...options.subsystems };
  // One settings object for every session of this handler.
  const settings: Settings = {
    shell,
    baseEnv,
    cwd: options.cwd,
    acceptEnv,
    killGraceMs,
    agentForwarding,
    subsystems,
  };
  return (session: ServerSession, context?: SessionContext): void => {
    new CommandSession(
      session,
      settings,
      context?.auth?.restrictions ?? NO_RESTRICTIONS,
    );
  };
}

const NO_RESTRICTIONS: SessionRestrictions = Object.freeze({});

interface Settings {
  shell: string;
  baseEnv: Record<string, string>;
  /** The working directory; the user's `HOME` (read when a child starts) if unset. */
  cwd: string | undefined;
  acceptEnv: readonly string[];
  killGraceMs: number;
  agentForwarding: boolean;
  subsystems: Record<string, (session: ServerSession) => void>;
}

/** The state of one session run by {@linkcode commandSessionHandler}. */
class CommandSession {
  readonly #session: ServerSession;
  readonly #settings: Settings;
  readonly #restrictions: SessionRestrictions;
  /** Variables from `env` requests; made on the first one. */
  #env: Record<string, string> | null = null;
  #pty: PtyWanted | null = null;
  #started = false;
  #child: Deno.ChildProcess | null = null;
  #terminal: PtyProcess | null = null;
  #agent: AgentSocket | "pending" | null = null;

  constructor(
    session: ServerSession,
    settings: Settings,
    restrictions: SessionRestrictions,
  ) {
    this.#session = session;
    this.#settings = settings;
    this.#restrictions = restrictions;
    session.onRequest = (req) => this.#onRequest(req);
  }

  #onRequest(req: SessionRequest): boolean | Promise<boolean> {
    switch (req.type) {
      case "auth-agent-req@openssh.com":
        return this.#startAgent();
      case "pty-req":
        if (
          this.#started || this.#pty !== null || !ptySupported() ||
          this.#restrictions.pty === false
        ) {
          return false;
        }
        this.#pty = {
          term: req.term,
          cols: clamp16(req.columns),
          rows: clamp16(req.rows),
          widthPixels: clamp16(req.widthPixels),
          heightPixels: clamp16(req.heightPixels),
          modes: req.modes,
        };
        return true;
      case "env":
        if (this.#started) return false;
        if (
          !envAccepted(req.name, this.#settings.acceptEnv) ||
          req.value.includes("\0")
        ) return false;
        (this.#env ??= {})[req.name] = req.value;
        return true;
      case "window-change": {
        if (this.#pty === null) return false;
        const size = {
          cols: clamp16(req.columns),
          rows: clamp16(req.rows),
          widthPixels: clamp16(req.widthPixels),
          heightPixels: clamp16(req.heightPixels),
        };
        Object.assign(this.#pty, size);
        this.#terminal?.resize(size);
        return true;
      }
      case "signal": {
        if (!SIGNALS.has(req.name)) return false;
        const signal = `SIG${req.name}` as Deno.Signal;
        try {
          if (this.#terminal !== null) this.#terminal.kill(signal);
          else if (this.#child !== null) this.#child.kill(signal);
          else return false;
        } catch {
          return false;
        }
        return true;
      }
      case "exec":
      case "shell": {
        const forced = this.#restrictions.forceCommand;
        if (forced !== undefined) {
          // sshd(8) command=: run it whatever was asked, and say what was.
          if (req.type === "exec") {
            (this.#env ??= {}).SSH_ORIGINAL_COMMAND = req.command;
          }
          return this.#start(["-c", forced]);
        }
        return this.#start(req.type === "exec" ? ["-c", req.command] : ["-l"]);
      }
      case "subsystem": {
        const forced = this.#restrictions.forceCommand;
        if (forced !== undefined) return this.#start(["-c", forced]);
        const serve = Object.hasOwn(this.#settings.subsystems, req.name)
          ? this.#settings.subsystems[req.name]
          : undefined;
        if (serve === undefined || this.#started || this.#session.isClosed) {
          return false;
        }
        this.#started = true;
        serve(this.#session);
        return true;
      }
      default:
        return false;
    }
  }

  /** Agent forwarding: a socket for this session's commands. */
  async #startAgent(): Promise<boolean> {
    if (
      !this.#settings.agentForwarding ||
      this.#restrictions.agentForwarding === false ||
      this.#started || this.#agent !== null || this.#session.isClosed
    ) {
      return false;
    }
    this.#agent = "pending";
    try {
      this.#agent = await listenAgentSocket(this.#session);
      return true;
    } catch {
      this.#agent = null;
      return false;
    }
  }

  #start(args: string[]): boolean {
    if (this.#started || this.#session.isClosed) return false;
    const env: Record<string, string> = {
      ...this.#settings.baseEnv,
      ...this.#env,
      ...this.#restrictions.environment,
    };
    // The session sees its own forwarded agent, never this process's.
    let clearEnv = false;
    if (typeof this.#agent === "object" && this.#agent !== null) {
      env.SSH_AUTH_SOCK = this.#agent.path;
    } else if (envGet("SSH_AUTH_SOCK") !== undefined) {
      try {
        const inherited = Deno.env.toObject();
        delete inherited.SSH_AUTH_SOCK;
        Object.assign(env, { ...inherited, ...env });
        clearEnv = true;
      } catch {
        // No permission to list the environment: leave it as it is.
      }
    }
    try {
      if (this.#pty !== null) {
        const pty = this.#pty;
        this.#terminal = spawnPty(this.#settings.shell, {
          args,
          env: { ...env, TERM: pty.term || "dumb" },
          clearEnv,
          cwd: this.#settings.cwd ?? envGet("HOME"),
          cols: pty.cols,
          rows: pty.rows,
          widthPixels: pty.widthPixels,
          heightPixels: pty.heightPixels,
          terminalModes: pty.modes,
        });
      } else {
        this.#child = new Deno.Command(this.#settings.shell, {
          args,
          env,
          clearEnv,
          cwd: this.#settings.cwd ?? envGet("HOME"),
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
      }
    } catch {
      return false;
    }
    this.#started = true;
    this.#run().catch(() => {});
    return true;
  }

  async #run(): Promise<void> {
    const session = this.#session;
    let status: {
      code: number | null;
      signal: string | null;
      coreDumped: boolean;
    };
    let kill: (signal: Deno.Signal) => void;
    let output: Promise<unknown>;
    let stopInput: () => void;
    const input = new AbortController();
    if (this.#terminal !== null) {
      const pty = this.#terminal;
      kill = (signal) => {
        pty.kill(signal);
        pty.close();
      };
      // A terminal has no half-close: the client's EOF ends nothing here.
      session.stdin.pipeTo(pty.writable, {
        preventClose: true,
        signal: input.signal,
      }).catch(() => {});
      output = pty.readable.pipeTo(session.stdout).catch(() => {});
      stopInput = () => input.abort();
      const settled = this.#watch(kill, pty.status);
      status = await pty.status;
      await output;
      settled();
      pty.close();
    } else {
      const child = this.#child!;
      kill = (signal) => child.kill(signal);
      session.stdin.pipeTo(child.stdin, { signal: input.signal })
        .catch(() => {});
      output = Promise.all([
        child.stdout.pipeTo(session.stdout).catch(() => {}),
        child.stderr.pipeTo(session.stderr).catch(() => {}),
      ]);
      stopInput = () => input.abort();
      const settled = this.#watch(kill, child.status);
      const s = await child.status;
      await output;
      settled();
      status = {
        code: s.signal === null ? s.code : null,
        signal: s.signal === null ? null : s.signal.replace(/^SIG/, ""),
        coreDumped: false,
      };
    }
    stopInput();
    if (session.isClosed) return;
    if (status.signal !== null) {
      await session.exitSignal(status.signal, {
        coreDumped: status.coreDumped,
      });
    } else {
      await session.exit(status.code ?? 255);
    }
  }

  /**
   * Kills the child when the channel goes away before it exits; returns a
   * function that stops watching (call it once the child was reaped).
   */
  #watch(
    kill: (signal: Deno.Signal) => void,
    exited: Promise<unknown>,
  ): () => void {
    let done = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    this.#session.closed.then(() => {
      if (done) return;
      try {
        kill("SIGHUP");
      } catch {
        // Already gone.
      }
      timer = setTimeout(() => {
        try {
          kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }, this.#settings.killGraceMs);
      exited.finally(() => clearTimeout(timer));
    });
    return () => {
      done = true;
      clearTimeout(timer);
    };
  }
}
