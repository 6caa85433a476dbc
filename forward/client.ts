/**
 * The client side of forwarding: channels to targets the server reaches
 * (`direct-tcpip`, `direct-streamlocal@openssh.com`), listeners on the
 * server (`tcpip-forward`, `streamlocal-forward@openssh.com`) whose
 * connections come back as channels, and the `ssh -L` / `ssh -R` helpers
 * that join those channels to local sockets.
 *
 * @module
 */
import type { ByteChannel, IncomingChannel } from "../connection/channel.ts";
import type { Connection } from "../connection/connection.ts";
import { ChannelOpenError } from "../errors.ts";
import { ChannelOpenFailure } from "../wire/messages.ts";
import {
  bindTcp,
  clientBindPlan,
  connectTo,
  errorText,
  hostPort,
} from "./_net.ts";
import {
  CANCEL_STREAMLOCAL_FORWARD,
  CANCEL_TCPIP_FORWARD,
  decodeAllocatedPort,
  decodeForwardedStreamLocal,
  decodeTcpipOpen,
  DIRECT_STREAMLOCAL,
  DIRECT_TCPIP,
  encodeDirectStreamLocal,
  encodeStreamLocalForward,
  encodeTcpipForward,
  encodeTcpipOpen,
  FORWARDED_STREAMLOCAL,
  FORWARDED_TCPIP,
  STREAMLOCAL_FORWARD,
  TCPIP_FORWARD,
} from "./_wire.ts";
import { pipeChannel } from "./pipe.ts";

/** A TCP endpoint: host name or address, and port. */
export interface TcpAddress {
  /** Host name or IP address (IPv6 without brackets). */
  hostname: string;
  /** Port, 0..65535. */
  port: number;
}

/** A Unix-domain socket. */
export interface UnixAddress {
  /** File system path of the socket. */
  path: string;
}

/** Where a forwarded connection goes: a TCP endpoint or a Unix socket. */
export type ForwardTarget = TcpAddress | UnixAddress;

/**
 * What the forwarding helpers need of a connection: its connection layer
 * and a promise that settles when it ends. An `SshClient` is one.
 */
export interface ForwardingConnection {
  /** The connection layer that carries the channels. */
  readonly connection: Connection;
  /** Settles once the connection has ended. */
  readonly closed: Promise<unknown>;
}

/** Facts about one connection that arrived at a remote listener. */
export interface ForwardedConnectionInfo {
  /**
   * For TCP: the listen address and port as the server reports them; for
   * a Unix socket: its path.
   */
  listener: TcpAddress | UnixAddress;
  /** Address of the peer that connected to the server (TCP only). */
  originatorAddress?: string;
  /** Port of the peer that connected to the server (TCP only). */
  originatorPort?: number;
}

function checkPort(port: unknown, what: string, allowZero: boolean): number {
  if (
    typeof port !== "number" || !Number.isInteger(port) ||
    port < (allowZero ? 0 : 1) || port > 65535
  ) {
    throw new TypeError(
      `Invalid ${what}: ${String(port)} is not within ${
        allowZero ? 0 : 1
      }..65535`,
    );
  }
  return port;
}

function checkTarget(target: ForwardTarget, what: string): ForwardTarget {
  if (target !== null && typeof target === "object" && "path" in target) {
    if (typeof target.path !== "string" || target.path === "") {
      throw new TypeError(`Invalid ${what}: empty socket path`);
    }
    return target;
  }
  if (
    target === null || typeof target !== "object" ||
    typeof target.hostname !== "string" || target.hostname === ""
  ) {
    throw new TypeError(
      `Invalid ${what}: expected { hostname, port } or { path }`,
    );
  }
  checkPort(target.port, `${what} port`, false);
  return target;
}

/** `host:port` or the socket path, for messages. */
export function targetText(target: ForwardTarget): string {
  return "path" in target
    ? target.path
    : hostPort(target.hostname, target.port);
}

/**
 * Opens a channel to `target` through the server: `direct-tcpip` for a
 * TCP endpoint (RFC 4254 section 7.2), `direct-streamlocal@openssh.com` for
 * a Unix socket on the server (OpenSSH PROTOCOL section 2.4). The server
 * connects before it confirms, so a resolved channel is connected.
 *
 * @throws {ChannelOpenError} the server refused or could not connect; the
 * message names the target and the server's reason.
 *
 * @example Fetch a page from a host only the server can reach
 * ```ts ignore
 * import { connect } from "@fynx/ssh";
 * import { openDirect } from "@fynx/ssh/forward";
 *
 * const client = await connect({ hostname: "bastion", username: "me", ... });
 * const channel = await openDirect(client, { hostname: "intranet", port: 80 });
 * const w = channel.writable.getWriter();
 * await w.write(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
 * await w.close(); // half-close: the reply still arrives
 * console.log(await new Response(channel.readable).text());
 * ```
 */
export async function openDirect(
  client: ForwardingConnection,
  target: ForwardTarget,
  originator: TcpAddress = { hostname: "127.0.0.1", port: 0 },
): Promise<ByteChannel> {
  checkTarget(target, "target");
  const type = "path" in target ? DIRECT_STREAMLOCAL : DIRECT_TCPIP;
  const data = "path" in target
    ? encodeDirectStreamLocal(target.path)
    : encodeTcpipOpen({
      host: target.hostname,
      port: target.port,
      originatorAddress: originator.hostname,
      originatorPort: originator.port,
    });
  try {
    return await client.connection.openChannel(type, data);
  } catch (e) {
    if (e instanceof ChannelOpenError) {
      const why = REASONS[e.reason] ?? `reason ${e.reason}`;
      throw new ChannelOpenError(
        e.reason,
        `Cannot forward to ${targetText(target)}: ${why}${
          e.description ? `: ${e.description}` : ""
        }`,
        e.description,
      );
    }
    throw e;
  }
}

/** Reason codes of RFC 4254 section 5.1 as OpenSSH words them. */
const REASONS: Record<number, string> = {
  [ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED]:
    "administratively prohibited",
  [ChannelOpenFailure.CONNECT_FAILED]: "connect failed",
  [ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE]: "unknown channel type",
  [ChannelOpenFailure.RESOURCE_SHORTAGE]: "resource shortage",
};

// ---- incoming forwarded channels -------------------------------------------

type Handler = (
  channel: IncomingChannel,
  info: ForwardedConnectionInfo,
) => void;

interface TcpEntry {
  address: string;
  port: number; // the port the server listens on (allocated when 0 was asked)
  handler: Handler;
}

/**
 * Routes the server's `forwarded-tcpip` and `forwarded-streamlocal` opens
 * on one connection to the listener that asked for them. Installed once per
 * connection in front of any earlier `onChannelOpen` handler, which still
 * gets every other channel type (agent forwarding, ...).
 */
class Dispatcher {
  readonly tcp = new Set<TcpEntry>();
  readonly unix = new Map<string, Handler>();

  constructor(connection: Connection) {
    const previous = connection.onChannelOpen;
    connection.onChannelOpen = (channel) => {
      if (channel.type === FORWARDED_TCPIP) return this.#tcp(channel);
      if (channel.type === FORWARDED_STREAMLOCAL) return this.#unix(channel);
      if (previous !== undefined) return previous(channel);
      channel.reject(
        ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE,
        `Unsupported channel type ${channel.type.slice(0, 64)}`,
      );
    };
  }

  #tcp(channel: IncomingChannel): void {
    let open;
    try {
      open = decodeTcpipOpen(channel.data, FORWARDED_TCPIP);
    } catch (e) {
      channel.reject(
        ChannelOpenFailure.CONNECT_FAILED,
        (e as Error).message,
      );
      return;
    }
    // Match address and port as sent (what OpenSSH's server reports); a
    // server that reports its bound address instead still finds the one
    // forward on that port.
    let entry: TcpEntry | undefined;
    const onPort = [...this.tcp].filter((e) => e.port === open.port);
    entry = onPort.find((e) => e.address === open.host);
    if (entry === undefined && onPort.length === 1) entry = onPort[0];
    if (entry === undefined) {
      channel.reject(
        ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED,
        `No remote forward was requested for ${hostPort(open.host, open.port)}`,
      );
      return;
    }
    entry.handler(channel, {
      listener: { hostname: open.host, port: open.port },
      originatorAddress: open.originatorAddress,
      originatorPort: open.originatorPort,
    });
  }

  #unix(channel: IncomingChannel): void {
    let path: string;
    try {
      path = decodeForwardedStreamLocal(channel.data);
    } catch (e) {
      channel.reject(ChannelOpenFailure.CONNECT_FAILED, (e as Error).message);
      return;
    }
    const handler = this.unix.get(path);
    if (handler === undefined) {
      channel.reject(
        ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED,
        `No remote forward was requested for ${path.slice(0, 256)}`,
      );
      return;
    }
    handler(channel, { listener: { path } });
  }
}

const dispatchers = new WeakMap<Connection, Dispatcher>();

function dispatcherFor(connection: Connection): Dispatcher {
  let d = dispatchers.get(connection);
  if (d === undefined) {
    d = new Dispatcher(connection);
    dispatchers.set(connection, d);
  }
  return d;
}

/** Where a remote listener should listen on the server. */
export type RemoteBind =
  | {
    /**
     * Address for the server to bind, sent as is (RFC 4254 section 7.1):
     * `"localhost"` is loopback, `""` every interface; the server's
     * GatewayPorts may override it.
     * @default {"localhost"}
     */
    hostname?: string;
    /** Port; 0 asks the server to pick one (see `RemoteListener.port`). */
    port: number;
  }
  | UnixAddress;

/** Options for {@linkcode listenRemote}. */
export interface ListenRemoteOptions {
  /** Where the server listens. */
  bind: RemoteBind;
  /**
   * Called for each connection to the server's listener, with the channel
   * open still pending: accept it (and use the channel) or reject it.
   */
  onConnection: (
    channel: IncomingChannel,
    info: ForwardedConnectionInfo,
  ) => void;
}

/** A listener on the server (`ssh -R`). */
export interface RemoteListener {
  /**
   * Where the server listens: for TCP the address as requested and the
   * port it listens on (the allocated one when port 0 was asked).
   */
  readonly address: TcpAddress | UnixAddress;
  /**
   * The port the server listens on (the allocated one when 0 was asked);
   * 0 for a Unix socket.
   */
  readonly port: number;
  /** Resolves once the listener is cancelled or the connection ended. */
  readonly closed: Promise<void>;
  /**
   * Asks the server to stop listening (`cancel-tcpip-forward`) and closes
   * every connection this listener forwarded. Resolves once done.
   */
  close(): Promise<void>;
  /** Same as {@linkcode RemoteListener.close}. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Asks the server to listen (`tcpip-forward`, RFC 4254 section 7.1, or
 * `streamlocal-forward@openssh.com` for a Unix socket) and hands each
 * connection it accepts to `onConnection` as a pending channel open.
 * Opens for listeners nobody asked for are refused.
 *
 * @throws {Error} the server refused (the message names the address).
 */
export async function listenRemote(
  client: ForwardingConnection,
  options: ListenRemoteOptions,
): Promise<RemoteListener> {
  const { bind, onConnection } = options;
  if (typeof onConnection !== "function") {
    throw new TypeError("Invalid onConnection: not a function");
  }
  const connection = client.connection;
  const dispatcher = dispatcherFor(connection);
  const live = new Set<ByteChannel>();
  const handler: Handler = (channel, info) => {
    if (stopped) {
      channel.reject(
        ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED,
        "The forward is being cancelled",
      );
      return;
    }
    // Track what the application accepts so close() can close it.
    const accept = channel.accept.bind(channel);
    const tracked: IncomingChannel = {
      type: channel.type,
      data: channel.data,
      reject: channel.reject.bind(channel),
      accept: () => {
        const c = accept();
        live.add(c);
        c.closed.then(() => live.delete(c));
        return c;
      },
    };
    onConnection(tracked, info);
  };
  let stopped = false;
  let address: TcpAddress | UnixAddress;
  let cancel: () => Promise<unknown>;
  let unregister: () => void;
  if ("path" in bind) {
    if (typeof bind.path !== "string" || bind.path === "") {
      throw new TypeError("Invalid bind: empty socket path");
    }
    const path = bind.path;
    if (dispatcher.unix.has(path)) {
      throw new Error(`Cannot listen on ${path} twice on one connection`);
    }
    dispatcher.unix.set(path, handler);
    unregister = () => {
      if (dispatcher.unix.get(path) === handler) dispatcher.unix.delete(path);
    };
    let reply: Uint8Array | null;
    try {
      reply = await connection.globalRequest(
        STREAMLOCAL_FORWARD,
        encodeStreamLocalForward(path),
      );
    } catch (e) {
      unregister();
      throw e;
    }
    if (reply === null) {
      unregister();
      throw new Error(
        `Remote forwarding of ${path} refused by the server`,
      );
    }
    address = { path };
    cancel = () =>
      connection.globalRequest(
        CANCEL_STREAMLOCAL_FORWARD,
        encodeStreamLocalForward(path),
      );
  } else {
    const hostname = bind.hostname ?? "localhost";
    if (typeof hostname !== "string") {
      throw new TypeError(`Invalid bind hostname: ${String(hostname)}`);
    }
    const asked = checkPort(bind.port, "bind port", true);
    // Registered before the request goes out; a port-0 entry matches no
    // open until the reply says which port it got.
    const entry: TcpEntry = { address: hostname, port: asked || -1, handler };
    dispatcher.tcp.add(entry);
    unregister = () => dispatcher.tcp.delete(entry);
    let reply: Uint8Array | null;
    try {
      reply = await connection.globalRequest(
        TCPIP_FORWARD,
        encodeTcpipForward(hostname, asked),
      );
      if (reply !== null && asked === 0) {
        entry.port = decodeAllocatedPort(reply);
      }
    } catch (e) {
      unregister();
      throw e;
    }
    if (reply === null) {
      unregister();
      throw new Error(
        `Remote port forwarding failed for listen port ${asked}${
          hostname ? ` on ${hostname}` : ""
        }: refused by the server`,
      );
    }
    address = { hostname, port: entry.port };
    cancel = () =>
      connection.globalRequest(
        CANCEL_TCPIP_FORWARD,
        encodeTcpipForward(hostname, entry.port),
      );
  }
  let finished: Promise<void> | null = null;
  const { promise: closed, resolve: resolveClosed } = Promise.withResolvers<
    void
  >();
  const close = (): Promise<void> => {
    finished ??= (async () => {
      stopped = true;
      try {
        if (!connection.isClosed) await cancel();
      } catch {
        // The connection ended meanwhile: the server stopped listening.
      }
      unregister();
      await Promise.all([...live].map((c) => c.close()));
      resolveClosed();
    })();
    return finished;
  };
  client.closed.then(() => close(), () => close());
  return {
    address,
    port: "port" in address ? address.port : 0,
    closed,
    close,
    [Symbol.asyncDispose]: close,
  };
}

// ---- -L and -R helpers ----------------------------------------------------

/** Options for {@linkcode forwardLocal}. */
export interface ForwardLocalOptions {
  /**
   * Where to listen locally. TCP `hostname`: `"localhost"` is loopback in
   * both address families, `""` or `"*"` every interface; port 0 picks a
   * free port (see `LocalForward.addr`).
   * @default {{ hostname: "localhost" }}
   */
  listen: { hostname?: string; port: number } | UnixAddress;
  /** Where the server connects each forwarded connection. */
  target: ForwardTarget;
  /**
   * Called when one forwarded connection fails (the server refused or
   * could not connect); that local connection is closed. Default: ignored.
   */
  onError?: (error: Error) => void;
}

/** A local listener whose connections are forwarded through the server. */
export interface LocalForward {
  /** The local address it listens on (the first, when several). */
  readonly addr: Deno.Addr;
  /** Every local address it listens on. */
  readonly addrs: readonly Deno.Addr[];
  /** Connections being forwarded now. */
  readonly connections: number;
  /** Resolves once closed (by `close()` or because the connection ended). */
  readonly closed: Promise<void>;
  /** Stops listening and closes every forwarded connection. */
  close(): Promise<void>;
  /** Same as {@linkcode LocalForward.close}. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Runs local listeners and hands each accepted socket to `handle`; the
 * common part of `-L` and `-D`. Everything closes with the connection.
 */
export function serveLocal(
  client: ForwardingConnection,
  listen: { hostname?: string; port: number } | UnixAddress,
  handle: (socket: Deno.Conn) => Promise<void>,
): LocalForward {
  let listeners: Deno.Listener[];
  if ("path" in listen) {
    if (typeof listen.path !== "string" || listen.path === "") {
      throw new TypeError("Invalid listen: empty socket path");
    }
    listeners = [Deno.listen({ transport: "unix", path: listen.path })];
  } else {
    const port = checkPort(listen.port, "listen port", true);
    listeners = bindTcp(
      clientBindPlan(listen.hostname ?? "localhost", false),
      port,
    );
  }
  const sockets = new Set<Deno.Conn>();
  const running = new Set<Promise<void>>();
  let stopping = false;
  const loops = listeners.map(async (listener) => {
    for (;;) {
      let socket: Deno.Conn;
      try {
        socket = await listener.accept();
      } catch {
        return;
      }
      if (stopping) {
        socket.close();
        return;
      }
      if (socket.remoteAddr.transport === "tcp") {
        (socket as Deno.TcpConn).setNoDelay(true);
      }
      sockets.add(socket);
      const p = handle(socket).catch(() => {}).finally(() => {
        sockets.delete(socket);
        try {
          socket.close();
        } catch {
          // Closed by the handler.
        }
        running.delete(p);
      });
      running.add(p);
    }
  });
  let finished: Promise<void> | null = null;
  const { promise: closed, resolve: resolveClosed } = Promise.withResolvers<
    void
  >();
  const close = (): Promise<void> => {
    finished ??= (async () => {
      stopping = true;
      for (const l of listeners) {
        try {
          l.close();
        } catch {
          // Already closed.
        }
      }
      await Promise.all(loops);
      // Closing the sockets ends their pipes, which close the channels.
      for (const s of sockets) {
        try {
          s.close();
        } catch {
          // Already closed.
        }
      }
      await Promise.all([...running]);
      resolveClosed();
    })();
    return finished;
  };
  client.closed.then(() => close(), () => close());
  return {
    addr: listeners[0].addr,
    addrs: listeners.map((l) => l.addr),
    get connections() {
      return sockets.size;
    },
    closed,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * `ssh -L`: listens locally and forwards each connection through the
 * server to `target` (a TCP endpoint or a Unix socket the server reaches),
 * piping both ways with backpressure and half-close. Closing it, or the
 * connection ending, closes every socket it opened.
 *
 * @throws {Deno.errors.AddrInUse} and other bind errors, synchronously
 * from the returned promise.
 *
 * @example Forward local port 8080 to port 80 of a host behind the server
 * ```ts ignore
 * import { connect } from "@fynx/ssh";
 * import { forwardLocal } from "@fynx/ssh/forward";
 *
 * const client = await connect({ hostname: "bastion", username: "me", ... });
 * const forward = await forwardLocal(client, {
 *   listen: { hostname: "127.0.0.1", port: 8080 },
 *   target: { hostname: "intranet", port: 80 },
 *   onError: (e) => console.error(e.message),
 * });
 * // ... later
 * await forward.close();
 * ```
 */
export function forwardLocal(
  client: ForwardingConnection,
  options: ForwardLocalOptions,
): Promise<LocalForward> {
  try {
    const target = checkTarget(options.target, "target");
    const onError = options.onError ?? (() => {});
    return Promise.resolve(serveLocal(
      client,
      options.listen ?? { port: 0 },
      async (socket) => {
        const from = socket.remoteAddr;
        let channel: ByteChannel;
        try {
          channel = await openDirect(
            client,
            target,
            from.transport === "tcp"
              ? { hostname: from.hostname, port: from.port }
              : undefined,
          );
        } catch (e) {
          onError(e as Error);
          return;
        }
        await pipeChannel(channel, socket);
      },
    ));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** Options for {@linkcode forwardRemote}. */
export interface ForwardRemoteOptions {
  /** Where the server listens. */
  bind: RemoteBind;
  /** Where each forwarded connection goes, from this machine. */
  target: ForwardTarget;
  /**
   * Milliseconds to connect to `target` before refusing the channel.
   * @default {30000}
   */
  connectTimeout?: number;
  /**
   * Called when connecting to `target` failed (the channel is refused with
   * the OS error text). Default: ignored.
   */
  onError?: (error: Error) => void;
}

/**
 * `ssh -R`: asks the server to listen and connects each connection it
 * accepts to `target` from here, piping both ways. With port 0 the server
 * picks the port: read it from `address.port`. Closing it cancels the
 * server's listener and closes every socket it opened.
 *
 * @throws {Error} the server refused to listen.
 *
 * @example Publish a local web server on the server's port 8080
 * ```ts ignore
 * import { forwardRemote } from "@fynx/ssh/forward";
 *
 * const forward = await forwardRemote(client, {
 *   bind: { hostname: "localhost", port: 0 },
 *   target: { hostname: "127.0.0.1", port: 3000 },
 * });
 * console.log(`Allocated port ${forward.port}`);
 * ```
 */
export function forwardRemote(
  client: ForwardingConnection,
  options: ForwardRemoteOptions,
): Promise<RemoteListener> {
  let target: ForwardTarget;
  try {
    target = checkTarget(options.target, "target");
  } catch (e) {
    return Promise.reject(e);
  }
  const timeout = options.connectTimeout ?? 30_000;
  const onError = options.onError ?? (() => {});
  return listenRemote(client, {
    bind: options.bind,
    onConnection: (incoming) => {
      (async () => {
        let socket: Deno.Conn;
        try {
          socket = await connectTo(target, timeout);
        } catch (e) {
          const text = errorText(e);
          incoming.reject(ChannelOpenFailure.CONNECT_FAILED, text);
          onError(
            new Error(`Cannot connect to ${targetText(target)}: ${text}`, {
              cause: e,
            }),
          );
          return;
        }
        let channel: ByteChannel;
        try {
          channel = incoming.accept();
        } catch {
          socket.close();
          return;
        }
        await pipeChannel(channel, socket);
      })();
    },
  });
}
