/**
 * Agent forwarding (OpenSSH PROTOCOL.agent): the client asks with
 * `auth-agent-req@openssh.com` on a session; the server then offers a Unix
 * socket to the session's commands (`SSH_AUTH_SOCK`) and opens one
 * `auth-agent@openssh.com` channel back to the client per connection to it;
 * the client joins each channel to its local agent.
 *
 * The forwarded bytes are agent protocol frames between the remote program
 * and the local agent; neither side here parses them.
 *
 * @module
 */
import type { Connection } from "../connection/connection.ts";
import type { ByteChannel, IncomingChannel } from "../connection/channel.ts";
import type { ClientSession, ServerSession } from "../connection/session.ts";
import { ChannelOpenFailure } from "../wire/messages.ts";
import { pipeChannel } from "../forward/pipe.ts";

/** Channel type of a forwarded agent connection (OpenSSH PROTOCOL.agent). */
export const AGENT_CHANNEL_TYPE = "auth-agent@openssh.com";

const DEFAULT_MAX_CONNECTIONS = 64;

/** Options for {@linkcode forwardAgent}. */
export interface ForwardAgentOptions {
  /**
   * The session to ask on; ask before its `exec` or `shell`, so the
   * command finds `SSH_AUTH_SOCK`.
   */
  session: ClientSession;
  /**
   * The local agent's Unix socket.
   *
   * @default {the SSH_AUTH_SOCK environment variable}
   */
  socketPath?: string;
  /**
   * Ask the server for a reply and resolve with it. OpenSSH's `ssh` asks
   * without one.
   *
   * @default {false}
   */
  wantReply?: boolean;
  /**
   * Most forwarded agent connections open at once on this connection;
   * further opens are refused with RESOURCE_SHORTAGE.
   *
   * @default {64}
   */
  maxConnections?: number;
}

/** Anything that has a client-side connection: `SshClient` or a `Connection`. */
export type ConnectionHolder = Connection | {
  readonly connection: Connection;
};

interface ForwardState {
  socketPath: string;
  maxConnections: number;
  /** Sessions whose request went out and was not refused. */
  requests: number;
  active: number;
}

const forwarded = new WeakMap<Connection, ForwardState>();

function connectionOf(holder: ConnectionHolder): Connection {
  const c = "connection" in holder ? holder.connection : holder;
  if (c === null || typeof c !== "object" || !("onChannelOpen" in c)) {
    throw new TypeError(
      "Cannot forward agent: expected an SshClient or a Connection",
    );
  }
  return c;
}

function serveAgentChannel(
  state: ForwardState,
  incoming: IncomingChannel,
): void {
  if (state.requests === 0) {
    // Agent forwarding was asked for and refused: nothing to serve.
    incoming.reject(
      ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED,
      "Agent forwarding was not requested",
    );
    return;
  }
  if (state.active >= state.maxConnections) {
    incoming.reject(
      ChannelOpenFailure.RESOURCE_SHORTAGE,
      `Too many forwarded agent connections (limit ${state.maxConnections})`,
    );
    return;
  }
  state.active++;
  const done = () => state.active--;
  Deno.connect({ transport: "unix", path: state.socketPath }).then(
    (socket) => {
      let channel: ByteChannel;
      try {
        channel = incoming.accept();
      } catch {
        socket.close();
        done();
        return;
      }
      pipeChannel(channel, socket).finally(done);
    },
    () => {
      done();
      incoming.reject(
        ChannelOpenFailure.CONNECT_FAILED,
        "Could not connect to the local agent",
      );
    },
  );
}

/**
 * Forwards the local ssh-agent to the server for `options.session`, as
 * `ssh -A` does: sends `auth-agent-req@openssh.com` on the session, and
 * from then on accepts the server's `auth-agent@openssh.com` channel opens
 * on this connection, joining each to a new connection to the agent's Unix
 * socket. Without a call to this function every such open is refused
 * (a server must not reach our agent unless we asked).
 *
 * Resolves with the server's answer when `wantReply` is set, else `true`
 * once the request is sent. Forwarding lasts until the connection closes.
 * Other channel types go to the connection's previous `onChannelOpen`
 * handler; set handlers of your own before calling this.
 *
 * Needs `--allow-net` (or `--allow-net=unix:<socket>`) and read/write
 * access to the agent's socket.
 *
 * @example Both sides, with a stand-in agent that holds no keys
 * ```ts
 * import { connect } from "@fynx/ssh/client";
 * import { acceptConnection } from "@fynx/ssh/server";
 * import { generatePrivateKey, memoryDuplexPair } from "@fynx/ssh";
 * import { type AgentSocket, AgentClient, forwardAgent, listenAgentSocket } from "@fynx/ssh/agent";
 * import assert from "node:assert/strict";
 *
 * // The "local agent": answers REQUEST_IDENTITIES with an empty list.
 * const dir = await Deno.makeTempDir();
 * const localAgent = Deno.listen({ transport: "unix", path: `${dir}/agent` });
 * const agentDone = (async () => {
 *   for await (const conn of localAgent) {
 *     await conn.read(new Uint8Array(5)); // uint32 1, byte 11
 *     await conn.write(new Uint8Array([0, 0, 0, 5, 12, 0, 0, 0, 0]));
 *     conn.close();
 *   }
 * })();
 *
 * const [a, b] = memoryDuplexPair();
 * let remote: AgentSocket | undefined;
 * const server = await acceptConnection(b, {
 *   hostKeys: [generatePrivateKey("ed25519")],
 *   password: () => true,
 *   onSession: (session) => {
 *     session.onRequest = async (req) => {
 *       if (req.type === "auth-agent-req@openssh.com") {
 *         remote = await listenAgentSocket(session); // SSH_AUTH_SOCK
 *         return true;
 *       }
 *       if (req.type !== "exec") return false;
 *       (async () => {
 *         // What `ssh-add -l` does on the server.
 *         const agent = await AgentClient.connect(remote!.path);
 *         const keys = await agent.listIdentities();
 *         agent.close();
 *         await session.exit(keys.length === 0 ? 1 : 0);
 *       })();
 *       return true;
 *     };
 *   },
 * });
 * const client = await connect({
 *   transport: a,
 *   username: "me",
 *   password: "pw",
 *   verifyHostKey: () => true,
 * });
 * const session = await client.openSession();
 * await forwardAgent(client, { session, socketPath: `${dir}/agent` });
 * await session.exec("ssh-add -l");
 * assert.equal((await session.exit).code, 1); // "no identities"
 * await client.close();
 * await server.closed;
 * await remote!.closed; // the server removed its socket directory
 * localAgent.close();
 * await agentDone;
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @example Run `ssh-add -l` on the server with the local agent's keys
 * ```ts ignore
 * import { connect } from "@fynx/ssh/client";
 * import { forwardAgent } from "@fynx/ssh/agent";
 *
 * const client = await connect({ hostname: "example.com", username: "me", ... });
 * const session = await client.openSession();
 * await forwardAgent(client, { session }); // local agent: $SSH_AUTH_SOCK
 * await session.exec("ssh-add -l");
 * await session.stdout.pipeTo(Deno.stdout.writable);
 * ```
 */
export async function forwardAgent(
  client: ConnectionHolder,
  options: ForwardAgentOptions,
): Promise<boolean> {
  const connection = connectionOf(client);
  const session = options?.session;
  if (
    session === null || typeof session !== "object" ||
    typeof session.requestAgentForwarding !== "function"
  ) {
    throw new TypeError("Cannot forward agent: options.session is required");
  }
  const socketPath = options.socketPath ?? Deno.env.get("SSH_AUTH_SOCK");
  if (typeof socketPath !== "string" || socketPath === "") {
    throw new TypeError(
      "Cannot forward agent: no socketPath given and SSH_AUTH_SOCK is not set",
    );
  }
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  if (!Number.isInteger(maxConnections) || maxConnections < 1) {
    throw new RangeError(
      `Cannot forward agent: maxConnections must be a positive integer, got ${maxConnections}`,
    );
  }
  let state = forwarded.get(connection);
  if (state === undefined) {
    const s: ForwardState = {
      socketPath,
      maxConnections,
      requests: 0,
      active: 0,
    };
    const previous = connection.onChannelOpen;
    connection.onChannelOpen = (incoming) => {
      if (incoming.type === AGENT_CHANNEL_TYPE) {
        serveAgentChannel(s, incoming);
      } else if (previous !== undefined) {
        previous(incoming);
      } else {
        incoming.reject(
          ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE,
          `Unsupported channel type ${incoming.type.slice(0, 64)}`,
        );
      }
    };
    forwarded.set(connection, s);
    state = s;
  } else {
    // The latest request says which agent to use from now on.
    state.socketPath = socketPath;
    state.maxConnections = maxConnections;
  }
  // Counted before sending: the server may open a channel as soon as it
  // has the request.
  state.requests++;
  let accepted: boolean;
  try {
    accepted = await session.requestAgentForwarding({
      wantReply: options.wantReply === true,
    });
  } catch (e) {
    state.requests--;
    throw e;
  }
  if (!accepted) state.requests--;
  return accepted;
}

/** Options for {@linkcode listenAgentSocket}. */
export interface AgentSocketOptions {
  /**
   * Directory in which the per-session directory is made.
   *
   * @default {Deno.makeTempDir's default: $TMPDIR, else /tmp}
   */
  tempDir?: string;
  /**
   * Most forwarded agent connections open at once; more are closed right
   * after they connect.
   *
   * @default {64}
   */
  maxConnections?: number;
}

/** A listening forwarded-agent socket made by {@linkcode listenAgentSocket}. */
export interface AgentSocket {
  /** The socket's path: the value for `SSH_AUTH_SOCK`. */
  readonly path: string;
  /** The directory (mode 0700) holding the socket; removed by close(). */
  readonly directory: string;
  /** Resolves once closed and removed. */
  readonly closed: Promise<void>;
  /**
   * Stops listening, closes the forwarded connections still open and
   * removes the socket and its directory. Idempotent.
   */
  close(): Promise<void>;
}

/**
 * The server side of agent forwarding (what sshd does for
 * `auth-agent-req@openssh.com`): makes a directory with an unpredictable
 * name and mode 0700 under `tempDir`, listens on a Unix socket in it, and
 * for each connection to it opens an `auth-agent@openssh.com` channel to
 * the client and joins the two. Put {@linkcode AgentSocket.path} in the
 * session's `SSH_AUTH_SOCK`.
 *
 * Everything is closed and removed when the session closes (or the
 * connection ends), or earlier with {@linkcode AgentSocket.close}. Call it
 * only after the client asked for forwarding on `session`, and when the
 * user may forward (authorized_keys `no-agent-forwarding` / `restrict`):
 * `commandSessionHandler` does both checks.
 *
 * Needs `--allow-net` (Deno asks for net access to `unix:<path>`, and the
 * path is not known in advance) and write access to `tempDir`.
 *
 * @example In a session handler
 * ```ts ignore
 * import type { ServerSession } from "@fynx/ssh/server";
 * import { listenAgentSocket } from "@fynx/ssh/agent";
 *
 * function onSession(session: ServerSession): void {
 *   const env: Record<string, string> = {};
 *   session.onRequest = async (req) => {
 *     if (req.type === "auth-agent-req@openssh.com") {
 *       env.SSH_AUTH_SOCK = (await listenAgentSocket(session)).path;
 *       return true;
 *     }
 *     // ... exec with `env` ...
 *     return false;
 *   };
 * }
 * ```
 */
export async function listenAgentSocket(
  session: ServerSession,
  options: AgentSocketOptions = {},
): Promise<AgentSocket> {
  if (
    session === null || typeof session !== "object" ||
    typeof session.openChannel !== "function"
  ) {
    throw new TypeError("Cannot listen for agent: not a ServerSession");
  }
  const max = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  if (!Number.isInteger(max) || max < 1) {
    throw new RangeError(
      `Cannot listen for agent: maxConnections must be a positive integer, got ${max}`,
    );
  }
  const directory = await Deno.makeTempDir({
    dir: options.tempDir,
    prefix: "fynx-agent-",
  });
  let listener: Deno.Listener<Deno.UnixConn, Deno.UnixAddr>;
  const path = `${directory}/agent.sock`;
  try {
    // makeTempDir already uses 0700; make sure whatever the umask.
    await Deno.chmod(directory, 0o700);
    listener = Deno.listen({ transport: "unix", path });
  } catch (e) {
    await Deno.remove(directory, { recursive: true }).catch(() => {});
    throw e;
  }
  const sockets = new Set<Deno.Conn>();
  const joins = new Set<Promise<void>>();
  let stopping = false;

  const serve = (socket: Deno.Conn): void => {
    if (stopping || sockets.size >= max) {
      socket.close();
      return;
    }
    sockets.add(socket);
    const join = session.openChannel(AGENT_CHANNEL_TYPE).then(
      (channel) => pipeChannel(channel, socket),
      () => {
        // The client refused (or the connection is gone): the program on
        // our side sees the agent hang up.
        try {
          socket.close();
        } catch {
          // Closed by close().
        }
      },
    ).finally(() => {
      sockets.delete(socket);
      joins.delete(join);
    });
    joins.add(join);
  };

  const accepting = (async () => {
    for (;;) {
      let socket: Deno.Conn;
      try {
        socket = await listener.accept();
      } catch {
        return; // the listener was closed
      }
      serve(socket);
    }
  })();

  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      stopping = true;
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      await accepting;
      for (const socket of sockets) {
        try {
          socket.close();
        } catch {
          // Already closed.
        }
      }
      await Promise.all([...joins]);
      await Deno.remove(directory, { recursive: true }).catch(() => {});
      resolveClosed();
    })();
    return closing;
  };
  session.closed.then(close, close);
  return { path, directory, closed, close };
}
