/**
 * JSON Web Token verification with Web Crypto (RFC 7519, RFC 7515): HS256
 * with a shared secret, RS256 and ES256 with keys from a JWKS document (RFC
 * 7517) read from a file or fetched from a URL and cached.
 *
 * Checks: the algorithm is one the configuration allows (never `none`, never
 * an HMAC made with a public key), the signature (Web Crypto's verify, which
 * compares in constant time), `exp` (required), `nbf`, `aud` and `iss`, with
 * a small clock skew; `sub` must be a short name usable in a URL path.
 *
 * @module
 */

/** Verification settings. */
export interface JwtConfig {
  /** HS256 shared secret (at least 32 bytes recommended). */
  secret?: string;
  /** A JWKS file path or `https://` URL with RS256/ES256 public keys. */
  jwks?: string;
  /** An inline JWKS document (e.g. from an environment variable). */
  jwksJson?: string;
  /** Required audience (`aud` must equal or contain it) when set. */
  audience?: string;
  /** Required issuer (`iss` must equal it) when set. */
  issuer?: string;
  /**
   * Seconds of clock skew tolerated on `exp` and `nbf`.
   * @default {30}
   */
  clockSkew?: number;
  /**
   * Seconds a fetched JWKS is cached.
   * @default {600}
   */
  jwksCacheSeconds?: number;
}

/** The claims we use from a verified token. */
export interface JwtClaims {
  /** Subject: the user. */
  sub: string;
  /** Expiry, seconds since the epoch. */
  exp: number;
  /** Not before, seconds since the epoch. */
  nbf?: number;
  /** Issuer. */
  iss?: string;
  /** Audience. */
  aud?: string | string[];
  /** Any other claim. */
  [claim: string]: unknown;
}

/** A token was missing, malformed, badly signed or out of date. */
export class JwtError extends Error {
  /** Creates the error with the reason shown to the client. */
  constructor(message: string) {
    super(message);
    this.name = "JwtError";
  }
}

/** Users are path segments (`/t/<user>/<name>`): keep them plain. */
const SUBJECT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAX_TOKEN = 8192;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function b64urlDecode(
  text: string,
  what: string,
): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) {
    throw new JwtError(`Malformed token: ${what} is not base64url`);
  }
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") +
    "===".slice((text.length + 3) % 4);
  try {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    throw new JwtError(`Malformed token: ${what} is not base64url`);
  }
}

function b64urlEncode(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function parseJson(bytes: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new JwtError(`Malformed token: ${what} is not JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new JwtError(`Malformed token: ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

interface Jwk {
  kty?: string;
  kid?: string;
  alg?: string;
  use?: string;
  crv?: string;
  [k: string]: unknown;
}

const ALGS = {
  RS256: {
    kty: "RSA",
    import: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    verify: { name: "RSASSA-PKCS1-v1_5" },
  },
  ES256: {
    kty: "EC",
    import: { name: "ECDSA", namedCurve: "P-256" },
    verify: { name: "ECDSA", hash: "SHA-256" },
  },
} as const;

/**
 * Verifies tokens against one configuration. JWKS keys are imported once
 * and kept for `jwksCacheSeconds`; an unknown `kid` triggers one refresh at
 * most every 30 seconds, so a flood of forged kids cannot hammer the URL.
 *
 * @example Verify an HS256 token
 * ```ts
 * import { JwtVerifier, signJwt } from "@fynx/ssh/tunnel";
 * import assert from "node:assert/strict";
 *
 * const secret = "0123456789abcdef0123456789abcdef";
 * const token = await signJwt({ sub: "alice", exp: Date.now() / 1000 + 60 }, secret);
 * const claims = await new JwtVerifier({ secret }).verify(token);
 * assert.equal(claims.sub, "alice");
 * ```
 */
export class JwtVerifier {
  readonly #config: JwtConfig;
  #hmac: Promise<CryptoKey> | null = null;
  #jwks: { keys: Jwk[]; expires: number } | null = null;
  #imported = new Map<string, Promise<CryptoKey>>();
  #lastRefresh = 0;

  /** Creates a verifier; at least one of `secret`, `jwks`, `jwksJson`. */
  constructor(config: JwtConfig) {
    if (!config.secret && !config.jwks && !config.jwksJson) {
      throw new TypeError(
        "Invalid JWT configuration: set a secret, a JWKS file or URL, or inline JWKS",
      );
    }
    this.#config = config;
  }

  /**
   * Verifies `token` and returns its claims.
   *
   * @throws {JwtError} with the reason (bad signature, expired, ...).
   */
  async verify(token: string, now: number = Date.now()): Promise<JwtClaims> {
    if (typeof token !== "string" || token === "") {
      throw new JwtError("Missing token");
    }
    if (token.length > MAX_TOKEN) {
      throw new JwtError(`Token too long (${token.length} > ${MAX_TOKEN})`);
    }
    const parts = token.split(".");
    if (parts.length !== 3) {
      throw new JwtError("Malformed token: expected three dot-separated parts");
    }
    const header = parseJson(b64urlDecode(parts[0], "header"), "header");
    const claims = parseJson(b64urlDecode(parts[1], "payload"), "payload");
    const signature = b64urlDecode(parts[2], "signature");
    const signed = encoder.encode(`${parts[0]}.${parts[1]}`);
    const alg = header.alg;
    if (alg === "HS256") {
      if (!this.#config.secret) {
        throw new JwtError("Unsupported token algorithm HS256 (no secret set)");
      }
      this.#hmac ??= crypto.subtle.importKey(
        "raw",
        encoder.encode(this.#config.secret),
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["verify"],
      );
      const ok = await crypto.subtle.verify(
        "HMAC",
        await this.#hmac,
        signature,
        signed,
      );
      if (!ok) throw new JwtError("Invalid token signature");
    } else if (alg === "RS256" || alg === "ES256") {
      if (!this.#config.jwks && !this.#config.jwksJson) {
        throw new JwtError(`Unsupported token algorithm ${alg} (no JWKS set)`);
      }
      const kid = typeof header.kid === "string" ? header.kid : undefined;
      const keys = await this.#keysFor(alg, kid, now);
      if (keys.length === 0) {
        throw new JwtError(
          `No ${alg} key${
            kid ? ` with kid ${JSON.stringify(kid)}` : ""
          } in the JWKS`,
        );
      }
      let ok = false;
      for (const key of keys) {
        if (
          await crypto.subtle.verify(ALGS[alg].verify, key, signature, signed)
        ) {
          ok = true;
          break;
        }
      }
      if (!ok) throw new JwtError("Invalid token signature");
    } else {
      throw new JwtError(
        `Unsupported token algorithm ${JSON.stringify(alg)}`,
      );
    }
    return this.#checkClaims(claims, now);
  }

  #checkClaims(claims: Record<string, unknown>, now: number): JwtClaims {
    const skew = this.#config.clockSkew ?? 30;
    const seconds = now / 1000;
    if (typeof claims.exp !== "number" || !Number.isFinite(claims.exp)) {
      throw new JwtError("Token has no numeric exp claim");
    }
    if (seconds > claims.exp + skew) throw new JwtError("Token expired");
    if (claims.nbf !== undefined) {
      if (typeof claims.nbf !== "number") {
        throw new JwtError("Token nbf claim is not a number");
      }
      if (seconds + skew < claims.nbf) {
        throw new JwtError("Token not valid yet (nbf)");
      }
    }
    const { audience, issuer } = this.#config;
    if (audience !== undefined) {
      const aud = claims.aud;
      const ok = typeof aud === "string"
        ? aud === audience
        : Array.isArray(aud) && aud.includes(audience);
      if (!ok) throw new JwtError(`Token audience is not ${audience}`);
    }
    if (issuer !== undefined && claims.iss !== issuer) {
      throw new JwtError(`Token issuer is not ${issuer}`);
    }
    if (typeof claims.sub !== "string" || !SUBJECT.test(claims.sub)) {
      throw new JwtError(
        "Token sub must be 1-64 characters of A-Z a-z 0-9 . _ -",
      );
    }
    return claims as JwtClaims;
  }

  async #loadJwks(now: number): Promise<Jwk[]> {
    if (this.#jwks && this.#jwks.expires > now) return this.#jwks.keys;
    let text: string;
    const source = this.#config.jwks;
    if (this.#config.jwksJson) {
      text = this.#config.jwksJson;
    } else if (source && /^https?:\/\//.test(source)) {
      let res: Response;
      try {
        res = await fetch(source, { signal: AbortSignal.timeout(10_000) });
        if (!res.ok) {
          await res.body?.cancel();
          throw new Error(`HTTP ${res.status}`);
        }
        text = await res.text();
      } catch (e) {
        throw new JwtError(
          `Cannot fetch JWKS ${source}: ${(e as Error).message}`,
        );
      }
    } else {
      try {
        text = await Deno.readTextFile(source!);
      } catch (e) {
        throw new JwtError(
          `Cannot read JWKS ${source}: ${(e as Error).message}`,
        );
      }
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new JwtError("Malformed JWKS: not JSON");
    }
    const keys = (doc as { keys?: unknown }).keys;
    if (!Array.isArray(keys)) throw new JwtError("Malformed JWKS: no keys");
    this.#imported.clear();
    this.#lastRefresh = now;
    this.#jwks = {
      keys: keys.filter((k) => typeof k === "object" && k !== null),
      expires: now + (this.#config.jwksCacheSeconds ?? 600) * 1000,
    };
    return this.#jwks.keys;
  }

  async #keysFor(
    alg: "RS256" | "ES256",
    kid: string | undefined,
    now: number,
  ): Promise<CryptoKey[]> {
    let jwks = await this.#loadJwks(now);
    const match = (k: Jwk) =>
      k.kty === ALGS[alg].kty && (k.alg === undefined || k.alg === alg) &&
      (k.use === undefined || k.use === "sig") &&
      (alg !== "ES256" || k.crv === "P-256") &&
      (kid === undefined || k.kid === kid);
    if (!jwks.some(match) && kid !== undefined && !this.#config.jwksJson) {
      // Key rotation: refetch once, at most every 30 s.
      if (now - this.#lastRefresh > 30_000) {
        this.#jwks = null;
        jwks = await this.#loadJwks(now);
      }
    }
    const out: CryptoKey[] = [];
    for (const [i, jwk] of jwks.entries()) {
      if (!match(jwk)) continue;
      const id = `${alg}:${i}`;
      let key = this.#imported.get(id);
      if (!key) {
        const { kty, crv, n, e, x, y } = jwk;
        key = crypto.subtle.importKey(
          "jwk",
          { kty, crv, n, e, x, y } as JsonWebKey,
          ALGS[alg].import,
          false,
          ["verify"],
        );
        this.#imported.set(id, key);
      }
      try {
        out.push(await key);
      } catch {
        throw new JwtError(`Malformed JWKS key ${jwk.kid ?? i}`);
      }
    }
    return out;
  }
}

/**
 * Signs `claims` as an HS256 JWT (for development tokens and tests).
 *
 * @example
 * ```ts
 * import { signJwt } from "@fynx/ssh/tunnel";
 * const token = await signJwt({ sub: "dev", exp: 2e9 }, "a secret of some length");
 * console.log(token.split(".").length); // 3
 * ```
 */
export async function signJwt(
  claims: Record<string, unknown>,
  secret: string,
): Promise<string> {
  const head = b64urlEncode(
    encoder.encode(JSON.stringify({ alg: "HS256", typ: "JWT" })),
  );
  const body = b64urlEncode(encoder.encode(JSON.stringify(claims)));
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const sig = await crypto.subtle.sign(
    "HMAC",
    key,
    encoder.encode(`${head}.${body}`),
  );
  return `${head}.${body}.${b64urlEncode(new Uint8Array(sig))}`;
}

/** base64url without padding (for tests signing RS256/ES256 tokens). */
export function base64url(bytes: Uint8Array): string {
  return b64urlEncode(bytes);
}
