/**
 * Key-exchange methods by name, and the key derivation of RFC 4253
 * section 7.2.
 *
 * Supported: the post-quantum hybrids `mlkem768x25519-sha256`
 * (draft-ietf-sshm-mlkem-hybrid-kex) and `sntrup761x25519-sha512` /
 * `sntrup761x25519-sha512@openssh.com`, then `curve25519-sha256` and
 * `curve25519-sha256@libssh.org` (RFC 8731), `ecdh-sha2-nistp256/384/521`
 * (RFC 5656) and `diffie-hellman-group14-sha256`, `-group16-sha512`, `-group18-sha512`
 * (RFC 8268). Each implements the {@linkcode KexMethod} contract of
 * `./types.ts`.
 *
 * @module
 */
import type { KexMethod } from "./types.ts";
import { curve25519Method } from "./_curve25519.ts";
import { ecdhMethod } from "./_ecdh.ts";
import { dhMethod } from "./_dh_groups.ts";
import { mlkem768x25519Method } from "./_mlkem768x25519.ts";
import { sntrup761x25519Method } from "./_sntrup761x25519.ts";

export type {
  HashName,
  KexClient,
  KexMethod,
  KexResult,
  KexServerResult,
} from "./types.ts";
export { deriveKey, hashBytes } from "./derive.ts";

const METHODS: ReadonlyMap<string, () => KexMethod> = new Map<
  string,
  () => KexMethod
>([
  ["mlkem768x25519-sha256", () => mlkem768x25519Method()],
  [
    "sntrup761x25519-sha512",
    () => sntrup761x25519Method("sntrup761x25519-sha512"),
  ],
  [
    "sntrup761x25519-sha512@openssh.com",
    () => sntrup761x25519Method("sntrup761x25519-sha512@openssh.com"),
  ],
  ["curve25519-sha256", () => curve25519Method("curve25519-sha256")],
  [
    "curve25519-sha256@libssh.org",
    () => curve25519Method("curve25519-sha256@libssh.org"),
  ],
  ["ecdh-sha2-nistp256", () => ecdhMethod("nistp256")],
  ["ecdh-sha2-nistp384", () => ecdhMethod("nistp384")],
  ["ecdh-sha2-nistp521", () => ecdhMethod("nistp521")],
  ["diffie-hellman-group16-sha512", () => dhMethod(16)],
  ["diffie-hellman-group18-sha512", () => dhMethod(18)],
  ["diffie-hellman-group14-sha256", () => dhMethod(14)],
]);

/**
 * Every key-exchange method this library implements, strongest first
 * (the post-quantum hybrids, curve25519, then the NIST curves, then the
 * finite-field groups).
 */
export const KEX_NAMES: readonly string[] = Object.freeze([...METHODS.keys()]);

/**
 * The default preference: the post-quantum hybrids first (ML-KEM-768, then
 * sntrup761, each with X25519, as OpenSSH 10 orders them), then curve25519,
 * then the finite-field groups (group14 last, as the weakest at about
 * 112-bit strength). The NIST-curve ECDH methods are left out unless
 * configured, as OpenSSH's hardening guides do; finite-field DH comes after curve25519 because it costs the
 * server far more CPU per handshake (DHEat).
 */
export const DEFAULT_KEX: readonly string[] = Object.freeze([
  "mlkem768x25519-sha256",
  "sntrup761x25519-sha512",
  "sntrup761x25519-sha512@openssh.com",
  "curve25519-sha256",
  "curve25519-sha256@libssh.org",
  "diffie-hellman-group16-sha512",
  "diffie-hellman-group18-sha512",
  "diffie-hellman-group14-sha256",
]);

const cache = new Map<string, KexMethod>();

/**
 * Looks up a key-exchange method by its negotiated name; throws `TypeError`
 * for a name this library does not implement.
 *
 * @example Run both sides of a curve25519 exchange in memory
 * ```ts
 * import { kexMethod } from "./mod.ts";
 * import { SshReader } from "../../wire/reader.ts";
 * import assert from "node:assert/strict";
 *
 * const method = kexMethod("curve25519-sha256");
 * const client = method.client();
 * const server = method.server(new SshReader(client.publicEncoded));
 * const result = client.finish(new SshReader(server.publicEncoded));
 * assert.deepEqual(result.sharedSecret, server.sharedSecret);
 * ```
 */
export function kexMethod(name: string): KexMethod {
  let method = cache.get(name);
  if (method) return method;
  const make = METHODS.get(name);
  if (!make) {
    throw new TypeError(
      `Unknown key exchange method ${JSON.stringify(name)}`,
    );
  }
  method = make();
  cache.set(name, method);
  return method;
}
