/**
 * Key material against OpenSSH's ssh-keygen (the reference), plus
 * known-answer vectors and hostile inputs.
 */
import assert from "node:assert/strict";
import { createHash, sign as nodeSign } from "node:crypto";
import {
  encodePrivateKey,
  generatePrivateKey,
  KeyParseError,
  parseAuthorizedKeys,
  parsePrivateKey,
  parsePublicKey,
  parsePublicKeyText,
  SIGNATURE_ALGORITHMS,
  signatureAlgorithmsFor,
} from "../keys/mod.ts";
import type { PrivateKey, PublicKey } from "../keys/types.ts";
import { rsaVerifyDigest } from "../keys/_rsa.ts";
import { SshReader } from "../wire/reader.ts";
import { SshWriter } from "../wire/writer.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(
  cmd: string,
  args: string[],
  stdin?: Uint8Array,
): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const w = child.stdin.getWriter();
    await w.write(stdin);
    await w.close();
  }
  const out = await child.output();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

async function keygen(args: string[], stdin?: Uint8Array): Promise<string> {
  const r = await run("ssh-keygen", args, stdin);
  if (r.code !== 0) {
    throw new Error(`ssh-keygen ${args.join(" ")} failed: ${r.stderr}`);
  }
  return r.stdout;
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fynx-keys-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

interface Kind {
  name: string;
  args: string[];
  type: PublicKey["type"];
  bits: number;
}

const KINDS: Kind[] = [
  { name: "ed25519", args: ["-t", "ed25519"], type: "ssh-ed25519", bits: 256 },
  {
    name: "ecdsa-256",
    args: ["-t", "ecdsa", "-b", "256"],
    type: "ecdsa-sha2-nistp256",
    bits: 256,
  },
  {
    name: "ecdsa-384",
    args: ["-t", "ecdsa", "-b", "384"],
    type: "ecdsa-sha2-nistp384",
    bits: 384,
  },
  {
    name: "ecdsa-521",
    args: ["-t", "ecdsa", "-b", "521"],
    type: "ecdsa-sha2-nistp521",
    bits: 521,
  },
  {
    name: "rsa-2048",
    args: ["-t", "rsa", "-b", "2048"],
    type: "ssh-rsa",
    bits: 2048,
  },
  {
    name: "rsa-3072",
    args: ["-t", "rsa", "-b", "3072"],
    type: "ssh-rsa",
    bits: 3072,
  },
];

// PROTOCOL.sshsig: lets ssh-keygen -Y sign/check-novalidate cross-check our
// raw SSH signature blobs in both directions.
function sshsigData(namespace: string, message: Uint8Array): Uint8Array {
  const h = createHash("sha512").update(message).digest();
  return new SshWriter().raw(enc.encode("SSHSIG")).string(namespace)
    .string("").string("sha512").string(h).bytes();
}

function armorSshsig(
  pub: PublicKey,
  namespace: string,
  signature: Uint8Array,
): string {
  const blob = new SshWriter().raw(enc.encode("SSHSIG")).uint32(1)
    .string(pub.blob).string(namespace).string("").string("sha512")
    .string(signature).bytes();
  const b64 = blob.toBase64();
  const lines = ["-----BEGIN SSH SIGNATURE-----"];
  for (let i = 0; i < b64.length; i += 70) lines.push(b64.slice(i, i + 70));
  lines.push("-----END SSH SIGNATURE-----", "");
  return lines.join("\n");
}

function unarmorSshsig(text: string): { pub: Uint8Array; sig: Uint8Array } {
  const b64 = text.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  const r = new SshReader(Uint8Array.fromBase64(b64), "sshsig");
  assert.equal(dec.decode(r.raw(6)), "SSHSIG");
  assert.equal(r.uint32(), 1);
  const pub = r.string();
  r.string(); // namespace
  r.string(); // reserved
  assert.equal(dec.decode(r.string()), "sha512");
  const sig = r.string();
  r.end();
  return { pub, sig };
}

function sigAlgorithm(sig: Uint8Array): string {
  return new SshReader(sig).utf8();
}

function checkSignatures(key: PrivateKey, pub: PublicKey): void {
  const data = enc.encode("exchange hash " + pub.type);
  for (const alg of pub.signatureAlgorithms) {
    const sig = key.sign(data, alg);
    assert.equal(sigAlgorithm(sig), alg);
    assert.ok(pub.verify(data, sig, alg), `${alg} verifies`);
    assert.equal(pub.verify(enc.encode("other"), sig, alg), false);
    assert.equal(pub.verify(data, sig.subarray(0, sig.length - 1), alg), false);
    const longer = new Uint8Array(sig.length + 1);
    longer.set(sig);
    assert.equal(pub.verify(data, longer, alg), false);
    const flipped = sig.slice();
    flipped[flipped.length - 5] ^= 1;
    assert.equal(pub.verify(data, flipped, alg), false);
    for (const other of SIGNATURE_ALGORITHMS) {
      if (other !== alg) assert.equal(pub.verify(data, sig, other), false);
    }
    assert.equal(pub.verify(data, sig, "ssh-rsa"), false);
  }
  // Default algorithm is the strongest.
  assert.equal(sigAlgorithm(key.sign(data)), pub.signatureAlgorithms[0]);
  assert.throws(() => key.sign(data, "ssh-rsa"), TypeError);
}

for (const kind of KINDS) {
  Deno.test(`ssh-keygen ${kind.name}: parse, fingerprint, sign, cross-verify`, async () => {
    await withTempDir(async (dir) => {
      const plain = `${dir}/plain`;
      const locked = `${dir}/locked`;
      await keygen([
        ...kind.args,
        "-q",
        "-N",
        "",
        "-C",
        "plain key",
        "-f",
        plain,
      ]);
      await keygen([
        ...kind.args,
        "-q",
        "-N",
        "secret pass",
        "-a",
        "4",
        "-C",
        "locked key",
        "-f",
        locked,
      ]);
      for (
        const [path, passphrase, comment] of [
          [plain, undefined, "plain key"],
          [locked, "secret pass", "locked key"],
        ] as const
      ) {
        const key = parsePrivateKey(await Deno.readTextFile(path), {
          passphrase,
        });
        const pub = parsePublicKeyText(await Deno.readTextFile(path + ".pub"));
        assert.equal(pub.type, kind.type);
        assert.equal(pub.bits, kind.bits);
        assert.equal(pub.comment, comment);
        assert.equal(key.publicKey.comment, comment);
        assert.deepEqual(key.publicKey.blob, pub.blob);
        assert.equal(key.publicKey.type, kind.type);
        assert.deepEqual(
          pub.signatureAlgorithms,
          signatureAlgorithmsFor(kind.type),
        );
        const line = await keygen(["-l", "-E", "sha256", "-f", path + ".pub"]);
        assert.equal(pub.fingerprint(), line.split(" ")[1]);
        assert.equal(key.publicKey.fingerprint(), pub.fingerprint());
        assert.equal(
          pub.toString(),
          (await Deno.readTextFile(path + ".pub")).trim(),
        );
        checkSignatures(key, pub);
      }

      // ssh-keygen signs, we verify (PROTOCOL.sshsig wraps a normal blob).
      const message = enc.encode("message for sshsig\n");
      await Deno.writeFile(`${dir}/msg`, message);
      await keygen(["-Y", "sign", "-f", plain, "-n", "fynx", `${dir}/msg`]);
      const theirs = unarmorSshsig(await Deno.readTextFile(`${dir}/msg.sig`));
      const pub = parsePublicKey(theirs.pub);
      const alg = sigAlgorithm(theirs.sig);
      assert.ok(pub.signatureAlgorithms.includes(alg));
      assert.ok(pub.verify(sshsigData("fynx", message), theirs.sig, alg));
      assert.equal(
        pub.verify(sshsigData("other", message), theirs.sig, alg),
        false,
      );

      // We sign, ssh-keygen verifies, for every algorithm of the key.
      const key = parsePrivateKey(await Deno.readTextFile(plain));
      for (const a of key.publicKey.signatureAlgorithms) {
        const sig = key.sign(sshsigData("fynx", message), a);
        await Deno.writeTextFile(
          `${dir}/ours.sig`,
          armorSshsig(key.publicKey, "fynx", sig),
        );
        const r = await run("ssh-keygen", [
          "-Y",
          "check-novalidate",
          "-n",
          "fynx",
          "-s",
          `${dir}/ours.sig`,
        ], message);
        assert.equal(r.code, 0, `ssh-keygen rejects our ${a}: ${r.stderr}`);
      }

      // Our re-encoding is read by ssh-keygen -y and by us.
      const out = `${dir}/reencoded`;
      await Deno.writeTextFile(out, encodePrivateKey(key), { mode: 0o600 });
      const derived = parsePublicKeyText(await keygen(["-y", "-f", out]));
      assert.deepEqual(derived.blob, key.publicKey.blob);
      const again = parsePrivateKey(await Deno.readTextFile(out));
      assert.equal(again.publicKey.comment, "plain key");
      checkSignatures(again, key.publicKey);
    });
  });
}

Deno.test("generatePrivateKey + encodePrivateKey are accepted by ssh-keygen -y", async () => {
  await withTempDir(async (dir) => {
    const types = [
      "ed25519",
      "ecdsa-p256",
      "ecdsa-p384",
      "ecdsa-p521",
      "rsa",
    ] as const;
    for (const type of types) {
      const key = generatePrivateKey(
        type,
        type === "rsa" ? { bits: 2048, comment: "gen" } : { comment: "gen" },
      );
      const path = `${dir}/${type}`;
      await Deno.writeTextFile(path, encodePrivateKey(key), { mode: 0o600 });
      const line = await keygen(["-y", "-f", path]);
      const pub = parsePublicKeyText(line);
      assert.deepEqual(pub.blob, key.publicKey.blob);
      assert.equal(pub.comment, "gen");
      const fp = await keygen(["-l", "-f", path]);
      assert.equal(fp.split(" ")[1], key.publicKey.fingerprint());
      checkSignatures(key, pub);
      const renamed = parsePrivateKey(
        encodePrivateKey(key, { comment: "renamed" }),
      );
      assert.equal(renamed.publicKey.comment, "renamed");
    }
  });
});

Deno.test("generatePrivateKey validates its arguments", () => {
  assert.throws(() => generatePrivateKey("rsa", { bits: 1024 }), RangeError);
  assert.throws(() => generatePrivateKey("rsa", { bits: 16385 }), RangeError);
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => generatePrivateKey("dsa" as any),
    TypeError,
  );
  assert.equal(generatePrivateKey("rsa").publicKey.bits, 3072);
  const foreign: PrivateKey = {
    publicKey: generatePrivateKey("ed25519").publicKey,
    sign: () => new Uint8Array(0),
  };
  assert.throws(() => encodePrivateKey(foreign), TypeError);
});

Deno.test("encrypted keys: every ssh-keygen cipher we support", async () => {
  await withTempDir(async (dir) => {
    const ciphers = [
      "aes128-ctr",
      "aes192-ctr",
      "aes256-ctr",
      "aes128-cbc",
      "aes192-cbc",
      "aes256-cbc",
      "aes128-gcm@openssh.com",
      "aes256-gcm@openssh.com",
      "chacha20-poly1305@openssh.com",
    ];
    for (const cipher of ciphers) {
      const path = `${dir}/${cipher}`;
      await keygen([
        "-q",
        "-t",
        "ed25519",
        "-N",
        "pw",
        "-a",
        "2",
        "-Z",
        cipher,
        "-C",
        cipher,
        "-f",
        path,
      ]);
      const text = await Deno.readTextFile(path);
      const key = parsePrivateKey(text, { passphrase: "pw" });
      assert.equal(key.publicKey.comment, cipher);
      const pub = parsePublicKeyText(await Deno.readTextFile(path + ".pub"));
      assert.deepEqual(key.publicKey.blob, pub.blob);
      assertCode(
        () => parsePrivateKey(text, { passphrase: "nope" }),
        "wrong-passphrase",
      );
      assertCode(() => parsePrivateKey(text), "passphrase-required");
    }
  });
});

function assertCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof KeyParseError, `expected KeyParseError, got ${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

Deno.test("parsePrivateKey: distinct errors for bad files", async () => {
  await withTempDir(async (dir) => {
    await keygen([
      "-q",
      "-t",
      "ed25519",
      "-N",
      "pw",
      "-a",
      "2",
      "-f",
      `${dir}/enc`,
    ]);
    await keygen(["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/plain`]);
    const encText = await Deno.readTextFile(`${dir}/enc`);
    const plainText = await Deno.readTextFile(`${dir}/plain`);

    assertCode(() => parsePrivateKey(encText), "passphrase-required");
    assertCode(
      () => parsePrivateKey(encText, { passphrase: "" }),
      "passphrase-required",
    );
    assertCode(
      () => parsePrivateKey(encText, { passphrase: "PW" }),
      "wrong-passphrase",
    );
    // An unencrypted key ignores a passphrase.
    parsePrivateKey(plainText, { passphrase: "whatever" });

    // Truncated: cut in the middle (no END line), or body cut short.
    assertCode(
      () => parsePrivateKey(plainText.slice(0, plainText.length / 2)),
      "truncated",
    );
    const lines = plainText.trim().split("\n");
    const shortBody = [lines[0], lines[1], lines[2], lines.at(-1)].join("\n");
    assertCode(() => parsePrivateKey(shortBody), "truncated");
    assertCode(() => parsePrivateKey(encText.slice(0, 200)), "truncated");

    assertCode(() => parsePrivateKey("garbage"), "malformed");
    assertCode(() => parsePrivateKey(""), "malformed");
    assertCode(
      () =>
        parsePrivateKey(
          "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA$$$$\n-----END OPENSSH PRIVATE KEY-----\n",
        ),
      "malformed",
    );
    assertCode(
      () =>
        parsePrivateKey(
          "-----BEGIN OPENSSH PRIVATE KEY-----\n" +
            enc.encode("not-openssh-key-v1 at all").toBase64() +
            "\n-----END OPENSSH PRIVATE KEY-----\n",
        ),
      "malformed",
    );
    // PEM (PKCS#1) RSA files are read too (keys/pem.ts).
    await keygen([
      "-q",
      "-t",
      "rsa",
      "-b",
      "2048",
      "-m",
      "PEM",
      "-N",
      "",
      "-f",
      `${dir}/pem`,
    ]);
    const pemText = await Deno.readTextFile(`${dir}/pem`);
    assert.equal(
      parsePrivateKey(pemText).publicKey.fingerprint(),
      parsePublicKeyText(await Deno.readTextFile(`${dir}/pem.pub`))
        .fingerprint(),
    );
    assertCode(
      () =>
        parsePrivateKey(
          "-----BEGIN DSA PRIVATE KEY-----\nAAAA\n-----END DSA PRIVATE KEY-----\n",
        ),
      "unsupported-key-type",
    );
    assert.throws(
      // deno-lint-ignore no-explicit-any
      () => parsePrivateKey(42 as any),
      TypeError,
    );

    // Hand-built containers for the cases ssh-keygen will not produce.
    const dss = new SshWriter().string("ssh-dss").string(new Uint8Array(20))
      .bytes();
    assertCode(
      () => parsePrivateKey(container("none", "none", dss, new Uint8Array(8))),
      "unsupported-key-type",
    );
    const pub = generatePrivateKey("ed25519").publicKey.blob;
    assertCode(
      () =>
        parsePrivateKey(
          container("chacha99", "bcrypt", pub, new Uint8Array(16)),
        ),
      "unsupported-cipher",
    );
    assertCode(
      () =>
        parsePrivateKey(
          container("aes256-ctr", "scrypt", pub, new Uint8Array(16)),
          { passphrase: "x" },
        ),
      "unsupported-cipher",
    );
    // Checkints differ in an unencrypted file: malformed, not a passphrase.
    const bad = new SshWriter().uint32(1).uint32(2).bytes();
    assertCode(
      () => parsePrivateKey(container("none", "none", pub, bad)),
      "malformed",
    );
  });
});

// Wraps a private section (or anything) in an openssh-key-v1 PEM.
function container(
  cipher: string,
  kdf: string,
  pub: Uint8Array,
  section: Uint8Array,
  kdfOptions = new SshWriter().string(new Uint8Array(16)).uint32(2).bytes(),
): string {
  const w = new SshWriter().raw(enc.encode("openssh-key-v1\0")).string(cipher)
    .string(kdf).string(kdf === "none" ? new Uint8Array(0) : kdfOptions)
    .uint32(1).string(pub).string(section);
  return "-----BEGIN OPENSSH PRIVATE KEY-----\n" + w.bytes().toBase64() +
    "\n-----END OPENSSH PRIVATE KEY-----\n";
}

function ed25519File(seed: Uint8Array, pub: Uint8Array, comment = ""): string {
  const blob = new SshWriter().string("ssh-ed25519").string(pub).bytes();
  const sk = new Uint8Array(64);
  sk.set(seed);
  sk.set(pub, 32);
  const w = new SshWriter().uint32(7).uint32(7).string("ssh-ed25519")
    .string(pub).string(sk).string(comment);
  for (let i = 1; w.length % 8 !== 0; i++) w.byte(i);
  return container("none", "none", blob, w.bytes());
}

Deno.test("RSA keys under 2048 bits are rejected with RangeError", async () => {
  await withTempDir(async (dir) => {
    await keygen([
      "-q",
      "-t",
      "rsa",
      "-b",
      "1024",
      "-N",
      "",
      "-f",
      `${dir}/small`,
    ]);
    const text = await Deno.readTextFile(`${dir}/small`);
    assert.throws(() => parsePrivateKey(text), RangeError);
    const line = await Deno.readTextFile(`${dir}/small.pub`);
    assert.throws(() => parsePublicKeyText(line), RangeError);
    // In authorized_keys such a key can never match: skipped, not fatal.
    assert.deepEqual(parseAuthorizedKeys(line), []);
  });
});

Deno.test("RFC 8032 section 7.1 Ed25519 vectors (TEST 1, TEST 2, TEST 3)", () => {
  const vectors = [
    {
      seed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
      pub: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
      msg: "",
      sig:
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    },
    {
      seed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
      pub: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
      msg: "72",
      sig:
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    },
    {
      seed: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
      pub: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
      msg: "af82",
      sig:
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    },
  ];
  for (const v of vectors) {
    const key = parsePrivateKey(
      ed25519File(Uint8Array.fromHex(v.seed), Uint8Array.fromHex(v.pub)),
    );
    const msg = Uint8Array.fromHex(v.msg);
    const sig = key.sign(msg);
    const r = new SshReader(sig);
    assert.equal(r.utf8(), "ssh-ed25519");
    assert.equal(r.string().toHex(), v.sig);
    r.end();
    const blob = new SshWriter().string("ssh-ed25519")
      .string(Uint8Array.fromHex(v.sig)).bytes();
    assert.ok(key.publicKey.verify(msg, blob, "ssh-ed25519"));
  }
  // A seed that does not give the stated public key is refused.
  assertCode(
    () =>
      parsePrivateKey(
        ed25519File(
          Uint8Array.fromHex(vectors[0].seed),
          Uint8Array.fromHex(vectors[1].pub),
        ),
      ),
    "malformed",
  );
});

Deno.test("RFC 6979 A.2.5 ECDSA P-256/SHA-256 vector", () => {
  const x = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";
  const q = "04" +
    "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6" +
    "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";
  const r = "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716";
  const s = "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8";
  const blob = new SshWriter().string("ecdsa-sha2-nistp256").string("nistp256")
    .string(Uint8Array.fromHex(q)).bytes();
  const pub = parsePublicKey(blob);
  const msg = enc.encode("sample");
  const sig = new SshWriter().string("ecdsa-sha2-nistp256").string(
    new SshWriter().mpintBytes(Uint8Array.fromHex(r))
      .mpintBytes(Uint8Array.fromHex(s)).bytes(),
  ).bytes();
  assert.ok(pub.verify(msg, sig, "ecdsa-sha2-nistp256"));
  assert.equal(
    pub.verify(enc.encode("test"), sig, "ecdsa-sha2-nistp256"),
    false,
  );

  // Our signer uses hedged RFC 6979 nonces (fresh randomness mixed in):
  // valid signatures that differ each time, unlike plain RFC 6979.
  const section = new SshWriter().uint32(9).uint32(9)
    .string("ecdsa-sha2-nistp256").string("nistp256")
    .string(Uint8Array.fromHex(q)).mpintBytes(Uint8Array.fromHex(x))
    .string("");
  for (let i = 1; section.length % 8 !== 0; i++) section.byte(i);
  const key = parsePrivateKey(container("none", "none", blob, section.bytes()));
  const ours = key.sign(msg);
  assert.ok(pub.verify(msg, ours, "ecdsa-sha2-nistp256"));
  const again = key.sign(msg);
  assert.ok(pub.verify(msg, again, "ecdsa-sha2-nistp256"));
  assert.notDeepEqual(ours, again);

  // Non-minimal mpints (a superfluous zero byte) are refused.
  const padded = new SshWriter().string("ecdsa-sha2-nistp256").string(
    new SshWriter().string(Uint8Array.fromHex("00" + r.replace(/^ef/, "7f")))
      .mpintBytes(Uint8Array.fromHex(s)).bytes(),
  ).bytes();
  assert.equal(pub.verify(msg, padded, "ecdsa-sha2-nistp256"), false);
});

// Pinned RSA vectors, generated once with OpenSSL 3.0.19 (a different
// implementation from Deno's RSA):
//   openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out k.pem
//   printf 'fynx rsa-sha2-256 vector' > msg
//   openssl dgst -sha256 -sign k.pem msg | base64 -w0
//   ssh-keygen -y -f k.pem
// and the same with an 8192-bit key (ssh-keygen -t rsa -b 8192, converted
// with ssh-keygen -p -m PEM) and `openssl dgst -sha512`.
const RSA_MESSAGE = "fynx rsa-sha2-256 vector";
const RSA2048_PUB =
  "AAAAB3NzaC1yc2EAAAADAQABAAABAQCpWZCa3XsPi/uxZKDTHrLzU011KzFFp3HHnbZht5Dr" +
  "8ShRB5P4Z6TzaS4IXemNr+tmOxmATdSDJvD7X7pPNq+5zLhMcwroSx/73VVyYNCe7NSYLPdE" +
  "4gJCNtG51G97b38Hbg2fg+lv4YExOxHwwRqaD87ZKNVq+k5nSOaOcE/ieoENqSY2iQ4p3OaD" +
  "Vbka/JkvSMG9YvIRcIlKTOD23wSnGeoXsVHwIncnbdVKFQmzYnPNQUawpnPIQnabeN3Wls0r" +
  "IsKgphfdLmyMg9Yj2kA2kVMiRsmL8afjlI9Bqm4jRM9TZxO4MpDecAbOnvxMWAR04rY/ZK+9" +
  "reTNWPZcJLkZ";
const RSA2048_SIG256 =
  "hAxVkzrevCpW+RA7di8EjvIigqmT70qZxraOhrOgiiudjsIX5wPDfI5uwfSwQImPiQa3zQuG" +
  "NpZ7U8ME+lM2h8IVOLq1GjQ8vD4oRXkfI0K7c+jgRBx4E8k8lGJuUviOELq3lgqg04iR4QQW" +
  "2XXzAhOSKXuBq4giSuNEbYjdHLmmzjgZyiBw+7bCdD9iYqvYJoGqalmSMJNpDyhp9dT/zw7m" +
  "rVBnXpmBLo+1+SU1x5DunTncv8R67Q5+Hd6kswPBY2qtYqMUrYu4GKoF6BxP2Cl2eWb59Ll+" +
  "tYqEZwsCuOl1wmucURg+fKgsn79MYmo5tGQLdFxqp4uGxRP6Vp/u7g==";
const RSA8192_PUB =
  "AAAAB3NzaC1yc2EAAAADAQABAAAEAQCnTz73KGewFzdENtZqfCmNqTCj/UPAIlsK9Y5uYdzS" +
  "78xcv/0BWDx7rGEmMKdb05rTi8uzropx/eLowjF37Q7cIevgQ61eckm+Pvqtuy3PVVf2G+aA" +
  "ZVI91QhwTBoj7VavpX6yBuo+9yhE5sncN2uV5nioqjzRqQih7FZXBgU+724e184Rn8EYMLYc" +
  "m3PubvGEiTwBHbQCGif//Xr0Znd5Uq4QQZSwuu/M00PSU49XPVd1ipri7vDBvUrgXEDBTdbY" +
  "eY2lttgbszAi3kKOzcK2Y00xQt0lvegGJMnkxOVVU9uP4bDDLw7BcIjfauEFLCIE4jJJ2kx7" +
  "BZCI8xGgX2TgcJxwXeDakF1JIueK4A/ebk+ut83sjuCzOi7E8FOEA/uhfsQa1gWSEdZg2tra" +
  "M/pzUsxG+1RsWa+xO39Sy4YrYuBwHtwG3nTrLRu4pbARhByXBkZuG5D5QdHbBiD508oGQEGt" +
  "VFF3d42FC59I/NTqoYgaBKUDTmwZyzRtMM+PE5ogJNcKre1inXIeeWl0lLM/ayLw9rQq0MQb" +
  "kBL+NLU31Fl+LdI26kGWj2ZDrrbtl0eUfwbvAeGRsqVOAXwRyqRVRGzQIbifrazvuIb7qcOO" +
  "27eZtr91zg7iPdj1jf3ViWO5HzTVM1fT4gI3AsafJi7ogfeZ94ymIl6C/VdesUsQuby/jPsC" +
  "sK0WTU37dDAvwSQc/4FKm5Hf8EHUajOYhNMkae9dRfMORH5Qlmjjw2mSDityB1s4oxemSIsX" +
  "WNE1BJKhbMa5U5MU42/UBD3qy8xg6QrqfII2PNJJVEbZWFoe/pacvZ0nuGFRHI0VukVgB2ci" +
  "9DjYFk1/LWGRDUq/94TIZKKOYFcUTScr5jYuU+gPcbFDN2hjdk9EBajqTBUzZXHUm5+y9QA9" +
  "Q8PFhqhYW23yUhmT0wqyG0yHtlGq8KWOo2N8T8ynfphB1a42DME6zqEiJCPs6hD/tTYlEHKg" +
  "w5lO7ARYxNw/fWMMat3OAGpHXX2xr+cLvCnqZLQklgsTEi223Durx/D0QX3DKTXVPMe69r68" +
  "hUdzB8ctcgp7Q6oubyF8qLlq2FtWHuFSqyIk0DEd9BGOATRnB9IAfshAuaV1+RtohThRTTmj" +
  "jKBQChbqHHK1Zly7hf5QjPLtZBkQT0Ybuor3c/oCfpHbc9vja7+C7YdHwnmEc6tOdqYJ4Bzo" +
  "5iPf3U8elJkSCd8qiAvM4p3IEGseJE/YxJiWj22p+6a9bWVlwop4gk/9E4qYsK7V3ZjRdsEc" +
  "igR7C4rlopk26p74g/CT5uHO276Yv3L+yrdjigdmIQIgTcQJh1kua6lLF9SkIHiy+LuidEx1" +
  "L/luMr5A/N8TogYhYiCbv6efiW55";
const RSA8192_SIG512 =
  "MJNOhV0uDS+nc2a3eYUo6Eo/bDgKmMmgGM9pacVxYAKxj4b0u6wzfWkPHrp9/7RwM7GxobxZ" +
  "QX1//Ij44RGooFhyZ8vD99LGNInfhRDWWgCxDNuNW3owT797yOImdQbkO2C+bs3oQTbjo0im" +
  "quf9pB8EYMp/OQHHnEgMHFpVGYotNNfl5LvEsXgXoXIbfgmnyfDdD95ow4IqvkBVb6rcAxIN" +
  "9cE5z2TCh3antq2I69d6DB/YeMA55EJwLemFi+zrFqhNrOPZHImMr6xNotvbT59ZLQ06FM2y" +
  "NmI5wEK2ACSCgofXCaxnfYxgTqUMmvEvD8GZ18xoIS1uAc+bmk6PqPK6YD8XcdPaj9i0e623" +
  "ZXSNhuBwcn+utPjHgzrdylYMflLVqtwL2KTpdNzO6L52mVoB9v1Osa8LTrQuwCwkl4+DbJah" +
  "aXVEZcpcMYE8Q94e0swpC3Oe3LJ9eOoGrOwAAD31wvepUhZDMJjm4JUExgID/fRwmqXOJO6E" +
  "1oXXOStDFoF9ApUjxY9u/fhfEUIf548v9LDBNa8j0P5hAy9i/k8el2Te5cHoLZ9YCV2ddbUh" +
  "ZTVa9GHHu4osfxny+Y58wvUPbyCV3Z94mkFuVWFP1J0QCk4S5rL7NzWC+d5fHawNDbwgxbx6" +
  "yVSVLYxxeoXKlw/J9YjoOhIDHN38vcBQBsT5rT1Vy5dZ+TiqgChfORtGoskQHkYI4oyDLv4t" +
  "GxhwwCx5yEzXIca8XArAimCgAaPQozlH28g0LqxFIe0qgzqDBi1rhqXj+/qOPpaa3h6g1UJN" +
  "PkK0inkkRXbSbeq8p3kQnbnri+xa72xtPT/PZAk1zv+ICd7DIT98XsaNJ2280Ztp7BPdw7cj" +
  "3n1wtkeG9D5CDeaIbNd3IrN5ZOef0Y+19MgHQ4uLm9LICkSqKqrUkENfZCyUOtZfzuON3nZz" +
  "D8vp0VK9g0Gxx4/aNDDT9YDwjKOtBtsWnKes7jwYM7B7W0l4a2+z0V1uKvO7kd3BaRRpJ0c0" +
  "EJyKWUDevv4h5+Uikd4WykHrpk2uXbISgLOG5eHCTtqpAposBRqAiPW8NNFar06dN6LDWOtB" +
  "lXvsBrwWFi/6keN1IzgXVLmW9Oh5OcRFR0QYHd3Sf6cmz+LYyHVe3IfCyDusaieyi1iAqX0m" +
  "fyIBKaJETYiJKEClwGin8gJMWuqD8zoI0k3Hb/k/igLZnwgQ5cb8UOr7aEQaL5vlb5Bbj10e" +
  "USXt6Ft6bx+N1SA8hGxuGgZ/iHrlS9zFi8MjFTxwRywJMH2VnL29KZsqnr7MQ/V9Aa3SVJhV" +
  "bcVzu4w0uuf57qbrzogYSNHxcYaylctfW3IfEOXOJJ98v3vIfRt9DpT8N1C/EPotlEIAig==";

Deno.test("RSA PKCS#1 v1.5 vectors pinned from OpenSSL", () => {
  const msg = enc.encode(RSA_MESSAGE);
  const pub = parsePublicKeyText(`ssh-rsa ${RSA2048_PUB} vector`);
  assert.equal(pub.bits, 2048);
  const raw = Uint8Array.fromBase64(RSA2048_SIG256);
  const sig = new SshWriter().string("rsa-sha2-256").string(raw).bytes();
  assert.ok(pub.verify(msg, sig, "rsa-sha2-256"));
  assert.equal(pub.verify(msg, sig, "rsa-sha2-512"), false);
  assert.equal(pub.verify(enc.encode("x"), sig, "rsa-sha2-256"), false);
  // The BigInt verifier (used above 4096 bits) agrees on the same vector.
  const parts = new SshReader(pub.blob);
  parts.string();
  const e = parts.mpintBytes();
  const n = parts.mpintBytes();
  const digest = createHash("sha256").update(msg).digest();
  assert.ok(rsaVerifyDigest(n, e, "sha256", digest, raw));
  const bad = raw.slice();
  bad[10] ^= 1;
  assert.equal(rsaVerifyDigest(n, e, "sha256", digest, bad), false);
  assert.equal(
    rsaVerifyDigest(
      n,
      e,
      "sha512",
      createHash("sha512").update(msg).digest(),
      raw,
    ),
    false,
  );

  // 8192 bits: beyond what node:crypto imports, verified in BigInt.
  const big = parsePublicKeyText(`ssh-rsa ${RSA8192_PUB}`);
  assert.equal(big.bits, 8192);
  const bigSig = new SshWriter().string("rsa-sha2-512")
    .string(Uint8Array.fromBase64(RSA8192_SIG512)).bytes();
  assert.ok(big.verify(msg, bigSig, "rsa-sha2-512"));
  assert.equal(big.verify(enc.encode("y"), bigSig, "rsa-sha2-512"), false);
  assert.equal(big.verify(msg, bigSig, "rsa-sha2-256"), false);
});

Deno.test("SHA-1 ssh-rsa signatures are never produced nor accepted", async () => {
  await withTempDir(async (dir) => {
    await keygen([
      "-q",
      "-t",
      "rsa",
      "-b",
      "2048",
      "-N",
      "",
      "-m",
      "PEM",
      "-f",
      `${dir}/k`,
    ]);
    await keygen(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", `${dir}/o`]);
    const pem = await Deno.readTextFile(`${dir}/k`);
    const key = parsePrivateKey(await Deno.readTextFile(`${dir}/o`));
    const data = enc.encode("data");
    assert.throws(() => key.sign(data, "ssh-rsa"), TypeError);
    assert.deepEqual(key.publicKey.signatureAlgorithms, [
      "rsa-sha2-512",
      "rsa-sha2-256",
    ]);
    // A genuine SHA-1 signature made by OpenSSL with the PEM key.
    const pub = parsePublicKeyText(await keygen(["-y", "-f", `${dir}/k`]));
    const sha1 = nodeSign("sha1", data, pem);
    for (const name of ["ssh-rsa", "rsa-sha2-256", "rsa-sha2-512"]) {
      const blob = new SshWriter().string(name).string(sha1).bytes();
      for (const alg of ["ssh-rsa", "rsa-sha2-256", "rsa-sha2-512"]) {
        assert.equal(pub.verify(data, blob, alg), false, `${name} as ${alg}`);
      }
    }
    // Sanity: the same key's SHA-256 signature does verify.
    const good = new SshWriter().string("rsa-sha2-256")
      .string(nodeSign("sha256", data, pem)).bytes();
    assert.ok(pub.verify(data, good, "rsa-sha2-256"));
    // A signature blob naming another algorithm than the one negotiated.
    const renamed = new SshWriter().string("rsa-sha2-512")
      .string(nodeSign("sha256", data, pem)).bytes();
    assert.equal(pub.verify(data, renamed, "rsa-sha2-256"), false);
    assert.equal(pub.verify(data, renamed, "rsa-sha2-512"), false);
  });
});

Deno.test("parsePublicKey rejects malformed blobs with SyntaxError", () => {
  const ed = generatePrivateKey("ed25519").publicKey.blob;
  const ec = generatePrivateKey("ecdsa-p256").publicKey.blob;
  const cases: Uint8Array[] = [
    new Uint8Array(0),
    Uint8Array.of(0, 0, 0),
    // Declared length far beyond the data: no allocation, a SyntaxError.
    Uint8Array.of(0xff, 0xff, 0xff, 0xff, 1, 2, 3),
    new SshWriter().string("ssh-dss").string("x").bytes(),
    new SshWriter().string("ssh-ed25519").string(new Uint8Array(31)).bytes(),
    new SshWriter().string("ssh-ed25519").string(new Uint8Array(33)).bytes(),
    Uint8Array.of(...ed, 0),
    ed.subarray(0, ed.length - 1),
    // ECDSA: wrong curve name, compressed point, point off the curve.
    new SshWriter().string("ecdsa-sha2-nistp256").string("nistp384")
      .string(ec.subarray(ec.length - 65)).bytes(),
    new SshWriter().string("ecdsa-sha2-nistp256").string("nistp256")
      .string(Uint8Array.of(2, ...ec.subarray(ec.length - 64, ec.length - 32)))
      .bytes(),
    (() => {
      const b = ec.slice();
      b[b.length - 1] ^= 1;
      return b;
    })(),
    // RSA: negative / non-minimal mpints, even modulus.
    new SshWriter().string("ssh-rsa").string(Uint8Array.of(0x81))
      .mpintBytes(new Uint8Array(256).fill(0xff)).bytes(),
    new SshWriter().string("ssh-rsa").string(Uint8Array.of(0, 1, 0, 1))
      .mpintBytes(new Uint8Array(256).fill(0xff)).bytes(),
    new SshWriter().string("ssh-rsa").mpint(65537n)
      .mpintBytes(new Uint8Array(256).fill(0xfe)).bytes(),
  ];
  for (const [i, blob] of cases.entries()) {
    assert.throws(() => parsePublicKey(blob), SyntaxError, `case ${i}`);
  }
  // Exponent limits and modulus size are limits, not syntax.
  assert.throws(
    () =>
      parsePublicKey(
        new SshWriter().string("ssh-rsa").mpint(1n)
          .mpintBytes(new Uint8Array(256).fill(0xff)).bytes(),
      ),
    RangeError,
  );
  assert.throws(
    () =>
      parsePublicKey(
        new SshWriter().string("ssh-rsa").mpint(65537n)
          .mpintBytes(new Uint8Array(2049).fill(0xff)).bytes(),
      ),
    SyntaxError,
  );
  // deno-lint-ignore no-explicit-any
  assert.throws(() => parsePublicKey("x" as any), TypeError);
  for (
    const line of [
      "",
      "ssh-ed25519",
      "ssh-ed25519 !!!!",
      "ssh-ed25519 AAAA",
      `ssh-rsa ${ed.toBase64()}`,
      `ssh-ed25519 ${ed.toBase64().slice(1)}`,
    ]
  ) {
    assert.throws(() => parsePublicKeyText(line), SyntaxError, line);
  }
  const ok = parsePublicKeyText(`  ssh-ed25519 ${ed.toBase64()}  a  b \n`);
  assert.equal(ok.comment, "a  b");
});

Deno.test("verify() never throws on hostile signatures", () => {
  for (const type of ["ed25519", "ecdsa-p521", "rsa"] as const) {
    const key = generatePrivateKey(type, type === "rsa" ? { bits: 2048 } : {});
    const pub = key.publicKey;
    const alg = pub.signatureAlgorithms[0];
    const data = enc.encode("d");
    const inputs: Uint8Array[] = [
      new Uint8Array(0),
      Uint8Array.of(0xff, 0xff, 0xff, 0xff),
      new SshWriter().string(alg).bytes(),
      new SshWriter().string(alg).string(new Uint8Array(0)).bytes(),
      new SshWriter().string(alg).string(new Uint8Array(70000)).bytes(),
      new SshWriter().string(alg).string(
        new SshWriter().mpint(0n).mpint(0n).bytes(),
      ).bytes(),
      new SshWriter().string(alg).string(
        new SshWriter().mpintBytes(new Uint8Array(200).fill(0x7f)).mpint(1n)
          .bytes(),
      ).bytes(),
    ];
    for (const sig of inputs) assert.equal(pub.verify(data, sig, alg), false);
    assert.equal(pub.verify(data, key.sign(data), "made-up"), false);
  }
});

Deno.test("parseAuthorizedKeys: options, comments, errors with line numbers", () => {
  const a = generatePrivateKey("ed25519", { comment: "a" }).publicKey;
  const b = generatePrivateKey("ecdsa-p256").publicKey;
  const text = [
    "# comment",
    "",
    `${a}`,
    `   ${b.type} ${b.blob.toBase64()}`,
    `command="echo \\"hi, there\\"",no-pty,from="10.0.0.*,!10.0.0.1" ${a.type} ${a.blob.toBase64()} alice@host with spaces`,
    `restrict ${b.type} ${b.blob.toBase64()}\r`,
    `sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t x`,
    `cert-authority ssh-dss AAAAB3NzaC1kc3M= ca`,
    "\t# indented comment",
  ].join("\n");
  const keys = parseAuthorizedKeys(text);
  assert.equal(keys.length, 4);
  assert.deepEqual(keys.map((k) => k.line), [3, 4, 5, 6]);
  assert.equal(keys[0].comment, "a");
  assert.deepEqual(keys[0].options, []);
  assert.deepEqual(keys[0].key.blob, a.blob);
  assert.equal(keys[1].comment, "");
  assert.deepEqual(keys[2].options, [
    'command="echo \\"hi, there\\""',
    "no-pty",
    'from="10.0.0.*,!10.0.0.1"',
  ]);
  assert.equal(keys[2].comment, "alice@host with spaces");
  assert.deepEqual(keys[3].options, ["restrict"]);
  assert.deepEqual(keys[3].key.blob, b.blob);

  const bad = [
    `command="unterminated ${a.type} ${a.blob.toBase64()}`,
    `no-pty,,x ${a.type} ${a.blob.toBase64()}`,
    `from=unquoted ${a.type} ${a.blob.toBase64()}`,
    `${a.type} notbase64!`,
    `no-pty`,
    `ssh-foo AAAA`,
    `${a.type} ${b.blob.toBase64()}`,
  ];
  for (const line of bad) {
    assert.throws(
      () => parseAuthorizedKeys(`# x\n${line}\n`),
      (e: unknown) => e instanceof SyntaxError && /line 2\b/.test(e.message),
      line,
    );
  }
  const errors: SyntaxError[] = [];
  const skipped = parseAuthorizedKeys(
    `${bad.join("\n")}\n${a}`,
    { onInvalidLine: (e) => errors.push(e) },
  );
  assert.equal(errors.length, bad.length);
  assert.equal(skipped.length, 1);
  assert.equal(skipped[0].line, bad.length + 1);
});

Deno.test("SIGNATURE_ALGORITHMS and signatureAlgorithmsFor", () => {
  assert.deepEqual([...SIGNATURE_ALGORITHMS], [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
  ]);
  assert.ok(!SIGNATURE_ALGORITHMS.includes("ssh-rsa"));
  assert.deepEqual(signatureAlgorithmsFor("ecdsa-sha2-nistp384"), [
    "ecdsa-sha2-nistp384",
  ]);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => signatureAlgorithmsFor("ssh-dss" as any), TypeError);
});
