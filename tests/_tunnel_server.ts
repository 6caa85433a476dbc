/**
 * Helpers for the tunnel server tests: a server on a loopback port, tokens,
 * and our SSH client library connected over a real WebSocket with remote
 * forwards for exposed names.
 */
import { connect, type SshClient } from "../client.ts";
import { forwardRemote } from "../forward/mod.ts";
import {
  createTunnelApp,
  type LogEvent,
  signJwt,
  type TunnelApp,
  type TunnelConfig,
  TunnelStore,
  type WebSocketDuplex,
  webSocketDuplex,
} from "../tunnel/mod.ts";
import { testKey } from "./_helpers.ts";

export const SECRET = "test secret of at least thirty-two bytes";

export interface TestServer {
  tunnel: TunnelApp;
  port: number;
  base: string;
  logs: LogEvent[];
  token(sub: string, extra?: Record<string, unknown>): Promise<string>;
  close(): Promise<void>;
}

/** The tunnel app served on 127.0.0.1 with an in-memory (or given) KV. */
export async function startServer(
  config: Partial<TunnelConfig> = {},
): Promise<TestServer> {
  const logs: LogEvent[] = [];
  const ownStore = config.store === undefined;
  const store = config.store ?? await TunnelStore.open(":memory:");
  const tunnel = await createTunnelApp({
    auth: { secret: SECRET },
    hostKey: testKey("ed25519"),
    log: (e) => {
      logs.push(e);
      if (e.level === "error") console.error(JSON.stringify(e));
    },
    pingInterval: 0,
    keepaliveInterval: 0,
    ...config,
    store,
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    tunnel.fetch,
  );
  const port = server.addr.port;
  return {
    tunnel,
    port,
    base: `http://127.0.0.1:${port}`,
    logs,
    token: (sub, extra = {}) =>
      signJwt(
        { sub, exp: Math.floor(Date.now() / 1000) + 600, ...extra },
        SECRET,
      ),
    close: async () => {
      await tunnel.shutdown({ deadline: 200 });
      if (ownStore) await store.close();
      await server.shutdown();
    },
  };
}

/** Opens a WebSocket with headers (Deno's extension) and waits for open. */
export function openWebSocket(
  url: string,
  headers: Record<string, string> = {},
): Promise<WebSocket> {
  // Deno accepts `headers` in the WebSocket options.
  const ws = new WebSocket(url, { headers } as unknown as string[]);
  ws.binaryType = "arraybuffer";
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve(ws);
    ws.onerror = (e) =>
      reject(new Error(`WebSocket failed: ${(e as ErrorEvent).message}`));
  });
}

export interface TestClient {
  client: SshClient;
  duplex: WebSocketDuplex;
  ws: WebSocket;
  close(): Promise<void>;
}

/** Our SSH client over a WebSocket to `/v1/ssh`, with names exposed. */
export async function connectClient(
  server: TestServer,
  options: {
    user?: string;
    token?: string;
    username?: string;
    expose?: Record<string, number>;
  } = {},
): Promise<TestClient> {
  const user = options.user ?? "alice";
  const token = options.token ?? await server.token(user);
  const ws = await openWebSocket(`ws://127.0.0.1:${server.port}/v1/ssh`, {
    authorization: `Bearer ${token}`,
  });
  const duplex = webSocketDuplex(ws, { pingInterval: 0 });
  const fingerprint = server.tunnel.hostKey.publicKey.fingerprint();
  const client = await connect({
    transport: duplex,
    username: options.username ?? user,
    verifyHostKey: (key) => key.fingerprint() === fingerprint,
  });
  for (const [name, port] of Object.entries(options.expose ?? {})) {
    await forwardRemote(client, {
      bind: { hostname: name, port: 0 },
      target: { hostname: "127.0.0.1", port },
    });
  }
  return {
    client,
    duplex,
    ws,
    close: async () => {
      await client.close().catch(() => {});
      duplex.close(1000, "bye");
      await duplex.closed;
    },
  };
}

/** An HTTP service on 127.0.0.1 (closed by the returned function). */
export function localService(
  handler: (req: Request) => Response | Promise<Response>,
): { port: number; close(): Promise<void> } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    handler,
  );
  return { port: server.addr.port, close: () => server.shutdown() };
}

/** Polls `check` until true (bounded). */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  ms = 5000,
  what = "condition",
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `promise`, or a rejection after `ms` (tests never hang). */
export async function within<T>(
  promise: Promise<T>,
  ms = 10_000,
  what = "promise",
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`Timed out after ${ms} ms: ${what}`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
