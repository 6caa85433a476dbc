/**
 * Runs the `fynx` CLI the way users get it: `deno run` with exactly the
 * permission flags of the `fynx` task in deno.json (read from there, so the
 * tests cannot drift from what ships), never `-A`.
 *
 * @module
 */
import { run, type RunOptions, type RunResult } from "./_openssh.ts";

/** cli/main.ts as a path. */
export const FYNX_MAIN: string = new URL("../cli/main.ts", import.meta.url)
  .pathname;

function taskPermissions(): string[] {
  const config = JSON.parse(
    Deno.readTextFileSync(new URL("../deno.json", import.meta.url)),
  ) as { tasks: Record<string, string> };
  const flags = config.tasks.fynx.split(/\s+/).filter((f) =>
    f.startsWith("--allow-")
  );
  if (flags.length === 0) throw new Error("deno.json: fynx task has no flags");
  return flags;
}

/** The `fynx` task's `--allow-*` flags. */
export const FYNX_PERMISSIONS: readonly string[] = taskPermissions();

/** Runs `fynx ...args` (stdin is empty unless given). */
export function fynx(
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  return run(
    Deno.execPath(),
    ["run", "-q", ...FYNX_PERMISSIONS, FYNX_MAIN, ...args],
    { stdin: "", ...options },
  );
}

/** A running `fynx sshd` process. */
export interface FynxSshd {
  port: number;
  child: Deno.ChildProcess;
  /** Everything it logged on stderr so far. */
  log(): string;
  /** Sends `signal` and waits for the exit status (killed after 10 s). */
  stop(signal?: Deno.Signal): Promise<number>;
  /** Same as `stop()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts `fynx sshd ...args` with the `fynx` task's permissions (and `env`
 * added to its environment); resolves once it prints its port.
 */
export async function startFynxSshd(
  args: readonly string[],
  options: { env?: Record<string, string> } = {},
): Promise<FynxSshd> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-q", ...FYNX_PERMISSIONS, FYNX_MAIN, "sshd", ...args],
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let logText = "";
  const logDone = (async () => {
    for await (
      const chunk of child.stderr.pipeThrough(new TextDecoderStream())
    ) logText += chunk;
  })();
  let outText = "";
  const outReader = child.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  const outDone = (async () => {
    for (;;) {
      const { value, done } = await outReader.read();
      if (done) return;
      outText += value;
    }
  })();
  let status: Promise<Deno.CommandStatus> | null = null;
  const stop = async (signal: Deno.Signal = "SIGTERM"): Promise<number> => {
    if (!status) {
      try {
        child.kill(signal);
      } catch {
        // Already exited.
      }
      status = child.status;
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Gone.
      }
    }, 10_000);
    try {
      const s = await status;
      await Promise.all([logDone, outDone]);
      return s.code;
    } finally {
      clearTimeout(timer);
    }
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    const m = outText.match(/listening on [^\s]+:(\d+)/);
    if (m) {
      return {
        port: Number(m[1]),
        child,
        log: () => logText,
        stop,
        [Symbol.asyncDispose]: async () => {
          await stop();
        },
      };
    }
    if (Date.now() > deadline) {
      await stop("SIGKILL");
      throw new Error(`fynx sshd did not start:\n${logText}`);
    }
    const exited = await Promise.race([
      child.status.then(() => true),
      new Promise((r) => setTimeout(r, 50, false)),
    ]);
    if (exited && !/listening on/.test(outText)) {
      await stop();
      throw new Error(`fynx sshd exited early:\n${logText}`);
    }
  }
}
