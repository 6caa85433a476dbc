/**
 * Forwarding without a network: `-L`/`-R`/`-D` specs as OpenSSH's
 * `parse_forward()` reads them (bracketed IPv6, socket paths, the -o
 * forms), sshd's permission lists and patterns, the GatewayPorts bind
 * rules, the wire encodings and their bounds, and `fynx sshd -o` options.
 */
import assert from "node:assert/strict";
import { parseForwardArgs, parseForwardSpec } from "../cli/_forward.ts";
import { parseSshdForwardOptions } from "../cli/_forward_options.ts";
import { UsageError } from "../cli/_args.ts";
import {
  listenPermitted,
  matchPattern,
  openPermitted,
  parsePermissionList,
  parsePermitListen,
  parsePermitOpen,
} from "../forward/_policy.ts";
import { clientBindPlan, formatIpv6, serverBindPlan } from "../forward/_net.ts";
import {
  decodeAllocatedPort,
  decodeDirectStreamLocal,
  decodeTcpipForward,
  decodeTcpipOpen,
  encodeDirectStreamLocal,
  encodeTcpipOpen,
} from "../forward/_wire.ts";
import { serverForwarding } from "../forward/mod.ts";
import { SshWriter } from "../wire/writer.ts";

Deno.test("forward spec: -L forms", () => {
  assert.deepEqual(parseForwardSpec("L", "8080:intranet:80"), {
    kind: "L",
    text: "8080:intranet:80",
    listen: { port: 8080 },
    target: { hostname: "intranet", port: 80 },
  });
  assert.deepEqual(parseForwardSpec("L", "*:8080:intranet:80").listen, {
    hostname: "*",
    port: 8080,
  });
  const v6 = parseForwardSpec("L", "[::1]:8080:[fe80::1]:443");
  assert.deepEqual(v6.listen, { hostname: "::1", port: 8080 });
  assert.deepEqual(v6.target, { hostname: "fe80::1", port: 443 });
  assert.deepEqual(parseForwardSpec("L", "0:/run/app.sock"), {
    kind: "L",
    text: "0:/run/app.sock",
    listen: { port: 0 },
    target: { path: "/run/app.sock" },
  });
  assert.deepEqual(
    parseForwardSpec("L", "127.0.0.1:8080:/run/app.sock").listen,
    { hostname: "127.0.0.1", port: 8080 },
  );
  assert.deepEqual(parseForwardSpec("L", "/tmp/l.sock:db:5432"), {
    kind: "L",
    text: "/tmp/l.sock:db:5432",
    listen: { path: "/tmp/l.sock" },
    target: { hostname: "db", port: 5432 },
  });
  assert.deepEqual(parseForwardSpec("L", "/tmp/l.sock:/tmp/r.sock").target, {
    path: "/tmp/r.sock",
  });
});

Deno.test("forward spec: -R and -D forms", () => {
  assert.deepEqual(parseForwardSpec("R", "0:localhost:3000"), {
    kind: "R",
    text: "0:localhost:3000",
    listen: { port: 0 },
    target: { hostname: "localhost", port: 3000 },
  });
  assert.deepEqual(parseForwardSpec("R", "/tmp/r.sock:localhost:3000").listen, {
    path: "/tmp/r.sock",
  });
  assert.deepEqual(parseForwardSpec("D", "1080"), {
    kind: "D",
    text: "1080",
    listen: { port: 1080 },
  });
  assert.deepEqual(parseForwardSpec("D", "[::1]:1080").listen, {
    hostname: "::1",
    port: 1080,
  });
  assert.deepEqual(parseForwardSpec("D", "/tmp/socks.sock").listen, {
    path: "/tmp/socks.sock",
  });
});

Deno.test("forward spec: bad specs are usage errors (exit 255) naming the spec", () => {
  for (
    const [kind, text, word] of [
      ["L", "8080", "local"],
      ["L", "8080:host", "local"],
      ["L", "8080:host:0", "local"],
      ["L", "70000:host:80", "local"],
      ["L", "x:host:80", "local"],
      ["L", "[::1:8080:host:80", "local"],
      ["L", "a:b:c:d:e", "local"],
      ["L", "8080::80", "local"],
      ["R", "host:notaport:x:80", "remote"],
      ["D", "a:b:c", "dynamic"],
    ] as const
  ) {
    assert.throws(
      () => parseForwardSpec(kind, text),
      (e: unknown) =>
        e instanceof UsageError && e.code === 255 &&
        e.message.startsWith(`Bad ${word} forwarding specification '${text}'`),
      `${kind} ${text}`,
    );
  }
  assert.throws(
    () => parseForwardSpec("R", "8080"),
    /remote dynamic forwarding, -R \[bind:\]port, is not supported/,
  );
});

Deno.test("forward args: -o LocalForward/RemoteForward/DynamicForward, ExitOnForwardFailure, GatewayPorts", () => {
  const { config, rest } = parseForwardArgs(
    { "local-forward": ["1:a:2"], "no-command": true },
    [
      "LocalForward=8080 intranet:80",
      "remoteforward 9090 localhost:3000",
      "DynamicForward=1080",
      "ExitOnForwardFailure=yes",
      "GatewayPorts yes",
      "BatchMode=yes",
    ],
  );
  assert.deepEqual(rest, ["BatchMode=yes"]);
  assert.equal(config.noCommand, true);
  assert.equal(config.exitOnForwardFailure, true);
  assert.equal(config.gatewayPorts, true);
  assert.deepEqual(config.specs.map((s) => `${s.kind} ${s.text}`), [
    "L 1:a:2",
    "L 8080:intranet:80",
    "R 9090:localhost:3000",
    "D 1080",
  ]);
  assert.throws(
    () => parseForwardArgs({}, ["ExitOnForwardFailure=maybe"]),
    (e: unknown) => e instanceof UsageError && e.code === 255,
  );
});

Deno.test("fynx sshd -o forwarding options", () => {
  const { forwarding, rest } = parseSshdForwardOptions([
    "AllowTcpForwarding=local",
    "allowstreamlocalforwarding no",
    "GatewayPorts=clientspecified",
    "PermitOpen=127.0.0.1:80 [::1]:*",
    "PermitListen 8080 localhost:9090",
    "MaxAuthTries=3",
  ]);
  assert.deepEqual(rest, ["MaxAuthTries=3"]);
  assert.deepEqual(forwarding, {
    allowTcpForwarding: "local",
    allowStreamLocalForwarding: "no",
    gatewayPorts: "clientspecified",
    permitOpen: ["127.0.0.1:80", "[::1]:*"],
    permitListen: ["8080", "localhost:9090"],
  });
  assert.deepEqual(
    parseSshdForwardOptions(["DisableForwarding=yes"]).forwarding,
    { allowTcpForwarding: "no", allowStreamLocalForwarding: "no" },
  );
  assert.throws(
    () => parseSshdForwardOptions(["AllowTcpForwarding=sometimes"]),
    /unsupported option "sometimes" for AllowTcpForwarding/,
  );
  assert.throws(
    () => parseSshdForwardOptions(["GatewayPorts=maybe"]),
    /GatewayPorts/,
  );
  assert.throws(
    () => parseSshdForwardOptions(["PermitOpen=nohostport"]),
    /Bad PermitOpen entry "nohostport": expected host:port/,
  );
  assert.throws(
    () => parseSshdForwardOptions(["PermitOpen=any none"]),
    /PermitOpen any must appear alone/,
  );
  assert.throws(
    () => serverForwarding({ allowTcpForwarding: "maybe" as "yes" }),
    /Invalid allowTcpForwarding/,
  );
});

Deno.test("permitopen / PermitOpen matching follows sshd's open_match()", () => {
  const list = [
    parsePermitOpen("127.0.0.1:80"),
    parsePermitOpen("[::1]:*"),
    parsePermitOpen("*:443"),
  ];
  assert.deepEqual(list[1], { host: "::1", port: "*" });
  assert.ok(openPermitted(list, "127.0.0.1", 80));
  assert.ok(!openPermitted(list, "127.0.0.1", 81));
  assert.ok(!openPermitted(list, "localhost", 80)); // no name lookup
  assert.ok(openPermitted(list, "::1", 22));
  assert.ok(openPermitted(list, "example.org", 443));
  assert.ok(!openPermitted(list, "EXAMPLE.org", 80)); // exact, case-sensitive
  // A path matches only host "*" with port "*" (an entry cannot name a
  // path: hpdelim() splits at the "/").
  assert.ok(!openPermitted(list, "/run/app.sock", "path"));
  assert.throws(() => parsePermitOpen("/run/app.sock:*"), SyntaxError);
  assert.ok(!openPermitted([parsePermitOpen("*:80")], "/x.sock", "path"));
  assert.ok(openPermitted([parsePermitOpen("*:*")], "/x.sock", "path"));
  assert.ok(openPermitted(null, "anything", 1));
  assert.ok(!openPermitted([], "anything", 1));
  for (const bad of ["host", "host:0", "host:65536", ":80", "[::1]80", "h:x"]) {
    assert.throws(() => parsePermitOpen(bad), SyntaxError, bad);
  }
  assert.equal(parsePermissionList(["any"], false, "PermitOpen"), null);
  assert.deepEqual(parsePermissionList(["none"], false, "PermitOpen"), []);
  assert.equal(parsePermissionList(undefined, false, "PermitOpen"), null);
});

Deno.test("permitlisten / PermitListen matching follows sshd's remote_open_match()", () => {
  const list = [parsePermitListen("8080"), parsePermitListen("local*:9")];
  assert.deepEqual(list[0], { host: "*", port: 8080 });
  assert.ok(listenPermitted(list, "localhost", 8080));
  assert.ok(listenPermitted(list, "", 8080));
  assert.ok(!listenPermitted(list, "localhost", 0));
  assert.ok(listenPermitted(list, "LOCALHOST", 9));
  assert.ok(!listenPermitted(list, "127.0.0.1", 9));
  // sshd permits any Unix-socket listener once a list exists.
  assert.ok(listenPermitted(list, "", "path"));
  assert.ok(!listenPermitted([], "", "path"));
  assert.ok(matchPattern("abc", "a?c"));
  assert.ok(matchPattern("abc", "*"));
  assert.ok(matchPattern("a.b.c", "a*c"));
  assert.ok(!matchPattern("abc", "a*d"));
  assert.ok(matchPattern("", "*"));
  assert.ok(!matchPattern("", "?"));
});

Deno.test("GatewayPorts bind rules (channel_fwd_bind_addr)", () => {
  // Server side.
  assert.deepEqual(serverBindPlan("", "no"), { kind: "loopback" });
  assert.deepEqual(serverBindPlan("0.0.0.0", "no"), { kind: "loopback" });
  assert.deepEqual(serverBindPlan("::1", "no"), {
    kind: "address",
    address: "::1",
  });
  assert.deepEqual(serverBindPlan("127.0.0.1", "yes"), { kind: "wildcard" });
  assert.deepEqual(serverBindPlan("*", "clientspecified"), {
    kind: "wildcard",
  });
  assert.deepEqual(serverBindPlan("localhost", "clientspecified"), {
    kind: "loopback",
  });
  assert.deepEqual(serverBindPlan("192.0.2.1", "clientspecified"), {
    kind: "address",
    address: "192.0.2.1",
  });
  // Client side (-L, -D).
  assert.deepEqual(clientBindPlan(undefined, false), { kind: "loopback" });
  assert.deepEqual(clientBindPlan(undefined, true), { kind: "wildcard" });
  assert.deepEqual(clientBindPlan("*", false), { kind: "wildcard" });
  assert.deepEqual(clientBindPlan("localhost", true), { kind: "loopback" });
  assert.deepEqual(clientBindPlan("0.0.0.0", false), {
    kind: "address",
    address: "0.0.0.0",
  });
});

Deno.test("forward wire: encodings round-trip and hostile fields are refused", () => {
  const open = {
    host: "example.org",
    port: 443,
    originatorAddress: "192.0.2.7",
    originatorPort: 5555,
  };
  assert.deepEqual(
    decodeTcpipOpen(encodeTcpipOpen(open), "direct-tcpip"),
    open,
  );
  assert.equal(
    decodeDirectStreamLocal(encodeDirectStreamLocal("/run/x.sock")),
    "/run/x.sock",
  );
  const port70000 = new SshWriter().string("h").uint32(70000).string("o")
    .uint32(1).bytes();
  assert.throws(
    () => decodeTcpipOpen(port70000, "direct-tcpip"),
    /port 70000 is not within 0\.\.65535/,
  );
  const hugeHost = new SshWriter().uint32(0xffffffff).bytes();
  assert.throws(
    () => decodeTcpipOpen(hugeHost, "direct-tcpip"),
    /exceeds the limit of 1025/,
  );
  const trailing = new Uint8Array([...encodeTcpipOpen(open), 0]);
  assert.throws(() => decodeTcpipOpen(trailing, "direct-tcpip"));
  assert.deepEqual(
    decodeTcpipForward(
      new SshWriter().string("").uint32(0).bytes(),
      "tcpip-forward",
    ),
    { address: "", port: 0 },
  );
  assert.throws(() => decodeAllocatedPort(new Uint8Array([0, 0, 0, 0])));
  assert.throws(() => decodeAllocatedPort(new Uint8Array([0, 1])));
  assert.equal(decodeAllocatedPort(new Uint8Array([0, 0, 0x1f, 0x90])), 8080);
});

Deno.test("IPv6 text form (RFC 5952)", () => {
  const v6 = (groups: number[]) =>
    formatIpv6(new Uint8Array(groups.flatMap((g) => [g >> 8, g & 0xff])));
  assert.equal(v6([0, 0, 0, 0, 0, 0, 0, 1]), "::1");
  assert.equal(v6([0, 0, 0, 0, 0, 0, 0, 0]), "::");
  assert.equal(v6([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1]), "2001:db8::1:0:0:1");
  assert.equal(v6([0x2001, 0xdb8, 0, 1, 1, 1, 1, 1]), "2001:db8:0:1:1:1:1:1");
  assert.equal(v6([0xfe80, 0, 0, 0, 0, 0, 0, 0]), "fe80::");
});
