/**
 * authorized_keys options: parsing, matching, and enforcement by the
 * server, both with our client and with OpenSSH's `ssh`.
 */
import assert from "node:assert/strict";
import {
  addressAllowed,
  findAuthorizedKey,
  parseKeyOptions,
} from "../keys/authorized_key_options.ts";
import { parseAuthorizedKeys } from "../keys/mod.ts";
import { commandSessionHandler } from "../connection/mod.ts";
import { serve } from "../server.ts";
import { connectPair, testKey } from "./_helpers.ts";
import {
  knownHostsLine,
  run,
  SSH,
  sshArgs,
  sshClientSkipReason,
  sshKeygen,
} from "./_openssh.ts";

const decoder = new TextDecoder();

Deno.test("parseKeyOptions reads every option sshd documents", () => {
  const o = parseKeyOptions([
    'command="echo \\"hi\\""',
    'from="10.0.0.0/8,!10.1.2.3"',
    'environment="A=1"',
    'environment="B=x=y"',
    'expiry-time="20300102"',
    'permitopen="localhost:80"',
    'permitlisten="8080"',
    "no-pty",
    "no-port-forwarding",
    "no-agent-forwarding",
    "no-x11-forwarding",
    "no-user-rc",
  ]);
  assert.equal(o.command, 'echo "hi"');
  assert.deepEqual(o.from, ["10.0.0.0/8", "!10.1.2.3"]);
  assert.deepEqual(o.environment, [["A", "1"], ["B", "x=y"]]);
  assert.equal(o.expiryTime?.getFullYear(), 2030);
  assert.equal(o.expiryTime?.getMonth(), 0);
  assert.equal(o.expiryTime?.getDate(), 2);
  assert.deepEqual(o.permitOpen, ["localhost:80"]);
  assert.deepEqual(o.permitListen, ["8080"]);
  assert.equal(o.pty, false);
  assert.equal(o.portForwarding, false);
  assert.equal(o.agentForwarding, false);
  assert.equal(o.x11Forwarding, false);
  assert.equal(o.userRc, false);
  assert.equal(o.certAuthority, false);
});

Deno.test("restrict disables everything and later flags re-enable", () => {
  const o = parseKeyOptions(["restrict", "pty"]);
  assert.equal(o.pty, true);
  assert.equal(o.portForwarding, false);
  assert.equal(o.agentForwarding, false);
  // Position does not matter for restrict itself.
  assert.equal(parseKeyOptions(["pty", "restrict"]).pty, true);
  assert.equal(parseKeyOptions(["restrict"]).pty, false);
  const ca = parseKeyOptions(["cert-authority", 'principals="a,b"']);
  assert.equal(ca.certAuthority, true);
  assert.deepEqual(ca.principals, ["a", "b"]);
  assert.equal(
    parseKeyOptions(['expiry-time="203001021504Z"']).expiryTime?.toISOString(),
    "2030-01-02T15:04:00.000Z",
  );
});

Deno.test("parseKeyOptions rejects unknown and malformed options", () => {
  for (
    const bad of [
      ["no-such-option"],
      ["command=ls"],
      ['command="a"', 'command="b"'],
      ['environment="=x"'],
      ['environment="1A=x"'],
      ['expiry-time="2030"'],
      ['expiry-time="20300231"'],
      ["no-pty=yes"],
      ['from=""'],
    ]
  ) {
    assert.throws(() => parseKeyOptions(bad), SyntaxError, JSON.stringify(bad));
  }
});

Deno.test("addressAllowed: wildcards, negation, IPv4 and IPv6 CIDR", () => {
  assert.equal(addressAllowed(["127.0.0.1"], "127.0.0.1"), true);
  assert.equal(addressAllowed(["10.*"], "10.20.30.40"), true);
  assert.equal(addressAllowed(["10.?.0.1"], "10.5.0.1"), true);
  assert.equal(addressAllowed(["192.168.0.0/16"], "192.168.7.9"), true);
  assert.equal(addressAllowed(["192.168.0.0/16"], "192.169.0.1"), false);
  assert.equal(addressAllowed(["0.0.0.0/0", "!127.0.0.1"], "127.0.0.1"), false);
  assert.equal(addressAllowed(["2001:db8::/32"], "2001:db8:1::5"), true);
  assert.equal(addressAllowed(["2001:db8::/32"], "2001:db9::5"), false);
  assert.equal(addressAllowed(["::1"], "::1"), true);
  assert.equal(addressAllowed(["10.0.0.0/33"], "10.0.0.1"), false);
  assert.equal(addressAllowed([], "10.0.0.1"), false);
});

Deno.test("findAuthorizedKey: first usable entry, with reasons for the others", () => {
  const key = testKey("ed25519").publicKey;
  const other = testKey("ecdsa-p256").publicKey;
  const line = key.toString();
  const text = [
    `${other.toString()}`,
    `bogus-option ${line}`,
    `from="10.0.0.1" ${line}`,
    `expiry-time="20000101" ${line}`,
    `cert-authority ${line}`,
    `command="date",environment="X=1" ${line}`,
  ].join("\n");
  const reasons: string[] = [];
  const match = findAuthorizedKey(parseAuthorizedKeys(text), key, {
    address: "127.0.0.1",
    onRefused: (entry, reason) => reasons.push(`${entry.line}: ${reason}`),
  });
  assert.equal(match?.entry.line, 6);
  assert.deepEqual(match?.restrictions, {
    forceCommand: "date",
    pty: true,
    environment: { X: "1" },
    portForwarding: true,
    permitOpen: undefined,
    permitListen: undefined,
    agentForwarding: true,
  });
  const restricted = findAuthorizedKey(
    parseAuthorizedKeys(
      `restrict,port-forwarding,permitopen="db:5432",permitlisten="8080" ${line}`,
    ),
    key,
  );
  assert.deepEqual(restricted?.restrictions, {
    forceCommand: undefined,
    pty: false,
    environment: {},
    portForwarding: true,
    permitOpen: ["db:5432"],
    permitListen: ["8080"],
    agentForwarding: false,
  });
  assert.equal(reasons.length, 4, reasons.join("\n"));
  assert.match(reasons[0], /^2: .*bogus-option/);
  assert.match(reasons[1], /^3: from=/);
  assert.match(reasons[2], /^4: key expired/);
  assert.match(reasons[3], /^5: cert-authority/);
  assert.equal(
    findAuthorizedKey(parseAuthorizedKeys(text), testKey("rsa").publicKey),
    null,
  );
});

Deno.test("our server enforces command=, no-pty and environment= for our client", async () => {
  const key = testKey("ed25519");
  const entries = parseAuthorizedKeys(
    `command="echo forced:$SSH_ORIGINAL_COMMAND:$GREETING",no-pty,environment="GREETING=hello" ${key.publicKey.toString()}\n`,
  );
  const pair = await connectPair({
    password: undefined,
    publicKey: ({ key: k }) => {
      const m = findAuthorizedKey(entries, k, { address: "127.0.0.1" });
      return m ? { restrictions: m.restrictions } : false;
    },
    onSession: commandSessionHandler(),
  }, { password: undefined, privateKeys: [key] });
  try {
    const r = await pair.client.exec("rm -rf /tmp/nothing");
    assert.equal(
      decoder.decode(r.stdout),
      "forced:rm -rf /tmp/nothing:hello\n",
    );
    const session = await pair.client.openSession();
    await assert.rejects(
      session.requestPty({ columns: 80, rows: 24 }),
      /refused/,
    );
    await session.close();
  } finally {
    await pair.close();
  }
});

Deno.test({
  name: "OpenSSH ssh against our server honours each authorized_keys option",
  ignore: sshClientSkipReason !== null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "fynx-akopts-" });
    const hostKey = testKey("ed25519");
    // One user key per option set, so each ssh run picks its line.
    const users = {
      command: await sshKeygen(dir, "command", "ed25519"),
      nopty: await sshKeygen(dir, "nopty", "ed25519"),
      restrictPty: await sshKeygen(dir, "restrictpty", "ed25519"),
      env: await sshKeygen(dir, "env", "ed25519"),
      expired: await sshKeygen(dir, "expired", "ed25519"),
      from: await sshKeygen(dir, "from", "ed25519"),
      unknown: await sshKeygen(dir, "unknown", "ed25519"),
    };
    const text = [
      `command="echo forced [$SSH_ORIGINAL_COMMAND]" ${users.command.publicLine}`,
      `no-pty ${users.nopty.publicLine}`,
      `restrict,pty ${users.restrictPty.publicLine}`,
      `environment="FYNX_OPT=set-by-key" ${users.env.publicLine}`,
      `expiry-time="20000101" ${users.expired.publicLine}`,
      `from="10.9.9.9" ${users.from.publicLine}`,
      `frobnicate ${users.unknown.publicLine}`,
    ].join("\n") + "\n";
    const refusals: string[] = [];
    const server = serve({
      hostname: "127.0.0.1",
      port: 0,
      hostKeys: [hostKey],
      publicKey: ({ key, remoteAddress }) => {
        const m = findAuthorizedKey(parseAuthorizedKeys(text), key, {
          address: remoteAddress?.replace(/:\d+$/, ""),
          onRefused: (e, reason) => refusals.push(`${e.line}: ${reason}`),
        });
        return m ? { restrictions: m.restrictions } : false;
      },
      onSession: commandSessionHandler(),
    });
    const knownHosts = `${dir}/known_hosts`;
    await Deno.writeTextFile(
      knownHosts,
      knownHostsLine(
        "127.0.0.1",
        server.addr.port,
        hostKey.publicKey.toString(),
      ) + "\n",
    );
    const ssh = (identity: string, command: string[], flags: string[] = []) =>
      run(SSH, [
        ...sshArgs({
          port: server.addr.port,
          user: "root",
          knownHostsPath: knownHosts,
          identity,
          flags,
        }),
        ...command,
      ], { stdin: "" });
    try {
      let r = await ssh(users.command.path, ["id", "-u"]);
      assert.equal(r.code, 0, r.stderrText);
      assert.equal(r.stdoutText, "forced [id -u]\n");

      r = await ssh(users.nopty.path, ["tty"], ["-tt"]);
      // Our server refused the PTY; with -tt OpenSSH treats that as fatal.
      assert.match(r.stderrText, /PTY allocation request failed/);
      assert.equal(r.code, 255);

      r = await ssh(users.restrictPty.path, ["tty"], ["-tt"]);
      assert.match(r.stdoutText, /\/dev\/pts\//);

      r = await ssh(users.env.path, ["echo", "$FYNX_OPT"]);
      assert.equal(r.stdoutText, "set-by-key\n");

      for (const refused of [users.expired, users.from, users.unknown]) {
        r = await ssh(refused.path, ["true"]);
        assert.equal(r.code, 255);
        assert.match(r.stderrText, /Permission denied/);
      }
      assert.ok(
        refusals.some((x) => /key expired/.test(x)),
        refusals.join("\n"),
      );
      assert.ok(refusals.some((x) => /from=/.test(x)), refusals.join("\n"));
      assert.ok(
        refusals.some((x) => /frobnicate/.test(x)),
        refusals.join("\n"),
      );
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
