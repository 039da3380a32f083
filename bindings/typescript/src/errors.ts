/**
 * The error hierarchy, as in `roomwire._errors`: API misuse is local (thrown at the call,
 * before anything is queued), peer garbage is remote (thrown only from `nextEvent`, after a
 * close frame with the same code and reason was queued). Every error has `.code` (number)
 * and `.codeName` (e.g. "NOT_FOUND").
 */
import { Code, codeName } from "./codes.js";

/** Base of every error roomwire throws; `reason` is a specific sentence for humans. */
export class RoomError extends Error {
  readonly code: number;
  readonly codeName: string;
  readonly reason: string;

  constructor(reason: string, code: number) {
    super(reason);
    this.name = new.target.name;
    this.reason = reason;
    this.code = code;
    this.codeName = codeName(code) ?? "UNKNOWN";
  }
}

/** The caller broke a rule (wrong state, closed connection). */
export class LocalProtocolError extends RoomError {
  constructor(reason: string, code: number = Code.PROTOCOL_ERROR) {
    super(reason, code);
  }
}

/** A verb's arguments break a content rule (type, message, attributes, recipients). */
export class InvalidRequest extends LocalProtocolError {
  constructor(reason: string) {
    super(reason, Code.INVALID_REQUEST);
  }
}

/** The encoded request is larger than the limit the server advertised. */
export class MessageTooLarge extends LocalProtocolError {
  constructor(reason: string) {
    super(reason, Code.TOO_LARGE);
  }
}

/** The server sent something invalid; a close frame with this code is already queued. */
export class RemoteProtocolError extends RoomError {
  constructor(reason: string, code: number = Code.PROTOCOL_ERROR) {
    super(reason, code);
  }
}

/** The server refused one request (an `error` frame); the connection stays open. */
export class RequestRefusedError extends RoomError {}

/** The connection ended (or could not be made) before the request was answered. */
export class ConnectionClosedError extends RoomError {}
