/**
 * The key-format write side against real `ssh-keygen` (and OpenSSL where
 * ssh-keygen 9.2 has no Ed25519 support): a round-trip matrix over every
 * key type and every `-m` format, with and without a passphrase, in both
 * directions; byte-for-byte equality where the output is deterministic; and
 * the distinct KeyParseError codes for wrong passphrases, truncated and
 * corrupt files.
 *
 * The keys come from ssh-keygen once per file (RSA keygen is the slow part)
 * and are reused by every test.
 */
import assert from "node:assert/strict";
import {
  encodePrivateKey,
  encodePrivateKeyPem,
  encodePublicKeyPem,
  encodePublicKeyRfc4716,
  generatePrivateKey,
  KeyParseError,
  type KeyParseErrorCode,
  parsePrivateKey,
  parsePublicKey,
  parsePublicKeyAny,
  parsePublicKeyPem,
  parsePublicKeyRfc4716,
  parsePublicKeyText,
  type PemPrivateKeyFormat,
} from "../keys/mod.ts";
import type { PrivateKey, PublicKey } from "../keys/types.ts";
import { run, SSH_KEYGEN, sshClientSkipReason } from "./_openssh.ts";

const ignore = sshClientSkipReason !== null;
const PASS = "correct horse";
const enc = new TextEncoder();

interface Kind {
  name: string;
  args: string[];
  /** PEM layout ssh-keygen -m PEM writes; null for Ed25519 (it cannot). */
  traditional: PemPrivateKeyFormat | null;
}

const KINDS: Kind[] = [
  { name: "ed25519", args: ["-t", "ed25519"], traditional: null },
  { name: "ecdsa256", args: ["-t", "ecdsa", "-b", "256"], traditional: "sec1" },
  { name: "ecdsa384", args: ["-t", "ecdsa", "-b", "384"], traditional: "sec1" },
  { name: "ecdsa521", args: ["-t", "ecdsa", "-b", "521"], traditional: "sec1" },
  { name: "rsa2048", args: ["-t", "rsa", "-b", "2048"], traditional: "pkcs1" },
  { name: "rsa3072", args: ["-t", "rsa", "-b", "3072"], traditional: "pkcs1" },
];

interface BaseKey {
  kind: Kind;
  /** openssh-key-v1 file from ssh-keygen, no passphrase, mode 0600. */
  path: string;
  /** Its .pub line, trimmed. */
  line: string;
  /** The same key loaded by us. */
  key: PrivateKey;
}

let fixtureDir: string | undefined;
let fixture: Promise<BaseKey[]> | undefined;

/** The ssh-keygen keys every test shares, made on first use. */
function baseKeys(): Promise<BaseKey[]> {
  fixture ??= (async () => {
    fixtureDir = await Deno.makeTempDir({ prefix: "fynx-keyexport-base-" });
    const keys: BaseKey[] = [];
    for (const kind of KINDS) {
      const path = `${fixtureDir}/${kind.name}`;
      await ok(SSH_KEYGEN, [
        "-q",
        ...kind.args,
        "-N",
        "",
        "-C",
        `${kind.name}@test`,
        "-f",
        path,
      ]);
      const line = (await Deno.readTextFile(`${path}.pub`)).trim();
      const key = parsePrivateKey(await Deno.readTextFile(path));
      keys.push({ kind, path, line, key });
    }
    return keys;
  })();
  return fixture;
}

globalThis.addEventListener("unload", () => {
  if (fixtureDir) Deno.removeSync(fixtureDir, { recursive: true });
});

async function ok(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderrText}`);
  }
  return r.stdoutText;
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fynx-keyexport-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `type base64`, the part of a public key line ssh-keygen -y/-i compare. */
function bare(key: PublicKey | string): string {
  const line = typeof key === "string" ? key : key.toString();
  return line.trim().split(" ").slice(0, 2).join(" ");
}

function assertCode(fn: () => unknown, code: KeyParseErrorCode, what: string) {
  assert.throws(
    fn,
    (e: unknown) => {
      assert.ok(e instanceof KeyParseError, `${what}: ${e}`);
      assert.equal(e.code, code, `${what}: ${e.message}`);
      return true;
    },
    what,
  );
}

/** Loads `text` with us and checks key, signatures and the error codes. */
function checkLoads(
  text: string,
  passphrase: string,
  want: BaseKey | string,
  label: string,
): PrivateKey {
  const line = typeof want === "string" ? want : want.line;
  const key = parsePrivateKey(text, { passphrase: passphrase || undefined });
  assert.equal(bare(key.publicKey), bare(line), label);
  const pub = parsePublicKeyText(line);
  const data = enc.encode(`signed by ${label}`);
  for (const alg of pub.signatureAlgorithms) {
    assert.ok(pub.verify(data, key.sign(data, alg), alg), `${label} ${alg}`);
  }
  if (passphrase !== "") {
    assertCode(() => parsePrivateKey(text), "passphrase-required", label);
    assertCode(
      () => parsePrivateKey(text, { passphrase: "wrong horse" }),
      "wrong-passphrase",
      label,
    );
  }
  return key;
}

/** The first line of a PEM file. */
function head(text: string): string {
  return text.split("\n")[0];
}

const FORMATS = ["RFC4716", "PKCS8", "PEM"] as const;

/** The armor ssh-keygen writes for `-m format` and `kind`. */
function expectedHead(kind: Kind, format: string, pass: string): string {
  if (format === "RFC4716" || kind.traditional === null) {
    return "-----BEGIN OPENSSH PRIVATE KEY-----";
  }
  if (format === "PKCS8") {
    return pass
      ? "-----BEGIN ENCRYPTED PRIVATE KEY-----"
      : "-----BEGIN PRIVATE KEY-----";
  }
  return kind.traditional === "pkcs1"
    ? "-----BEGIN RSA PRIVATE KEY-----"
    : "-----BEGIN EC PRIVATE KEY-----";
}

Deno.test({
  name: "keys ssh-keygen -t T -m M -N P makes load in ours (ed25519, ecdsa)",
  ignore,
  async fn() {
    await withDir(async (dir) => {
      // Fresh RSA keys are made once, in the fixture; -p covers their formats.
      for (const kind of KINDS.filter((k) => k.traditional !== "pkcs1")) {
        for (const format of FORMATS) {
          for (const pass of ["", PASS]) {
            const label = `${kind.name} -m ${format} ${pass ? "enc" : "plain"}`;
            const path = `${dir}/${kind.name}-${format}-${
              pass ? "enc" : "plain"
            }`;
            await ok(SSH_KEYGEN, [
              "-q",
              ...kind.args,
              "-m",
              format,
              "-N",
              pass,
              "-C",
              "c",
              "-f",
              path,
            ]);
            const text = await Deno.readTextFile(path);
            // ssh-keygen writes Ed25519 as openssh-key-v1 whatever -m says.
            assert.equal(head(text), expectedHead(kind, format, pass), label);
            if (pass && format === "PEM" && kind.traditional !== null) {
              assert.match(
                text,
                /Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,/,
              );
            }
            const line = (await Deno.readTextFile(`${path}.pub`)).trim();
            checkLoads(text, pass, line, label);
          }
        }
      }
    });
  },
});

Deno.test({
  name: "keys ssh-keygen -p -m M -N P rewrites load in ours (every type)",
  ignore,
  async fn() {
    const keys = await baseKeys();
    await withDir(async (dir) => {
      for (const base of keys) {
        for (const format of FORMATS) {
          for (const pass of ["", PASS]) {
            const label = `${base.kind.name} -p -m ${format} ${
              pass ? "enc" : "plain"
            }`;
            const path = `${dir}/${base.kind.name}-${format}-${
              pass ? "enc" : "plain"
            }`;
            await Deno.copyFile(base.path, path);
            await ok(SSH_KEYGEN, ["-p", "-m", format, "-N", pass, "-f", path]);
            const text = await Deno.readTextFile(path);
            // -m RFC4716 does not change ssh-keygen's private key format.
            assert.equal(
              head(text),
              expectedHead(base.kind, format, pass),
              label,
            );
            checkLoads(text, pass, base, label);
          }
        }
      }
    });
  },
});

/** What we write for -m `format` of `kind`, or null if it has no such. */
function ourLayout(
  kind: Kind,
  format: (typeof FORMATS)[number],
): "openssh" | PemPrivateKeyFormat | null {
  if (format === "RFC4716") return "openssh";
  if (format === "PKCS8") return "pkcs8";
  return kind.traditional;
}

function encodeAs(
  key: PrivateKey,
  layout: "openssh" | PemPrivateKeyFormat,
  passphrase: string,
): string {
  return layout === "openssh"
    ? encodePrivateKey(key, { passphrase, rounds: 4 })
    : encodePrivateKeyPem(key, { format: layout, passphrase });
}

Deno.test({
  name: "keys we write in every format load in ssh-keygen -y and -l",
  ignore,
  async fn() {
    const keys = await baseKeys();
    await withDir(async (dir) => {
      for (const base of keys) {
        for (const format of FORMATS) {
          const layout = ourLayout(base.kind, format);
          if (layout === null) continue;
          // ssh-keygen 9.2 cannot read Ed25519 PKCS#8: OpenSSL checks it below.
          if (layout === "pkcs8" && base.kind.traditional === null) continue;
          for (const pass of ["", PASS]) {
            const label: string = `${base.kind.name} ${layout} ${
              pass ? "enc" : "plain"
            }`;
            const path = `${dir}/${base.kind.name}-${layout}-${
              pass ? "enc" : "plain"
            }`;
            const text = encodeAs(base.key, layout, pass);
            await Deno.writeTextFile(path, text, { mode: 0o600 });
            const y = await ok(SSH_KEYGEN, ["-y", "-P", pass, "-f", path]);
            assert.equal(bare(y), bare(base.line), label);
            if (pass) {
              const wrong = await run(SSH_KEYGEN, [
                "-y",
                "-P",
                "wrong horse",
                "-f",
                path,
              ]);
              assert.notEqual(wrong.code, 0, label);
            } else {
              // ssh-keygen -l reads unencrypted private keys without a .pub.
              const l = await ok(SSH_KEYGEN, ["-l", "-f", path]);
              assert.equal(
                l.split(" ")[1],
                base.key.publicKey.fingerprint(),
                label,
              );
            }
            // And our own reader, with the distinct error codes.
            checkLoads(text, pass, base, label);
          }
        }
      }
    });
  },
});

Deno.test({
  name:
    "unencrypted PEM we write equals ssh-keygen -p -m M -N '' byte for byte",
  ignore,
  async fn() {
    const keys = await baseKeys();
    await withDir(async (dir) => {
      for (const base of keys) {
        if (base.kind.traditional === null) continue;
        for (const format of ["PEM", "PKCS8"] as const) {
          const path = `${dir}/${base.kind.name}-${format}`;
          await Deno.copyFile(base.path, path);
          await ok(SSH_KEYGEN, ["-p", "-m", format, "-N", "", "-f", path]);
          const theirs = await Deno.readTextFile(path);
          const ours = encodePrivateKeyPem(base.key, {
            format: ourLayout(base.kind, format) as PemPrivateKeyFormat,
          });
          assert.equal(ours, theirs, `${base.kind.name} ${format}`);
        }
      }
    });
  },
});

Deno.test({
  name: "Ed25519 PKCS#8 we write (plain and PBES2) equals what OpenSSL reads",
  ignore,
  async fn() {
    const [ed] = await baseKeys();
    assert.equal(ed.kind.name, "ed25519");
    await withDir(async (dir) => {
      const plain = encodePrivateKeyPem(ed.key);
      await Deno.writeTextFile(`${dir}/plain`, plain, { mode: 0o600 });
      // OpenSSL re-encodes it to the same bytes.
      assert.equal(await ok("openssl", ["pkey", "-in", `${dir}/plain`]), plain);
      const encrypted = encodePrivateKeyPem(ed.key, { passphrase: PASS });
      assert.equal(head(encrypted), "-----BEGIN ENCRYPTED PRIVATE KEY-----");
      await Deno.writeTextFile(`${dir}/enc`, encrypted, { mode: 0o600 });
      assert.equal(
        await ok("openssl", [
          "pkey",
          "-in",
          `${dir}/enc`,
          "-passin",
          `pass:${PASS}`,
        ]),
        plain,
      );
      const spki = await ok("openssl", [
        "pkey",
        "-in",
        `${dir}/enc`,
        "-passin",
        `pass:${PASS}`,
        "-pubout",
      ]);
      assert.equal(spki, encodePublicKeyPem(ed.key.publicKey));
      const bad = await run("openssl", [
        "pkey",
        "-in",
        `${dir}/enc`,
        "-passin",
        "pass:wrong horse",
      ]);
      assert.notEqual(bad.code, 0);
      checkLoads(encrypted, PASS, ed, "ed25519 pkcs8 enc");
      // The PBES2 parameters are OpenSSL 3's: PBKDF2 with HMAC-SHA256,
      // 2048 iterations, AES-256-CBC.
      const asn1 = await ok("openssl", ["asn1parse", "-in", `${dir}/enc`]);
      assert.match(asn1, /:PBES2\n/);
      assert.match(asn1, /:hmacWithSHA256\n/);
      assert.match(asn1, /INTEGER\s+:0800\n/);
      assert.match(asn1, /:aes-256-cbc\n/);
    });
  },
});

Deno.test({
  name: "public exports equal ssh-keygen -e -m M byte for byte",
  ignore,
  async fn() {
    const keys = await baseKeys();
    for (const base of keys) {
      const pub = parsePublicKeyText(base.line);
      for (const format of FORMATS) {
        const label = `${base.kind.name} -e -m ${format}`;
        const r = await run(SSH_KEYGEN, ["-e", "-m", format, "-f", base.path]);
        if (base.kind.traditional === null && format !== "RFC4716") {
          // ssh-keygen 9.2 exports Ed25519 only as RFC 4716.
          assert.notEqual(r.code, 0, label);
          assert.match(r.stderrText, /unsupported key type ED25519/);
          continue;
        }
        assert.equal(r.code, 0, `${label}: ${r.stderrText}`);
        let ours: string;
        if (format === "RFC4716") {
          // Its comment names the local user and host; reuse it.
          const comment = /^Comment: "(.*)"$/m.exec(r.stdoutText)![1];
          assert.match(comment, /^\d+-bit (ED25519|ECDSA|RSA), converted by /);
          ours = encodePublicKeyRfc4716(pub, { comment });
        } else if (format === "PKCS8") {
          ours = encodePublicKeyPem(pub);
        } else {
          // -m PEM: PKCS#1 for RSA, SPKI for ECDSA.
          ours = encodePublicKeyPem(pub, {
            format: pub.type === "ssh-rsa" ? "pkcs1" : "spki",
          });
        }
        assert.equal(ours, r.stdoutText, label);
        // And what it prints reads back as the same key.
        assert.deepEqual(parsePublicKeyAny(r.stdoutText).blob, pub.blob);
      }
    }
  },
});

Deno.test({
  name: "ssh-keygen -i -m M accepts our exports, and we read its exports",
  ignore,
  async fn() {
    const keys = await baseKeys();
    await withDir(async (dir) => {
      for (const base of keys) {
        const pub = base.key.publicKey;
        const exports: [string, string][] = [
          ["RFC4716", encodePublicKeyRfc4716(pub)],
        ];
        if (base.kind.traditional !== null) {
          exports.push(["PKCS8", encodePublicKeyPem(pub)]);
        }
        if (base.kind.traditional === "pkcs1") {
          exports.push(["PEM", encodePublicKeyPem(pub, { format: "pkcs1" })]);
        }
        for (const [format, text] of exports) {
          const label = `${base.kind.name} -i -m ${format}`;
          const path = `${dir}/${base.kind.name}-${format}.pub`;
          await Deno.writeTextFile(path, text);
          const line = await ok(SSH_KEYGEN, ["-i", "-m", format, "-f", path]);
          assert.equal(line, `${bare(base.line)}\n`, label);
          // The other way: its export of the same key, read by us.
          const theirs = await ok(SSH_KEYGEN, [
            "-e",
            "-m",
            format,
            "-f",
            base.path,
          ]);
          const read = format === "RFC4716"
            ? parsePublicKeyRfc4716(theirs)
            : parsePublicKeyPem(theirs);
          assert.equal(
            bare(`${read.type} ${read.blob.toBase64()}`),
            bare(base.line),
          );
        }
        if (base.kind.traditional === null) {
          // Ed25519 SPKI: OpenSSL is the reference.
          const path = `${dir}/ed25519-spki.pem`;
          await Deno.writeTextFile(path, encodePublicKeyPem(pub));
          const again = await ok("openssl", ["pkey", "-pubin", "-in", path]);
          assert.equal(again, encodePublicKeyPem(pub));
          assert.deepEqual(parsePublicKeyPem(again).blob, pub.blob);
        }
      }
    });
  },
});

Deno.test({
  name: "RSA public keys above 4096 bits export as SPKI and PKCS#1",
  ignore,
  async fn() {
    // A made-up 8192-bit modulus (odd, top bit set): enough for the public
    // formats, and far faster than generating a key.
    const n = crypto.getRandomValues(new Uint8Array(1024));
    n[0] |= 0x80;
    n[1023] |= 1;
    const mpint = (b: Uint8Array) => {
      const body = b[0] & 0x80 ? [0, ...b] : [...b];
      return [
        ...new Uint8Array(new Uint32Array([body.length]).buffer).reverse(),
        ...body,
      ];
    };
    const name = enc.encode("ssh-rsa");
    const blob = new Uint8Array([
      0,
      0,
      0,
      name.length,
      ...name,
      ...mpint(new Uint8Array([1, 0, 1])),
      ...mpint(n),
    ]);
    const pub = parsePublicKey(blob);
    assert.equal(pub.bits, 8192);
    await withDir(async (dir) => {
      for (const format of ["spki", "pkcs1"] as const) {
        const text = encodePublicKeyPem(pub, { format });
        const path = `${dir}/${format}.pem`;
        await Deno.writeTextFile(path, text);
        const modulus = await ok("openssl", [
          "rsa",
          "-pubin",
          ...(format === "pkcs1" ? ["-RSAPublicKey_in"] : []),
          "-in",
          path,
          "-noout",
          "-modulus",
        ]);
        assert.equal(modulus.trim(), `Modulus=${n.toHex().toUpperCase()}`);
        const line = await ok(SSH_KEYGEN, [
          "-i",
          "-m",
          format === "spki" ? "PKCS8" : "PEM",
          "-f",
          path,
        ]);
        assert.equal(line, `ssh-rsa ${blob.toBase64()}\n`);
      }
    });
  },
});

/** A PEM file's header lines (if any) and decoded body. */
function splitPem(
  text: string,
): { label: string; headers: string[]; der: Uint8Array } {
  const lines = text.trim().split("\n");
  const label = lines[0].slice("-----BEGIN ".length, -"-----".length);
  const headers = lines.slice(1).filter((l) => l.includes(":"));
  const body = lines.slice(1 + headers.length, -1).filter((l) => l !== "");
  return { label, headers, der: Uint8Array.fromBase64(body.join("")) };
}

function joinPem(label: string, headers: string[], der: Uint8Array): string {
  const b64 = der.toBase64().match(/.{1,64}/g)!;
  return [
    `-----BEGIN ${label}-----`,
    ...(headers.length ? [...headers, ""] : []),
    ...b64,
    `-----END ${label}-----`,
    "",
  ].join("\n");
}

/** Flips a bit at `at` in the body (from the end when negative). */
function corruptBody(text: string, at: number): string {
  const { label, headers, der } = splitPem(text);
  der[at < 0 ? der.length + at : at] ^= 0x01;
  return joinPem(label, headers, der);
}

/** Cuts the body to `keep` bytes, keeping the armor. */
function cutBody(text: string, keep: number): string {
  const { label, headers, der } = splitPem(text);
  return joinPem(label, headers, der.subarray(0, keep));
}

Deno.test({
  name: "wrong passphrase, truncated and corrupt files give distinct codes",
  ignore,
  async fn() {
    const keys = await baseKeys();
    for (const base of keys) {
      const layouts: ("openssh" | PemPrivateKeyFormat)[] = ["openssh", "pkcs8"];
      if (base.kind.traditional) layouts.push(base.kind.traditional);
      for (const layout of layouts) {
        for (const pass of ["", PASS]) {
          const label = `${base.kind.name} ${layout} ${pass ? "enc" : "plain"}`;
          const text = encodeAs(base.key, layout, pass);
          const opts = { passphrase: pass || undefined };
          // File cut short: no END line.
          assertCode(
            () => parsePrivateKey(text.slice(0, text.length / 2), opts),
            "truncated",
            `${label} cut`,
          );
          if (layout === "openssh") continue;
          // Body cut short with the END line kept, at a 16-byte boundary
          // (whole cipher blocks for the encrypted ones).
          const half = Math.floor(splitPem(text).der.length / 32) * 16;
          assertCode(
            () => parsePrivateKey(cutBody(text, half), opts),
            "truncated",
            `${label} body cut`,
          );
          if (pass) {
            assertCode(
              () => parsePrivateKey(text, { passphrase: "wrong horse" }),
              "wrong-passphrase",
              label,
            );
            assertCode(
              () => parsePrivateKey(text),
              "passphrase-required",
              label,
            );
          }
          if (base.kind.traditional === null) continue;
          // A flipped bit in RSA's modulus (40 bytes in) or the EC public
          // point (20 bytes before the end); for encrypted keys, in the
          // cipher blocks there. (Ed25519 PKCS#8 is its seed alone, so any
          // change to it is another valid key; RSA's CRT values are
          // recomputed from p, q and d, so damage to them does no harm.)
          const corrupt = corruptBody(
            text,
            base.kind.traditional === "pkcs1" ? 40 : -20,
          );
          if (!pass || layout !== "pkcs8") {
            assertCode(
              () => parsePrivateKey(corrupt, opts),
              "malformed",
              `${label} corrupt`,
            );
          } else {
            // PBES2 cannot tell a damaged ciphertext from a wrong
            // passphrase (the padding check is all it has).
            assertCode(
              () => parsePrivateKey(corrupt, opts),
              "wrong-passphrase",
              `${label} corrupt`,
            );
          }
        }
      }
    }
    // Outer structure broken: not a SEQUENCE.
    const ec = encodePrivateKeyPem(keys[1].key);
    const der = Uint8Array.fromBase64(ec.split("\n").slice(1, -2).join(""));
    der[0] = 0x31;
    assertCode(
      () =>
        parsePrivateKey(
          `-----BEGIN PRIVATE KEY-----\n${der.toBase64()}\n-----END PRIVATE KEY-----\n`,
        ),
      "malformed",
      "not a SEQUENCE",
    );
    // Legacy ciphertext that is not whole AES blocks.
    const legacy = encodeAs(keys[1].key, "sec1", PASS);
    const { der: cipherText } = splitPem(legacy);
    assertCode(
      () =>
        parsePrivateKey(cutBody(legacy, cipherText.length - 5), {
          passphrase: PASS,
        }),
      "truncated",
      "legacy partial block",
    );
  },
});

Deno.test("PEM and RFC 4716 writers reject what they cannot write", () => {
  const ed = generatePrivateKey("ed25519", { comment: "e" });
  const ec = generatePrivateKey("ecdsa-p256", { comment: "p" });
  assert.throws(
    () => encodePrivateKeyPem(ed, { format: "pkcs1" }),
    /ssh-ed25519 private key as PKCS1/,
  );
  assert.throws(() => encodePrivateKeyPem(ed, { format: "sec1" }), TypeError);
  assert.throws(() => encodePrivateKeyPem(ec, { format: "pkcs1" }), TypeError);
  assert.throws(
    () => encodePrivateKeyPem(ec, { format: "der" as "pkcs8" }),
    TypeError,
  );
  assert.throws(
    () => encodePrivateKeyPem(ec, { passphrase: 7 as never }),
    TypeError,
  );
  assert.throws(
    () => encodePrivateKeyPem(ec, { passphrase: PASS, iterations: 0 }),
    RangeError,
  );
  assert.throws(
    () => encodePrivateKeyPem({ publicKey: ec.publicKey, sign: ec.sign }),
    /not created by parsePrivateKey or generatePrivateKey/,
  );
  assert.throws(
    () => encodePublicKeyPem(ec.publicKey, { format: "pkcs1" }),
    /PKCS#1 holds only RSA keys/,
  );
  assert.throws(
    () => encodePublicKeyRfc4716(ed.publicKey, { comment: "a\nb" }),
    TypeError,
  );
  assert.throws(
    () => encodePublicKeyRfc4716(ed.publicKey, { comment: "x".repeat(1023) }),
    RangeError,
  );
  assert.throws(() => encodePublicKeyRfc4716(null as never), TypeError);
  // A tuned PBKDF2 count is written into the file and read back.
  const strong = encodePrivateKeyPem(ec, { passphrase: PASS, iterations: 1 });
  assert.equal(
    parsePrivateKey(strong, { passphrase: PASS }).publicKey.fingerprint(),
    ec.publicKey.fingerprint(),
  );
  // No comment, no Comment header.
  const bareText = encodePublicKeyRfc4716(ed.publicKey, { comment: "" });
  assert.equal(bareText.split("\n")[1], ed.publicKey.blob.toBase64());
});

Deno.test({
  name: "long RFC 4716 comments continue within 72 bytes and round-trip",
  ignore,
  async fn() {
    const key = generatePrivateKey("ecdsa-p384").publicKey;
    await withDir(async (dir) => {
      for (
        const comment of [
          "x".repeat(61), // exactly 72 bytes with `Comment: ""`
          "a long comment, with spaces at   the places lines break " +
          "ç'est ça, ünïcödé and 🔑 emoji ".repeat(6),
          " leading and trailing spaces ".repeat(5),
          "ends in a backslash \\",
        ]
      ) {
        const text = encodePublicKeyRfc4716(key, { comment });
        for (const line of text.split("\n")) {
          assert.ok(enc.encode(line).length <= 72, line);
        }
        const again = parsePublicKeyRfc4716(text);
        assert.equal(again.comment, comment);
        assert.deepEqual(again.blob, key.blob);
        const path = `${dir}/k.pub`;
        await Deno.writeTextFile(path, text);
        // ssh-keygen skips the continued header lines too.
        assert.equal(
          await ok(SSH_KEYGEN, ["-i", "-f", path]),
          `${bare(key)}\n`,
          comment,
        );
      }
    });
  },
});
