/**
 * Channels other than sessions (RFC 4254 section 5): a plain byte stream in
 * each direction, as used by port forwarding (`direct-tcpip`,
 * `forwarded-tcpip`, RFC 4254 section 7; `direct-streamlocal@openssh.com`,
 * `forwarded-streamlocal@openssh.com`, OpenSSH PROTOCOL section 2.4) and
 * agent forwarding (`auth-agent@openssh.com`, OpenSSH PROTOCOL.agent).
 *
 * @module
 */

import { type Channel, quiet } from "./_channel.ts";

/**
 * An open channel carrying bytes both ways, with flow control tied to the
 * SSH window: the peer sends only as much as `readable`'s reader has room
 * for, and writes to `writable` wait for the peer's window.
 *
 * Half-close works as TCP's does: closing `writable` sends CHANNEL_EOF
 * while `readable` keeps delivering; the channel closes by itself once both
 * directions ended (OpenSSH does the same for forwarded sockets).
 */
export interface ByteChannel {
  /** Channel type, e.g. `"direct-tcpip"`. */
  readonly type: string;
  /** Our channel number (diagnostics). */
  readonly id: number;
  /** Bytes from the peer; ends at the peer's EOF or CLOSE. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer; closing it sends EOF, aborting it closes the channel. */
  readonly writable: WritableStream<Uint8Array>;
  /** Resolves once the channel is gone (both CLOSEs, or the connection ended). */
  readonly closed: Promise<void>;
  /** Closes both directions now (EOF then CLOSE). Resolves once gone. */
  close(): Promise<void>;
}

/**
 * A channel open from the peer of a type other than `session`, waiting for
 * the application's answer (RFC 4254 section 5.1). Call exactly one of
 * {@linkcode IncomingChannel.accept} and {@linkcode IncomingChannel.reject};
 * the peer waits until one is called.
 */
export interface IncomingChannel {
  /** Channel type, e.g. `"forwarded-tcpip"`. */
  readonly type: string;
  /**
   * The type-specific fields after the common ones (for `direct-tcpip`: host
   * to connect, port, originator address and port).
   */
  readonly data: Uint8Array;
  /** Confirms the open and returns the channel. */
  accept(): ByteChannel;
  /**
   * Refuses the open with a reason code (`ChannelOpenFailure`, RFC 4254
   * section 5.1) and a description the peer may show.
   */
  reject(reason: number, description?: string): void;
}

/** Called for each channel open of a type other than `session`. */
export type ChannelOpenHandler = (channel: IncomingChannel) => void;

/** A {@linkcode ByteChannel} over one entry of the channel table. */
export class ByteChannelImpl implements ByteChannel {
  readonly #channel: Channel;
  readonly writable: WritableStream<Uint8Array>;

  constructor(channel: Channel) {
    this.#channel = channel;
    this.writable = channel.createWritable(0);
    // Nothing but data flows on these channels; requests are refused (the
    // default when no handler is set).
    channel.closeAfterEofs = true;
    // Extended data has no meaning here; drop it without holding window.
    quiet(channel.stderr.pipeTo(new WritableStream()));
  }

  get type(): string {
    return this.#channel.type;
  }

  get id(): number {
    return this.#channel.localId;
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.#channel.readable;
  }

  get closed(): Promise<void> {
    return this.#channel.closed;
  }

  close(): Promise<void> {
    return this.#channel.close();
  }
}
