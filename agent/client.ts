/**
 * Client for the ssh-agent protocol (draft-miller-ssh-agent; OpenSSH
 * PROTOCOL.agent): list keys, sign with them, add and remove keys, lock
 * and unlock, over a Unix socket or any {@linkcode Duplex}.
 *
 * Every frame is `uint32 length || payload` (section 3). The agent is a
 * peer we do not trust blindly: frames are bounded to 256 KiB, identity
 * counts are bounded by the bytes that remain, and every signature is
 * verified with the public key before it is returned.
 *
 * @module
 */

import type { Duplex } from "../transport/duplex.ts";
import type { PrivateKey, PublicKey } from "../keys/types.ts";
import { parsePublicKey } from "../keys/public_key.ts";
import { SshReader } from "../wire/reader.ts";
import { SshWriter } from "../wire/writer.ts";
import {
  AgentMsg,
  Constraint,
  MAX_FRAME,
  signFlags,
  writeAgentKey,
} from "./_protocol.ts";

/**
 * The agent refused a request (`SSH_AGENT_FAILURE`), returned a signature
 * that does not verify, or the connection to it ended.
 */
export class AgentError extends Error {
  /** The reply message number, or null when there was no reply. */
  readonly reply: number | null;

  /** Creates an error; `reply` is the agent's message number, if any. */
  constructor(message: string, reply: number | null = null) {
    super(message);
    this.name = "AgentError";
    this.reply = reply;
  }
}

/** One key held by the agent. */
export interface AgentIdentity {
  /** The public key. */
  readonly key: PublicKey;
  /** The comment the key was added with. */
  readonly comment: string;
}

/** Options for {@linkcode AgentClient}. */
export interface AgentClientOptions {
  /**
   * Milliseconds to wait for each reply before the connection is given up
   * (0 waits forever). Signing with a `confirm` key waits for a human, so
   * raise this when using such keys.
   *
   * @default {30000}
   */
  timeout?: number;
}

/** Constraints for {@linkcode AgentClient.addIdentity} (section 4.2.6). */
export interface AddIdentityOptions {
  /**
   * Seconds after which the agent forgets the key (`LIFETIME`, 1..2^32-1).
   */
  lifetime?: number;
  /**
   * Ask the user (through `ssh-askpass`) before every use (`CONFIRM`).
   *
   * @default {false}
   */
  confirm?: boolean;
  /**
   * Comment stored with the key.
   *
   * @default {the public key's comment}
   */
  comment?: string;
}

/**
 * Something that signs for `publickey` authentication asynchronously; it
 * fits `ClientAuthOptions.privateKeys`.
 */
export interface AgentSigner {
  /** The public half, sent to the server. */
  readonly publicKey: PublicKey;
  /** Asks the agent for a signature blob (`string alg || string sig`). */
  sign(data: Uint8Array, algorithm?: string): Promise<Uint8Array>;
}

const encoder = new TextEncoder();

/**
 * A connection to an ssh-agent. Requests are sent one at a time, in call
 * order; a malformed or oversized reply closes the connection.
 *
 * @example Sign with the first key of the user's agent
 * ```ts ignore
 * import { AgentClient } from "@fynx/ssh/agent";
 *
 * const agent = await AgentClient.connect(); // $SSH_AUTH_SOCK
 * try {
 *   const [first] = await agent.listIdentities();
 *   const sig = await agent.sign(first.key, new TextEncoder().encode("hi"));
 *   console.log(first.key.fingerprint(), sig.length);
 * } finally {
 *   agent.close();
 * }
 * ```
 */
export class AgentClient {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #conn: Deno.Conn | null;
  readonly #timeout: number;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #queue: Promise<unknown> = Promise.resolve();
  #broken: Error | null = null;
  #closed = false;

  /**
   * Wraps a connected duplex. `conn`, when given, is closed by
   * {@linkcode close} (used by {@linkcode connect}).
   */
  constructor(
    duplex: Duplex,
    options: AgentClientOptions = {},
    conn: Deno.Conn | null = null,
  ) {
    const timeout = options.timeout ?? 30_000;
    if (!Number.isFinite(timeout) || timeout < 0) {
      throw new TypeError(
        `Cannot create AgentClient: timeout must be >= 0, got ${timeout}`,
      );
    }
    this.#timeout = timeout;
    this.#reader = duplex.readable.getReader();
    this.#writer = duplex.writable.getWriter();
    this.#conn = conn;
  }

  /**
   * Connects to the agent's Unix socket at `path`, by default the
   * `SSH_AUTH_SOCK` environment variable.
   */
  static async connect(
    path?: string,
    options: AgentClientOptions = {},
  ): Promise<AgentClient> {
    const socket = path ?? Deno.env.get("SSH_AUTH_SOCK");
    if (!socket) {
      throw new TypeError(
        "Cannot connect to ssh-agent: no path given and SSH_AUTH_SOCK is not set",
      );
    }
    const conn = await Deno.connect({ transport: "unix", path: socket });
    try {
      return new AgentClient(conn, options, conn);
    } catch (e) {
      conn.close();
      throw e;
    }
  }

  /**
   * Lists the agent's keys (section 4.4). Keys of types this library does
   * not parse (certificates, FIDO `sk-` keys, DSA) are skipped.
   */
  async listIdentities(): Promise<AgentIdentity[]> {
    const reply = await this.#request(
      new Uint8Array([AgentMsg.REQUEST_IDENTITIES]),
      "list identities",
    );
    const r = this.#expect(
      reply,
      AgentMsg.IDENTITIES_ANSWER,
      "list identities",
    );
    const count = r.uint32();
    // Each identity takes at least two empty strings: never trust the count
    // beyond what the frame can hold.
    if (count > r.remaining / 8) {
      throw this.#fail(
        new SyntaxError(
          `Malformed agent IDENTITIES_ANSWER: ${count} identities cannot fit in ${r.remaining} bytes`,
        ),
      );
    }
    const out: AgentIdentity[] = [];
    try {
      for (let i = 0; i < count; i++) {
        const blob = r.string();
        const comment = r.utf8();
        let key: PublicKey;
        try {
          key = parsePublicKey(blob.slice(), comment);
        } catch {
          continue; // a key type we do not support
        }
        out.push(Object.freeze({ key, comment }));
      }
      r.end();
    } catch (e) {
      throw this.#fail(e as Error);
    }
    return out;
  }

  /**
   * Asks the agent to sign `data` with `key` (section 4.5) and returns the
   * signature blob (`string algorithm || string signature`). `algorithm`
   * defaults to the key's strongest; for RSA it selects the
   * `SSH_AGENT_RSA_SHA2_256`/`_512` flag. The signature is verified with
   * `key` before it is returned.
   */
  async sign(
    key: PublicKey,
    data: Uint8Array,
    algorithm?: string,
  ): Promise<Uint8Array> {
    if (!(data instanceof Uint8Array)) {
      throw new TypeError("Cannot sign with agent: data must be a Uint8Array");
    }
    const alg = algorithm ?? key.signatureAlgorithms[0];
    if (!key.signatureAlgorithms.includes(alg)) {
      throw new TypeError(
        `Cannot sign with agent using ${
          JSON.stringify(alg)
        }: a ${key.type} key signs with ${key.signatureAlgorithms.join(", ")}`,
      );
    }
    const msg = new SshWriter(key.blob.length + data.length + 32)
      .byte(AgentMsg.SIGN_REQUEST).string(key.blob).string(data)
      .uint32(signFlags(alg)).bytes();
    const reply = await this.#request(msg, "sign");
    const r = this.#expect(reply, AgentMsg.SIGN_RESPONSE, "sign");
    let sig: Uint8Array;
    try {
      sig = r.string().slice();
      r.end();
    } catch (e) {
      throw this.#fail(e as Error);
    }
    if (!key.verify(data, sig, alg)) {
      throw new AgentError(
        `Agent signature with ${alg} for ${key.fingerprint()} failed verification`,
        AgentMsg.SIGN_RESPONSE,
      );
    }
    return sig;
  }

  /**
   * Adds a private key created by this library (`parsePrivateKey` or
   * `generatePrivateKey`) to the agent (sections 4.2 and 4.2.6), with
   * optional lifetime and confirm constraints.
   */
  async addIdentity(
    key: PrivateKey,
    options: AddIdentityOptions = {},
  ): Promise<void> {
    const { lifetime, confirm = false } = options;
    const comment = options.comment ?? key.publicKey.comment;
    if (typeof comment !== "string") {
      throw new TypeError("Cannot add identity: comment must be a string");
    }
    if (
      lifetime !== undefined &&
      (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > 0xffffffff)
    ) {
      throw new TypeError(
        `Cannot add identity: lifetime must be an integer 1..4294967295, got ${lifetime}`,
      );
    }
    const constrained = lifetime !== undefined || confirm;
    const w = new SshWriter(4096).byte(
      constrained ? AgentMsg.ADD_ID_CONSTRAINED : AgentMsg.ADD_IDENTITY,
    );
    writeAgentKey(w, key, comment);
    if (lifetime !== undefined) w.byte(Constraint.LIFETIME).uint32(lifetime);
    if (confirm) w.byte(Constraint.CONFIRM);
    const msg = w.bytes();
    try {
      await this.#simple(msg, "add identity");
    } finally {
      msg.fill(0); // holds the secret numbers
    }
  }

  /** Removes one key from the agent (section 4.3). */
  async removeIdentity(key: PublicKey): Promise<void> {
    const msg = new SshWriter(key.blob.length + 16)
      .byte(AgentMsg.REMOVE_IDENTITY).string(key.blob).bytes();
    await this.#simple(msg, "remove identity");
  }

  /** Removes every key from the agent (section 4.3). */
  async removeAll(): Promise<void> {
    await this.#simple(
      new Uint8Array([AgentMsg.REMOVE_ALL_IDENTITIES]),
      "remove all identities",
    );
  }

  /** Locks the agent with a passphrase (section 4.6). */
  async lock(passphrase: string): Promise<void> {
    await this.#lockUnlock(AgentMsg.LOCK, passphrase, "lock");
  }

  /** Unlocks an agent locked with {@linkcode lock} (section 4.6). */
  async unlock(passphrase: string): Promise<void> {
    await this.#lockUnlock(AgentMsg.UNLOCK, passphrase, "unlock");
  }

  /** Closes the connection; pending and later requests fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#broken ??= new AgentError("Agent connection closed");
    this.#reader.cancel().catch(() => {});
    this.#writer.abort().catch(() => {});
    if (this.#conn) {
      try {
        this.#conn.close();
      } catch {
        // already closed by the stream cancellation
      }
    }
  }

  async #lockUnlock(
    type: number,
    passphrase: string,
    what: string,
  ): Promise<void> {
    if (typeof passphrase !== "string") {
      throw new TypeError(`Cannot ${what} agent: passphrase must be a string`);
    }
    const pass = encoder.encode(passphrase);
    const msg = new SshWriter(pass.length + 16).byte(type).string(pass)
      .bytes();
    pass.fill(0);
    try {
      await this.#simple(msg, what);
    } finally {
      msg.fill(0);
    }
  }

  /** Sends a request whose only good answer is SSH_AGENT_SUCCESS. */
  async #simple(msg: Uint8Array, what: string): Promise<void> {
    const reply = await this.#request(msg, what);
    this.#expect(reply, AgentMsg.SUCCESS, what).end();
  }

  /** Checks the reply type; FAILURE becomes an {@linkcode AgentError}. */
  #expect(reply: Uint8Array, type: number, what: string): SshReader {
    const code = reply[0];
    if (code === AgentMsg.FAILURE || code === AgentMsg.EXTENSION_FAILURE) {
      throw new AgentError(`Agent refused to ${what}`, code);
    }
    if (code !== type) {
      throw this.#fail(
        new SyntaxError(
          `Malformed agent reply to ${what}: expected message ${type}, got ${code}`,
        ),
      );
    }
    const r = new SshReader(reply, `agent reply to ${what}`);
    r.byte();
    return r;
  }

  /** Marks the connection unusable (the stream is out of sync) and closes. */
  #fail(e: Error): Error {
    this.#broken ??= e;
    this.close();
    return e;
  }

  /** Queues one request and resolves with its reply payload. */
  #request(msg: Uint8Array, what: string): Promise<Uint8Array> {
    if (msg.length > MAX_FRAME) {
      return Promise.reject(
        new RangeError(
          `Cannot ${what}: request of ${msg.length} bytes exceeds the agent limit of ${MAX_FRAME}`,
        ),
      );
    }
    const run = this.#queue.then(() => this.#exchange(msg, what));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #exchange(msg: Uint8Array, what: string): Promise<Uint8Array> {
    if (this.#broken) throw this.#broken;
    const frame = new Uint8Array(4 + msg.length);
    new DataView(frame.buffer).setUint32(0, msg.length);
    frame.set(msg, 4);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const work = (async () => {
        await this.#writer.write(frame);
        const head = await this.#take(4);
        const len = new DataView(head.buffer, head.byteOffset).getUint32(0);
        if (len === 0) {
          throw new SyntaxError(
            `Malformed agent reply to ${what}: empty frame`,
          );
        }
        if (len > MAX_FRAME) {
          throw new RangeError(
            `Agent reply to ${what} of ${len} bytes exceeds the limit of ${MAX_FRAME}`,
          );
        }
        return await this.#take(len);
      })();
      if (this.#timeout === 0) return await work;
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new AgentError(
                `Agent did not answer ${what} within ${this.#timeout} ms`,
              ),
            ),
          this.#timeout,
        );
      });
      // On timeout `work` settles once close() cancels the reader.
      work.catch(() => {});
      return await Promise.race([work, expired]);
    } catch (e) {
      throw this.#fail(e as Error);
    } finally {
      frame.fill(0);
      clearTimeout(timer);
    }
  }

  /** Reads exactly `n` bytes from the agent. */
  async #take(n: number): Promise<Uint8Array> {
    while (this.#buffered < n) {
      const { value, done } = await this.#reader.read();
      if (done) {
        throw new AgentError(
          this.#closed
            ? "Agent connection closed"
            : "Agent closed the connection",
        );
      }
      if (value.length === 0) continue;
      this.#chunks.push(value);
      this.#buffered += value.length;
    }
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const chunk = this.#chunks[0];
      const part = Math.min(chunk.length, n - off);
      out.set(chunk.subarray(0, part), off);
      off += part;
      if (part === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(part);
    }
    this.#buffered -= n;
    return out;
  }
}

/**
 * A signer for `publickey` authentication backed by the agent: pass it in
 * `ClientAuthOptions.privateKeys` next to (or instead of) private keys.
 *
 * @example
 * ```ts ignore
 * import { AgentClient, agentSigner } from "@fynx/ssh/agent";
 *
 * const agent = await AgentClient.connect();
 * const signers = (await agent.listIdentities()).map((id) => agentSigner(agent, id));
 * ```
 */
export function agentSigner(
  agent: AgentClient,
  identity: AgentIdentity | PublicKey,
): AgentSigner {
  const publicKey = "key" in identity ? identity.key : identity;
  return Object.freeze({
    publicKey,
    sign: (data: Uint8Array, algorithm?: string): Promise<Uint8Array> =>
      agent.sign(publicKey, data, algorithm),
  });
}
