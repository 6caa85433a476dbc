/**
 * Seal + open throughput of every packet cipher (and every MAC with AES-CTR)
 * at 1 KiB, 32 KiB and 256 KiB packets, plus the alternative backends the
 * choices in transport/cipher/ were measured against.
 *
 * Run: `deno bench bench/cipher_bench.ts`
 */
import { poly1305 } from "@noble/ciphers/_poly1305.js";
import { gcm } from "@noble/ciphers/aes.js";
import {
  CIPHER_NAMES,
  cipherInfo,
  createPacketCipher,
  MAC_NAMES,
  macInfo,
} from "../transport/cipher/mod.ts";

const SIZES: [string, number][] = [
  ["1 KiB", 1024],
  ["32 KiB", 32 * 1024],
  ["256 KiB", 256 * 1024],
];

function fill(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

for (const [label, size] of SIZES) {
  for (const cipher of CIPHER_NAMES) {
    const ci = cipherInfo(cipher);
    for (const mac of ci.aead ? [null] : MAC_NAMES) {
      const keys = {
        key: fill(ci.keyLength),
        iv: fill(ci.ivLength),
        macKey: fill(mac ? macInfo(mac).keyLength : 0),
      };
      const seal = createPacketCipher(cipher, mac, keys, "seal");
      const open = createPacketCipher(cipher, mac, keys, "open");
      // A `size`-byte packet (plus the clear length when that is outside the
      // aligned part) with a valid length field.
      const packet = fill(size + (seal.lengthInClear ? 4 : 0));
      new DataView(packet.buffer).setUint32(0, packet.length - 4);
      packet[4] = 4;
      let seq = 0;
      Deno.bench({
        name: `${cipher}${mac ? " + " + mac : ""}`,
        group: `seal+open ${label}`,
        baseline: cipher === CIPHER_NAMES[0],
        n: size >= 256 * 1024 ? 200 : undefined,
        async fn() {
          const wire = await seal.seal(seq, packet);
          open.packetLength(seq, wire.subarray(0, open.headLength));
          await open.open(seq, wire);
          seq = (seq + 1) >>> 0;
        },
      });
    }
  }
  // Alternatives: pure-JS GCM and Poly1305 alone (the chacha bottleneck).
  const data = fill(size);
  const key = fill(32);
  Deno.bench({
    name: "@noble/ciphers gcm seal+open",
    group: `alternatives ${label}`,
    n: size >= 256 * 1024 ? 50 : undefined,
    fn() {
      const nonce = new Uint8Array(12);
      gcm(key, nonce).decrypt(gcm(key, nonce).encrypt(data));
    },
  });
  Deno.bench({
    name: "@noble/ciphers poly1305 x2",
    group: `alternatives ${label}`,
    fn() {
      poly1305(data, key);
      poly1305(data, key);
    },
  });
}
