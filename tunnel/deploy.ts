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
const server = Deno.serve(tunnel.fetch);
try {
  // Deploy (and containers) stop instances with SIGTERM: drain, then exit.
  Deno.addSignalListener("SIGTERM", async () => {
    await tunnel.shutdown({ deadline: 10_000 }).catch(() => {});
    await server.shutdown();
    Deno.exit(0);
  });
} catch {
  // No signal support on this platform.
}
