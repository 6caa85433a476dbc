/**
 * The status page (`GET /`): live tunnels with their traffic and latency,
 * updated from `GET /v1/status/stream` (server-sent events) without a
 * reload, falling back to polling `GET /v1/status`. No external assets;
 * the layout turns into cards on narrow screens.
 *
 * @module
 */

/** The page's HTML. */
export const STATUS_PAGE: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fynx tunnel</title>
<style>
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #5b6470; --bg: #fff; --card: #f3f5f7; --ok: #1a7f37; --bad: #cf222e; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9aa4ae; --bg: #0d1117; --card: #161b22; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 12px 16px; display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: baseline; }
h1 { font-size: 1.2rem; margin: 0; }
.muted { color: var(--muted); font-size: .9rem; }
main { padding: 0 16px 24px; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--card); white-space: nowrap; }
th { color: var(--muted); font-weight: 500; font-size: .85rem; }
td.num { font-variant-numeric: tabular-nums; text-align: right; }
.state-closed { color: var(--ok); } .state-open, .state-half-open { color: var(--bad); }
#empty { padding: 24px 0; color: var(--muted); }
@media (max-width: 640px) {
  thead { display: none; }
  table, tbody, tr, td { display: block; width: 100%; }
  tr { background: var(--card); border-radius: 8px; margin: 0 0 12px; padding: 8px 12px; }
  td { border: 0; padding: 2px 0; display: flex; justify-content: space-between; white-space: normal; }
  td::before { content: attr(data-label); color: var(--muted); margin-right: 12px; }
  td.num { text-align: right; }
}
</style>
</head>
<body>
<header>
  <h1>fynx tunnel</h1>
  <span class="muted" id="summary">connecting…</span>
</header>
<main>
  <table>
    <thead><tr><th>Tunnel</th><th>Requests</th><th>In flight</th><th>Traffic in / out</th><th>Last latency</th><th>p50 / p95</th><th>Breaker</th></tr></thead>
    <tbody id="tunnels"></tbody>
  </table>
  <div id="empty" hidden>No tunnels connected.</div>
</main>
<script>
"use strict";
const fmtBytes = (n) => n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB";
const fmtMs = (v) => v === null || v === undefined ? "–" : (Math.round(v * 10) / 10) + " ms";
function cell(label, text, cls) {
  const td = document.createElement("td");
  td.dataset.label = label;
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}
function render(s) {
  document.getElementById("summary").textContent =
    s.connections + " connection" + (s.connections === 1 ? "" : "s") + ", " +
    s.tunnels.length + " tunnel" + (s.tunnels.length === 1 ? "" : "s") +
    (s.draining ? " (shutting down)" : "") + " · updated " + new Date(s.time).toLocaleTimeString();
  const body = document.getElementById("tunnels");
  body.replaceChildren(...s.tunnels.map((t) => {
    const tr = document.createElement("tr");
    tr.dataset.tunnel = t.user + "/" + t.name;
    const name = cell("Tunnel", t.path);
    name.className = "tunnel-name";
    tr.append(
      name,
      cell("Requests", String(t.requests), "num requests"),
      cell("In flight", t.inFlight + (t.queued ? " (+" + t.queued + " queued)" : ""), "num"),
      cell("Traffic in / out", fmtBytes(t.bytesIn) + " / " + fmtBytes(t.bytesOut), "num"),
      cell("Last latency", fmtMs(t.lastLatencyMs), "num"),
      cell("p50 / p95", fmtMs(t.p50Ms) + " / " + fmtMs(t.p95Ms), "num"),
      cell("Breaker", t.breaker, "state-" + t.breaker),
    );
    return tr;
  }));
  document.getElementById("empty").hidden = s.tunnels.length > 0;
}
function poll() {
  fetch("/v1/status").then((r) => r.json()).then(render).catch(() => {}).finally(() => setTimeout(poll, 2000));
}
if ("EventSource" in window) {
  const es = new EventSource("/v1/status/stream");
  es.onmessage = (e) => render(JSON.parse(e.data));
  es.onerror = () => { document.getElementById("summary").textContent = "reconnecting…"; };
} else {
  poll();
}
</script>
</body>
</html>
`;
