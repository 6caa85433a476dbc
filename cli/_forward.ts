/**
 * Port forwarding for `fynx ssh`: the `-L`, `-R`, `-D` and `-N` flags, the
 * `LocalForward`, `RemoteForward`, `DynamicForward`, `ExitOnForwardFailure`
 * and `GatewayPorts` options, and starting the forwards once connected,
 * with OpenSSH's messages.
 *
 * @module
 */
import type { SshClient } from "../client.ts";
import {
  forwardLocal,
  forwardRemote,
  type ForwardTarget,
  type LocalForward,
  type RemoteListener,
  serveSocks,
  type UnixAddress,
} from "../forward/mod.ts";
import {
  type OptionTable,
  parseYesNo,
  stringList,
  UsageError,
} from "./_args.ts";
import { parseConfigOption } from "./_options.ts";

/** Flags `fynx ssh` takes for forwarding (merge into its option table). */
export const FORWARD_FLAGS: OptionTable = {
  "local-forward": { type: "string", short: "L", multiple: true },
  "remote-forward": { type: "string", short: "R", multiple: true },
  "dynamic-forward": { type: "string", short: "D", multiple: true },
  "no-command": { type: "boolean", short: "N" },
};

/** Usage lines for the forwarding flags. */
export const FORWARD_USAGE: string =
  `  -L [bind:]port:host:hostport   Forward a local port to host:hostport
                     through the server; also [bind:]port:/remote/socket,
                     /local/socket:host:hostport, /local/socket:/remote/socket
  -R [bind:]port:host:hostport   Forward a port on the server (0: the server
                     picks one and it is printed) to host:hostport from
                     here; also with Unix socket paths on either side
  -D [bind:]port     A SOCKS4/4a/5 proxy on a local port (or socket path)
                     whose connections go out through the server
  -N                 No command: just forward (until killed)`;

/** Usage lines for the forwarding `-o` options. */
export const FORWARD_OPTIONS_USAGE: string =
  `  LocalForward, RemoteForward SPEC, DynamicForward SPEC
                                   Same as -L, -R, -D ("8080 host:80" too)
  ExitOnForwardFailure yes|no      Exit (255) when a forward cannot be set up
  GatewayPorts yes|no              -L/-D without bind address listen on all
                                   interfaces (default: loopback)`;

/** One `-L`, `-R` or `-D`. */
export interface ForwardSpec {
  /** Which flag. */
  kind: "L" | "R" | "D";
  /** As written, for messages. */
  text: string;
  /**
   * Where to listen: locally for `-L`/`-D`, on the server for `-R`.
   * `hostname` undefined means "not given".
   */
  listen: { hostname?: string; port: number } | UnixAddress;
  /** Where connections go (`-L`, `-R`); absent for `-D`. */
  target?: ForwardTarget;
}

/** The forwarding part of `fynx ssh`'s configuration. */
export interface ForwardConfig {
  /** Every forward, in the order given. */
  specs: ForwardSpec[];
  /** `-N`: run no command. */
  noCommand: boolean;
  /** `ExitOnForwardFailure`. */
  exitOnForwardFailure: boolean;
  /** `GatewayPorts` (client side). */
  gatewayPorts: boolean;
}

/** The output functions `fynx ssh` uses. */
export interface ForwardOutput {
  /** `debug1:` lines with -v. */
  debug(line: string): void;
  /** Informational lines, silenced by -q. */
  warn(line: string): void;
  /** Errors, always shown. */
  error(line: string): void;
}

const NAMES = [
  "LocalForward",
  "RemoteForward",
  "DynamicForward",
  "ExitOnForwardFailure",
  "GatewayPorts",
];

interface Field {
  text: string;
  isPath: boolean;
}

/**
 * Splits a forwarding spec at colons, keeping `[v6addr]` whole (OpenSSH
 * readconf.c `parse_fwd_field()`); a field with a `/` is a socket path.
 */
function fields(spec: string): Field[] | null {
  const out: Field[] = [];
  let rest = spec;
  for (;;) {
    let text: string;
    if (rest.startsWith("[")) {
      const end = rest.indexOf("]");
      if (end < 0) return null;
      text = rest.slice(1, end);
      rest = rest.slice(end + 1);
      if (rest !== "" && !rest.startsWith(":")) return null;
    } else {
      const i = rest.indexOf(":");
      text = i < 0 ? rest : rest.slice(0, i);
      rest = i < 0 ? "" : rest.slice(i);
    }
    out.push({ text, isPath: text.includes("/") });
    if (rest === "") return out;
    rest = rest.slice(1);
    if (out.length > 4) return null;
  }
}

function port(text: string, allowZero: boolean): number | null {
  if (!/^\d{1,5}$/.test(text)) return null;
  const n = Number(text);
  return n > 65535 || (n === 0 && !allowZero) ? null : n;
}

/**
 * Parses one `-L`/`-R`/`-D` spec the way OpenSSH's `parse_forward()` reads
 * it.
 *
 * @throws {UsageError} `Bad local forwarding specification '...'` (255).
 */
export function parseForwardSpec(
  kind: "L" | "R" | "D",
  text: string,
): ForwardSpec {
  const word = kind === "L" ? "local" : kind === "R" ? "remote" : "dynamic";
  const bad = (why = ""): never => {
    throw new UsageError(
      `Bad ${word} forwarding specification '${text}'${why}`,
      255,
    );
  };
  const f = fields(text.trim()) ?? bad();
  let listen: ForwardSpec["listen"];
  let target: ForwardTarget | undefined;
  const listenPort = (t: string) => port(t, true) ?? bad();
  const connectPort = (t: string) => port(t, false) ?? bad();
  if (kind === "D") {
    if (f.length === 1) {
      listen = f[0].isPath
        ? { path: f[0].text }
        : { port: listenPort(f[0].text) };
    } else if (f.length === 2 && !f[1].isPath) {
      listen = { hostname: f[0].text, port: listenPort(f[1].text) };
    } else return bad();
    return { kind, text, listen };
  }
  switch (f.length) {
    case 1:
      return bad(
        kind === "R"
          ? " (remote dynamic forwarding, -R [bind:]port, is not supported)"
          : "",
      );
    case 2:
      if (f[0].isPath && f[1].isPath) {
        listen = { path: f[0].text };
        target = { path: f[1].text };
      } else if (f[1].isPath) {
        listen = { port: listenPort(f[0].text) };
        target = { path: f[1].text };
      } else if (kind === "R") {
        return bad(
          " (remote dynamic forwarding, -R [bind:]port, is not supported)",
        );
      } else return bad();
      break;
    case 3:
      if (f[0].isPath) {
        listen = { path: f[0].text };
        target = { hostname: f[1].text, port: connectPort(f[2].text) };
      } else if (f[2].isPath) {
        listen = { hostname: f[0].text, port: listenPort(f[1].text) };
        target = { path: f[2].text };
      } else {
        listen = { port: listenPort(f[0].text) };
        target = { hostname: f[1].text, port: connectPort(f[2].text) };
      }
      break;
    case 4:
      if (f[0].isPath || f[1].isPath || f[3].isPath) return bad();
      listen = { hostname: f[0].text, port: listenPort(f[1].text) };
      target = { hostname: f[2].text, port: connectPort(f[3].text) };
      break;
    default:
      return bad();
  }
  if ("hostname" in target && target.hostname === "") return bad();
  return { kind, text, listen, target };
}

/**
 * Reads the forwarding flags from `values` and the forwarding `-o` options
 * from `options`; returns the configuration and the `-o` options that are
 * not about forwarding.
 *
 * @throws {UsageError} for a bad spec or value (exit status 255).
 */
export function parseForwardArgs(
  values: Record<string, unknown>,
  options: readonly string[],
): { config: ForwardConfig; rest: string[] } {
  const config: ForwardConfig = {
    specs: [],
    noCommand: Boolean(values["no-command"]),
    exitOnForwardFailure: false,
    gatewayPorts: false,
  };
  for (
    const [flag, kind] of [["L", "local"], ["R", "remote"], ["D", "dynamic"]]
  ) {
    for (const text of stringList(values[`${kind}-forward`])) {
      config.specs.push(parseForwardSpec(flag as "L" | "R" | "D", text));
    }
  }
  const rest: string[] = [];
  for (const raw of options) {
    let o;
    try {
      o = parseConfigOption(raw, NAMES);
    } catch {
      rest.push(raw);
      continue;
    }
    try {
      switch (o.name) {
        case "LocalForward":
        case "RemoteForward":
          // ssh_config writes "[bind:]port host:hostport".
          config.specs.push(
            parseForwardSpec(
              o.name === "LocalForward" ? "L" : "R",
              o.value.replace(/\s+/, ":"),
            ),
          );
          break;
        case "DynamicForward":
          config.specs.push(parseForwardSpec("D", o.value));
          break;
        case "ExitOnForwardFailure":
          config.exitOnForwardFailure = parseYesNo(o.value, o.name);
          break;
        case "GatewayPorts":
          config.gatewayPorts = parseYesNo(o.value, o.name);
          break;
      }
    } catch (e) {
      if (e instanceof UsageError) throw e;
      throw new UsageError((e as Error).message, 255);
    }
  }
  return { config, rest };
}

/** The running forwards of one `fynx ssh`. */
export interface Forwarding {
  /** Closes every forward and its sockets. */
  close(): Promise<void>;
}

/** Thrown when ExitOnForwardFailure ends the run; the message is printed. */
export class ForwardFailure extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "ForwardFailure";
  }
}

function shortError(e: unknown): string {
  return ((e as Error)?.message ?? String(e)).replace(
    /\s*\(os error \d+\)$/,
    "",
  );
}

function listenText(listen: ForwardSpec["listen"]): string {
  if ("path" in listen) return listen.path;
  const host = listen.hostname ?? "LOCALHOST";
  return `${host}:${listen.port}`;
}

function targetText(target: ForwardTarget): string {
  return "path" in target ? target.path : `${target.hostname}:${target.port}`;
}

function boundText(addr: Deno.Addr): string {
  if ("path" in addr) return `path ${addr.path}`;
  if ("hostname" in addr) return `${addr.hostname} port ${addr.port}`;
  return "(unknown)";
}

/**
 * Starts every forward of `config` on `client`, printing what OpenSSH
 * prints. Local listeners (`-L`, `-D`) first, then the remote requests
 * (`-R`) together.
 *
 * @throws {ForwardFailure} with ExitOnForwardFailure, when a forward could
 * not be set up (the reason is already printed).
 */
export async function startForwarding(
  client: SshClient,
  config: ForwardConfig,
  out: ForwardOutput,
): Promise<Forwarding> {
  const locals: LocalForward[] = [];
  const remotes: RemoteListener[] = [];
  const closeAll = async () => {
    await Promise.all([
      ...locals.map((l) => l.close()),
      ...remotes.map((r) => r.close()),
    ]);
  };
  const onError = (e: Error) => out.warn(`${shortError(e)}`);
  let localCount = 0;
  let localFailed = 0;
  for (const spec of config.specs) {
    if (spec.kind === "R") continue;
    localCount++;
    let listen = spec.listen;
    if (!("path" in listen) && listen.hostname === undefined) {
      listen = {
        hostname: config.gatewayPorts ? "*" : "localhost",
        port: listen.port,
      };
    }
    try {
      const forward = spec.kind === "L"
        ? await forwardLocal(client, {
          listen,
          target: spec.target!,
          onError,
        })
        : await serveSocks(client, { listen, onError });
      locals.push(forward);
      for (const addr of forward.addrs) {
        out.debug(
          spec.kind === "L"
            ? `Local forwarding listening on ${boundText(addr)}.`
            : `Local SOCKS proxy listening on ${boundText(addr)}.`,
        );
      }
      if (spec.target !== undefined) {
        out.debug(
          `Local connections to ${
            listenText(spec.listen)
          } forwarded to remote address ${targetText(spec.target)}`,
        );
      }
    } catch (e) {
      localFailed++;
      out.error(`bind ${listenText(listen)}: ${shortError(e)}`);
      out.error(
        `channel_setup_fwd_listener: cannot listen to ${
          "path" in spec.listen ? "path" : "port"
        }: ${"path" in spec.listen ? spec.listen.path : spec.listen.port}`,
      );
    }
  }
  if (localFailed > 0) {
    if (config.exitOnForwardFailure) {
      await closeAll();
      throw new ForwardFailure("Could not request local forwarding.");
    }
    if (localFailed === localCount) {
      out.error("Could not request local forwarding.");
    }
  }
  const results = await Promise.allSettled(
    config.specs.filter((s) => s.kind === "R").map(async (spec) => {
      const listen = spec.listen;
      // OpenSSH sends "localhost" when no bind address was given, and ""
      // for "*" (every interface, if the server's GatewayPorts allows).
      const bind = "path" in listen ? listen : {
        hostname: listen.hostname === undefined
          ? "localhost"
          : listen.hostname === "*"
          ? ""
          : listen.hostname,
        port: listen.port,
      };
      try {
        const remote = await forwardRemote(client, {
          bind,
          target: spec.target!,
          onError,
        });
        remotes.push(remote);
        if (!("path" in listen) && listen.port === 0) {
          out.warn(
            `Allocated port ${remote.port} for remote forward to ${
              targetText(spec.target!)
            }`,
          );
        }
        out.debug(
          `remote forward success for: listen ${listenText(listen)}, connect ${
            targetText(spec.target!)
          }`,
        );
      } catch (e) {
        const what = "path" in listen
          ? `listen path ${listen.path}`
          : `listen port ${listen.port}`;
        out.debug(shortError(e));
        throw new ForwardFailure(`remote port forwarding failed for ${what}`);
      }
    }),
  );
  for (const r of results) {
    if (r.status === "fulfilled") continue;
    const message = (r.reason as Error).message;
    if (config.exitOnForwardFailure) {
      await closeAll();
      throw new ForwardFailure(`Error: ${message}`);
    }
    out.warn(`Warning: ${message}`);
  }
  return { close: closeAll };
}

/**
 * Starts the forwards, then runs the session (or, with `-N`, waits for the
 * connection to end), and closes the forwards. Returns the exit status:
 * the session's, 0 when a `-N` connection ended cleanly, or 255 when
 * ExitOnForwardFailure applied.
 */
export async function runWithForwarding(
  client: SshClient,
  config: ForwardConfig,
  out: ForwardOutput,
  session: () => Promise<number>,
): Promise<number> {
  let forwarding: Forwarding;
  try {
    forwarding = await startForwarding(client, config, out);
  } catch (e) {
    if (!(e instanceof ForwardFailure)) throw e;
    out.error(e.message);
    return 255;
  }
  try {
    if (!config.noCommand) return await session();
    const error = await client.closed;
    if (error !== undefined) throw error;
    return 0;
  } finally {
    await forwarding.close();
  }
}
