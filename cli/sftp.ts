/**
 * `fynx sftp`: an OpenSSH-compatible interactive and batch SFTP client.
 *
 * `fynx sftp [-P port] [-i identity] [-o option] [-b batchfile]
 * [user@]host[:path]` connects exactly as `fynx ssh` does (same
 * known_hosts handling, identities and prompts), starts the `sftp`
 * subsystem and runs commands read from the terminal or the batch file.
 *
 * @module
 */
import type { SshClient } from "../client.ts";
import {
  longName,
  openSftp,
  type SftpAttributes,
  type SftpClient,
  SftpError,
  type SftpProgress,
  SftpStatus,
} from "../sftp/mod.ts";
import {
  flagCount,
  type OptionTable,
  parseFlags,
  splitAtFirstPositional,
  stringList,
  UsageError,
} from "./_args.ts";
import {
  type HostKeyState,
  Output,
  parseSshArgs,
  reportFailure,
  sshConnect,
} from "./ssh.ts";
import { terminalSize } from "./_terminal.ts";

/** Usage text of `fynx sftp`. */
export const SFTP_USAGE: string = `Usage: fynx sftp [options] [user@]host[:path]

Transfers files over SSH (the sftp subsystem), like sftp(1). Connection
options, known_hosts and authentication work as in 'fynx ssh'.

Options:
  -P PORT            Port to connect to (default 22)
  -i FILE            Identity (private key) file; repeatable
  -o OPTION=VALUE    ssh_config option, as for 'fynx ssh'; repeatable
  -b FILE            Batch mode: read commands from FILE ('-' for stdin);
                     the first failing command ends the run (exit 1)
                     unless it starts with '-'; '@' hides its echo.
                     Implies BatchMode=yes.
  -C                 Request compression
  -q                 Quiet: no progress meter, warnings or banners
  -v                 Verbose debug output on stderr (repeatable)
  --help             Show this help

Commands:
  ls [-l] [-a] [-1] [path]     List a remote directory (or file)
  cd path / lcd path           Change the remote / local directory
  pwd / lpwd                   Show the remote / local directory
  get remote [local]           Download a file
  put local [remote]           Upload a file
  mkdir path / rmdir path      Make / remove a remote directory
  rm path                      Remove a remote file
  rename old new               Rename a remote file
  ln [-s] old new              Make a hard (or symbolic) link
  chmod mode path              Change permissions (octal)
  help, ?                      Show the commands
  exit, quit, bye              Leave

A progress bar with rate and ETA is shown on get and put when stdout is a
terminal (not in batch mode). Exit status: 0 on success, 1 when a command
failed in batch mode, 255 when connecting failed.
`;

const HELP = `Available commands:
bye                                Quit sftp
cd path                            Change remote directory to 'path'
chmod mode path                    Change permissions of file 'path' to 'mode'
exit                               Quit sftp
get remote [local]                 Download file
help                               Display this help text
lcd path                           Change local directory to 'path'
ln [-s] oldpath newpath            Link remote file (-s for symlink)
lpwd                               Print local working directory
ls [-1al] [path]                   Display remote directory listing
mkdir path                         Create remote directory
put local [remote]                 Upload file
pwd                                Display remote working directory
quit                               Quit sftp
rename oldpath newpath             Rename remote file
rm path                            Delete remote file
rmdir path                         Remove remote directory
?                                  Synonym for help
`;

const FLAGS: OptionTable = {
  port: { type: "string", short: "P" },
  identity: { type: "string", short: "i", multiple: true },
  option: { type: "string", short: "o", multiple: true },
  batch: { type: "string", short: "b" },
  compression: { type: "boolean", short: "C" },
  quiet: { type: "boolean", short: "q" },
  verbose: { type: "boolean", short: "v", multiple: true },
  help: { type: "boolean", short: "h" },
};

/** A command failed; the message is printed on stderr. */
class CommandError extends Error {}

/** Splits a command line into words: quotes and backslashes as sftp(1). */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote !== null) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < line.length) {
        word += line[++i];
      } else word += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (c === " " || c === "\t") {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote !== null) throw new CommandError("Unterminated quote");
  if (inWord) words.push(word);
  return words;
}

function joinPath(dir: string, name: string): string {
  if (name.startsWith("/")) return name;
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

function baseName(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1) || trimmed;
}

function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0
    ? `${n}B`
    : `${v < 10 ? v.toFixed(1) : Math.round(v)}${units[u]}`;
}

function formatTime(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/**
 * A one-line progress meter like sftp(1)'s: name, percent, bytes, rate
 * and ETA, redrawn at most ten times a second on a terminal.
 */
class ProgressBar {
  readonly #name: string;
  readonly #start = performance.now();
  #last = 0;
  #lastBytes = 0;
  #rate = 0;
  #rateAt = performance.now();
  readonly #enc = new TextEncoder();

  constructor(name: string) {
    this.#name = name;
  }

  update(p: SftpProgress, final = false): void {
    const now = performance.now();
    if (!final && now - this.#last < 100) return;
    this.#last = now;
    const dt = (now - this.#rateAt) / 1000;
    if (dt >= 0.5 || final) {
      const instant = (p.bytes - this.#lastBytes) / Math.max(dt, 1e-3);
      this.#rate = this.#rate === 0
        ? instant
        : this.#rate * 0.5 + instant * 0.5;
      this.#lastBytes = p.bytes;
      this.#rateAt = now;
    }
    const elapsed = (now - this.#start) / 1000;
    const total = p.total ?? 0;
    const pct = total > 0 ? Math.floor((p.bytes / total) * 100) : 100;
    // The average so far until the first half-second sample exists.
    const rate = final || this.#rate === 0
      ? p.bytes / Math.max(elapsed, 1e-3)
      : this.#rate;
    const tail = final
      ? `${formatTime(elapsed)}    `
      : `${formatTime(rate > 0 ? (total - p.bytes) / rate : NaN)} ETA`;
    const right = `${String(pct).padStart(3)}% ${
      formatBytes(p.bytes).padStart(6)
    } ${(formatBytes(Math.round(rate)) + "/s").padStart(9)} ${tail}`;
    const width = Math.max(40, terminalSize().columns);
    const room = width - right.length - 2;
    const name = this.#name.length > room
      ? this.#name.slice(0, Math.max(0, room))
      : this.#name.padEnd(room);
    Deno.stdout.writeSync(
      this.#enc.encode(`\r${name} ${right}${final ? "\n" : ""}`),
    );
  }
}

/** The state of one `fynx sftp` run. */
class Shell {
  readonly sftp: SftpClient;
  readonly out: Output;
  readonly progress: boolean;
  cwd = "/";
  lcwd: string;
  readonly #enc = new TextEncoder();

  constructor(sftp: SftpClient, out: Output, progress: boolean) {
    this.sftp = sftp;
    this.out = out;
    this.progress = progress;
    this.lcwd = Deno.cwd();
  }

  print(text: string): void {
    const data = this.#enc.encode(text + "\n");
    let off = 0;
    while (off < data.length) off += Deno.stdout.writeSync(data.subarray(off));
  }

  remote(path: string): string {
    return joinPath(this.cwd, path);
  }

  local(path: string): string {
    return joinPath(this.lcwd, path);
  }

  async #isRemoteDir(path: string): Promise<boolean> {
    try {
      const a = await this.sftp.stat(path);
      return ((a.permissions ?? 0) & 0o170000) === 0o040000;
    } catch {
      return false;
    }
  }

  /** Runs one command line; false means "quit". */
  async run(words: string[]): Promise<boolean> {
    const [cmd, ...args] = words;
    const need = (min: number, max: number, usage: string) => {
      if (args.length < min || args.length > max) {
        throw new CommandError(`Usage: ${usage}`);
      }
    };
    switch (cmd) {
      case "exit":
      case "quit":
      case "bye":
        return false;
      case "help":
      case "?":
        Deno.stdout.writeSync(this.#enc.encode(HELP));
        return true;
      case "pwd":
        need(0, 0, "pwd");
        this.print(`Remote working directory: ${this.cwd}`);
        return true;
      case "lpwd":
        need(0, 0, "lpwd");
        this.print(`Local working directory: ${this.lcwd}`);
        return true;
      case "cd": {
        need(0, 1, "cd [path]");
        const target = args.length === 0
          ? await this.sftp.realpath(".")
          : await this.sftp.realpath(this.remote(args[0]));
        const a = await this.sftp.stat(target);
        if (((a.permissions ?? 0) & 0o170000) !== 0o040000) {
          throw new CommandError(
            `Can't change directory: "${target}" is not a directory`,
          );
        }
        this.cwd = target;
        return true;
      }
      case "lcd": {
        need(0, 1, "lcd [path]");
        const target = args.length === 0
          ? Deno.env.get("HOME") ?? "/"
          : this.local(args[0]);
        let info: Deno.FileInfo;
        try {
          info = await Deno.stat(target);
        } catch (e) {
          throw new CommandError(
            `Couldn't change local directory to "${target}": ${
              (e as Error).message.split(" (os error")[0]
            }`,
          );
        }
        if (!info.isDirectory) {
          throw new CommandError(
            `Couldn't change local directory to "${target}": Not a directory`,
          );
        }
        this.lcwd = await Deno.realPath(target);
        return true;
      }
      case "ls":
      case "dir":
        await this.#ls(args);
        return true;
      case "get": {
        need(1, 2, "get remote [local]");
        const remote = this.remote(args[0]);
        let local = this.local(args[1] ?? baseName(args[0]));
        try {
          if ((await Deno.stat(local)).isDirectory) {
            local = joinPath(local, baseName(args[0]));
          }
        } catch {
          // Does not exist yet.
        }
        this.print(`Fetching ${remote} to ${local}`);
        await this.#transfer(
          baseName(remote),
          (onProgress) => this.sftp.get(remote, local, { onProgress }),
        );
        return true;
      }
      case "put": {
        need(1, 2, "put local [remote]");
        const local = this.local(args[0]);
        let remote = this.remote(args[1] ?? baseName(args[0]));
        if (await this.#isRemoteDir(remote)) {
          remote = joinPath(remote, baseName(args[0]));
        }
        this.print(`Uploading ${local} to ${remote}`);
        await this.#transfer(
          baseName(local),
          (onProgress) => this.sftp.put(local, remote, { onProgress }),
        );
        return true;
      }
      case "mkdir":
        need(1, 1, "mkdir path");
        await this.sftp.mkdir(this.remote(args[0]));
        return true;
      case "rmdir":
        need(1, 1, "rmdir path");
        await this.sftp.rmdir(this.remote(args[0]));
        return true;
      case "rm":
        need(1, 1, "rm path");
        this.print(`Removing ${this.remote(args[0])}`);
        await this.sftp.remove(this.remote(args[0]));
        return true;
      case "rename":
        need(2, 2, "rename oldpath newpath");
        await this.sftp.rename(this.remote(args[0]), this.remote(args[1]));
        return true;
      case "ln":
      case "symlink": {
        const symbolic = cmd === "symlink" || args[0] === "-s";
        const rest = args[0] === "-s" ? args.slice(1) : args;
        if (rest.length !== 2) {
          throw new CommandError("Usage: ln [-s] oldpath newpath");
        }
        if (symbolic) {
          await this.sftp.symlink(rest[0], this.remote(rest[1]));
        } else {
          await this.sftp.hardlink(
            this.remote(rest[0]),
            this.remote(rest[1]),
          );
        }
        return true;
      }
      case "chmod": {
        need(2, 2, "chmod mode path");
        if (!/^[0-7]{1,4}$/.test(args[0])) {
          throw new CommandError(`Bad mode '${args[0]}' (octal expected)`);
        }
        const path = this.remote(args[1]);
        this.print(`Changing mode on ${path}`);
        await this.sftp.setstat(path, { permissions: parseInt(args[0], 8) });
        return true;
      }
      default:
        throw new CommandError(`Invalid command '${cmd}' (see 'help')`);
    }
  }

  async #transfer(
    name: string,
    go: (onProgress?: (p: SftpProgress) => void) => Promise<void>,
  ): Promise<void> {
    if (!this.progress) return await go();
    const bar = new ProgressBar(name);
    let last: SftpProgress = { bytes: 0, total: undefined };
    await go((p) => {
      last = p;
      bar.update(p);
    });
    bar.update(last, true);
  }

  async #ls(args: string[]): Promise<void> {
    let long = false;
    let all = false;
    let single = false;
    const paths: string[] = [];
    for (const a of args) {
      if (a.startsWith("-") && a.length > 1) {
        for (const f of a.slice(1)) {
          if (f === "l") long = true;
          else if (f === "a") all = true;
          else if (f === "1") single = true;
          else throw new CommandError(`ls: invalid flag -${f}`);
        }
      } else paths.push(a);
    }
    if (paths.length > 1) throw new CommandError("Usage: ls [-1al] [path]");
    const path = paths.length === 0 ? this.cwd : this.remote(paths[0]);
    const attrs = await this.sftp.stat(path);
    type Row = { name: string; longname: string; attrs: SftpAttributes };
    let rows: Row[];
    if (((attrs.permissions ?? 0) & 0o170000) !== 0o040000) {
      rows = [{ name: paths[0] ?? path, longname: "", attrs }];
    } else {
      const prefix = paths.length === 0 ? "" : paths[0].replace(/\/*$/, "/");
      const dir = await this.sftp.opendir(path);
      rows = [];
      try {
        for await (const e of dir) {
          if (!all && e.filename.startsWith(".")) continue;
          rows.push({
            name: prefix + e.filename,
            longname: e.longname,
            attrs: e.attrs,
          });
        }
      } finally {
        await dir.close().catch(() => {});
      }
      rows.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    }
    if (long) {
      for (const r of rows) {
        // The server's own line when it sent one, as sftp(1) shows it.
        this.print(r.longname || longName(r.name, r.attrs));
      }
      return;
    }
    if (single || !Deno.stdout.isTerminal()) {
      for (const r of rows) this.print(r.name);
      return;
    }
    const width = terminalSize().columns;
    const colWidth = Math.max(...rows.map((r) => r.name.length), 1) + 2;
    const perLine = Math.max(1, Math.floor(width / colWidth));
    for (let i = 0; i < rows.length; i += perLine) {
      this.print(
        rows.slice(i, i + perLine).map((r) => r.name.padEnd(colWidth)).join(
          "",
        ).trimEnd(),
      );
    }
  }
}

/** Reads lines from a byte stream. */
async function* lines(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, nl).replace(/\r$/, "");
      buf = buf.slice(nl + 1);
    }
  }
  if (buf !== "") yield buf;
}

function describe(e: unknown): string {
  if (e instanceof CommandError || e instanceof SftpError) return e.message;
  const msg = (e as Error)?.message ?? String(e);
  return msg.split(" (os error")[0];
}

/**
 * Runs `fynx sftp` with `args` (the words after `sftp`) and returns the
 * exit status.
 */
export async function sftpCommand(args: string[]): Promise<number> {
  let values: Record<string, unknown>;
  let positionals: string[];
  try {
    const split = splitAtFirstPositional(args, FLAGS);
    values = parseFlags("fynx sftp", split.options, FLAGS, 255).values;
    positionals = split.positionals;
    if (values.help) {
      console.log(SFTP_USAGE);
      return 0;
    }
    if (positionals.length !== 1) {
      throw new UsageError(
        positionals.length === 0
          ? "fynx sftp: missing destination (see 'fynx sftp --help')"
          : `fynx sftp: unexpected argument '${positionals[1]}'`,
        255,
      );
    }
  } catch (e) {
    console.error((e as Error).message);
    return e instanceof UsageError ? e.code : 255;
  }

  // [user@]host[:path], host possibly [v6addr].
  const dest = positionals[0];
  const m = dest.match(/^((?:[^@]*@)?)(\[[^\]]*\]|[^:]*)(?::(.*))?$/);
  const hostPart = `${m?.[1] ?? ""}${m?.[2] ?? dest}`;
  const startPath = m?.[3] || null;
  const batchFile = values.batch === undefined ? null : String(values.batch);

  // Everything else is fynx ssh's business: translate to its flags.
  const sshArgv: string[] = [];
  if (values.port !== undefined) sshArgv.push("-p", String(values.port));
  for (const i of stringList(values.identity)) sshArgv.push("-i", i);
  for (const o of stringList(values.option)) sshArgv.push("-o", o);
  if (batchFile !== null) sshArgv.push("-o", "BatchMode=yes");
  if (values.compression) sshArgv.push("-C");
  if (values.quiet) sshArgv.push("-q");
  for (let i = 0; i < flagCount(values.verbose); i++) sshArgv.push("-v");
  sshArgv.push("--", hostPart);

  let cfg;
  try {
    const parsed = parseSshArgs(sshArgv);
    if (typeof parsed === "string") {
      throw new UsageError("fynx sftp: bad arguments", 255);
    }
    cfg = parsed;
  } catch (e) {
    console.error((e as Error).message.replace(/^fynx ssh/, "fynx sftp"));
    return 255;
  }

  let input: AsyncGenerator<string>;
  let batchHandle: Deno.FsFile | null = null;
  if (batchFile !== null && batchFile !== "-") {
    try {
      batchHandle = await Deno.open(batchFile, { read: true });
    } catch (e) {
      console.error(
        `fynx sftp: cannot open batch file ${batchFile}: ${describe(e)}`,
      );
      return 1;
    }
    input = lines(batchHandle.readable);
  } else {
    input = lines(Deno.stdin.readable);
  }

  const out = new Output(cfg.verbose, cfg.quiet);
  const hostState: HostKeyState = { failed: false, noPasswords: false };
  let client: SshClient;
  try {
    client = await sshConnect(cfg, out, hostState);
  } catch (e) {
    reportFailure(e, cfg, out, hostState);
    await input.return(undefined);
    return 255;
  }
  let sftp: SftpClient;
  try {
    sftp = await openSftp(client);
  } catch (e) {
    out.error(`fynx sftp: ${describe(e)}`);
    await client.close().catch(() => {});
    await input.return(undefined);
    return 255;
  }
  const interactive = batchFile === null && Deno.stdin.isTerminal();
  const shell = new Shell(
    sftp,
    out,
    Deno.stdout.isTerminal() && batchFile === null && !cfg.quiet,
  );
  let status = 0;
  try {
    if (!cfg.quiet) {
      out.warn(`Connected to ${cfg.host}.`);
    }
    shell.cwd = await sftp.realpath(".");
    if (startPath !== null) {
      try {
        await shell.run(["cd", startPath]);
      } catch (e) {
        out.error(describe(e));
        return 1;
      }
    }
    const enc = new TextEncoder();
    for (;;) {
      if (interactive) Deno.stdout.writeSync(enc.encode("sftp> "));
      const next = await input.next();
      if (next.done) break;
      let line = next.value.trim();
      if (line === "" || line.startsWith("#")) continue;
      let ignoreError = false;
      let echo = batchFile !== null;
      // OpenSSH batch prefixes: '-' ignores a failure, '@' hides the echo.
      while (line.startsWith("-") || line.startsWith("@")) {
        if (line[0] === "-") ignoreError = true;
        else echo = false;
        line = line.slice(1).trimStart();
      }
      if (echo) shell.print(`sftp> ${line}`);
      let words: string[];
      try {
        words = splitWords(line);
        if (words.length === 0) continue;
        if (!(await shell.run(words))) break;
      } catch (e) {
        out.error(describe(e));
        if (e instanceof SftpError && e.code === SftpStatus.CONNECTION_LOST) {
          status = 255;
          break;
        }
        if (batchFile !== null && !ignoreError) {
          status = 1;
          break;
        }
      }
    }
  } finally {
    await input.return(undefined);
    await sftp.close().catch(() => {});
    await client.close().catch(() => {});
  }
  return status;
}
