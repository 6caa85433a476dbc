/**
 * `fynx tunnel`: the client side of the SSH-over-WebSocket tunnel.
 *
 * - `fynx tunnel connect <url> --token T --expose name=http://127.0.0.1:PORT`
 *   keeps a tunnel up (see tunnel/client.ts) and reports its state on
 *   stderr, or as JSON lines on stdout with `--json`.
 * - `fynx tunnel relay <url> --token T --target host:port` joins stdin and
 *   stdout to the server's `/v1/relay` WebSocket, for OpenSSH's
 *   `ProxyCommand` (`fynx tunnel proxy` is the same command).
 *
 * @module
 */
import {
  TunnelClient,
  type TunnelClientOptions,
  type TunnelState,
  tunnelUrl,
} from "../tunnel/client.ts";
import { dialWebSocket, WsHandshakeError } from "../tunnel/_client_ws.ts";
import { parsePrivateKey } from "../keys/mod.ts";
import type { Signer } from "../auth/client.ts";
import {
  expandHome,
  type OptionTable,
  parseFlags,
  UsageError,
} from "./_args.ts";

/** Usage of `fynx tunnel`. */
export const TUNNEL_USAGE: string = `Usage:
  fynx tunnel connect <wss-url> --token T --expose NAME=http://127.0.0.1:PORT
                      [--expose ...] [--header 'K: V']... [--proxy URL]
                      [--host-key-fingerprint SHA256:... | --known-hosts FILE]
                      [--identity FILE] [--json] [--stats-interval SECONDS]
  fynx tunnel relay <wss-url> --token T --target HOST:PORT
                      [--header 'K: V']... [--proxy URL]
  fynx tunnel proxy   (same as relay)

connect keeps a tunnel to the server up: SSH over a WebSocket, one name
per --expose, heartbeats, reconnects with backoff. The server routes
https://<server>/t/<user>/<NAME>/... to the local service. A URL without
a path gets /v1/ssh (connect) or /v1/relay (relay).

relay joins stdin/stdout to the server's relay for a TCP target on its
allow-list, for OpenSSH:
  ssh -o ProxyCommand='fynx tunnel relay wss://server --token T --target %h:%p' host

Options:
  --token T                   Bearer token (JWT); default $FYNX_TUNNEL_TOKEN
  --expose NAME=TARGET        Expose a local service (http://host:port,
                              host:port or a port) as NAME
  --header 'K: V'             Extra header on the WebSocket upgrade
  --proxy URL                 HTTP proxy (http://user:pass@host:port);
                              default $HTTPS_PROXY / $HTTP_PROXY unless
                              $NO_PROXY exempts the host; 'none' for none
  --host-key-fingerprint FP   Pin the server's SSH host key (repeatable)
  --known-hosts FILE          Pin it through known_hosts ([host]:port)
  --identity FILE             Private key for a server that wants jwt+key
                              (passphrase from $FYNX_TUNNEL_KEY_PASSPHRASE)
  --json                      JSON lines on stdout: one per state change,
                              request error and stats period
  --stats-interval SECONDS    Seconds between stats reports (0: none);
                              default 10 with --json, 60 otherwise
  --target HOST:PORT          relay: where the server connects
  -h, --help                  Show this help
`;

const CONNECT_OPTIONS: OptionTable = {
  token: { type: "string" },
  expose: { type: "string", multiple: true },
  header: { type: "string", multiple: true },
  proxy: { type: "string" },
  "host-key-fingerprint": { type: "string", multiple: true },
  "known-hosts": { type: "string" },
  identity: { type: "string" },
  json: { type: "boolean" },
  "stats-interval": { type: "string" },
  help: { type: "boolean", short: "h" },
};

const RELAY_OPTIONS: OptionTable = {
  token: { type: "string" },
  target: { type: "string" },
  header: { type: "string", multiple: true },
  proxy: { type: "string" },
  help: { type: "boolean", short: "h" },
};

/** Runs `fynx tunnel ...`; returns the exit status. */
export async function tunnelCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h") {
    (sub === undefined ? console.error : console.log)(TUNNEL_USAGE);
    return sub === undefined ? 1 : 0;
  }
  try {
    if (sub === "connect") return await connectCommand(rest);
    if (sub === "relay" || sub === "proxy") return await relayCommand(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(e.message);
      return e.code;
    }
    throw e;
  }
  console.error(
    `fynx tunnel: unknown subcommand '${sub}' (see 'fynx tunnel --help')`,
  );
  return 1;
}

function parseHeaders(list: unknown): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const h of (list as string[] | undefined) ?? []) {
    const colon = h.indexOf(":");
    if (colon <= 0) {
      throw new UsageError(
        `fynx tunnel: invalid --header ${
          JSON.stringify(h)
        }: expected 'Name: value'`,
      );
    }
    headers[h.slice(0, colon).trim()] = h.slice(colon + 1).trim();
  }
  return headers;
}

function tokenFrom(values: Record<string, unknown>): string {
  const token = (values.token as string | undefined) ??
    Deno.env.get("FYNX_TUNNEL_TOKEN");
  if (token === undefined || token === "") {
    throw new UsageError(
      "fynx tunnel: a token is needed: --token T or $FYNX_TUNNEL_TOKEN",
    );
  }
  return token;
}

function proxyFrom(values: Record<string, unknown>): string | null | undefined {
  const p = values.proxy as string | undefined;
  if (p === undefined) return undefined;
  return p === "none" || p === "" ? null : p;
}

function oneUrl(positionals: string[], command: string): string {
  if (positionals.length !== 1) {
    throw new UsageError(
      `fynx tunnel ${command}: expected one server URL (see 'fynx tunnel --help')`,
    );
  }
  return positionals[0];
}

/** A line for the terminal describing `state`. */
function stateLine(s: TunnelState, targets: Record<string, string>): string {
  switch (s.state) {
    case "connecting":
      return `connecting to ${s.url}${s.proxy ? ` via ${s.proxy}` : ""}${
        s.attempt > 1 ? ` (attempt ${s.attempt})` : ""
      }`;
    case "connected": {
      const names = s.names.map((n) => `${n} -> ${targets[n]}`).join(", ");
      const refused = s.refused.length > 0
        ? `; refused by the server (retrying): ${s.refused.join(", ")}`
        : "";
      return `connected (host key ${s.hostKey}): ${
        names || "no names"
      }${refused}`;
    }
    case "reconnecting":
      return `disconnected: ${s.reason}; reconnecting in ${
        (s.delay / 1000).toFixed(1)
      }s`;
    case "failed":
      return `failed: ${s.reason}`;
    case "closed":
      return "closed";
  }
}

async function connectCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(
    "fynx tunnel connect",
    args,
    CONNECT_OPTIONS,
    1,
    true,
  );
  if (values.help) {
    console.log(TUNNEL_USAGE);
    return 0;
  }
  const url = oneUrl(positionals, "connect");
  const token = tokenFrom(values);
  const expose: Record<string, string> = {};
  for (const e of (values.expose as string[] | undefined) ?? []) {
    const eq = e.indexOf("=");
    if (eq <= 0) {
      throw new UsageError(
        `fynx tunnel connect: invalid --expose ${
          JSON.stringify(e)
        }: expected NAME=http://127.0.0.1:PORT`,
      );
    }
    const name = e.slice(0, eq);
    if (name in expose) {
      throw new UsageError(`fynx tunnel connect: ${name} is exposed twice`);
    }
    expose[name] = e.slice(eq + 1);
  }
  if (Object.keys(expose).length === 0) {
    throw new UsageError(
      "fynx tunnel connect: nothing to expose: give --expose NAME=URL",
    );
  }
  const json = values.json === true;
  const statsText = values["stats-interval"] as string | undefined;
  const statsSeconds = statsText === undefined ? (json ? 10 : 60) : Number(
    statsText,
  );
  if (!Number.isFinite(statsSeconds) || statsSeconds < 0) {
    throw new UsageError(
      `fynx tunnel connect: invalid --stats-interval ${statsText}`,
    );
  }
  let knownHosts: string | undefined;
  if (values["known-hosts"] !== undefined) {
    const path = expandHome(values["known-hosts"] as string);
    try {
      knownHosts = await Deno.readTextFile(path);
    } catch (e) {
      throw new UsageError(
        `fynx tunnel connect: cannot read ${path}: ${(e as Error).message}`,
      );
    }
  }
  let privateKeys: Signer[] | undefined;
  if (values.identity !== undefined) {
    const path = expandHome(values.identity as string);
    const text = await Deno.readTextFile(path);
    privateKeys = [
      parsePrivateKey(text, {
        passphrase: Deno.env.get("FYNX_TUNNEL_KEY_PASSPHRASE"),
      }),
    ];
  }

  const out = (o: Record<string, unknown>) =>
    console.log(JSON.stringify({ time: new Date().toISOString(), ...o }));
  const err = (line: string) => console.error(`fynx tunnel: ${line}`);

  const options: TunnelClientOptions = {
    url,
    token,
    expose,
    headers: parseHeaders(values.header),
    proxy: proxyFrom(values),
    hostKeyFingerprint: values["host-key-fingerprint"] as string[] | undefined,
    knownHosts,
    privateKeys,
    onState: (s) => {
      if (json) out({ event: "state", ...s });
      else err(stateLine(s, expose));
    },
    onRequest: (r) => {
      if (r.type !== "error") return;
      if (json) out({ event: "request-error", ...r });
      else err(`request for ${r.name} from ${r.originator}: ${r.error}`);
    },
  };
  let client: TunnelClient;
  try {
    client = new TunnelClient(options);
  } catch (e) {
    throw new UsageError(`fynx tunnel connect: ${(e as Error).message}`);
  }

  let lastServed = -1;
  const report = (force: boolean) => {
    const stats = client.stats;
    if (!force && stats.requestsServed === lastServed && !json) return;
    lastServed = stats.requestsServed;
    if (json) out({ event: "stats", ...stats });
    else {
      err(
        `requests served: ${stats.requestsServed} (active ${stats.activeRequests}, failed ${stats.requestsFailed}, reconnects ${stats.reconnects})`,
      );
    }
  };
  const statsTimer = statsSeconds > 0
    ? setInterval(() => report(false), statsSeconds * 1000)
    : undefined;

  let signalled = false;
  const onSignal = () => {
    if (signalled) return;
    signalled = true;
    client.close();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  client.start();
  let code = 0;
  try {
    await client.done;
  } catch (e) {
    code = 1;
    if (!json) {
      // The state line already said why; repeat it as the last word.
      err(`giving up: ${(e as Error).message}`);
    }
  } finally {
    clearInterval(statsTimer);
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  await client.close();
  if (json) report(true);
  return code;
}

async function relayCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(
    "fynx tunnel relay",
    args,
    RELAY_OPTIONS,
    1,
    true,
  );
  if (values.help) {
    console.log(TUNNEL_USAGE);
    return 0;
  }
  const token = tokenFrom(values);
  const target = values.target as string | undefined;
  if (target === undefined || !/^(\[[^\]]+\]|[^:\s]+):\d{1,5}$/.test(target)) {
    throw new UsageError(
      `fynx tunnel relay: --target HOST:PORT is needed${
        target === undefined ? "" : ` (got ${JSON.stringify(target)})`
      }`,
    );
  }
  let url: URL;
  try {
    url = tunnelUrl(oneUrl(positionals, "relay"), "/v1/relay");
  } catch (e) {
    throw new UsageError(`fynx tunnel relay: ${(e as Error).message}`);
  }
  url.searchParams.set("target", target);
  let ws;
  try {
    ws = await dialWebSocket(url, {
      headers: {
        ...parseHeaders(values.header),
        Authorization: `Bearer ${token}`,
      },
      proxy: proxyFrom(values),
    });
  } catch (e) {
    console.error(
      `fynx tunnel relay: ${
        e instanceof WsHandshakeError ? e.message : (e as Error).message
      }`,
    );
    return 1;
  }
  // Answer the server's heartbeat; everything else is bytes.
  ws.onText = (text) => {
    try {
      const msg = JSON.parse(text);
      if (msg?.type === "ping") {
        ws.sendText(JSON.stringify({ type: "pong", id: msg.id ?? null }))
          .catch(() => {});
      }
    } catch {
      // Not a control message we know.
    }
  };
  const up = Deno.stdin.readable.pipeTo(ws.writable).catch(() => {});
  const down = ws.readable.pipeTo(Deno.stdout.writable).catch(() => {});
  // Either side ending ends the relay: ssh closes our stdin when it is done,
  // the server closes the WebSocket when the target hangs up.
  await Promise.race([up, down]);
  await ws.close(1000, "").catch(() => {});
  const info = await ws.closed;
  await down;
  return info.code === 1000 || info.code === 1005 || info.local ? 0 : 1;
}
