/**
 * Our client against our server: every cipher x MAC, every KEX x host key,
 * over an in-memory duplex and over TCP.
 */
import assert from "node:assert/strict";
import {
  CIPHER_NAMES,
  cipherInfo,
  MAC_NAMES,
} from "../transport/cipher/mod.ts";
import { KEX_NAMES } from "../transport/kex/mod.ts";
import { commandSessionHandler } from "../connection/mod.ts";
import { AuthError, DisconnectError, HostKeyError } from "../errors.ts";
import { DisconnectReason } from "../wire/messages.ts";
import { connect } from "../client.ts";
import { acceptConnection } from "../server.ts";
import { memoryDuplexPair } from "../transport/duplex.ts";
import {
  connectPair,
  pseudoRandomBytes,
  sha256hex,
  testKey,
} from "./_helpers.ts";

const decoder = new TextDecoder();

/** A server session handler that echoes stdin to stdout and exits 0. */
const echoHandler = commandSessionHandler();

for (const via of ["memory", "tcp"] as const) {
  for (const cipher of CIPHER_NAMES) {
    const macs = cipherInfo(cipher).aead ? [null] : MAC_NAMES;
    for (const mac of macs) {
      Deno.test(`exec over ${via} with ${cipher}${mac ? " + " + mac : ""}`, async () => {
        const algorithms = { cipher: [cipher], ...(mac ? { mac: [mac] } : {}) };
        const pair = await connectPair({ algorithms, onSession: echoHandler }, {
          algorithms,
        }, via);
        try {
          assert.equal(pair.client.algorithms.cipherC2S, cipher);
          assert.equal(pair.client.algorithms.macS2C, mac);
          const payload = pseudoRandomBytes(300_000, 7);
          const result = await pair.client.exec("cat; echo done >&2; exit 3", {
            stdin: payload,
          });
          assert.equal(result.code, 3);
          assert.equal(sha256hex(result.stdout), sha256hex(payload));
          assert.equal(decoder.decode(result.stderr), "done\n");
        } finally {
          await pair.close();
        }
      });
    }
  }
}

const hostKeyTypes = [
  ["ed25519", "ssh-ed25519"],
  ["ecdsa-p256", "ecdsa-sha2-nistp256"],
  ["ecdsa-p384", "ecdsa-sha2-nistp384"],
  ["ecdsa-p521", "ecdsa-sha2-nistp521"],
  ["rsa", "rsa-sha2-512"],
  ["rsa", "rsa-sha2-256"],
] as const;

for (const via of ["memory", "tcp"] as const) {
  for (const kex of KEX_NAMES) {
    for (const [keyType, hostKeyAlg] of hostKeyTypes) {
      Deno.test(`handshake over ${via} with ${kex} and ${hostKeyAlg} host key`, async () => {
        const algorithms = { kex: [kex], hostKey: [hostKeyAlg] };
        const pair = await connectPair(
          { algorithms, hostKeys: [testKey(keyType)], onSession: echoHandler },
          { algorithms },
          via,
        );
        try {
          assert.equal(pair.client.algorithms.kex, kex);
          assert.equal(pair.client.algorithms.hostKey, hostKeyAlg);
          const result = await pair.client.exec("echo ok");
          assert.equal(decoder.decode(result.stdout), "ok\n");
        } finally {
          await pair.close();
        }
      });
    }
  }
}

Deno.test("connect() rejects a host key the callback refuses", async () => {
  const [a, b] = memoryDuplexPair();
  const server = await acceptConnection(b, {
    hostKeys: [testKey("ed25519")],
    password: () => true,
  });
  await assert.rejects(
    connect({
      transport: a,
      username: "u",
      password: "p",
      verifyHostKey: () => false,
    }),
    HostKeyError,
  );
  await server.closed;
  await server.authenticated.catch(() => {});
});

Deno.test("connect() rejects every host key when no callback is given", async () => {
  const [a, b] = memoryDuplexPair();
  const server = await acceptConnection(b, {
    hostKeys: [testKey("ed25519")],
    password: () => true,
  });
  await assert.rejects(
    connect({ transport: a, username: "u", password: "p" }),
    /no verifyHostKey callback/,
  );
  await server.closed;
  await server.authenticated.catch(() => {});
});

Deno.test("wrong password gives AuthError listing the methods", async () => {
  const err = await connectPair({}, { password: "nope", passwordAttempts: 1 })
    .then(
      () => null,
      (e) => e,
    );
  assert.ok(err instanceof AuthError, String(err));
  assert.deepEqual([...err.methods], ["password"]);
});

Deno.test("publickey auth with every user key type", async () => {
  for (
    const type of [
      "ed25519",
      "ecdsa-p256",
      "ecdsa-p384",
      "ecdsa-p521",
      "rsa",
    ] as const
  ) {
    const key = testKey(type);
    let seen = "";
    const pair = await connectPair({
      password: undefined,
      publicKey: ({ key: k }) => {
        seen = k.fingerprint();
        return k.fingerprint() === key.publicKey.fingerprint();
      },
    }, { password: undefined, privateKeys: [key] });
    try {
      assert.equal(seen, key.publicKey.fingerprint());
      assert.equal(
        pair.server.info.auth?.key?.fingerprint(),
        key.publicKey.fingerprint(),
      );
      assert.deepEqual(pair.server.info.auth?.methods, ["publickey"]);
    } finally {
      await pair.close();
    }
  }
});

Deno.test("publickey auth with an asynchronous signer (agent-style)", async () => {
  const key = testKey("rsa");
  let signedWith = "";
  const signer = {
    publicKey: key.publicKey,
    async sign(data: Uint8Array, algorithm?: string) {
      await new Promise((r) => setTimeout(r, 5));
      signedWith = algorithm ?? "";
      return key.sign(data, algorithm);
    },
  };
  const pair = await connectPair({
    password: undefined,
    publicKey: ({ key: k }) => k.fingerprint() === key.publicKey.fingerprint(),
  }, { password: undefined, privateKeys: [signer] });
  // The server announced server-sig-algs, so RSA signs with SHA-512.
  assert.equal(signedWith, "rsa-sha2-512");
  assert.equal(
    pair.server.info.auth?.key?.fingerprint(),
    key.publicKey.fingerprint(),
  );
  await pair.close();
});

Deno.test("publickey auth skips a refused key and uses the next", async () => {
  const good = testKey("ed25519");
  const bad = testKey("ecdsa-p256");
  const pair = await connectPair({
    password: undefined,
    publicKey: ({ key }) => key.fingerprint() === good.publicKey.fingerprint(),
  }, { password: undefined, privateKeys: [bad, good] });
  assert.equal(
    pair.server.info.auth?.key?.fingerprint(),
    good.publicKey.fingerprint(),
  );
  await pair.close();
});

Deno.test("keyboard-interactive auth with two prompts", async () => {
  const pair = await connectPair({
    password: undefined,
    keyboardInteractive: async ({ prompt }) => {
      const answers = await prompt({
        instruction: "two questions",
        prompts: [{ prompt: "Name: ", echo: true }, {
          prompt: "Code: ",
          echo: false,
        }],
      });
      return answers[0] === "alice" && answers[1] === "42";
    },
  }, {
    password: undefined,
    keyboardInteractive: (c) =>
      c.prompts.map((p) => p.prompt === "Name: " ? "alice" : "42"),
  });
  assert.deepEqual(pair.server.info.auth?.methods, ["keyboard-interactive"]);
  await pair.close();
});

Deno.test("two-factor: publickey then password (partial success)", async () => {
  const key = testKey("ed25519");
  const pair = await connectPair({
    authMethods: [["publickey", "password"]],
    publicKey: ({ key: k }) => k.fingerprint() === key.publicKey.fingerprint(),
  }, { privateKeys: [key] });
  assert.deepEqual(pair.server.info.auth?.methods, ["publickey", "password"]);
  await pair.close();
});

Deno.test("password change request: the client sets a new password", async () => {
  let current = "old-secret";
  let asked = "";
  const pair = await connectPair({
    password: ({ password }) =>
      password === current ? "change-required" : false,
    changePassword: ({ oldPassword, newPassword }) => {
      if (oldPassword !== current || newPassword.length < 8) return false;
      current = newPassword;
      return true;
    },
  }, {
    password: "old-secret",
    onPasswordChange: (prompt) => {
      asked = prompt;
      return "new-secret-123";
    },
  });
  assert.equal(asked, "Password expired; choose a new one");
  assert.equal(current, "new-secret-123");
  assert.deepEqual(pair.server.info.auth?.methods, ["password"]);
  await pair.close();
});

Deno.test("password change request without a handler fails with AuthError", async () => {
  const err = await connectPair({ password: () => "change-required" }, {
    password: "x",
  }).then(() => null, (e) => e);
  assert.ok(err instanceof AuthError, String(err));
  assert.match(err.message, /requires a password change/);
});

Deno.test("banner reaches the client", async () => {
  let banner = "";
  const pair = await connectPair({ banner: "Welcome\r\n" }, {
    onBanner: (b) => (banner = b),
  });
  assert.equal(banner, "Welcome\r\n");
  await pair.close();
});

Deno.test("rekey in both directions mid-transfer loses nothing", async () => {
  const pair = await connectPair({
    onSession: echoHandler,
    rekeyBytes: 256 * 1024,
  }, { rekeyBytes: 300 * 1024 });
  try {
    const payload = pseudoRandomBytes(4 * 1024 * 1024, 3);
    const result = await pair.client.exec("cat", { stdin: payload });
    assert.equal(sha256hex(result.stdout), sha256hex(payload));
    assert.ok(
      pair.client.transport.kexCount > 5,
      `only ${pair.client.transport.kexCount} key exchanges`,
    );
    await pair.client.rekey();
    await pair.server.transport.rekey();
    const again = await pair.client.exec("echo still here");
    assert.equal(decoder.decode(again.stdout), "still here\n");
  } finally {
    await pair.close();
  }
});

Deno.test("rekeyInterval: keys are replaced on time, idle or not", async () => {
  // The shared clock wakes at most once a second; a packet sent after the
  // deadline but before the clock fires waits for new keys all the same.
  const pair = await connectPair({ onSession: echoHandler }, {
    rekeyInterval: 200,
  });
  try {
    const first = await pair.client.exec("echo one");
    assert.equal(decoder.decode(first.stdout), "one\n");
    const before = pair.client.transport.kexCount;
    await new Promise((r) => setTimeout(r, 300));
    const second = await pair.client.exec("echo two");
    assert.equal(decoder.decode(second.stdout), "two\n");
    assert.ok(
      pair.client.transport.kexCount > before,
      `kexCount stayed ${before}`,
    );
    assert.equal(
      pair.server.transport.kexCount,
      pair.client.transport.kexCount,
    );
    // Idle: the clock rekeys on its own (within its 1 s granularity).
    const third = pair.client.transport.kexCount;
    const deadline = Date.now() + 5000;
    while (pair.client.transport.kexCount === third) {
      assert.ok(Date.now() < deadline, "an idle connection never rekeyed");
      await new Promise((r) => setTimeout(r, 50));
    }
    const after = await pair.client.exec("echo three");
    assert.equal(decoder.decode(after.stdout), "three\n");
  } finally {
    await pair.close();
  }
});

Deno.test("strict kex resets sequence numbers after each NEWKEYS", async () => {
  const pair = await connectPair({ onSession: echoHandler });
  try {
    await pair.client.rekey();
    // Right after a rekey only a few packets have flowed under the new keys.
    const { send, receive } = pair.client.transport.sequenceNumbers;
    assert.ok(send < 4 && receive < 4, `seq send=${send} receive=${receive}`);
  } finally {
    await pair.close();
  }
});

Deno.test("zlib@openssh.com compression round trip", async () => {
  const algorithms = { compression: ["zlib@openssh.com"] };
  const pair = await connectPair({ algorithms, onSession: echoHandler }, {
    algorithms,
  });
  try {
    assert.equal(pair.client.algorithms.compC2S, "zlib@openssh.com");
    const payload = new TextEncoder().encode("compressible ".repeat(100_000));
    const result = await pair.client.exec("cat", { stdin: payload });
    assert.equal(sha256hex(result.stdout), sha256hex(payload));
  } finally {
    await pair.close();
  }
});

Deno.test("zlib@openssh.com survives many rekeys in both directions", async () => {
  const algorithms = { compression: ["zlib@openssh.com"] };
  const pair = await connectPair(
    { algorithms, onSession: echoHandler, rekeyBytes: 64 * 1024 },
    { algorithms, rekeyBytes: 96 * 1024 },
  );
  try {
    // Incompressible data, so the byte counters really cross the limits.
    const payload = pseudoRandomBytes(2 * 1024 * 1024, 11);
    const result = await pair.client.exec("cat", { stdin: payload });
    assert.equal(sha256hex(result.stdout), sha256hex(payload));
    assert.ok(pair.client.transport.kexCount > 10);
  } finally {
    await pair.close();
  }
});

Deno.test("zlib (pre-auth) compression round trip", async () => {
  const algorithms = { compression: ["zlib"] };
  const pair = await connectPair({ algorithms, onSession: echoHandler }, {
    algorithms,
  });
  try {
    const result = await pair.client.exec("echo hi");
    assert.equal(decoder.decode(result.stdout), "hi\n");
  } finally {
    await pair.close();
  }
});

Deno.test("keepalives are answered while the server is responsive", async () => {
  const pair = await connectPair({}, {
    keepaliveInterval: 50,
    keepaliveCountMax: 2,
  });
  try {
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(pair.client.transport.isClosed, false);
  } finally {
    await pair.close();
  }
});

Deno.test("a server that stops answering is dropped after the missed keepalives", async () => {
  const [a, b] = memoryDuplexPair();
  let silent = false;
  // Swallows everything the server sends once `silent` is set.
  const mute = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      if (!silent) controller.enqueue(chunk);
    },
  });
  a.readable.pipeTo(mute.writable).catch(() => {});
  const server = await acceptConnection(b, {
    hostKeys: [testKey("ed25519")],
    password: () => true,
  });
  const client = await connect({
    transport: { readable: mute.readable, writable: a.writable },
    username: "u",
    password: "p",
    verifyHostKey: () => true,
    keepaliveInterval: 40,
    keepaliveCountMax: 3,
  });
  silent = true;
  const started = Date.now();
  const reason = await client.closed;
  const elapsed = Date.now() - started;
  assert.ok(reason instanceof DisconnectError, String(reason));
  assert.equal(reason.reason, DisconnectReason.CONNECTION_LOST);
  assert.match(reason.message, /not responding to 3 keepalives/);
  assert.ok(elapsed >= 120 && elapsed < 2000, `closed after ${elapsed} ms`);
  await server.closed;
});
