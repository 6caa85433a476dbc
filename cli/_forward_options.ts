/**
 * Port forwarding for `fynx sshd`: the sshd_config options
 * (`AllowTcpForwarding`, `AllowStreamLocalForwarding`, `GatewayPorts`,
 * `PermitOpen`, `PermitListen`, `DisableForwarding`) and the handlers to
 * give `serve()`. Forwarding is on by default, as in sshd; the
 * `authorized_keys` restrictions of each login apply on top.
 *
 * @module
 */
import type { ConnectionInfo } from "../server.ts";
import {
  type ForwardingMode,
  type ForwardRequest,
  type GatewayPorts,
  type ServerForwarding,
  serverForwarding,
  type ServerForwardingOptions,
} from "../forward/mod.ts";
import { parseYesNo } from "./_args.ts";
import { parseConfigOption } from "./_options.ts";

/** Usage lines for the forwarding `-o` options of `fynx sshd`. */
export const SSHD_FORWARD_USAGE: string =
  `  AllowTcpForwarding yes|all|no|local|remote   (default yes)
  AllowStreamLocalForwarding yes|all|no|local|remote   (default yes)
  GatewayPorts no|yes|clientspecified   (default no: remote forwards
                           listen on loopback only)
  PermitOpen "host:port ..."|any|none   Where -L may connect (default any)
  PermitListen "[host:]port ..."|any|none   Where -R may listen (default any)
  DisableForwarding yes|no Turns every kind of forwarding off`;

const NAMES = [
  "AllowTcpForwarding",
  "AllowStreamLocalForwarding",
  "GatewayPorts",
  "PermitOpen",
  "PermitListen",
  "DisableForwarding",
];

function mode(value: string, name: string): ForwardingMode {
  const v = value.toLowerCase();
  if (v === "yes" || v === "all" || v === "no" || v === "local") return v;
  if (v === "remote") return v;
  throw new TypeError(
    `unsupported option "${value}" for ${name} (yes, all, no, local, remote)`,
  );
}

/**
 * Takes the forwarding options out of the `-o` list: returns the
 * forwarding configuration and the options left for the caller.
 *
 * @throws {TypeError} for a bad value (the message names the option).
 */
export function parseSshdForwardOptions(
  options: readonly string[],
): { forwarding: ServerForwardingOptions; rest: string[] } {
  const forwarding: ServerForwardingOptions = {};
  const rest: string[] = [];
  let disabled = false;
  for (const raw of options) {
    let o;
    try {
      o = parseConfigOption(raw, NAMES);
    } catch {
      rest.push(raw);
      continue;
    }
    const v = o.value;
    switch (o.name) {
      case "AllowTcpForwarding":
        forwarding.allowTcpForwarding = mode(v, o.name);
        break;
      case "AllowStreamLocalForwarding":
        forwarding.allowStreamLocalForwarding = mode(v, o.name);
        break;
      case "GatewayPorts": {
        const g = v.toLowerCase();
        if (g !== "no" && g !== "yes" && g !== "clientspecified") {
          throw new TypeError(
            `unsupported option "${v}" for GatewayPorts (no, yes, clientspecified)`,
          );
        }
        forwarding.gatewayPorts = g as GatewayPorts;
        break;
      }
      case "PermitOpen":
      case "PermitListen": {
        const list = v.split(/\s+/).filter(Boolean);
        // Validated now, so a typo stops the server from starting.
        serverForwarding({
          [o.name === "PermitOpen" ? "permitOpen" : "permitListen"]: list,
        });
        if (o.name === "PermitOpen") forwarding.permitOpen = list;
        else forwarding.permitListen = list;
        break;
      }
      case "DisableForwarding":
        disabled = parseYesNo(v, o.name);
        break;
    }
  }
  if (disabled) {
    forwarding.allowTcpForwarding = "no";
    forwarding.allowStreamLocalForwarding = "no";
  }
  return { forwarding, rest };
}

function requestText(request: ForwardRequest): string {
  switch (request.type) {
    case "direct-tcpip":
      return `direct-tcpip to ${request.hostname}:${request.port}`;
    case "direct-streamlocal":
      return `direct-streamlocal to ${request.path}`;
    case "tcpip-forward":
      return `tcpip-forward on ${request.hostname || "*"}:${request.port}`;
    case "streamlocal-forward":
      return `streamlocal-forward on ${request.path}`;
  }
}

/**
 * The `serve()` handlers for `fynx sshd`, logging each refused or failed
 * forward as one line.
 */
export function sshdForwarding(
  options: ServerForwardingOptions,
  log: (line: string) => void,
): ServerForwarding {
  return serverForwarding({
    ...options,
    onRefused: (request, reason, info: ConnectionInfo) =>
      log(
        `forward refused ${requestText(request)}` +
          (info.username
            ? ` user=${JSON.stringify(info.username).slice(1, -1)}`
            : "") +
          (info.remoteAddress ? ` from=${info.remoteAddress}` : "") +
          ` reason=${JSON.stringify(reason)}`,
      ),
  });
}
