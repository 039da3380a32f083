/**
 * What the client core reports, one event per `nextEvent` call (as `roomwire.events`, with
 * camelCase fields): a discriminated union on `event`, named as the reference's classes.
 */
import type { JsonObject } from "./encode.js";

/** A participant with messaging enabled, or this connection's own. */
export interface RemoteParticipant {
  readonly id: string;
  readonly name: string;
  readonly role: string;
  /** Attributes the participant set for itself (a decoded CBOR map). */
  readonly attributes: JsonObject;
}

/** A message delivered to this participant, stamped by the server. */
export interface RoomMessage {
  readonly id: string;
  /** The room's sequence number (gaps are normal). */
  readonly seq: number | bigint;
  /** Server time in seconds when the message was routed. */
  readonly timestamp: number;
  readonly fromParticipantId: string;
  readonly type: string;
  readonly message: JsonObject;
  readonly attachment: Uint8Array | null;
  readonly broadcast: boolean;
}

/** The limits the server advertised in its welcome (PROTOCOL.md §14). */
export interface Limits {
  /** Largest frame body either side may send. */
  readonly maxFrameSize: number;
  /** Largest send / broadcast / attrs frame body the server accepts. */
  readonly maxSendSize: number;
  /** Most recipients one send may name. */
  readonly maxRecipients: number;
  /** Longest message type, in characters (code points). */
  readonly maxTypeLength: number;
  /** Largest encoded attributes object a participant may hold. */
  readonly maxAttributesSize: number;
  /** Most messages one `history` request may ask for (1000 when the server does not say). */
  readonly maxHistoryLimit: number;
  /** Most calls this connection may have waiting for answers (256 when not said). */
  readonly maxPendingCalls: number;
  /** Bytes of a stream a writer may send ahead of the reader's credit (1 MiB when not said). */
  readonly streamWindow: number;
  /** Most streams this connection may write or read at once (8 when not said). */
  readonly maxOpenStreams: number;
  /** Seconds the server remembers a send's idempotency key (120 when not said; §26). */
  readonly idempotencyWindow: number;
  /** Most idempotency keys the server remembers per sender identity (1000 when not said). */
  readonly maxIdempotencyKeys: number;
}

/** A message a user sent, as the room's service receives it (PROTOCOL.md §23). */
export interface UpwardMessage {
  /** The message id: name it in the decision. */
  readonly id: string;
  /** Server time in seconds when the message was accepted. */
  readonly timestamp: number;
  readonly fromParticipantId: string;
  readonly type: string;
  readonly message: JsonObject;
  readonly attachment: Uint8Array | null;
  /** The ids the sender asked for: `[]` for the service only, null for a broadcast. */
  readonly recipients: readonly string[] | null;
}

export type ClientEvent =
  | {
      readonly event: "Connected";
      readonly participant: RemoteParticipant;
      readonly room: string;
      readonly limits: Limits;
      readonly heartbeatInterval: number;
      readonly heartbeatTimeout: number;
      /** The hello's resume took its participant back (PROTOCOL.md §22). */
      readonly resumed: boolean;
      /** Nothing since the resume's position was lost: `missed` messages follow first. */
      readonly recovered: boolean;
      /** Messages replayed after the welcome. */
      readonly missed: number;
    }
  | { readonly event: "MessagingEnabled"; readonly requestId: number; readonly participants: readonly RemoteParticipant[] }
  | { readonly event: "MessagingDisabled"; readonly requestId: number }
  | { readonly event: "MessageReceived"; readonly message: RoomMessage }
  | { readonly event: "ParticipantAdded"; readonly participant: RemoteParticipant; readonly seq: number | bigint }
  | { readonly event: "ParticipantRemoved"; readonly participant: RemoteParticipant; readonly seq: number | bigint }
  | { readonly event: "ParticipantUpdated"; readonly participant: RemoteParticipant; readonly seq: number | bigint }
  | {
      readonly event: "RequestAcked";
      readonly requestId: number;
      readonly messageId: string | null;
      /** For a send or broadcast: participants it was queued for, the sender not counted
       * (null while a service decides it, for other requests, and from older servers). */
      readonly recipients: number | null;
      /** A repeated idempotency key: not delivered again; id and count are the first's. */
      readonly duplicate: boolean;
    }
  | {
      readonly event: "HistoryReceived";
      readonly requestId: number;
      readonly messages: readonly RoomMessage[];
      /** The room's history epoch (PROTOCOL.md §21.2); null from a server older than epochs. */
      readonly epoch: string | null;
      /** True when the position asked for was not honoured (another epoch, or dropped). */
      readonly reset: boolean;
    }
  | { readonly event: "RequestRefused"; readonly requestId: number; readonly code: number; readonly reason: string }
  | { readonly event: "ConnectionClosed"; readonly code: number; readonly reason: string; readonly byPeer: boolean }
  | { readonly event: "CallReceived"; readonly call: RoomMessage }
  | { readonly event: "CallAnswered"; readonly requestId: number; readonly reply: RoomMessage }
  | { readonly event: "CallFailed"; readonly requestId: number; readonly code: number; readonly reason: string }
  | { readonly event: "CallCancelled"; readonly callId: string }
  | {
      readonly event: "StreamOffered";
      readonly streamId: string;
      readonly fromParticipantId: string;
      readonly header: JsonObject;
      readonly timestamp: number;
    }
  | { readonly event: "ChunkReceived"; readonly streamId: string; readonly data: Uint8Array; readonly header: JsonObject | null }
  | { readonly event: "CreditGranted"; readonly streamId: string; readonly n: number }
  | { readonly event: "StreamEnded"; readonly streamId: string }
  | { readonly event: "StreamAborted"; readonly streamId: string; readonly code: number; readonly reason: string }
  | { readonly event: "MessageIntercepted"; readonly message: UpwardMessage }
  | { readonly event: "InterceptTimedOut"; readonly messageId: string };

/** What `nextEvent` returns when no complete frame is waiting. */
export const NEED_DATA = Symbol("NEED_DATA");
export type NeedData = typeof NEED_DATA;
