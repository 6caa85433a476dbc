/**
 * Public key fingerprints as `ssh-keygen -l` prints them, and the
 * "randomart" picture of `ssh-keygen -lv` (OpenSSH `sshkey.c`
 * `fingerprint_randomart`, after "The drunken bishop" by Loss, Limmer and
 * von Gernler), which lets a person compare host keys at a glance.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { encodeBase64 } from "./_util.ts";
import type { PublicKey } from "./types.ts";

/** Digest a fingerprint or randomart is computed over. */
export type FingerprintHash = "sha256" | "md5";

/** Options for {@linkcode randomart}. */
export interface RandomartOptions {
  /**
   * Digest of the key blob the bishop walks over, as `ssh-keygen -E`.
   *
   * @default {"sha256"}
   */
  hash?: FingerprintHash;
}

function checkKey(key: PublicKey, what: string): Uint8Array {
  if (
    key === null || typeof key !== "object" ||
    !(key.blob instanceof Uint8Array)
  ) {
    throw new TypeError(`Cannot compute ${what}: key must be a PublicKey`);
  }
  return key.blob;
}

/**
 * `SHA256:` followed by the unpadded base64 SHA-256 of the key blob, the
 * default of `ssh-keygen -l` (same as `key.fingerprint()`).
 *
 * @example
 * ```ts
 * import { fingerprintSha256, generatePrivateKey } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const key = generatePrivateKey("ed25519").publicKey;
 * assert.equal(fingerprintSha256(key), key.fingerprint());
 * ```
 */
export function fingerprintSha256(key: PublicKey): string {
  const blob = checkKey(key, "fingerprint");
  const digest = createHash("sha256").update(blob).digest();
  return "SHA256:" + encodeBase64(digest).replace(/=+$/, "");
}

/**
 * `MD5:` followed by the colon-separated lowercase hex MD5 of the key
 * blob, as `ssh-keygen -l -E md5` prints (the pre-6.8 fingerprint; MD5 is
 * only fit for display, never for trust decisions on its own).
 *
 * @example
 * ```ts
 * import { fingerprintMd5, generatePrivateKey } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const fp = fingerprintMd5(generatePrivateKey("ed25519").publicKey);
 * assert.match(fp, /^MD5(:[0-9a-f]{2}){16}$/);
 * ```
 */
export function fingerprintMd5(key: PublicKey): string {
  const blob = checkKey(key, "fingerprint");
  const digest = createHash("md5").update(blob).digest();
  return "MD5:" + [...digest].map((b) => b.toString(16).padStart(2, "0"))
    .join(":");
}

/** Field size of the picture: 2 * 8 + 1 columns, 8 + 1 rows. */
const WIDTH = 17;
const HEIGHT = 9;
/** Symbols by visit count; the last two mark the start and the end. */
const SYMBOLS = " .o+=*BOX@%&#/^SE";

/** Name ssh-keygen prints for a key type (`sshkey_type`). */
function shortType(type: string): string {
  if (type === "ssh-ed25519") return "ED25519";
  if (type === "ssh-rsa") return "RSA";
  if (type.startsWith("ecdsa-sha2-")) return "ECDSA";
  return type.toUpperCase();
}

/** Centers `label` in a 17-dash border line between "+" corners. */
function border(label: string): string {
  const pad = Math.floor((WIDTH - label.length) / 2);
  return "+" + "-".repeat(pad) + label +
    "-".repeat(WIDTH - pad - label.length) + "+";
}

/**
 * The randomart picture `ssh-keygen -lv` prints under the fingerprint: a
 * bishop starts in the middle of a 17x9 field and, for each pair of bits
 * of the digest (low bits of each byte first), moves one step diagonally
 * (bit 0: right/left, bit 1: down/up), staying inside the field; each
 * square shows how often it was visited, `S` the start and `E` the end.
 * Lines are joined with "\n", no trailing newline.
 *
 * @example
 * ```ts
 * import { generatePrivateKey, randomart } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const art = randomart(generatePrivateKey("ed25519").publicKey);
 * const lines = art.split("\n");
 * assert.equal(lines.length, 11);
 * assert.equal(lines[0], "+--[ED25519 256]--+");
 * assert.equal(lines[10], "+----[SHA256]-----+");
 * ```
 */
export function randomart(
  key: PublicKey,
  options: RandomartOptions = {},
): string {
  const blob = checkKey(key, "randomart");
  const hash = options.hash ?? "sha256";
  if (hash !== "sha256" && hash !== "md5") {
    throw new TypeError(
      `Cannot compute randomart: unknown hash ${JSON.stringify(hash)}`,
    );
  }
  const digest = createHash(hash).update(blob).digest();
  const max = SYMBOLS.length - 1;
  const field = new Uint8Array(WIDTH * HEIGHT);
  let x = WIDTH >> 1;
  let y = HEIGHT >> 1;
  for (const byte of digest) {
    let input = byte;
    for (let step = 0; step < 4; step++) {
      x = Math.min(Math.max(x + ((input & 1) ? 1 : -1), 0), WIDTH - 1);
      y = Math.min(Math.max(y + ((input & 2) ? 1 : -1), 0), HEIGHT - 1);
      // Counts saturate below the two marker symbols.
      if (field[y * WIDTH + x] < max - 2) field[y * WIDTH + x]++;
      input >>= 2;
    }
  }
  field[(HEIGHT >> 1) * WIDTH + (WIDTH >> 1)] = max - 1;
  field[y * WIDTH + x] = max;
  // OpenSSH formats "[TYPE BITS]" into a 17-byte buffer (16 characters);
  // when that does not fit it falls back to "[TYPE]".
  let title = `[${shortType(key.type)} ${key.bits}]`;
  if (title.length > WIDTH) title = `[${shortType(key.type)}]`;
  title = title.slice(0, WIDTH - 1);
  const footer = `[${hash.toUpperCase()}]`.slice(0, WIDTH - 1);
  const lines = [border(title)];
  for (let row = 0; row < HEIGHT; row++) {
    let line = "|";
    for (let col = 0; col < WIDTH; col++) {
      line += SYMBOLS[Math.min(field[row * WIDTH + col], max)];
    }
    lines.push(line + "|");
  }
  lines.push(border(footer));
  return lines.join("\n");
}
