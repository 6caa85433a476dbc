/**
 * Tunnel server authentication: HS256, RS256/ES256 from a JWKS file and
 * URL, every rejected-token path (401 with a JSON reason), and the SSH
 * policies `jwt` and `jwt+key`.
 */
import assert from "node:assert/strict";
import { connect } from "../client.ts";
import { base64url, signJwt, webSocketDuplex } from "../tunnel/mod.ts";
import { testKey } from "./_helpers.ts";
import {
  connectClient,
  localService,
  openWebSocket,
  SECRET,
  startServer,
} from "./_tunnel_server.ts";

const now = () => Math.floor(Date.now() / 1000);
const enc = new TextEncoder();

async function signAsym(
  alg: "RS256" | "ES256",
  key: CryptoKey,
  kid: string,
  claims: Record<string, unknown>,
): Promise<string> {
  const head = base64url(enc.encode(JSON.stringify({ alg, kid, typ: "JWT" })));
  const body = base64url(enc.encode(JSON.stringify(claims)));
  const params = alg === "RS256"
    ? { name: "RSASSA-PKCS1-v1_5" }
    : { name: "ECDSA", hash: "SHA-256" };
  const sig = await crypto.subtle.sign(
    params,
    key,
    enc.encode(`${head}.${body}`),
  );
  return `${head}.${body}.${base64url(new Uint8Array(sig))}`;
}

async function status(base: string, token?: string): Promise<[number, string]> {
  const res = await fetch(`${base}/v1/ssh`, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  const body = await res.json();
  return [res.status, body.error];
}

Deno.test("tunnel auth: bad, expired and misaddressed tokens get 401", async () => {
  const server = await startServer({
    auth: { secret: SECRET, audience: "fynx", issuer: "https://issuer" },
  });
  try {
    const good = { sub: "alice", aud: "fynx", iss: "https://issuer" };
    const t = (claims: Record<string, unknown>, secret = SECRET) =>
      signJwt({ exp: now() + 60, ...claims }, secret);
    assert.deepEqual(await status(server.base), [
      401,
      "Missing Authorization: Bearer token",
    ]);
    assert.deepEqual(await status(server.base, "abc"), [
      401,
      "Malformed token: expected three dot-separated parts",
    ]);
    assert.deepEqual(
      await status(server.base, await t(good, "another secret entirely....")),
      [401, "Invalid token signature"],
    );
    assert.deepEqual(
      await status(
        server.base,
        await signJwt({ ...good, exp: now() - 3600 }, SECRET),
      ),
      [401, "Token expired"],
    );
    assert.deepEqual(
      await status(server.base, await signJwt({ ...good }, SECRET)),
      [401, "Token has no numeric exp claim"],
    );
    assert.deepEqual(
      await status(server.base, await t({ ...good, nbf: now() + 3600 })),
      [401, "Token not valid yet (nbf)"],
    );
    assert.deepEqual(
      await status(server.base, await t({ ...good, aud: "other" })),
      [401, "Token audience is not fynx"],
    );
    assert.deepEqual(
      await status(server.base, await t({ ...good, iss: "https://evil" })),
      [401, "Token issuer is not https://issuer"],
    );
    assert.deepEqual(
      await status(server.base, await t({ ...good, sub: "../etc" })),
      [401, "Token sub must be 1-64 characters of A-Z a-z 0-9 . _ -"],
    );
    // alg "none" and an RS256 header without any JWKS configured.
    const unsigned = `${base64url(enc.encode('{"alg":"none"}'))}.${
      base64url(enc.encode(JSON.stringify({ ...good, exp: now() + 60 })))
    }.`;
    assert.deepEqual(await status(server.base, unsigned), [
      401,
      'Unsupported token algorithm "none"',
    ]);
    // A valid token without the upgrade is told to upgrade.
    const res = await fetch(`${server.base}/v1/ssh`, {
      headers: { authorization: `Bearer ${await t(good)}` },
    });
    assert.equal(res.status, 426);
    await res.body?.cancel();
    assert.equal(server.tunnel.metrics.authFailures.get("jwt"), 10);
    const audit = await server.tunnel.store.listAudit(20);
    assert.ok(
      audit.some((e) =>
        e.type === "auth.failed" && e.reason === "Token expired"
      ),
    );
    // A clock skew of a few seconds is tolerated.
    const c = await connectClient(server, {
      token: await signJwt({ ...good, exp: now() - 5 }, SECRET),
    });
    await c.close();
  } finally {
    await server.close();
  }
});

Deno.test("tunnel auth: RS256 and ES256 keys from a JWKS file and URL", async () => {
  const rsa = await crypto.subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  );
  const ec = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  );
  const jwks = {
    keys: [
      {
        ...await crypto.subtle.exportKey("jwk", rsa.publicKey),
        kid: "r1",
        alg: "RS256",
      },
      { ...await crypto.subtle.exportKey("jwk", ec.publicKey), kid: "e1" },
    ],
  };
  const dir = await Deno.makeTempDir();
  const file = `${dir}/jwks.json`;
  await Deno.writeTextFile(file, JSON.stringify(jwks));
  let fetches = 0;
  const jwksServer = localService(() => {
    fetches++;
    return Response.json(jwks);
  });
  try {
    for (const source of [file, `http://127.0.0.1:${jwksServer.port}/jwks`]) {
      const server = await startServer({ auth: { jwks: source } });
      try {
        const claims = { sub: "carol", exp: now() + 60 };
        const rs = await signAsym("RS256", rsa.privateKey, "r1", claims);
        const es = await signAsym("ES256", ec.privateKey, "e1", claims);
        for (const token of [rs, es]) {
          const c = await connectClient(server, { user: "carol", token });
          await c.close();
        }
        // Wrong kid, a key of the wrong type, an HS256 token (no secret).
        assert.deepEqual(
          await status(
            server.base,
            await signAsym("ES256", ec.privateKey, "r1", claims),
          ),
          [401, 'No ES256 key with kid "r1" in the JWKS'],
        );
        const other = await crypto.subtle.generateKey(
          { name: "ECDSA", namedCurve: "P-256" },
          false,
          ["sign"],
        );
        assert.deepEqual(
          await status(
            server.base,
            await signAsym("ES256", other.privateKey, "e1", claims),
          ),
          [401, "Invalid token signature"],
        );
        assert.deepEqual(
          await status(server.base, await signJwt(claims, SECRET)),
          [401, "Unsupported token algorithm HS256 (no secret set)"],
        );
      } finally {
        await server.close();
      }
    }
    // The URL was fetched once and cached (the unknown kid "r1" for ES256
    // found a key list that already had a kid r1, so no refetch).
    assert.equal(fetches, 1);
  } finally {
    await jwksServer.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tunnel auth: SSH user must be the token's sub; jwt+key needs the key", async () => {
  const userKey = testKey("ecdsa-p256");
  const server = await startServer();
  const strict = await startServer({
    sshAuth: "jwt+key",
    authorizedKeys: { alice: userKey.publicKey.toString() + "\n" },
  });
  try {
    // jwt: logging in as someone else than the token's sub fails.
    await assert.rejects(
      connectClient(server, { user: "alice", username: "bob" }),
      /auth|Permission denied|All authentication methods failed/i,
    );
    assert.ok((server.tunnel.metrics.authFailures.get("ssh") ?? 0) >= 1);
    // jwt+key: none alone fails; the registered key succeeds.
    await assert.rejects(
      connectClient(strict, { user: "alice" }),
      /auth|Permission denied|All authentication methods failed/i,
    );
    const token = await strict.token("alice");
    const ws = await openWebSocket(`ws://127.0.0.1:${strict.port}/v1/ssh`, {
      authorization: `Bearer ${token}`,
    });
    const duplex = webSocketDuplex(ws, { pingInterval: 0 });
    const fp = strict.tunnel.hostKey.publicKey.fingerprint();
    const client = await connect({
      transport: duplex,
      username: "alice",
      privateKeys: [userKey],
      verifyHostKey: (k) => k.fingerprint() === fp,
    });
    await client.close();
    await duplex.closed;
  } finally {
    await server.close();
    await strict.close();
  }
});
