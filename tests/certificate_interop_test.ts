/**
 * Certificates against real OpenSSH: user-certificate login and host
 * certificates trusted through `@cert-authority`, in both directions —
 * `fynx ssh` and our library against `sshd` (TrustedUserCAKeys,
 * HostCertificate), side by side with OpenSSH's `ssh`; and OpenSSH's `ssh`
 * against `fynx sshd` (HostCertificate, TrustedUserCAKeys, cert-authority
 * with principals=, force-command).
 */
import assert from "node:assert/strict";
import { connect, withCertificate } from "../client.ts";
import {
  checkCertificate,
  parseCertificateText,
  parsePrivateKey,
  parsePublicKeyText,
} from "../keys/mod.ts";
import {
  run,
  skipOpenssh,
  SSH,
  SSH_KEYGEN,
  sshArgs,
  sshClientSkipReason,
  startSshd,
} from "./_openssh.ts";
import { fynx, startFynxSshd } from "./_fynx.ts";

async function keygen(dir: string, name: string, ...args: string[]) {
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
}

/** Signs `${dir}/${key}.pub` with ssh-keygen (`who` = "openssh") or fynx keygen. */
async function sign(
  who: "openssh" | "fynx",
  dir: string,
  ca: string,
  key: string,
  args: string[],
): Promise<string> {
  const all = ["-s", `${dir}/${ca}`, ...args, `${dir}/${key}.pub`];
  const r = who === "openssh"
    ? await run(SSH_KEYGEN, ["-q", ...all])
    : await fynx(["keygen", "-q", ...all]);
  assert.equal(r.code, 0, r.stderrText);
  return `${dir}/${key}-cert.pub`;
}

Deno.test({
  name: "certificates: fynx ssh and OpenSSH ssh against a real sshd",
  ignore: skipOpenssh("certificates against sshd"),
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "fynx-certs-" });
    try {
      await keygen(dir, "ca", "-t", "ed25519");
      await keygen(dir, "host", "-t", "ed25519");
      await keygen(dir, "user", "-t", "ecdsa");
      await keygen(dir, "stranger", "-t", "ed25519");
      // Our keygen certifies sshd's host key (sshd checks it at startup);
      // ssh-keygen certifies the user key.
      const hostCert = await sign("fynx", dir, "ca", "host", [
        "-h",
        "-I",
        "test sshd",
        "-n",
        "127.0.0.1,localhost",
        "-V",
        "-5m:+1h",
      ]);
      await sign("openssh", dir, "ca", "user", [
        "-I",
        "root's cert",
        "-n",
        "root",
        "-V",
        "-5m:+1h",
      ]);
      await sign("openssh", dir, "ca", "stranger", ["-I", "x", "-n", "nobody"]);
      const caLine = (await Deno.readTextFile(`${dir}/ca.pub`)).trim();
      const knownHosts = `${dir}/known_hosts`;
      await Deno.writeTextFile(knownHosts, `@cert-authority * ${caLine}\n`);
      await using sshd = await startSshd({
        hostKeyTypes: [],
        // No authorized_keys entry: only the certificate can log in.
        authorizedKeys: [],
        config: [
          `HostKey ${dir}/host`,
          `HostCertificate ${hostCert}`,
          `TrustedUserCAKeys ${dir}/ca.pub`,
        ],
      });

      const fynxSsh = (identity: string, kh: string, extra: string[] = []) =>
        fynx([
          "ssh",
          "-p",
          String(sshd.port),
          "-i",
          `${dir}/${identity}`,
          "-o",
          `UserKnownHostsFile=${kh}`,
          "-o",
          "BatchMode=yes",
          ...extra,
          "root@127.0.0.1",
          "echo cert-ok",
        ], { timeout: 30_000 });
      const opensshSsh = (identity: string, kh: string, strict = "yes") =>
        run(SSH, [
          ...sshArgs({
            port: sshd.port,
            user: "root",
            knownHostsPath: kh,
            identity: `${dir}/${identity}`,
            options: { StrictHostKeyChecking: strict },
          }),
          "echo cert-ok",
        ], { timeout: 30_000 });

      await t.step(
        "user certificate login, host certificate via @cert-authority",
        async () => {
          const ours = await fynxSsh("user", knownHosts, ["-v"]);
          assert.equal(ours.code, 0, ours.stderrText);
          assert.equal(ours.stdoutText, "cert-ok\n");
          assert.match(
            ours.stderrText,
            /Will attempt certificate: .*user-cert\.pub/,
          );
          assert.match(
            ours.stderrText,
            /matches the ED25519-CERT host certificate/,
          );
          const theirs = await opensshSsh("user", knownHosts);
          assert.equal(theirs.code, 0, theirs.stderrText);
          assert.equal(theirs.stdoutText, "cert-ok\n");
          // Neither client wrote a plain key: the CA vouched for the host.
          assert.equal(
            await Deno.readTextFile(knownHosts),
            `@cert-authority * ${caLine}\n`,
          );
          assert.match(
            sshd.log(),
            /Accepted publickey for root .*ECDSA-CERT .*ID root's cert/,
          );
        },
      );

      await t.step(
        "the library logs in with withCertificate and sees the host certificate",
        async () => {
          const key = parsePrivateKey(await Deno.readTextFile(`${dir}/user`));
          const cert = parseCertificateText(
            await Deno.readTextFile(`${dir}/user-cert.pub`),
          );
          const ca = parsePublicKeyText(caLine);
          const client = await connect({
            hostname: "127.0.0.1",
            port: sshd.port,
            username: "root",
            privateKeys: [withCertificate(key, cert)],
            verifyHostKey: (_key, info) => {
              if (!info.certificate) return false;
              checkCertificate(info.certificate, {
                type: "host",
                principal: "127.0.0.1",
                trustedCa: (k) => k.fingerprint() === ca.fingerprint(),
              });
              return true;
            },
          });
          try {
            assert.equal(
              client.algorithms.hostKey,
              "ssh-ed25519-cert-v01@openssh.com",
            );
            assert.equal(client.hostCertificate?.keyId, "test sshd");
            const r = await client.exec("echo lib-ok");
            assert.equal(new TextDecoder().decode(r.stdout), "lib-ok\n");
          } finally {
            await client.close();
          }
        },
      );

      await t.step(
        "a certificate for another principal is refused by sshd",
        async () => {
          const ours = await fynxSsh("stranger", knownHosts);
          assert.equal(ours.code, 255);
          assert.match(ours.stderrText, /Permission denied/);
          const theirs = await opensshSsh("stranger", knownHosts);
          assert.equal(theirs.code, 255);
          assert.match(theirs.stderrText, /Permission denied/);
        },
      );

      await t.step(
        "without @cert-authority, both fall back to the plain host key",
        async () => {
          const empty = `${dir}/known_hosts_empty`;
          await Deno.writeTextFile(empty, "");
          const ours = await fynxSsh("user", empty, [
            "-o",
            "StrictHostKeyChecking=yes",
          ]);
          assert.equal(ours.code, 255);
          assert.match(
            ours.stderrText,
            /No ED25519 host key is known for \[127\.0\.0\.1\]:\d+/,
          );
          const theirs = await opensshSsh("user", empty);
          assert.equal(theirs.code, 255);
          assert.match(
            theirs.stderrText,
            /No ED25519 host key is known for \[127\.0\.0\.1\]:\d+/,
          );
          // accept-new records the plain key, as ssh does.
          const added = await fynxSsh("user", empty, [
            "-o",
            "StrictHostKeyChecking=accept-new",
          ]);
          assert.equal(added.code, 0, added.stderrText);
          const hostPub = (await Deno.readTextFile(`${dir}/host.pub`)).split(
            " ",
          ).slice(0, 2).join(" ");
          assert.equal(
            (await Deno.readTextFile(empty)).trim(),
            `[127.0.0.1]:${sshd.port} ${hostPub}`,
          );
        },
      );

      await t.step(
        "a host certificate for another name fails when its CA is trusted",
        async () => {
          const wrong = `${dir}/known_hosts_wrong`;
          await Deno.copyFile(knownHosts, wrong);
          await keygen(dir, "host2", "-t", "ed25519");
          const cert2 = await sign("openssh", dir, "ca", "host2", [
            "-h",
            "-I",
            "other",
            "-n",
            "db.example.com",
          ]);
          await using other = await startSshd({
            hostKeyTypes: [],
            authorizedKeys: [],
            config: [
              `HostKey ${dir}/host2`,
              `HostCertificate ${cert2}`,
              `TrustedUserCAKeys ${dir}/ca.pub`,
            ],
          });
          const ours = await fynx([
            "ssh",
            "-p",
            String(other.port),
            "-i",
            `${dir}/user`,
            "-o",
            `UserKnownHostsFile=${wrong}`,
            "-o",
            "BatchMode=yes",
            "root@127.0.0.1",
            "true",
          ], { timeout: 30_000 });
          assert.equal(ours.code, 255);
          assert.match(
            ours.stderrText,
            /Certificate invalid: .*not valid for host "127\.0\.0\.1"/,
          );
          assert.match(ours.stderrText, /Host key verification failed\./);
          const theirs = await run(SSH, [
            ...sshArgs({
              port: other.port,
              user: "root",
              knownHostsPath: wrong,
              identity: `${dir}/user`,
            }),
            "true",
          ], { timeout: 30_000 });
          assert.equal(theirs.code, 255);
          assert.match(theirs.stderrText, /Host key verification failed/);
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "certificates: OpenSSH ssh against fynx sshd",
  ignore: sshClientSkipReason !== null,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "fynx-certs-srv-" });
    let sshd: Awaited<ReturnType<typeof startFynxSshd>> | null = null;
    try {
      await keygen(dir, "ca", "-t", "rsa", "-b", "2048");
      await keygen(dir, "ca2", "-t", "ed25519");
      await keygen(dir, "host", "-t", "ed25519");
      for (const u of ["alice", "forced", "ops", "expired"]) {
        await keygen(dir, u, "-t", "ed25519");
      }
      // ssh-keygen certifies our host key; fynx keygen the user keys.
      const hostCert = await sign("openssh", dir, "ca", "host", [
        "-h",
        "-I",
        "fynx sshd",
        "-n",
        "127.0.0.1",
      ]);
      await sign("fynx", dir, "ca", "alice", ["-I", "alice", "-n", "alice"]);
      await sign("fynx", dir, "ca", "forced", [
        "-I",
        "forced",
        "-n",
        "alice",
        "-O",
        "force-command=echo forced by certificate",
      ]);
      await sign("fynx", dir, "ca2", "ops", ["-I", "ops", "-n", "ops,deploy"]);
      await sign("fynx", dir, "ca", "expired", [
        "-I",
        "old",
        "-n",
        "alice",
        "-V",
        "20200101:20200102",
      ]);
      const caLine = (await Deno.readTextFile(`${dir}/ca.pub`)).trim();
      const ca2Line = (await Deno.readTextFile(`${dir}/ca2.pub`)).trim();
      const authorized = `${dir}/authorized_keys`;
      await Deno.writeTextFile(
        authorized,
        `cert-authority,principals="deploy" ${ca2Line}\n`,
      );
      const knownHosts = `${dir}/known_hosts`;
      await Deno.writeTextFile(knownHosts, `@cert-authority * ${caLine}\n`);
      sshd = await startFynxSshd([
        "--listen",
        "127.0.0.1:0",
        "--host-key",
        `${dir}/host`,
        "--authorized-keys",
        authorized,
        "-o",
        `HostCertificate=${hostCert}`,
        "-o",
        `TrustedUserCAKeys=${dir}/ca.pub`,
      ]);
      const port = sshd.port;
      const ssh = (identity: string, user: string, command: string) =>
        run(SSH, [
          ...sshArgs({
            port,
            user,
            knownHostsPath: knownHosts,
            identity: `${dir}/${identity}`,
          }),
          command,
        ], { timeout: 30_000 });

      await t.step(
        "TrustedUserCAKeys: login with a user certificate; our host certificate is trusted",
        async () => {
          const r = await ssh("alice", "alice", "echo hello");
          assert.equal(r.code, 0, r.stderrText);
          assert.equal(r.stdoutText, "hello\n");
          assert.match(sshd!.log(), /accepted certificate ID "alice" serial 0/);
        },
      );

      await t.step("the certificate's force-command runs instead", async () => {
        const r = await ssh("forced", "alice", "echo not this");
        assert.equal(r.code, 0, r.stderrText);
        assert.equal(r.stdoutText, "forced by certificate\n");
      });

      await t.step(
        "cert-authority with principals= admits another login name",
        async () => {
          const r = await ssh("ops", "www", "echo via ca2");
          assert.equal(r.code, 0, r.stderrText);
          assert.equal(r.stdoutText, "via ca2\n");
          assert.match(
            sshd!.log(),
            /accepted certificate ID "ops" .* via .*authorized_keys:1/,
          );
        },
      );

      await t.step(
        "wrong principal and expired certificates are refused",
        async () => {
          let r = await ssh("alice", "bob", "true");
          assert.equal(r.code, 255);
          assert.match(r.stderrText, /Permission denied/);
          r = await ssh("expired", "alice", "true");
          assert.equal(r.code, 255);
          assert.match(r.stderrText, /Permission denied/);
          assert.match(
            sshd!.log(),
            /certificate "old" serial 0 refused: .*expired/,
          );
        },
      );

      await t.step(
        "fynx ssh with a CertificateFile against fynx sshd",
        async () => {
          // Only -o CertificateFile names the certificate now.
          const moved = `${dir}/elsewhere.cert`;
          await Deno.rename(`${dir}/ops-cert.pub`, moved);
          const r = await fynx([
            "ssh",
            "-p",
            String(port),
            "-i",
            `${dir}/ops`,
            "-o",
            `CertificateFile=${moved}`,
            "-o",
            `UserKnownHostsFile=${knownHosts}`,
            "-o",
            "BatchMode=yes",
            "deploy@127.0.0.1",
            "echo both ours",
          ], { timeout: 30_000 });
          assert.equal(r.code, 0, r.stderrText);
          assert.equal(r.stdoutText, "both ours\n");
        },
      );
    } finally {
      await sshd?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
