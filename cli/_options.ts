/**
 * `-o Option=value` handling for `fynx ssh` (ssh_config(5) names) and
 * `fynx sshd` (sshd_config(5) names): case-insensitive names, `Name=value`
 * and `Name value` forms, and OpenSSH's algorithm list syntax (`+`, `-`,
 * `^`).
 *
 * @module
 */
import {
  type AlgorithmPreferences,
  applyAlgorithmSpec,
  DEFAULT_ALGORITHMS,
  SUPPORTED_ALGORITHMS,
} from "../transport/algorithms.ts";

/** One parsed `-o` option: the canonical name and its raw value. */
export interface ConfigOption {
  /** Canonical spelling, e.g. `StrictHostKeyChecking`. */
  name: string;
  /** The value as given (trimmed, surrounding quotes removed). */
  value: string;
}

/** ssh_config(5) options `fynx ssh` understands. */
export const SSH_OPTION_NAMES: readonly string[] = [
  "BatchMode",
  "CertificateFile",
  "Ciphers",
  "Compression",
  "ConnectTimeout",
  "ForwardAgent",
  "HostKeyAlgorithms",
  "Hostname",
  "IdentitiesOnly",
  "IdentityAgent",
  "IdentityFile",
  "KbdInteractiveAuthentication",
  "KexAlgorithms",
  "HashKnownHosts",
  "LogLevel",
  "MACs",
  "NumberOfPasswordPrompts",
  "PasswordAuthentication",
  "Port",
  "PubkeyAuthentication",
  "RequestTTY",
  "ServerAliveCountMax",
  "ServerAliveInterval",
  "StrictHostKeyChecking",
  "User",
  "UserKnownHostsFile",
];

/** sshd_config(5) options `fynx sshd` understands. */
export const SSHD_OPTION_NAMES: readonly string[] = [
  "AllowAgentForwarding",
  "AllowUsers",
  "AuthorizedKeysFile",
  "Banner",
  "Ciphers",
  "ClientAliveCountMax",
  "ClientAliveInterval",
  "HostCertificate",
  "HostKey",
  "HostKeyAlgorithms",
  "KexAlgorithms",
  "ListenAddress",
  "LoginGraceTime",
  "MACs",
  "MaxAuthTries",
  "MaxStartups",
  "PasswordAuthentication",
  "Port",
  "PubkeyAuthentication",
  "TrustedUserCAKeys",
];

/**
 * Parses one `-o` argument against `known` names. An unknown name throws
 * TypeError with OpenSSH's wording (`command-line: line 0: Bad configuration
 * option: foo`); a missing value throws TypeError too.
 */
export function parseConfigOption(
  arg: string,
  known: readonly string[],
): ConfigOption {
  const m = arg.match(/^\s*([A-Za-z0-9]+)\s*(?:=\s*|\s+)(.*)$/s) ??
    arg.match(/^\s*([A-Za-z0-9]+)\s*()$/);
  const rawName = m ? m[1] : arg.trim();
  const name = known.find((k) => k.toLowerCase() === rawName.toLowerCase());
  if (!name) {
    throw new TypeError(
      `command-line: line 0: Bad configuration option: ${rawName.toLowerCase()}`,
    );
  }
  let value = (m?.[2] ?? "").trim();
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
    value = value.slice(1, -1);
  }
  if (value === "") {
    throw new TypeError(`command-line: line 0: ${name}: missing argument.`);
  }
  return { name, value };
}

/** Maps config option names for algorithm lists to preference keys. */
const ALGORITHM_OPTIONS: Record<string, keyof AlgorithmPreferences> = {
  Ciphers: "cipher",
  KexAlgorithms: "kex",
  MACs: "mac",
  HostKeyAlgorithms: "hostKey",
};

/** True when `name` is one of the algorithm list options. */
export function isAlgorithmOption(name: string): boolean {
  return name in ALGORITHM_OPTIONS;
}

/**
 * Applies an algorithm list option (`Ciphers`, `KexAlgorithms`, `MACs`,
 * `HostKeyAlgorithms`) to `prefs`, starting from what is already set there or
 * from the defaults.
 */
export function applyAlgorithmOption(
  prefs: Partial<AlgorithmPreferences>,
  option: ConfigOption,
): void {
  const key = ALGORITHM_OPTIONS[option.name];
  if (!key) throw new TypeError(`${option.name} is not an algorithm list`);
  try {
    prefs[key] = applyAlgorithmSpec(
      prefs[key] ?? DEFAULT_ALGORITHMS[key],
      SUPPORTED_ALGORITHMS[key],
      option.value,
    );
  } catch (e) {
    throw new TypeError(
      `command-line: line 0: Bad ${option.name} '${option.value}': ${
        (e as Error).message
      }`,
    );
  }
  if (prefs[key]!.length === 0) {
    throw new TypeError(
      `command-line: line 0: ${option.name} '${option.value}' leaves no algorithm`,
    );
  }
}
