/**
 * ssh-agent protocol client (draft-miller-ssh-agent; OpenSSH
 * PROTOCOL.agent): list and use the keys of a running `ssh-agent`, add and
 * remove keys, lock and unlock it. {@linkcode agentSigner} turns an agent
 * key into a signer for `publickey` authentication.
 *
 * Agent forwarding: {@linkcode forwardAgent} is the client side (`ssh -A`),
 * {@linkcode listenAgentSocket} the server side (the per-session
 * `SSH_AUTH_SOCK`).
 *
 * @example List the keys of the user's agent
 * ```ts ignore
 * import { AgentClient } from "@fynx/ssh/agent";
 *
 * const agent = await AgentClient.connect();
 * try {
 *   for (const { key, comment } of await agent.listIdentities()) {
 *     console.log(key.fingerprint(), comment);
 *   }
 * } finally {
 *   agent.close();
 * }
 * ```
 *
 * @module
 */

export {
  type AddIdentityOptions,
  AgentClient,
  type AgentClientOptions,
  AgentError,
  type AgentIdentity,
  type AgentSigner,
  agentSigner,
} from "./client.ts";
export {
  AGENT_CHANNEL_TYPE,
  type AgentSocket,
  type AgentSocketOptions,
  type ConnectionHolder,
  forwardAgent,
  type ForwardAgentOptions,
  listenAgentSocket,
} from "./forward.ts";
