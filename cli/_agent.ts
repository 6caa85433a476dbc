/**
 * `fynx ssh` and the ssh-agent: which identities to try and in what order
 * (agent keys, then identity files, as ssh(1) does), the `IdentityAgent`,
 * `IdentitiesOnly` and `ForwardAgent` options, and the `-A`/`-a` flags.
 *
 * @module
 */
import { AgentClient, agentSigner } from "../agent/mod.ts";
import { type Signer, withCertificate } from "../auth/client.ts";
import {
  type Certificate,
  parseCertificateText,
  parsePrivateKey,
  parsePublicKey,
} from "../keys/mod.ts";
import { parsePublicKeyAny } from "../keys/rfc4716.ts";
import type { PrivateKey, PublicKey } from "../keys/types.ts";
import { SshReader } from "../wire/reader.ts";
import { expandHome, keyTypeLabel, type OptionTable } from "./_args.ts";
import { equalBytes } from "../keys/_util.ts";

/** Where debug and warning lines go. */
export interface AgentLog {
  /** `debug1:` lines (shown with -v). */
  debug(line: string): void;
  /** Warnings (hidden with -q). */
  warn(line: string): void;
}

/** How identity files are unlocked. */
export interface IdentityOptions {
  /** Identity files, in order. */
  files: readonly string[];
  /** Whether they were named with -i / IdentityFile (warn when missing). */
  explicit: boolean;
  /** `IdentitiesOnly`: agent keys only when they match an identity file. */
  identitiesOnly: boolean;
  /**
   * `CertificateFile`s: each is offered (before the plain key) with the
   * identity whose key it certifies, as is `FILE-cert.pub` beside a file.
   */
  certificateFiles?: readonly string[];
  /** The agent's socket, or null for none. */
  agentPath: string | null;
  /** Asks for a passphrase; null when prompting is not possible. */
  prompt: ((question: string) => Promise<string | null>) | null;
  /** Passphrase attempts per file. */
  attempts: number;
  /** Log sink. */
  log: AgentLog;
}

/** The signers to offer, in order, and how to name them in logs. */
export interface Identities {
  /** For `ClientAuthOptions.privateKeys`. */
  readonly signers: Signer[];
  /** `ssh -v` style name of a signer, e.g. `/root/.ssh/id_rsa RSA SHA256:... agent`. */
  describe(signer: Signer): string;
  /** Closes the agent connection used for signing. */
  close(): void;
}

function sameKey(a: PublicKey, b: PublicKey): boolean {
  return equalBytes(a.blob, b.blob);
}

/**
 * The public key in the clear header of an `openssh-key-v1` file (OpenSSH
 * PROTOCOL.key), which is readable without the passphrase; null for other
 * formats or anything malformed.
 */
function opensshHeaderKey(text: string): PublicKey | null {
  const m = text.match(
    /-----BEGIN OPENSSH PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END OPENSSH PRIVATE KEY-----/,
  );
  if (m === null) return null;
  try {
    const bytes = Uint8Array.fromBase64(m[1].replace(/\s+/g, ""));
    const r = new SshReader(bytes, "OpenSSH private key");
    const magic = new TextDecoder().decode(r.raw(15));
    if (magic !== "openssh-key-v1\0") return null;
    r.string(); // cipher
    r.string(); // kdf
    r.string(); // kdf options
    if (r.uint32() !== 1) return null;
    return parsePublicKey(r.string(64 * 1024).slice());
  } catch {
    return null;
  }
}

/** The certificate in `path` if it certifies `key`; null otherwise. */
async function certificateFor(
  path: string,
  key: PublicKey,
  log: AgentLog,
): Promise<Certificate | null> {
  const text = await readText(path);
  if (text === null) return null;
  try {
    const cert = parseCertificateText(text);
    // A CertificateFile may belong to another identity: skip it quietly.
    if (!sameKey(cert.key, key)) return null;
    log.debug(
      `Will attempt certificate: ${path} ${cert.type} ID ${
        JSON.stringify(cert.keyId)
      } serial ${cert.serial}`,
    );
    return cert;
  } catch (e) {
    log.warn(`Load certificate "${path}": ${(e as Error).message}`);
    return null;
  }
}

/** One identity file: its public key (if known) and how to unlock it. */
interface FileIdentity {
  path: string;
  publicKey: PublicKey | null;
  text: string | null;
  key: PrivateKey | null;
}

async function readText(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return null;
  }
}

/** Decrypts an identity file, prompting for its passphrase; null on failure. */
async function unlock(
  file: FileIdentity,
  options: IdentityOptions,
): Promise<PrivateKey | null> {
  if (file.key !== null) return file.key;
  if (file.text === null) return null;
  const { log, prompt } = options;
  let passphrase: string | undefined;
  for (let attempt = 0;; attempt++) {
    try {
      file.key = parsePrivateKey(
        file.text,
        passphrase === undefined ? {} : { passphrase },
      );
      return file.key;
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== "passphrase-required" && code !== "wrong-passphrase") {
        log.warn(`Load key "${file.path}": ${(e as Error).message}`);
        return null;
      }
      if (code === "wrong-passphrase") {
        log.warn(`Bad passphrase, try again for ${file.path}`);
      }
      if (prompt === null || attempt >= options.attempts) {
        log.debug(`Skipping encrypted key ${file.path}`);
        return null;
      }
      const answer = await prompt(
        `Enter passphrase for key '${file.path}': `,
      );
      if (answer === null || answer === "") return null;
      passphrase = answer;
    }
  }
}

async function loadFile(
  path: string,
  options: IdentityOptions,
): Promise<FileIdentity | null> {
  const text = await readText(path);
  const pubText = await readText(`${path}.pub`);
  let publicKey: PublicKey | null = null;
  if (pubText !== null) {
    try {
      publicKey = parsePublicKeyAny(pubText);
    } catch {
      // Fall back to the private key file.
    }
  }
  if (text === null) {
    if (publicKey === null) {
      if (options.explicit) {
        options.log.warn(
          `Warning: Identity file ${path} not accessible: No such file or directory.`,
        );
      }
      return null;
    }
    // Only the public half: usable through the agent alone.
    return { path, publicKey, text: null, key: null };
  }
  const file: FileIdentity = { path, publicKey, text, key: null };
  if (publicKey === null) {
    try {
      file.key = parsePrivateKey(text);
      file.publicKey = file.key.publicKey;
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== "passphrase-required") {
        options.log.warn(`Load key "${path}": ${(e as Error).message}`);
        return null;
      }
      file.publicKey = opensshHeaderKey(text);
    }
  }
  return file;
}

/** The identities' public keys from the agent, or [] when there is none. */
async function agentKeys(
  options: IdentityOptions,
): Promise<{ agent: AgentClient | null; keys: PublicKey[] }> {
  if (options.agentPath === null) return { agent: null, keys: [] };
  let agent: AgentClient;
  try {
    agent = await AgentClient.connect(options.agentPath);
  } catch (e) {
    options.log.debug(
      `Error connecting to agent ${options.agentPath}: ${
        (e as Error).message.replace(/\s*\(os error \d+\)$/, "")
      }`,
    );
    return { agent: null, keys: [] };
  }
  try {
    const ids = await agent.listIdentities();
    return { agent, keys: ids.map((i) => i.key) };
  } catch (e) {
    options.log.debug(`Agent did not list its keys: ${(e as Error).message}`);
    agent.close();
    return { agent: null, keys: [] };
  }
}

/**
 * Builds the ordered list of identities as ssh(1) does: the agent's keys
 * first (those matching an identity file are named after it; with
 * `IdentitiesOnly` the others are left out), then identity files the agent
 * does not hold. An identity file whose public key is known (from
 * `FILE.pub` or the clear header of an encrypted OpenSSH key) is decrypted
 * only when the server accepts it, so the passphrase of a key the agent
 * holds is never asked for.
 */
export async function prepareIdentities(
  options: IdentityOptions,
): Promise<Identities> {
  const labels = new WeakMap<Signer, string>();
  const describe = (s: Signer): string => labels.get(s) ?? "key";
  const label = (
    pub: PublicKey,
    name: string,
    suffix: string,
    cert = false,
  ): string =>
    `${name} ${keyTypeLabel(pub.type)}${
      cert ? "-CERT" : ""
    } ${pub.fingerprint()}${suffix}`;
  const log = options.log;
  const files: FileIdentity[] = [];
  for (const path of options.files) {
    const f = await loadFile(path, options);
    if (f !== null) files.push(f);
  }
  const { agent, keys } = await agentKeys(options);
  const signers: Signer[] = [];
  const explicit = options.explicit ? " explicit" : "";
  // As ssh(1): certificates for a key are offered just before the key.
  const add = async (
    signer: Signer,
    name: string,
    suffix: string,
    file: string | null,
  ): Promise<void> => {
    const paths = [
      ...(file === null ? [] : [`${file}-cert.pub`]),
      ...(options.certificateFiles ?? []),
    ];
    const push = (base: Signer, text: string): void => {
      const offered: Signer = {
        publicKey: base.publicKey,
        certificate: base.certificate,
        sign: (data, algorithm) => {
          log.debug(`Server accepts key: ${text}`);
          return base.sign(data, algorithm);
        },
      };
      labels.set(offered, text);
      signers.push(offered);
    };
    for (const path of paths) {
      const cert = await certificateFor(path, signer.publicKey, log);
      if (cert === null) continue;
      push(
        withCertificate(signer, cert),
        label(signer.publicKey, name, suffix, true),
      );
    }
    push(signer, label(signer.publicKey, name, suffix));
  };

  for (const key of keys) {
    const i = files.findIndex((f) => f.publicKey && sameKey(f.publicKey, key));
    let name: string;
    let suffix: string;
    let file: string | null = null;
    if (i >= 0) {
      file = name = files[i].path;
      suffix = `${explicit} agent`;
      files.splice(i, 1);
    } else if (options.identitiesOnly) {
      continue;
    } else {
      name = key.comment || options.agentPath!;
      suffix = " agent";
    }
    const inner = agentSigner(agent!, key);
    const signer: Signer = {
      publicKey: key,
      sign: async (data, algorithm) => {
        try {
          return await inner.sign(data, algorithm);
        } catch (e) {
          log.debug(
            `Agent failed to sign with ${label(key, name, suffix)}: ${
              (e as Error).message
            }`,
          );
          throw e;
        }
      },
    };
    await add(signer, name, suffix, file);
  }

  for (const file of files) {
    if (file.text === null) continue; // public half only, agent lacks it
    let publicKey = file.publicKey;
    if (publicKey === null) {
      // An encrypted PEM key without FILE.pub: the public key is known only
      // after decrypting it.
      if ((await unlock(file, options)) === null) continue;
      publicKey = file.key!.publicKey;
    }
    const signer: Signer = {
      publicKey,
      sign: async (data, algorithm) => {
        const key = await unlock(file, options);
        if (key === null) {
          throw new Error(`Cannot load private key ${file.path}`);
        }
        if (!sameKey(key.publicKey, publicKey)) {
          throw new Error(
            `Private key ${file.path} does not match ${file.path}.pub`,
          );
        }
        return key.sign(data, algorithm);
      },
    };
    await add(signer, file.path, explicit, file.path);
  }
  for (const s of signers) log.debug(`Will attempt key: ${describe(s)}`);
  return {
    signers,
    describe,
    close: () => agent?.close(),
  };
}

/**
 * The agent socket for `IdentityAgent` (ssh_config(5)): `none`, the name
 * `SSH_AUTH_SOCK`, `$VAR`, or a path (`~` expanded); unset means
 * `$SSH_AUTH_SOCK`. Null when there is no agent to use.
 */
export function agentSocketPath(
  identityAgent: string | undefined,
): string | null {
  const env = (name: string): string | null => Deno.env.get(name) || null;
  if (identityAgent === undefined || identityAgent === "SSH_AUTH_SOCK") {
    return env("SSH_AUTH_SOCK");
  }
  if (identityAgent.toLowerCase() === "none") return null;
  if (identityAgent.startsWith("$")) return env(identityAgent.slice(1));
  return expandHome(identityAgent);
}

/**
 * Parses `ForwardAgent` (ssh_config(5)): yes/no, or the socket to forward
 * (a path, `$VAR` or `SSH_AUTH_SOCK`). Returns a boolean or the raw socket
 * spec.
 */
export function parseForwardAgent(value: string): boolean | string {
  const t = value.trim().toLowerCase();
  if (t === "yes" || t === "true") return true;
  if (t === "no" || t === "false") return false;
  return value.trim();
}

/**
 * Which of `-A` (forward) and `-a` (do not) came last in `args` (the words
 * before the destination), or null when neither did; later flags win, as
 * in ssh(1).
 */
export function lastAgentFlag(
  args: readonly string[],
  table: OptionTable,
): boolean | null {
  const takesValue = new Set<string>();
  for (const spec of Object.values(table)) {
    if (spec.type === "string" && spec.short) takesValue.add(spec.short);
  }
  let last: boolean | null = null;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("-") || arg.startsWith("--")) continue;
    for (let j = 1; j < arg.length; j++) {
      const c = arg[j];
      if (takesValue.has(c)) {
        if (j === arg.length - 1) i++; // the value is the next word
        break;
      }
      if (c === "A") last = true;
      else if (c === "a") last = false;
    }
  }
  return last;
}
