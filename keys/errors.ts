/**
 * The catchable error private key parsing throws.
 *
 * @module
 */

/** Why a private key file could not be loaded; see {@linkcode KeyParseError}. */
export type KeyParseErrorCode =
  | "passphrase-required"
  | "wrong-passphrase"
  | "truncated"
  | "unsupported-cipher"
  | "unsupported-key-type"
  | "malformed";

/**
 * Thrown by `parsePrivateKey` with a machine-readable {@linkcode code}, so a
 * caller can prompt for a passphrase (`"passphrase-required"`), prompt again
 * (`"wrong-passphrase"`), or report the file as unusable (the other codes).
 * RSA keys outside 2048..16384 bits are a limit, not a parse failure, and
 * throw {@linkcode RangeError} instead; bad arguments throw
 * {@linkcode TypeError}.
 *
 * @example Telling a missing passphrase apart
 * ```ts
 * import { KeyParseError } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const e = new KeyParseError("passphrase-required", "Key is encrypted");
 * assert.ok(e instanceof Error);
 * assert.equal(e.code, "passphrase-required");
 * ```
 */
export class KeyParseError extends Error {
  /** Machine-readable reason. */
  readonly code: KeyParseErrorCode;

  /** Creates an error with `code` and a human-readable `message`. */
  constructor(
    code: KeyParseErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "KeyParseError";
    this.code = code;
  }
}
