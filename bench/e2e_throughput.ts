/**
 * End-to-end benchmark, everything side by side in one run (issue 6):
 *
 * 1. Throughput of an exec channel, upload (`cat > /dev/null` fed with N
 *    MiB) and download (`head -c N /dev/zero`), per cipher, for
 *    our client -> sshd, `ssh2` (Node) -> sshd, OpenSSH `ssh` -> sshd and
 *    `ssh` -> our server.
 * 2. Time from process start to the first output of `echo hi`: `fynx ssh`,
 *    our library in a fresh `deno run`, `ssh2`, OpenSSH `ssh`.
 * 3. Our server: handshakes per second (connect + auth + close) from a
 *    pool of concurrent clients, compared with sshd.
 * 4. Our server's resident memory with 1000 idle authenticated sessions.
 *
 * Every client run is a fresh process timed by this one from spawn to exit
 * (to first output for 2.), so process start and the handshake count the
 * same for everyone. Rounds alternate the pairings (A B C D A B C D ...) so
 * a noisy moment hits all of them; medians are reported. Our server runs in
 * its own process (bench/_e2e_server.ts), so its memory is its own.
 *
 * Writes docs/bench_e2e.md (tables), docs/bench_e2e.svg (chart) and
 * docs/bench_e2e.json (every sample), and prints the tables.
 * Everything runs on 127.0.0.1, is bounded in count and time, and cleans
 * up. Needs root (sshd) and OpenSSH; `ssh2` is optional:
 *
 *   mkdir -p .tmp/ssh2 && npm install --prefix .tmp/ssh2 ssh2
 *
 * Usage: deno task bench:e2e [--size MiB] [--rounds N] [--cipher NAME]...
 *   [--only throughput|startup|handshakes|memory]... [--sessions N]
 *   [--duration S] [--concurrency N] [--startup-runs N] [--ssh2 DIR]
 *   [--out DIR | --no-write] [--update-readme] [--server-v8-flags FLAGS]
 *   [--memory-v8-flags FLAGS]
 *
 * --server-v8-flags passes V8 flags (comma-separated) to our server's
 * process, e.g. `--max-semi-space-size=1` to see how much of its memory is
 * V8's young generation. The memory section runs twice: with those flags
 * (none by default) and with --memory-v8-flags (default
 * `--optimize-for-size`, what `fynx sshd` uses; "" to skip that run).
 * --update-readme also replaces the text between the `bench:e2e` markers in
 * README.md with the tables.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { connect, type ConnectOptions, type SshClient } from "../client.ts";
import { parsePrivateKey } from "../keys/mod.ts";
import { cipherInfo } from "../transport/cipher/mod.ts";
import {
  knownHostsLine,
  opensshSkipReason,
  run,
  SSH,
  sshArgs,
  sshKeygen,
  startSshd,
} from "../tests/_openssh.ts";
import { FYNX_MAIN, FYNX_PERMISSIONS } from "../tests/_fynx.ts";
import {
  type BarChart,
  markdownTable,
  median,
  svgCharts,
} from "./_e2e_report.ts";
import { lineReader } from "./_lines.ts";

const SECTIONS = ["throughput", "startup", "handshakes", "memory"] as const;
/**
 * V8 flags of the memory-tuned server (what `fynx sshd` ships with; see
 * docs/ARCHITECTURE.md "Memory"): the memory section measures the server
 * with these as well as without.
 */
const TUNED_V8_FLAGS = "--optimize-for-size";
type Section = typeof SECTIONS[number];

const { values } = parseArgs({
  options: {
    size: { type: "string", default: "512" },
    rounds: { type: "string", default: "3" },
    cipher: { type: "string", multiple: true },
    only: { type: "string", multiple: true },
    sessions: { type: "string", default: "1000" },
    duration: { type: "string", default: "5" },
    concurrency: { type: "string", default: "8" },
    "startup-runs": { type: "string", default: "10" },
    ssh2: { type: "string", default: ".tmp/ssh2" },
    out: { type: "string", default: "docs" },
    "no-write": { type: "boolean", default: false },
    "update-readme": { type: "boolean", default: false },
    "server-v8-flags": { type: "string", default: "" },
    "memory-v8-flags": { type: "string", default: TUNED_V8_FLAGS },
  },
});

function intOption(name: string, min: number, max: number): number {
  const raw = (values as Record<string, unknown>)[name] as string;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(
      `--${name} must be a whole number ${min}..${max}, got ${raw}`,
    );
    Deno.exit(2);
  }
  return n;
}
const sizeMiB = intOption("size", 1, 4096);
const rounds = intOption("rounds", 1, 20);
const sessionCount = intOption("sessions", 1, 5000);
const duration = intOption("duration", 1, 60);
const concurrency = intOption("concurrency", 1, 64);
const startupRuns = intOption("startup-runs", 1, 50);
const total = sizeMiB * 1024 * 1024;
const MAC = "hmac-sha2-256-etm@openssh.com";
const ciphers = values.cipher ?? [
  "aes128-gcm@openssh.com",
  "chacha20-poly1305@openssh.com",
  "aes256-gcm@openssh.com",
  "aes128-ctr",
];
for (const c of ciphers) cipherInfo(c); // Throws on an unknown name.
const sections = new Set<Section>(
  (values.only ?? [...SECTIONS]).map((s) => {
    if (!(SECTIONS as readonly string[]).includes(s)) {
      console.error(`--only must be one of ${SECTIONS.join(", ")}, got ${s}`);
      Deno.exit(2);
    }
    return s as Section;
  }),
);
if (opensshSkipReason) {
  console.error(`Cannot run: ${opensshSkipReason}`);
  Deno.exit(2);
}

// --- Environment ---------------------------------------------------------

const here = new URL(".", import.meta.url).pathname;
const CLIENT_TS = `${here}_e2e_client.ts`;
const SERVER_TS = `${here}_e2e_server.ts`;
const SSH2_MJS = `${here}ssh2_client.mjs`;
// By name, so the task's --allow-run=deno covers it (execPath may be a
// symlink target).
const DENO = "deno";

async function text(cmd: string, args: string[]): Promise<string> {
  try {
    const r = await run(cmd, args, { timeout: 10_000 });
    return (r.stdoutText + r.stderrText).trim();
  } catch {
    return "";
  }
}

const ssh2Dir = values.ssh2;
let ssh2Skip: string | null = null;
let ssh2Version = "";
try {
  ssh2Version = JSON.parse(
    await Deno.readTextFile(`${ssh2Dir}/node_modules/ssh2/package.json`),
  ).version;
  if (!(await text("node", ["--version"]))) throw new Error("no node");
} catch {
  ssh2Skip = `ssh2 skipped: not found in ${ssh2Dir}/node_modules (install ` +
    `it with: mkdir -p ${ssh2Dir} && npm install --prefix ${ssh2Dir} ssh2; ` +
    `needs node on PATH)`;
  console.warn(ssh2Skip);
}

// Deno refuses to read /proc/<pid>/* and some other /proc files without
// --allow-all, so they are read through `cat`.
async function procFile(path: string): Promise<string> {
  try {
    return (await run("cat", [path], { timeout: 10_000 })).stdoutText;
  } catch {
    return "";
  }
}

/**
 * CPU seconds (user + system) used by process `pid` and by the children it
 * has reaped, from `/proc/<pid>/stat` (utime, stime, cutime, cstime, in
 * USER_HZ: 100 per second on Linux). It first waits, up to 5 s, until the
 * process has no children left, so a session (sshd forks one per
 * connection) or a command (`cat`, `head`) that just ended is counted.
 */
async function processCpu(pid: number): Promise<number> {
  const deadline = performance.now() + 5000;
  while (
    (await procFile(`/proc/${pid}/task/${pid}/children`)).trim() &&
    performance.now() < deadline
  ) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const stat = await procFile(`/proc/${pid}/stat`);
  // Fields after the parenthesised command name start at field 3 (state);
  // utime is field 14.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = fields.slice(11, 15).map(Number);
  if (ticks.length !== 4 || ticks.some((t) => !Number.isFinite(t))) {
    throw new Error(`cannot read CPU times of process ${pid}: ${stat}`);
  }
  return ticks.reduce((a, b) => a + b, 0) / 100;
}

const cpuModel = (await procFile("/proc/cpuinfo")).match(
  /model name\s*:\s*(.*)/,
)?.[1] ?? "unknown CPU";
const machine = [
  `${cpuModel}, ${navigator.hardwareConcurrency} logical CPUs`,
  `Deno ${Deno.version.deno}`,
  (await text(SSH, ["-V"])).split(",")[0],
  ssh2Skip
    ? "ssh2 not installed"
    : `ssh2 ${ssh2Version} on Node ${
      (await text("node", ["--version"])).replace(/^v/, "")
    }`,
].join("; ");
console.log(`Machine: ${machine}`);

// --- Keys, sshd, our server ---------------------------------------------

const dir = await Deno.makeTempDir({ prefix: "fynx-e2e-bench-" });
const user = await sshKeygen(dir, "user", "ed25519", { comment: "bench" });
const userKey = parsePrivateKey(await Deno.readTextFile(user.path));
const userFp = userKey.publicKey.fingerprint();
const sshd = await startSshd({
  hostKeyTypes: ["ed25519"],
  authorizedKeys: [user.publicLine],
  algorithms: { mac: [MAC, "hmac-sha2-256"] },
});
const sshdFp = parsePrivateKey(await Deno.readTextFile(sshd.hostKeys[0].path))
  .publicKey.fingerprint();
const ourHost = await sshKeygen(dir, "ours", "ed25519", { comment: "host" });
const ourFp = parsePrivateKey(await Deno.readTextFile(ourHost.path)).publicKey
  .fingerprint();

/** Our server in a child process (bench/_e2e_server.ts). */
interface OurServer {
  port: number;
  pid: number;
  knownHosts: string;
  /** VmRSS of the server process in bytes (from /proc). */
  rss(): Promise<number>;
  /** Deno.memoryUsage() inside the server, plus connection counts. */
  memory(gc?: boolean): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

async function startOurServer(
  v8Flags = values["server-v8-flags"],
): Promise<OurServer> {
  const child = new Deno.Command(DENO, {
    args: [
      "run",
      "-q",
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--allow-run",
      `--v8-flags=${["--expose-gc", v8Flags].filter(Boolean).join(",")}`,
      SERVER_TS,
      "--host-key",
      ourHost.path,
      "--user-key",
      userFp,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = lineReader(child.stdout, "our server");
  const nextLine = () => lines.next();
  const writer = child.stdin.getWriter();
  const stop = async () => {
    await writer.close().catch(() => {});
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await child.status;
    clearTimeout(timer);
    await lines.cancel().catch(() => {});
  };
  const first = await Promise.race([
    nextLine(),
    new Promise<string>((r) => setTimeout(r, 30_000, "timeout")),
  ]);
  const m = first.match(/^listening (\d+)$/);
  if (!m) {
    await stop();
    throw new Error(`our server did not start: ${first}`);
  }
  const port = Number(m[1]);
  const knownHosts = `${dir}/known_hosts_ours_${port}`;
  await Deno.writeTextFile(
    knownHosts,
    knownHostsLine("127.0.0.1", port, ourHost.publicLine) + "\n",
  );
  return {
    port,
    pid: child.pid,
    knownHosts,
    rss: async () => {
      const status = await procFile(`/proc/${child.pid}/status`);
      const kb = status.match(/VmRSS:\s*(\d+) kB/)?.[1];
      if (!kb) throw new Error(`no VmRSS for our server (pid ${child.pid})`);
      return Number(kb) * 1024;
    },
    memory: async (gc = false) => {
      await writer.write(new TextEncoder().encode(gc ? "gc\n" : "mem\n"));
      return JSON.parse(await nextLine());
    },
    stop,
  };
}

// --- Running one client --------------------------------------------------

type Mode = "upload" | "download" | "first";
type Client = "fynx" | "fynx-cli" | "ssh2" | "ssh";

interface Target {
  port: number;
  fingerprint: string;
  knownHosts: string;
  /** The server process, whose CPU time is read around each transfer. */
  pid: number;
}

/** Our library client, logged in as root with the bench's user key. */
function connectTo(
  target: Target,
  algorithms: ConnectOptions["algorithms"] = {},
): Promise<SshClient> {
  return connect({
    hostname: "127.0.0.1",
    port: target.port,
    username: "root",
    privateKeys: [userKey],
    verifyHostKey: (k) => k.fingerprint() === target.fingerprint,
    algorithms,
  });
}

function quote(args: readonly string[]): string {
  return args.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
}

function commandFor(
  client: Client,
  mode: Mode,
  target: Target,
  cipher: string | null,
): [string, string[]] {
  const mac = cipher && !cipherInfo(cipher).aead ? MAC : null;
  const remote = mode === "upload"
    ? "cat > /dev/null"
    : mode === "download"
    ? `head -c ${total} /dev/zero`
    : "echo hi";
  const common = [
    "--mode",
    mode,
    "--port",
    String(target.port),
    "--key",
    user.path,
    "--host-key",
    target.fingerprint,
    "--size",
    String(total),
    ...(cipher ? ["--cipher", cipher] : []),
    ...(mac ? ["--mac", mac] : []),
  ];
  switch (client) {
    case "fynx":
      return [DENO, [
        "run",
        "-q",
        "--allow-net=127.0.0.1",
        `--allow-read=${user.path}`,
        CLIENT_TS,
        ...common,
      ]];
    case "ssh2":
      return ["node", [SSH2_MJS, "--ssh2", ssh2Dir, ...common]];
    case "fynx-cli":
      return [DENO, [
        "run",
        "-q",
        ...FYNX_PERMISSIONS,
        FYNX_MAIN,
        "ssh",
        "-p",
        String(target.port),
        "-i",
        user.path,
        "-o",
        `UserKnownHostsFile=${target.knownHosts}`,
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentityAgent=none",
        ...(cipher ? ["-o", `Ciphers=${cipher}`] : []),
        "-T",
        "root@127.0.0.1",
        remote,
      ]];
    case "ssh": {
      const args = sshArgs({
        port: target.port,
        user: "root",
        knownHostsPath: target.knownHosts,
        identity: user.path,
        options: {
          Compression: "no",
          ...(cipher ? { Ciphers: cipher } : {}),
          ...(mac ? { MACs: mac } : {}),
        },
      });
      if (mode === "upload") {
        return ["bash", [
          "-c",
          `head -c ${total} /dev/zero | ${quote([SSH, ...args, remote])}`,
        ]];
      }
      return [SSH, [...args, remote]];
    }
  }
}

/** One client run: wall time and (for transfers) the CPU time it used. */
interface Run {
  /** Milliseconds from spawn to exit, or to the first output for "first". */
  ms: number;
  /**
   * User + system CPU seconds of the client and everything it ran (for
   * `ssh` uploads that includes the `head` feeding it); NaN for "first".
   */
  cpu: number;
}

/**
 * A transfer runs under `bash`, whose `times` built-in then reports the CPU
 * its children used (user and system, on the last line of stderr): the same
 * measure for every client, with no tool that may be missing. "first" runs
 * are not wrapped, so start-up times are the clients' own. SIGTERM to the
 * wrapper kills the client (the time limit in {@linkcode timed}); `wait`
 * lets the trap run at once.
 */
const CPU_WRAPPER = '"$@" & client=$!; ' +
  "trap 'kill -KILL $client' TERM; " +
  "wait $client; status=$?; wait $client 2>/dev/null; " +
  "times >&2; exit $status";

function parseTimes(stderr: string): number {
  const line = stderr.trim().split("\n").at(-1) ?? "";
  const m = line.match(/^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/);
  if (!m) throw new Error(`no CPU times from bash: ${JSON.stringify(line)}`);
  return Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]);
}

/**
 * Runs one client process; resolves with milliseconds from spawn to exit,
 * or to the first stdout bytes for "first" (which must read `hi`).
 */
async function timed(
  client: Client,
  mode: Mode,
  target: Target,
  cipher: string | null,
): Promise<Run> {
  const [clientCmd, clientArgs] = commandFor(client, mode, target, cipher);
  const [cmd, args] = mode === "first"
    ? [clientCmd, clientArgs]
    : ["bash", ["-c", CPU_WRAPPER, "bash", clientCmd, ...clientArgs]];
  const start = performance.now();
  const child = new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: mode === "first" ? "piped" : "null",
    stderr: "piped",
  }).spawn();
  const signal = (name: Deno.Signal) => {
    try {
      child.kill(name);
    } catch {
      // Gone.
    }
  };
  // TERM first: the CPU wrapper passes it on to the client as a KILL.
  let killer: ReturnType<typeof setTimeout> | undefined;
  const timer = setTimeout(() => {
    signal("SIGTERM");
    killer = setTimeout(() => signal("SIGKILL"), 5000);
  }, 300_000);
  try {
    const stderr = new Response(child.stderr).text();
    let firstAt = NaN;
    let out = "";
    if (mode === "first") {
      const decoder = new TextDecoder();
      for await (const chunk of child.stdout) {
        if (!out) firstAt = performance.now();
        out += decoder.decode(chunk, { stream: true });
      }
    }
    const status = await child.status;
    const end = performance.now();
    if (status.code !== 0) {
      throw new Error(
        `${client} ${mode} ${
          cipher ?? ""
        } exited ${status.code}: ${await stderr}`,
      );
    }
    if (mode === "first") {
      await stderr;
      if (out.trim() !== "hi") throw new Error(`${client} printed ${out}`);
      return { ms: firstAt - start, cpu: NaN };
    }
    return { ms: end - start, cpu: parseTimes(await stderr) };
  } finally {
    clearTimeout(timer);
    clearTimeout(killer);
  }
}

// --- Results --------------------------------------------------------------

/** Adds a sample to the list kept under `key`. */
function append<K>(samples: Map<K, number[]>, key: K, value: number): void {
  const list = samples.get(key);
  if (list) list.push(value);
  else samples.set(key, [value]);
}

const mbps = (ms: number) => total / 1e6 / (ms / 1000);
const fmt = (v: number, digits = 0) =>
  Number.isFinite(v) ? v.toFixed(digits) : "n/a";
const ratio = (a: number, b: number) =>
  Number.isFinite(a) && Number.isFinite(b) ? (a / b).toFixed(2) : "n/a";

const date = new Date().toISOString();
const raw: Record<string, unknown> = {
  machine,
  date,
  sizeMiB,
  rounds,
};
const markdown: string[] = [];
const charts: BarChart[] = [];
const goals: string[][] = [];
function goal(name: string, value: string, met: boolean | null): void {
  goals.push([name, value, met === null ? "n/a" : met ? "met" : "not met"]);
}

let ourServer: OurServer | null = null;
try {
  // Warm-up: compiles and caches every client once, and proves each works.
  console.log("Warming up the clients ...");
  const sshdTarget: Target = {
    port: sshd.port,
    fingerprint: sshdFp,
    knownHosts: sshd.knownHostsPath,
    pid: sshd.pid,
  };
  const startupClients: Client[] = ssh2Skip
    ? ["fynx-cli", "fynx", "ssh"]
    : ["fynx-cli", "fynx", "ssh2", "ssh"];
  for (const c of startupClients) await timed(c, "first", sshdTarget, null);

  // 1. Throughput.
  if (sections.has("throughput")) {
    ourServer = await startOurServer();
    const oursTarget: Target = {
      port: ourServer.port,
      fingerprint: ourFp,
      knownHosts: ourServer.knownHosts,
      pid: ourServer.pid,
    };
    const pairings: { name: string; client: Client; target: Target }[] = [
      { name: "ssh → sshd", client: "ssh", target: sshdTarget },
      { name: "fynx → sshd", client: "fynx", target: sshdTarget },
      ...(ssh2Skip ? [] : [{
        name: "ssh2 → sshd",
        client: "ssh2" as Client,
        target: sshdTarget,
      }]),
      { name: "ssh → fynx", client: "ssh", target: oursTarget },
    ];
    const samples = new Map<string, number[]>();
    const clientCpu = new Map<string, number[]>();
    const serverCpu = new Map<string, number[]>();
    const key = (p: string, c: string, m: Mode) => `${p}|${c}|${m}`;
    const modes: Mode[] = ["upload", "download"];
    console.log(
      `\nThroughput: ${sizeMiB} MiB per run, ${rounds} rounds, MB/s (10^6 B/s)`,
    );
    for (let round = 1; round <= rounds; round++) {
      for (const cipher of ciphers) {
        for (const mode of modes) {
          const line: string[] = [];
          for (const p of pairings) {
            const before = await processCpu(p.target.pid);
            const { ms, cpu } = await timed(p.client, mode, p.target, cipher);
            const k = key(p.name, cipher, mode);
            append(samples, k, mbps(ms));
            append(clientCpu, k, cpu);
            append(serverCpu, k, (await processCpu(p.target.pid)) - before);
            line.push(`${p.name} ${fmt(mbps(ms))}`);
          }
          console.log(`  round ${round} ${cipher} ${mode}: ${line.join(", ")}`);
        }
      }
    }
    await ourServer.stop();
    ourServer = null;
    const med = (p: string, c: string, m: Mode) =>
      median(samples.get(key(p, c, m)) ?? []);
    const rows: string[][] = [];
    const groups = [];
    for (const cipher of ciphers) {
      const label = cipherInfo(cipher).aead ? cipher : `${cipher} + ${MAC}`;
      for (const mode of modes) {
        const ref = med("ssh → sshd", cipher, mode);
        const ours = med("fynx → sshd", cipher, mode);
        const ssh2 = med("ssh2 → sshd", cipher, mode);
        const toOurs = med("ssh → fynx", cipher, mode);
        rows.push([
          label,
          mode,
          fmt(ref),
          fmt(ours),
          fmt(ssh2),
          fmt(toOurs),
          ratio(ours, ssh2),
          ratio(ours, ref),
          ratio(toOurs, ref),
        ]);
        groups.push({
          label: `${cipher.replace("@openssh.com", "")} ${mode}`,
          values: [ref, ours, ssh2, toOurs],
        });
        if (
          cipher === "aes128-gcm@openssh.com" ||
          cipher === "chacha20-poly1305@openssh.com"
        ) {
          goal(
            `fynx → sshd ≥ 1.0× ssh2, ${cipher} ${mode}`,
            `${ratio(ours, ssh2)}×`,
            Number.isFinite(ssh2) ? ours >= ssh2 : null,
          );
        }
        goal(
          `ssh → fynx ≥ 0.8× ssh → sshd, ${cipher} ${mode}`,
          `${ratio(toOurs, ref)}×`,
          toOurs >= 0.8 * ref,
        );
      }
    }
    raw.throughput = Object.fromEntries(samples);
    markdown.push(
      `### Throughput through an exec channel (MB/s, median of ${rounds})\n`,
      `${sizeMiB} MiB per run: upload is \`cat > /dev/null\` fed with zeros, ` +
        `download is \`head -c ${total} /dev/zero\`. Each run is a fresh ` +
        `client process timed from spawn to exit (start-up and handshake ` +
        `included). Non-AEAD ciphers use ${MAC}.\n`,
      markdownTable(
        [
          "cipher",
          "direction",
          "ssh → sshd",
          "fynx → sshd",
          "ssh2 → sshd",
          "ssh → fynx",
          "fynx / ssh2",
          "fynx / ssh",
          "ssh→fynx / ssh→sshd",
        ],
        rows,
        ["l", "l", "r", "r", "r", "r", "r", "r", "r"],
      ),
      "",
    );
    // Where the time goes: on two CPUs the cipher's cost shows up here
    // before it shows up as MB/s.
    const cpuRows: string[][] = [];
    for (const cipher of ciphers) {
      const label = cipherInfo(cipher).aead ? cipher : `${cipher} + ${MAC}`;
      for (const mode of modes) {
        cpuRows.push([
          label,
          mode,
          ...pairings.map((p) => {
            const k = key(p.name, cipher, mode);
            return `${fmt(median(clientCpu.get(k) ?? []), 2)} / ${
              fmt(median(serverCpu.get(k) ?? []), 2)
            }`;
          }),
        ]);
      }
    }
    raw.cpu = {
      client: Object.fromEntries(clientCpu),
      server: Object.fromEntries(serverCpu),
    };
    markdown.push(
      `### CPU seconds per run, client / server (median of ${rounds})\n`,
      "User + system time of the whole client process (start-up included; " +
        "for `ssh` uploads also the `head` feeding it) and of the server " +
        "during the run: sshd's session processes or our server process, " +
        "each with the command it ran. Read from `bash`'s `times` and " +
        "`/proc/<pid>/stat`. " +
        `With ${navigator.hardwareConcurrency} CPUs a run can use at most ` +
        `${navigator.hardwareConcurrency} CPU seconds per second.\n`,
      markdownTable(
        ["cipher", "direction", ...pairings.map((p) => p.name)],
        cpuRows,
        ["l", "l", ...pairings.map(() => "r" as const)],
      ),
      "",
    );
    charts.push({
      title: `Exec channel throughput, ${sizeMiB} MiB (MB/s, higher is better)`,
      unit: "MB/s",
      series: ["ssh → sshd", "fynx → sshd", "ssh2 → sshd", "ssh → fynx"],
      groups,
    });
  }

  // 2. Time to first output.
  if (sections.has("startup")) {
    const names: Record<Client, string> = {
      "fynx-cli": "fynx ssh (deno run)",
      fynx: "fynx library (deno run)",
      ssh2: "ssh2 (node)",
      ssh: "OpenSSH ssh",
    };
    const samples = new Map<Client, number[]>();
    console.log(`\nTime to first output of 'echo hi', ${startupRuns} runs`);
    for (let i = 0; i < startupRuns; i++) {
      for (const c of startupClients) {
        const { ms } = await timed(c, "first", sshdTarget, null);
        append(samples, c, ms);
      }
    }
    const ssh2Ms = median(samples.get("ssh2") ?? []);
    const rows = startupClients.map((c) => {
      const s = samples.get(c)!;
      console.log(`  ${names[c]}: ${s.map((v) => v.toFixed(0)).join(" ")} ms`);
      return [
        names[c],
        fmt(median(s)),
        fmt(Math.min(...s)),
        fmt(Math.max(...s)),
        ratio(median(s), ssh2Ms),
      ];
    });
    for (const c of ["fynx-cli", "fynx"] as const) {
      const ms = median(samples.get(c)!);
      goal(
        `time to first output ≤ ssh2, ${names[c]}`,
        `${fmt(ms)} ms vs ${fmt(ssh2Ms)} ms`,
        Number.isFinite(ssh2Ms) ? ms <= ssh2Ms : null,
      );
    }
    raw.startup = Object.fromEntries(samples);
    markdown.push(
      `### Time from process start to the first output (ms, median of ${startupRuns})\n`,
      "`echo hi` against sshd with each client's default algorithms; " +
        "lower is better.\n",
      markdownTable(
        ["client", "median", "min", "max", "vs ssh2"],
        rows,
        ["l", "r", "r", "r", "r"],
      ),
      "",
    );
    charts.push({
      title: "Time to first output of `echo hi` (ms, lower is better)",
      unit: "ms",
      series: startupClients.map((c) => names[c]),
      groups: [{
        label: "process start → output",
        values: startupClients.map((c) => median(samples.get(c)!)),
      }],
    });
  }

  // 3. Handshakes per second.
  if (sections.has("handshakes")) {
    const rows: string[][] = [];
    const results: Record<string, number> = {};
    const pool = async (
      target: Target,
      kex: string | null,
    ): Promise<{ rate: number; kex: string; errors: number }> => {
      let count = 0;
      let errors = 0;
      let negotiated = "";
      const deadline = performance.now() + duration * 1000;
      const start = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (performance.now() < deadline) {
            try {
              const c = await connectTo(target, kex ? { kex: [kex] } : {});
              negotiated ||= c.algorithms.kex ?? "";
              await c.close();
              count++;
            } catch {
              errors++;
              if (errors > 100) throw new Error("too many failed handshakes");
            }
          }
        }),
      );
      const seconds = (performance.now() - start) / 1000;
      return { rate: count / seconds, kex: negotiated, errors };
    };
    ourServer = await startOurServer();
    const oursTarget: Target = {
      port: ourServer.port,
      fingerprint: ourFp,
      knownHosts: ourServer.knownHosts,
      pid: ourServer.pid,
    };
    console.log(
      `\nHandshakes per second: ${concurrency} concurrent clients (our ` +
        `library, in this process), ${duration} s each`,
    );
    for (
      const [name, target, kex] of [
        ["fynx server", oursTarget, "curve25519-sha256"],
        ["fynx server", oursTarget, null],
        ["sshd", sshdTarget, "curve25519-sha256"],
      ] as const
    ) {
      const r = await pool(target, kex);
      console.log(
        `  ${name}, ${r.kex}: ${r.rate.toFixed(1)}/s (${r.errors} errors)`,
      );
      results[`${name} ${r.kex}`] = r.rate;
      rows.push([name, r.kex, fmt(r.rate, 1), String(r.errors)]);
    }
    await ourServer.stop();
    ourServer = null;
    raw.handshakes = results;
    markdown.push(
      `### Server handshakes per second (${concurrency} concurrent clients, ${duration} s)\n`,
      "Connect, key exchange, Ed25519 host key, Ed25519 public-key auth, " +
        "close, in a loop. The clients are our library in the bench process " +
        `and share the ${navigator.hardwareConcurrency} CPUs with the server.\n`,
      markdownTable(
        ["server", "key exchange", "handshakes/s", "errors"],
        rows,
        ["l", "l", "r", "r"],
      ),
      "",
    );
  }

  // 4. Memory with idle sessions.
  if (sections.has("memory")) {
    const limits = await procFile(`/proc/${Deno.pid}/limits`);
    const nofile = Number(limits.match(/Max open files\s+(\d+)/)?.[1] ?? 0);
    if (nofile && nofile < sessionCount * 2 + 200) {
      console.warn(
        `ulimit -n is ${nofile}; ${sessionCount} sessions need about ` +
          `${sessionCount * 2 + 200} (raise it with ulimit -n)`,
      );
    }
    const memoryFlags = values["memory-v8-flags"];
    const variants: [string, string][] = [
      [
        values["server-v8-flags"]
          ? `V8 flags ${values["server-v8-flags"]}`
          : "default V8 flags",
        values["server-v8-flags"],
      ],
      ...(memoryFlags && memoryFlags !== values["server-v8-flags"]
        ? [[`tuned, V8 flags ${memoryFlags}`, memoryFlags] as [string, string]]
        : []),
    ];
    for (const [label, flags] of variants) {
      ourServer = await startOurServer(flags);
      const target: Target = {
        port: ourServer.port,
        fingerprint: ourFp,
        knownHosts: ourServer.knownHosts,
        pid: ourServer.pid,
      };
      const baseRss = await ourServer.rss();
      const baseMem = await ourServer.memory();
      console.log(
        `\nMemory (${label}): opening ${sessionCount} idle authenticated ` +
          "sessions ...",
      );
      const clients: SshClient[] = [];
      const deadline = performance.now() + 180_000;
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < sessionCount && performance.now() < deadline) {
            next++;
            const c = await connectTo(target);
            clients.push(c);
            await c.openSession();
          }
        }),
      );
      await new Promise((r) => setTimeout(r, 2000));
      const rss = await ourServer.rss();
      const mem = await ourServer.memory();
      // After a full collection: what the sessions really hold (V8 keeps
      // garbage from the handshakes until it needs the room).
      const gcMem = await ourServer.memory(true);
      await new Promise((r) => setTimeout(r, 500));
      const gcRss = await ourServer.rss();
      console.log(
        `  ${clients.length} sessions: VmRSS ${fmt(rss / 2 ** 20, 1)} MiB, ${
          fmt(gcRss / 2 ** 20, 1)
        } MiB after GC (idle server ${fmt(baseRss / 2 ** 20, 1)} MiB)`,
      );
      goal(
        `${sessionCount} idle sessions < 100 MB server RSS (${label})`,
        `${fmt(rss / 1e6, 1)} MB (${fmt(gcRss / 1e6, 1)} MB after GC)`,
        clients.length === sessionCount ? rss < 100e6 : null,
      );
      for (let i = 0; i < clients.length; i += 50) {
        await Promise.all(clients.slice(i, i + 50).map((c) => c.close()));
      }
      await ourServer.stop();
      ourServer = null;
      ((raw.memory ??= {}) as Record<string, unknown>)[label] = {
        v8Flags: flags,
        baseRss,
        baseMem,
        rss,
        mem,
        gcRss,
        gcMem,
        sessions: clients.length,
      };
      const mib = (b: number) => fmt(b / 2 ** 20, 1);
      markdown.push(
        `### Our server's memory with ${clients.length} idle sessions, ${label}\n`,
        "Each session: one authenticated connection (Ed25519 key) with one " +
          "open session channel and no command. The server runs alone in its " +
          "own process; VmRSS is read from /proc/<pid>/status, the V8 " +
          "figures are the server's `Deno.memoryUsage()`.\n",
        markdownTable(
          [
            "",
            "idle server",
            `${clients.length} sessions`,
            "same, after a full GC",
            "per session (after GC)",
          ],
          [
            ["VmRSS (MiB)", baseRss, rss, gcRss],
            [
              "V8 heap total (MiB)",
              baseMem.heapTotal,
              mem.heapTotal,
              gcMem.heapTotal,
            ],
            [
              "V8 heap used (MiB)",
              baseMem.heapUsed,
              mem.heapUsed,
              gcMem.heapUsed,
            ],
            ["external (MiB)", baseMem.external, mem.external, gcMem.external],
          ].map(([name, base, now, gc]) => [
            name as string,
            mib(base as number),
            mib(now as number),
            mib(gc as number),
            `${
              fmt(
                ((gc as number) - (base as number)) / clients.length / 1024,
                1,
              )
            } KiB`,
          ]),
          ["l", "r", "r", "r", "r"],
        ),
        "",
      );
    }
  }
} finally {
  await ourServer?.stop();
  await sshd.stop();
  await Deno.remove(dir, { recursive: true });
}

// --- Output ---------------------------------------------------------------

if (goals.length) {
  markdown.push(
    "### Goals of issue 6 (ratios from this run)\n",
    markdownTable(["goal", "measured", ""], goals, ["l", "r", "l"]),
    "",
  );
}
const header = `Measured ${date} on ${machine}, 127.0.0.1.\n\n` +
  `Reproduce: \`deno task bench:e2e${
    Deno.args.filter((a) => a !== "--no-write" && a !== "--update-readme").map((
      a,
    ) => " " + a).join("")
  }\`` +
  ` (ssh2: \`mkdir -p .tmp/ssh2 && npm install --prefix .tmp/ssh2 ssh2\`).\n`;
const report = header + "\n" + markdown.join("\n");
console.log("\n" + report);
if (!values["no-write"]) {
  const out = values.out;
  await Deno.mkdir(out, { recursive: true });
  await Deno.writeTextFile(
    `${out}/bench_e2e.md`,
    "<!-- Written by `deno task bench:e2e`; do not edit. -->\n\n" + report,
  );
  await Deno.writeTextFile(
    `${out}/bench_e2e.json`,
    JSON.stringify(raw, null, 2) + "\n",
  );
  if (charts.length) {
    await Deno.writeTextFile(
      `${out}/bench_e2e.svg`,
      svgCharts(charts, `Measured ${date.slice(0, 10)}; ${machine}`),
    );
  }
  console.log(
    `Wrote ${out}/bench_e2e.md, ${out}/bench_e2e.json${
      charts.length ? `, ${out}/bench_e2e.svg` : ""
    }`,
  );
}
if (values["update-readme"]) {
  const readme = new URL("../README.md", import.meta.url);
  const textNow = await Deno.readTextFile(readme);
  const begin = "<!-- bench:e2e begin -->";
  const end = "<!-- bench:e2e end -->";
  const a = textNow.indexOf(begin);
  const b = textNow.indexOf(end);
  if (a < 0 || b < a) {
    console.error(`README.md has no ${begin} ... ${end} markers`);
    Deno.exit(1);
  }
  await Deno.writeTextFile(
    readme,
    textNow.slice(0, a + begin.length) + "\n\n" +
      report.replaceAll("### ", "#### ").trim() + "\n\n" + textNow.slice(b),
  );
  console.log("Updated README.md");
}
// Written files follow `deno fmt`, so `deno task check` stays clean.
const written = [
  ...(values["no-write"] ? [] : [
    `${values.out}/bench_e2e.md`,
    `${values.out}/bench_e2e.json`,
    ...(charts.length ? [`${values.out}/bench_e2e.svg`] : []),
  ]),
  ...(values["update-readme"]
    ? [new URL("../README.md", import.meta.url).pathname]
    : []),
];
if (written.length) {
  await run(DENO, ["fmt", "-q", ...written]).catch(() => {});
}
