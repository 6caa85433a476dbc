/**
 * Deno Deploy entry: `Deno.serve(app.fetch)` with the configuration from
 * environment variables (see the README's "Tunnel" section) and state in
 * the deployment's KV (`Deno.openKv()`). Set `TUNNEL_HOST_KEY` (an OpenSSH
 * Ed25519 private key, `\n` for newlines) so every instance presents the
 * same host key, and `TUNNEL_JWT_SECRET` or `TUNNEL_JWKS_URL`.
 *
 * @module
 */
import { createTunnelApp } from "./app.ts";
import { configFromEnv } from "./_env.ts";

const config = configFromEnv(Deno.env.toObject());
if (!config.hostKey) {
  console.warn(
    JSON.stringify({
      level: "warn",
      event: "config",
      message:
        "TUNNEL_HOST_KEY is not set: each instance generates its own host key and clients cannot pin it",
    }),
  );
}
const tunnel = await createTunnelApp(config);
Deno.addSignalListener?.("SIGTERM", () => {
  tunnel.shutdown({ deadline: 10_000 }).catch(() => {});
});
Deno.serve(tunnel.fetch);
