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
