/**
 * The catchable domain errors of `@fynx/ssh`.
 *
 * Bad arguments throw `TypeError`, exceeded limits `RangeError`, malformed
 * input `SyntaxError`; what is left are the SSH-specific outcomes below.
 *
 * @module
 */

/**
 * The connection ended with (or must end with) an SSH DISCONNECT.
 *
 * Thrown by protocol code to end a connection with a given reason code
 * (RFC 4253 section 11.1); surfaced to the application when the peer
 * disconnects or the transport fails.
 *
 * @example Catch a disconnect and read its reason
 * ```ts
 * import { DisconnectError } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const err = new DisconnectError(2, "Unexpected message 52 before authentication");
 * assert.equal(err.reason, 2);
 * assert.equal(err.name, "DisconnectError");
 * ```
 */
export class DisconnectError extends Error {
  /** Reason code (see `DisconnectReason`). */
  readonly reason: number;
  /** True when the peer sent the DISCONNECT (false when we ended it). */
  readonly fromPeer: boolean;

  /** Creates the error; `fromPeer` marks a DISCONNECT that the peer sent. */
  constructor(
    reason: number,
    message: string,
    options?: { fromPeer?: boolean; cause?: unknown },
  ) {
    super(
      message,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "DisconnectError";
    this.reason = reason;
    this.fromPeer = options?.fromPeer ?? false;
  }
}

/** The server's host key was rejected (unknown, changed, or unverifiable). */
export class HostKeyError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "HostKeyError";
  }
}

/** Authentication failed: every method the client had was refused. */
export class AuthError extends Error {
  /** Methods the server said could continue, from the last failure. */
  readonly methods: readonly string[];
  /** Creates the error. */
  constructor(message: string, methods: readonly string[] = []) {
    super(message);
    this.name = "AuthError";
    this.methods = methods;
  }
}

/** The peer refused to open a channel (RFC 4254 section 5.1). */
export class ChannelOpenError extends Error {
  /** Reason code (see `ChannelOpenFailure`). */
  readonly reason: number;
  /**
   * The peer's description of the failure, made printable (e.g.
   * `Connection refused`); `""` when it sent none or the refusal is ours.
   */
  readonly description: string;
  /** Creates the error. */
  constructor(reason: number, message: string, description = "") {
    super(message);
    this.name = "ChannelOpenError";
    this.reason = reason;
    this.description = description;
  }
}
