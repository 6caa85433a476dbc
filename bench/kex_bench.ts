/**
 * One full key exchange (client key, server reply, client finish) per
 * method, plus the pure-JS alternatives each backend choice was measured
 * against (see the module docs of transport/kex/_*.ts).
 *
 * Run: `deno bench --allow-read=. bench/kex_bench.ts`
 */
import { x25519 } from "@noble/curves/ed25519.js";
import { p256, p384, p521 } from "@noble/curves/nist.js";
import { KEX_NAMES, kexMethod } from "../transport/kex/mod.ts";
import { modpPrime } from "../transport/kex/_dh_groups.ts";
import { SshReader } from "../wire/reader.ts";

for (const name of KEX_NAMES) {
  const method = kexMethod(name);
  Deno.bench({
    name,
    group: "full exchange",
    baseline: name === "curve25519-sha256",
    fn() {
      const client = method.client();
      const server = method.server(new SshReader(client.publicEncoded));
      client.finish(new SshReader(server.publicEncoded));
    },
  });
}

// Pure-JS alternatives: the same work (two key pairs, two agreements).
for (
  const [name, curve] of [
    ["x25519", x25519],
    ["p256", p256],
    ["p384", p384],
    ["p521", p521],
  ] as const
) {
  Deno.bench({
    name: `@noble/curves ${name}`,
    group: "alternatives",
    fn() {
      const a = curve.utils.randomSecretKey();
      const b = curve.utils.randomSecretKey();
      curve.getSharedSecret(a, curve.getPublicKey(b));
      curve.getSharedSecret(b, curve.getPublicKey(a));
    },
  });
}

/** Left-to-right square-and-multiply on JS BigInt. */
function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let r = 1n;
  for (let i = exp.toString(2).length - 1; i >= 0; i--) {
    r = (r * r) % mod;
    if ((exp >> BigInt(i)) & 1n) r = (r * base) % mod;
  }
  return r;
}

const x = BigInt(
  "0x" + "9d".repeat(64), // a 512-bit exponent, the size the DH methods use
);
const { p: p14 } = modpPrime(14);
Deno.bench({
  name: "BigInt modpow group14, 4 exponentiations",
  group: "alternatives",
  fn() {
    const e = modPow(2n, x, p14);
    const f = modPow(2n, x - 1n, p14);
    modPow(f, x, p14);
    modPow(e, x - 1n, p14);
  },
});
