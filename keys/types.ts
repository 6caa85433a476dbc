/**
 * Key and signature contracts shared by transport (host keys) and auth (user
 * keys).
 *
 * @module
 */

/** Key type names as they appear first in a public key blob. */
export type KeyType =
  | "ssh-ed25519"
  | "ecdsa-sha2-nistp256"
  | "ecdsa-sha2-nistp384"
  | "ecdsa-sha2-nistp521"
  | "ssh-rsa";

/** A public key (RFC 4253 section 6.6). */
export interface PublicKey {
  /** Key type from the blob, e.g. `ssh-ed25519` or `ssh-rsa`. */
  readonly type: KeyType;
  /** The public key blob as sent on the wire. */
  readonly blob: Uint8Array;
  /** Key size in bits (256 for Ed25519, modulus bits for RSA). */
  readonly bits: number;
  /**
   * Signature algorithms this key can verify, strongest first
   * (`rsa-sha2-512`, `rsa-sha2-256` for RSA; never SHA-1 `ssh-rsa`).
   */
  readonly signatureAlgorithms: readonly string[];
  /**
   * Verifies a signature blob (`string algorithm || string signature`) over
   * `data`. The algorithm inside the blob must equal `algorithm` and be one
   * of {@linkcode signatureAlgorithms}; returns false on any mismatch or a
   * malformed blob (never throws for bad signatures).
   */
  verify(data: Uint8Array, signature: Uint8Array, algorithm: string): boolean;
  /** `SHA256:` + unpadded base64 of SHA-256 over the blob, as ssh-keygen -l. */
  fingerprint(): string;
  /** One-line OpenSSH form: `type base64 [comment]`. */
  toString(): string;
  /** Comment from the file it was read from, or "". */
  readonly comment: string;
}

/** A private key able to sign with its public key's algorithms. */
export interface PrivateKey {
  /** The matching public key. */
  readonly publicKey: PublicKey;
  /**
   * Signs `data` and returns the signature blob
   * (`string algorithm || string signature`). `algorithm` defaults to the
   * first of `publicKey.signatureAlgorithms`.
   */
  sign(data: Uint8Array, algorithm?: string): Uint8Array;
}
