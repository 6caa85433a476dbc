/**
 * Server side of the SSH authentication protocol (RFC 4252, RFC 4256).
 *
 * The application decides through callbacks; this module enforces the
 * protocol rules around them: the publickey signature is verified over the
 * session identifier before the application sees the key as authenticated,
 * attempts are limited, failures take the same time whatever the user, and
 * user or service changes mid-way are refused.
 *
 * @module
 */
import { DisconnectError } from "../errors.ts";
import {
  type Certificate,
  parseCertificate,
  parsePublicKey,
  plainAlgorithm,
  SIGNATURE_ALGORITHMS,
} from "../keys/mod.ts";
import type { PublicKey } from "../keys/types.ts";
import { DisconnectReason, Msg } from "../wire/messages.ts";
import { SshReader } from "../wire/reader.ts";
import { SshWriter } from "../wire/writer.ts";
import type { Inbox } from "./_inbox.ts";
import type { InteractiveChallenge } from "./client.ts";
import type { SessionRestrictions } from "../connection/session.ts";

/** What the application learns about an attempt. */
export interface AuthContext {
  /** User name the client asked for. */
  username: string;
  /** The peer's address, when known (e.g. "127.0.0.1:50022"). */
  remoteAddress?: string;
}

/** Server authentication policy and callbacks. */
export interface ServerAuthOptions {
  /** Checks a password; absent means the method is not offered. */
  password?: (
    ctx: AuthContext & { password: string },
  ) => boolean | "change-required" | Promise<boolean | "change-required">;
  /**
   * Sets a new password after `password` answered `"change-required"` (RFC
   * 4252 section 8); true accepts the change and the login.
   */
  changePassword?: (
    ctx: AuthContext & { oldPassword: string; newPassword: string },
  ) => boolean | Promise<boolean>;
  /**
   * Says whether `key` may log in as the user. Called for queries too; the
   * result only counts once the client's signature has verified. When the
   * client offered an OpenSSH certificate, `key` is the certified key and
   * `certificate` the certificate (its CA signature already verified;
   * whether its CA, principals and validity are acceptable is this
   * callback's decision, see `checkCertificate`).
   */
  publicKey?: (
    ctx: AuthContext & { key: PublicKey; certificate?: Certificate },
  ) => PublicKeyDecision | Promise<PublicKeyDecision>;
  /** Runs a keyboard-interactive conversation through `prompt`. */
  keyboardInteractive?: (
    ctx: AuthContext & {
      prompt: (challenge: Partial<InteractiveChallenge>) => Promise<string[]>;
    },
  ) => boolean | Promise<boolean>;
  /** Allows `none` (no authentication) for a user. */
  none?: (ctx: AuthContext) => boolean | Promise<boolean>;
  /** Banner sent before the first auth reply. */
  banner?: string;
  /**
   * Failed attempts before the connection is closed (sshd `MaxAuthTries`).
   * @default {6}
   */
  maxAuthTries?: number;
  /**
   * Lists of methods that must all succeed (sshd `AuthenticationMethods`),
   * e.g. `[["publickey", "password"]]` for two factors. Any single method
   * suffices when absent.
   */
  authMethods?: readonly (readonly string[])[];
  /**
   * Every failure is answered no sooner than a multiple of this many
   * milliseconds after the request, so known and unknown users look alike.
   * @default {25}
   */
  failureDelay?: number;
}

/**
 * A `publicKey` callback's answer: false refuses; true or an object accepts,
 * the object carrying restrictions (e.g. from `authorized_keys` options) for
 * the sessions of this login.
 */
export type PublicKeyDecision = boolean | {
  restrictions?: SessionRestrictions;
};

/** Who authenticated, and how. */
export interface ServerAuthResult {
  /** The authenticated user name. */
  username: string;
  /** Methods that succeeded. */
  methods: string[];
  /** The public key whose signature verified, when publickey was used. */
  key?: PublicKey;
  /** The certificate the client logged in with, if any. */
  certificate?: Certificate;
  /**
   * Restrictions the `publicKey` callback attached to the verified key (its
   * answer for that key after the signature verified, never a query's).
   */
  restrictions?: SessionRestrictions;
}

/** Transport operations auth needs. */
export interface ServerAuthLink {
  /** Sends a message. */
  send(payload: Uint8Array): Promise<void>;
  /** The session identifier. */
  readonly sessionId: Uint8Array;
}

const MAX_USERNAME = 256;
const MAX_PASSWORD = 1024;

/** Where a connection stands while auth runs. */
export interface ServerAuthHooks {
  /** The peer's address, handed to the callbacks. */
  remoteAddress?: string;
  /**
   * Runs synchronously right after USERAUTH_SUCCESS is queued, before any
   * later message from the client can be handled: the place to switch the
   * connection to its authenticated state.
   */
  onSuccess?: (result: ServerAuthResult) => void;
}

/** Runs server authentication until a user is authenticated. */
export async function runServerAuth(
  link: ServerAuthLink,
  inbox: Inbox,
  options: ServerAuthOptions,
  hooks: ServerAuthHooks = {},
): Promise<ServerAuthResult> {
  const remoteAddress = hooks.remoteAddress;
  // Replies go out without awaiting the transport, so a key exchange the
  // client starts mid-auth cannot deadlock against this loop; order is kept
  // by the transport's queue.
  const send = (payload: Uint8Array) => {
    link.send(payload).catch(() => {});
  };
  const first = await inbox.next();
  if (first[0] !== Msg.SERVICE_REQUEST) {
    throw new DisconnectError(
      DisconnectReason.PROTOCOL_ERROR,
      `Expected SERVICE_REQUEST, got message ${first[0]}`,
    );
  }
  const sr = new SshReader(first, "SERVICE_REQUEST");
  sr.byte();
  const service = sr.utf8(64);
  if (service !== "ssh-userauth") {
    throw new DisconnectError(
      DisconnectReason.SERVICE_NOT_AVAILABLE,
      `Service ${JSON.stringify(service)} not available`,
    );
  }
  send(
    new SshWriter(32).byte(Msg.SERVICE_ACCEPT).string("ssh-userauth").bytes(),
  );

  const offered = [
    ...(options.publicKey ? ["publickey"] : []),
    ...(options.keyboardInteractive ? ["keyboard-interactive"] : []),
    ...(options.password ? ["password"] : []),
  ];
  const lists = options.authMethods ?? offered.map((m) => [m]);
  const maxTries = options.maxAuthTries ?? 6;
  const floor = options.failureDelay ?? 25;
  let failures = 0;
  let attempts = 0;
  let user: string | null = null;
  let bannerSent = options.banner === undefined;
  const done: string[] = [];
  let verifiedKey: PublicKey | undefined;
  let verifiedCertificate: Certificate | undefined;
  let restrictions: SessionRestrictions | undefined;

  const remaining = (): string[] => {
    const names = new Set<string>();
    for (const list of lists) {
      if (done.every((d) => list.includes(d))) {
        for (const m of list) if (!done.includes(m)) names.add(m);
      }
    }
    return offered.filter((m) => names.has(m));
  };

  const failure = async (
    started: number,
    partial: boolean,
    counts: boolean,
  ) => {
    if (counts) failures++;
    if (!partial) {
      // Round every failure up to a multiple of the floor, measured from the
      // request's arrival, so the work done for known and unknown users
      // (and short or long passwords) does not show in the timing.
      const elapsed = performance.now() - started;
      const wait = Math.max(floor, Math.ceil(elapsed / floor) * floor) -
        elapsed;
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    if (failures >= maxTries) {
      throw new DisconnectError(
        DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE,
        `Too many authentication failures for ${user ?? "unknown user"}`,
      );
    }
    send(
      new SshWriter(64).byte(Msg.USERAUTH_FAILURE).nameList(remaining())
        .boolean(partial).bytes(),
    );
  };

  for (;;) {
    const msg = await inbox.next();
    const started = performance.now();
    if (msg[0] !== Msg.USERAUTH_REQUEST) {
      if (msg[0] === Msg.USERAUTH_INFO_RESPONSE) {
        throw new DisconnectError(
          DisconnectReason.PROTOCOL_ERROR,
          "Unexpected keyboard-interactive response",
        );
      }
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_ERROR,
        `Unexpected message ${msg[0]} during authentication`,
      );
    }
    attempts++;
    const r = new SshReader(msg, "USERAUTH_REQUEST");
    r.byte();
    const username = r.utf8(MAX_USERNAME);
    const svc = r.utf8(64);
    const method = r.utf8(64);
    if (user !== null && username !== user) {
      // Resetting state silently is how stale partial success leaks across
      // users (russh CVE-2026-46705); refuse like OpenSSH does.
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_ERROR,
        "Change of user name during authentication is not allowed",
      );
    }
    if (svc !== "ssh-connection") {
      throw new DisconnectError(
        DisconnectReason.SERVICE_NOT_AVAILABLE,
        `Service ${JSON.stringify(svc)} not available`,
      );
    }
    user = username;
    if (!bannerSent) {
      bannerSent = true;
      send(
        new SshWriter(256).byte(Msg.USERAUTH_BANNER).string(options.banner!)
          .string("").bytes(),
      );
    }
    const ctx: AuthContext = { username, remoteAddress };
    let ok = false;
    let counts = !(method === "none" && attempts === 1);
    if (method === "none") {
      r.end();
      ok = options.none ? await options.none(ctx) : false;
    } else if (
      method === "password" && options.password &&
      remaining().includes("password")
    ) {
      const change = r.boolean();
      const password = r.utf8(Infinity);
      const newPassword = change ? r.utf8(Infinity) : "";
      r.end();
      // Over-long passwords fail the same way as wrong ones (no early exit
      // that would show in the timing), without reaching the callback.
      const verdict =
        password.length <= MAX_PASSWORD && newPassword.length <= MAX_PASSWORD
          ? await options.password({ ...ctx, password })
          : false;
      if (change) {
        // A new password needs a correct old one, expired or not.
        ok = verdict !== false && options.changePassword !== undefined &&
          await options.changePassword({
            ...ctx,
            oldPassword: password,
            newPassword,
          });
      } else if (verdict === "change-required") {
        // PASSWD_CHANGEREQ (RFC 4252 section 8): neither success nor failure.
        send(
          new SshWriter(64).byte(Msg.USERAUTH_60).string(
            "Password expired; choose a new one",
          ).string("").bytes(),
        );
        continue;
      } else {
        ok = verdict === true;
      }
    } else if (
      method === "publickey" && options.publicKey &&
      remaining().includes("publickey")
    ) {
      const hasSignature = r.boolean();
      const algorithm = r.utf8(64);
      const blob = r.string(16 * 1024);
      const signature = hasSignature ? r.string(16 * 1024) : null;
      r.end();
      // A certificate algorithm (PROTOCOL.certkeys) names the certified
      // key's own algorithm inside; the signature is made with that one.
      const certPlain = plainAlgorithm(algorithm);
      const keyAlgorithm = certPlain ?? algorithm;
      let key: PublicKey | null = null;
      let certificate: Certificate | undefined;
      try {
        if (certPlain !== null) {
          certificate = parseCertificate(blob);
          key = certificate.key;
        } else if (SIGNATURE_ALGORITHMS.includes(algorithm)) {
          key = parsePublicKey(blob);
        }
      } catch {
        key = null;
      }
      if (key && !key.signatureAlgorithms.includes(keyAlgorithm)) key = null;
      if (key && signature === null) {
        if (await options.publicKey({ ...ctx, key, certificate })) {
          // PK_OK (RFC 4252 section 7): not a failure, not a success.
          send(
            new SshWriter(64).byte(Msg.USERAUTH_60).string(algorithm).string(
              blob,
            ).bytes(),
          );
          continue;
        }
      } else if (key && signature) {
        const signed = new SshWriter(512).string(link.sessionId).raw(
          msg.subarray(0, msg.length - 4 - signature.length),
        )
          .bytes();
        // Verify first; only a key whose signature verified is ever reported
        // as the authenticated one (Go CVE-2024-45337).
        if (key.verify(signed, signature, keyAlgorithm)) {
          const decision = await options.publicKey({
            ...ctx,
            key,
            certificate,
          });
          if (decision) {
            ok = true;
            verifiedKey = key;
            verifiedCertificate = certificate;
            restrictions = typeof decision === "object"
              ? decision.restrictions
              : undefined;
          }
        }
      }
    } else if (
      method === "keyboard-interactive" && options.keyboardInteractive &&
      remaining().includes("keyboard-interactive")
    ) {
      r.utf8(256); // language tag
      r.utf8(1024); // submethods
      r.end();
      const prompt = async (
        challenge: Partial<InteractiveChallenge>,
      ): Promise<string[]> => {
        const prompts = challenge.prompts ?? [];
        const w = new SshWriter(256).byte(Msg.USERAUTH_60).string(
          challenge.name ?? "",
        ).string(
          challenge.instruction ?? "",
        ).string("").uint32(prompts.length);
        for (const p of prompts) w.string(p.prompt).boolean(p.echo);
        send(w.bytes());
        const reply = await inbox.next();
        if (reply[0] !== Msg.USERAUTH_INFO_RESPONSE) {
          throw new DisconnectError(
            DisconnectReason.PROTOCOL_ERROR,
            `Expected keyboard-interactive response, got message ${reply[0]}`,
          );
        }
        const rr = new SshReader(reply, "USERAUTH_INFO_RESPONSE");
        rr.byte();
        const n = rr.uint32();
        if (n !== prompts.length) {
          throw new DisconnectError(
            DisconnectReason.PROTOCOL_ERROR,
            `Got ${n} responses to ${prompts.length} prompts`,
          );
        }
        const answers: string[] = [];
        for (let i = 0; i < n; i++) answers.push(rr.utf8(MAX_PASSWORD));
        rr.end();
        return answers;
      };
      ok = await options.keyboardInteractive({ ...ctx, prompt });
    } else {
      // Unknown or not offered: a plain failure (RFC 4252 section 5.1).
      counts = true;
    }
    if (!ok) {
      await failure(started, false, counts);
      continue;
    }
    if (!done.includes(method)) done.push(method);
    const complete = method === "none" ||
      lists.some((list) => list.every((m) => done.includes(m)));
    if (complete) {
      send(new Uint8Array([Msg.USERAUTH_SUCCESS]));
      const result: ServerAuthResult = {
        username,
        methods: [...done],
        key: verifiedKey,
        certificate: verifiedCertificate,
        restrictions,
      };
      hooks.onSuccess?.(result);
      return result;
    }
    await failure(started, true, false);
  }
}
