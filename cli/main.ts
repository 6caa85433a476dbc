/**
 * The `fynx` command-line tool: `fynx ssh` (client), `fynx sftp` (file
 * transfer), `fynx sshd` (user-level server), `fynx keygen` and `fynx
 * tunnel` (tunnel client).
 *
 * Run it with `deno task fynx ...`, or build a binary with
 * `deno task compile`. Every command imports statically, so `deno compile`
 * bundles all of it.
 *
 * @module
 */
import { SSH_USAGE, sshCommand } from "./ssh.ts";
import { SSHD_USAGE, sshdCommand } from "./sshd.ts";
import { SFTP_USAGE, sftpCommand } from "./sftp.ts";
import { KEYGEN_USAGE, keygenCommand } from "./keygen.ts";
import { TUNNEL_USAGE, tunnelCommand } from "./tunnel.ts";
import { exitProcess } from "./_terminal.ts";

/** Usage text of `fynx` itself. */
export const MAIN_USAGE: string = `Usage: fynx <command> [options]

Commands:
  ssh     Run a command or a shell on an SSH server (like ssh(1))
  sftp    Transfer files over SSH, interactively or in batch (like sftp(1))
  sshd    Serve SSH as the current user (like a user-level sshd(8))
  keygen  Make keys, show fingerprints, edit known_hosts (like ssh-keygen(1))
  tunnel  Expose local services through a tunnel server, or relay to one
  help    Show help for a command: fynx help ssh

Options:
  --help, -h      Show this help
  --version, -V   Show the version

Run 'fynx <command> --help' for a command's options.
`;

const VERSION = "0.1.0";

const COMMANDS: Record<
  string,
  { run: (args: string[]) => Promise<number>; usage: string; badCode: number }
> = {
  ssh: { run: sshCommand, usage: SSH_USAGE, badCode: 255 },
  sshd: { run: sshdCommand, usage: SSHD_USAGE, badCode: 1 },
  sftp: { run: sftpCommand, usage: SFTP_USAGE, badCode: 255 },
  keygen: { run: keygenCommand, usage: KEYGEN_USAGE, badCode: 1 },
  tunnel: { run: tunnelCommand, usage: TUNNEL_USAGE, badCode: 1 },
};

/** Runs `fynx` with `args` and returns the exit status. */
export async function main(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  if (first === undefined || first === "--help" || first === "-h") {
    (first === undefined ? console.error : console.log)(MAIN_USAGE);
    return first === undefined ? 1 : 0;
  }
  if (first === "--version" || first === "-V") {
    console.log(`fynx ${VERSION}`);
    return 0;
  }
  if (first === "help") {
    const topic = rest[0];
    if (topic === undefined) {
      console.log(MAIN_USAGE);
      return 0;
    }
    const cmd = COMMANDS[topic];
    if (!cmd) {
      console.error(`fynx: unknown command '${topic}' (see 'fynx --help')`);
      return 1;
    }
    console.log(cmd.usage);
    return 0;
  }
  const cmd = COMMANDS[first];
  if (!cmd) {
    console.error(
      first.startsWith("-")
        ? `fynx: unknown option '${first}' (see 'fynx --help')`
        : `fynx: unknown command '${first}' (see 'fynx --help')`,
    );
    return 1;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    console.error(`fynx ${first}: ${(e as Error)?.message ?? String(e)}`);
    return cmd.badCode;
  }
}

if (import.meta.main) {
  // Explicit exit: a pending read on stdin must not keep the process alive.
  exitProcess(await main(Deno.args));
}
