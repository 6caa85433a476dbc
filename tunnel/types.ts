/**
 * Configuration and status types of the tunnel server.
 *
 * @module
 */
import type { PrivateKey } from "../keys/types.ts";
import type { JwtConfig } from "./jwt.ts";
import type { TunnelStore } from "./store.ts";

/** A token bucket: `capacity` requests at once, refilled at `perSecond`. */
export interface RateLimit {
  /** Burst size. */
  capacity: number;
  /** Tokens added per second. */
  perSecond: number;
}

/** Limits, each answered with a clear status and counted in metrics. */
export interface TunnelLimits {
  /**
   * Concurrent tunnel (SSH) connections per user; more get 429.
   * @default {3}
   */
  connectionsPerUser: number;
  /**
   * Requests per user (tunnel owner for public traffic, the token's user
   * for connections); null disables.
   * @default {{ capacity: 2000, perSecond: 1000 }}
   */
  userRate: RateLimit | null;
  /**
   * Requests per client IP; null disables.
   * @default {{ capacity: 1000, perSecond: 500 }}
   */
  ipRate: RateLimit | null;
  /**
   * Largest WebSocket message, bytes (SSH link, tunnelled WebSockets,
   * relays); larger ones close the socket (1008, or 1009 on tunnelled
   * WebSockets).
   * @default {1048576}
   */
  maxMessageSize: number;
  /**
   * Requests forwarded at once per tunnel.
   * @default {64}
   */
  maxInFlightPerTunnel: number;
  /**
   * Requests waiting for a slot per tunnel; more get 503.
   * @default {256}
   */
  maxQueuedPerTunnel: number;
  /**
   * Milliseconds until the response head; later gets 504.
   * @default {30000}
   */
  requestTimeout: number;
  /**
   * Consecutive failures (502, 504) that open a tunnel's circuit breaker.
   * @default {5}
   */
  breakerThreshold: number;
  /**
   * Milliseconds an open breaker fails fast (503) before a trial request.
   * @default {10000}
   */
  breakerOpenMs: number;
  /**
   * Milliseconds an upgraded SSH connection has to authenticate.
   * @default {10000}
   */
  loginGraceTime: number;
  /**
   * Largest response head from a tunnel, bytes.
   * @default {65536}
   */
  maxResponseHead: number;
}

/** Structured log events (one JSON line each by default). */
export interface LogEvent {
  /** Milliseconds since the epoch. */
  time: number;
  /** `info`, `warn` or `error`. */
  level: "info" | "warn" | "error";
  /** What happened (`ssh.open`, `request`, `limit`, ...). */
  event: string;
  /** Correlation id of the SSH connection, when there is one. */
  conn?: string;
  /** Correlation id of the public request, when there is one. */
  req?: string;
  /** Any other field. */
  [field: string]: unknown;
}

/** Configuration of {@linkcode createTunnelApp}. */
export interface TunnelConfig {
  /** Token verification (HS256 secret and/or JWKS). */
  auth: JwtConfig;
  /** SSH host key (Ed25519). A new one is generated when absent. */
  hostKey?: PrivateKey;
  /**
   * SSH authentication policy: `jwt` lets SSH `none` succeed for the
   * token's subject only; `jwt+key` also requires a public key registered
   * for that user in `authorizedKeys`.
   * @default {"jwt"}
   */
  sshAuth?: "jwt" | "jwt+key";
  /** `jwt+key`: user -> authorized_keys text. */
  authorizedKeys?: Record<string, string>;
  /** State store; opened from `kvPath` when absent. */
  store?: TunnelStore;
  /**
   * Deno KV path used when no `store` is given (undefined: Deno Deploy's
   * database or Deno's default location).
   */
  kvPath?: string;
  /** This instance's id in the route registry. @default {random} */
  instanceId?: string;
  /**
   * Host-based routing: requests for `<name>.<domain>` and
   * `<name>--<user>.<domain>` go to tunnel `name`.
   */
  domain?: string;
  /** `GET /v1/relay` targets allowed, as `host:port`. @default {[]} */
  relayAllow?: string[];
  /** Limits (each field optional). */
  limits?: Partial<TunnelLimits>;
  /**
   * Milliseconds a route or connection lease lasts without renewal
   * (renewed every third of it while connected).
   * @default {30000}
   */
  leaseMs?: number;
  /**
   * Milliseconds between WebSocket `ping` control messages; a peer silent
   * for three intervals is closed.
   * @default {20000}
   */
  pingInterval?: number;
  /**
   * Milliseconds between SSH `keepalive@openssh.com` probes (0 disables).
   * @default {30000}
   */
  keepaliveInterval?: number;
  /** Serve `GET /` and `/v1/status*`. @default {true} */
  statusPage?: boolean;
  /** Milliseconds between status stream updates. @default {1000} */
  statusInterval?: number;
  /**
   * Take the client IP from `X-Forwarded-For` (only behind a proxy you
   * trust).
   * @default {false}
   */
  trustProxy?: boolean;
  /** Receives each log event; the default prints JSON lines to stdout. */
  log?: (event: LogEvent) => void;
}

/** One live tunnel (exposed name) in the status. */
export interface TunnelStatus {
  /** The user. */
  user: string;
  /** The exposed name. */
  name: string;
  /** The public path prefix. */
  path: string;
  /** Connection correlation id. */
  conn: string;
  /** Milliseconds since the epoch when it was registered. */
  since: number;
  /** Requests answered. */
  requests: number;
  /** Requests in progress. */
  inFlight: number;
  /** Requests waiting for a slot. */
  queued: number;
  /** Body bytes from public clients. */
  bytesIn: number;
  /** Body bytes to public clients. */
  bytesOut: number;
  /** Latency of the last request (to the response head), ms. */
  lastLatencyMs: number | null;
  /** Median latency of the last 100 requests, ms. */
  p50Ms: number | null;
  /** 95th percentile latency of the last 100 requests, ms. */
  p95Ms: number | null;
  /** Status of the last request. */
  lastStatus: number | null;
  /** Circuit breaker state. */
  breaker: "closed" | "open" | "half-open";
}

/** The server's status (`GET /v1/status`). */
export interface ServerStatus {
  /** Instance id. */
  instance: string;
  /** True while shutting down. */
  draining: boolean;
  /** Open SSH connections. */
  connections: number;
  /** Live tunnels. */
  tunnels: TunnelStatus[];
  /** Milliseconds since the epoch. */
  time: number;
}
