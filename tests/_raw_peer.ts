/**
 * A deliberately naive SSH peer for hostile-peer tests: it speaks the
 * plaintext part of the protocol by hand (version line, unencrypted packets,
 * a manual curve25519 exchange) so tests can send exactly the bytes they
 * want, in any order.
 */
import { Msg } from "../wire/messages.ts";
import { SshReader } from "../wire/reader.ts";
import { SshWriter } from "../wire/writer.ts";

export class RawPeer {
  readonly conn: Deno.TcpConn;
  #buf = new Uint8Array(0);
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
    this.#reader = conn.readable.getReader();
    this.#writer = conn.writable.getWriter();
  }

  static async connect(port: number): Promise<RawPeer> {
    return new RawPeer(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async write(bytes: Uint8Array | string): Promise<void> {
    await this.#writer.write(
      typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes,
    );
  }

  /** Reads more bytes; false at EOF or error. */
  async #fill(deadline: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const r = await Promise.race([
        this.#reader.read(),
        new Promise<never>((_, rej) => {
          timer = setTimeout(
            () => rej(new Error("RawPeer read timed out")),
            Math.max(1, deadline - Date.now()),
          );
        }),
      ]);
      if (r.done) return false;
      const next = new Uint8Array(this.#buf.length + r.value.length);
      next.set(this.#buf);
      next.set(r.value, this.#buf.length);
      this.#buf = next;
      return true;
    } catch (e) {
      if ((e as Error).message.includes("timed out")) throw e;
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads the peer's version line. */
  async readLine(timeout = 5000): Promise<string> {
    const deadline = Date.now() + timeout;
    for (;;) {
      const nl = this.#buf.indexOf(0x0a);
      if (nl !== -1) {
        const line = new TextDecoder().decode(this.#buf.subarray(0, nl))
          .replace(/\r$/, "");
        this.#buf = this.#buf.slice(nl + 1);
        return line;
      }
      if (!await this.#fill(deadline)) throw new Error("EOF before a line");
    }
  }

  /** Reads one plaintext packet payload, or null at EOF. */
  async readPacket(timeout = 5000): Promise<Uint8Array | null> {
    const deadline = Date.now() + timeout;
    while (this.#buf.length < 4) if (!await this.#fill(deadline)) return null;
    const len = new DataView(this.#buf.buffer, this.#buf.byteOffset).getUint32(
      0,
    );
    if (len > 300_000) {
      throw new Error(`RawPeer: peer sent packet length ${len}`);
    }
    while (this.#buf.length < 4 + len) {
      if (!await this.#fill(deadline)) return null;
    }
    const pad = this.#buf[4];
    const payload = this.#buf.slice(5, 4 + len - pad);
    this.#buf = this.#buf.slice(4 + len);
    return payload;
  }

  /** True when the peer closes the connection within `timeout`. */
  async waitClosed(timeout = 5000): Promise<boolean> {
    const deadline = Date.now() + timeout;
    try {
      while (await this.#fill(deadline)) {
        if (this.#buf.length > 1_000_000) this.#buf = new Uint8Array(0);
      }
      return true;
    } catch {
      return false;
    }
  }

  /** Reads packets until a DISCONNECT (returning its reason) or EOF (null). */
  async readUntilDisconnect(
    timeout = 5000,
  ): Promise<{ reason: number; description: string } | null> {
    for (;;) {
      const p = await this.readPacket(timeout);
      if (p === null) return null;
      if (p[0] === Msg.DISCONNECT) {
        const r = new SshReader(p);
        r.byte();
        return { reason: r.uint32(), description: r.utf8() };
      }
    }
  }

  /** Frames a payload as a plaintext packet (block size 8, valid padding). */
  static frame(
    payload: Uint8Array,
    options: { padding?: number; lengthOverride?: number } = {},
  ): Uint8Array {
    let pad = options.padding ?? 8 - ((5 + payload.length) % 8);
    if (options.padding === undefined && pad < 4) pad += 8;
    const total = 5 + payload.length + pad;
    const out = new Uint8Array(total);
    new DataView(out.buffer).setUint32(0, options.lengthOverride ?? total - 4);
    out[4] = pad;
    out.set(payload, 5);
    return out;
  }

  async sendPacket(payload: Uint8Array): Promise<void> {
    await this.write(RawPeer.frame(payload));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#reader.releaseLock();
      this.#writer.releaseLock();
    } catch {
      // ignore
    }
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}

/** A client KEXINIT payload offering curve25519 and the given extras. */
export function clientKexInit(
  options: {
    strict?: boolean;
    extraKex?: string[];
    kex?: string[];
    firstKexFollows?: boolean;
  } = {},
): Uint8Array {
  const kex = [
    ...(options.kex ?? ["curve25519-sha256"]),
    ...(options.extraKex ?? []),
  ];
  if (options.strict ?? true) kex.push("kex-strict-c-v00@openssh.com");
  return new SshWriter()
    .byte(Msg.KEXINIT)
    .raw(new Uint8Array(16))
    .nameList(kex)
    .nameList(["ssh-ed25519"])
    .nameList(["aes128-ctr"])
    .nameList(["aes128-ctr"])
    .nameList(["hmac-sha2-256-etm@openssh.com"])
    .nameList(["hmac-sha2-256-etm@openssh.com"])
    .nameList(["none"])
    .nameList(["none"])
    .nameList([])
    .nameList([])
    .boolean(options.firstKexFollows ?? false)
    .uint32(0)
    .bytes();
}
