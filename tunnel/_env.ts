/**
 * Reads the tunnel server's configuration from environment variables (Deno
 * Deploy, containers). Every variable is optional except a way to verify
 * tokens (`TUNNEL_JWT_SECRET`, `TUNNEL_JWKS_URL` or `TUNNEL_JWKS`).
 *
 * @module
 */
import { parsePrivateKey } from "../keys/mod.ts";
import type { TunnelConfig, TunnelLimits } from "./types.ts";

const LIMIT_VARS: Record<string, keyof TunnelLimits> = {
  TUNNEL_CONNECTIONS_PER_USER: "connectionsPerUser",
  TUNNEL_MAX_MESSAGE_SIZE: "maxMessageSize",
  TUNNEL_MAX_IN_FLIGHT: "maxInFlightPerTunnel",
  TUNNEL_MAX_QUEUED: "maxQueuedPerTunnel",
  TUNNEL_REQUEST_TIMEOUT_MS: "requestTimeout",
  TUNNEL_BREAKER_THRESHOLD: "breakerThreshold",
  TUNNEL_BREAKER_OPEN_MS: "breakerOpenMs",
  TUNNEL_LOGIN_GRACE_MS: "loginGraceTime",
};

function rate(text: string | undefined, name: string) {
  if (text === undefined) return undefined;
  if (text === "off") return null;
  const m = /^(\d+)\/(\d+(?:\.\d+)?)$/.exec(text);
  if (!m) {
    throw new TypeError(
      `Invalid ${name}: ${text} (expected capacity/perSecond or off)`,
    );
  }
  return { capacity: Number(m[1]), perSecond: Number(m[2]) };
}

/** The configuration described by `env` (a `Deno.env.toObject()`). */
export function configFromEnv(
  env: Record<string, string | undefined>,
): TunnelConfig {
  const limits: Partial<TunnelLimits> = {};
  for (const [name, field] of Object.entries(LIMIT_VARS)) {
    const v = env[name];
    if (v === undefined) continue;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) {
      throw new TypeError(`Invalid ${name}: ${v} (expected a number)`);
    }
    (limits as Record<string, number>)[field] = n;
  }
  const userRate = rate(env.TUNNEL_USER_RATE, "TUNNEL_USER_RATE");
  if (userRate !== undefined) limits.userRate = userRate;
  const ipRate = rate(env.TUNNEL_IP_RATE, "TUNNEL_IP_RATE");
  if (ipRate !== undefined) limits.ipRate = ipRate;
  const jwks = env.TUNNEL_JWKS_URL;
  const keysJson = env.TUNNEL_AUTHORIZED_KEYS;
  return {
    auth: {
      secret: env.TUNNEL_JWT_SECRET,
      jwks,
      jwksJson: env.TUNNEL_JWKS,
      audience: env.TUNNEL_JWT_AUDIENCE,
      issuer: env.TUNNEL_JWT_ISSUER,
    },
    hostKey: env.TUNNEL_HOST_KEY
      ? parsePrivateKey(env.TUNNEL_HOST_KEY.replace(/\\n/g, "\n"))
      : undefined,
    sshAuth: env.TUNNEL_SSH_AUTH === "jwt+key" ? "jwt+key" : "jwt",
    authorizedKeys: keysJson ? JSON.parse(keysJson) : undefined,
    domain: env.TUNNEL_DOMAIN,
    relayAllow: env.TUNNEL_RELAY_ALLOW
      ? env.TUNNEL_RELAY_ALLOW.split(",").map((s) => s.trim()).filter(Boolean)
      : [],
    statusPage: env.TUNNEL_STATUS_PAGE !== "off",
    trustProxy: env.TUNNEL_TRUST_PROXY === "1",
    limits,
  };
}
