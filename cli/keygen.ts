/**
 * `fynx keygen`: make keys, show fingerprints and randomart, derive public
 * keys, change passphrases, convert between key formats, and look up or
 * remove known_hosts entries, with ssh-keygen(1)'s flags and output.
 *
 * @module
 */
import { basename, dirname } from "node:path";
import {
  encodePrivateKey,
  encodePrivateKeyPem,
  encodePublicKeyPem,
  encodePublicKeyRfc4716,
  fingerprintMd5,
  generatePrivateKey,
  KeyParseError,
  KnownHosts,
  parseAuthorizedKeys,
  parsePrivateKey,
  parsePublicKeyAny,
  parsePublicKeyPem,
  parsePublicKeyRfc4716,
  type PemPrivateKeyFormat,
  randomart,
} from "../keys/mod.ts";
import type { PrivateKey, PublicKey } from "../keys/types.ts";
import {
  expandHome,
  homeDir,
  keyTypeLabel,
  localUserName,
  parseCount,
  parseFlags,
  UsageError,
} from "./_args.ts";
import { hasTty, promptLine } from "./_terminal.ts";
import { showMode, signMode } from "./_keygen_cert.ts";

/** Help text for `fynx keygen --help`. */
export const KEYGEN_USAGE: string = `Usage:
  fynx keygen [-q] [-t ed25519|ecdsa|rsa] [-b bits] [-N passphrase]
              [-C comment] [-a rounds] [-m format] [-f file] [--force]
  fynx keygen -p [-P old_passphrase] [-N new_passphrase] [-a rounds]
              [-m format] -f file
  fynx keygen -l [-v] [-E sha256|md5] -f file
  fynx keygen -y [-P passphrase] -f file
  fynx keygen -e [-m format] [-P passphrase] -f file
  fynx keygen -i [-m format] -f file
  fynx keygen -F host [-f known_hosts]
  fynx keygen -R host [-f known_hosts]
  fynx keygen -s ca_key -I key_id [-h] [-n principals] [-V validity]
              [-z serial] [-O option]... file.pub...
  fynx keygen -L -f certificate

Makes a key pair (private key mode 0600, public key in file.pub), or:
  -p   change the passphrase of a private key file in place (keeping its
       format, or writing the one -m names)
  -l   show the fingerprint of each key in file (-v adds the randomart,
       -E md5 the legacy MD5 form), as ssh-keygen -l prints it
  -y   print the public key of a private key file
  -e   print the public key of file (public or private) in the -m format
  -i   print the OpenSSH public key line of an RFC 4716, PKCS#8 or PEM
       public key, or of an unencrypted PEM private key (format detected)
  -F   print the known_hosts entries for host ([host]:port for other ports)
  -R   remove host's entries from known_hosts (keeping file.old)
  -s   sign each file.pub with the CA key into file-cert.pub: a user
       certificate, or a host certificate with -h
  -L   show the contents of a certificate

Options:
  -t type        ed25519 (default), ecdsa or rsa
  -b bits        ecdsa: 256 (default), 384 or 521; rsa: 2048..16384 (3072)
  -N passphrase  encrypt the new key; "" for none
  -P passphrase  passphrase of an existing key
  -C comment     comment (default user@host)
  -a rounds      bcrypt kdf rounds (default 16)
  -m format      key format:
                   RFC4716  private keys as OpenSSH's own (openssh-key-v1,
                            bcrypt kdf + aes256-ctr; the default), public
                            keys (-e) as RFC 4716 (the default)
                   PKCS8    private keys as PKCS#8 (encrypted: PBES2,
                            PBKDF2-SHA256 + AES-256-CBC), public keys as
                            SPKI "PUBLIC KEY"
                   PEM      private keys as PKCS#1 (RSA) or SEC1 (ECDSA)
                            (encrypted: legacy AES-128-CBC PEM), public
                            keys as PKCS#1 "RSA PUBLIC KEY" (RSA) or SPKI
                 As ssh-keygen, Ed25519 private keys are always written as
                 OpenSSH's format, and PKCS8/PEM passphrases need at least
                 five characters.
  -f file        key file (default ~/.ssh/id_<type>; ~/.ssh/known_hosts for
                 -F and -R)
  -q             quiet
  --force        overwrite an existing key file without asking
  --help         show this help (also -h without -s)

Certificate options (with -s):
  -I key_id      key identifier, logged by servers (required)
  -n principals  comma-separated user names (or host names with -h)
  -V validity    from:to, e.g. -1d:+52w, 20250101:20260101, always:forever,
                 or +span alone (from a minute ago); default forever
  -z serial      serial number (default 0)
  -h             make a host certificate
  -O option      clear, force-command=cmd, source-address=cidr,...,
                 no-/permit- agent-forwarding, port-forwarding, pty,
                 user-rc, x11-forwarding, extension:name[=value],
                 critical:name[=value]`;

const OPTIONS = {
  t: { type: "string", short: "t" },
  b: { type: "string", short: "b" },
  N: { type: "string", short: "N" },
  P: { type: "string", short: "P" },
  C: { type: "string", short: "C" },
  a: { type: "string", short: "a" },
  f: { type: "string", short: "f" },
  E: { type: "string", short: "E" },
  F: { type: "string", short: "F" },
  R: { type: "string", short: "R" },
  s: { type: "string", short: "s" },
  m: { type: "string", short: "m" },
  I: { type: "string", short: "I" },
  n: { type: "string", short: "n" },
  V: { type: "string", short: "V" },
  z: { type: "string", short: "z" },
  O: { type: "string", short: "O", multiple: true },
  L: { type: "boolean", short: "L" },
  h: { type: "boolean", short: "h" },
  l: { type: "boolean", short: "l" },
  p: { type: "boolean", short: "p" },
  e: { type: "boolean", short: "e" },
  i: { type: "boolean", short: "i" },
  v: { type: "boolean", short: "v" },
  y: { type: "boolean", short: "y" },
  q: { type: "boolean", short: "q" },
  force: { type: "boolean" },
  help: { type: "boolean" },
} as const;

const encoder = new TextEncoder();

function out(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text));
}

/** Runs `fynx keygen`; returns the exit status. */
export async function keygenCommand(args: string[]): Promise<number> {
  try {
    return await keygen(args);
  } catch (e) {
    // Usage and input errors are one line, already prefixed.
    if (e instanceof UsageError) {
      console.error(e.message);
      return e.code;
    }
    throw e;
  }
}

/** Flags that each select a mode other than making a key; one at most. */
const MODE_FLAGS = ["l", "y", "p", "e", "i", "s", "L", "F", "R"] as const;

async function keygen(args: string[]): Promise<number> {
  const { values: raw, positionals } = parseFlags(
    "fynx keygen",
    args,
    OPTIONS,
    1,
    true,
  );
  const values = raw as Record<string, string | boolean | undefined>;
  const str = (name: string) => values[name] as string | undefined;
  // -h means "host certificate" with -s, as in ssh-keygen; alone it is help.
  if (values.help || (values.h && str("s") === undefined)) {
    out(KEYGEN_USAGE + "\n");
    return 0;
  }
  const format = parseFormat(str("m"));
  const modes = MODE_FLAGS.filter((f) =>
    values[f] !== undefined && values[f] !== false
  );
  if (modes.length > 1) {
    throw new UsageError(
      `fynx keygen: use only one of ${
        MODE_FLAGS.map((f) => `-${f}`).join(", ")
      }`,
    );
  }
  if (positionals.length > 0 && str("s") === undefined) {
    throw new UsageError(
      `fynx keygen: unexpected argument ${
        JSON.stringify(positionals[0])
      } (see 'fynx keygen --help')`,
    );
  }
  switch (modes[0]) {
    case "s":
      return await signMode(
        {
          ca: expandHome(str("s")!),
          keyId: str("I"),
          principals: str("n"),
          validity: str("V"),
          serial: str("z"),
          options: (raw.O as string[] | undefined) ?? [],
          host: values.h === true,
          files: positionals.map(expandHome),
          quiet: values.q === true,
        },
        (path) => loadPrivate(path, str("P")),
        (line) => console.error(line),
      );
    case "L":
      return await showMode(str("f") && expandHome(str("f")!), out);
    case "F":
    case "R":
      return await knownHostsMode(
        (str("F") ?? str("R"))!,
        modes[0] === "R",
        str("f"),
      );
    case "l":
      return await fingerprintMode(
        str("f"),
        values.v === true,
        str("E") ?? "sha256",
        str("P"),
      );
    case "y":
      return await publicMode(str("f"), str("P"));
    case "p":
      return await passphraseMode(values, format);
    case "e":
      return await exportMode(str("f"), format ?? "RFC4716", str("P"));
    case "i":
      return await importMode(str("f"));
    default:
      return await generateMode(values, format);
  }
}

/** Reads a file, turning "not found" into a one-line error. */
async function readText(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(`fynx keygen: ${path}: No such file or directory`);
    }
    throw new UsageError(`fynx keygen: ${path}: ${(e as Error).message}`);
  }
}

/**
 * Loads a private key file, asking for its passphrase on the terminal with
 * `prompt` when it is encrypted and none was given.
 */
async function loadPrivate(
  path: string,
  passphrase: string | undefined,
  prompt = `Enter passphrase for ${path}: `,
): Promise<PrivateKey> {
  return await parseLoaded(path, await readText(path), passphrase, prompt);
}

async function parseLoaded(
  path: string,
  text: string,
  passphrase: string | undefined,
  prompt: string,
): Promise<PrivateKey> {
  try {
    return parsePrivateKey(text, { passphrase });
  } catch (e) {
    if (
      e instanceof KeyParseError && e.code === "passphrase-required" &&
      passphrase === undefined
    ) {
      const asked = await promptLine(prompt);
      if (asked === null) {
        throw new UsageError(
          `fynx keygen: ${path}: a passphrase is needed (use -P)`,
        );
      }
      return parseLoaded(path, text, asked, prompt);
    }
    throw new UsageError(`fynx keygen: ${path}: ${(e as Error).message}`);
  }
}

async function fingerprintMode(
  file: string | undefined,
  visual: boolean,
  hash: string,
  passphrase: string | undefined,
): Promise<number> {
  if (!file) throw new UsageError("fynx keygen: -l needs -f file");
  if (hash !== "sha256" && hash !== "md5") {
    throw new UsageError(`fynx keygen: -E must be sha256 or md5, not ${hash}`);
  }
  const path = expandHome(file);
  const text = await readText(path);
  let keys: { key: PublicKey; comment: string }[];
  if (text.includes("PRIVATE KEY-----")) {
    // A private key: prefer the comment of its .pub file, as ssh-keygen does.
    const key = (await loadPrivate(path, passphrase)).publicKey;
    let comment = key.comment;
    try {
      comment = parseAuthorizedKeys(await Deno.readTextFile(`${path}.pub`))[0]
        ?.comment ?? comment;
    } catch {
      // No readable .pub beside it.
    }
    keys = [{ key, comment }];
  } else {
    try {
      keys = parseAuthorizedKeys(text).map((e) => ({
        key: e.key,
        comment: e.comment,
      }));
    } catch (e) {
      throw new UsageError(
        `fynx keygen: ${path} is not a key file: ${(e as Error).message}`,
      );
    }
    if (keys.length === 0) {
      throw new UsageError(`fynx keygen: ${path} is not a public key file.`);
    }
  }
  for (const { key, comment } of keys) {
    const fp = hash === "md5" ? fingerprintMd5(key) : key.fingerprint();
    out(
      `${key.bits} ${fp} ${comment || "no comment"} (${
        keyTypeLabel(key.type)
      })\n`,
    );
    if (visual) out(randomart(key, { hash }) + "\n");
  }
  return 0;
}

async function publicMode(
  file: string | undefined,
  passphrase: string | undefined,
): Promise<number> {
  if (!file) throw new UsageError("fynx keygen: -y needs -f file");
  const key = await loadPrivate(expandHome(file), passphrase);
  out(key.publicKey.toString() + "\n");
  return 0;
}

/** `host` or `[host]:port`, as ssh-keygen -F/-R take it. */
function splitHost(spec: string): [string, number] {
  const m = spec.match(/^\[([^\]]+)\]:(\d{1,5})$/);
  if (!m) return [spec, 22];
  const port = Number(m[2]);
  if (port < 1 || port > 65535) {
    throw new UsageError(`fynx keygen: bad port in ${spec}`);
  }
  return [m[1], port];
}

async function knownHostsMode(
  spec: string,
  remove: boolean,
  file: string | undefined,
): Promise<number> {
  const path = expandHome(file ?? `${homeDir()}/.ssh/known_hosts`);
  const [host, port] = splitHost(spec);
  const kh = KnownHosts.parse(await readText(path));
  const found = kh.find(host, port);
  for (const e of found) {
    const marker = e.marker ? `@${e.marker}` : "";
    out(`# Host ${spec} found: line ${e.line} ${marker}\n`);
    if (!remove) out(`${e.text}\n`);
  }
  if (!remove) return found.length > 0 ? 0 : 1;
  const { text, removed } = kh.remove(host, port);
  if (removed === 0) {
    out(`Host ${spec} not found in ${path}\n`);
    return 0;
  }
  // Keep the original as file.old, like ssh-keygen -R.
  await Deno.copyFile(path, `${path}.old`);
  await Deno.writeTextFile(path, text);
  out(`${path} updated.\nOriginal contents retained as ${path}.old\n`);
  return 0;
}

async function generateMode(
  values: Record<string, string | boolean | undefined>,
  format: ConvertFormat | undefined,
): Promise<number> {
  const type = (values.t as string | undefined) ?? "ed25519";
  const bitsText = values.b as string | undefined;
  let kind: "ed25519" | "ecdsa-p256" | "ecdsa-p384" | "ecdsa-p521" | "rsa";
  let bits: number | undefined;
  if (type === "ed25519") {
    if (bitsText !== undefined) {
      throw new UsageError("fynx keygen: -b does not apply to ed25519 keys");
    }
    kind = "ed25519";
  } else if (type === "ecdsa") {
    const b = bitsText ?? "256";
    if (b !== "256" && b !== "384" && b !== "521") {
      throw new UsageError(
        `fynx keygen: ECDSA keys are 256, 384 or 521 bits, not ${b}`,
      );
    }
    kind = `ecdsa-p${b}`;
  } else if (type === "rsa") {
    bits = bitsText === undefined ? 3072 : parseCount(bitsText, "-b", 1);
    if (bits < 2048 || bits > 16384) {
      throw new UsageError(
        `fynx keygen: RSA keys are 2048..16384 bits, not ${bits}`,
      );
    }
    kind = "rsa";
  } else {
    throw new UsageError(
      `fynx keygen: unknown key type ${
        JSON.stringify(type)
      } (ed25519, ecdsa or rsa)`,
    );
  }
  const rounds = values.a === undefined
    ? undefined
    : parseCount(values.a as string, "-a", 1);
  const path = expandHome(
    (values.f as string | undefined) ?? `${homeDir()}/.ssh/id_${type}`,
  );
  const quiet = values.q === true;
  if (await exists(path) && values.force !== true) {
    // Never overwrite a key silently; ssh-keygen asks, we ask on a terminal.
    const answer = hasTty()
      ? await promptLine(`${path} already exists.\nOverwrite (y/n)? `, true)
      : null;
    if (answer === null || !/^y(es)?$/i.test(answer.trim())) {
      throw new UsageError(
        `fynx keygen: ${path} already exists (use --force to overwrite)`,
      );
    }
  }
  let passphrase = values.N as string | undefined;
  if (passphrase === undefined && hasTty()) {
    const first = await promptLine(
      "Enter passphrase (empty for no passphrase): ",
    );
    const again = await promptLine("Enter same passphrase again: ");
    if (first !== again) {
      throw new UsageError("fynx keygen: passphrases do not match");
    }
    passphrase = first ?? "";
  }
  const comment = (values.C as string | undefined) ?? defaultComment();
  const layout = layoutFor(kind === "ed25519", kind === "rsa", format, null);
  // Checked before the (possibly slow) generation; nothing is written.
  checkPassphraseLength(path, layout, passphrase ?? "");
  const key = generatePrivateKey(kind, { bits, comment });
  const text = encodeKeyFile(key, layout, passphrase ?? "", comment, rounds);
  await Deno.writeTextFile(path, text, { mode: 0o600 });
  // writeTextFile's mode only applies on create; an overwritten file keeps
  // its old mode, so set it explicitly.
  await Deno.chmod(path, 0o600);
  await Deno.writeTextFile(`${path}.pub`, `${key.publicKey.toString()}\n`, {
    mode: 0o644,
  });
  if (!quiet) {
    out(`Your identification has been saved in ${path}\n`);
    out(`Your public key has been saved in ${path}.pub\n`);
    out(`The key fingerprint is:\n${key.publicKey.fingerprint()} ${comment}\n`);
    out(`The key's randomart image is:\n${randomart(key.publicKey)}\n`);
  }
  return 0;
}

/** The `-m` formats, as ssh-keygen(1) names them. */
type ConvertFormat = "RFC4716" | "PKCS8" | "PEM";

/** Parses `-m` (case-insensitive; `ssh2` is RFC4716, as in ssh-keygen). */
function parseFormat(text: string | undefined): ConvertFormat | undefined {
  if (text === undefined) return undefined;
  const t = text.toUpperCase();
  if (t === "RFC4716" || t === "SSH2") return "RFC4716";
  if (t === "PKCS8" || t === "PEM") return t;
  throw new UsageError(
    `fynx keygen: Unsupported conversion format "${text}" (RFC4716, PKCS8 or PEM)`,
  );
}

/** Layouts of a private key file. */
type KeyFileLayout = "openssh" | PemPrivateKeyFormat;

/** The layout of a private key file we could parse, from its armor. */
function layoutOf(text: string): KeyFileLayout {
  if (text.includes("-----BEGIN OPENSSH PRIVATE KEY-----")) return "openssh";
  if (text.includes("-----BEGIN RSA PRIVATE KEY-----")) return "pkcs1";
  if (text.includes("-----BEGIN EC PRIVATE KEY-----")) return "sec1";
  return "pkcs8";
}

/**
 * The layout to write a key in: `-m`'s (RFC4716 being openssh-key-v1, PEM
 * PKCS#1 or SEC1 by key type), else `current` (the file's own for -p), else
 * openssh-key-v1. Ed25519 keys stay openssh-key-v1 under -m PEM and PKCS8,
 * as ssh-keygen writes them (OpenSSH 9.2 cannot read Ed25519 PKCS#8).
 */
function layoutFor(
  ed25519: boolean,
  rsa: boolean,
  format: ConvertFormat | undefined,
  current: KeyFileLayout | null,
): KeyFileLayout {
  if (format === undefined) return current ?? "openssh";
  if (format === "RFC4716" || ed25519) return "openssh";
  if (format === "PKCS8") return "pkcs8";
  return rsa ? "pkcs1" : "sec1";
}

/**
 * ssh-keygen refuses PEM and PKCS#8 passphrases of one to four bytes
 * (OpenSSL's minimum); so do we, with its words.
 */
function checkPassphraseLength(
  path: string,
  layout: KeyFileLayout,
  passphrase: string,
): void {
  const size = encoder.encode(passphrase).length;
  if (layout !== "openssh" && size > 0 && size < 5) {
    throw new UsageError(
      `fynx keygen: Saving key "${path}" failed: passphrase is too short (minimum five characters)`,
    );
  }
}

/** A private key file's text in `layout`; "" passphrase for none. */
function encodeKeyFile(
  key: PrivateKey,
  layout: KeyFileLayout,
  passphrase: string,
  comment: string,
  rounds: number | undefined,
): string {
  if (layout === "openssh") {
    return encodePrivateKey(key, { comment, passphrase, rounds });
  }
  // PEM files have no room for a comment; the .pub keeps it.
  return encodePrivateKeyPem(key, { format: layout, passphrase });
}

/**
 * Replaces `path` (through a symlink, as ssh-keygen writes) with `text`
 * without a window where the key is lost or readable by others: a 0600
 * temporary file beside it, synced, then renamed over it.
 */
async function replaceKeyFile(path: string, text: string): Promise<void> {
  const target = await Deno.realPath(path);
  const old = await Deno.stat(target);
  const tmp = await Deno.makeTempFile({
    dir: dirname(target),
    prefix: `.${basename(target)}.`,
    suffix: ".tmp",
  });
  try {
    await Deno.chmod(tmp, 0o600);
    if (old.uid !== null && old.gid !== null) {
      // Keep the owner when root edits another user's key, as ssh-keygen's
      // in-place write does; others cannot chown and need not.
      await Deno.chown(tmp, old.uid, old.gid).catch(() => {});
    }
    const file = await Deno.open(tmp, { write: true, truncate: true });
    try {
      const bytes = encoder.encode(text);
      for (let off = 0; off < bytes.length;) {
        off += await file.write(bytes.subarray(off));
      }
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, target);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** `fynx keygen -p`: a new passphrase (and maybe format) for a key file. */
async function passphraseMode(
  values: Record<string, string | boolean | undefined>,
  format: ConvertFormat | undefined,
): Promise<number> {
  const file = values.f as string | undefined;
  if (!file) throw new UsageError("fynx keygen: -p needs -f file");
  const path = expandHome(file);
  const text = await readText(path);
  const key = await parseLoaded(
    path,
    text,
    values.P as string | undefined,
    "Enter old passphrase: ",
  );
  const current = layoutOf(text);
  // ssh-keygen shows the comment of keys whose format stores one.
  if (current === "openssh") {
    out(`Key has comment '${key.publicKey.comment}'\n`);
  }
  let passphrase = values.N as string | undefined;
  if (passphrase === undefined) {
    const first = await promptLine(
      "Enter new passphrase (empty for no passphrase): ",
    );
    if (first === null) {
      throw new UsageError(
        "fynx keygen: -p needs -N new_passphrase when there is no terminal",
      );
    }
    const again = await promptLine("Enter same passphrase again: ");
    if (first !== again) {
      throw new UsageError("fynx keygen: Pass phrases do not match.");
    }
    passphrase = first;
  }
  const type = key.publicKey.type;
  const layout = layoutFor(
    type === "ssh-ed25519",
    type === "ssh-rsa",
    format,
    current,
  );
  checkPassphraseLength(path, layout, passphrase);
  const rounds = values.a === undefined
    ? undefined
    : parseCount(values.a as string, "-a", 1);
  const encoded = encodeKeyFile(
    key,
    layout,
    passphrase,
    key.publicKey.comment,
    rounds,
  );
  try {
    await replaceKeyFile(path, encoded);
  } catch (e) {
    throw new UsageError(
      `fynx keygen: Saving key "${path}" failed: ${(e as Error).message}`,
    );
  }
  out("Your identification has been saved with the new passphrase.\n");
  return 0;
}

/**
 * The public key of `path`: the file itself when it is a public key (any
 * format), else its `.pub` beside it, else the private key's own.
 */
async function loadPublic(
  path: string,
  passphrase: string | undefined,
): Promise<PublicKey> {
  const text = await readText(path);
  if (!text.includes("PRIVATE KEY-----")) {
    try {
      return parsePublicKeyAny(text);
    } catch (e) {
      throw new UsageError(
        `fynx keygen: ${path} is not a key file: ${(e as Error).message}`,
      );
    }
  }
  try {
    return parsePublicKeyAny(await Deno.readTextFile(`${path}.pub`));
  } catch {
    // No usable .pub beside it: read the private key.
  }
  return (await loadPrivate(path, passphrase)).publicKey;
}

/** The login name of our uid, as getpwuid(3) gives ssh-keygen. */
function passwdName(): string {
  try {
    const uid = Deno.uid();
    for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
      const f = line.split(":");
      if (f.length > 2 && f[0] && Number(f[2]) === uid) return f[0];
    }
  } catch {
    // No sys or read permission: fall back to the environment.
  }
  try {
    return localUserName();
  } catch {
    return "";
  }
}

/** `fynx keygen -e`: the public key of a file in RFC 4716, SPKI or PKCS#1. */
async function exportMode(
  file: string | undefined,
  format: ConvertFormat,
  passphrase: string | undefined,
): Promise<number> {
  if (!file) throw new UsageError("fynx keygen: -e needs -f file");
  const key = await loadPublic(expandHome(file), passphrase);
  switch (format) {
    case "RFC4716": {
      let host = "";
      try {
        host = Deno.hostname();
      } catch {
        // No sys permission.
      }
      // ssh-keygen's comment, cut to its 60 bytes so the header line stays
      // within RFC 4716's 72.
      const comment = `${key.bits}-bit ${
        keyTypeLabel(key.type)
      }, converted by ${passwdName()}@${host} from OpenSSH`;
      out(encodePublicKeyRfc4716(key, { comment: truncateUtf8(comment, 60) }));
      break;
    }
    case "PKCS8":
      out(encodePublicKeyPem(key));
      break;
    case "PEM":
      // ssh-keygen -m PEM: PKCS#1 for RSA, SPKI for the others.
      out(encodePublicKeyPem(key, {
        format: key.type === "ssh-rsa" ? "pkcs1" : "spki",
      }));
      break;
  }
  return 0;
}

function truncateUtf8(text: string, max: number): string {
  let size = 0;
  let out = "";
  for (const ch of text) {
    size += encoder.encode(ch).length;
    if (size > max) break;
    out += ch;
  }
  return out;
}

/**
 * `fynx keygen -i`: the OpenSSH line (`type base64`, no comment, as
 * ssh-keygen prints it) of an RFC 4716 or PEM public key, or of an
 * unencrypted PEM private key. The input format is detected, so -m is only
 * accepted for compatibility.
 */
async function importMode(file: string | undefined): Promise<number> {
  if (!file) throw new UsageError("fynx keygen: -i needs -f file");
  const path = expandHome(file);
  const text = await readText(path);
  let key: PublicKey;
  try {
    if (text.includes("PRIVATE KEY-----")) {
      key = parsePrivateKey(text).publicKey;
    } else if (text.trimStart().startsWith("---- BEGIN SSH2 PUBLIC KEY")) {
      key = parsePublicKeyRfc4716(text);
    } else if (text.trimStart().startsWith("-----BEGIN ")) {
      key = parsePublicKeyPem(text);
    } else {
      throw new SyntaxError("no RFC 4716 or PEM key in it");
    }
  } catch (e) {
    if (e instanceof KeyParseError && e.code === "passphrase-required") {
      throw new UsageError(
        `fynx keygen: ${path}: the private key is encrypted; use fynx keygen -y -f ${file}`,
      );
    }
    throw new UsageError(
      `fynx keygen: ${path} is not a recognised key format: ${
        (e as Error).message
      }`,
    );
  }
  out(`${key.type} ${key.blob.toBase64()}\n`);
  return 0;
}

function defaultComment(): string {
  let user = "";
  let host = "";
  try {
    user = Deno.env.get("USER") ?? Deno.env.get("LOGNAME") ?? "";
  } catch {
    // No env permission: leave it out.
  }
  try {
    host = Deno.hostname();
  } catch {
    // No sys permission.
  }
  return user && host ? `${user}@${host}` : user || host;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
