/**
 * Signature algorithm names (RFC 8709, RFC 5656 section 3.1, RFC 8332) and
 * which key type can make which.
 *
 * @module
 */

import type { KeyType } from "./types.ts";

/**
 * Every signature algorithm we accept, strongest first. SHA-1 `ssh-rsa`
 * signatures are deliberately absent (RFC 8332, THREATS.md).
 */
export const SIGNATURE_ALGORITHMS: readonly string[] = Object.freeze([
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
]);

/** Key types we parse, in the order of {@linkcode SIGNATURE_ALGORITHMS}. */
export const KEY_TYPES: readonly KeyType[] = Object.freeze(
  [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
  ] as const,
);

const RSA_ALGORITHMS: readonly string[] = Object.freeze([
  "rsa-sha2-512",
  "rsa-sha2-256",
]);
const BY_TYPE: ReadonlyMap<KeyType, readonly string[]> = new Map<
  KeyType,
  readonly string[]
>([
  ["ssh-ed25519", Object.freeze(["ssh-ed25519"])],
  ["ecdsa-sha2-nistp256", Object.freeze(["ecdsa-sha2-nistp256"])],
  ["ecdsa-sha2-nistp384", Object.freeze(["ecdsa-sha2-nistp384"])],
  ["ecdsa-sha2-nistp521", Object.freeze(["ecdsa-sha2-nistp521"])],
  ["ssh-rsa", RSA_ALGORITHMS],
]);

/** Whether `name` is one of the key types we support. */
export function isKeyType(name: string): name is KeyType {
  return BY_TYPE.has(name as KeyType);
}

/**
 * The signature algorithms a key of `type` can make, strongest first. An
 * `ssh-rsa` key gives `["rsa-sha2-512", "rsa-sha2-256"]` (never SHA-1).
 *
 * @example RSA keys sign with SHA-2 only
 * ```ts
 * import { signatureAlgorithmsFor } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(signatureAlgorithmsFor("ssh-rsa"), ["rsa-sha2-512", "rsa-sha2-256"]);
 * assert.deepEqual(signatureAlgorithmsFor("ssh-ed25519"), ["ssh-ed25519"]);
 * ```
 */
export function signatureAlgorithmsFor(type: KeyType): readonly string[] {
  const algs = BY_TYPE.get(type);
  if (algs === undefined) {
    throw new TypeError(`Unsupported key type ${JSON.stringify(type)}`);
  }
  return algs;
}
