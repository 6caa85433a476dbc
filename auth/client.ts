/**
 * Client side of the SSH authentication protocol (RFC 4252, RFC 4256).
 *
 * @module
 */
import { AuthError, DisconnectError } from "../errors.ts";
import type { PublicKey } from "../keys/types.ts";
import { type Certificate, certificateAlgorithm } from "../keys/certificate.ts";
import { equalBytes } from "../keys/_util.ts";
import { DisconnectReason, Msg } from "../wire/messages.ts";
import { SshReader } from "../wire/reader.ts";
import { SshWriter } from "../wire/writer.ts";
import type { Inbox } from "./_inbox.ts";

/** One prompt of a keyboard-interactive challenge (RFC 4256 section 3.2). */
export interface InteractivePrompt {
  /** Text to show. */
  prompt: string;
  /** Whether the answer may be echoed. */
  echo: boolean;
}

/** A keyboard-interactive challenge. */
export interface InteractiveChallenge {
  /** Challenge name (may be empty). */
  name: string;
  /** Instruction (may be empty). */
  instruction: string;
  /** Prompts, possibly none. */
  prompts: InteractivePrompt[];
}

/**
 * Anything that can sign for `publickey` authentication: a `PrivateKey`, or
 * a key held elsewhere (an ssh-agent, a hardware token) that signs
 * asynchronously.
 */
export interface Signer {
  /** The public half, sent to the server. */
  readonly publicKey: PublicKey;
  /**
   * An OpenSSH certificate for {@linkcode Signer.publicKey}: when set, it is
   * sent instead of the plain key (PROTOCOL.certkeys), e.g. from
   * {@linkcode withCertificate}.
   */
  readonly certificate?: Certificate;
  /** Returns the signature blob (`string algorithm || string signature`). */
  sign(data: Uint8Array, algorithm?: string): Uint8Array | Promise<Uint8Array>;
}

/** How the client authenticates. */
export interface ClientAuthOptions {
  /** User name on the server. */
  username: string;
  /** Password, or a function asked for it (called once per attempt). */
  password?: string | (() => string | null | Promise<string | null>);
  /** Keys (or other signers) for `publickey`, tried in order. */
  privateKeys?: readonly Signer[];
  /** Answers keyboard-interactive challenges; return null to give up. */
  keyboardInteractive?: (
    challenge: InteractiveChallenge,
  ) => string[] | null | Promise<string[] | null>;
  /** Called with the server's banner (RFC 4252 section 5.4). */
  onBanner?: (message: string) => void;
  /**
   * Called as each key of `privateKeys` is offered to the server (for logs,
   * like `ssh -v`'s "Offering public key").
   */
  onPublicKeyOffer?: (signer: Signer) => void;
  /** Asked for a new password when the server requires a change; null to give up. */
  onPasswordChange?: (prompt: string) => string | null | Promise<string | null>;
  /**
   * Method order.
   * @default {["publickey", "keyboard-interactive", "password"]}
   */
  methods?: readonly string[];
  /**
   * How many times a password (or keyboard-interactive) callback is asked.
   * @default {3}
   */
  passwordAttempts?: number;
}

/** The outcome of a successful authentication. */
export interface ClientAuthResult {
  /** Methods that succeeded, in order (more than one with partial success). */
  methods: string[];
}

/** Transport operations auth needs. */
export interface AuthLink {
  /** Sends a message. */
  send(payload: Uint8Array): Promise<void>;
  /** The session identifier. */
  readonly sessionId: Uint8Array;
  /** The server's `server-sig-algs`, if it sent them. */
  readonly serverSigAlgs: readonly string[] | null;
}

const MAX_PROMPTS = 64;

/**
 * Runs client authentication to completion. Resolves on USERAUTH_SUCCESS;
 * rejects with {@linkcode AuthError} when every method is exhausted.
 */
export async function runClientAuth(
  link: AuthLink,
  inbox: Inbox,
  options: ClientAuthOptions,
): Promise<ClientAuthResult> {
  await link.send(
    new SshWriter(32).byte(Msg.SERVICE_REQUEST).string("ssh-userauth").bytes(),
  );
  const accept = await nextReply(inbox, options);
  if (accept[0] !== Msg.SERVICE_ACCEPT) {
    throw new DisconnectError(
      DisconnectReason.PROTOCOL_ERROR,
      `Expected SERVICE_ACCEPT, got message ${accept[0]}`,
    );
  }
  const user = options.username;
  const order = options.methods ??
    ["publickey", "keyboard-interactive", "password"];
  const keys = [...(options.privateKeys ?? [])];
  let passwordTries = options.passwordAttempts ?? 3;
  let kbdTries = options.passwordAttempts ?? 3;
  const succeeded: string[] = [];

  const request = (method: string) =>
    new SshWriter(256).byte(Msg.USERAUTH_REQUEST).string(user).string(
      "ssh-connection",
    ).string(method);

  // "none" first: it may succeed, and it tells which methods can continue.
  await link.send(request("none").bytes());
  let reply = await nextReply(inbox, options);
  let state = parseOutcome(reply, "none");
  for (;;) {
    if (state.success) {
      succeeded.push(state.method);
      return { methods: succeeded.filter((m) => m !== "none") };
    }
    if (state.partial) succeeded.push(state.method);
    const allowed = state.methods;
    let next: string | undefined;
    for (const m of order) {
      if (!allowed.includes(m)) continue;
      if (m === "publickey" && keys.length > 0) next = m;
      else if (
        m === "password" && options.password !== undefined && passwordTries > 0
      ) next = m;
      else if (
        m === "keyboard-interactive" &&
        (options.keyboardInteractive || options.password !== undefined) &&
        kbdTries > 0
      ) {
        next = m;
      }
      if (next) break;
    }
    if (!next) {
      throw new AuthError(
        `Permission denied (${allowed.join(",") || "no methods left"})`,
        allowed,
      );
    }
    if (next === "publickey") {
      const key = keys.shift()!;
      // server-sig-algs lists plain algorithms; a certificate is sent under
      // the certificate name of the plain one chosen (as OpenSSH does).
      const keyAlgorithm = pickSignatureAlgorithm(key, link.serverSigAlgs);
      const algorithm = key.certificate
        ? certificateAlgorithm(keyAlgorithm)
        : keyAlgorithm;
      const blob = key.certificate?.blob ?? key.publicKey.blob;
      options.onPublicKeyOffer?.(key);
      // Query first (RFC 4252 section 7): the server says whether it would
      // accept the key before we spend a signature on it.
      await link.send(
        request("publickey").boolean(false).string(algorithm).string(blob)
          .bytes(),
      );
      reply = await nextReply(inbox, options);
      if (reply[0] === Msg.USERAUTH_60) {
        const r = new SshReader(reply, "USERAUTH_PK_OK");
        r.byte();
        r.utf8(256);
        r.string(16 * 1024);
        const signed = new SshWriter(512).string(link.sessionId).byte(
          Msg.USERAUTH_REQUEST,
        ).string(user).string(
          "ssh-connection",
        ).string("publickey").boolean(true).string(algorithm).string(blob)
          .bytes();
        let signature: Uint8Array;
        try {
          signature = await key.sign(signed, keyAlgorithm);
        } catch {
          // The signer could not sign (an agent refused or went away, a
          // passphrase was not given): go on with the next key, as ssh does.
          // Nothing was sent, so the last failure's method list still holds.
          continue;
        }
        await link.send(
          request("publickey").boolean(true).string(algorithm).string(blob)
            .string(signature).bytes(),
        );
        reply = await nextReply(inbox, options);
      }
      state = parseOutcome(reply, "publickey");
    } else if (next === "password") {
      passwordTries--;
      const password = typeof options.password === "function"
        ? await options.password()
        : options.password!;
      if (password === null) {
        passwordTries = 0;
        continue;
      }
      await link.send(
        request("password").boolean(false).string(password).bytes(),
      );
      reply = await nextReply(inbox, options);
      if (reply[0] === Msg.USERAUTH_60) {
        // PASSWD_CHANGEREQ (RFC 4252 section 8).
        const r = new SshReader(reply, "USERAUTH_PASSWD_CHANGEREQ");
        r.byte();
        const prompt = sanitize(r.utf8(4096));
        const fresh = options.onPasswordChange
          ? await options.onPasswordChange(prompt)
          : null;
        if (fresh === null) {
          throw new AuthError(`Server requires a password change: ${prompt}`, [
            "password",
          ]);
        }
        await link.send(
          request("password").boolean(true).string(password).string(fresh)
            .bytes(),
        );
        reply = await nextReply(inbox, options);
        if (reply[0] === Msg.USERAUTH_60) {
          throw new AuthError("Server rejected the new password", ["password"]);
        }
      }
      state = parseOutcome(reply, "password");
    } else {
      kbdTries--;
      await link.send(
        request("keyboard-interactive").string("").string("").bytes(),
      );
      for (;;) {
        reply = await nextReply(inbox, options);
        if (reply[0] !== Msg.USERAUTH_60) break;
        const challenge = parseInfoRequest(reply);
        let answers: string[] | null;
        if (options.keyboardInteractive) {
          answers = await options.keyboardInteractive(challenge);
        } else {
          // Only a password is configured: answer single non-echo prompts with it,
          // as OpenSSH does for PAM password prompts.
          const pw = typeof options.password === "function"
            ? await options.password()
            : options.password!;
          answers = pw !== null && challenge.prompts.every((p) => !p.echo)
            ? challenge.prompts.map(() => pw)
            : null;
        }
        if (answers === null) answers = challenge.prompts.map(() => "");
        if (answers.length !== challenge.prompts.length) {
          throw new TypeError(
            `keyboardInteractive returned ${answers.length} answers for ${challenge.prompts.length} prompts`,
          );
        }
        const w = new SshWriter(256).byte(Msg.USERAUTH_INFO_RESPONSE).uint32(
          answers.length,
        );
        for (const a of answers) w.string(a);
        await link.send(w.bytes());
      }
      state = parseOutcome(reply, "keyboard-interactive");
    }
  }
}

interface Outcome {
  success: boolean;
  partial: boolean;
  methods: string[];
  method: string;
}

function parseOutcome(reply: Uint8Array, method: string): Outcome {
  if (reply[0] === Msg.USERAUTH_SUCCESS) {
    if (reply.length !== 1) {
      throw new SyntaxError("Malformed USERAUTH_SUCCESS: trailing bytes");
    }
    return { success: true, partial: false, methods: [], method };
  }
  if (reply[0] === Msg.USERAUTH_FAILURE) {
    const r = new SshReader(reply, "USERAUTH_FAILURE");
    r.byte();
    const methods = r.nameList();
    const partial = r.boolean();
    return { success: false, partial, methods, method };
  }
  throw new DisconnectError(
    DisconnectReason.PROTOCOL_ERROR,
    `Unexpected message ${
      reply[0]
    } in reply to a ${method} authentication request`,
  );
}

/** Next auth reply, with banners handed to the callback on the way. */
async function nextReply(
  inbox: Inbox,
  options: ClientAuthOptions,
): Promise<Uint8Array> {
  for (;;) {
    const msg = await inbox.next();
    if (msg[0] !== Msg.USERAUTH_BANNER) return msg;
    const r = new SshReader(msg, "USERAUTH_BANNER");
    r.byte();
    const text = r.utf8(64 * 1024);
    options.onBanner?.(sanitize(text, true));
  }
}

function parseInfoRequest(msg: Uint8Array): InteractiveChallenge {
  const r = new SshReader(msg, "USERAUTH_INFO_REQUEST");
  r.byte();
  const name = sanitize(r.utf8(1024));
  const instruction = sanitize(r.utf8(8192), true);
  r.utf8(256); // language tag (deprecated)
  const count = r.uint32();
  // Each prompt takes at least 5 bytes; bound by that and a hard cap.
  if (count > MAX_PROMPTS || count * 5 > r.remaining) {
    throw new DisconnectError(
      DisconnectReason.PROTOCOL_ERROR,
      `Keyboard-interactive request with ${count} prompts (limit ${MAX_PROMPTS})`,
    );
  }
  const prompts: InteractivePrompt[] = [];
  for (let i = 0; i < count; i++) {
    prompts.push({ prompt: sanitize(r.utf8(4096)), echo: r.boolean() });
  }
  return { name, instruction, prompts };
}

// Control characters (minus tab/newline/CR for multi-line text) and the
// 8-bit CSI: the characters a terminal would act on.
// deno-lint-ignore no-control-regex
const CONTROL_MULTILINE = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x9b]/g;
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f\x9b]/g;

/**
 * Removes terminal control characters from server-supplied text before an
 * application shows it (a hostile server must not drive the user's terminal).
 */
function sanitize(text: string, multiline = false): string {
  return text.replace(multiline ? CONTROL_MULTILINE : CONTROL, "");
}

/**
 * A signer that logs in with `certificate` (an OpenSSH user certificate for
 * the signer's key) instead of the plain key.
 *
 * @example
 * ```ts
 * import { generatePrivateKey, signCertificate } from "@fynx/ssh/keys";
 * import { withCertificate } from "@fynx/ssh/client";
 * import assert from "node:assert/strict";
 *
 * const ca = generatePrivateKey("ed25519");
 * const key = generatePrivateKey("ed25519");
 * const cert = signCertificate(ca, key.publicKey, {
 *   type: "user",
 *   keyId: "alice",
 *   principals: ["alice"],
 * });
 * const signer = withCertificate(key, cert);
 * assert.equal(signer.certificate, cert);
 * assert.throws(() => withCertificate(generatePrivateKey("ed25519"), cert));
 * ```
 */
export function withCertificate(
  signer: Signer,
  certificate: Certificate,
): Signer {
  if (!equalBytes(signer.publicKey.blob, certificate.key.blob)) {
    throw new TypeError(
      `Certificate ${
        JSON.stringify(certificate.keyId)
      } is for another key (${certificate.key.fingerprint()}, not ${signer.publicKey.fingerprint()})`,
    );
  }
  return {
    publicKey: signer.publicKey,
    certificate,
    sign: (data, algorithm) => signer.sign(data, algorithm),
  };
}

/**
 * The signature algorithm for a user key: for RSA the strongest SHA-2
 * variant the server announced in `server-sig-algs` (RFC 8332 section 3.3),
 * never SHA-1.
 */
export function pickSignatureAlgorithm(
  key: Signer,
  serverSigAlgs: readonly string[] | null,
): string {
  const algs = key.publicKey.signatureAlgorithms;
  if (serverSigAlgs) {
    const match = algs.find((a) => serverSigAlgs.includes(a));
    if (match) return match;
  }
  return algs[0];
}
