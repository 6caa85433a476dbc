/**
 * `ssh -D`: a local SOCKS proxy whose connections go out through the
 * server as `direct-tcpip` channels. SOCKS4 (and 4a, with host names) and
 * SOCKS5 (RFC 1928: IPv4, IPv6 and domain names, method "no
 * authentication"), CONNECT only.
 *
 * Unlike OpenSSH, which answers "granted" before the server has connected,
 * the reply waits for the channel open: a client learns that a target
 * refused, is unreachable or is not allowed, with the matching SOCKS code.
 *
 * @module
 */
import { ChannelOpenError } from "../errors.ts";
import { ChannelOpenFailure } from "../wire/messages.ts";
import { formatIpv6 } from "./_net.ts";
import {
  type ForwardingConnection,
  type LocalForward,
  openDirect,
  serveLocal,
  type UnixAddress,
} from "./client.ts";
import { pipeChannel } from "./pipe.ts";

/** Options for {@linkcode serveSocks}. */
export interface SocksOptions {
  /**
   * Where the proxy listens (as in `forwardLocal`): `"localhost"` is
   * loopback in both families, `""` or `"*"` every interface.
   * @default {{ hostname: "localhost" }}
   */
  listen: { hostname?: string; port: number } | UnixAddress;
  /**
   * Milliseconds a client has to send its request before it is dropped.
   * @default {10000}
   */
  handshakeTimeout?: number;
  /** Called when one request fails (bad request, refused target). */
  onError?: (error: Error) => void;
}

/** Largest handshake we read: SOCKS4a with a 255-byte user and host. */
const MAX_HANDSHAKE = 1024;

/** SOCKS5 reply codes (RFC 1928 section 6). */
const Socks5Reply = {
  SUCCEEDED: 0,
  GENERAL_FAILURE: 1,
  NOT_ALLOWED: 2,
  NETWORK_UNREACHABLE: 3,
  HOST_UNREACHABLE: 4,
  CONNECTION_REFUSED: 5,
  COMMAND_NOT_SUPPORTED: 7,
  ADDRESS_TYPE_NOT_SUPPORTED: 8,
} as const;

/** Reads a handshake from the socket, never more than MAX_HANDSHAKE bytes. */
class HandshakeReader {
  readonly #socket: Deno.Conn;
  readonly #buf = new Uint8Array(MAX_HANDSHAKE);
  #len = 0;
  #pos = 0;

  constructor(socket: Deno.Conn) {
    this.#socket = socket;
  }

  async #fill(n: number): Promise<void> {
    while (this.#len - this.#pos < n) {
      if (this.#len >= MAX_HANDSHAKE) {
        throw new RangeError(
          `SOCKS request longer than ${MAX_HANDSHAKE} bytes`,
        );
      }
      const got = await this.#socket.read(this.#buf.subarray(this.#len));
      if (got === null) {
        throw new SyntaxError("SOCKS client closed before its request ended");
      }
      this.#len += got;
    }
  }

  async bytes(n: number): Promise<Uint8Array> {
    await this.#fill(n);
    const out = this.#buf.slice(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  async byte(): Promise<number> {
    return (await this.bytes(1))[0];
  }

  async uint16(): Promise<number> {
    const b = await this.bytes(2);
    return (b[0] << 8) | b[1];
  }

  /** A NUL-terminated string of at most `max` bytes (NUL excluded). */
  async cstring(max: number, what: string): Promise<string> {
    for (let i = 0;; i++) {
      await this.#fill(i + 1);
      if (this.#buf[this.#pos + i] === 0) {
        const text = new TextDecoder().decode(
          this.#buf.subarray(this.#pos, this.#pos + i),
        );
        this.#pos += i + 1;
        return text;
      }
      if (i >= max) {
        throw new RangeError(`SOCKS4 ${what} longer than ${max} bytes`);
      }
    }
  }

  /** Bytes the client sent beyond the handshake. */
  rest(): Uint8Array {
    return this.#buf.slice(this.#pos, this.#len);
  }
}

async function writeAll(socket: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let offset = 0; offset < data.length;) {
    offset += await socket.write(data.subarray(offset));
  }
}

/** The SOCKS5 reply for a failed channel open. */
function socks5Code(error: unknown): number {
  if (!(error instanceof ChannelOpenError)) return Socks5Reply.GENERAL_FAILURE;
  if (error.reason === ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED) {
    return Socks5Reply.NOT_ALLOWED;
  }
  if (error.reason !== ChannelOpenFailure.CONNECT_FAILED) {
    return Socks5Reply.GENERAL_FAILURE;
  }
  const d = error.description.toLowerCase();
  if (d.includes("refused")) return Socks5Reply.CONNECTION_REFUSED;
  // Our own server without the permission to reach the host.
  if (d.includes("requires net access")) return Socks5Reply.NOT_ALLOWED;
  if (d.includes("network is unreachable")) {
    return Socks5Reply.NETWORK_UNREACHABLE;
  }
  if (
    /unreachable|no route|timed out|not known|lookup|resolve|nodename|no address/
      .test(d)
  ) return Socks5Reply.HOST_UNREACHABLE;
  return Socks5Reply.GENERAL_FAILURE;
}

function socks4Reply(granted: boolean): Uint8Array {
  // VN 0, CD 90 (granted) or 91 (rejected or failed), DSTPORT, DSTIP.
  return new Uint8Array([0, granted ? 90 : 91, 0, 0, 0, 0, 0, 0]);
}

function socks5Reply(code: number): Uint8Array {
  // VER, REP, RSV, ATYP IPv4, BND.ADDR 0.0.0.0, BND.PORT 0: the address
  // the server connected from is not known to us.
  return new Uint8Array([5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
}

interface SocksRequest {
  hostname: string;
  port: number;
  /** Sends the reply; `error` undefined means success. */
  reply(error?: unknown): Promise<void>;
}

/** Reads one SOCKS4/4a/5 CONNECT request, answering what must come first. */
async function readRequest(
  socket: Deno.Conn,
  r: HandshakeReader,
): Promise<SocksRequest> {
  const version = await r.byte();
  if (version === 4) {
    const command = await r.byte();
    const port = await r.uint16();
    const ip = await r.bytes(4);
    await r.cstring(255, "user id");
    let hostname: string;
    if (ip[0] === 0 && ip[1] === 0 && ip[2] === 0 && ip[3] !== 0) {
      // SOCKS4a: 0.0.0.x means the host name follows the user id.
      hostname = await r.cstring(255, "host name");
      if (hostname === "") throw new SyntaxError("SOCKS4a empty host name");
    } else {
      hostname = ip.join(".");
    }
    if (command !== 1) {
      await writeAll(socket, socks4Reply(false));
      throw new RangeError(
        `SOCKS4 command ${command} is not supported (only CONNECT)`,
      );
    }
    return {
      hostname,
      port,
      reply: (error) => writeAll(socket, socks4Reply(error === undefined)),
    };
  }
  if (version !== 5) {
    throw new SyntaxError(`Unknown SOCKS version ${version}`);
  }
  const count = await r.byte();
  const methods = await r.bytes(count);
  if (!methods.includes(0)) {
    // Only "no authentication required" is offered.
    await writeAll(socket, new Uint8Array([5, 0xff]));
    throw new RangeError(
      "SOCKS5 client offers no method we support (only no authentication)",
    );
  }
  await writeAll(socket, new Uint8Array([5, 0]));
  const ver = await r.byte();
  if (ver !== 5) throw new SyntaxError(`SOCKS5 request has version ${ver}`);
  const command = await r.byte();
  await r.byte(); // reserved
  const type = await r.byte();
  let hostname: string;
  if (type === 1) {
    hostname = (await r.bytes(4)).join(".");
  } else if (type === 3) {
    const length = await r.byte();
    if (length === 0) throw new SyntaxError("SOCKS5 empty domain name");
    hostname = new TextDecoder().decode(await r.bytes(length));
  } else if (type === 4) {
    hostname = formatIpv6(await r.bytes(16));
  } else {
    await writeAll(socket, socks5Reply(Socks5Reply.ADDRESS_TYPE_NOT_SUPPORTED));
    throw new RangeError(`SOCKS5 address type ${type} is not supported`);
  }
  const port = await r.uint16();
  if (command !== 1) {
    await writeAll(socket, socks5Reply(Socks5Reply.COMMAND_NOT_SUPPORTED));
    throw new RangeError(
      `SOCKS5 command ${command} is not supported (only CONNECT)`,
    );
  }
  return {
    hostname,
    port,
    reply: (error) =>
      writeAll(
        socket,
        socks5Reply(
          error === undefined ? Socks5Reply.SUCCEEDED : socks5Code(error),
        ),
      ),
  };
}

/**
 * `ssh -D`: a SOCKS4/4a/5 proxy on a local port; each CONNECT becomes a
 * `direct-tcpip` channel to the requested host and port (host names are
 * resolved by the server). The reply waits for the server: success once it
 * connected, otherwise the SOCKS code for the reason (refused, unreachable,
 * not allowed). Closing it, or the connection ending, closes every socket.
 *
 * @example A SOCKS proxy on 127.0.0.1:1080
 * ```ts ignore
 * import { serveSocks } from "@fynx/ssh/forward";
 *
 * const proxy = await serveSocks(client, {
 *   listen: { hostname: "127.0.0.1", port: 1080 },
 * });
 * // curl --socks5-hostname 127.0.0.1:1080 http://intranet/
 * ```
 */
export function serveSocks(
  client: ForwardingConnection,
  options: SocksOptions,
): Promise<LocalForward> {
  const timeout = options.handshakeTimeout ?? 10_000;
  const onError = options.onError ?? (() => {});
  try {
    return Promise.resolve(serveLocal(
      client,
      options.listen ?? { port: 0 },
      async (socket) => {
        const reader = new HandshakeReader(socket);
        let timer: ReturnType<typeof setTimeout> | undefined;
        let request: SocksRequest;
        try {
          request = await Promise.race([
            readRequest(socket, reader),
            new Promise<never>((_, reject) => {
              timer = setTimeout(
                () =>
                  reject(
                    new Deno.errors.TimedOut(
                      `SOCKS client sent no request within ${timeout} ms`,
                    ),
                  ),
                timeout,
              );
            }),
          ]);
        } catch (e) {
          onError(e as Error);
          return;
        } finally {
          clearTimeout(timer);
        }
        const from = socket.remoteAddr;
        let channel;
        try {
          channel = await openDirect(
            client,
            { hostname: request.hostname, port: request.port },
            from.transport === "tcp"
              ? { hostname: from.hostname, port: from.port }
              : undefined,
          );
        } catch (e) {
          onError(e as Error);
          await request.reply(e).catch(() => {});
          return;
        }
        try {
          await request.reply();
        } catch {
          await channel.close();
          return;
        }
        await pipeChannel(channel, socket, { head: reader.rest() });
      },
    ));
  } catch (e) {
    return Promise.reject(e);
  }
}
