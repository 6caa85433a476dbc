/**
 * The SSH connection protocol (RFC 4254): {@linkcode Connection} with its
 * channel table and flow control, session channels for clients
 * ({@linkcode ClientSession}) and servers ({@linkcode ServerSession}), and
 * {@linkcode commandSessionHandler}, which runs commands and shells.
 *
 * @module
 */
export {
  Connection,
  type ConnectionLink,
  type ConnectionOptions,
  type GlobalRequestHandler,
} from "./connection.ts";
export type {
  ByteChannel,
  ChannelOpenHandler,
  IncomingChannel,
} from "./channel.ts";
export type {
  ClientSession,
  ExecOptions,
  ExecResult,
  ExitStatus,
  PtyRequest,
  ServerSession,
  SessionContext,
  SessionRequest,
  SessionRequestHandler,
  SessionRestrictions,
  WindowSize,
} from "./session.ts";
export {
  commandSessionHandler,
  type CommandSessionHandlerOptions,
} from "./command_handler.ts";
