/**
 * The SSH transport layer (RFC 4253): version exchange, binary packets,
 * key exchange and rekeying, strict KEX, EXT_INFO, DISCONNECT.
 *
 * Upper layers (auth, connection) see whole message payloads: they call
 * {@linkcode Transport.send} and receive through
 * {@linkcode TransportOptions.onMessage}. Rekeying is invisible to them:
 * while a key exchange runs, their sends wait (one pending promise per
 * writer, nothing buffered beyond that) and go out once NEWKEYS is sent.
 *
 * @module
 */
import {
  markHandedOver,
  recycleBuffer,
  roomAfter,
  roomBefore,
  takeBuffer,
} from "./_packet_room.ts";
import { DisconnectError, HostKeyError } from "../errors.ts";
import type { PrivateKey, PublicKey } from "../keys/types.ts";
import {
  type Certificate,
  parseCertificate,
  parsePublicKey,
  plainAlgorithm,
} from "../keys/mod.ts";
import { DisconnectReason, Msg } from "../wire/messages.ts";
import { SshReader } from "../wire/reader.ts";
import { SshWriter } from "../wire/writer.ts";
import { ByteReader } from "./_byte_reader.ts";
import { asRaw, RawWriter } from "./_raw_conn.ts";
import { DeadlineClock } from "./_deadline_clock.ts";
import {
  type AlgorithmPreferences,
  decodeKexInit,
  encodeKexInit,
  guessWasRight,
  type KexInit,
  negotiate,
  type Negotiated,
  resolvePreferences,
} from "./algorithms.ts";
import {
  cipherInfo,
  createNoneCipher,
  createPacketCipher,
  MacError,
  macInfo,
} from "./cipher/mod.ts";
import type { PacketCipher } from "./cipher/types.ts";
import {
  type Compressor,
  createCompressor,
  createDecompressor,
  type Decompressor,
  loadCompression,
} from "./compression.ts";
import { deriveKey, hashBytes } from "./kex/derive.ts";
import { kexMethod } from "./kex/mod.ts";
import type { HashName, KexClient, KexMethod } from "./kex/types.ts";
import type { Duplex } from "./duplex.ts";
import { makeIdentification, readIdentification } from "./version.ts";
import { ignore } from "./_settled.ts";

export type { Duplex };

/** Largest `packet_length` we accept (RFC 4253 section 6.1 asks for 35000; OpenSSH uses 256 KiB). */
export const MAX_PACKET_LENGTH = 256 * 1024;
/** Largest payload after decompression. */
export const MAX_PAYLOAD_LENGTH = 256 * 1024;

const STRICT_C = "kex-strict-c-v00@openssh.com";
const STRICT_S = "kex-strict-s-v00@openssh.com";

/** Called by a client with the server's host key; resolve true to accept. */
export type HostKeyVerifier = (
  key: PublicKey,
  info: {
    /** The negotiated host key algorithm. */
    algorithm: string;
    /**
     * The host certificate the server presented for `key` (its CA signature
     * verified; whether the CA is trusted for this host is the verifier's
     * decision, see `checkCertificate`).
     */
    certificate?: Certificate;
  },
) => boolean | Promise<boolean>;

/** Options for {@linkcode Transport}. */
export interface TransportOptions {
  /** Which side of the connection we are. */
  side: "client" | "server";
  /** Algorithm preferences; defaults are the hardened set. */
  algorithms?: Partial<AlgorithmPreferences>;
  /** Server: the host keys to offer (at least one). */
  hostKeys?: readonly PrivateKey[];
  /**
   * Server: OpenSSH host certificates for some of `hostKeys`; each adds its
   * `*-cert-v01@openssh.com` algorithms (sshd `HostCertificate`).
   */
  hostCertificates?: readonly Certificate[];
  /** Client: decides whether the server's host key is trusted. Rejects all when absent. */
  verifyHostKey?: HostKeyVerifier;
  /**
   * Bytes sent or received under one set of keys before a new key exchange.
   * @default {1073741824}
   */
  rekeyBytes?: number;
  /**
   * Milliseconds under one set of keys before a new key exchange.
   * @default {3600000}
   */
  rekeyInterval?: number;
  /** Software version after `SSH-2.0-`. */
  softwareVersion?: string;
  /** Receives every message the transport does not handle itself (service, auth, connection). */
  onMessage?: (payload: Uint8Array) => void | Promise<void>;
  /** Server: the `server-sig-algs` to announce in EXT_INFO. */
  serverSigAlgs?: readonly string[];
  /** Called once when the transport closes, with the reason (undefined when closed cleanly by us). */
  onClose?: (error: Error | undefined) => void;
}

interface Direction {
  cipher: PacketCipher;
  compressor: Compressor | null;
  decompressor: Decompressor | null;
  /** zlib@openssh.com: waiting for authentication before it starts. */
  delayedCompression: string | null;
  seq: number;
  bytes: number;
}

interface KexState {
  ourInit: Uint8Array;
  peerInit?: Uint8Array;
  negotiated?: Negotiated;
  method?: KexMethod;
  client?: KexClient;
  ignoreNextKexPacket: boolean;
  strict: boolean;
  /** Keys for the direction we send, ready once the exchange hash is known. */
  outgoing?: Omit<Direction, "seq" | "bytes">;
  incoming?: Omit<Direction, "seq" | "bytes">;
  sentNewKeys: boolean;
  receivedNewKeys: boolean;
}

interface QueuedPacket {
  /** Null for a marker that only runs `after` at its place in the queue. */
  payload: Uint8Array | null;
  resolve: () => void;
  reject: (e: Error) => void;
  /** Runs right after the packet is written, before anything else is sent. */
  after?: () => void;
}

/** One packet in the send pipeline. */
interface SealedPacket {
  /** The wire bytes once sealed. */
  wire: Uint8Array | null;
  /** Wire size (known before sealing finishes). */
  size: number;
  /** Settles when an asynchronous seal finishes. */
  pending: Promise<void> | null;
}

/**
 * Send pipeline bounds: packets and bytes sealed or being sealed but not yet
 * handed to the stream. Several in flight let Web Crypto work on them in
 * parallel; the bounds keep memory small (at most a few 256 KiB packets).
 */
const SEND_PIPELINE_PACKETS = 8;
const SEND_PIPELINE_BYTES = 1024 * 1024;
/** Largest write made by joining several finished packets. */
const WRITE_BATCH_BYTES = 256 * 1024;

/** One packet in the receive pipeline (or the error that ended reading). */
interface ReceivedPacket {
  /** The decryption under way (rejects with MacError on a bad tag). */
  opened?: Uint8Array | Promise<Uint8Array>;
  /** Set instead of `opened` when reading failed. */
  error?: Error;
  /** Wire bytes. */
  size: number;
  seq: number;
  /** The direction state (keys, decompressor) it was read under. */
  dir: Direction;
  /** `packet_length`. */
  len?: number;
  /** The packet as read; given back to the reader once opened. */
  wire?: Uint8Array;
}

/**
 * Receive pipeline bounds: packets read ahead of the one being handled.
 * A packet shorter than {@linkcode RECV_SMALL_PACKET} bytes on the wire
 * stops read-ahead until handled: NEWKEYS (1-byte payload, at most 255
 * bytes of padding, maybe compressed) is always that short.
 */
const RECV_PIPELINE_PACKETS = 8;
const RECV_PIPELINE_BYTES = 1024 * 1024;
const RECV_SMALL_PACKET = 1024;

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(ignore);
  return { promise, resolve, reject };
}

const encoder = new TextEncoder();

/** Message types allowed between KEXINIT and NEWKEYS (RFC 4253 section 7.1). */
function isKexMessage(type: number): boolean {
  return type === Msg.KEXINIT || type === Msg.NEWKEYS ||
    (type >= 30 && type <= 49);
}

/**
 * Server preferences, resolved once per host key list: serve() hands every
 * connection the same lists, and a copy of the preference lists per
 * connection is half a kilobyte held for the connection's lifetime. Frozen,
 * since they are shared.
 */
const serverPrefsCache = new WeakMap<readonly PrivateKey[], {
  algorithms: TransportOptions["algorithms"];
  hostCertificates: TransportOptions["hostCertificates"];
  prefs: AlgorithmPreferences;
}>();

function serverPreferences(options: TransportOptions): AlgorithmPreferences {
  const { hostKeys, algorithms, hostCertificates } = options;
  if (!hostKeys || hostKeys.length === 0) {
    throw new TypeError("A server needs at least one host key");
  }
  const cached = serverPrefsCache.get(hostKeys);
  if (
    cached && cached.algorithms === algorithms &&
    cached.hostCertificates === hostCertificates
  ) {
    return cached.prefs;
  }
  const prefs = resolvePreferences(algorithms);
  for (const cert of hostCertificates ?? []) {
    if (cert.certType !== "host") {
      throw new TypeError(
        `Certificate ${
          JSON.stringify(cert.keyId)
        } is a ${cert.certType} certificate, not a host certificate`,
      );
    }
    if (!hostKeys.some((k) => sameBytes(k.publicKey.blob, cert.key.blob))) {
      throw new TypeError(
        `Host certificate ${
          JSON.stringify(cert.keyId)
        } is for ${cert.key.fingerprint()}, which is not one of the host keys`,
      );
    }
  }
  const available = new Set([
    ...hostKeys.flatMap((k) => k.publicKey.signatureAlgorithms),
    ...(hostCertificates ?? []).flatMap((c) => c.signatureAlgorithms),
  ]);
  prefs.hostKey = prefs.hostKey.filter((a) => available.has(a));
  if (prefs.hostKey.length === 0) {
    throw new TypeError(
      "None of the host keys can sign with the configured host key algorithms",
    );
  }
  for (const list of Object.values(prefs)) Object.freeze(list);
  Object.freeze(prefs);
  serverPrefsCache.set(hostKeys, { algorithms, hostCertificates, prefs });
  return prefs;
}

/**
 * One SSH transport over a {@linkcode Duplex}.
 *
 * @example Two transports over an in-memory pair
 * ```ts ignore
 * const t = new Transport(duplex, { side: "client", verifyHostKey: () => true });
 * await t.start();
 * ```
 */
export class Transport {
  readonly #options: TransportOptions;
  readonly #side: "client" | "server";
  readonly #prefs: AlgorithmPreferences;
  readonly #reader: ByteReader;
  readonly #writer: Pick<
    WritableStreamDefaultWriter<Uint8Array>,
    "ready" | "write" | "close" | "abort"
  >;
  readonly #ourId: string;
  #peerId = "";
  #in: Direction;
  #out: Direction;
  #kex: KexState | null = null;
  #kexCount = 0;
  #sessionId: Uint8Array | null = null;
  #firstKex = deferred<void>();
  #closed = deferred<Error | undefined>();
  #closeError: Error | undefined;
  #isClosed = false;
  #urgent: QueuedPacket[] = [];
  #app: QueuedPacket[] = [];
  #pumping = false;
  /** Packets sealed or being sealed, in sequence order, not yet written. */
  #sealing: SealedPacket[] = [];
  #sealingBytes = 0;
  /** The writer loop, while it runs. */
  #flushing: Promise<void> | null = null;
  /** Packets read (and being opened) but not yet handled, in order. */
  #received: ReceivedPacket[] = [];
  #receivedBytes = 0;
  #wakeDispatch: (() => void) | null = null;
  #wakeReader: (() => void) | null = null;
  /** Wakes the pump once the pipeline has room. */
  #sendRoom: (() => void) | null = null;
  /**
   * When the current keys are due for replacement (`rekeyInterval`). One
   * clock serves every transport (a timer per connection costs more than
   * the rest of an idle session's state); packets coming and going check
   * the deadline too, so none goes out under keys past their time even if
   * the clock is late (see #pump).
   */
  #rekeyAt = Infinity;
  static readonly #rekeyClock = new DeadlineClock<Transport>((t) =>
    t.#startKex()
  );
  /** Client: the server's host key after the first exchange. */
  #hostKey: PublicKey | null = null;
  #hostKeyBlob: Uint8Array | null = null;
  #hostCertificate: Certificate | null = null;
  #serverSigAlgs: string[] | null = null;
  #peerWantsExtInfo = false;
  /** Packets received since the last NEWKEYS (EXT_INFO must be the first). */
  #packetsSinceNewKeys = 0;
  #currentSeq = 0;
  #negotiated: Negotiated | null = null;
  /** Set by the upper layer when auth succeeds (delayed compression, EXT_INFO rules). */
  #authenticated = false;

  /** Creates a transport; nothing is sent until {@linkcode start}. */
  constructor(duplex: Duplex, options: TransportOptions) {
    this.#options = options;
    this.#side = options.side;
    this.#prefs = this.#side === "server"
      ? serverPreferences(options)
      : resolvePreferences(options.algorithms);
    this.#ourId = makeIdentification(options.softwareVersion);
    const raw = asRaw(duplex);
    this.#reader = new ByteReader(raw ?? duplex.readable);
    this.#writer = raw ? new RawWriter(raw) : duplex.writable.getWriter();
    const plain = (): Direction => ({
      cipher: createNoneCipher(),
      compressor: null,
      decompressor: null,
      delayedCompression: null,
      seq: 0,
      bytes: 0,
    });
    this.#in = plain();
    this.#out = plain();
  }

  /** Our identification line (without CR LF). */
  get ourIdentification(): string {
    return this.#ourId;
  }

  /** The peer's identification line (without CR LF), once received. */
  get peerIdentification(): string {
    return this.#peerId;
  }

  /** The session identifier (H of the first exchange). */
  get sessionId(): Uint8Array {
    if (!this.#sessionId) {
      throw new TypeError("The key exchange has not finished yet");
    }
    return this.#sessionId;
  }

  /** Client: the server's verified host key. */
  get hostKey(): PublicKey | null {
    return this.#hostKey;
  }

  /** Client: the host certificate the server presented, if any. */
  get hostCertificate(): Certificate | null {
    return this.#hostCertificate;
  }

  /** Client: the server's `server-sig-algs` from EXT_INFO, or null if it sent none. */
  get serverSigAlgs(): readonly string[] | null {
    return this.#serverSigAlgs;
  }

  /** The algorithms of the current keys. */
  get negotiated(): Negotiated | null {
    return this.#negotiated;
  }

  /** Number of completed key exchanges. */
  get kexCount(): number {
    return this.#kexCount;
  }

  /** Sequence numbers of the next packet to send and receive (for tests). */
  get sequenceNumbers(): { send: number; receive: number } {
    return { send: this.#out.seq, receive: this.#in.seq };
  }

  /** Resolves with the close reason once the transport has closed. */
  get closed(): Promise<Error | undefined> {
    return this.#closed.promise;
  }

  /** True once closed. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Sets the message handler (if not given in the options). */
  set onMessage(handler: (payload: Uint8Array) => void | Promise<void>) {
    this.#options.onMessage = handler;
  }

  /**
   * Exchanges versions and runs the first key exchange. Resolves once both
   * sides have switched to the new keys.
   */
  async start(): Promise<void> {
    this.#runReadLoop();
    await this.#firstKex.promise;
  }

  async #runReadLoop(): Promise<void> {
    try {
      this.#write(encoder.encode(this.#ourId + "\r\n"));
      this.#peerId = await readIdentification(this.#reader, this.#side);
      this.#startKex();
      this.#readAhead();
      for (;;) {
        while (this.#received.length === 0) {
          if (this.#isClosed) return;
          await new Promise<void>((resolve) => this.#wakeDispatch = resolve);
        }
        const entry = this.#received[0];
        const payload = await this.#openPacket(entry);
        await this.#handle(payload);
        this.#received.shift();
        this.#receivedBytes -= entry.size;
        const wake = this.#wakeReader;
        this.#wakeReader = null;
        wake?.();
        if (this.#isClosed) return;
      }
    } catch (e) {
      this.#fail(e);
    }
  }

  /**
   * Reads packets ahead of the dispatcher and starts opening each as soon as
   * it is complete, so decryption (Web Crypto, off the main thread) overlaps
   * with reading the next packets and with handling earlier ones. Bounded by
   * {@linkcode RECV_PIPELINE_PACKETS} and {@linkcode RECV_PIPELINE_BYTES}.
   *
   * A packet short enough to be NEWKEYS (or anything else that changes how
   * the next packet is read) stops the read-ahead until it has been handled:
   * the keys for the next packet are only known then (RFC 4253 section 7.3).
   * Errors are queued like packets, so they surface in order, after every
   * packet received before them.
   */
  async #readAhead(): Promise<void> {
    for (;;) {
      while (
        !this.#isClosed &&
        (this.#received.length >= RECV_PIPELINE_PACKETS ||
          this.#receivedBytes >= RECV_PIPELINE_BYTES ||
          (this.#received.length > 0 &&
            this.#received[this.#received.length - 1].size <
              RECV_SMALL_PACKET))
      ) {
        await new Promise<void>((resolve) => this.#wakeReader = resolve);
      }
      if (this.#isClosed) return;
      let entry: ReceivedPacket;
      try {
        // The length field is waited for here, not in #readWire, so an idle
        // connection is suspended one call higher (each suspended call is
        // heap held per connection).
        const head = this.#in.cipher.headLength;
        if (!this.#reader.has(head) && !await this.#reader.ensure(head)) {
          throw new DisconnectError(
            DisconnectReason.CONNECTION_LOST,
            "Connection closed by peer",
          );
        }
        entry = await this.#readWire();
      } catch (e) {
        entry = { error: e as Error, size: 0, seq: 0, dir: this.#in };
      }
      this.#received.push(entry);
      this.#receivedBytes += entry.size;
      const wake = this.#wakeDispatch;
      this.#wakeDispatch = null;
      wake?.();
      if (entry.error) return;
    }
  }

  /**
   * Sends one message from an upper layer. Waits while a key exchange is
   * running; rejects once the transport is closed.
   */
  send(payload: Uint8Array): Promise<void> {
    if (this.#isClosed) {
      return Promise.reject(
        this.#closeError ?? new DisconnectError(11, "Connection closed"),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.#app.push({ payload, resolve, reject });
      this.#pump();
    });
  }

  /** Starts a key exchange now (no-op if one is running); resolves when it ends. */
  async rekey(): Promise<void> {
    if (this.#isClosed) {
      throw this.#closeError ?? new DisconnectError(11, "Connection closed");
    }
    const before = this.#kexCount;
    this.#startKex();
    while (this.#kexCount === before && !this.#isClosed) {
      await new Promise<void>((resolve) => this.#kexWaiters.push(resolve));
    }
    if (this.#isClosed) {
      throw this.#closeError ?? new DisconnectError(11, "Connection closed");
    }
  }

  #kexWaiters: (() => void)[] = [];

  /** Outgoing delayed compression has passed its start point in the queue. */
  #outCompressionStarted = false;

  /**
   * Marks authentication as done and starts `zlib@openssh.com` compression
   * (OpenSSH PROTOCOL section 1.9 delays it until then): for incoming
   * packets at once, for outgoing ones right after the messages already
   * queued. A server calls this right after queueing USERAUTH_SUCCESS (which
   * must itself go out uncompressed); a client calls it from its message
   * handler as USERAUTH_SUCCESS arrives, before the next packet is read.
   */
  authenticated(): void {
    if (this.#authenticated) return;
    this.#authenticated = true;
    const start = (dir: Direction) => {
      if (!dir.delayedCompression) return;
      dir.compressor = createCompressor(dir.delayedCompression);
      dir.decompressor = createDecompressor(dir.delayedCompression, {
        maxSize: MAX_PAYLOAD_LENGTH,
      });
      dir.delayedCompression = null;
    };
    start(this.#in);
    this.#app.push({
      payload: null,
      after: () => {
        this.#outCompressionStarted = true;
        start(this.#out);
      },
      resolve: () => {},
      reject: () => {},
    });
    this.#pump();
  }

  /**
   * Sends DISCONNECT with `reason` and closes. Resolves when closed.
   */
  async disconnect(
    reason: number = DisconnectReason.BY_APPLICATION,
    description = "Closed by application",
  ): Promise<void> {
    this.#fail(
      new DisconnectError(reason, description),
      reason === DisconnectReason.BY_APPLICATION,
    );
    await this.#closed.promise;
  }

  // ---------------------------------------------------------------- sending

  #queueUrgent(payload: Uint8Array, after?: () => void): void {
    this.#urgent.push({ payload, resolve: () => {}, reject: () => {}, after });
    this.#pump();
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (!this.#isClosed) {
        // Bounded pipeline: wait for room before taking the next item, so
        // an urgent packet queued meanwhile still goes first.
        if (
          this.#sealing.length >= SEND_PIPELINE_PACKETS ||
          this.#sealingBytes >= SEND_PIPELINE_BYTES
        ) {
          await new Promise<void>((resolve) => this.#sendRoom = resolve);
          continue;
        }
        let item = this.#urgent.shift();
        if (
          !item && !this.#kex && this.#app.length > 0 &&
          Date.now() >= this.#rekeyAt
        ) {
          // Keys past their time: new ones before the next application
          // packet (the KEXINIT just queued goes first).
          this.#startKex();
          continue;
        }
        // RFC 4253 section 7.1: after our KEXINIT, nothing but transport and
        // KEX messages until our NEWKEYS.
        if (!item && !this.#kex) item = this.#app.shift();
        if (!item) break;
        if (item.payload === null) {
          item.after?.();
          item.resolve();
          continue;
        }
        try {
          this.#sealPacket(item.payload, item.after);
        } catch (e) {
          item.reject(e as Error);
          throw e;
        }
        // The packet has its sequence number and is on its way: the sender
        // may hand over the next one while this one is encrypted.
        item.resolve();
      }
    } catch (e) {
      this.#fail(e);
    } finally {
      this.#pumping = false;
    }
  }

  /**
   * Pads one payload into a packet, assigns its sequence number and starts
   * sealing it (Web Crypto AES-GCM runs off the main thread, so several
   * packets can be in the cipher at once); the writer loop puts the results
   * on the wire in sequence order. `afterSeal` runs once the packet has its
   * sequence number and keys, before anything later is sealed, so state that
   * follows it (new keys after NEWKEYS) applies exactly from the next packet
   * on while packets already in flight finish under the old keys.
   */
  #sealPacket(payload: Uint8Array, afterSeal?: () => void): void {
    const dir = this.#out;
    if (dir.compressor) payload = dir.compressor.compress(payload);
    const cipher = dir.cipher;
    const block = Math.max(8, cipher.blockSize);
    const aligned = 5 + payload.length - (cipher.lengthInClear ? 4 : 0);
    let pad = block - (aligned % block);
    if (pad < 4) pad += block;
    while (5 + payload.length + pad < 16) pad += block;
    const total = 5 + payload.length + pad;
    let packet: Uint8Array;
    if (roomBefore(payload) >= 5 && roomAfter(payload) >= pad + 16) {
      // Framed where the channel wrote it (transport/_packet_room.ts).
      packet = new Uint8Array(payload.buffer, payload.byteOffset - 5, total);
    } else {
      // 16 spare bytes: scratch a cipher may use for its tag.
      packet = new Uint8Array(takeBuffer(total + 16), 0, total);
      packet.set(payload, 5);
    }
    const len = 1 + payload.length + pad;
    packet[0] = len >>> 24;
    packet[1] = len >>> 16;
    packet[2] = len >>> 8;
    packet[3] = len;
    packet[4] = pad;
    crypto.getRandomValues(packet.subarray(5 + payload.length));
    const size = packet.length + cipher.tagLength;
    const entry: SealedPacket = { wire: null, size, pending: null };
    const sealed = cipher.seal(dir.seq, packet);
    if (sealed instanceof Uint8Array) {
      entry.wire = sealed;
      if (sealed.buffer !== packet.buffer) recycleBuffer(packet.buffer);
    } else {
      entry.pending = sealed.then((wire) => {
        entry.wire = wire;
        if (wire.buffer !== packet.buffer) recycleBuffer(packet.buffer);
      });
      entry.pending.catch(() => {});
    }
    this.#sealing.push(entry);
    this.#sealingBytes += size;
    dir.seq = (dir.seq + 1) >>> 0;
    dir.bytes += size;
    afterSeal?.();
    if (!this.#flushing) this.#flushing = this.#flush();
    if (
      !this.#kex && dir.bytes >= (this.#options.rekeyBytes ?? 2 ** 30) &&
      this.#sessionId
    ) this.#startKex();
  }

  /**
   * Writes sealed packets in sequence order as they finish. Consecutive
   * finished packets go out in one write (fewer system calls for small
   * messages); `writer.ready` provides the backpressure of the stream.
   */
  async #flush(): Promise<void> {
    try {
      while (this.#sealing.length > 0) {
        const head = this.#sealing[0];
        if (head.pending) await head.pending;
        let count = 1;
        let bytes = head.size;
        while (
          count < this.#sealing.length &&
          this.#sealing[count].wire !== null &&
          bytes + this.#sealing[count].size <= WRITE_BATCH_BYTES
        ) bytes += this.#sealing[count++].size;
        const batch = this.#sealing.splice(0, count);
        this.#sealingBytes -= bytes;
        let out: Uint8Array;
        if (count === 1) {
          out = head.wire!;
        } else {
          out = new Uint8Array(takeBuffer(bytes), 0, bytes);
          let offset = 0;
          for (const p of batch) {
            out.set(p.wire!, offset);
            offset += p.size;
            recycleBuffer(p.wire!.buffer);
          }
        }
        const room = this.#sendRoom;
        this.#sendRoom = null;
        room?.();
        await this.#writer.ready;
        this.#write(out, true);
      }
    } catch (e) {
      this.#fail(e);
    } finally {
      this.#flushing = null;
      const room = this.#sendRoom;
      this.#sendRoom = null;
      room?.();
    }
  }

  /**
   * Queues bytes on the stream without waiting for the peer to take them:
   * backpressure comes from `writer.ready`, which the pump awaits before
   * each packet. Waiting for each write to complete instead would let two
   * peers that both write before reading (the version lines) deadlock on
   * streams that only complete a write once it is read.
   */
  #write(bytes: Uint8Array, recycle = false): void {
    this.#writer.write(bytes).then(() => {
      // Written: the buffer is ours again (pooled ones only).
      if (recycle) recycleBuffer(bytes.buffer);
    }, (e) => {
      this.#fail(
        new DisconnectError(
          DisconnectReason.CONNECTION_LOST,
          `Write failed: ${(e as Error)?.message ?? e}`,
        ),
      );
    });
  }

  // ---------------------------------------------------------------- receiving

  /**
   * Reads one whole packet, checks its length against every limit and
   * starts opening it (with the keys of the moment and the next sequence
   * number). Called once the length field is buffered (see #readAhead).
   */
  async #readWire(): Promise<ReceivedPacket> {
    const dir = this.#in;
    const cipher = dir.cipher;
    const reader = this.#reader;
    const head = reader.peek(cipher.headLength);
    const seq = dir.seq;
    const len = cipher.packetLength(seq, head);
    const block = Math.max(8, cipher.blockSize);
    if (len > MAX_PACKET_LENGTH || len < 5) {
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_ERROR,
        `Bad packet length ${len} in packet ${seq} (limit ${MAX_PACKET_LENGTH})`,
      );
    }
    if ((len + (cipher.lengthInClear ? 0 : 4)) % block !== 0) {
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_ERROR,
        `Bad packet length ${len} in packet ${seq}: not a multiple of the block size ${block}`,
      );
    }
    const total = 4 + len + cipher.tagLength;
    // Usually already buffered: reads bring up to 256 KiB at once. The
    // packet is a view into the read buffer, released once opened.
    if (!reader.has(total)) await reader.ensure(total);
    const wire = reader.take(total);
    let opened: Uint8Array | Promise<Uint8Array>;
    try {
      opened = cipher.open(seq, wire);
    } catch (e) {
      opened = Promise.reject(e);
    }
    if (opened instanceof Promise) opened.catch(() => {});
    dir.seq = (seq + 1) >>> 0;
    if (dir.seq === 0 && !this.#sessionId) {
      // Terrapin defence: a wrap before the first NEWKEYS means the peer is
      // manipulating sequence numbers (OpenSSH PROTOCOL section 1.10).
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_ERROR,
        "Sequence number wrapped during the initial key exchange",
      );
    }
    return { opened, size: total, seq, dir, len, wire };
  }

  /**
   * Waits for one packet's decryption (tag or MAC verified first, by the
   * cipher) and returns its payload, decompressed, in receive order.
   */
  async #openPacket(entry: ReceivedPacket): Promise<Uint8Array> {
    if (entry.error) throw entry.error;
    const { seq, dir, len } = entry;
    let plain: Uint8Array;
    try {
      plain = await entry.opened!;
    } catch (e) {
      if (e instanceof MacError) {
        throw new DisconnectError(DisconnectReason.MAC_ERROR, e.message, {
          cause: e,
        });
      }
      throw e;
    }
    const padLen = plain[0];
    if (padLen < 4 || padLen + 1 >= plain.length) {
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_ERROR,
        `Bad padding length ${padLen} in packet ${seq} of length ${len}`,
      );
    }
    let payload = plain.subarray(1, plain.length - padLen);
    // Every cipher but `none` returns a buffer of this packet alone: the
    // receiver may keep views of it. Then the read buffer can be reused once
    // no packet in it is being opened, unless the plaintext lies in it (the
    // `none` cipher: marked handed over, so never reused).
    markHandedOver(payload);
    this.#reader.release(entry.wire!);
    if (dir.decompressor) {
      try {
        payload = dir.decompressor.decompress(payload);
      } catch (e) {
        throw new DisconnectError(
          DisconnectReason.COMPRESSION_ERROR,
          `Cannot decompress packet ${seq}: ${(e as Error).message}`,
        );
      }
      if (payload.length === 0) {
        throw new DisconnectError(
          DisconnectReason.PROTOCOL_ERROR,
          `Empty payload in packet ${seq}`,
        );
      }
    }
    this.#currentSeq = seq;
    dir.bytes += entry.size;
    this.#packetsSinceNewKeys++;
    if (
      !this.#kex && this.#sessionId &&
      (dir.bytes >= (this.#options.rekeyBytes ?? 2 ** 30) ||
        Date.now() >= this.#rekeyAt)
    ) this.#startKex();
    return payload;
  }

  async #handle(payload: Uint8Array): Promise<void> {
    const type = payload[0];
    const kex = this.#kex;
    if (!this.#sessionId) {
      // First exchange. With strict KEX only KEX messages may arrive
      // (OpenSSH PROTOCOL section 1.10); strictness is known once the
      // peer's KEXINIT arrived, and KEXINIT must be the very first packet.
      if (kex?.strict && !isKexMessage(type) && type !== Msg.DISCONNECT) {
        throw new DisconnectError(
          DisconnectReason.PROTOCOL_ERROR,
          `Unexpected message ${type} during strict key exchange`,
        );
      }
    }
    switch (type) {
      case Msg.DISCONNECT:
        return this.#onDisconnect(payload);
      case Msg.IGNORE:
      case Msg.DEBUG:
        return;
      case Msg.UNIMPLEMENTED:
        if (kex) {
          throw new DisconnectError(
            DisconnectReason.PROTOCOL_ERROR,
            "Peer sent UNIMPLEMENTED during key exchange",
          );
        }
        return;
      case Msg.KEXINIT:
        return this.#onKexInit(payload);
      case Msg.NEWKEYS:
        return this.#onNewKeys(payload);
      case Msg.EXT_INFO:
        return this.#onExtInfo(payload);
    }
    if (type >= 30 && type <= 49) return await this.#onKexMessage(payload);
    if (!this.#sessionId || (kex?.peerInit && !kex.receivedNewKeys)) {
      // Between the peer's KEXINIT and its NEWKEYS only KEX messages are
      // allowed (RFC 4253 section 7.1); before the first NEWKEYS nothing
      // else has any meaning (AsyncSSH CVE-2023-46445/46446).
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_ERROR,
        `Unexpected message ${type} during key exchange`,
      );
    }
    if (
      type === Msg.SERVICE_REQUEST || type === Msg.SERVICE_ACCEPT ||
      (type >= 50 && type <= 127)
    ) {
      const handler = this.#options.onMessage;
      if (!handler) {
        throw new DisconnectError(
          DisconnectReason.PROTOCOL_ERROR,
          `No handler for message ${type}`,
        );
      }
      await handler(payload);
      return;
    }
    // RFC 4253 section 11.4: unknown message numbers get UNIMPLEMENTED.
    this.#queueUrgent(
      new SshWriter(8).byte(Msg.UNIMPLEMENTED).uint32(this.#currentSeq).bytes(),
    );
  }

  #onDisconnect(payload: Uint8Array): void {
    const r = new SshReader(payload, "DISCONNECT");
    r.byte();
    const reason = r.uint32();
    const description = r.utf8(64 * 1024).replace(
      // The peer's text goes into error messages; keep its control characters out.
      // deno-lint-ignore no-control-regex
      /[\x00-\x08\x0b-\x1f\x7f]/g,
      "?",
    );
    this.#fail(
      new DisconnectError(
        reason,
        `Disconnected by peer (reason ${reason}): ${description}`,
        { fromPeer: true },
      ),
    );
  }

  #onExtInfo(payload: Uint8Array): void {
    // RFC 8308 section 2.4: a server's EXT_INFO comes right after its first
    // NEWKEYS or right before USERAUTH_SUCCESS, so a client takes it only
    // before authentication ends; a client's only right after NEWKEYS.
    const allowed = this.#side === "client"
      ? this.#receivedNewKeys > 0 && !this.#authenticated
      : this.#receivedNewKeys === 1 && this.#packetsSinceNewKeys === 1;
    if (!allowed) {
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_ERROR,
        "EXT_INFO outside the places RFC 8308 allows",
      );
    }
    const r = new SshReader(payload, "EXT_INFO");
    r.byte();
    const count = r.uint32();
    // Each extension takes at least 8 bytes; bound the count by what remains.
    if (count > r.remaining / 8) {
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_ERROR,
        `EXT_INFO claims ${count} extensions in ${r.remaining} bytes`,
      );
    }
    for (let i = 0; i < count; i++) {
      const name = r.utf8(256);
      const value = r.string(64 * 1024);
      if (name === "server-sig-algs" && this.#side === "client") {
        this.#serverSigAlgs = new SshReader(
          new SshWriter().string(value).bytes(),
          "server-sig-algs",
        ).nameList();
      }
    }
  }

  // ---------------------------------------------------------------- key exchange

  #startKex(): void {
    if (this.#kex || this.#isClosed) return;
    const first = this.#sessionId === null;
    const kexList = [...this.#prefs.kex];
    if (first) {
      // Extension signals go in the first KEXINIT only (RFC 8308, OpenSSH
      // PROTOCOL section 1.10).
      kexList.push(this.#side === "client" ? "ext-info-c" : "ext-info-s");
      kexList.push(this.#side === "client" ? STRICT_C : STRICT_S);
    }
    const init: KexInit = {
      cookie: crypto.getRandomValues(new Uint8Array(16)),
      kex: kexList,
      hostKey: this.#prefs.hostKey,
      cipherC2S: this.#prefs.cipher,
      cipherS2C: this.#prefs.cipher,
      macC2S: this.#prefs.mac,
      macS2C: this.#prefs.mac,
      compC2S: this.#prefs.compression,
      compS2C: this.#prefs.compression,
      firstKexFollows: false,
    };
    const ourInit = encodeKexInit(init);
    this.#kex = {
      ourInit,
      ignoreNextKexPacket: false,
      strict: false,
      sentNewKeys: false,
      receivedNewKeys: false,
    };
    this.#queueUrgent(ourInit);
  }

  #onKexInit(payload: Uint8Array): void | Promise<void> {
    if (!this.#kex) this.#startKex();
    const kex = this.#kex!;
    if (kex.peerInit) {
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_ERROR,
        "Second KEXINIT during a key exchange",
      );
    }
    kex.peerInit = payload.slice();
    const peer = decodeKexInit(payload);
    const ours = decodeKexInit(kex.ourInit);
    const first = this.#sessionId === null;
    if (first) {
      kex.strict = peer.kex.includes(
        this.#side === "client" ? STRICT_S : STRICT_C,
      );
      if (kex.strict && this.#currentSeq !== 0) {
        throw new DisconnectError(
          DisconnectReason.PROTOCOL_ERROR,
          "Strict key exchange: KEXINIT was not the first packet",
        );
      }
      this.#peerWantsExtInfo = this.#side === "server" &&
        peer.kex.includes("ext-info-c");
    } else {
      kex.strict = this.#strict;
    }
    const [client, server] = this.#side === "client"
      ? [ours, peer]
      : [peer, ours];
    const n = negotiate(client, server);
    kex.negotiated = n;
    kex.method = kexMethod(n.kex);
    if (peer.firstKexFollows && !guessWasRight(peer, n)) {
      kex.ignoreNextKexPacket = true;
    }
    if (this.#side === "client") {
      kex.client = kex.method.client();
      this.#queueUrgent(
        new SshWriter(128).byte(Msg.KEX_INIT).raw(kex.client.publicEncoded)
          .bytes(),
      );
    }
    // zlib is loaded only when negotiated; the read loop waits for it, so
    // it is there before the keys (and compressors) of this exchange.
    if (n.compC2S !== "none" || n.compS2C !== "none") return loadCompression();
  }

  #strict = false;

  async #onKexMessage(payload: Uint8Array): Promise<void> {
    const kex = this.#kex;
    if (!kex?.peerInit || !kex.method || !kex.negotiated) {
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_ERROR,
        `Unexpected key exchange message ${payload[0]} before KEXINIT`,
      );
    }
    if (kex.ignoreNextKexPacket) {
      // RFC 4253 section 7: the peer guessed wrong; drop its guessed packet.
      kex.ignoreNextKexPacket = false;
      return;
    }
    if (kex.outgoing) {
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_ERROR,
        `Unexpected key exchange message ${payload[0]}`,
      );
    }
    const n = kex.negotiated;
    const hash = kex.method.hash;
    const [iC, iS] = this.#side === "client"
      ? [kex.ourInit, kex.peerInit]
      : [kex.peerInit, kex.ourInit];
    const [vC, vS] = this.#side === "client"
      ? [this.#ourId, this.#peerId]
      : [this.#peerId, this.#ourId];
    const exchangeHash = (
      hostKeyBlob: Uint8Array,
      qC: Uint8Array,
      qS: Uint8Array,
      k: Uint8Array,
    ) =>
      hashBytes(
        hash,
        new SshWriter(2048).string(vC).string(vS).string(iC).string(iS).string(
          hostKeyBlob,
        ).raw(qC).raw(qS).raw(k)
          .bytes(),
      );

    if (this.#side === "server") {
      if (payload[0] !== Msg.KEX_INIT) {
        throw new DisconnectError(
          DisconnectReason.PROTOCOL_ERROR,
          `Unexpected key exchange message ${payload[0]}`,
        );
      }
      const r = new SshReader(payload, "KEX init");
      r.byte();
      const result = kex.method.server(r);
      r.end();
      // A certificate algorithm presents the certificate as K_S and signs
      // with the certified key's plain algorithm (PROTOCOL.certkeys).
      const certPlain = plainAlgorithm(n.hostKey);
      const signAlgorithm = certPlain ?? n.hostKey;
      const cert = certPlain === null
        ? undefined
        : this.#options.hostCertificates!.find((c) =>
          c.signatureAlgorithms.includes(n.hostKey)
        )!;
      const hostKey = this.#options.hostKeys!.find((k) =>
        cert
          ? sameBytes(k.publicKey.blob, cert.key.blob)
          : k.publicKey.signatureAlgorithms.includes(n.hostKey)
      )!;
      const hostKeyBlob = cert?.blob ?? hostKey.publicKey.blob;
      const h = exchangeHash(
        hostKeyBlob,
        result.peerEncoded,
        result.publicEncoded,
        result.sharedSecret,
      );
      const signature = hostKey.sign(h, signAlgorithm);
      this.#queueUrgent(
        new SshWriter(1024).byte(Msg.KEX_REPLY).string(hostKeyBlob)
          .raw(result.publicEncoded).string(
            signature,
          ).bytes(),
      );
      this.#prepareKeys(kex, hash, result.sharedSecret, h);
    } else {
      if (payload[0] !== Msg.KEX_REPLY || !kex.client) {
        throw new DisconnectError(
          DisconnectReason.PROTOCOL_ERROR,
          `Unexpected key exchange message ${payload[0]}`,
        );
      }
      const r = new SshReader(payload, "KEX reply");
      r.byte();
      const hostKeyBlob = r.string(16 * 1024);
      const result = kex.client.finish(r);
      const signature = r.string(16 * 1024);
      r.end();
      const certPlain = plainAlgorithm(n.hostKey);
      const verifyAlgorithm = certPlain ?? n.hostKey;
      let hostKey: PublicKey;
      let certificate: Certificate | undefined;
      try {
        if (certPlain !== null) {
          certificate = parseCertificate(hostKeyBlob);
          hostKey = certificate.key;
        } else {
          hostKey = parsePublicKey(hostKeyBlob);
        }
      } catch (e) {
        throw new DisconnectError(
          DisconnectReason.HOST_KEY_NOT_VERIFIABLE,
          `Cannot parse the server's host ${
            certificate ? "certificate" : "key"
          }: ${(e as Error).message}`,
        );
      }
      if (certificate && certificate.certType !== "host") {
        throw new DisconnectError(
          DisconnectReason.HOST_KEY_NOT_VERIFIABLE,
          `Server presented a ${certificate.certType} certificate as its host certificate`,
        );
      }
      if (!hostKey.signatureAlgorithms.includes(verifyAlgorithm)) {
        throw new DisconnectError(
          DisconnectReason.HOST_KEY_NOT_VERIFIABLE,
          `Server sent a ${
            certificate?.type ?? hostKey.type
          } host key but ${n.hostKey} was negotiated`,
        );
      }
      const h = exchangeHash(
        hostKeyBlob,
        kex.client.publicEncoded,
        result.peerEncoded,
        result.sharedSecret,
      );
      if (!hostKey.verify(h, signature, verifyAlgorithm)) {
        throw new DisconnectError(
          DisconnectReason.HOST_KEY_NOT_VERIFIABLE,
          `Server's ${n.hostKey} signature over the exchange hash does not verify`,
        );
      }
      if (this.#hostKey) {
        // A rekey must not switch host keys (RFC 4253 section 9 implies
        // the same server; OpenSSH refuses a change too).
        if (!sameBytes(this.#hostKeyBlob!, hostKeyBlob)) {
          throw new DisconnectError(
            DisconnectReason.HOST_KEY_NOT_VERIFIABLE,
            "Server changed its host key during rekey",
          );
        }
      } else {
        let ok = false;
        try {
          ok = this.#options.verifyHostKey
            ? await this.#options.verifyHostKey(hostKey, {
              algorithm: n.hostKey,
              ...(certificate ? { certificate } : {}),
            })
            : false;
        } catch (e) {
          // Any error while checking a host key is fatal (CVE-2025-26465).
          throw new HostKeyError(
            `Host key check failed: ${(e as Error).message}`,
            { cause: e },
          );
        }
        if (!ok) {
          throw new HostKeyError(
            `Host key verification failed for ${hostKey.type} ${hostKey.fingerprint()}${
              this.#options.verifyHostKey
                ? ""
                : " (no verifyHostKey callback was given)"
            }`,
          );
        }
        this.#hostKey = hostKey;
        this.#hostKeyBlob = hostKeyBlob.slice();
        this.#hostCertificate = certificate ?? null;
      }
      this.#prepareKeys(kex, hash, result.sharedSecret, h);
    }
  }

  #prepareKeys(
    kex: KexState,
    hash: HashName,
    k: Uint8Array,
    h: Uint8Array,
  ): void {
    const n = kex.negotiated!;
    const sessionId = this.#sessionId ?? h;
    const derive = (letter: string, length: number) =>
      deriveKey(hash, k, h, letter, sessionId, length);
    const make = (
      cipherName: string,
      macName: string | null,
      comp: string,
      letters: string,
      mode: "seal" | "open",
    ) => {
      const ci = cipherInfo(cipherName);
      const mi = macName ? macInfo(macName) : null;
      const keys = {
        iv: derive(letters[0], ci.ivLength),
        key: derive(letters[1], ci.keyLength),
        macKey: mi ? derive(letters[2], mi.keyLength) : new Uint8Array(0),
      };
      // Delayed compression starts where authenticated() put it: incoming
      // at once, outgoing at its marker in the send queue.
      const started = mode === "seal"
        ? this.#outCompressionStarted
        : this.#authenticated;
      const delayed = comp === "zlib@openssh.com" && !started;
      const active = comp !== "none" && !delayed;
      return {
        cipher: createPacketCipher(cipherName, macName, keys, mode),
        compressor: active && mode === "seal" ? createCompressor(comp) : null,
        decompressor: active && mode === "open"
          ? createDecompressor(comp, { maxSize: MAX_PAYLOAD_LENGTH })
          : null,
        delayedCompression: delayed ? comp : null,
      };
    };
    const c2s = make(
      n.cipherC2S,
      n.macC2S,
      n.compC2S,
      "ACE",
      this.#side === "client" ? "seal" : "open",
    );
    const s2c = make(
      n.cipherS2C,
      n.macS2C,
      n.compS2C,
      "BDF",
      this.#side === "client" ? "open" : "seal",
    );
    kex.outgoing = this.#side === "client" ? c2s : s2c;
    kex.incoming = this.#side === "client" ? s2c : c2s;
    if (!this.#sessionId) this.#pendingSessionId = h;
    // Our NEWKEYS; the new keys apply to everything after it.
    this.#queueUrgent(
      new Uint8Array([Msg.NEWKEYS]),
      () => this.#afterNewKeysSent(kex),
    );
  }

  #pendingSessionId: Uint8Array | null = null;
  #receivedNewKeys = 0;

  #afterNewKeysSent(kex: KexState): void {
    const next = kex.outgoing!;
    this.#out = { ...next, seq: kex.strict ? 0 : this.#out.seq, bytes: 0 };
    kex.sentNewKeys = true;
    if (
      this.#side === "server" && this.#peerWantsExtInfo && this.#kexCount === 0
    ) {
      // RFC 8308 section 2.4: EXT_INFO right after our first NEWKEYS.
      const algs = this.#options.serverSigAlgs ?? [];
      this.#urgent.unshift({
        payload: new SshWriter(256).byte(Msg.EXT_INFO).uint32(1).string(
          "server-sig-algs",
        ).nameList(algs).bytes(),
        resolve: () => {},
        reject: () => {},
      });
    }
    this.#maybeFinishKex(kex);
  }

  #onNewKeys(payload: Uint8Array): void {
    const kex = this.#kex;
    if (!kex || !kex.incoming || kex.receivedNewKeys || payload.length !== 1) {
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_ERROR,
        "Unexpected NEWKEYS",
      );
    }
    const next = kex.incoming;
    this.#in = { ...next, seq: kex.strict ? 0 : this.#in.seq, bytes: 0 };
    kex.receivedNewKeys = true;
    this.#receivedNewKeys++;
    this.#packetsSinceNewKeys = 0;
    this.#maybeFinishKex(kex);
  }

  #maybeFinishKex(kex: KexState): void {
    if (!kex.sentNewKeys || !kex.receivedNewKeys || this.#kex !== kex) return;
    this.#kex = null;
    this.#kexCount++;
    this.#negotiated = kex.negotiated!;
    this.#strict = kex.strict;
    if (!this.#sessionId) {
      this.#sessionId = this.#pendingSessionId;
      this.#pendingSessionId = null;
      this.#firstKex.resolve();
      // Done with for good: keep the settled promise, not its resolvers.
      this.#firstKex = {
        promise: this.#firstKex.promise,
        resolve: ignore,
        reject: ignore,
      };
    }
    const interval = this.#options.rekeyInterval ?? 3600_000;
    this.#rekeyAt = interval > 0 ? Date.now() + interval : Infinity;
    Transport.#rekeyClock.set(this, this.#rekeyAt);
    const waiters = this.#kexWaiters;
    this.#kexWaiters = [];
    for (const w of waiters) w();
    this.#pump();
  }

  // ---------------------------------------------------------------- closing

  /**
   * Ends the transport. Protocol errors are reported to the peer with a
   * DISCONNECT first (best effort, bounded in time).
   */
  #fail(error: unknown, clean = false): void {
    if (this.#isClosed) return;
    const err = error instanceof Error ? error : new Error(String(error));
    this.#isClosed = true;
    this.#closeError = clean ? undefined : err;
    Transport.#rekeyClock.delete(this);
    const pending = [...this.#urgent, ...this.#app];
    this.#urgent = [];
    this.#app = [];
    const rejection = err instanceof DisconnectError
      ? err
      : new DisconnectError(
        DisconnectReason.CONNECTION_LOST,
        `Connection closed: ${err.message}`,
        { cause: err },
      );
    for (const p of pending) p.reject(rejection);
    for (const w of this.#kexWaiters) w();
    this.#kexWaiters = [];
    for (const wake of [this.#wakeReader, this.#wakeDispatch]) wake?.();
    this.#wakeReader = this.#wakeDispatch = null;
    this.#firstKex.reject(rejection);
    const sendDisconnect = !(err instanceof DisconnectError &&
      (err.fromPeer || err.reason === DisconnectReason.CONNECTION_LOST));
    const reason = err instanceof DisconnectError
      ? err.reason
      : err instanceof HostKeyError
      ? DisconnectReason.HOST_KEY_NOT_VERIFIABLE
      : DisconnectReason.PROTOCOL_ERROR;
    this.#shutdown(sendDisconnect ? reason : null, err.message).finally(() => {
      this.#options.onClose?.(this.#closeError);
      this.#closed.resolve(this.#closeError);
    });
  }

  async #shutdown(reason: number | null, description: string): Promise<void> {
    // Wait for a packet being written to finish so the DISCONNECT is not
    // interleaved with it; bounded so a stalled peer cannot hold us.
    const deadline = Date.now() + 2000;
    while (
      (this.#pumping || this.#flushing) && Date.now() < deadline
    ) await delay(5);
    if (
      reason !== null && !this.#pumping && !this.#flushing &&
      this.#peerId !== ""
    ) {
      const payload = new SshWriter(128).byte(Msg.DISCONNECT).uint32(reason)
        .string(description.slice(0, 512))
        .string("").bytes();
      try {
        this.#sealPacket(payload);
        await withTimeout(this.#flushing ?? Promise.resolve(), 1000);
      } catch {
        // The peer may be gone; closing is what matters.
      }
    }
    try {
      await withTimeout(this.#writer.close(), 200);
    } catch {
      // Already closed, errored, or the peer stopped reading.
    }
    try {
      await this.#writer.abort();
    } catch {
      // Already closed.
    }
    await this.#reader.cancel();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Races `promise` against a timer that is always cleared. */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`Timed out after ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}
