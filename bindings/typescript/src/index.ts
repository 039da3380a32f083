/**
 * roomwire for browsers and Node >= 20: `connect(url, { token })` to a room over WebSocket
 * (DESIGN §7.2), and the sans-IO client core underneath it for custom drivers.
 */
export { Code, type CodeName, codeName, isRetryable } from "./codes.js";
export { ClientConnection, type ClientConfig, PROTOCOL_VERSION, type ResumeInfo } from "./connection.js";
export { type JsonObject, type JsonValue, encodePayload } from "./encode.js";
export { type Frame, decodeServerFrame } from "./frames.js";
export {
  ConnectionClosedError,
  InvalidRequest,
  LocalProtocolError,
  MessageTooLarge,
  RemoteProtocolError,
  RequestRefusedError,
  RoomError,
} from "./errors.js";
export {
  type ClientEvent,
  type Limits,
  NEED_DATA,
  type NeedData,
  type RemoteParticipant,
  type RoomMessage,
  type UpwardMessage,
} from "./events.js";
export { SimpleValue } from "./decode.js";
export type { State } from "./state.js";
export {
  type ConnectOptions,
  DEFAULT_RECONNECT,
  type MessageInput,
  Messaging,
  type MessagingEventName,
  type Recipient,
  type Reconnected,
  type ReconnectPolicy,
  Room,
  type SendOptions,
  connect,
} from "./room.js";
export type { SendReceipt } from "./link.js";
export type { WebSocketConstructor, WebSocketLike } from "./transport.js";
export {
  type MessageStreamChunk,
  MessageStreamReader,
  MessageStreamWriter,
  NoHandlerError,
  type RequestHandler,
  RequestError,
  RequestTimeoutError,
  StreamError,
} from "./rpc.js";
