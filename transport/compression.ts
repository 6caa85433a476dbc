/**
 * Payload compression (RFC 4253 section 6.2, OpenSSH PROTOCOL section 1.7).
 *
 * `zlib` and `zlib@openssh.com` both run one zlib (RFC 1950) stream per
 * direction for the whole connection (after the first key exchange that
 * selects them): every packet payload is deflated into that stream and
 * flushed, so the peer can inflate each packet completely as it arrives.
 * OpenSSH flushes with `Z_PARTIAL_FLUSH`; we flush with `Z_SYNC_FLUSH`
 * (an empty stored block, `00 00 ff ff`), which every inflater reads. The
 * two names differ only in *when* compression starts (`zlib@openssh.com`
 * waits for USERAUTH_SUCCESS); that timing is the transport's job.
 *
 * Compression uses the runtime's native zlib (`node:zlib`), one packet at
 * a time: each payload becomes raw DEFLATE blocks ending in a sync flush,
 * and the zlib header goes in front of the first packet only, so the
 * concatenated packets form one valid, never-ending zlib stream. Each
 * packet's blocks reference only that packet's bytes (Deno's `node:zlib`
 * ignores a preset `dictionary`, and has no synchronous streaming API), so
 * small interactive packets compress less than with a long-lived deflater;
 * bulk packets compress as usual. Any inflater reads the stream.
 *
 * Decompression must keep bit-level state between packets (after a
 * `Z_PARTIAL_FLUSH` the last bits of the empty marker block arrive with the
 * next packet), so it uses `fflate`'s streaming inflater. Its output is
 * bounded while inflating: input is fed in small slices and inflation
 * stops as soon as one packet's output passes the cap, so a decompression
 * bomb never gets to allocate its full size (see THREATS.md).
 *
 * @example Compress packets into one stream, refuse a bomb
 * ```ts
 * import assert from "node:assert/strict";
 *
 * await loadCompression();
 * assert.deepEqual(COMPRESSION_NAMES, ["none", "zlib@openssh.com", "zlib"]);
 * assert.equal(createCompressor("none"), null);
 * const level: CompressorOptions = { level: 6 };
 * const tx: Compressor = createCompressor("zlib@openssh.com", level)!;
 * const cap: DecompressorOptions = { maxSize: DEFAULT_MAX_DECOMPRESSED_SIZE };
 * const rx: Decompressor = createDecompressor("zlib@openssh.com", cap)!;
 * for (const text of ["ls -la\n", "ls -la\n", "exit\n"]) {
 *   const payload = new TextEncoder().encode(text);
 *   assert.deepEqual(rx.decompress(tx.compress(payload)), payload);
 * }
 * const big = tx.compress(new Uint8Array(DEFAULT_MAX_DECOMPRESSED_SIZE + 1));
 * assert.throws(() => rx.decompress(big), RangeError);
 * ```
 *
 * @module
 */
import type { Inflate } from "fflate/browser";

/** The zlib implementations, loaded on first use by {@linkcode loadCompression}. */
let zlib: typeof import("node:zlib") | null = null;
let inflater: typeof Inflate | null = null;

/**
 * Loads the zlib implementations (`node:zlib` and fflate's inflater). They
 * cost ~30 ms of start-up when imported eagerly and most connections never
 * negotiate compression, so the transport awaits this only once a key
 * exchange has chosen `zlib` or `zlib@openssh.com`; call it yourself before
 * {@linkcode createCompressor} or {@linkcode createDecompressor} with a zlib
 * name. Safe to call more than once.
 */
export async function loadCompression(): Promise<void> {
  if (zlib && inflater) return;
  const [z, f] = await Promise.all([
    import("node:zlib"),
    import("fflate/browser"),
  ]);
  zlib = z;
  inflater = f.Inflate;
}

function loaded<T>(lib: T | null): T {
  if (lib === null) {
    throw new Error(
      "zlib compression is not loaded yet: await loadCompression() first",
    );
  }
  return lib;
}

/**
 * Compression algorithm names we negotiate, in our order of preference for
 * the SSH_MSG_KEXINIT name-lists (RFC 4253 section 7.1).
 */
export const COMPRESSION_NAMES: readonly string[] = Object.freeze([
  "none",
  "zlib@openssh.com",
  "zlib",
]);

/** Compresses packet payloads into one ongoing zlib stream. */
export interface Compressor {
  /**
   * Compresses one packet payload and flushes, so that the returned bytes
   * (appended to everything returned before) let the peer recover the
   * whole payload at once.
   */
  compress(payload: Uint8Array): Uint8Array;
}

/** Inflates packet payloads from one ongoing zlib stream. */
export interface Decompressor {
  /**
   * Decompresses the compressed payload of one packet.
   *
   * @throws {RangeError} when the packet would inflate to more than the
   * configured `maxSize` (decompression bomb); checked while inflating.
   * @throws {SyntaxError} when the data is not a valid zlib stream.
   * After either error the decompressor is unusable (the stream state is
   * lost) and every further call throws again.
   */
  decompress(data: Uint8Array): Uint8Array;
}

/** Options for {@linkcode createCompressor}. */
export interface CompressorOptions {
  /**
   * zlib compression level, 0 (store only) to 9 (best).
   *
   * @default {6}
   */
  level?: number;
}

/** Options for {@linkcode createDecompressor}. */
export interface DecompressorOptions {
  /**
   * Largest decompressed payload accepted from one packet, in bytes.
   * OpenSSH caps a packet at 256 KiB; the extra 1 KiB covers headers.
   *
   * @default {263168}
   */
  maxSize?: number;
}

/** Default per-packet cap on inflated payload size: 256 KiB + 1 KiB. */
export const DEFAULT_MAX_DECOMPRESSED_SIZE = 262144 + 1024;

/**
 * Compressed bytes handed to the inflater at a time. DEFLATE expands at
 * most about 1032:1 (a 258-byte match in two bits), so one slice yields at
 * most ~2 MiB: that bounds the overshoot past `maxSize` before we stop.
 */
const INFLATE_SLICE = 2048;

function isZlibName(name: string): boolean {
  return name === "zlib" || name === "zlib@openssh.com";
}

function checkName(name: string): void {
  if (typeof name !== "string" || !COMPRESSION_NAMES.includes(name)) {
    throw new TypeError(
      `Unknown compression algorithm: ${JSON.stringify(name)}`,
    );
  }
}

/**
 * Creates the compressor for a negotiated algorithm; `null` for `"none"`.
 *
 * @throws {TypeError} for an unknown name or a level outside 0..9.
 * @throws {Error} for a zlib name before {@linkcode loadCompression}.
 *
 * See the module documentation for an example.
 */
export function createCompressor(
  name: string,
  options: CompressorOptions = {},
): Compressor | null {
  checkName(name);
  const level = options.level ?? 6;
  if (!Number.isInteger(level) || level < 0 || level > 9) {
    throw new TypeError(`Invalid zlib compression level: ${level}`);
  }
  if (!isZlibName(name)) return null;
  loaded(zlib);
  return new ZlibCompressor(level);
}

/**
 * Creates the decompressor for a negotiated algorithm; `null` for `"none"`.
 *
 * @throws {TypeError} for an unknown name or a `maxSize` that is not a
 * positive integer.
 * @throws {Error} for a zlib name before {@linkcode loadCompression}.
 *
 * See the module documentation for an example.
 */
export function createDecompressor(
  name: string,
  options: DecompressorOptions = {},
): Decompressor | null {
  checkName(name);
  const maxSize = options.maxSize ?? DEFAULT_MAX_DECOMPRESSED_SIZE;
  if (!Number.isSafeInteger(maxSize) || maxSize < 1) {
    throw new TypeError(`Invalid maximum decompressed size: ${maxSize}`);
  }
  return isZlibName(name) ? new ZlibDecompressor(maxSize) : null;
}

/** The two-byte zlib header (RFC 1950 section 2.2) for a level. */
function zlibHeader(level: number): Uint8Array {
  const cmf = 0x78; // CM 8 (deflate), CINFO 7 (32 KiB window)
  // FLEVEL is informational only (RFC 1950): 0 fastest .. 3 maximum.
  const flevel = level < 2 ? 0 : level < 6 ? 1 : level === 6 ? 2 : 3;
  let flg = flevel << 6;
  flg += 31 - ((cmf * 256 + flg) % 31); // FCHECK makes CMF*256+FLG % 31 == 0
  return new Uint8Array([cmf, flg]);
}

class ZlibCompressor implements Compressor {
  readonly #level: number;
  #header: Uint8Array | null;

  constructor(level: number) {
    this.#level = level;
    this.#header = zlibHeader(level);
  }

  compress(payload: Uint8Array): Uint8Array {
    if (!(payload instanceof Uint8Array)) {
      throw new TypeError("Cannot compress: payload is not a Uint8Array");
    }
    // Z_SYNC_FLUSH instead of Z_FINISH: no final block, no Adler-32 trailer,
    // the stream stays open for the next packet.
    const z = loaded(zlib);
    const body = z.deflateRawSync(payload, {
      level: this.#level,
      finishFlush: z.constants.Z_SYNC_FLUSH,
    });
    const header = this.#header;
    if (header === null) {
      return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    }
    this.#header = null;
    const out = new Uint8Array(header.length + body.length);
    out.set(header);
    out.set(body, header.length);
    return out;
  }
}

class ZlibDecompressor implements Decompressor {
  readonly #maxSize: number;
  readonly #inflate: Inflate;
  /** Bytes of the zlib header still to be checked (2 at first). */
  #header: number[] | null = [];
  #chunks: Uint8Array[] = [];
  #produced = 0;
  #failure: Error | null = null;

  constructor(maxSize: number) {
    this.#maxSize = maxSize;
    this.#inflate = new (loaded(inflater))((chunk: Uint8Array) => {
      if (chunk.length === 0) return;
      this.#chunks.push(chunk);
      this.#produced += chunk.length;
    });
  }

  decompress(data: Uint8Array): Uint8Array {
    if (this.#failure) {
      const Failure = this.#failure instanceof RangeError
        ? RangeError
        : SyntaxError;
      throw new Failure(
        `Cannot decompress: the stream already failed (${this.#failure.message})`,
      );
    }
    if (!(data instanceof Uint8Array)) {
      throw new TypeError("Cannot decompress: data is not a Uint8Array");
    }
    let offset = this.#header ? this.#readHeader(data) : 0;
    this.#chunks = [];
    this.#produced = 0;
    try {
      while (offset < data.length) {
        const end = Math.min(offset + INFLATE_SLICE, data.length);
        this.#inflate.push(data.subarray(offset, end));
        offset = end;
        if (this.#produced > this.#maxSize) {
          throw new RangeError(
            `Cannot decompress packet: output exceeds ${this.#maxSize} bytes`,
          );
        }
      }
    } catch (err) {
      this.#chunks = [];
      this.#failure = err instanceof RangeError ? err : new SyntaxError(
        `Cannot decompress packet: ${
          err instanceof Error ? err.message : String(err)
        }`,
        { cause: err },
      );
      throw this.#failure;
    }
    const chunks = this.#chunks;
    this.#chunks = [];
    if (chunks.length === 1) return chunks[0];
    const out = new Uint8Array(this.#produced);
    let at = 0;
    for (const chunk of chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }

  /**
   * Consumes and checks the zlib header (RFC 1950 section 2.2); returns how
   * many bytes of `data` it took. SSH never uses a preset dictionary.
   */
  #readHeader(data: Uint8Array): number {
    const header = this.#header!;
    let used = 0;
    while (header.length < 2 && used < data.length) header.push(data[used++]);
    if (header.length < 2) return used;
    const [cmf, flg] = header;
    let problem = "";
    if ((cmf & 0x0f) !== 8) problem = `compression method ${cmf & 0x0f}`;
    else if (cmf >> 4 > 7) problem = `window size code ${cmf >> 4}`;
    else if ((cmf * 256 + flg) % 31 !== 0) problem = "header check bits";
    else if (flg & 0x20) problem = "preset dictionary flag";
    if (problem) {
      const hex = ((cmf << 8) | flg).toString(16).padStart(4, "0");
      this.#failure = new SyntaxError(
        `Cannot decompress: bad zlib header 0x${hex} (${problem})`,
      );
      throw this.#failure;
    }
    this.#header = null;
    return used;
  }
}
