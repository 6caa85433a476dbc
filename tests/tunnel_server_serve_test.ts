/**
 * `deno task serve` as users run it (the task's narrow permissions): it
 * prints a URL, a development token and the client command; the token and
 * host key fingerprint work; SIGTERM shuts it down cleanly; the host key
 * survives a restart. Also the client-initiated JSON ping.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { connect } from "../client.ts";
import { forwardRemote } from "../forward/mod.ts";
import { webSocketDuplex } from "../tunnel/mod.ts";
import {
  connectClient,
  localService,
  openWebSocket,
  startServer,
} from "./_tunnel_server.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

async function startServe(stateDir: string) {
  // The same flags as the `serve` task in deno.json.
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-P=serve",
      "tunnel/serve.ts",
      "--port",
      "0",
      "--state-dir",
      stateDir,
    ],
    cwd: root,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  while (!/then open \S+/.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  clearTimeout(timer);
  const ws = /SSH endpoint:\s+(ws:\/\/\S+)/.exec(text)?.[1];
  const token = /--token (\S+)/.exec(text)?.[1];
  const fingerprint = /--host-key-fingerprint (SHA256:\S+)/.exec(text)?.[1];
  const drain = (async () => {
    while (!(await reader.read()).done) { /* keep draining */ }
  })();
  const stdout = new Response(child.stdout).text();
  return { child, text, ws, token, fingerprint, drain, stdout };
}

Deno.test("deno task serve prints a working URL, token and command", async () => {
  const stateDir = `.tmp/serve-test-${crypto.randomUUID().slice(0, 8)}`;
  const service = localService(() => new Response("through serve"));
  try {
    const first = await startServe(stateDir);
    try {
      assert.ok(first.ws && first.token && first.fingerprint, first.text);
      assert.match(
        first.text,
        /deno task fynx tunnel connect ws:\/\/127\.0\.0\.1:\d+\/v1\/ssh --token \S+ --expose app=http:\/\/127\.0\.0\.1:11434 --host-key-fingerprint SHA256:/,
      );
      const ws = await openWebSocket(first.ws!, {
        authorization: `Bearer ${first.token}`,
      });
      const duplex = webSocketDuplex(ws, { pingInterval: 0 });
      const client = await connect({
        transport: duplex,
        username: "dev",
        verifyHostKey: (k) => k.fingerprint() === first.fingerprint,
      });
      await forwardRemote(client, {
        bind: { hostname: "app", port: 0 },
        target: { hostname: "127.0.0.1", port: service.port },
      });
      const base = first.ws!.replace("ws://", "http://").replace("/v1/ssh", "");
      const res = await fetch(`${base}/t/dev/app/`);
      assert.equal(await res.text(), "through serve");
      first.child.kill("SIGTERM");
      assert.equal((await first.child.status).code, 0);
      await client.closed;
      const { code } = await duplex.closed;
      assert.equal(code, 1012);
      await first.drain;
      const logs = (await first.stdout).trim().split("\n").map((l) =>
        JSON.parse(l)
      );
      assert.ok(logs.some((e) => e.event === "shutdown"));
      assert.ok(logs.every((e) => typeof e.time === "number" && e.event));
    } finally {
      try {
        first.child.kill("SIGKILL");
      } catch {
        // Exited.
      }
      await first.child.status;
      await first.drain.catch(() => {});
      await first.stdout.catch(() => {});
    }
    // The host key and secret persist in the state directory.
    const second = await startServe(stateDir);
    try {
      assert.equal(second.fingerprint, first.fingerprint);
    } finally {
      second.child.kill("SIGTERM");
      await second.child.status;
      await second.drain;
      await second.stdout;
    }
  } finally {
    await service.close();
    await Deno.remove(`${root}/${stateDir}`, { recursive: true }).catch(
      () => {},
    );
  }
});

Deno.test("tunnel: the server answers the client's JSON ping", async () => {
  const server = await startServer();
  const c = await connectClient(server);
  try {
    const pong = new Promise<unknown>((resolve) =>
      c.ws.addEventListener("message", (e) => {
        if (typeof e.data === "string") resolve(JSON.parse(e.data));
      })
    );
    c.ws.send(JSON.stringify({ type: "ping", id: 7 }));
    assert.deepEqual(await pong, { type: "pong", id: 7 });
  } finally {
    await c.close();
    await server.close();
  }
});
