/**
 * Host/user key signatures through keys/mod.ts (native `node:crypto`),
 * against the alternatives the backend choice was measured against:
 * @noble/curves (pure JS, sync) and Web Crypto (native but async, which the
 * synchronous `PrivateKey.sign`/`PublicKey.verify` contract cannot use).
 *
 * Run: `deno bench --allow-read=. bench/sign_bench.ts`
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { p256, p384, p521 } from "@noble/curves/nist.js";
import { generatePrivateKey } from "../keys/mod.ts";

const data = crypto.getRandomValues(new Uint8Array(64)); // an exchange hash

const keys = [
  ["ssh-ed25519", generatePrivateKey("ed25519")],
  ["ecdsa-sha2-nistp256", generatePrivateKey("ecdsa-p256")],
  ["ecdsa-sha2-nistp384", generatePrivateKey("ecdsa-p384")],
  ["ecdsa-sha2-nistp521", generatePrivateKey("ecdsa-p521")],
  ["rsa-sha2-512 (2048)", generatePrivateKey("rsa", { bits: 2048 })],
  ["rsa-sha2-512 (3072)", generatePrivateKey("rsa", { bits: 3072 })],
  ["rsa-sha2-512 (4096)", generatePrivateKey("rsa", { bits: 4096 })],
] as const;

for (const [name, key] of keys) {
  const alg = key.publicKey.signatureAlgorithms[0];
  const sig = key.sign(data, alg);
  Deno.bench({
    name: `sign ${name}`,
    group: "sign",
    baseline: name === "ssh-ed25519",
    fn() {
      key.sign(data, alg);
    },
  });
  Deno.bench({
    name: `verify ${name}`,
    group: "verify",
    baseline: name === "ssh-ed25519",
    fn() {
      if (!key.publicKey.verify(data, sig, alg)) throw new Error("bad");
    },
  });
}

// Alternatives.
const edSecret = ed25519.utils.randomSecretKey();
const edPub = ed25519.getPublicKey(edSecret);
const edSig = ed25519.sign(data, edSecret);
Deno.bench({
  name: "@noble/curves ed25519 sign",
  group: "sign",
  fn() {
    ed25519.sign(data, edSecret);
  },
});
Deno.bench({
  name: "@noble/curves ed25519 verify",
  group: "verify",
  fn() {
    ed25519.verify(edSig, data, edPub);
  },
});
for (
  const [name, curve] of [["p256", p256], ["p384", p384], [
    "p521",
    p521,
  ]] as const
) {
  const secret = curve.utils.randomSecretKey();
  const pub = curve.getPublicKey(secret);
  const sig = curve.sign(data, secret);
  Deno.bench({
    name: `@noble/curves ${name} sign`,
    group: "sign",
    fn() {
      curve.sign(data, secret);
    },
  });
  Deno.bench({
    name: `@noble/curves ${name} verify`,
    group: "verify",
    fn() {
      curve.verify(sig, data, pub);
    },
  });
}

const wcEd = await crypto.subtle.generateKey({ name: "Ed25519" }, false, [
  "sign",
  "verify",
]) as CryptoKeyPair;
const wcEdSig = await crypto.subtle.sign("Ed25519", wcEd.privateKey, data);
Deno.bench({
  name: "Web Crypto Ed25519 sign (async)",
  group: "sign",
  async fn() {
    await crypto.subtle.sign("Ed25519", wcEd.privateKey, data);
  },
});
Deno.bench({
  name: "Web Crypto Ed25519 verify (async)",
  group: "verify",
  async fn() {
    await crypto.subtle.verify("Ed25519", wcEd.publicKey, wcEdSig, data);
  },
});
const ecdsa = { name: "ECDSA", hash: "SHA-256" };
const wcP256 = await crypto.subtle.generateKey(
  { name: "ECDSA", namedCurve: "P-256" },
  false,
  ["sign", "verify"],
) as CryptoKeyPair;
const wcP256Sig = await crypto.subtle.sign(ecdsa, wcP256.privateKey, data);
Deno.bench({
  name: "Web Crypto P-256 sign (async)",
  group: "sign",
  async fn() {
    await crypto.subtle.sign(ecdsa, wcP256.privateKey, data);
  },
});
Deno.bench({
  name: "Web Crypto P-256 verify (async)",
  group: "verify",
  async fn() {
    await crypto.subtle.verify(ecdsa, wcP256.publicKey, wcP256Sig, data);
  },
});
