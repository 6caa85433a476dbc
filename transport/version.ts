/**
 * Protocol version exchange (RFC 4253 section 4.2).
 *
 * @module
 */
import { DisconnectError } from "../errors.ts";
import { DisconnectReason } from "../wire/messages.ts";
import type { ByteReader } from "./_byte_reader.ts";

/** Longest identification line, CR LF included (RFC 4253 section 4.2). */
export const MAX_VERSION_LINE = 255;
/** How many lines a server may send before its identification. */
export const MAX_PRE_BANNER_LINES = 1024;
/** Our software version, as it appears after `SSH-2.0-`. */
export const SOFTWARE_VERSION = "Fynx_0.1";

const decoder = new TextDecoder();

/** Validates an identification string we are about to send. */
export function makeIdentification(
  software: string = SOFTWARE_VERSION,
  comment?: string,
): string {
  const id = `SSH-2.0-${software}${comment ? " " + comment : ""}`;
  if (
    !/^[\x21-\x2c\x2e-\x7e]+( [\x20-\x7e]*)?$/.test(id.slice(8)) ||
    id.length + 2 > MAX_VERSION_LINE
  ) {
    throw new TypeError(
      `Invalid SSH identification string: ${JSON.stringify(id)}`,
    );
  }
  return id;
}

/**
 * Reads the peer's identification line and returns it without CR LF.
 *
 * A client accepts up to {@linkcode MAX_PRE_BANNER_LINES} other lines first
 * (RFC 4253 section 4.2 allows servers to send them); a server requires the
 * very first line to be the identification. Lines are read in chunks and
 * split, never byte by byte; bytes after the line stay in the reader.
 */
export async function readIdentification(
  reader: ByteReader,
  side: "client" | "server",
): Promise<string> {
  let line = new Uint8Array(0);
  let lines = 0;
  for (;;) {
    const chunk = await reader.readSome(MAX_VERSION_LINE + 1);
    if (chunk === null) {
      throw new DisconnectError(
        DisconnectReason.CONNECTION_LOST,
        lines === 0 && line.length === 0
          ? "Connection closed before the SSH identification line"
          : "Connection closed in the middle of the SSH identification line",
      );
    }
    const joined = new Uint8Array(line.length + chunk.length);
    joined.set(line);
    joined.set(chunk, line.length);
    let start = 0;
    let nl: number;
    while ((nl = joined.indexOf(0x0a, start)) !== -1) {
      const raw = joined.subarray(start, nl);
      start = nl + 1;
      if (raw.length + 1 > MAX_VERSION_LINE) {
        throw new DisconnectError(
          DisconnectReason.PROTOCOL_ERROR,
          `Identification line too long (${
            raw.length + 1
          } bytes, limit ${MAX_VERSION_LINE})`,
        );
      }
      const text = decoder.decode(
        raw[raw.length - 1] === 0x0d ? raw.subarray(0, raw.length - 1) : raw,
      );
      if (text.startsWith("SSH-")) {
        reader.unshift(joined.slice(start));
        return checkVersion(text);
      }
      if (side === "server") {
        throw new DisconnectError(
          DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED,
          `Expected an SSH-2.0 identification line, got ${
            JSON.stringify(text.slice(0, 64))
          }`,
        );
      }
      if (++lines > MAX_PRE_BANNER_LINES) {
        throw new DisconnectError(
          DisconnectReason.PROTOCOL_ERROR,
          `More than ${MAX_PRE_BANNER_LINES} lines before the SSH identification line`,
        );
      }
    }
    line = joined.slice(start);
    if (line.length > MAX_VERSION_LINE) {
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_ERROR,
        `Identification line too long (over ${MAX_VERSION_LINE} bytes without a line end)`,
      );
    }
    if (
      side === "server" && line.length >= 4 &&
      decoder.decode(line.subarray(0, 4)) !== "SSH-"
    ) {
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED,
        `Expected an SSH-2.0 identification line, got ${
          JSON.stringify(decoder.decode(line.subarray(0, 32)))
        }`,
      );
    }
  }
}

function checkVersion(text: string): string {
  // "SSH-1.99" announces a server that also speaks 2.0 (RFC 4253 section 5.1).
  if (!text.startsWith("SSH-2.0-") && !text.startsWith("SSH-1.99-")) {
    throw new DisconnectError(
      DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED,
      `Unsupported SSH protocol version in ${
        JSON.stringify(text.slice(0, 64))
      }`,
    );
  }
  // Control characters are exactly what this check looks for.
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(text)) {
    throw new DisconnectError(
      DisconnectReason.PROTOCOL_ERROR,
      "Identification line contains control characters",
    );
  }
  return text;
}
