/**
 * SSH wire encoding: the data types of RFC 4251 section 5 and message numbers.
 *
 * @module
 */
export { SshReader } from "./reader.ts";
export {
  bigintToBytes,
  bytesToBigint,
  encodeMpint,
  encodeMpintBytes,
  SshWriter,
} from "./writer.ts";
export { ChannelOpenFailure, DisconnectReason, Msg } from "./messages.ts";
