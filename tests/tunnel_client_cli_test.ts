/**
 * `fynx tunnel connect` and `fynx tunnel relay` as users run them (the
 * `fynx` task's permissions), against the test tunnel server on 127.0.0.1;
 * the relay carries a real OpenSSH `ssh` to a real `sshd` as ProxyCommand.
 */
import assert from "node:assert/strict";
import { fynx, FYNX_MAIN, FYNX_PERMISSIONS } from "./_fynx.ts";
import {
  run,
  skipOpenssh,
  SSH,
  sshArgs,
  sshKeygen,
  startSshd,
} from "./_openssh.ts";
import { generatePrivateKey } from "../keys/mod.ts";
import {
  startTunnelServer,
  testToken,
  type TunnelServer,
} from "./_tunnel_client_server.ts";

/** A running `fynx tunnel connect` whose output lines we collect. */
interface Running {
  child: Deno.ChildProcess;
  stdout: string[];
  stderr: string[];
  finished: Promise<Deno.CommandStatus>;
}

function spawnFynx(args: string[]): Running {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-q", ...FYNX_PERMISSIONS, FYNX_MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", HTTPS_PROXY: "", HTTP_PROXY: "" },
  }).spawn();
  const stdout: string[] = [];
  const stderr: string[] = [];
  const collect = async (
    stream: ReadableStream<Uint8Array>,
    into: string[],
  ) => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const lines = rest.split("\n");
      rest = lines.pop()!;
      into.push(...lines);
    }
    if (rest) into.push(rest);
  };
  const reading = Promise.all([
    collect(child.stdout, stdout),
    collect(child.stderr, stderr),
  ]);
  const killer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Gone.
    }
  }, 30_000);
  const finished = (async () => {
    const status = await child.status;
    await reading;
    clearTimeout(killer);
    return status;
  })();
  return { child, stdout, stderr, finished };
}

async function waitFor(
  what: string,
  check: () => boolean,
  r: Running,
  timeout = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error(
        `Timed out waiting for ${what}\nstdout:\n${
          r.stdout.join("\n")
        }\nstderr:\n${r.stderr.join("\n")}`,
      );
    }
    await new Promise((res) => setTimeout(res, 25));
  }
}

function startService(): { port: number; close: () => Promise<void> } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => new Response(`served ${new URL(req.url).pathname}`),
  );
  return { port: server.addr.port, close: () => server.shutdown() };
}

function connectArgs(
  server: TunnelServer,
  servicePort: number,
  extra: string[] = [],
): string[] {
  return [
    "tunnel",
    "connect",
    `ws://127.0.0.1:${server.port}`,
    "--token",
    testToken("dev"),
    "--expose",
    `app=http://127.0.0.1:${servicePort}`,
    "--host-key-fingerprint",
    server.hostKey.publicKey.fingerprint(),
    "--proxy",
    "none",
    ...extra,
  ];
}

Deno.test("fynx tunnel connect --json reports states, stats, reconnects and exits on SIGTERM", async () => {
  const service = startService();
  const server = startTunnelServer();
  const r = spawnFynx(
    connectArgs(server, service.port, ["--json", "--stats-interval", "0.2"]),
  );
  try {
    const events = () =>
      r.stdout.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    await waitFor(
      "connected",
      () => events().some((e) => e.state === "connected"),
      r,
    );
    const connected = events().find((e) => e.state === "connected");
    assert.equal(connected.event, "state");
    assert.deepEqual(connected.names, ["app"]);
    assert.equal(connected.hostKey, server.hostKey.publicKey.fingerprint());
    assert.ok(!Number.isNaN(Date.parse(connected.time)));
    assert.equal(events()[0].state, "connecting");
    assert.equal(
      await server.request("app", "/hi").then((t) => t.split("\r\n\r\n")[1]),
      "served /hi",
    );
    await waitFor(
      "stats with one request",
      () => events().some((e) => e.event === "stats" && e.requestsServed === 1),
      r,
    );
    server.dropAll();
    await waitFor(
      "reconnected",
      () => events().filter((e) => e.state === "connected").length === 2,
      r,
    );
    const reconnecting = events().find((e) => e.state === "reconnecting");
    assert.equal(typeof reconnecting.delay, "number");
    assert.equal(typeof reconnecting.reason, "string");
    r.child.kill("SIGTERM");
    const status = await r.finished;
    assert.equal(status.code, 0, r.stderr.join("\n"));
    const last = events().slice(-2);
    assert.equal(last[0].state, "closed");
    assert.equal(last[1].event, "stats");
    assert.equal(last[1].reconnects, 1);
    // Closing sent DISCONNECT: the server's connection is gone.
    await waitFor("server side closed", () => server.tunnels.size === 0, r);
  } finally {
    try {
      r.child.kill("SIGKILL");
    } catch {
      // Exited.
    }
    await r.finished;
    await server.close();
    await service.close();
  }
});

Deno.test("fynx tunnel connect shows its state on the terminal and exits on SIGINT", async () => {
  const service = startService();
  const server = startTunnelServer();
  const r = spawnFynx(
    connectArgs(server, service.port, ["--stats-interval", "0.2"]),
  );
  try {
    await waitFor(
      "connected line",
      () => r.stderr.some((l) => l.includes("connected (host key")),
      r,
    );
    assert.match(
      r.stderr.find((l) => l.includes("connected (host key"))!,
      new RegExp(`app -> http://127\\.0\\.0\\.1:${service.port}`),
    );
    await server.request("app", "/x");
    await waitFor(
      "requests line",
      () => r.stderr.some((l) => /requests served: 1 \(/.test(l)),
      r,
    );
    server.dropAll();
    await waitFor(
      "reconnecting line",
      () => r.stderr.some((l) => /reconnecting in \d+\.\ds/.test(l)),
      r,
    );
    r.child.kill("SIGINT");
    const status = await r.finished;
    assert.equal(status.code, 0, r.stderr.join("\n"));
    assert.equal(r.stderr.at(-1), "fynx tunnel: closed");
    assert.deepEqual(r.stdout, []);
  } finally {
    try {
      r.child.kill("SIGKILL");
    } catch {
      // Exited.
    }
    await r.finished;
    await server.close();
    await service.close();
  }
});

Deno.test("fynx tunnel connect gives up at once on a wrong host key", async () => {
  const server = startTunnelServer();
  try {
    const other = generatePrivateKey("ed25519").publicKey.fingerprint();
    const args = connectArgs(server, 1);
    args[args.indexOf("--host-key-fingerprint") + 1] = other;
    const result = await fynx(args, { timeout: 20_000 });
    assert.equal(result.code, 1);
    assert.match(
      result.stderrText,
      /failed: Host key mismatch for 127\.0\.0\.1/,
    );
    assert.match(result.stderrText, new RegExp(other.replace(/[+/]/g, "\\$&")));
    assert.equal(server.attempts, 1);
  } finally {
    await server.close();
  }
});

Deno.test("fynx tunnel: help and usage errors", async () => {
  const help = await fynx(["tunnel", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdoutText, /fynx tunnel connect <wss-url>/);
  assert.match(help.stdoutText, /ProxyCommand/);
  const connectHelp = await fynx(["tunnel", "connect", "--help"]);
  assert.equal(connectHelp.code, 0);
  const main = await fynx(["--help"]);
  assert.match(main.stdoutText, /tunnel {2}Expose local services/);
  const cases: [string[], RegExp][] = [
    [["tunnel", "connect", "ws://h", "--token", "t"], /nothing to expose/],
    [
      ["tunnel", "connect", "ws://h", "--token", "t", "--expose", "app"],
      /invalid --expose "app"/,
    ],
    [
      ["tunnel", "connect", "ws://h", "--token", "t", "--expose", "app=80"],
      /host key must be pinned/,
    ],
    [
      [
        "tunnel",
        "connect",
        "ws://h",
        "--token",
        "t",
        "--expose",
        "app=80",
        "--header",
        "nocolon",
      ],
      /invalid --header "nocolon"/,
    ],
    [["tunnel", "relay", "ws://h", "--token", "t"], /--target HOST:PORT/],
    [["tunnel", "connect", "ws://h", "--expose", "a=1"], /token is needed/],
    [["tunnel", "bogus"], /unknown subcommand 'bogus'/],
  ];
  for (const [args, pattern] of cases) {
    const r = await fynx(args, { env: { FYNX_TUNNEL_TOKEN: "" } });
    assert.equal(r.code, 1, args.join(" "));
    assert.match(r.stderrText, pattern);
  }
});

Deno.test("fynx tunnel relay refuses a target the server does not allow", async () => {
  const server = startTunnelServer();
  try {
    const r = await fynx([
      "tunnel",
      "relay",
      `ws://127.0.0.1:${server.port}`,
      "--token",
      testToken("dev"),
      "--target",
      "127.0.0.1:9",
      "--proxy",
      "none",
    ], { timeout: 20_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderrText, /403 Forbidden: target not allowed/);
  } finally {
    await server.close();
  }
});

Deno.test({
  name: "OpenSSH ssh logs in to sshd through fynx tunnel relay as ProxyCommand",
  ignore: skipOpenssh("tunnel relay with OpenSSH"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "fynx-tunnel-relay-" });
    const user = await sshKeygen(dir, "user", "ed25519");
    const sshd = await startSshd({
      hostKeyTypes: ["ed25519"],
      authorizedKeys: [user.publicLine],
    });
    const server = startTunnelServer();
    try {
      server.relayAllow.add(`127.0.0.1:${sshd.port}`);
      const proxyCommand = [
        Deno.execPath(),
        "run",
        "-q",
        ...FYNX_PERMISSIONS,
        FYNX_MAIN,
        "tunnel",
        "relay",
        `ws://127.0.0.1:${server.port}`,
        "--token",
        testToken("dev"),
        "--target",
        "%h:%p",
        "--proxy",
        "none",
      ].map((a) => `'${a}'`).join(" ");
      const result = await run(
        SSH,
        [
          ...sshArgs({
            port: sshd.port,
            user: "root",
            knownHostsPath: sshd.knownHostsPath,
            identity: user.path,
            options: { ProxyCommand: proxyCommand },
          }),
          "echo relayed-$((6*7))",
        ],
        { timeout: 30_000 },
      );
      assert.equal(result.code, 0, result.stderrText);
      assert.equal(result.stdoutText, "relayed-42\n");
    } finally {
      await server.close();
      await sshd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
