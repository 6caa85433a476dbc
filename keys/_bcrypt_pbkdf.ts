/**
 * bcrypt_pbkdf (OpenSSH's `openbsd-compat/bcrypt_pbkdf.c`), the KDF of
 * encrypted openssh-key-v1 files (PROTOCOL.key). Backed by the npm package
 * `bcrypt-pbkdf` (a faithful port used by ssh2/sshpk); it is CommonJS, so
 * its default export is the `module.exports` object.
 *
 * @module
 */

import bcryptPbkdfModule from "bcrypt-pbkdf";

interface BcryptPbkdfModule {
  pbkdf(
    pass: Uint8Array,
    passlen: number,
    salt: Uint8Array,
    saltlen: number,
    key: Uint8Array,
    keylen: number,
    rounds: number,
  ): number;
}

const mod = bcryptPbkdfModule as unknown as BcryptPbkdfModule;

/** Derives `keyLength` bytes from `passphrase` and `salt` with `rounds`. */
export function bcryptPbkdf(
  passphrase: Uint8Array,
  salt: Uint8Array,
  rounds: number,
  keyLength: number,
): Uint8Array {
  const out = new Uint8Array(keyLength);
  const rc = mod.pbkdf(
    passphrase,
    passphrase.length,
    salt,
    salt.length,
    out,
    keyLength,
    rounds,
  );
  if (rc !== 0) {
    throw new RangeError(
      `bcrypt_pbkdf rejected its parameters (rounds ${rounds}, salt ${salt.length} bytes)`,
    );
  }
  return out;
}
