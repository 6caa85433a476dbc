/**
 * `fynx keygen`: make keys, show fingerprints and randomart, derive public
 * keys, and look up or remove known_hosts entries, with ssh-keygen(1)'s
 * flags and output.
 *
 * @module
 */
import {
  encodePrivateKey,
  fingerprintMd5,
  generatePrivateKey,
  KeyParseError,
  KnownHosts,
  parseAuthorizedKeys,
  parsePrivateKey,
  randomart,
} from "../keys/mod.ts";
import type { PublicKey } from "../keys/types.ts";
import {
  expandHome,
  homeDir,
  parseCount,
  parseFlags,
  UsageError,
} from "./_args.ts";
import { hasTty, promptLine } from "./_terminal.ts";
import { showMode, signMode } from "./_keygen_cert.ts";

/** Help text for `fynx keygen --help`. */
export const KEYGEN_USAGE: string = `Usage:
  fynx keygen [-q] [-t ed25519|ecdsa|rsa] [-b bits] [-N passphrase]
              [-C comment] [-a rounds] [-f file] [--force]
  fynx keygen -l [-v] [-E sha256|md5] -f file
  fynx keygen -y [-P passphrase] -f file
  fynx keygen -F host [-f known_hosts]
  fynx keygen -R host [-f known_hosts]
  fynx keygen -s ca_key -I key_id [-h] [-n principals] [-V validity]
              [-z serial] [-O option]... file.pub...
  fynx keygen -L -f certificate

Makes a key pair (private key mode 0600, public key in file.pub), or:
  -l   show the fingerprint of each key in file (-v adds the randomart,
       -E md5 the legacy MD5 form), as ssh-keygen -l prints it
  -y   print the public key of a private key file
  -F   print the known_hosts entries for host ([host]:port for other ports)
  -R   remove host's entries from known_hosts (keeping file.old)
  -s   sign each file.pub with the CA key into file-cert.pub: a user
       certificate, or a host certificate with -h
  -L   show the contents of a certificate

Options:
  -t type        ed25519 (default), ecdsa or rsa
  -b bits        ecdsa: 256 (default), 384 or 521; rsa: 2048..16384 (3072)
  -N passphrase  encrypt the new key (bcrypt kdf + aes256-ctr); "" for none
  -P passphrase  passphrase of an existing key
  -C comment     comment (default user@host)
  -a rounds      bcrypt kdf rounds (default 16)
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
  I: { type: "string", short: "I" },
  n: { type: "string", short: "n" },
  V: { type: "string", short: "V" },
  z: { type: "string", short: "z" },
  O: { type: "string", short: "O", multiple: true },
  L: { type: "boolean", short: "L" },
  h: { type: "boolean", short: "h" },
  l: { type: "boolean", short: "l" },
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
  const modes = [
    values.l,
    values.y,
    values.L,
    str("s") !== undefined,
    str("F") !== undefined,
    str("R") !== undefined,
  ].filter(Boolean).length;
  if (modes > 1) {
    throw new UsageError(
      "fynx keygen: use only one of -l, -y, -s, -L, -F and -R",
    );
  }
  if (positionals.length > 0 && str("s") === undefined) {
    throw new UsageError(
      `fynx keygen: unexpected argument ${
        JSON.stringify(positionals[0])
      } (see 'fynx keygen --help')`,
    );
  }
  const ca = str("s");
  if (ca !== undefined) {
    return await signMode(
      {
        ca: expandHome(ca),
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
  }
  if (values.L) return await showMode(str("f") && expandHome(str("f")!), out);
  const host = str("F") ?? str("R");
  if (host !== undefined) {
    return await knownHostsMode(host, str("R") !== undefined, str("f"));
  }
  if (values.l) {
    return await fingerprintMode(
      str("f"),
      values.v === true,
      str("E") ?? "sha256",
      str("P"),
    );
  }
  if (values.y) return await publicMode(str("f"), str("P"));
  return await generateMode(values);
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

async function loadPrivate(path: string, passphrase: string | undefined) {
  const text = await readText(path);
  try {
    return parsePrivateKey(text, { passphrase });
  } catch (e) {
    if (
      e instanceof KeyParseError && e.code === "passphrase-required" &&
      passphrase === undefined
    ) {
      const asked = await promptLine(`Enter passphrase for ${path}: `);
      if (asked === null) {
        throw new UsageError(
          `fynx keygen: ${path}: a passphrase is needed (use -P)`,
        );
      }
      return parsePrivateKey(text, { passphrase: asked });
    }
    throw new UsageError(`fynx keygen: ${path}: ${(e as Error).message}`);
  }
}

function typeLabel(key: PublicKey): string {
  return key.type === "ssh-ed25519"
    ? "ED25519"
    : key.type === "ssh-rsa"
    ? "RSA"
    : "ECDSA";
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
    out(`${key.bits} ${fp} ${comment || "no comment"} (${typeLabel(key)})\n`);
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
  const key = generatePrivateKey(kind, { bits, comment });
  const text = encodePrivateKey(key, {
    comment,
    passphrase: passphrase || undefined,
    rounds,
  });
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
