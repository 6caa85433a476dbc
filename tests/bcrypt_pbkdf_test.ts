/**
 * Our bcrypt_pbkdf against the npm port (`bcrypt-pbkdf`, used by ssh2 and
 * sshpk; a test-only dependency) and against keys ssh-keygen encrypts.
 */
import assert from "node:assert/strict";
import bcryptPbkdfModule from "bcrypt-pbkdf";
import { bcryptPbkdf, piFractionWords } from "../keys/_bcrypt_pbkdf.ts";
import { parsePrivateKey } from "../keys/mod.ts";
import { seededRandom } from "./_helpers.ts";

const reference = bcryptPbkdfModule as unknown as {
  pbkdf(
    pass: Uint8Array,
    passlen: number,
    salt: Uint8Array,
    saltlen: number,
    key: Uint8Array,
    keylen: number,
    rounds: number,
  ): number;
};

Deno.test("bcrypt_pbkdf: Blowfish's initial state is pi's fraction", () => {
  const w = piFractionWords(18 + 4 * 256);
  // The published first and last P entries and the corners of S0..S3.
  assert.equal(w[0], 0x243f6a88);
  assert.equal(w[17], 0x8979fb1b);
  assert.equal(w[18], 0xd1310ba6);
  assert.equal(w[18 + 255], 0x6e85076a);
  assert.equal(w[18 + 256], 0x4b7a70e9);
  assert.equal(w[18 + 1023], 0x3ac372e6);
});

Deno.test("bcrypt_pbkdf: same bytes as the npm port for many shapes", () => {
  const bytes = seededRandom(7);
  const cases: [number, number, number, number][] = [
    // passphrase, salt, rounds, key length
    [1, 1, 1, 1],
    [8, 16, 2, 48], // aes256-ctr key + IV, as ssh-keygen writes
    [72, 16, 1, 64], // chacha20-poly1305 key length
    [100, 32, 3, 37],
    [5, 4, 1, 1024], // the longest key the C code allows
    [64, 1, 2, 33],
  ];
  for (const [p, s, rounds, k] of cases) {
    const pass = bytes(p), salt = bytes(s);
    const want = new Uint8Array(k);
    assert.equal(reference.pbkdf(pass, p, salt, s, want, k, rounds), 0);
    assert.deepEqual(
      bcryptPbkdf(pass, salt, rounds, k),
      want,
      `pass ${p}, salt ${s}, rounds ${rounds}, key ${k}`,
    );
  }
});

Deno.test("bcrypt_pbkdf: bad parameters are refused with what was wrong", () => {
  const one = new Uint8Array(1);
  for (
    const [pass, salt, rounds, k] of [
      [one, one, 0, 32],
      [new Uint8Array(0), one, 1, 32],
      [one, new Uint8Array(0), 1, 32],
      [one, one, 1, 0],
      [one, one, 1, 1025],
    ] as [Uint8Array, Uint8Array, number, number][]
  ) {
    assert.throws(
      () => bcryptPbkdf(pass, salt, rounds, k),
      /bcrypt_pbkdf rejected its parameters \(rounds/,
    );
  }
});

Deno.test("bcrypt_pbkdf: opens a key ssh-keygen encrypted", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/id`;
    const out = await new Deno.Command("ssh-keygen", {
      args: ["-q", "-t", "ed25519", "-a", "4", "-N", "s3cret", "-f", path],
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const key = parsePrivateKey(await Deno.readTextFile(path), {
      passphrase: "s3cret",
    });
    const pub = (await Deno.readTextFile(`${path}.pub`)).split(" ")[1];
    assert.equal(key.publicKey.toString().split(" ")[1], pub);
    assert.throws(
      () =>
        parsePrivateKey(Deno.readTextFileSync(path), { passphrase: "wrong" }),
      /passphrase/i,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
