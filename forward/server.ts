/**
 * The server side of forwarding: connecting out for `direct-tcpip` and
 * `direct-streamlocal@openssh.com`, listening for `tcpip-forward` and
 * `streamlocal-forward@openssh.com`, with sshd's policy knobs
 * (`AllowTcpForwarding`, `AllowStreamLocalForwarding`, `GatewayPorts`,
 * `PermitOpen`, `PermitListen`), the `authorized_keys` restrictions of the
 * login, a policy hook, and limits.
 *
 * @module
 */
import type { ByteChannel, IncomingChannel } from "../connection/channel.ts";
import type { SessionRestrictions } from "../connection/session.ts";
import type { ConnectionInfo } from "../server.ts";
import { ChannelOpenFailure } from "../wire/messages.ts";
import {
  bindTcp,
  connectTo,
  errorText,
  type GatewayPorts,
  hostPort,
  serverBindPlan,
} from "./_net.ts";
import {
  listenPermitted,
  openPermitted,
  parsePermissionList,
  parsePermitListen,
  parsePermitOpen,
  type PermissionList,
} from "./_policy.ts";
import {
  CANCEL_STREAMLOCAL_FORWARD,
  CANCEL_TCPIP_FORWARD,
  decodeDirectStreamLocal,
  decodeStreamLocalForward,
  decodeTcpipForward,
  decodeTcpipOpen,
  DIRECT_STREAMLOCAL,
  DIRECT_TCPIP,
  encodeAllocatedPort,
  encodeForwardedStreamLocal,
  encodeTcpipOpen,
  FORWARDED_STREAMLOCAL,
  FORWARDED_TCPIP,
  STREAMLOCAL_FORWARD,
  TCPIP_FORWARD,
} from "./_wire.ts";
import { pipeChannel } from "./pipe.ts";

export type { GatewayPorts } from "./_net.ts";

/**
 * Which directions of a kind of forwarding are allowed, as sshd's
 * `AllowTcpForwarding` / `AllowStreamLocalForwarding` spell it: `yes` and
 * `all` both ways, `local` only `-L` (the server connects out), `remote`
 * only `-R` (the server listens), `no` neither.
 */
export type ForwardingMode = "yes" | "all" | "no" | "local" | "remote";

/** One forwarding request, as the policy hook sees it. */
export type ForwardRequest =
  | {
    /** `-L`: the client asks the server to connect to a TCP endpoint. */
    type: "direct-tcpip";
    /** Host to connect to, as the client sent it (no lookup done yet). */
    hostname: string;
    /** Port to connect to. */
    port: number;
    /** The client's idea of who connected on its side. */
    originatorAddress: string;
    /** Port on the client's side. */
    originatorPort: number;
  }
  | {
    /** `-L` to a Unix socket on the server. */
    type: "direct-streamlocal";
    /** Socket path to connect to. */
    path: string;
  }
  | {
    /** `-R`: the client asks the server to listen on TCP. */
    type: "tcpip-forward";
    /** Listen address as the client sent it (`localhost`, `""`, ...). */
    hostname: string;
    /** Port to listen on (0: the server picks). */
    port: number;
  }
  | {
    /** `-R` on a Unix socket on the server. */
    type: "streamlocal-forward";
    /** Socket path to listen on. */
    path: string;
  };

/**
 * Decides one forwarding request after the built-in rules allowed it;
 * `false` refuses it. `info.username` is the login.
 */
export type ForwardPolicy = (
  request: ForwardRequest,
  info: ConnectionInfo,
) => boolean | Promise<boolean>;

/** Options for {@linkcode serverForwarding}. */
export interface ServerForwardingOptions {
  /**
   * sshd `AllowTcpForwarding`.
   * @default {"yes"}
   */
  allowTcpForwarding?: ForwardingMode;
  /**
   * sshd `AllowStreamLocalForwarding` (Unix sockets).
   * @default {"yes"}
   */
  allowStreamLocalForwarding?: ForwardingMode;
  /**
   * sshd `GatewayPorts`: `no` binds remote forwards to loopback whatever
   * the client asked (an explicit `127.0.0.1` or `::1` picks that family),
   * `yes` binds every interface, `clientspecified` binds what the client
   * asked (`""` or `*` every interface, `localhost` loopback).
   * @default {"no"}
   */
  gatewayPorts?: GatewayPorts;
  /**
   * sshd `PermitOpen`: `host:port` destinations `-L` may reach (`*` for
   * any host or port, `[v6]:port`), or `["any"]` / `["none"]`. With
   * `authorized_keys` `permitopen=` both lists must allow a destination.
   * @default {["any"]}
   */
  permitOpen?: readonly string[];
  /**
   * sshd `PermitListen`: `[host:]port` addresses `-R` may listen on (a
   * bare port means any host; hosts are `*`/`?` patterns), or `["any"]` /
   * `["none"]`. Checked against the address the client sent, before
   * GatewayPorts applies, as sshd does.
   * @default {["any"]}
   */
  permitListen?: readonly string[];
  /** Decides each request the rules above allowed (by host, port, path, user). */
  allow?: ForwardPolicy;
  /**
   * Listeners (`-R`) one connection may hold at once.
   * @default {64}
   */
  maxListeners?: number;
  /**
   * Forwarded connections (both directions) one connection may carry at
   * once; further ones are refused (`-L`) or dropped (`-R`).
   * @default {256}
   */
  maxChannels?: number;
  /**
   * Milliseconds to connect to a `-L` destination before the open fails.
   * @default {30000}
   */
  connectTimeout?: number;
  /** Called when a request is refused or fails, for logs. */
  onRefused?: (
    request: ForwardRequest,
    reason: string,
    info: ConnectionInfo,
  ) => void;
}

/**
 * The handlers to give `serve()` / `acceptConnection()` (spread them into
 * the options).
 */
export interface ServerForwarding {
  /** Handles `direct-tcpip` and `direct-streamlocal@openssh.com` opens. */
  onChannelOpen(channel: IncomingChannel, info: ConnectionInfo): void;
  /** Handles the `tcpip-forward` and `streamlocal-forward` requests. */
  onGlobalRequest(
    name: string,
    data: Uint8Array,
    info: ConnectionInfo,
  ): Promise<boolean | Uint8Array>;
}

const MODES = ["yes", "all", "no", "local", "remote"];

function allows(mode: ForwardingMode, direction: "local" | "remote"): boolean {
  return mode === "yes" || mode === "all" || mode === direction;
}

function checkMode(value: unknown, what: string): ForwardingMode {
  const v = value ?? "yes";
  if (typeof v !== "string" || !MODES.includes(v)) {
    throw new TypeError(
      `Invalid ${what}: ${JSON.stringify(v)} is not one of ${MODES.join(", ")}`,
    );
  }
  return v as ForwardingMode;
}

function checkCount(value: unknown, fallback: number, what: string): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new RangeError(`Invalid ${what}: ${String(v)}`);
  }
  return v;
}

/** A listener held for one `-R` request. */
interface Listening {
  listeners: Deno.Listener[];
  loops: Promise<void>[];
}

/** What one connection holds. */
interface ConnectionState {
  listening: Map<string, Listening>;
  sockets: Set<Deno.Conn>;
  channels: number;
  closed: boolean;
  permitOpen: PermissionList;
  permitListen: PermissionList;
}

function tcpKey(hostname: string, port: number): string {
  return `tcp\0${hostname}\0${port}`;
}

function unixKey(path: string): string {
  return `unix\0${path}`;
}

/** Parses `authorized_keys` entries; a malformed one permits nothing. */
function keyList(
  entries: readonly string[] | undefined,
  listen: boolean,
): PermissionList {
  if (entries === undefined) return null;
  const out = [];
  for (const e of entries) {
    try {
      out.push(listen ? parsePermitListen(e) : parsePermitOpen(e));
    } catch {
      // Never widens: the entry simply matches nothing.
    }
  }
  return out;
}

function describe(request: ForwardRequest): string {
  switch (request.type) {
    case "direct-tcpip":
      return `connect to ${hostPort(request.hostname, request.port)}`;
    case "direct-streamlocal":
      return `connect to ${request.path}`;
    case "tcpip-forward":
      return `listen on ${hostPort(request.hostname || "*", request.port)}`;
    case "streamlocal-forward":
      return `listen on ${request.path}`;
  }
}

/**
 * Server-side forwarding for `serve()` and `acceptConnection()`: `ssh -L`
 * (`direct-tcpip`, `direct-streamlocal@openssh.com`: the server connects
 * out) and `ssh -R` (`tcpip-forward`, `streamlocal-forward@openssh.com`:
 * the server listens and opens `forwarded-*` channels back), with sshd's
 * defaults: everything allowed, remote listeners on loopback only
 * (`GatewayPorts no`).
 *
 * Each request passes, in order: the mode for its kind and direction; the
 * login's `authorized_keys` restrictions (`no-port-forwarding` /
 * `restrict` refuse all; `permitopen=` / `permitlisten=` entries limit
 * destinations and listen addresses as sshd reads them); `permitOpen` /
 * `permitListen`; then the `allow` hook. Refused `-L` opens fail with
 * ADMINISTRATIVELY_PROHIBITED and a description that says why; failed
 * connects with CONNECT_FAILED and the OS error text.
 *
 * Listeners and sockets belong to their connection: all close when it
 * ends.
 *
 * @example A server that forwards for one user, not to port 25
 * ```ts
 * import { generatePrivateKey } from "@fynx/ssh";
 * import { serve } from "@fynx/ssh/server";
 * import { serverForwarding } from "@fynx/ssh/forward";
 *
 * const server = serve({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   hostKeys: [generatePrivateKey("ed25519")],
 *   password: ({ username, password }) =>
 *     username === "me" && password === "secret",
 *   ...serverForwarding({
 *     gatewayPorts: "no",
 *     allow: (request, info) =>
 *       info.username === "me" &&
 *       !(request.type === "direct-tcpip" && request.port === 25),
 *   }),
 * });
 * await server.close();
 * ```
 */
export function serverForwarding(
  options: ServerForwardingOptions = {},
): ServerForwarding {
  const tcpMode = checkMode(options.allowTcpForwarding, "allowTcpForwarding");
  const unixMode = checkMode(
    options.allowStreamLocalForwarding,
    "allowStreamLocalForwarding",
  );
  const gatewayPorts = options.gatewayPorts ?? "no";
  if (!["no", "yes", "clientspecified"].includes(gatewayPorts)) {
    throw new TypeError(
      `Invalid gatewayPorts: ${
        JSON.stringify(gatewayPorts)
      } is not no, yes or clientspecified`,
    );
  }
  const adminOpen = parsePermissionList(
    options.permitOpen,
    false,
    "PermitOpen",
  );
  const adminListen = parsePermissionList(
    options.permitListen,
    true,
    "PermitListen",
  );
  const maxListeners = checkCount(options.maxListeners, 64, "maxListeners");
  const maxChannels = checkCount(options.maxChannels, 256, "maxChannels");
  const connectTimeout = checkCount(
    options.connectTimeout,
    30_000,
    "connectTimeout",
  );
  const states = new WeakMap<ConnectionInfo, ConnectionState>();

  const stateFor = (info: ConnectionInfo): ConnectionState => {
    let state = states.get(info);
    if (state !== undefined) return state;
    const restrictions: SessionRestrictions = info.auth?.restrictions ?? {};
    state = {
      listening: new Map(),
      sockets: new Set(),
      channels: 0,
      closed: false,
      permitOpen: keyList(restrictions.permitOpen, false),
      permitListen: keyList(restrictions.permitListen, true),
    };
    states.set(info, state);
    const s = state;
    const release = () => {
      s.closed = true;
      for (const l of s.listening.values()) stopListening(l);
      s.listening.clear();
      for (const socket of s.sockets) closeQuietly(socket);
      s.sockets.clear();
    };
    if (info.closed !== undefined) info.closed.then(release, release);
    return state;
  };

  const refuse = (
    request: ForwardRequest,
    reason: string,
    info: ConnectionInfo,
  ): string => {
    try {
      options.onRefused?.(request, reason, info);
    } catch {
      // A logging hook must not break the connection.
    }
    return reason;
  };

  /** Returns why `request` is refused, or null when it is allowed. */
  const check = async (
    request: ForwardRequest,
    info: ConnectionInfo,
    state: ConnectionState,
  ): Promise<string | null> => {
    const what = describe(request);
    const unix = request.type === "direct-streamlocal" ||
      request.type === "streamlocal-forward";
    const local = request.type === "direct-tcpip" ||
      request.type === "direct-streamlocal";
    const mode = unix ? unixMode : tcpMode;
    if (!allows(mode, local ? "local" : "remote")) {
      return `${local ? "Local" : "Remote"} ${
        unix ? "Unix-socket" : "TCP"
      } forwarding is disabled on this server (cannot ${what})`;
    }
    if (info.auth?.restrictions?.portForwarding === false) {
      return `Port forwarding is disabled for this login (cannot ${what})`;
    }
    if (info.connection === undefined || info.closed === undefined) {
      return `Forwarding needs an authenticated connection (cannot ${what})`;
    }
    let permitted: boolean;
    switch (request.type) {
      case "direct-tcpip":
      case "direct-streamlocal": {
        const host = request.type === "direct-tcpip"
          ? request.hostname
          : request.path;
        const port = request.type === "direct-tcpip" ? request.port : "path";
        if (!openPermitted(state.permitOpen, host, port)) {
          return `Not permitted by permitopen of the key: cannot ${what}`;
        }
        permitted = openPermitted(adminOpen, host, port);
        if (!permitted) return `Not permitted by PermitOpen: cannot ${what}`;
        break;
      }
      default: {
        const host = request.type === "tcpip-forward" ? request.hostname : "";
        const port = request.type === "tcpip-forward" ? request.port : "path";
        if (!listenPermitted(state.permitListen, host, port)) {
          return `Not permitted by permitlisten of the key: cannot ${what}`;
        }
        if (!listenPermitted(adminListen, host, port)) {
          return `Not permitted by PermitListen: cannot ${what}`;
        }
      }
    }
    if (options.allow !== undefined) {
      let ok = false;
      try {
        ok = (await options.allow(request, info)) === true;
      } catch {
        ok = false;
      }
      if (!ok) return `Refused by the server's policy: cannot ${what}`;
    }
    return null;
  };

  /** Pipes one forwarded connection, counting it against the limit. */
  const carry = (
    state: ConnectionState,
    channel: ByteChannel,
    socket: Deno.Conn,
  ): void => {
    pipeChannel(channel, socket).finally(() => {
      state.sockets.delete(socket);
      state.channels--;
    });
  };

  const onDirect = async (
    channel: IncomingChannel,
    info: ConnectionInfo,
  ): Promise<void> => {
    let request: ForwardRequest;
    try {
      if (channel.type === DIRECT_TCPIP) {
        const open = decodeTcpipOpen(channel.data, DIRECT_TCPIP);
        request = {
          type: "direct-tcpip",
          hostname: open.host,
          port: open.port,
          originatorAddress: open.originatorAddress,
          originatorPort: open.originatorPort,
        };
      } else {
        request = {
          type: "direct-streamlocal",
          path: decodeDirectStreamLocal(channel.data),
        };
      }
    } catch (e) {
      channel.reject(
        ChannelOpenFailure.CONNECT_FAILED,
        (e as Error).message,
      );
      return;
    }
    const state = stateFor(info);
    const refusal = await check(request, info, state);
    if (refusal !== null) {
      channel.reject(
        ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED,
        refuse(request, refusal, info),
      );
      return;
    }
    if (state.channels >= maxChannels) {
      channel.reject(
        ChannelOpenFailure.RESOURCE_SHORTAGE,
        refuse(
          request,
          `Too many forwarded connections (limit ${maxChannels})`,
          info,
        ),
      );
      return;
    }
    state.channels++;
    const target = request.type === "direct-tcpip"
      ? { hostname: request.hostname, port: request.port }
      : { path: request.path };
    let socket: Deno.Conn;
    try {
      if (request.type === "direct-tcpip" && request.port === 0) {
        throw new RangeError("Port 0 is not a destination");
      }
      socket = await connectTo(target, connectTimeout);
    } catch (e) {
      state.channels--;
      channel.reject(
        ChannelOpenFailure.CONNECT_FAILED,
        refuse(request, errorText(e), info),
      );
      return;
    }
    if (state.closed) {
      state.channels--;
      closeQuietly(socket);
      return;
    }
    let byteChannel: ByteChannel;
    try {
      byteChannel = channel.accept();
    } catch {
      state.channels--;
      closeQuietly(socket);
      return;
    }
    state.sockets.add(socket);
    carry(state, byteChannel, socket);
  };

  /** Accepts on `listener` and opens a channel back for each connection. */
  const acceptLoop = async (
    listener: Deno.Listener,
    info: ConnectionInfo,
    state: ConnectionState,
    type: string,
    data: (socket: Deno.Conn) => Uint8Array,
  ): Promise<void> => {
    // No open can overtake the reply to the request: an accept completes
    // on a later turn of the event loop, and the reply is sent in the
    // microtasks right after this handler returns.
    for (;;) {
      let socket: Deno.Conn;
      try {
        socket = await listener.accept();
      } catch {
        return;
      }
      if (state.closed || state.channels >= maxChannels) {
        closeQuietly(socket);
        continue;
      }
      if (socket.remoteAddr.transport === "tcp") {
        (socket as Deno.TcpConn).setNoDelay(true);
      }
      state.channels++;
      state.sockets.add(socket);
      const s = socket;
      info.connection!.openChannel(type, data(s)).then(
        (channel) => carry(state, channel, s),
        () => {
          state.sockets.delete(s);
          state.channels--;
          closeQuietly(s);
        },
      );
    }
  };

  const onTcpipForward = async (
    data: Uint8Array,
    info: ConnectionInfo,
  ): Promise<boolean | Uint8Array> => {
    const { address, port } = decodeTcpipForward(data, TCPIP_FORWARD);
    const request: ForwardRequest = {
      type: "tcpip-forward",
      hostname: address,
      port,
    };
    const state = stateFor(info);
    const refusal = await check(request, info, state);
    if (refusal !== null) {
      refuse(request, refusal, info);
      return false;
    }
    if (state.listening.size >= maxListeners) {
      refuse(request, `Too many listeners (limit ${maxListeners})`, info);
      return false;
    }
    let listeners: Deno.TcpListener[];
    try {
      listeners = bindTcp(serverBindPlan(address, gatewayPorts), port);
    } catch (e) {
      refuse(request, `Cannot ${describe(request)}: ${errorText(e)}`, info);
      return false;
    }
    const bound = (listeners[0].addr as Deno.NetAddr).port;
    const key = tcpKey(address, bound);
    if (state.closed || state.listening.has(key)) {
      for (const l of listeners) closeQuietly(l);
      return false;
    }
    // forwarded-tcpip names the listener as the client asked for it, so
    // the client can match it (OpenSSH does the same).
    const listening: Listening = {
      listeners,
      loops: listeners.map((l) =>
        acceptLoop(l, info, state, FORWARDED_TCPIP, (socket) => {
          const from = socket.remoteAddr as Deno.NetAddr;
          return encodeTcpipOpen({
            host: address,
            port: bound,
            originatorAddress: from.hostname,
            originatorPort: from.port,
          });
        })
      ),
    };
    state.listening.set(key, listening);
    return port === 0 ? encodeAllocatedPort(bound) : true;
  };

  const onStreamLocalForward = async (
    data: Uint8Array,
    info: ConnectionInfo,
  ): Promise<boolean> => {
    const path = decodeStreamLocalForward(data, STREAMLOCAL_FORWARD);
    const request: ForwardRequest = { type: "streamlocal-forward", path };
    const state = stateFor(info);
    const refusal = await check(request, info, state);
    if (refusal !== null) {
      refuse(request, refusal, info);
      return false;
    }
    if (state.listening.size >= maxListeners) {
      refuse(request, `Too many listeners (limit ${maxListeners})`, info);
      return false;
    }
    const key = unixKey(path);
    if (state.listening.has(key)) return false;
    let listener: Deno.Listener | undefined;
    try {
      // As sshd: an existing file is not replaced (StreamLocalBindUnlink
      // no), and the socket is for the user only (StreamLocalBindMask
      // 0177).
      listener = Deno.listen({ transport: "unix", path });
      await Deno.chmod(path, 0o600);
    } catch (e) {
      if (listener !== undefined) closeQuietly(listener);
      refuse(request, `Cannot ${describe(request)}: ${errorText(e)}`, info);
      return false;
    }
    if (state.closed) {
      closeQuietly(listener);
      return false;
    }
    state.listening.set(key, {
      listeners: [listener],
      loops: [
        acceptLoop(
          listener,
          info,
          state,
          FORWARDED_STREAMLOCAL,
          () => encodeForwardedStreamLocal(path),
        ),
      ],
    });
    return true;
  };

  const cancel = async (
    info: ConnectionInfo,
    key: string,
  ): Promise<boolean> => {
    const state = states.get(info);
    const listening = state?.listening.get(key);
    if (state === undefined || listening === undefined) return false;
    state.listening.delete(key);
    stopListening(listening);
    // Reply once the sockets are really closed (and a Unix socket's file
    // removed), so the client may listen there again at once.
    await Promise.all(listening.loops);
    return true;
  };

  return {
    onChannelOpen(channel: IncomingChannel, info: ConnectionInfo): void {
      if (
        channel.type === DIRECT_TCPIP || channel.type === DIRECT_STREAMLOCAL
      ) {
        onDirect(channel, info).catch(() => {
          try {
            channel.reject(
              ChannelOpenFailure.CONNECT_FAILED,
              `Cannot open ${channel.type} channel`,
            );
          } catch {
            // Answered already.
          }
        });
        return;
      }
      channel.reject(
        ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE,
        `Unsupported channel type ${channel.type.slice(0, 64)}`,
      );
    },
    async onGlobalRequest(
      name: string,
      data: Uint8Array,
      info: ConnectionInfo,
    ): Promise<boolean | Uint8Array> {
      switch (name) {
        case TCPIP_FORWARD:
          return await onTcpipForward(data, info);
        case CANCEL_TCPIP_FORWARD: {
          const { address, port } = decodeTcpipForward(
            data,
            CANCEL_TCPIP_FORWARD,
          );
          return await cancel(info, tcpKey(address, port));
        }
        case STREAMLOCAL_FORWARD:
          return await onStreamLocalForward(data, info);
        case CANCEL_STREAMLOCAL_FORWARD:
          return await cancel(
            info,
            unixKey(
              decodeStreamLocalForward(data, CANCEL_STREAMLOCAL_FORWARD),
            ),
          );
        default:
          return false;
      }
    },
  };
}

function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Already closed.
  }
}

function stopListening(listening: Listening): void {
  for (const l of listening.listeners) closeQuietly(l);
}
