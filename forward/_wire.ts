/**
 * Wire encodings of the forwarding channel opens and global requests:
 * RFC 4254 sections 7.1 (`tcpip-forward`, `cancel-tcpip-forward`) and 7.2
 * (`direct-tcpip`, `forwarded-tcpip`), and OpenSSH PROTOCOL section 2.4
 * (`direct-streamlocal@openssh.com`, `forwarded-streamlocal@openssh.com`,
 * `streamlocal-forward@openssh.com`,
 * `cancel-streamlocal-forward@openssh.com`).
 *
 * Every field is bounded before use: host names to NI_MAXHOST (1025) bytes
 * as OpenSSH does, socket paths to 4096 bytes, ports to 0..65535.
 *
 * @module
 */
import { SshReader } from "../wire/reader.ts";
import { SshWriter } from "../wire/writer.ts";

/** Longest host name or address accepted from the peer (NI_MAXHOST). */
export const MAX_HOST = 1025;
/** Longest socket path accepted from the peer (PATH_MAX). */
export const MAX_PATH = 4096;

/** Channel type of a local (`-L`) TCP forward, RFC 4254 section 7.2. */
export const DIRECT_TCPIP = "direct-tcpip";
/** Channel type of a remote (`-R`) TCP forward, RFC 4254 section 7.2. */
export const FORWARDED_TCPIP = "forwarded-tcpip";
/** Channel type of a local Unix-socket forward, OpenSSH PROTOCOL 2.4. */
export const DIRECT_STREAMLOCAL = "direct-streamlocal@openssh.com";
/** Channel type of a remote Unix-socket forward, OpenSSH PROTOCOL 2.4. */
export const FORWARDED_STREAMLOCAL = "forwarded-streamlocal@openssh.com";
/** Global request for a remote TCP listener, RFC 4254 section 7.1. */
export const TCPIP_FORWARD = "tcpip-forward";
/** Global request ending a remote TCP listener, RFC 4254 section 7.1. */
export const CANCEL_TCPIP_FORWARD = "cancel-tcpip-forward";
/** Global request for a remote Unix-socket listener, OpenSSH PROTOCOL 2.4. */
export const STREAMLOCAL_FORWARD = "streamlocal-forward@openssh.com";
/** Global request ending a remote Unix-socket listener. */
export const CANCEL_STREAMLOCAL_FORWARD =
  "cancel-streamlocal-forward@openssh.com";

/**
 * The fields of `direct-tcpip` and `forwarded-tcpip` opens: where to
 * connect (or which listener was connected), and who connected.
 */
export interface TcpipOpen {
  /** `direct-tcpip`: host to connect; `forwarded-tcpip`: listen address. */
  host: string;
  /** The matching port. */
  port: number;
  /** Address of the connecting peer. */
  originatorAddress: string;
  /** Port of the connecting peer. */
  originatorPort: number;
}

function port(r: SshReader, what: string): number {
  const p = r.uint32();
  if (p > 0xffff) {
    throw new RangeError(
      `Malformed ${r.context}: ${what} ${p} is not within 0..65535`,
    );
  }
  return p;
}

/** Encodes the fields of a `direct-tcpip` or `forwarded-tcpip` open. */
export function encodeTcpipOpen(open: TcpipOpen): Uint8Array {
  return new SshWriter(64 + open.host.length).string(open.host)
    .uint32(open.port).string(open.originatorAddress)
    .uint32(open.originatorPort).bytes();
}

/** Decodes the fields of a `direct-tcpip` or `forwarded-tcpip` open. */
export function decodeTcpipOpen(data: Uint8Array, type: string): TcpipOpen {
  const r = new SshReader(data, type);
  const host = r.utf8(MAX_HOST);
  const p = port(r, "port");
  const originatorAddress = r.utf8(MAX_HOST);
  const originatorPort = port(r, "originator port");
  r.end();
  return { host, port: p, originatorAddress, originatorPort };
}

/**
 * Encodes a `direct-streamlocal@openssh.com` open: the socket path, then a
 * reserved string and uint32 (OpenSSH PROTOCOL 2.4).
 */
export function encodeDirectStreamLocal(path: string): Uint8Array {
  return new SshWriter(16 + path.length).string(path).string("").uint32(0)
    .bytes();
}

/** Decodes a `direct-streamlocal@openssh.com` open; returns the path. */
export function decodeDirectStreamLocal(data: Uint8Array): string {
  const r = new SshReader(data, DIRECT_STREAMLOCAL);
  const path = r.utf8(MAX_PATH);
  r.string(MAX_HOST);
  port(r, "reserved port");
  r.end();
  return path;
}

/**
 * Encodes a `forwarded-streamlocal@openssh.com` open: the listening socket
 * path and a reserved string.
 */
export function encodeForwardedStreamLocal(path: string): Uint8Array {
  return new SshWriter(16 + path.length).string(path).string("").bytes();
}

/** Decodes a `forwarded-streamlocal@openssh.com` open; returns the path. */
export function decodeForwardedStreamLocal(data: Uint8Array): string {
  const r = new SshReader(data, FORWARDED_STREAMLOCAL);
  const path = r.utf8(MAX_PATH);
  // OpenSSH sends a reserved string; tolerate its absence.
  if (r.remaining > 0) r.string(MAX_HOST);
  r.end();
  return path;
}

/** Encodes `tcpip-forward` / `cancel-tcpip-forward`: address, port. */
export function encodeTcpipForward(address: string, p: number): Uint8Array {
  return new SshWriter(16 + address.length).string(address).uint32(p).bytes();
}

/**
 * Decodes `tcpip-forward` / `cancel-tcpip-forward`. Trailing bytes are
 * ignored, as sshd does.
 */
export function decodeTcpipForward(
  data: Uint8Array,
  name: string,
): { address: string; port: number } {
  const r = new SshReader(data, name);
  const address = r.utf8(MAX_HOST);
  return { address, port: port(r, "port") };
}

/** Encodes `(cancel-)streamlocal-forward@openssh.com`: the socket path. */
export function encodeStreamLocalForward(path: string): Uint8Array {
  return new SshWriter(8 + path.length).string(path).bytes();
}

/** Decodes `(cancel-)streamlocal-forward@openssh.com`; returns the path. */
export function decodeStreamLocalForward(
  data: Uint8Array,
  name: string,
): string {
  return new SshReader(data, name).utf8(MAX_PATH);
}

/** Decodes the reply to a `tcpip-forward` for port 0: the allocated port. */
export function decodeAllocatedPort(data: Uint8Array): number {
  const r = new SshReader(data, "tcpip-forward reply");
  const p = port(r, "allocated port");
  if (p === 0) {
    throw new RangeError(
      "Malformed tcpip-forward reply: allocated port 0",
    );
  }
  return p;
}

/** Encodes the reply to a `tcpip-forward` for port 0. */
export function encodeAllocatedPort(p: number): Uint8Array {
  return new SshWriter(4).uint32(p).bytes();
}
