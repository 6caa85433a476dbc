/**
 * SFTP version 3 (draft-ietf-secsh-filexfer-02) with OpenSSH's extensions
 * (OpenSSH PROTOCOL section 4), client and server.
 *
 * - {@linkcode openSftp} starts the `sftp` subsystem on an `SshClient` and
 *   returns an {@linkcode SftpClient}; {@linkcode SftpClient.open} runs over
 *   any `{ readable, writable }` pair. Files stream with many requests in
 *   flight, sized from `limits@openssh.com`; `get`/`put` move whole files
 *   with progress callbacks; failures are {@linkcode SftpError}s naming
 *   the path.
 * - {@linkcode sftpSubsystem} (for `commandSessionHandler`'s `subsystems`)
 *   and {@linkcode serveSftp} serve a local directory, chroot-style, with an
 *   optional read-only mode.
 *
 * @example Our client against our server over an in-memory pipe
 * ```ts
 * import { SftpClient, serveSftp, SftpError, SftpStatus } from "@fynx/ssh/sftp";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * const up = new TransformStream<Uint8Array, Uint8Array>();
 * const down = new TransformStream<Uint8Array, Uint8Array>();
 * const served = serveSftp({ readable: up.readable, writable: down.writable }, {
 *   root,
 * });
 * const sftp = await SftpClient.open({
 *   readable: down.readable,
 *   writable: up.writable,
 * });
 * await sftp.mkdir("/docs");
 * await sftp.writeFile("/docs/a.txt", new TextEncoder().encode("alpha"));
 * assert.equal((await sftp.stat("/docs/a.txt")).size, 5);
 * const err = await sftp.stat("/nope").catch((e) => e);
 * assert.ok(err instanceof SftpError);
 * assert.equal(err.code, SftpStatus.NO_SUCH_FILE);
 * assert.match(err.message, /\/nope/);
 * await sftp.close();
 * await served;
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @module
 */
export {
  openSftp,
  SftpClient,
  type SftpClientOptions,
  SftpDir,
  type SftpEntry,
  SftpError,
  SftpFile,
  type SftpLimits,
  type SftpOpenMode,
  type SftpProgress,
  type SftpReadOptions,
  type SftpSessionOpener,
  type SftpStatVfs,
  type SftpStream,
  type SftpStreamPair,
  type SftpSubsystemChannel,
  type SftpTransferOptions,
  type SftpWriteOptions,
} from "./client.ts";
export {
  serveSftp,
  type SftpServerChannel,
  type SftpServerOptions,
  sftpSubsystem,
} from "./server.ts";
export {
  longName,
  modeString,
  OpenFlags,
  type SftpAttributes,
  SftpStatus,
} from "./_protocol.ts";
