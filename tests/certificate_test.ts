/**
 * OpenSSH certificates (keys/certificate.ts, cli/_keygen_cert.ts): signing,
 * parsing and checking; hostile blobs; and round trips with the real
 * `ssh-keygen -s` / `-L` in both directions, compared byte for byte.
 */
import assert from "node:assert/strict";
import {
  authorizeCertificate,
  CERT_FOREVER,
  type Certificate,
  CertificateError,
  checkCertificate,
  generatePrivateKey,
  parseAuthorizedKeys,
  parseCertificate,
  parseCertificateText,
  parsePrivateKey,
  type PrivateKey,
  type PublicKey,
  signCertificate,
} from "../keys/mod.ts";
import { parseCertOptions, parseValidity } from "../cli/_keygen_cert.ts";
import { SshReader } from "../wire/reader.ts";
import { SshWriter } from "../wire/writer.ts";
import { run, SSH_KEYGEN, sshClientSkipReason } from "./_openssh.ts";
import { fynx } from "./_fynx.ts";
import { testKey } from "./_helpers.ts";

const same = (ca: PrivateKey) => (k: PublicKey) =>
  k.type === ca.publicKey.type &&
  k.blob.join() === ca.publicKey.blob.join();

function code(c: string) {
  return (e: unknown) => e instanceof CertificateError && e.code === c;
}

Deno.test("certificate: sign and parse for each CA and key type", () => {
  const kinds = ["ed25519", "ecdsa-p256", "ecdsa-p384", "rsa"] as const;
  for (const caKind of kinds) {
    const ca = testKey(caKind);
    for (const kind of kinds) {
      const key = testKey(kind).publicKey;
      const cert = signCertificate(ca, key, {
        type: "user",
        keyId: `${caKind} signs ${kind}`,
        principals: ["alice", "bob"],
        serial: 0xfedcba9876543210n,
        validAfter: 1_700_000_000n,
        validBefore: 1_900_000_000n,
        criticalOptions: {
          "source-address": "10.0.0.0/8",
          "force-command": "id",
        },
      });
      const back = parseCertificateText(cert.toString());
      assert.equal(back.key.fingerprint(), key.fingerprint());
      assert.equal(back.signatureKey.fingerprint(), ca.publicKey.fingerprint());
      assert.equal(
        back.signatureAlgorithm,
        ca.publicKey.signatureAlgorithms[0],
      );
      assert.equal(back.serial, 0xfedcba9876543210n);
      assert.deepEqual(back.principals, ["alice", "bob"]);
      assert.deepEqual([...back.criticalOptions.keys()], [
        "force-command",
        "source-address",
      ]);
      assert.deepEqual([...back.extensions.keys()], [
        "permit-X11-forwarding",
        "permit-agent-forwarding",
        "permit-port-forwarding",
        "permit-pty",
        "permit-user-rc",
      ]);
      assert.deepEqual(
        back.signatureAlgorithms,
        key.signatureAlgorithms.map((a) => `${a}-cert-v01@openssh.com`),
      );
      // The certificate verifies signatures of the certified key under the
      // certificate algorithm name only.
      const data = new TextEncoder().encode("session");
      const priv = testKey(kind);
      const alg = priv.publicKey.signatureAlgorithms[0];
      assert.ok(
        back.verify(data, priv.sign(data, alg), `${alg}-cert-v01@openssh.com`),
      );
      assert.equal(back.verify(data, priv.sign(data, alg), alg), false);
    }
  }
});

Deno.test("certificate: checks name the failed rule", () => {
  const ca = testKey("ed25519");
  const other = testKey("ecdsa-p256");
  const key = testKey("ed25519").publicKey;
  const now = 1_800_000_000_000;
  const cert = signCertificate(ca, key, {
    type: "user",
    keyId: "k",
    principals: ["alice"],
    validAfter: 1_700_000_000n,
    validBefore: 1_900_000_000n,
    criticalOptions: { "source-address": "192.0.2.0/24,::1" },
  });
  const base = { type: "user" as const, trustedCa: same(ca), now };
  const allow = (p: string[], a: string) =>
    p.some((x) =>
      x === a || (x === "192.0.2.0/24" && a.startsWith("192.0.2."))
    );
  checkCertificate(cert, {
    ...base,
    principal: "alice",
    address: "192.0.2.7",
    addressAllowed: allow,
  });
  assert.throws(
    () => checkCertificate(cert, { ...base, type: "host", principal: "alice" }),
    code("wrong-type"),
  );
  assert.throws(
    () =>
      checkCertificate(cert, {
        ...base,
        trustedCa: same(other),
        principal: "alice",
      }),
    code("untrusted-ca"),
  );
  assert.throws(
    () =>
      checkCertificate(cert, {
        ...base,
        now: 1_600_000_000_000,
        principal: "alice",
      }),
    code("not-yet-valid"),
  );
  assert.throws(
    () =>
      checkCertificate(cert, {
        ...base,
        now: 1_900_000_000_000,
        principal: "alice",
      }),
    code("expired"),
  );
  assert.throws(
    () => checkCertificate(cert, { ...base, principal: "mallory" }),
    code("principal"),
  );
  assert.throws(
    () =>
      checkCertificate(cert, {
        ...base,
        principal: "alice",
        address: "198.51.100.1",
        addressAllowed: allow,
      }),
    code("source-address"),
  );
  // No way to check source-address: refused, not ignored.
  assert.throws(
    () => checkCertificate(cert, { ...base, principal: "alice" }),
    code("source-address"),
  );
  const unknown = signCertificate(ca, key, {
    type: "user",
    keyId: "k",
    principals: ["alice"],
    criticalOptions: { "no-such-option@example.com": "" },
  });
  assert.throws(
    () => checkCertificate(unknown, { ...base, principal: "alice" }),
    code("unsupported-option"),
  );
  const anyone = signCertificate(ca, key, { type: "user", keyId: "any" });
  assert.throws(
    () => checkCertificate(anyone, { ...base, principal: "alice" }),
    code("principal"),
  );
  // Host certificates: wildcard principals, and an empty list means any.
  const host = signCertificate(ca, key, {
    type: "host",
    keyId: "web",
    principals: ["*.example.com", "db?.internal"],
  });
  const hostBase = { type: "host" as const, trustedCa: same(ca), now };
  checkCertificate(host, { ...hostBase, principal: "www.example.com" });
  checkCertificate(host, { ...hostBase, principal: "db1.internal" });
  assert.throws(
    () => checkCertificate(host, { ...hostBase, principal: "example.com" }),
    code("principal"),
  );
  checkCertificate(signCertificate(ca, key, { type: "host", keyId: "h" }), {
    ...hostBase,
    principal: "anything",
  });
});

Deno.test("certificate: hostile blobs fail with CertificateError only", () => {
  const ca = testKey("ed25519");
  const cert = signCertificate(ca, testKey("ecdsa-p256").publicKey, {
    type: "user",
    keyId: "fuzz",
    principals: ["a"],
  });
  const blob = cert.blob;
  // Every truncation.
  for (let n = 0; n < blob.length; n++) {
    assert.throws(
      () => parseCertificate(blob.subarray(0, n)),
      CertificateError,
    );
  }
  // Flipped bits anywhere: malformed, or a signature that does not verify.
  let seed = 7;
  for (let i = 0; i < 400; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const copy = blob.slice();
    copy[seed % copy.length] ^= 1 << (seed % 8);
    assert.throws(
      () => parseCertificate(copy),
      (e: unknown) =>
        e instanceof CertificateError &&
        (e.code === "malformed" || e.code === "bad-signature"),
    );
  }
  // Trailing bytes, a huge principal count, out-of-order extensions.
  assert.throws(
    () => parseCertificate(new Uint8Array([...blob, 0])),
    code("malformed"),
  );
  const r = new SshReader(blob, "cert");
  const type = r.string();
  const nonce = r.string();
  const keyFields = r.raw(4 + 8 + 4 + 65); // ecdsa curve id + Q
  const forge = (principals: Uint8Array, extensions: Uint8Array) => {
    const w = new SshWriter().string(type).string(nonce).raw(keyFields)
      .uint64(0n).uint32(1).string("k").string(principals).uint64(0n)
      .uint64(CERT_FOREVER).string(new Uint8Array()).string(extensions)
      .string(new Uint8Array()).string(ca.publicKey.blob);
    const signed = w.bytes();
    return new SshWriter().raw(signed).string(ca.sign(signed)).bytes();
  };
  const many = new SshWriter();
  for (let i = 0; i < 300; i++) many.string(`p${i}`);
  assert.throws(
    () => parseCertificate(forge(many.bytes(), new Uint8Array())),
    (e: unknown) =>
      code("malformed")(e) &&
      /more than 256 principals/.test((e as Error).message),
  );
  const unordered = new SshWriter().string("permit-pty").string("")
    .string("permit-X11-forwarding").string("").bytes();
  assert.throws(
    () => parseCertificate(forge(new Uint8Array(), unordered)),
    (e: unknown) =>
      code("malformed")(e) && /not in order/.test((e as Error).message),
  );
  // A well-formed forgery parses (sanity check of the forger).
  assert.equal(
    parseCertificate(
      forge(new SshWriter().string("x").bytes(), new Uint8Array()),
    )
      .principals[0],
    "x",
  );
  // A certificate signed by another key than the one it names.
  // (The signature field is 4 + string "ssh-ed25519" + string(64 bytes).)
  const w = new SshWriter().raw(blob.subarray(0, blob.length - 4 - 83));
  assert.throws(
    () =>
      parseCertificate(
        w.string(generatePrivateKey("ed25519").sign(w.bytes())).bytes(),
      ),
    code("bad-signature"),
  );
});

Deno.test("certificate: authorizeCertificate follows sshd's rules", () => {
  const ca = testKey("ed25519");
  const user = testKey("ecdsa-p256").publicKey;
  const cert = signCertificate(ca, user, {
    type: "user",
    keyId: "ops",
    principals: ["alice", "ops"],
    criticalOptions: { "force-command": "uptime" },
    extensions: { "permit-pty": "" },
  });
  const line = ca.publicKey.toString();
  // TrustedUserCAKeys: the login name must be a principal.
  const t = authorizeCertificate([], cert, {
    username: "alice",
    trustedCaKeys: [ca.publicKey],
  });
  assert.deepEqual(t?.restrictions, {
    forceCommand: "uptime",
    pty: true,
    portForwarding: false,
    agentForwarding: false,
  });
  assert.equal(
    authorizeCertificate([], cert, {
      username: "root",
      trustedCaKeys: [ca.publicKey],
    }),
    null,
  );
  // cert-authority with principals= admits another login name.
  const reasons: string[] = [];
  const entries = parseAuthorizedKeys(
    [
      line, // not cert-authority: never admits certificates
      `cert-authority,principals="dba" ${line}`, // no shared principal
      `cert-authority,principals="ops",command="ls" ${line}`, // conflicting forced command
      `cert-authority,principals="ops",no-pty,from="127.0.0.1" ${line}`,
    ].join("\n"),
  );
  const a = authorizeCertificate(entries, cert, {
    username: "root",
    address: "127.0.0.1",
    onRefused: (reason, entry) => reasons.push(`${entry?.line}: ${reason}`),
  });
  assert.equal(a?.entry?.line, 4);
  assert.equal(a?.restrictions.pty, false);
  assert.equal(a?.restrictions.forceCommand, "uptime");
  assert.equal(reasons.length, 3, reasons.join("\n"));
  assert.match(reasons[0], /^1: .*without cert-authority/);
  assert.match(reasons[1], /^2: none of the certificate's principals/);
  assert.match(reasons[2], /^3: .*force-command .* differ/);
  assert.equal(
    authorizeCertificate(entries, cert, {
      username: "root",
      address: "10.1.1.1",
    }),
    null,
  );
  // A plain key line never admits the CA key's own plain login either.
  const plain = parseAuthorizedKeys(`cert-authority ${line}`);
  assert.equal(
    authorizeCertificate(plain, cert, { username: "bob" }),
    null,
  );
});

Deno.test("certificate: -V validity and -O options as ssh-keygen reads them", () => {
  const now = 1_800_000_000n;
  assert.deepEqual(parseValidity("always:forever", now), {
    validAfter: 0n,
    validBefore: CERT_FOREVER,
  });
  assert.deepEqual(parseValidity("-1d:+52w", now), {
    validAfter: now - 86400n,
    validBefore: now + 52n * 604800n,
  });
  assert.deepEqual(parseValidity("+1h30m", now), {
    validAfter: (now - 59n) / 60n * 60n,
    validBefore: now + 5400n,
  });
  assert.deepEqual(parseValidity("20300101Z:20300102123456Z", now), {
    validAfter: BigInt(Date.UTC(2030, 0, 1) / 1000),
    validBefore: BigInt(Date.UTC(2030, 0, 2, 12, 34, 56) / 1000),
  });
  assert.equal(parseValidity("0x10:0x20", now).validBefore, 32n);
  for (const bad of ["+1y", "20301301", "tomorrow", "+2d:-1d", ":"]) {
    assert.throws(
      () => parseValidity(bad, now),
      /fynx keygen: invalid|not after/,
    );
  }
  const o = parseCertOptions(
    ["no-pty", "force-command=id -u", "extension:x@y=1", "critical:z@y"],
    "user",
  );
  assert.deepEqual(o.critical, { "force-command": "id -u", "z@y": "" });
  assert.equal("permit-pty" in o.extensions, false);
  assert.equal(o.extensions["x@y"], "1");
  assert.deepEqual(
    parseCertOptions(["clear", "permit-pty"], "user").extensions,
    {
      "permit-pty": "",
    },
  );
  assert.throws(() => parseCertOptions(["bogus"], "user"), /unsupported/);
  assert.throws(
    () => parseCertOptions(["force-command=x"], "host"),
    /host certificates take no critical options/,
  );
});

/** `ssh-keygen -L` and `fynx keygen -L` in UTC, which must agree exactly. */
async function bothShow(path: string): Promise<[string, string]> {
  const env = { TZ: "UTC" };
  const theirs = await run(SSH_KEYGEN, ["-L", "-f", path], { env });
  assert.equal(theirs.code, 0, theirs.stderrText);
  const ours = await fynx(["keygen", "-L", "-f", path], { env });
  assert.equal(ours.code, 0, ours.stderrText);
  return [theirs.stdoutText, ours.stdoutText];
}

Deno.test({
  name: "certificate: round trips with ssh-keygen -s and -L",
  ignore: sshClientSkipReason !== null,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "fynx-cert-" });
    try {
      const keygen = async (name: string, ...args: string[]) => {
        const r = await run(SSH_KEYGEN, [
          "-q",
          "-N",
          "",
          "-C",
          name,
          "-f",
          `${dir}/${name}`,
          ...args,
        ]);
        assert.equal(r.code, 0, r.stderrText);
      };
      await keygen("ca_ed25519", "-t", "ed25519");
      await keygen("ca_rsa", "-t", "rsa", "-b", "2048");
      await keygen("ca_ecdsa", "-t", "ecdsa", "-b", "384");
      await keygen("user_ed25519", "-t", "ed25519");
      await keygen("user_ecdsa", "-t", "ecdsa");
      await keygen("user_rsa", "-t", "rsa", "-b", "2048");
      const cas = ["ca_ed25519", "ca_rsa", "ca_ecdsa"];
      const users = ["user_ed25519", "user_ecdsa", "user_rsa"];

      await t.step("ssh-keygen signs, we parse and show the same", async () => {
        const variants: string[][] = [
          [
            "-I",
            "alice@laptop",
            "-n",
            "alice,root",
            "-V",
            "-5m:+1d",
            "-z",
            "12345",
          ],
          [
            "-I",
            "restricted",
            "-n",
            "bob",
            "-O",
            "clear",
            "-O",
            "permit-pty",
            "-O",
            "force-command=uptime",
            "-O",
            "source-address=127.0.0.1/32,::1",
          ],
          [
            "-h",
            "-I",
            "host",
            "-n",
            "web1,*.example.com",
            "-V",
            "20250101:20350101",
          ],
          [
            "-I",
            "any",
            "-V",
            "always:20400101",
            "-O",
            "extension:custom@example.com=v",
            "-O",
            "critical:odd@example.com",
          ],
        ];
        for (const ca of cas) {
          for (const [i, user] of users.entries()) {
            const args = variants[(cas.indexOf(ca) + i) % variants.length];
            const pub = `${dir}/${user}.pub`;
            const r = await run(SSH_KEYGEN, [
              "-q",
              "-s",
              `${dir}/${ca}`,
              ...args,
              pub,
            ]);
            assert.equal(r.code, 0, r.stderrText);
            const path = `${dir}/${user}-cert.pub`;
            const cert = parseCertificateText(await Deno.readTextFile(path));
            assert.equal(cert.keyId, args[args.indexOf("-I") + 1]);
            assert.equal(cert.certType, args.includes("-h") ? "host" : "user");
            const [theirs, ours] = await bothShow(path);
            assert.equal(
              ours,
              theirs,
              `${ca} signing ${user} ${args.join(" ")}`,
            );
          }
        }
      });

      await t.step(
        "fynx keygen signs, ssh-keygen -L reads the same",
        async () => {
          for (const [i, ca] of cas.entries()) {
            const user = users[(i + 1) % users.length];
            const pub = `${dir}/${user}.pub`;
            const host = i === 1;
            const r = await fynx([
              "keygen",
              "-s",
              `${dir}/${ca}`,
              "-I",
              `ours ${ca}`,
              ...(host ? ["-h", "-n", "127.0.0.1,localhost"] : ["-n", "carol"]),
              "-V",
              "-1d:+4w",
              "-z",
              String(i + 7),
              ...(host ? [] : [
                "-O",
                "no-port-forwarding",
                "-O",
                "force-command=echo cert",
              ]),
              pub,
            ]);
            assert.equal(r.code, 0, r.stderrText);
            assert.match(
              r.stderrText,
              new RegExp(
                `Signed ${
                  host ? "host" : "user"
                } key .*${user}-cert\\.pub: id "ours ${ca}" serial ${
                  i + 7
                } for `,
              ),
            );
            const path = `${dir}/${user}-cert.pub`;
            const [theirs, ours] = await bothShow(path);
            assert.equal(ours, theirs);
            assert.match(theirs, new RegExp(`Key ID: "ours ${ca}"`));
            // The CA's public key from ssh-keygen matches what we recorded.
            const caPub =
              parsePrivateKey(await Deno.readTextFile(`${dir}/${ca}`))
                .publicKey;
            const cert: Certificate = parseCertificateText(
              await Deno.readTextFile(path),
            );
            assert.equal(cert.signatureKey.fingerprint(), caPub.fingerprint());
          }
        },
      );

      await t.step("bad input to -s and -L is one clear line", async () => {
        let r = await fynx([
          "keygen",
          "-s",
          `${dir}/ca_ed25519`,
          "-n",
          "x",
          `${dir}/user_ed25519.pub`,
        ]);
        assert.equal(r.code, 1);
        assert.match(r.stderrText, /needs a key id \(-I\)/);
        r = await fynx([
          "keygen",
          "-s",
          `${dir}/ca_ed25519`,
          "-I",
          "x",
          "-V",
          "+1y",
          `${dir}/user_ed25519.pub`,
        ]);
        assert.equal(r.code, 1);
        assert.match(r.stderrText, /invalid relative time/);
        r = await fynx(["keygen", "-L", "-f", `${dir}/user_ed25519.pub`]);
        assert.equal(r.code, 1);
        assert.match(r.stderrText, /is not a valid certificate/);
        r = await fynx([
          "keygen",
          "-s",
          `${dir}/missing`,
          "-I",
          "x",
          `${dir}/user_ed25519.pub`,
        ]);
        assert.equal(r.code, 1);
        assert.match(r.stderrText, /missing: No such file or directory/);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("certificate: signCertificate refuses nonsense", () => {
  const ca = generatePrivateKey("ed25519");
  const key = generatePrivateKey("ed25519").publicKey;
  assert.throws(
    () =>
      signCertificate(ca, key, {
        type: "user",
        keyId: "x",
        validAfter: 5n,
        validBefore: 5n,
      }),
    /validAfter must be earlier/,
  );
  assert.throws(
    () =>
      signCertificate(ca, key, {
        type: "host",
        keyId: "x",
        criticalOptions: { "force-command": "x" },
      }),
    /Host certificates take no critical options/,
  );
  assert.throws(
    () =>
      signCertificate(ca, key, {
        type: "user",
        keyId: "x",
        signatureAlgorithm: "rsa-sha2-256",
      }),
    /cannot sign with/,
  );
  assert.throws(
    () =>
      signCertificate(ca, key, { type: "user", keyId: "x", principals: [""] }),
    /Invalid principal/,
  );
});
