/**
 * Message numbers, flags and limits of the ssh-agent protocol
 * (draft-miller-ssh-agent, OpenSSH PROTOCOL.agent), and the agent wire form
 * of our private keys.
 *
 * @module
 */

import type { SshWriter } from "../wire/writer.ts";
import { privateParts } from "../keys/private_key.ts";
import { ownPublicKey } from "../keys/public_key.ts";
import { writePrivateKeyFields } from "../keys/openssh_format.ts";
import type { PrivateKey } from "../keys/types.ts";

/** Message numbers (draft-miller-ssh-agent section 6.1). */
export const AgentMsg = {
  FAILURE: 5,
  SUCCESS: 6,
  REQUEST_IDENTITIES: 11,
  IDENTITIES_ANSWER: 12,
  SIGN_REQUEST: 13,
  SIGN_RESPONSE: 14,
  ADD_IDENTITY: 17,
  REMOVE_IDENTITY: 18,
  REMOVE_ALL_IDENTITIES: 19,
  LOCK: 22,
  UNLOCK: 23,
  ADD_ID_CONSTRAINED: 25,
  /** Sent by agents for a failed extension request (section 6.1). */
  EXTENSION_FAILURE: 28,
} as const;

/** Key constraints (draft-miller-ssh-agent section 6.3). */
export const Constraint = {
  LIFETIME: 1,
  CONFIRM: 2,
} as const;

/** Signature flags (draft-miller-ssh-agent section 6.4). */
export const SignFlag = {
  RSA_SHA2_256: 2,
  RSA_SHA2_512: 4,
} as const;

/**
 * Largest frame we send or accept. OpenSSH's agent uses the same bound
 * (AGENT_MAX_LEN, 256 KiB in authfd.c / ssh-agent.c).
 */
export const MAX_FRAME = 256 * 1024;

/** The signature flags for a signature algorithm. */
export function signFlags(algorithm: string): number {
  if (algorithm === "rsa-sha2-256") return SignFlag.RSA_SHA2_256;
  if (algorithm === "rsa-sha2-512") return SignFlag.RSA_SHA2_512;
  return 0;
}

/**
 * Writes a private key in the agent's key format (draft-miller-ssh-agent
 * section 4.2.x): the key type followed by the same fields as an
 * openssh-key-v1 private section (OpenSSH PROTOCOL.key), then the comment.
 * Throws {@linkcode TypeError} for keys not created by this library, whose
 * secret numbers we cannot read.
 */
export function writeAgentKey(
  w: SshWriter,
  key: PrivateKey,
  comment: string,
): void {
  const pub = ownPublicKey(key.publicKey);
  if (pub === null) {
    throw new TypeError(
      "Cannot add identity: the key was not created by parsePrivateKey or generatePrivateKey",
    );
  }
  const secret = privateParts(key);
  writePrivateKeyFields(w, pub, secret, "Cannot add identity");
  w.string(comment);
}
