/**
 * Algorithm lists, KEXINIT encoding and negotiation (RFC 4253 section 7.1).
 *
 * @module
 */
import { DisconnectError } from "../errors.ts";
import { DisconnectReason, Msg } from "../wire/messages.ts";
import { SshReader } from "../wire/reader.ts";
import { SshWriter } from "../wire/writer.ts";
import { CIPHER_NAMES, cipherInfo, MAC_NAMES } from "./cipher/mod.ts";
import { COMPRESSION_NAMES } from "./compression.ts";
import { DEFAULT_KEX, KEX_NAMES } from "./kex/mod.ts";
import { CERTIFICATE_ALGORITHMS, SIGNATURE_ALGORITHMS } from "../keys/mod.ts";

/** Algorithm preference lists, strongest first. */
export interface AlgorithmPreferences {
  /** Key exchange methods. */
  kex: string[];
  /** Host key (signature) algorithms. */
  hostKey: string[];
  /** Ciphers, used for both directions. */
  cipher: string[];
  /** MACs, used for both directions (ignored with AEAD ciphers). */
  mac: string[];
  /** Compression methods, used for both directions. */
  compression: string[];
}

/** Everything we implement, per category (the universe `+`/`-`/`^` act on). */
export const SUPPORTED_ALGORITHMS: Readonly<
  Record<keyof AlgorithmPreferences, readonly string[]>
> = {
  kex: KEX_NAMES,
  hostKey: [...CERTIFICATE_ALGORITHMS, ...SIGNATURE_ALGORITHMS],
  cipher: CIPHER_NAMES,
  mac: MAC_NAMES,
  compression: COMPRESSION_NAMES,
};

/**
 * Hardened defaults: everything in {@linkcode SUPPORTED_ALGORITHMS} minus
 * what current hardening guides flag (NIST-curve ECDH and ECDSA host keys,
 * encrypt-and-MAC MACs, pre-authentication `zlib`). Each of those still works
 * when configured.
 */
export const DEFAULT_ALGORITHMS: Readonly<
  Record<keyof AlgorithmPreferences, readonly string[]>
> = {
  kex: DEFAULT_KEX,
  // Certificates first, as OpenSSH orders them: a server with a host
  // certificate presents it, and one without simply does not match them.
  hostKey: [
    "ssh-ed25519-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "ssh-ed25519",
    "rsa-sha2-512",
    "rsa-sha2-256",
  ],
  cipher: CIPHER_NAMES,
  mac: ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com"],
  compression: ["none", "zlib@openssh.com"],
};

/**
 * Applies an OpenSSH-style list specification to a default list
 * (ssh_config(5) `Ciphers`, `KexAlgorithms`, ...): `+a,b` appends, `-a,b*`
 * removes (wildcards allowed), `^a,b` puts first, anything else replaces.
 * Every named algorithm must be one we implement.
 *
 * @example Append and remove
 * ```ts
 * import { applyAlgorithmSpec } from "@fynx/ssh";
 * import assert from "node:assert/strict";
 *
 * const base = ["a", "b", "c"];
 * assert.deepEqual(applyAlgorithmSpec(base, ["a", "b", "c", "d"], "+d"), ["a", "b", "c", "d"]);
 * assert.deepEqual(applyAlgorithmSpec(base, ["a", "b", "c"], "-b*"), ["a", "c"]);
 * assert.deepEqual(applyAlgorithmSpec(base, ["a", "b", "c"], "^c"), ["c", "a", "b"]);
 * ```
 */
export function applyAlgorithmSpec(
  defaults: readonly string[],
  supported: readonly string[],
  spec: string,
): string[] {
  const op = spec[0];
  const body = op === "+" || op === "-" || op === "^" ? spec.slice(1) : spec;
  const names = body.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (names.length === 0) {
    throw new TypeError(`Empty algorithm list: ${JSON.stringify(spec)}`);
  }
  if (op === "-") {
    const patterns = names.map(globToRegExp);
    return defaults.filter((a) => !patterns.some((p) => p.test(a)));
  }
  for (const n of names) {
    if (!supported.includes(n)) {
      throw new TypeError(
        `Unsupported algorithm ${JSON.stringify(n)}; supported: ${
          supported.join(",")
        }`,
      );
    }
  }
  if (op === "+") {
    return [
      ...defaults,
      ...names.filter((n) => !defaults.includes(n)),
    ];
  }
  if (op === "^") {
    return [
      ...names,
      ...defaults.filter((a) => !names.includes(a)),
    ];
  }
  return [...new Set(names)];
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(
    /\*/g,
    ".*",
  ).replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`);
}

/** Fills in defaults and checks every named algorithm is implemented. */
export function resolvePreferences(
  prefs?: Partial<AlgorithmPreferences>,
): AlgorithmPreferences {
  const out = {} as AlgorithmPreferences;
  for (
    const key of Object.keys(
      DEFAULT_ALGORITHMS,
    ) as (keyof AlgorithmPreferences)[]
  ) {
    const list = prefs?.[key] ?? [...DEFAULT_ALGORITHMS[key]];
    for (const name of list) {
      if (!SUPPORTED_ALGORITHMS[key].includes(name)) {
        throw new TypeError(
          `Unsupported ${key} algorithm ${JSON.stringify(name)}`,
        );
      }
    }
    if (list.length === 0) {
      throw new TypeError(`The ${key} algorithm list is empty`);
    }
    out[key] = [...list];
  }
  return out;
}

/** A decoded SSH_MSG_KEXINIT. */
export interface KexInit {
  /** 16 random bytes. */
  cookie: Uint8Array;
  /** kex_algorithms. */
  kex: string[];
  /** server_host_key_algorithms. */
  hostKey: string[];
  /** encryption_algorithms_client_to_server. */
  cipherC2S: string[];
  /** encryption_algorithms_server_to_client. */
  cipherS2C: string[];
  /** mac_algorithms_client_to_server. */
  macC2S: string[];
  /** mac_algorithms_server_to_client. */
  macS2C: string[];
  /** compression_algorithms_client_to_server. */
  compC2S: string[];
  /** compression_algorithms_server_to_client. */
  compS2C: string[];
  /** first_kex_packet_follows. */
  firstKexFollows: boolean;
}

/** Encodes a KEXINIT payload (message number included). */
export function encodeKexInit(init: KexInit): Uint8Array {
  return new SshWriter(512)
    .byte(Msg.KEXINIT)
    .raw(init.cookie)
    .nameList(init.kex)
    .nameList(init.hostKey)
    .nameList(init.cipherC2S)
    .nameList(init.cipherS2C)
    .nameList(init.macC2S)
    .nameList(init.macS2C)
    .nameList(init.compC2S)
    .nameList(init.compS2C)
    .nameList([])
    .nameList([])
    .boolean(init.firstKexFollows)
    .uint32(0)
    .bytes();
}

/** Decodes a KEXINIT payload; malformed input throws SyntaxError. */
export function decodeKexInit(payload: Uint8Array): KexInit {
  const r = new SshReader(payload, "KEXINIT");
  if (r.byte() !== Msg.KEXINIT) {
    throw new SyntaxError("Malformed KEXINIT: wrong message number");
  }
  const init: KexInit = {
    cookie: r.raw(16),
    kex: r.nameList(),
    hostKey: r.nameList(),
    cipherC2S: r.nameList(),
    cipherS2C: r.nameList(),
    macC2S: r.nameList(),
    macS2C: r.nameList(),
    compC2S: r.nameList(),
    compS2C: r.nameList(),
    firstKexFollows: false,
  };
  r.nameList(); // languages client to server: unused
  r.nameList(); // languages server to client: unused
  init.firstKexFollows = r.boolean();
  r.uint32(); // reserved
  // Trailing bytes are tolerated: RFC 4253 section 7.1 reserves the field
  // for extension and some peers append data.
  return init;
}

/** The algorithms both sides agreed on. */
export interface Negotiated {
  /** Key exchange method. */
  kex: string;
  /** Host key signature algorithm. */
  hostKey: string;
  /** Cipher client to server. */
  cipherC2S: string;
  /** Cipher server to client. */
  cipherS2C: string;
  /** MAC client to server (null with an AEAD cipher). */
  macC2S: string | null;
  /** MAC server to client (null with an AEAD cipher). */
  macS2C: string | null;
  /** Compression client to server. */
  compC2S: string;
  /** Compression server to client. */
  compS2C: string;
}

/** Pseudo-algorithms that signal extensions and are never negotiated. */
export const KEX_PSEUDO = new Set([
  "ext-info-c",
  "ext-info-s",
  "kex-strict-c-v00@openssh.com",
  "kex-strict-s-v00@openssh.com",
]);

/**
 * One copy of each negotiated name. A name split out of the peer's
 * name-list is, in V8, a slice that keeps the whole list alive, and every
 * connection holds its negotiated names for its lifetime. Only names both
 * sides support get here, so the table stays small.
 */
const names = new Map<string, string>();

function canonical(name: string): string {
  let own = names.get(name);
  if (own === undefined) {
    // join() builds a new flat string, not a slice of the peer's list.
    own = [...name].join("");
    names.set(own, own);
  }
  return own;
}

function pick(what: string, client: string[], server: string[]): string {
  for (const c of client) {
    if (KEX_PSEUDO.has(c)) continue;
    if (server.includes(c)) return canonical(c);
  }
  throw new DisconnectError(
    DisconnectReason.KEY_EXCHANGE_FAILED,
    `No matching ${what} found. Their offer: ${
      server.join(",") || "(none)"
    }; ours: ${client.join(",")}`,
  );
}

/**
 * Chooses each algorithm as RFC 4253 section 7.1 says: the first of the
 * client's list that the server also lists.
 */
export function negotiate(client: KexInit, server: KexInit): Negotiated {
  const cipherC2S = pick(
    "cipher (client to server)",
    client.cipherC2S,
    server.cipherC2S,
  );
  const cipherS2C = pick(
    "cipher (server to client)",
    client.cipherS2C,
    server.cipherS2C,
  );
  return {
    kex: pick("key exchange method", client.kex, server.kex),
    hostKey: pick("host key algorithm", client.hostKey, server.hostKey),
    cipherC2S,
    cipherS2C,
    macC2S: cipherInfo(cipherC2S).aead
      ? null
      : pick("MAC (client to server)", client.macC2S, server.macC2S),
    macS2C: cipherInfo(cipherS2C).aead
      ? null
      : pick("MAC (server to client)", client.macS2C, server.macS2C),
    compC2S: pick(
      "compression (client to server)",
      client.compC2S,
      server.compC2S,
    ),
    compS2C: pick(
      "compression (server to client)",
      client.compS2C,
      server.compS2C,
    ),
  };
}

/**
 * True when the peer's guessed first KEX packet matches what was negotiated
 * (RFC 4253 section 7: the guess is right when its first kex and host key
 * algorithms are the ones chosen).
 */
export function guessWasRight(peer: KexInit, negotiated: Negotiated): boolean {
  const firstKex = peer.kex.find((k) => !KEX_PSEUDO.has(k));
  return firstKex === negotiated.kex && peer.hostKey[0] === negotiated.hostKey;
}
