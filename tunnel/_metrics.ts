/**
 * Prometheus text exposition (format 0.0.4) of the tunnel server's
 * counters, gauges and one latency histogram.
 *
 * @module
 */

/** Latency histogram bucket bounds, seconds. */
export const BUCKETS: readonly number[] = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
];

/** The server's metrics. */
export class Metrics {
  /** Open SSH connections. */
  connections: number = 0;
  /** SSH connections accepted. */
  connectionsTotal: number = 0;
  /** Live routes. */
  tunnels: number = 0;
  /** Body bytes from public clients. */
  bytesIn: number = 0;
  /** Body bytes to public clients. */
  bytesOut: number = 0;
  /** Names handed back to a reconnecting user. */
  reconnects: number = 0;
  /** Requests by status. */
  readonly requests: Map<string, number> = new Map();
  /** Authentication failures by kind. */
  readonly authFailures: Map<string, number> = new Map();
  /** Limit hits by limit. */
  readonly limitHits: Map<string, number> = new Map();
  /** Histogram counts per bucket (cumulative). */
  readonly buckets: number[] = BUCKETS.map(() => 0);
  /** Requests in the histogram. */
  latencyCount: number = 0;
  /** Sum of their latencies, seconds. */
  latencySum: number = 0;

  /** Counts one finished request with its status and latency (seconds). */
  request(status: number, seconds?: number): void {
    const k = String(status);
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
    if (seconds === undefined) return;
    this.latencyCount++;
    this.latencySum += seconds;
    for (let i = 0; i < BUCKETS.length; i++) {
      if (seconds <= BUCKETS[i]) this.buckets[i]++;
    }
  }

  /** Counts an authentication failure of `kind` (`jwt`, `ssh`). */
  authFailure(kind: string): void {
    this.authFailures.set(kind, (this.authFailures.get(kind) ?? 0) + 1);
  }

  /** Counts a limit that refused something. */
  limitHit(limit: string): void {
    this.limitHits.set(limit, (this.limitHits.get(limit) ?? 0) + 1);
  }

  /** The Prometheus text. */
  render(): string {
    const out: string[] = [];
    const metric = (
      name: string,
      type: string,
      help: string,
      values: [string, number][],
    ) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of values) out.push(`${name}${labels} ${v}`);
    };
    const labelled = (label: string, map: Map<string, number>) =>
      [...map].map(([k, v]) => [`{${label}="${k}"}`, v] as [string, number]);
    metric(
      "fynx_tunnel_connections",
      "gauge",
      "Open SSH-over-WebSocket connections.",
      [["", this.connections]],
    );
    metric(
      "fynx_tunnel_connections_total",
      "counter",
      "SSH-over-WebSocket connections accepted.",
      [["", this.connectionsTotal]],
    );
    metric(
      "fynx_tunnel_tunnels",
      "gauge",
      "Exposed names routed by this instance.",
      [["", this.tunnels]],
    );
    metric(
      "fynx_tunnel_bytes_total",
      "counter",
      "Body bytes through tunnels (in: from public clients, out: to them).",
      [['{direction="in"}', this.bytesIn], [
        '{direction="out"}',
        this.bytesOut,
      ]],
    );
    metric(
      "fynx_tunnel_requests_total",
      "counter",
      "Public requests by response status.",
      labelled("status", this.requests),
    );
    out.push(
      "# HELP fynx_tunnel_request_duration_seconds Time to the response head of tunnelled requests.",
      "# TYPE fynx_tunnel_request_duration_seconds histogram",
    );
    BUCKETS.forEach((b, i) =>
      out.push(
        `fynx_tunnel_request_duration_seconds_bucket{le="${b}"} ${
          this.buckets[i]
        }`,
      )
    );
    out.push(
      `fynx_tunnel_request_duration_seconds_bucket{le="+Inf"} ${this.latencyCount}`,
      `fynx_tunnel_request_duration_seconds_sum ${this.latencySum}`,
      `fynx_tunnel_request_duration_seconds_count ${this.latencyCount}`,
    );
    metric(
      "fynx_tunnel_auth_failures_total",
      "counter",
      "Failed authentications by kind.",
      labelled("kind", this.authFailures),
    );
    metric(
      "fynx_tunnel_limit_hits_total",
      "counter",
      "Requests or connections refused by a limit.",
      labelled("limit", this.limitHits),
    );
    metric(
      "fynx_tunnel_reconnects_total",
      "counter",
      "Names handed back to a reconnecting user.",
      [["", this.reconnects]],
    );
    return out.join("\n") + "\n";
  }
}
