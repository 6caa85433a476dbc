/**
 * Test helpers around a real OpenSSH `ssh-agent` (started in the
 * foreground with `-D -a <socket>` in a fresh temporary directory) and
 * `fynx sshd` as a child process.
 *
 * @module
 */
import { run, type RunResult } from "./_openssh.ts";
import {
  type FynxSshd,
  startFynxSshd as startFynxSshdProcess,
} from "./_fynx.ts";

/** ssh-agent binary. */
export const SSH_AGENT = "/usr/bin/ssh-agent";
/** ssh-add binary. */
export const SSH_ADD = "/usr/bin/ssh-add";

function executable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** Why agent tests cannot run here, or null when they can. */
export const agentSkipReason: string | null = Deno.build.os !== "linux"
  ? `ssh-agent tests run on Linux only (this is ${Deno.build.os})`
  : ![SSH_AGENT, SSH_ADD, "/usr/bin/ssh-keygen", "/usr/bin/ssh"].every(
      executable,
    )
  ? "OpenSSH's ssh-agent, ssh-add, ssh-keygen and ssh are needed"
  : null;

/** A running private ssh-agent. */
export interface SshAgent {
  /** Its temporary directory (keys made for the test may go here too). */
  readonly dir: string;
  /** The socket, for `SSH_AUTH_SOCK`. */
  readonly socket: string;
  /** `{ SSH_AUTH_SOCK: socket }` (plus a harmless `SSH_ASKPASS`). */
  readonly env: Record<string, string>;
  /** `ssh-add` with these arguments against this agent. */
  sshAdd(args: readonly string[]): Promise<RunResult>;
  /** SHA256 fingerprints `ssh-add -l` lists (empty when none). */
  fingerprints(): Promise<string[]>;
  /** Kills the agent and removes the directory. */
  stop(): Promise<void>;
  /** Same as {@linkcode SshAgent.stop}. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts `ssh-agent -D -a <dir>/agent.sock` and waits for the socket. */
export async function startSshAgent(): Promise<SshAgent> {
  const dir = await Deno.makeTempDir({ prefix: "fynx-agent-test-" });
  const socket = `${dir}/agent.sock`;
  const child = new Deno.Command(SSH_AGENT, {
    args: ["-D", "-a", socket],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await child.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    for (let i = 0;; i++) {
      try {
        if (Deno.statSync(socket).isSocket) break;
      } catch {
        // Not there yet.
      }
      if (i >= 200) {
        throw new Error(`ssh-agent socket ${socket} did not appear`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  } catch (e) {
    await stop();
    throw e;
  }
  const env = { SSH_AUTH_SOCK: socket, SSH_ASKPASS: "/bin/false" };
  const sshAdd = (args: readonly string[]) => run(SSH_ADD, args, { env });
  return {
    dir,
    socket,
    env,
    sshAdd,
    async fingerprints() {
      const r = await sshAdd(["-l", "-E", "sha256"]);
      if (r.code === 1) return []; // "The agent has no identities."
      if (r.code !== 0) throw new Error(`ssh-add -l failed: ${r.stderrText}`);
      return r.stdoutText.trim().split("\n").map((l) => l.split(" ")[1]);
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

export type { FynxSshd } from "./_fynx.ts";

/**
 * Starts `fynx sshd --listen 127.0.0.1:0 ...args` with the `fynx` task's
 * permissions and `env` added to its environment.
 */
export function startFynxSshd(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<FynxSshd> {
  return startFynxSshdProcess(["--listen", "127.0.0.1:0", ...args], { env });
}
