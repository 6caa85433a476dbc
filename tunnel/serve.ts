/**
 * `deno task serve`: the tunnel server on a loopback port with its state
 * in a local directory (Deno KV file, Ed25519 host key, development JWT
 * secret), printing the URL, a development token and the client command.
 *
 * Options: `--port N` (default 8787), `--hostname H` (default 127.0.0.1),
 * `--state-dir DIR` (default .tmp/tunnel), `--relay-allow host:port`
 * (repeatable), `--domain D`. Environment variables as for deploy.ts
 * override the defaults (`TUNNEL_JWT_SECRET`, `TUNNEL_JWKS_URL`, limits).
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  encodePrivateKey,
  generatePrivateKey,
  parsePrivateKey,
} from "../keys/mod.ts";
import type { PrivateKey } from "../keys/types.ts";
import { createTunnelApp } from "./app.ts";
import { signJwt } from "./jwt.ts";
import { configFromEnv } from "./_env.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string", default: "8787" },
    hostname: { type: "string", default: "127.0.0.1" },
    "state-dir": { type: "string", default: ".tmp/tunnel" },
    "relay-allow": { type: "string", multiple: true, default: [] },
    domain: { type: "string" },
  },
});
const dir = values["state-dir"]!;
await Deno.mkdir(dir, { recursive: true, mode: 0o700 });

async function readOr(path: string, make: () => string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    const text = make();
    await Deno.writeTextFile(path, text, { mode: 0o600 });
    return text;
  }
}

const hostKey: PrivateKey = parsePrivateKey(
  await readOr(
    `${dir}/host_ed25519_key`,
    () =>
      encodePrivateKey(generatePrivateKey("ed25519"), {
        comment: "fynx tunnel host key",
      }),
  ),
);
const secret = (await readOr(
  `${dir}/jwt_secret`,
  () =>
    Array.from(
      crypto.getRandomValues(new Uint8Array(32)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join(""),
)).trim();

const env = configFromEnv(Deno.env.toObject());
const tunnel = await createTunnelApp({
  ...env,
  auth: { ...env.auth, secret: env.auth.secret ?? secret },
  hostKey: env.hostKey ?? hostKey,
  kvPath: `${dir}/state.kv`,
  relayAllow: [...(env.relayAllow ?? []), ...values["relay-allow"]!],
  domain: values.domain ?? env.domain,
});
const server = Deno.serve({
  hostname: values.hostname,
  port: Number(values.port),
  onListen: () => {},
}, tunnel.fetch);
const base = `http://${values.hostname}:${server.addr.port}`;
const ws = `ws://${values.hostname}:${server.addr.port}/v1/ssh`;
const token = await signJwt(
  {
    sub: "dev",
    iat: Math.floor(Date.now() / 1000),
    exp: Math.floor(Date.now() / 1000) + 24 * 3600,
  },
  env.auth.secret ?? secret,
);
const fingerprint = tunnel.hostKey.publicKey.fingerprint();
console.error(`fynx tunnel server listening on ${base}
  status page:   ${base}/
  SSH endpoint:  ${ws}
  host key:      ${fingerprint}
  dev token (sub "dev", valid 24 h):
    ${token}
  connect a client:
    deno task fynx tunnel connect ${ws} --token ${token} --expose app=http://127.0.0.1:11434 --host-key-fingerprint ${fingerprint}
  then open ${base}/t/dev/app/
`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await tunnel.shutdown({ deadline: 10_000 });
  await server.shutdown();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
