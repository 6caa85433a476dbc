/**
 * One full key exchange (client key, server reply, client finish) per
 * method, plus the pure-JS alternatives each backend choice was measured
 * against (see the module docs of transport/kex/_*.ts).
 *
 * Run: `deno bench --allow-read=. bench/kex_bench.ts`
 *
 * sntrup761 on a cold start (issue 6): a key pair is usually made once per
 * process, so its first call is what the time to first output pays. Run
 * `deno run --allow-read=. bench/kex_bench.ts --cold` in a loop (each run is
 * a fresh process; it prints the first call of each primitive, then the
 * median of 30 warm calls), e.g.
 * `for i in $(seq 15); do deno run --allow-read=. bench/kex_bench.ts --cold; done`.
 * Medians of 15 such runs on the 2-core development machine (ms; "before"
 * is commit 026408b's JS divsteps, measured with this same script):
 *
 * | sntrup761           | keypair cold | warm | encaps cold | warm | decaps cold | warm |
 * | ------------------- | -----------: | ---: | ----------: | ---: | ----------: | ---: |
 * | before (JS)         |         56.1 | 65.3 |         1.7 | 0.76 |         7.2 | 1.28 |
 * | WebAssembly kernels |          5.6 | 1.47 |         1.4 | 0.29 |         3.3 | 0.59 |
 *
 * End to end (`deno task bench:e2e --only startup --startup-runs 12
 * --no-write`, against sshd, which picks sntrup761x25519-sha512): time to
 * first output of `echo hi`, fynx library 344 -> 270 ms and `fynx ssh`
 * 363 -> 284 ms (medians; OpenSSH ssh 294 and 280 ms in the same runs).
 */
import { x25519 } from "@noble/curves/ed25519.js";
import { p256, p384, p521 } from "@noble/curves/nist.js";
import { KEX_NAMES, kexMethod } from "../transport/kex/mod.ts";
import { modpPrime } from "../transport/kex/_dh_groups.ts";
import { SshReader } from "../wire/reader.ts";
import {
  sntrup761Decapsulate,
  sntrup761Encapsulate,
  sntrup761Keypair,
} from "../transport/kex/_sntrup761x25519.ts";

if (Deno.args.includes("--cold")) {
  // First calls in this (fresh) process, then warm medians.
  const time = (fn: () => unknown): number => {
    const start = performance.now();
    fn();
    return performance.now() - start;
  };
  let t = performance.now();
  let keys = sntrup761Keypair();
  const cold = [performance.now() - t];
  t = performance.now();
  let sealed = sntrup761Encapsulate(keys.publicKey);
  cold.push(performance.now() - t);
  cold.push(
    time(() => sntrup761Decapsulate(sealed.cipherText, keys.secretKey)),
  );
  const warm: number[][] = [[], [], []];
  for (let i = 0; i < 30; i++) {
    warm[0].push(time(() => (keys = sntrup761Keypair())));
    warm[1].push(time(() => (sealed = sntrup761Encapsulate(keys.publicKey))));
    warm[2].push(
      time(() => sntrup761Decapsulate(sealed.cipherText, keys.secretKey)),
    );
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
  const names = ["keypair", "encapsulate", "decapsulate"];
  console.log(
    names.map((n, i) =>
      `${n} cold ${cold[i].toFixed(2)} warm ${median(warm[i]).toFixed(2)} ms`
    ).join(" | "),
  );
}

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

{
  const { publicKey, secretKey } = sntrup761Keypair();
  const { cipherText } = sntrup761Encapsulate(publicKey);
  Deno.bench({
    name: "sntrup761 keypair",
    group: "sntrup761",
    baseline: true,
    fn: () => void sntrup761Keypair(),
  });
  Deno.bench({
    name: "sntrup761 encapsulate",
    group: "sntrup761",
    fn: () => void sntrup761Encapsulate(publicKey),
  });
  Deno.bench({
    name: "sntrup761 decapsulate",
    group: "sntrup761",
    fn: () => void sntrup761Decapsulate(cipherText, secretKey),
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
