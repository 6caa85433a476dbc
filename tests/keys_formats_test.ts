/**
 * Key formats, fingerprints and randomart against OpenSSH's ssh-keygen and
 * OpenSSL (the references), plus a seeded fuzz of every key parser.
 */

import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import {
  encodePrivateKey,
  fingerprintMd5,
  fingerprintSha256,
  generatePrivateKey,
  KeyParseError,
  parseAuthorizedKeys,
  parsePrivateKey,
  parsePublicKey,
  parsePublicKeyAny,
  parsePublicKeyPem,
  parsePublicKeyRfc4716,
  parsePublicKeyText,
  randomart,
} from "../keys/mod.ts";
import type { PrivateKey } from "../keys/types.ts";

const dec = new TextDecoder();
const enc = new TextEncoder();

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string, args: string[]): Promise<RunResult> {
  const out = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

async function ok(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
  }
  return r.stdout;
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fynx-keyfmt-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const PASS = "passw0rd";

interface Kind {
  name: string;
  args: string[];
}

const ALL_KINDS: Kind[] = [
  { name: "ed25519", args: ["-t", "ed25519"] },
  { name: "ecdsa256", args: ["-t", "ecdsa", "-b", "256"] },
  { name: "ecdsa384", args: ["-t", "ecdsa", "-b", "384"] },
  { name: "ecdsa521", args: ["-t", "ecdsa", "-b", "521"] },
  { name: "rsa2048", args: ["-t", "rsa", "-b", "2048"] },
  { name: "rsa3072", args: ["-t", "rsa", "-b", "3072"] },
];

/** ssh-keygen -m PEM / PKCS8 cannot write Ed25519 (it falls back). */
const PEM_KINDS = ALL_KINDS.filter((k) =>
  k.name !== "ed25519" && k.name !== "rsa3072"
);

async function genKey(
  dir: string,
  kind: Kind,
  extra: string[] = [],
  suffix = "",
): Promise<string> {
  const path = `${dir}/${kind.name}${suffix}`;
  await ok("ssh-keygen", [
    "-q",
    ...kind.args,
    "-N",
    "",
    "-C",
    `${kind.name}@test`,
    "-f",
    path,
    ...extra,
  ]);
  return path;
}

Deno.test("fingerprints and randomart match ssh-keygen -lv", async () => {
  await withTempDir(async (dir) => {
    for (const kind of ALL_KINDS) {
      const path = await genKey(dir, kind);
      const pub = parsePublicKeyText(await Deno.readTextFile(`${path}.pub`));
      for (const hash of ["sha256", "md5"] as const) {
        const out = await ok("ssh-keygen", [
          "-lv",
          "-E",
          hash,
          "-f",
          `${path}.pub`,
        ]);
        const lines = out.replace(/\n$/, "").split("\n");
        const [bits, fp] = lines[0].split(" ");
        assert.equal(Number(bits), pub.bits, kind.name);
        assert.equal(
          fp,
          hash === "sha256" ? fingerprintSha256(pub) : fingerprintMd5(pub),
          `${kind.name} ${hash}`,
        );
        assert.equal(
          randomart(pub, { hash }),
          lines.slice(1).join("\n"),
          `${kind.name} ${hash} randomart`,
        );
      }
      assert.equal(fingerprintSha256(pub), pub.fingerprint());
      assert.equal(randomart(pub), randomart(pub, { hash: "sha256" }));
    }
  });
});

Deno.test("randomart and fingerprints reject bad arguments", () => {
  const pub = generatePrivateKey("ed25519").publicKey;
  assert.throws(
    () => randomart(pub, { hash: "sha1" as "md5" }),
    TypeError,
  );
  assert.throws(() => fingerprintMd5(null as never), TypeError);
  assert.throws(() => fingerprintSha256({} as never), TypeError);
});

Deno.test("public keys from ssh-keygen -e RFC4716, PKCS8 and PEM", async () => {
  await withTempDir(async (dir) => {
    for (const kind of ALL_KINDS) {
      const path = await genKey(dir, kind);
      const line = await Deno.readTextFile(`${path}.pub`);
      const want = parsePublicKeyText(line).fingerprint();
      const modes = kind.name === "ed25519"
        ? ["RFC4716"]
        : ["RFC4716", "PKCS8", "PEM"];
      for (const mode of modes) {
        const text = await ok("ssh-keygen", ["-e", "-m", mode, "-f", path]);
        const key = parsePublicKeyAny(text);
        assert.equal(key.fingerprint(), want, `${kind.name} ${mode}`);
        if (mode === "RFC4716") {
          assert.match(key.comment, /converted by/);
          assert.equal(parsePublicKeyRfc4716(text).fingerprint(), want);
        } else {
          assert.equal(parsePublicKeyPem(text).fingerprint(), want);
        }
      }
      assert.equal(parsePublicKeyAny(`\n  ${line}\n`).fingerprint(), want);
    }
    // Ed25519 SPKI from OpenSSL, since ssh-keygen cannot export it.
    await ok("openssl", [
      "genpkey",
      "-algorithm",
      "ed25519",
      "-out",
      `${dir}/ed.pem`,
    ]);
    const spki = await ok("openssl", [
      "pkey",
      "-in",
      `${dir}/ed.pem`,
      "-pubout",
    ]);
    const fromPub = parsePublicKeyAny(spki);
    const fromPriv = parsePrivateKey(await Deno.readTextFile(`${dir}/ed.pem`));
    assert.equal(fromPub.type, "ssh-ed25519");
    assert.equal(fromPub.fingerprint(), fromPriv.publicKey.fingerprint());
  });
});

Deno.test("RFC 4716 headers, continuation lines and errors", () => {
  const key = generatePrivateKey("ecdsa-p256").publicKey;
  const b64 = key.blob.toBase64();
  const body = [b64.slice(0, 70), b64.slice(70)];
  const text = [
    "---- BEGIN SSH2 PUBLIC KEY ----",
    "Subject: someone",
    'Comment: "a long comment that \\',
    "goes on over \\",
    'three lines"',
    "x-private-header: \\",
    "continued",
    ...body,
    "---- END SSH2 PUBLIC KEY ----",
    "",
  ].join("\r\n");
  const pub = parsePublicKeyRfc4716(text);
  assert.equal(pub.comment, "a long comment that goes on over three lines");
  assert.deepEqual(pub.blob, key.blob);
  const unquoted = parsePublicKeyAny(
    `---- BEGIN SSH2 PUBLIC KEY ----\nComment: plain\n${b64}\n---- END SSH2 PUBLIC KEY ----`,
  );
  assert.equal(unquoted.comment, "plain");
  // Errors.
  assert.throws(
    () => parsePublicKeyRfc4716(`---- BEGIN SSH2 PUBLIC KEY ----\n${b64}\n`),
    SyntaxError,
  );
  assert.throws(
    () =>
      parsePublicKeyRfc4716(
        "---- BEGIN SSH2 PUBLIC KEY ----\nComment: x \\",
      ),
    SyntaxError,
  );
  assert.throws(
    () =>
      parsePublicKeyRfc4716(
        `---- BEGIN SSH2 PUBLIC KEY ----\n${
          b64.slice(1)
        }\n---- END SSH2 PUBLIC KEY ----`,
      ),
    SyntaxError,
  );
  assert.throws(() => parsePublicKeyAny("-----BEGIN CERTIFICATE-----"));
  assert.throws(
    () =>
      parsePublicKeyPem(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
      ),
    SyntaxError,
  );
  assert.throws(() => parsePublicKeyAny(42 as never), TypeError);
});

async function checkPrivate(
  path: string,
  passphrase: string | undefined,
  label: string,
): Promise<PrivateKey> {
  const text = await Deno.readTextFile(path);
  const pub = parsePublicKeyText(await Deno.readTextFile(`${path}.pub`));
  const key = parsePrivateKey(text, { passphrase });
  assert.equal(key.publicKey.fingerprint(), pub.fingerprint(), label);
  const data = enc.encode("data to sign");
  for (const alg of pub.signatureAlgorithms) {
    assert.ok(pub.verify(data, key.sign(data, alg), alg), `${label} ${alg}`);
  }
  if (passphrase !== undefined) {
    assert.throws(
      () => parsePrivateKey(text),
      (e: unknown) =>
        e instanceof KeyParseError && e.code === "passphrase-required",
    );
    assert.throws(
      () => parsePrivateKey(text, { passphrase: "wrong passphrase" }),
      (e: unknown) =>
        e instanceof KeyParseError && e.code === "wrong-passphrase",
      label,
    );
  }
  return key;
}

Deno.test("PEM and PKCS#8 private keys from ssh-keygen", async () => {
  await withTempDir(async (dir) => {
    for (const kind of PEM_KINDS) {
      for (const mode of ["PEM", "PKCS8"]) {
        for (const pass of [undefined, PASS]) {
          const path = await genKey(
            dir,
            kind,
            ["-m", mode, "-N", pass ?? ""],
            `-${mode}-${pass === undefined ? "plain" : "enc"}`,
          );
          const head = (await Deno.readTextFile(path)).split("\n")[0];
          const expected = mode === "PKCS8"
            ? pass === undefined ? "PRIVATE KEY" : "ENCRYPTED PRIVATE KEY"
            : kind.name.startsWith("rsa")
            ? "RSA PRIVATE KEY"
            : "EC PRIVATE KEY";
          assert.equal(head, `-----BEGIN ${expected}-----`);
          await checkPrivate(path, pass, `${kind.name} ${mode} ${pass}`);
        }
      }
    }
    // `ssh-keygen -p -m PEM` rewrites an existing key as legacy encrypted
    // PEM (Proc-Type / DEK-Info headers).
    const path = await genKey(dir, PEM_KINDS[0], [], "-repass");
    await ok("ssh-keygen", ["-p", "-m", "PEM", "-N", PASS, "-f", path]);
    const text = await Deno.readTextFile(path);
    assert.match(text, /Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,/);
    await checkPrivate(path, PASS, "legacy PEM");
  });
});

Deno.test("Ed25519 PKCS#8 (plain and PBES2) from OpenSSL", async () => {
  await withTempDir(async (dir) => {
    await ok("openssl", [
      "genpkey",
      "-algorithm",
      "ed25519",
      "-out",
      `${dir}/ed.pem`,
    ]);
    await ok("openssl", [
      "pkcs8",
      "-topk8",
      "-in",
      `${dir}/ed.pem`,
      "-v2",
      "aes-256-cbc",
      "-v2prf",
      "hmacWithSHA256",
      "-passout",
      `pass:${PASS}`,
      "-out",
      `${dir}/ed-enc.pem`,
    ]);
    const plain = parsePrivateKey(await Deno.readTextFile(`${dir}/ed.pem`));
    const encText = await Deno.readTextFile(`${dir}/ed-enc.pem`);
    assert.ok(encText.startsWith("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    const decrypted = parsePrivateKey(encText, { passphrase: PASS });
    assert.equal(plain.publicKey.type, "ssh-ed25519");
    assert.equal(
      decrypted.publicKey.fingerprint(),
      plain.publicKey.fingerprint(),
    );
    assert.throws(
      () => parsePrivateKey(encText, { passphrase: "nope!" }),
      (e: unknown) =>
        e instanceof KeyParseError && e.code === "wrong-passphrase",
    );
    // OpenSSL derives the same public key (ssh-keygen 9.2 cannot load
    // Ed25519 PKCS#8).
    const spki = await ok("openssl", [
      "pkey",
      "-in",
      `${dir}/ed.pem`,
      "-pubout",
    ]);
    assert.equal(
      parsePublicKeyPem(spki).fingerprint(),
      plain.publicKey.fingerprint(),
    );
    // Unsupported PEM key types and labels.
    await ok("openssl", [
      "genpkey",
      "-algorithm",
      "x25519",
      "-out",
      `${dir}/x.pem`,
    ]);
    assert.throws(
      () => parsePrivateKey(Deno.readTextFileSync(`${dir}/x.pem`)),
      (e: unknown) =>
        e instanceof KeyParseError && e.code === "unsupported-key-type",
    );
    assert.throws(
      () =>
        parsePrivateKey(
          "-----BEGIN DSA PRIVATE KEY-----\nAAAA\n-----END DSA PRIVATE KEY-----\n",
        ),
      (e: unknown) =>
        e instanceof KeyParseError && e.code === "unsupported-key-type",
    );
    assert.throws(
      () => parsePrivateKey("-----BEGIN PRIVATE KEY-----\nMIIB\n"),
      (e: unknown) => e instanceof KeyParseError && e.code === "truncated",
    );
  });
});

Deno.test("legacy encrypted PEM from OpenSSL (AES-256, 3DES)", async () => {
  await withTempDir(async (dir) => {
    await ok("openssl", [
      "genpkey",
      "-algorithm",
      "EC",
      "-pkeyopt",
      "ec_paramgen_curve:P-384",
      "-out",
      `${dir}/ec.pem`,
    ]);
    const plain = parsePrivateKey(await Deno.readTextFile(`${dir}/ec.pem`));
    assert.equal(plain.publicKey.type, "ecdsa-sha2-nistp384");
    for (const cipher of ["-aes256", "-des3"]) {
      await ok("openssl", [
        "ec",
        "-in",
        `${dir}/ec.pem`,
        cipher,
        "-passout",
        `pass:${PASS}`,
        "-out",
        `${dir}/enc.pem`,
      ]);
      const text = await Deno.readTextFile(`${dir}/enc.pem`);
      assert.match(text, /Proc-Type: 4,ENCRYPTED/);
      const key = parsePrivateKey(text, { passphrase: PASS });
      assert.equal(key.publicKey.fingerprint(), plain.publicKey.fingerprint());
      assert.throws(
        () => parsePrivateKey(text, { passphrase: "wrong" }),
        (e: unknown) =>
          e instanceof KeyParseError && e.code === "wrong-passphrase",
      );
      const odd = text.replace(/DEK-Info: [A-Z0-9-]+,/, "DEK-Info: RC2-CBC,");
      assert.throws(
        () => parsePrivateKey(odd, { passphrase: PASS }),
        (e: unknown) =>
          e instanceof KeyParseError && e.code === "unsupported-cipher",
      );
    }
  });
});

Deno.test("encrypted openssh-key-v1 written by us is read by ssh-keygen", async () => {
  await withTempDir(async (dir) => {
    const keys = [
      generatePrivateKey("ed25519", { comment: "e" }),
      generatePrivateKey("ecdsa-p384", { comment: "p" }),
      generatePrivateKey("rsa", { bits: 2048, comment: "r" }),
    ];
    for (const [i, key] of keys.entries()) {
      const text = encodePrivateKey(key, {
        passphrase: PASS,
        rounds: i === 0 ? undefined : 8,
      });
      const path = `${dir}/k${i}`;
      await Deno.writeTextFile(path, text, { mode: 0o600 });
      const line = await ok("ssh-keygen", ["-y", "-P", PASS, "-f", path]);
      assert.equal(
        parsePublicKeyText(line).fingerprint(),
        key.publicKey.fingerprint(),
      );
      const bad = await run("ssh-keygen", ["-y", "-P", "wrong!", "-f", path]);
      assert.notEqual(bad.code, 0);
      // Our own reader too, and the header says bcrypt + aes256-ctr.
      const again = parsePrivateKey(text, { passphrase: PASS });
      assert.equal(again.publicKey.fingerprint(), key.publicKey.fingerprint());
      assert.equal(again.publicKey.comment, key.publicKey.comment);
      assert.throws(
        () => parsePrivateKey(text),
        (e: unknown) =>
          e instanceof KeyParseError && e.code === "passphrase-required",
      );
      const body = Uint8Array.fromBase64(
        text.split("\n").slice(1, -2).join(""),
      );
      const head = dec.decode(body.subarray(0, 60));
      assert.ok(head.includes("aes256-ctr") && head.includes("bcrypt"));
      // Rounds are stored after the 16-byte salt (ssh-keygen -a).
      const kdfAt = head.indexOf("bcrypt") + 6 + 4 + 4 + 16;
      const rounds = new DataView(body.buffer).getUint32(kdfAt);
      assert.equal(rounds, i === 0 ? 16 : 8);
    }
    // An empty passphrase writes an unencrypted file.
    const plain = encodePrivateKey(keys[0], { passphrase: "" });
    assert.equal(parsePrivateKey(plain).publicKey.type, "ssh-ed25519");
    assert.throws(
      () => encodePrivateKey(keys[0], { passphrase: PASS, rounds: 0 }),
      RangeError,
    );
    assert.throws(
      () => encodePrivateKey(keys[0], { passphrase: 5 as never }),
      TypeError,
    );
  });
});

/** mulberry32: a small seeded PRNG so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";

function mutateText(rand: () => number, text: string): string {
  const int = (n: number) => Math.floor(rand() * n);
  switch (int(5)) {
    case 0:
      return text.slice(0, int(text.length + 1));
    case 1: {
      const chars = [...text];
      for (let n = 1 + int(4); n > 0; n--) {
        chars[int(chars.length)] = B64[int(B64.length)];
      }
      return chars.join("");
    }
    case 2: {
      let s = "";
      for (let n = int(300); n > 0; n--) s += String.fromCharCode(int(256));
      return s;
    }
    case 3: {
      const at = int(text.length);
      return text.slice(0, at) + text.slice(at + 1 + int(20));
    }
    default: {
      let s = "";
      for (let n = int(200); n > 0; n--) s += B64[int(B64.length)];
      const at = int(text.length);
      return text.slice(0, at) + s + text.slice(at);
    }
  }
}

function mutateBytes(rand: () => number, bytes: Uint8Array): Uint8Array {
  const int = (n: number) => Math.floor(rand() * n);
  switch (int(3)) {
    case 0:
      return bytes.slice(0, int(bytes.length + 1));
    case 1: {
      const out = bytes.slice();
      for (let n = 1 + int(4); n > 0; n--) out[int(out.length)] = int(256);
      return out;
    }
    default: {
      const out = new Uint8Array(int(200));
      for (let i = 0; i < out.length; i++) out[i] = int(256);
      return out;
    }
  }
}

function allowed(e: unknown): boolean {
  return e instanceof KeyParseError || e instanceof SyntaxError ||
    e instanceof RangeError || e instanceof TypeError;
}

Deno.test("fuzz: parsers throw only documented errors and never hang", () => {
  const rand = prng(0x5eed);
  const ed = generateKeyPairSync("ed25519").privateKey;
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
  const pemOf = (
    k: typeof ed,
    type: "pkcs8" | "pkcs1" | "sec1",
    cipher?: string,
  ): string =>
    k.export({
      type,
      format: "pem",
      cipher,
      passphrase: cipher === undefined ? undefined : PASS,
    }) as string;
  const ours = [
    generatePrivateKey("ed25519", { comment: "a" }),
    generatePrivateKey("ecdsa-p256", { comment: "b" }),
    generatePrivateKey("rsa", { bits: 2048, comment: "c" }),
  ];
  const privateTexts = [
    ...ours.map((k) => encodePrivateKey(k)),
    pemOf(ed, "pkcs8"),
    pemOf(ec, "sec1"),
    pemOf(ec, "pkcs8", "aes-256-cbc"),
    pemOf(rsa, "pkcs1"),
    pemOf(rsa, "pkcs8"),
    pemOf(rsa, "pkcs8", "aes-128-cbc"),
  ];
  const publicTexts = [
    ...ours.map((k) => k.publicKey.toString()),
    ...ours.map((k) =>
      `---- BEGIN SSH2 PUBLIC KEY ----\nComment: "x"\n${k.publicKey.blob.toBase64()}\n---- END SSH2 PUBLIC KEY ----\n`
    ),
    ...[ed, ec, rsa].map((k) =>
      createPublicKey(k).export({ type: "spki", format: "pem" }) as string
    ),
  ];
  const blobs = ours.map((k) => k.publicKey.blob);

  const parsers: [string, () => void][] = [];
  const fuzz = (name: string, once: () => void) => parsers.push([name, once]);
  const pick = <T>(list: T[]): T => list[Math.floor(rand() * list.length)];
  fuzz("parsePrivateKey", () => {
    const text = mutateText(rand, pick(privateTexts));
    // No passphrase for openssh-key-v1, so bcrypt never runs.
    parsePrivateKey(text, {
      passphrase: text.includes("OPENSSH") ? undefined : PASS,
    });
  });
  fuzz("parsePublicKeyText", () => {
    parsePublicKeyText(mutateText(rand, pick(publicTexts.slice(0, 3))));
  });
  fuzz("parsePublicKeyAny", () => {
    parsePublicKeyAny(mutateText(rand, pick(publicTexts)));
  });
  fuzz("parseAuthorizedKeys", () => {
    parseAuthorizedKeys(
      mutateText(rand, pick(publicTexts.slice(0, 3)).replace(/^/, 'from="*" ')),
    );
  });
  fuzz("parsePublicKey", () => {
    parsePublicKey(mutateBytes(rand, pick(blobs)));
  });
  for (const [name, once] of parsers) {
    const started = performance.now();
    const seen = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      try {
        once();
        seen.set("ok", (seen.get("ok") ?? 0) + 1);
      } catch (e) {
        const k = e instanceof KeyParseError ? e.code : (e as Error).name;
        seen.set(k, (seen.get(k) ?? 0) + 1);
        if (!allowed(e)) {
          throw new Error(`${name} threw an undocumented error: ${e}`, {
            cause: e,
          });
        }
      }
    }
    const ms = performance.now() - started;
    if (Deno.env.get("FUZZ_STATS")) console.log(name, ms, seen);
    assert.ok(ms < 60_000, `${name} took ${ms} ms for 2000 inputs`);
  }
});
