import assert from "node:assert/strict";
import {
  formatHostPort,
  generatePrivateKey,
  hashHostname,
  KnownHosts,
  type PublicKey,
} from "../keys/mod.ts";

const SSH_KEYGEN = "/usr/bin/ssh-keygen";
const haveKeygen = (() => {
  try {
    return Deno.statSync(SSH_KEYGEN).isFile;
  } catch {
    return false;
  }
})();

async function keygen(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(SSH_KEYGEN, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fynx-kh-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const ed1 = generatePrivateKey("ed25519").publicKey;
const ed2 = generatePrivateKey("ed25519").publicKey;
const ec1 = generatePrivateKey("ecdsa-p256").publicKey;
const ca = generatePrivateKey("ed25519").publicKey;

/** `type base64` without comment. */
function k(key: PublicKey): string {
  return key.toString().split(" ").slice(0, 2).join(" ");
}

Deno.test("known_hosts: formatHostPort and hashHostname", () => {
  assert.equal(formatHostPort("Example.COM", 22), "example.com");
  assert.equal(formatHostPort("example.com", 2222), "[example.com]:2222");
  assert.equal(formatHostPort("::1", 2200), "[::1]:2200");
  for (
    const bad of ["", "a b", "a,b", "*.x", "!x", "[x]", "a\nb", "#x", "|1|"]
  ) {
    assert.throws(() => formatHostPort(bad, 22), TypeError, bad);
  }
  assert.throws(() => formatHostPort(1 as unknown as string, 22), TypeError);
  for (const port of [0, -1, 65536, 1.5, NaN]) {
    assert.throws(() => formatHostPort("h", port), RangeError);
  }
  assert.throws(
    () => formatHostPort("h", "22" as unknown as number),
    TypeError,
  );
  const salt = new Uint8Array(20).fill(7);
  const h = hashHostname("example.com", salt);
  assert.equal(h, hashHostname("example.com", salt));
  assert.notEqual(h, hashHostname("example.org", salt));
  assert.notEqual(hashHostname("example.com"), hashHostname("example.com"));
  assert.match(h, /^\|1\|BwcH[A-Za-z0-9+/]{23}=\|[A-Za-z0-9+/]{27}=$/);
  assert.throws(() => hashHostname("h", new Uint8Array(16)), RangeError);
  assert.throws(() => hashHostname("", salt), TypeError);
});

Deno.test({
  name: "known_hosts: a file hashed by ssh-keygen -H is looked up correctly",
  ignore: !haveKeygen,
  fn: () =>
    withDir(async (dir) => {
      const file = `${dir}/known_hosts`;
      await Deno.writeTextFile(
        file,
        [
          "# hosts",
          `example.com ${k(ed1)}`,
          `[example.com]:2222 ${k(ed2)}`,
          `a.example.org,b.example.org ${k(ec1)} two names`,
          `*.wild.test ${k(ed1)}`,
          "",
        ].join("\n"),
      );
      const r = await keygen(["-H", "-f", file]);
      assert.equal(r.code, 0, r.stderr);
      const text = await Deno.readTextFile(file);
      const kh = KnownHosts.parse(text, {
        onInvalidLine: (e) => assert.fail(e.message),
      });
      // ssh-keygen -H writes one hashed line per name and leaves wildcards.
      assert.equal(kh.entries.filter((e) => e.hashed).length, 4);
      assert.equal(kh.entries.filter((e) => !e.hashed).length, 1);
      assert.equal(kh.lookup("example.com", 22, ed1).status, "known");
      assert.equal(kh.lookup("EXAMPLE.com", 22, ed1).status, "known");
      assert.equal(kh.lookup("example.com", 22, ed2).status, "changed");
      assert.equal(kh.lookup("example.com", 2222, ed2).status, "known");
      assert.equal(kh.lookup("example.com", 2222, ed1).status, "changed");
      assert.equal(kh.lookup("example.com", 2223, ed1).status, "unknown");
      assert.equal(kh.lookup("a.example.org", 22, ec1).status, "known");
      assert.equal(kh.lookup("b.example.org", 22, ec1).status, "known");
      assert.equal(kh.lookup("c.example.org", 22, ec1).status, "unknown");
      assert.equal(kh.lookup("x.wild.test", 22, ed1).status, "known");
      assert.equal(kh.find("b.example.org", 22)[0].comment, "two names");
    }),
});

Deno.test({
  name: "known_hosts: our hashed lines are found by ssh-keygen -F",
  ignore: !haveKeygen,
  fn: () =>
    withDir(async (dir) => {
      const file = `${dir}/known_hosts`;
      const kh = KnownHosts.parse("");
      const l1 = kh.add("example.com", 22, ed1, { hash: true });
      const l2 = kh.add("example.com", 2222, ec1, {
        hash: true,
        comment: "port",
      });
      const l3 = kh.add("plain.test", 22, ed2, { comment: "me@x" });
      assert.match(l1, /^\|1\|/);
      assert.match(l2, / port$/);
      assert.equal(l3, `plain.test ${k(ed2)} me@x`);
      await Deno.writeTextFile(file, kh.toString());
      let r = await keygen(["-F", "example.com", "-f", file]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.includes(l1), r.stdout);
      assert.ok(!r.stdout.includes(l2));
      r = await keygen(["-F", "[example.com]:2222", "-f", file]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.includes(l2), r.stdout);
      r = await keygen(["-F", "plain.test", "-f", file]);
      assert.ok(r.stdout.includes(l3), r.stdout);
      r = await keygen(["-F", "other.test", "-f", file]);
      assert.equal(r.code, 1);
      // And our find agrees.
      assert.deepEqual(kh.find("example.com", 2222).map((e) => e.text), [l2]);
    }),
});

Deno.test({
  name: "known_hosts: remove gives the same text as ssh-keygen -R",
  ignore: !haveKeygen,
  fn: () =>
    withDir(async (dir) => {
      const kh0 = KnownHosts.parse("# mixed\n\n");
      kh0.add("example.com", 22, ed1, { hash: true });
      kh0.add("example.com", 2222, ed1, { hash: true });
      const text = kh0.toString() + [
        `example.com ${k(ec1)} plain`,
        `*.example.com,!bad.example.com ${k(ed2)}`,
        `a.example.com,b.example.com ${k(ed1)}`,
        `[example.com]:2222 ${k(ed2)}`,
        `[*.example.com]:2222 ${k(ed2)}`,
        `@revoked example.com ${k(ed2)}`,
        `@cert-authority *.example.com ${k(ca)}`,
        `# trailing comment`,
        `other.test ${k(ed1)}`,
        "",
      ].join("\n");
      const cases: [string, number][] = [
        ["example.com", 22],
        ["example.com", 2222],
        ["a.example.com", 22],
        ["bad.example.com", 22],
        ["x.example.com", 2222],
        ["nowhere.test", 22],
      ];
      for (const [host, port] of cases) {
        const file = `${dir}/kh`;
        await Deno.writeTextFile(file, text);
        const r = await keygen(["-R", formatHostPort(host, port), "-f", file]);
        const theirs = await Deno.readTextFile(file);
        const ours = KnownHosts.parse(text).remove(host, port);
        assert.equal(ours.text, theirs, `${host}:${port}\n${r.stderr}`);
        const found = r.stdout.match(/^# Host .* found/gm)?.length ?? 0;
        assert.equal(ours.removed, found, `${host}:${port} ${r.stdout}`);
      }
      // The object is updated too: line numbers follow the new text.
      const kh = KnownHosts.parse(text);
      const { removed } = kh.remove("example.com", 22);
      assert.equal(removed, 2);
      assert.equal(kh.lookup("example.com", 22, ed1).status, "unknown");
      assert.equal(kh.lookup("other.test", 22, ed1).line, 11);
    }),
});

Deno.test("known_hosts: wildcards, negation and case", () => {
  const kh = KnownHosts.parse(
    [
      `*.Example.com,!bad*.example.com,10.0.0.? ${k(ed1)}`,
      `h?st ${k(ed2)}`,
      "",
    ].join("\n"),
  );
  assert.equal(kh.lookup("www.example.com", 22, ed1).status, "known");
  assert.equal(kh.lookup("a.b.EXAMPLE.com", 22, ed1).status, "known");
  assert.equal(kh.lookup("example.com", 22, ed1).status, "unknown");
  assert.equal(kh.lookup("bad1.example.com", 22, ed1).status, "unknown");
  assert.equal(kh.lookup("10.0.0.7", 22, ed1).status, "known");
  assert.equal(kh.lookup("10.0.0.17", 22, ed1).status, "unknown");
  assert.equal(kh.lookup("host", 22, ed2).status, "known");
  assert.equal(kh.lookup("hst", 22, ed2).status, "unknown");
  // A pattern without brackets does not name other ports, `*` does.
  assert.equal(kh.lookup("www.example.com", 2222, ed1).status, "unknown");
  const any = KnownHosts.parse(`*,!*:2200 ${k(ed1)}\n`);
  assert.equal(any.lookup("x", 2222, ed1).status, "known");
  assert.equal(any.lookup("x", 2200, ed1).status, "unknown");
  // Hostile patterns stay fast (no regex backtracking).
  const slow = KnownHosts.parse(`${"*a".repeat(500)}b ${k(ed1)}\n`);
  const t0 = performance.now();
  assert.equal(slow.lookup("a".repeat(250), 22, ed1).status, "unknown");
  assert.ok(performance.now() - t0 < 2000);
});

Deno.test("known_hosts: [host]:port entries", () => {
  const kh = KnownHosts.parse(
    [
      `[example.com]:2222 ${k(ed1)}`,
      `[*.example.org]:22000,[192.168.1.?]:* ${k(ed2)}`,
      `example.net ${k(ec1)}`,
      "",
    ].join("\n"),
  );
  assert.equal(kh.lookup("example.com", 2222, ed1).status, "known");
  assert.equal(kh.lookup("example.com", 22, ed1).status, "unknown");
  assert.equal(kh.lookup("a.example.org", 22000, ed2).status, "known");
  assert.equal(kh.lookup("a.example.org", 22001, ed2).status, "unknown");
  assert.equal(kh.lookup("192.168.1.5", 8022, ed2).status, "known");
  // Port 22 is written without brackets, so a bracketed pattern misses it.
  assert.equal(kh.lookup("192.168.1.5", 22, ed2).status, "unknown");
  assert.equal(kh.lookup("example.net", 22, ec1).status, "known");
  assert.equal(kh.lookup("example.net", 2222, ec1).status, "unknown");
  assert.equal(
    kh.add("Example.net", 2022, ed1),
    `[example.net]:2022 ${k(ed1)}`,
  );
  assert.equal(kh.lookup("example.net", 2022, ed1).line, 4);
});

Deno.test("known_hosts: @revoked wins, only for hosts it names", () => {
  const text = [
    `example.com ${k(ed1)}`,
    `example.com ${k(ed2)}`,
    `@revoked example.com,*.example.com ${k(ed1)}`,
    `other.test ${k(ed1)}`,
    "",
  ].join("\n");
  const kh = KnownHosts.parse(text);
  const r = kh.lookup("example.com", 22, ed1);
  assert.equal(r.status, "revoked");
  assert.equal(r.line, 3);
  assert.equal(r.matches.length, 3);
  assert.equal(kh.lookup("example.com", 22, ed2).status, "known");
  assert.equal(kh.lookup("www.example.com", 22, ed1).status, "revoked");
  // A revocation of another key does not make a host known.
  assert.equal(kh.lookup("www.example.com", 22, ed2).status, "unknown");
  assert.equal(kh.lookup("other.test", 22, ed1).status, "known");
  const all = KnownHosts.parse(`@revoked * ${k(ec1)}\nh ${k(ec1)}\n`);
  assert.equal(all.lookup("h", 2222, ec1).status, "revoked");
});

Deno.test("known_hosts: @cert-authority lines are kept apart", () => {
  const kh = KnownHosts.parse(
    [
      `@cert-authority *.example.com ${k(ca)} ca`,
      `@cert-authority *.example.com ${k(ed2)}`,
      `@revoked *.example.com ${k(ed2)}`,
      `@cert-authority *.example.com ssh-dss AAAAB3NzaC1kc3MAAAAA`,
      "",
    ].join("\n"),
  );
  // A CA key is not a host key.
  assert.equal(kh.lookup("www.example.com", 22, ca).status, "unknown");
  const cas = kh.certificateAuthorities("www.example.com", 22);
  assert.equal(cas.length, 1);
  assert.deepEqual(cas[0].blob, ca.blob);
  assert.equal(cas[0].comment, "ca");
  assert.equal(kh.certificateAuthorities("example.com", 22).length, 0);
  assert.equal(kh.find("www.example.com", 22).length, 4);
  assert.equal(kh.entries[3].key, null);
  assert.equal(kh.entries[0].marker, "cert-authority");
});

Deno.test("known_hosts: changed key and other key type", () => {
  const kh = KnownHosts.parse(
    [
      `# header`,
      `example.com ${k(ec1)}`,
      `example.com ${k(ed1)}`,
      `typed.test ${k(ec1)}`,
      "",
    ].join("\n"),
  );
  const changed = kh.lookup("example.com", 22, ed2);
  assert.equal(changed.status, "changed");
  // The offending line is the one with the same key type.
  assert.equal(changed.line, 3);
  assert.equal(changed.matches.length, 2);
  // Only an ECDSA key on record: an Ed25519 key is a change, not new.
  const other = kh.lookup("typed.test", 22, ed1);
  assert.equal(other.status, "changed");
  assert.equal(other.line, 4);
  assert.equal(kh.lookup("example.com", 22, ed1).line, 3);
  // A line whose type field lies about the blob never matches.
  const liar = KnownHosts.parse(
    `l.test ecdsa-sha2-nistp256 ${k(ed1).split(" ")[1]}\n`,
  );
  assert.equal(liar.entries[0].key, null);
  assert.equal(liar.lookup("l.test", 22, ed1).status, "changed");
});

Deno.test("known_hosts: invalid lines are reported and kept", () => {
  const seen: [number, string][] = [];
  const text = [
    "# comment",
    "   ",
    "@bogus host ssh-ed25519 AAAA",
    "host-only",
    `host ssh-ed25519 not*base64`,
    `|1|abc|def ${k(ed1)}`,
    `|2|${"A".repeat(27)}=|${"A".repeat(27)}= ${k(ed1)}`,
    `, ${k(ed1)}`,
    `good ${k(ed1)}\r`,
    "",
  ].join("\n");
  const kh = KnownHosts.parse(text, {
    onInvalidLine: (e, line, t) => {
      assert.ok(e instanceof SyntaxError);
      assert.match(e.message, new RegExp(`line ${line}`));
      seen.push([line, t]);
    },
  });
  assert.deepEqual(seen.map(([l]) => l), [3, 4, 5, 6, 7, 8]);
  assert.equal(kh.entries.length, 1);
  assert.equal(kh.lookup("good", 22, ed1).status, "known");
  assert.equal(kh.toString(), text);
  assert.throws(() => KnownHosts.parse(null as unknown as string), TypeError);
  assert.throws(
    () => kh.lookup("good", 22, null as unknown as PublicKey),
    TypeError,
  );
  assert.throws(
    () => kh.add("good", 22, ed1, { comment: "a\nb" }),
    TypeError,
  );
  assert.throws(() => kh.add("a b", 22, ed1), TypeError);
});

Deno.test("known_hosts: 1000 random and garbage lines never throw", () => {
  let x = 0x9e3779b9;
  const rand = (n: number): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
  const pieces = [
    "@revoked",
    "@cert-authority",
    "@",
    "|1|",
    "|",
    "[",
    "]:",
    "*",
    "?",
    "!",
    ",",
    " ",
    "\t",
    "#",
    "\r",
    "example.com",
    "[example.com]:2222",
    "ssh-ed25519",
    "ssh-rsa",
    "AAAA",
    "==",
    k(ed1),
    k(ec1),
    hashHostname("example.com"),
    hashHostname("[example.com]:2222"),
    "\u00e9\u{1F600}",
    "\0",
  ];
  const lines: string[] = [];
  for (let i = 0; i < 1000; i++) {
    let line = "";
    const n = rand(8);
    for (let j = 0; j < n; j++) {
      if (rand(4) === 0) {
        for (let c = rand(6); c > 0; c--) {
          line += String.fromCharCode(32 + rand(95));
        }
      } else {
        line += pieces[rand(pieces.length)];
      }
    }
    lines.push(line);
  }
  const text = lines.join("\n") + "\n";
  let invalid = 0;
  const kh = KnownHosts.parse(text, {
    onInvalidLine: (e) => {
      assert.ok(e instanceof SyntaxError);
      invalid++;
    },
  });
  assert.ok(invalid > 0);
  assert.ok(kh.entries.length > 0);
  assert.equal(kh.toString(), text);
  for (const [host, port] of [["example.com", 22], ["example.com", 2222]]) {
    for (const key of [ed1, ec1, ed2]) {
      kh.lookup(host as string, port as number, key);
    }
    kh.find(host as string, port as number);
    kh.certificateAuthorities(host as string, port as number);
  }
  const before = kh.entries.length;
  const { removed, text: after } = kh.remove("example.com", 22);
  assert.equal(kh.entries.length, before - removed);
  assert.equal(after, kh.toString());
  assert.equal(
    KnownHosts.parse(after).find("example.com", 22).filter((e) =>
      e.marker === null
    ).length,
    0,
  );
});
