/**
 * Shared test helpers: host keys made once per run, a server+client pair
 * over an in-memory duplex or TCP, and checksums.
 */
import { createHash } from "node:crypto";
import { connect, type ConnectOptions, type SshClient } from "../client.ts";
import {
  acceptConnection,
  type ServerConnection,
  type ServerConnectionOptions,
} from "../server.ts";
import { generatePrivateKey } from "../keys/mod.ts";
import type { PrivateKey } from "../keys/types.ts";
import { memoryDuplexPair } from "../transport/duplex.ts";

const keyCache = new Map<string, PrivateKey>();

/** A private key of the given kind, generated once per test run. */
export function testKey(
  type: "ed25519" | "ecdsa-p256" | "ecdsa-p384" | "ecdsa-p521" | "rsa",
): PrivateKey {
  let key = keyCache.get(type);
  if (!key) {
    key = generatePrivateKey(type, type === "rsa" ? { bits: 2048 } : undefined);
    keyCache.set(type, key);
  }
  return key;
}

/** SHA-256 hex of bytes. */
export function sha256hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * A deterministic byte source (xorshift32) that carries on where its last
 * call stopped; self-contained, so its source text can be sent to a child
 * process.
 */
export function seededRandom(
  seed: number,
): (n: number) => Uint8Array<ArrayBuffer> {
  let x = seed >>> 0 || 1;
  return (n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = x & 0xff;
    }
    return out;
  };
}

/** Deterministic pseudo-random bytes (fast, for payloads). */
export function pseudoRandomBytes(
  n: number,
  seed = 1,
): Uint8Array<ArrayBuffer> {
  return seededRandom(seed)(n);
}

export interface Pair {
  client: SshClient;
  server: ServerConnection;
  close(): Promise<void>;
}

/** Our client connected to our server over an in-memory pair or TCP. */
export async function connectPair(
  serverOptions: Partial<ServerConnectionOptions> = {},
  clientOptions: Partial<ConnectOptions> = {},
  via: "memory" | "tcp" = "memory",
): Promise<Pair> {
  const hostKeys = serverOptions.hostKeys ?? [testKey("ed25519")];
  const sOpts: ServerConnectionOptions = {
    password: ({ username, password }) =>
      username === "alice" && password === "wonderland",
    ...serverOptions,
    hostKeys,
  };
  let server: ServerConnection;
  let clientDuplex;
  let listener: Deno.Listener | null = null;
  if (via === "memory") {
    const [a, b] = memoryDuplexPair();
    server = await acceptConnection(b, sOpts);
    clientDuplex = a;
  } else {
    listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepted = listener.accept();
    clientDuplex = await Deno.connect({
      hostname: "127.0.0.1",
      port: (listener.addr as Deno.NetAddr).port,
    });
    const conn = await accepted;
    listener.close();
    server = await acceptConnection(conn, sOpts);
  }
  const client = await connect({
    transport: clientDuplex,
    username: "alice",
    password: "wonderland",
    verifyHostKey: (key) =>
      hostKeys.some((k) => k.publicKey.fingerprint() === key.fingerprint()),
    ...clientOptions,
  });
  await server.authenticated;
  return {
    client,
    server,
    async close() {
      await client.close();
      await server.closed;
    },
  };
}
