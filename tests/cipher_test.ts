/**
 * SSH packet ciphers and MACs: known-answer vectors for each primitive as
 * used, comparisons of each construction with an independent composition
 * from @noble primitives, round trips for every cipher x MAC, and tampering.
 */
import assert from "node:assert/strict";
import { createCipheriv, createDecipheriv } from "node:crypto";
import { chacha20orig } from "@noble/ciphers/chacha.js";
import { poly1305 } from "@noble/ciphers/_poly1305.js";
import { ctr, gcm } from "@noble/ciphers/aes.js";
import { bytesToHex, concatBytes, hexToBytes } from "@noble/ciphers/utils.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import {
  CIPHER_NAMES,
  cipherInfo,
  createNoneCipher,
  createPacketCipher,
  type DirectionKeys,
  MAC_NAMES,
  MacError,
  macInfo,
  type PacketCipher,
} from "../transport/cipher/mod.ts";
import { HMACS, packetMac } from "../transport/cipher/_hmac.ts";
import { streamXor } from "../transport/cipher/_common.ts";
import {
  poly1305Wasm,
  setPoly1305Simd,
} from "../transport/cipher/_poly1305.ts";

const hex = (s: string): Uint8Array => hexToBytes(s.replace(/[\s:]/g, ""));
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const MAX_PACKET = 256 * 1024;

/** Deterministic bytes. */
function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function keysFor(cipher: string, mac: string | null, seed = 1): DirectionKeys {
  const ci = cipherInfo(cipher);
  const mi = mac && !ci.aead ? macInfo(mac) : null;
  return {
    key: bytes(ci.keyLength, seed),
    iv: bytes(ci.ivLength, seed + 100),
    macKey: bytes(mi ? mi.keyLength : 0, seed + 200),
  };
}

/** Builds a packet the way the transport does (RFC 4253 section 6). */
function buildPacket(
  cipher: PacketCipher,
  payloadLength: number,
  seed = 3,
): Uint8Array {
  const block = Math.max(8, cipher.blockSize);
  const aligned = 5 + payloadLength - (cipher.lengthInClear ? 4 : 0);
  let pad = block - (aligned % block);
  if (pad < 4) pad += block;
  while (5 + payloadLength + pad < 16) pad += block;
  const packet = new Uint8Array(5 + payloadLength + pad);
  new DataView(packet.buffer).setUint32(0, 1 + payloadLength + pad);
  packet[4] = pad;
  packet.set(bytes(payloadLength, seed), 5);
  packet.set(bytes(pad, seed + 1), 5 + payloadLength);
  return packet;
}

/** Receives one wire packet like the transport: head, length, bounds, open. */
async function receive(
  cipher: PacketCipher,
  seq: number,
  wire: Uint8Array,
): Promise<Uint8Array> {
  const head = wire.slice(0, cipher.headLength);
  const len = cipher.packetLength(seq, head);
  assert.equal(
    4 + len + cipher.tagLength,
    wire.length,
    `framing of packet ${seq}`,
  );
  return await cipher.open(seq, wire);
}

const COMBOS: [string, string | null][] = CIPHER_NAMES.flatMap((c) =>
  cipherInfo(c).aead
    ? [[c, null] as [string, string | null]]
    : MAC_NAMES.map((m) => [c, m] as [string, string])
);

// ---------------------------------------------------------------- names, info

Deno.test("cipher names, MAC names and sizes", () => {
  assert.deepEqual(CIPHER_NAMES, [
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
  ]);
  assert.deepEqual(MAC_NAMES, [
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
  ]);
  assert.deepEqual(cipherInfo("chacha20-poly1305@openssh.com"), {
    name: "chacha20-poly1305@openssh.com",
    keyLength: 64,
    ivLength: 0,
    blockSize: 8,
    aead: true,
  });
  assert.deepEqual(cipherInfo("aes128-gcm@openssh.com"), {
    name: "aes128-gcm@openssh.com",
    keyLength: 16,
    ivLength: 12,
    blockSize: 16,
    aead: true,
  });
  assert.deepEqual(cipherInfo("aes192-ctr"), {
    name: "aes192-ctr",
    keyLength: 24,
    ivLength: 16,
    blockSize: 16,
    aead: false,
  });
  assert.deepEqual(macInfo("hmac-sha2-512-etm@openssh.com"), {
    name: "hmac-sha2-512-etm@openssh.com",
    keyLength: 64,
    length: 64,
    etm: true,
  });
  assert.deepEqual(macInfo("hmac-sha2-256"), {
    name: "hmac-sha2-256",
    keyLength: 32,
    length: 32,
    etm: false,
  });
  assert.throws(() => cipherInfo("aes128-cbc"), TypeError);
  assert.throws(() => macInfo("hmac-sha1"), TypeError);
});

Deno.test("createPacketCipher() rejects bad names, missing MACs and wrong key sizes", () => {
  const k = keysFor("aes128-ctr", "hmac-sha2-256");
  assert.throws(
    () => createPacketCipher("3des-cbc", "hmac-sha2-256", k, "seal"),
    TypeError,
  );
  assert.throws(
    () => createPacketCipher("aes128-ctr", "hmac-md5", k, "seal"),
    TypeError,
  );
  assert.throws(
    () => createPacketCipher("aes128-ctr", null, k, "seal"),
    TypeError,
  );
  assert.throws(
    () => createPacketCipher("aes256-ctr", "hmac-sha2-256", k, "seal"),
    /expected 32 bytes, got 16/,
  );
  assert.throws(
    () => createPacketCipher("aes128-ctr", "hmac-sha2-512", k, "open"),
    TypeError,
  );
  assert.throws(
    () => createPacketCipher("chacha20-poly1305@openssh.com", null, k, "open"),
    TypeError,
  );
  assert.throws(
    () => createPacketCipher("aes256-gcm@openssh.com", null, k, "open"),
    TypeError,
  );
  // The MAC is ignored for AEAD ciphers.
  const c = createPacketCipher(
    "aes128-gcm@openssh.com",
    "hmac-sha2-256",
    keysFor("aes128-gcm@openssh.com", null),
    "seal",
  );
  assert.equal(c.tagLength, 16);
});

Deno.test("PacketCipher sizes per combination", () => {
  for (const [c, m] of COMBOS) {
    const p = createPacketCipher(c, m, keysFor(c, m), "open");
    const etm = m !== null && macInfo(m).etm;
    if (c.startsWith("chacha")) {
      assert.deepEqual([
        p.blockSize,
        p.headLength,
        p.tagLength,
        p.lengthInClear,
      ], [8, 4, 16, true]);
    } else if (c.includes("gcm")) {
      assert.deepEqual([
        p.blockSize,
        p.headLength,
        p.tagLength,
        p.lengthInClear,
      ], [16, 4, 16, true]);
    } else {
      assert.deepEqual([
        p.blockSize,
        p.headLength,
        p.tagLength,
        p.lengthInClear,
      ], [
        16,
        etm ? 4 : 16,
        macInfo(m!).length,
        etm,
      ]);
    }
  }
  const none = createNoneCipher();
  assert.deepEqual([
    none.blockSize,
    none.headLength,
    none.tagLength,
    none.lengthInClear,
  ], [8, 4, 0, false]);
});

// ---------------------------------------------------------------- known answers

Deno.test("HMAC-SHA-256/512 known answers (RFC 4231 test cases 1, 2, 6)", () => {
  const cases = [
    {
      key: new Uint8Array(20).fill(0x0b),
      data: utf8("Hi There"),
      s256: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
      s512: "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde" +
        "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
    },
    {
      key: utf8("Jefe"),
      data: utf8("what do ya want for nothing?"),
      s256: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      s512: "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554" +
        "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
    },
    {
      key: new Uint8Array(131).fill(0xaa),
      data: utf8("Test Using Larger Than Block-Size Key - Hash Key First"),
      s256: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
      s512: "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352" +
        "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
    },
  ];
  for (const { key, data, s256, s512 } of cases) {
    // packetMac prepends the uint32 sequence number: take it from the data's
    // first four bytes and split the rest in two pieces, as classic mode does.
    const seq = new DataView(data.buffer).getUint32(0);
    const a = data.subarray(4, 9);
    const b = data.subarray(9);
    assert.equal(
      bytesToHex(packetMac(HMACS.get("hmac-sha2-256")!, key, seq, a, b)),
      s256,
    );
    assert.equal(
      bytesToHex(
        packetMac(
          HMACS.get("hmac-sha2-512-etm@openssh.com")!,
          key,
          seq,
          data.subarray(4),
        ),
      ),
      s512,
    );
  }
});

Deno.test("AES-CTR known answers as a persistent stream (NIST SP 800-38A F.5.1, F.5.3, F.5.5)", () => {
  const iv = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
  const plain = hex(
    "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51" +
      "30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710",
  );
  const vectors: [string, string, string][] = [
    [
      "aes-128-ctr",
      "2b7e151628aed2a6abf7158809cf4f3c",
      "874d6191b620e3261bef6864990db6ce 9806f66b7970fdff8617187bb9fffdff" +
      "5ae4df3edbd5d35e5b4f09020db03eab 1e031dda2fbe03d1792170a0f3009cee",
    ],
    [
      "aes-192-ctr",
      "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
      "1abc932417521ca24f2b0459fe7e6e0b 090339ec0aa6faefd5ccc2c6f4ce8e94" +
      "1e36b26bd1ebc670d1bd1d665620abf7 4f78a7f6d29809585a97daec58c6b050",
    ],
    [
      "aes-256-ctr",
      "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
      "601ec313775789a5b7a7f504bbf3d228 f443e3ca4d62b59aca84e990cacaf5c5" +
      "2b0930daa23de94ce87017ba2d84988d dfc9c58db67aada613c2dd08457941a6",
    ],
  ];
  for (const [algo, key, expected] of vectors) {
    // Whole blocks across calls, like packets; then odd pieces (the stream must
    // keep its position inside a block).
    const enc = createCipheriv(algo, hex(key), iv);
    const out = concatBytes(
      enc.update(plain.subarray(0, 16)),
      enc.update(plain.subarray(16)),
    );
    assert.equal(bytesToHex(out), bytesToHex(hex(expected)), algo);
    enc.final(); // Deno keeps node:crypto ciphers as resources until final()
    const dec = createDecipheriv(algo, hex(key), iv);
    const back = concatBytes(
      dec.update(out.subarray(0, 5)),
      dec.update(out.subarray(5, 37)),
      dec.update(out.subarray(37)),
    );
    dec.final();
    assert.deepEqual(back, plain);
  }
});

Deno.test("AES-GCM known answers for every backend (McGrew-Viega test cases 4 and 16)", async () => {
  const iv = hex("cafebabefacedbaddecaf888");
  const aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  const plain = hex(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" +
      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
  );
  const vectors = [
    {
      algo: "aes-128-gcm" as const,
      key: hex("feffe9928665731c6d6a8f9467308308"),
      ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e" +
        "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
      tag: "5bc94fbc3221a5db94fae95ae7121a47",
    },
    {
      algo: "aes-256-gcm" as const,
      key: hex(
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
      ),
      ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" +
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
      tag: "76fc6ece0f4e1768cddf8853bb2d551b",
    },
  ];
  for (const { algo, key, ct, tag } of vectors) {
    // node:crypto GCM (small packets, sealing; tag recomputation when opening).
    const c = createCipheriv(algo, key, iv);
    c.setAAD(aad);
    const out = c.update(plain);
    c.final();
    assert.equal(bytesToHex(out), ct, algo);
    assert.equal(bytesToHex(c.getAuthTag()), tag, algo);
    // AES-CTR from counter block nonce || 2 (opening small packets).
    const counter = new Uint8Array(16);
    counter.set(iv);
    counter[15] = 2;
    const ctrAlgo = algo === "aes-128-gcm" ? "aes-128-ctr" : "aes-256-ctr";
    assert.deepEqual(
      new Uint8Array(streamXor(ctrAlgo, key, counter, hex(ct))),
      plain,
    );
    // Web Crypto (large packets).
    const wk = await crypto.subtle.importKey(
      "raw",
      key as Uint8Array<ArrayBuffer>,
      "AES-GCM",
      false,
      ["encrypt", "decrypt"],
    );
    const sealed = await crypto.subtle.encrypt(
      {
        name: "AES-GCM",
        iv: iv as Uint8Array<ArrayBuffer>,
        additionalData: aad as Uint8Array<ArrayBuffer>,
      },
      wk,
      plain as Uint8Array<ArrayBuffer>,
    );
    assert.equal(bytesToHex(new Uint8Array(sealed)), ct + tag);
  }
});

Deno.test("ChaCha20 block and Poly1305 known answers (RFC 8439 sections 2.3.2 and 2.5.2)", () => {
  const key = hex(
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
  );
  // node:crypto's IV: 32-bit counter (little-endian) || 96-bit nonce.
  const iv = concatBytes(hex("01000000"), hex("000000090000004a00000000"));
  const block = streamXor("chacha20", key, iv, new Uint8Array(64));
  assert.equal(
    bytesToHex(block),
    "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e" +
      "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e",
  );
  const polyKey = hex(
    "85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b",
  );
  assert.equal(
    bytesToHex(poly1305(utf8("Cryptographic Forum Research Group"), polyKey)),
    "a8061dc1305136c6c22b8baf0c0127a9",
  );
});

/** Runs `fn` with the SIMD module (asserting the engine has it), then with
 * the scalar-only module engines without SIMD get; SIMD is back afterwards. */
function bothPolyPaths(fn: (path: string) => void): void {
  try {
    assert.equal(setPoly1305Simd(true), true, "WebAssembly SIMD available");
    fn("SIMD");
    assert.equal(setPoly1305Simd(false), false);
    fn("scalar");
  } finally {
    setPoly1305Simd(true);
  }
}

Deno.test("WebAssembly Poly1305: RFC 8439 vectors (section 2.5.2, A.3 #1-#3, #6-#11), SIMD and scalar", () => {
  const z = (n: number) => "00".repeat(n);
  const ff = (n: number) => "ff".repeat(n);
  const sunscreen = bytesToHex(utf8(
    "Any submission to the IETF intended by the Contributor for publication" +
      " as all or part of an IETF Internet-Draft or RFC and any statement" +
      " made within the context of an IETF activity is considered an" +
      ' "IETF Contribution". Such statements include oral statements in IETF' +
      " sessions, as well as written and electronic communications made at" +
      " any time or place, which are addressed to",
  ));
  const vectors: [string, string, string][] = [
    [
      "85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b",
      bytesToHex(utf8("Cryptographic Forum Research Group")),
      "a8061dc1305136c6c22b8baf0c0127a9",
    ],
    // A.3 #1-#3: r = 0 (the tag is s), and 375 bytes (11 pairs + 7 blocks).
    [z(32), z(64), z(16)],
    [
      z(16) + "36e5f6b5c5e06070f0efca96227a863e",
      sunscreen,
      "36e5f6b5c5e06070f0efca96227a863e",
    ],
    [
      "36e5f6b5c5e06070f0efca96227a863e" + z(16),
      sunscreen,
      "f3477e7cd95417af89a6b8794c310cf0",
    ],
    // A.3 #6-#10 exercise the final reduction (h >= p) and the carries.
    ["02" + z(31), ff(16), "03" + z(15)],
    ["02" + z(15) + ff(16), "02" + z(15), "03" + z(15)],
    ["01" + z(31), ff(16) + "f0" + ff(15) + "11" + z(15), "05" + z(15)],
    ["01" + z(31), ff(16) + "fb" + "fe".repeat(15) + "01".repeat(16), z(16)],
    ["02" + z(31), "fd" + ff(15), "fa" + ff(15)],
    // A.3 #10 and #11: four blocks (two SIMD pairs) and three (one pair and
    // one scalar block), with h reaching 2^130 - 5 and beyond.
    [
      "01" + z(7) + "04" + z(23),
      "e33594d7505e43b900000000000000003394d7505e4379cd01" + z(23) + "01" +
      z(15),
      "14" + z(7) + "55" + z(7),
    ],
    [
      "01" + z(7) + "04" + z(23),
      "e33594d7505e43b900000000000000003394d7505e4379cd01" + z(23),
      "13" + z(15),
    ],
  ];
  bothPolyPaths((path) => {
    for (const [key, msg, tag] of vectors) {
      assert.equal(bytesToHex(poly1305Wasm(hex(msg), hex(key))), tag, path);
    }
  });
});

Deno.test("WebAssembly Poly1305 equals @noble/ciphers for every length 0..2000 and large inputs, SIMD and scalar", () => {
  const big = bytes(1024 * 1024 + 80, 77);
  bothPolyPaths((path) => {
    const out = new Uint8Array(20);
    for (let n = 0; n <= 2000; n++) {
      for (const seed of [n + 1, n + 5000]) {
        const msg = bytes(n, seed);
        const key = bytes(32, seed + 9000);
        assert.equal(
          bytesToHex(poly1305Wasm(msg, key)),
          bytesToHex(poly1305(msg, key)),
          `${path}, length ${n}`,
        );
      }
    }
    // Around the 64 KiB window of the WebAssembly memory (odd and even block
    // counts per window), a whole packet, 1 MiB with odd tails; the message
    // as an unaligned view and the tag into a caller's buffer.
    for (
      const n of [
        65535,
        65536,
        65537,
        65536 + 16,
        65536 + 32,
        131072 + 15,
        256 * 1024,
        256 * 1024 + 33,
        1024 * 1024 - 16,
        1024 * 1024 + 1,
        1024 * 1024 + 17,
        1024 * 1024 + 63,
      ]
    ) {
      const msg = big.subarray(7, 7 + n);
      const key = bytes(32, n);
      poly1305Wasm(msg, key, out.subarray(2, 18));
      assert.equal(
        bytesToHex(out.subarray(2, 18)),
        bytesToHex(poly1305(msg, key)),
        `${path}, length ${n}`,
      );
    }
  });
  assert.throws(() => poly1305Wasm(new Uint8Array(1), new Uint8Array(31)), {
    name: "TypeError",
  });
});

Deno.test("WebAssembly Poly1305 equals @noble/ciphers for edge keys and messages, SIMD and scalar", () => {
  // r: all ones before the clamp (the largest limbs it allows), zero, one,
  // random; s: all ones, zero, random. Messages of all-ones bytes (the
  // largest limbs, the most carries), zeros and random bytes.
  const rs = [
    new Uint8Array(16).fill(0xff),
    new Uint8Array(16),
    hex("01" + "00".repeat(15)),
    bytes(16, 3),
  ];
  const ss = [new Uint8Array(16).fill(0xff), new Uint8Array(16), bytes(16, 4)];
  const lengths = [1, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 96, 1000, 4099];
  const msgs = (n: number) => [
    new Uint8Array(n).fill(0xff),
    new Uint8Array(n),
    bytes(n, n),
  ];
  bothPolyPaths((path) => {
    for (const r of rs) {
      for (const s of ss) {
        const key = concatBytes(r, s);
        for (const n of [...lengths, 70000]) {
          for (const msg of msgs(n)) {
            assert.equal(
              bytesToHex(poly1305Wasm(msg, key)),
              bytesToHex(poly1305(msg, key)),
              `${path}, r ${bytesToHex(r)}, s ${bytesToHex(s)}, length ${n}`,
            );
          }
        }
      }
    }
    // Random keys with random messages of random lengths.
    for (let i = 0; i < 300; i++) {
      const key = crypto.getRandomValues(new Uint8Array(32));
      const msg = crypto.getRandomValues(new Uint8Array(i * 37 + (i & 15)));
      assert.equal(
        bytesToHex(poly1305Wasm(msg, key)),
        bytesToHex(poly1305(msg, key)),
        `${path}, key ${bytesToHex(key)}, length ${msg.length}`,
      );
    }
  });
});

// ------------------------------------------------ constructions vs independent compositions

/** OpenSSH PROTOCOL.chacha20poly1305 from @noble/ciphers primitives only. */
function referenceChacha(
  key: Uint8Array,
  seq: number,
  packet: Uint8Array,
): Uint8Array {
  const nonce = new Uint8Array(8);
  new DataView(nonce.buffer).setUint32(4, seq);
  const k2 = key.subarray(0, 32);
  const k1 = key.subarray(32, 64);
  const encLen = chacha20orig(k1, nonce, packet.subarray(0, 4));
  const polyKey = chacha20orig(k2, nonce, new Uint8Array(32));
  const body = chacha20orig(k2, nonce, packet.subarray(4), undefined, 1);
  const ct = concatBytes(encLen, body);
  return concatBytes(ct, poly1305(ct, polyKey));
}

Deno.test("chacha20-poly1305@openssh.com matches a composition of @noble/ciphers primitives", () => {
  const keys = keysFor("chacha20-poly1305@openssh.com", null, 9);
  const seal = createPacketCipher(
    "chacha20-poly1305@openssh.com",
    null,
    keys,
    "seal",
  );
  for (
    const [seq, payload] of [[0, 0], [1, 100], [0x01020304, 1000], [
      0xffffffff,
      70000,
    ]]
  ) {
    const packet = buildPacket(seal, payload, seq);
    assert.equal(
      bytesToHex(seal.seal(seq, packet) as Uint8Array),
      bytesToHex(referenceChacha(keys.key, seq, packet)),
    );
  }
});

Deno.test("aes-gcm@openssh.com matches @noble/ciphers gcm, with the invocation counter wrapping", async () => {
  for (const name of ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]) {
    const base = keysFor(name, null, 4);
    const iv = concatBytes(base.iv.subarray(0, 4), hex("fffffffffffffffe"));
    const seal = createPacketCipher(name, null, { ...base, iv }, "seal");
    const nonces = [
      "fffffffffffffffe",
      "ffffffffffffffff",
      "0000000000000000",
      "0000000000000001",
    ];
    for (const [i, payload] of [10, 9000, 300, 20000].entries()) {
      const packet = buildPacket(seal, payload, i);
      const nonce = concatBytes(base.iv.subarray(0, 4), hex(nonces[i]));
      const expected = concatBytes(
        packet.subarray(0, 4),
        gcm(base.key, nonce, packet.subarray(0, 4)).encrypt(packet.subarray(4)),
      );
      assert.equal(
        bytesToHex(await seal.seal(i + 7, packet)),
        bytesToHex(expected),
        `${name} packet ${i}`,
      );
    }
  }
});

Deno.test("aes-ctr with each MAC matches @noble compositions, the counter running across packets and wrapping mod 2^128", async () => {
  // The second IV wraps inside the large packet, which takes the Web Crypto
  // path (one call from a computed counter, `length: 128`).
  const nearWrap = hex("ffffffffffffffffffffffffffffff00");
  for (const cipher of ["aes128-ctr", "aes192-ctr", "aes256-ctr"]) {
    for (
      const [mac, wrap] of MAC_NAMES.flatMap((m) =>
        [[m, false], [m, true]] as const
      )
    ) {
      const base = keysFor(cipher, mac, 5);
      const keys = wrap ? { ...base, iv: nearWrap } : base;
      const mi = macInfo(mac);
      const hash = mi.keyLength === 32 ? sha256 : sha512;
      const seal = createPacketCipher(cipher, mac, keys, "seal");
      const packets = [
        buildPacket(seal, 3, 1),
        buildPacket(seal, 1000, 2),
        buildPacket(seal, 70000, 4),
        buildPacket(seal, 33, 3),
      ];
      const plainStream = concatBytes(
        ...packets.map((p) => mi.etm ? p.subarray(4) : p),
      );
      const ctStream = ctr(keys.key, keys.iv).encrypt(plainStream);
      const open = createPacketCipher(cipher, mac, keys, "open");
      let off = 0;
      for (const [i, packet] of packets.entries()) {
        const seq = 41 + i;
        const seqBytes = new Uint8Array(4);
        new DataView(seqBytes.buffer).setUint32(0, seq);
        const encLen = mi.etm ? packet.length - 4 : packet.length;
        const ct = ctStream.subarray(off, off + encLen);
        off += encLen;
        const expected = mi.etm
          ? concatBytes(
            packet.subarray(0, 4),
            ct,
            hmac(
              hash,
              keys.macKey,
              concatBytes(seqBytes, packet.subarray(0, 4), ct),
            ),
          )
          : concatBytes(
            ct,
            hmac(hash, keys.macKey, concatBytes(seqBytes, packet)),
          );
        const what = `${cipher} ${mac} ${wrap ? "wrapping " : ""}packet ${i}`;
        assert.equal(
          bytesToHex(await seal.seal(seq, packet)),
          bytesToHex(expected),
          what,
        );
        assert.equal(
          open.packetLength(seq, expected.subarray(0, open.headLength)),
          packet.length - 4,
        );
        assert.equal(
          bytesToHex(await open.open(seq, expected)),
          bytesToHex(packet.subarray(4)),
          what,
        );
      }
    }
  }
});

// ---------------------------------------------------------------- round trips

const SIZES = [
  0,
  1,
  7,
  11,
  100,
  1000,
  4080,
  4100,
  5000,
  8180,
  8200,
  32768,
  65536,
  MAX_PACKET - 64,
];

for (const [cipher, mac] of COMBOS) {
  Deno.test(`round trip ${cipher}${mac ? " + " + mac : ""}, 16 B to 256 KiB, seq wrapping`, async () => {
    const keys = keysFor(cipher, mac, 7);
    const seal = createPacketCipher(cipher, mac, keys, "seal");
    const open = createPacketCipher(cipher, mac, keys, "open");
    let seq = 0xffffffff - 5;
    for (const round of [0, 1]) {
      for (const size of SIZES) {
        const packet = buildPacket(seal, size, size + round);
        assert.ok(packet.length >= 16 && packet.length <= MAX_PACKET + 4);
        const copy = packet.slice();
        const wire = await seal.seal(seq, packet);
        assert.deepEqual(packet, copy, "seal must not modify its input");
        assert.equal(wire.length, packet.length + seal.tagLength);
        const wireCopy = wire.slice();
        const plain = await receive(open, seq, wire);
        assert.deepEqual(wire, wireCopy, "open must not modify its input");
        assert.deepEqual(
          plain,
          packet.subarray(4),
          `${size} bytes, seq ${seq}`,
        );
        seq = (seq + 1) >>> 0;
      }
    }
  });
}

Deno.test("pipelined: every cipher seals and opens packets started before earlier ones finish", async () => {
  // The transport starts sealing (and opening) packet n+1 before packet n's
  // Promise settles; ciphers with per-packet state (CTR counter, GCM nonce)
  // must take it at call time.
  const sizes = [40000, 100, 9000, 70000, 16, 8192, 200000, 5000];
  for (const cipher of CIPHER_NAMES) {
    const macs = cipherInfo(cipher).aead ? [null] : MAC_NAMES;
    for (const mac of macs) {
      const keys = keysFor(cipher, mac, 11);
      const seal = createPacketCipher(cipher, mac, keys, "seal");
      const open = createPacketCipher(cipher, mac, keys, "open");
      const packets = sizes.map((n, i) => buildPacket(seal, n, i + 20));
      const wires = await Promise.all(
        packets.map((p, i) => seal.seal(100 + i, p)),
      );
      const opened = wires.map((w, i) => {
        assert.equal(
          open.packetLength(100 + i, w.subarray(0, open.headLength)),
          packets[i].length - 4,
        );
        return open.open(100 + i, w);
      });
      const plains = await Promise.all(opened);
      for (const [i, plain] of plains.entries()) {
        assert.deepEqual(
          plain,
          packets[i].subarray(4),
          `${cipher} ${mac} packet ${i}`,
        );
      }
    }
  }
});

Deno.test("none cipher passes packets through", () => {
  const none = createNoneCipher();
  const packet = buildPacket(none, 20);
  assert.equal(packet.length % 8, 0);
  const wire = none.seal(0, packet) as Uint8Array;
  assert.deepEqual(wire, packet);
  assert.equal(none.packetLength(0, wire.subarray(0, 4)), packet.length - 4);
  assert.deepEqual(none.open(0, wire), packet.subarray(4));
});

// ---------------------------------------------------------------- tampering

/**
 * Flips one bit at `pos` of a freshly sealed packet and receives it as the
 * transport would: a length that fails the caller's bounds ends there (that is
 * the caller's job, documented in transport/cipher/mod.ts); otherwise the
 * packet is framed with the length as decoded and open must throw.
 * Returns how the packet was rejected.
 */
async function tamper(
  cipher: string,
  mac: string | null,
  payload: number,
  pos: number,
  bit: number,
): Promise<string> {
  const keys = keysFor(cipher, mac, 11);
  const seal = createPacketCipher(cipher, mac, keys, "seal");
  const open = createPacketCipher(cipher, mac, keys, "open");
  const seq = 3;
  // A first packet keeps the stream ciphers away from their initial state.
  await receive(open, seq - 1, await seal.seal(seq - 1, buildPacket(seal, 5)));
  const wire = (await seal.seal(seq, buildPacket(seal, payload))).slice();
  wire[pos] ^= 1 << bit;
  const len = open.packetLength(seq, wire.slice(0, open.headLength));
  const block = Math.max(8, open.blockSize);
  if (
    len > MAX_PACKET || len < 5 ||
    (len + (open.lengthInClear ? 0 : 4)) % block !== 0
  ) return "length bounded";
  const framed = new Uint8Array(4 + len + open.tagLength);
  framed.set(wire.subarray(0, Math.min(wire.length, framed.length)));
  try {
    await open.open(seq, framed);
  } catch (e) {
    if (e instanceof MacError) {
      assert.match(
        e.message,
        /^Cannot open packet 3: (MAC|authentication tag) mismatch$/,
      );
      return "MAC";
    }
    throw e;
  }
  throw new Error(
    `${cipher} ${mac}: a flipped bit ${bit} at ${pos} went undetected`,
  );
}

for (const [cipher, mac] of COMBOS) {
  Deno.test(`a flipped bit anywhere is rejected: ${cipher}${mac ? " + " + mac : ""}`, async () => {
    const payload = 40;
    const probe = createPacketCipher(
      cipher,
      mac,
      keysFor(cipher, mac, 11),
      "seal",
    );
    const total = buildPacket(probe, payload).length + probe.tagLength;
    const seen = new Set<string>();
    for (let pos = 0; pos < total; pos++) {
      seen.add(await tamper(cipher, mac, payload, pos, pos % 8));
    }
    // Every length bit, including the high ones a real peer would use to ask
    // for a huge buffer.
    for (let bit = 0; bit < 8; bit++) {
      for (let pos = 0; pos < 4; pos++) {
        seen.add(await tamper(cipher, mac, payload, pos, bit));
      }
    }
    assert.ok(seen.has("MAC"));
  });
}

Deno.test("open rejects the wrong sequence number and the wrong key", async () => {
  for (const [cipher, mac] of COMBOS) {
    const keys = keysFor(cipher, mac, 12);
    const packet = buildPacket(
      createPacketCipher(cipher, mac, keys, "seal"),
      50,
    );
    const seal = createPacketCipher(cipher, mac, keys, "seal");
    const wire = await seal.seal(5, packet);
    if (cipher.includes("gcm")) {
      // GCM ignores seq; its nonce is its own per-packet counter, so a
      // dropped packet (or a replayed one) fails instead.
      const next = await seal.seal(6, packet);
      const open = createPacketCipher(cipher, mac, keys, "open");
      await assert.rejects(async () => await open.open(6, next), MacError);
    } else {
      const open = createPacketCipher(cipher, mac, keys, "open");
      open.packetLength(6, wire.subarray(0, open.headLength));
      await assert.rejects(
        async () => await open.open(6, wire),
        MacError,
        `${cipher} ${mac}`,
      );
    }
    // Wrong authentication key: the first byte of the AEAD key or MAC key
    // changed. (EtM authenticates ciphertext only, so a wrong encryption key
    // with the right MAC key yields garbage; both come from the same kex.)
    const bad = mac === null
      ? { ...keys, key: keys.key.slice() }
      : { ...keys, macKey: keys.macKey.slice() };
    const k = mac === null ? bad.key : bad.macKey;
    k[0] ^= 1;
    const open2 = createPacketCipher(cipher, mac, bad, "open");
    const len = open2.packetLength(5, wire.subarray(0, open2.headLength));
    if (len === packet.length - 4) {
      await assert.rejects(
        async () => await open2.open(5, wire),
        MacError,
        `${cipher} ${mac}`,
      );
    }
  }
});

Deno.test("classic-mode CTR open requires packetLength first", () => {
  const keys = keysFor("aes128-ctr", "hmac-sha2-256");
  const seal = createPacketCipher("aes128-ctr", "hmac-sha2-256", keys, "seal");
  const open = createPacketCipher("aes128-ctr", "hmac-sha2-256", keys, "open");
  const wire = seal.seal(0, buildPacket(seal, 10)) as Uint8Array;
  assert.throws(
    () => open.open(0, wire),
    /packetLength\(\) was not called first/,
  );
});
