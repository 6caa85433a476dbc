/**
 * SSH key material: public key blobs and text forms, OpenSSH private key
 * files (plain and bcrypt-encrypted), PEM private keys (PKCS#1, SEC1,
 * PKCS#8, encrypted PKCS#8 and legacy encrypted PEM) and public keys (SPKI,
 * PKCS#1, RFC 4716) read and written, authorized_keys, fingerprints, key
 * generation, and the signature algorithms `ssh-ed25519`,
 * `ecdsa-sha2-nistp256/384/521`, `rsa-sha2-512` and `rsa-sha2-256` (never
 * SHA-1 `ssh-rsa`).
 *
 * @example Generate a key, sign and verify
 * ```ts
 * import { generatePrivateKey, parsePublicKeyText } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const key = generatePrivateKey("rsa", { bits: 2048, comment: "me" });
 * const data = new TextEncoder().encode("session id");
 * const sig = key.sign(data, "rsa-sha2-256");
 * const pub = parsePublicKeyText(key.publicKey.toString());
 * assert.ok(pub.verify(data, sig, "rsa-sha2-256"));
 * assert.equal(pub.verify(data, sig, "rsa-sha2-512"), false);
 * ```
 *
 * @module
 */

export type { KeyType, PrivateKey, PublicKey } from "./types.ts";
export { SIGNATURE_ALGORITHMS, signatureAlgorithmsFor } from "./algorithms.ts";
export { KeyParseError, type KeyParseErrorCode } from "./errors.ts";
export { parsePublicKey, parsePublicKeyText } from "./public_key.ts";
export {
  type GenerateKeyOptions,
  type GenerateKeyType,
  generatePrivateKey,
} from "./private_key.ts";
export {
  encodePrivateKey,
  type EncodePrivateKeyOptions,
  parsePrivateKey,
  type ParsePrivateKeyOptions,
} from "./openssh_format.ts";
export {
  type AuthorizedKey,
  parseAuthorizedKeys,
  type ParseAuthorizedKeysOptions,
} from "./authorized_keys.ts";
export {
  type FingerprintHash,
  fingerprintMd5,
  fingerprintSha256,
  randomart,
  type RandomartOptions,
} from "./fingerprint.ts";
export { parsePublicKeyPem } from "./pem.ts";
export {
  encodePrivateKeyPem,
  type EncodePrivateKeyPemOptions,
  encodePublicKeyPem,
  type EncodePublicKeyPemOptions,
  type PemPrivateKeyFormat,
  type PemPublicKeyFormat,
} from "./pem_write.ts";
export {
  encodePublicKeyRfc4716,
  type EncodePublicKeyRfc4716Options,
  parsePublicKeyAny,
  parsePublicKeyRfc4716,
} from "./rfc4716.ts";
export {
  type AddKnownHostOptions,
  formatHostPort,
  hashHostname,
  type KnownHostKey,
  KnownHosts,
  type KnownHostsEntry,
  type KnownHostsLookup,
  type KnownHostsMarker,
  type KnownHostsRemoval,
  type ParseKnownHostsOptions,
} from "./known_hosts.ts";
export {
  CERT_FOREVER,
  Certificate,
  CERTIFICATE_ALGORITHMS,
  certificateAlgorithm,
  CertificateError,
  type CertificateErrorCode,
  type CertificateType,
  checkCertificate,
  type CheckCertificateOptions,
  DEFAULT_USER_EXTENSIONS,
  formatCertTime,
  isCertificateType,
  parseCertificate,
  parseCertificateText,
  plainAlgorithm,
  signCertificate,
  type SignCertificateOptions,
} from "./certificate.ts";
export {
  addressAllowed,
  authorizeCertificate,
  type AuthorizeCertificateOptions,
  type AuthorizedKeyMatch,
  type CertificateAuthorization,
  findAuthorizedKey,
  type FindAuthorizedKeyOptions,
  type KeyOptions,
  parseKeyOptions,
} from "./authorized_key_options.ts";
