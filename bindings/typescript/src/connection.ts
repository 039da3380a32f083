/**
 * The sans-IO client core: `roomwire.ClientConnection` over a message transport (PROTOCOL.md
 * §2.2: one frame body per WebSocket binary message, no length prefix).
 *
 * Construct it when the transport is up (it queues the hello). Hand it each message with
 * `receiveFrame`, and the end of the transport with `receiveEof`; read events with
 * `nextEvent(now)` until it returns `NEED_DATA`; call the verbs; after every call send each
 * of `framesToSend()` as one binary message. Re-arm a timer for `nextDeadline()` and call
 * `handleTimer(now)` when it fires. Times are in seconds.
 */
import { Code, closesConnection, codeName } from "./codes.js";
import { checkJson, encodePayload, widenIntegers, type JsonObject } from "./encode.js";
import { InvalidRequest, LocalProtocolError, MessageTooLarge, RemoteProtocolError } from "./errors.js";
import {
  type ClientEvent,
  type Limits,
  NEED_DATA,
  type NeedData,
  type RemoteParticipant,
  type RoomMessage,
  type UpwardMessage,
} from "./events.js";
import { LIMIT_DEFAULTS, LIMIT_FIELDS, asRecord, badFrame, decodeServerFrame, pyRepr, type Frame } from "./frames.js";
import { ParticipantView } from "./participants.js";
import { type Input, type State, TRANSITIONS } from "./state.js";

export const PROTOCOL_VERSION = 1;

export interface ClientConfig {
  /** Largest frame accepted before the welcome, and the most a server may advertise. */
  maxFrameSize?: number;
  /** Seconds to wait for the welcome. */
  handshakeTimeout?: number;
}

const DEFAULT_CONFIG: Required<ClientConfig> = { maxFrameSize: 16 * 1024 * 1024, handshakeTimeout: 10 };

type Closed = Extract<ClientEvent, { event: "ConnectionClosed" }>;

const NO_LIMITS: Limits = {
  maxFrameSize: 0,
  maxSendSize: 0,
  maxRecipients: 0,
  maxTypeLength: 0,
  maxAttributesSize: 0,
  maxHistoryLimit: 0,
  maxPendingCalls: 0,
  streamWindow: 0,
  maxOpenStreams: 0,
  idempotencyWindow: 0,
  maxIdempotencyKeys: 0,
};

/** Longest idempotency key, in characters (PROTOCOL.md §26). */
export const MAX_KEY_LENGTH = 64;

/** A `msg` frame, or one message of a history page, as the user sees it. */
function messageFromWire(frame: Record<string, unknown>): RoomMessage {
  return {
    id: frame.id as string,
    seq: frame.seq as number,
    timestamp: Number(frame.ts),
    fromParticipantId: frame.from as string,
    type: frame.type as string,
    message: frame.message as JsonObject,
    attachment: (frame.att as Uint8Array | undefined) ?? null,
    broadcast: frame.bc as boolean,
  };
}

/** A `svc_msg` frame, as the room's service sees it. */
function upwardFromWire(frame: Record<string, unknown>): UpwardMessage {
  return {
    id: frame.id as string,
    timestamp: Number(frame.ts),
    fromParticipantId: frame.from as string,
    type: frame.type as string,
    message: frame.message as JsonObject,
    attachment: (frame.att as Uint8Array | undefined) ?? null,
    recipients: frame.to as string[] | null,
  };
}

function participantFromWire(value: unknown): RemoteParticipant {
  const record = asRecord(value)!; // the shape check made sure
  return {
    id: record.id as string,
    name: record.name as string,
    role: record.role as string,
    attributes: record.attributes as JsonObject,
  };
}

export class ClientConnection extends ParticipantView {
  readonly config: Required<ClientConfig>;
  private _state: State = "HANDSHAKE";
  private readonly inbox: (Uint8Array | null)[] = []; // null: the transport ended
  private inboxHead = 0;
  private outbox: Uint8Array[] = [];
  private closed: Closed | null = null;
  private eof = false;
  private maxFrameSize: number;
  private nextRid = 1;
  private readonly pending = new Map<number, [Input, JsonObject | null]>();
  private snapshot: RemoteParticipant[] = [];
  private historyPages: RoomMessage[] = [];
  private me: RemoteParticipant = { id: "", name: "", role: "", attributes: {} };
  private connected = false;
  private _room: string | null;
  private _limits: Limits = NO_LIMITS;
  private interval = 0;
  private timeout = 0;
  private deadline: number;
  private closeSent: Closed = { event: "ConnectionClosed", code: Code.NORMAL, reason: "", byPeer: false };
  // Resume (PROTOCOL.md §22): the last welcome's secret and epoch, the position, and how
  // messaging is enabled (null: not; else with presence or not).
  private readonly resume: ResumeInfo | null;
  private secret: string | null = null;
  private epoch = "";
  private position = 0;
  private enabledWith: boolean | null = null;
  private asked = true;

  /** `resume`: the last connection's `resumeInfo`, to take its participant back and get
   * what it missed (PROTOCOL.md §22). */
  constructor(options: {
    token: string;
    now: number;
    room?: string | null;
    config?: ClientConfig;
    resume?: ResumeInfo | null;
  }) {
    super();
    this.config = { ...DEFAULT_CONFIG, ...options.config };
    this.maxFrameSize = this.config.maxFrameSize;
    this._room = options.room ?? null;
    this.deadline = options.now + this.config.handshakeTimeout;
    const hello: Record<string, unknown> = { t: "hello", v: PROTOCOL_VERSION, token: options.token };
    if (this._room !== null) hello.room = this._room;
    this.resume = options.resume ?? null;
    if (this.resume !== null) hello.resume = resumeFrame(this.resume);
    this.send(hello);
    this.move("HELLO");
  }

  // --- what the client knows --------------------------------------------------------------

  /** The state after the last event returned (or verb called). */
  get state(): State {
    return this._state;
  }

  /** What the next connection presents to resume this one (`new ClientConnection({...,
   * resume})`), up to the last message or presence change processed; null before the
   * welcome, or when the server does not resume (PROTOCOL.md §22). */
  get resumeInfo(): ResumeInfo | null {
    if (this.secret === null) return null;
    return {
      participantId: this.me.id,
      secret: this.secret,
      epoch: this.epoch,
      seq: this.position,
      enabled: this.enabledWith !== null,
      presence: this.enabledWith !== false,
    };
  }

  /** This connection's participant, once the welcome arrived. */
  get localParticipant(): RemoteParticipant | null {
    return this.connected ? this.me : null;
  }

  /** The room: as asked for until the welcome, then as the server confirmed. */
  get room(): string | null {
    return this._room;
  }

  /** The server's advertised limits, once the welcome arrived. */
  get limits(): Limits | null {
    return this.connected ? this._limits : null;
  }

  // --- the transport's doors --------------------------------------------------------------

  /** Buffer one message from the server; nothing is decoded until `nextEvent`. */
  receiveFrame(payload: Uint8Array): void {
    if (this.eof) throw new LocalProtocolError("receiveFrame called after EOF");
    if (this._state !== "CLOSED") this.inbox.push(payload);
  }

  /** The transport ended; `nextEvent` reports CONNECTION_LOST unless a close came first. */
  receiveEof(): void {
    if (this.eof) throw new LocalProtocolError("receiveEof called twice");
    this.eof = true;
    if (this._state !== "CLOSED") this.inbox.push(null);
  }

  /** Take every frame queued for the server, each one binary message. */
  framesToSend(): Uint8Array[] {
    const frames = this.outbox;
    this.outbox = [];
    return frames;
  }

  // --- verbs: each queues one frame and returns its request id -------------------------

  /** Ask to enable messaging; `MessagingEnabled` (with the snapshot) or `RequestRefused`
   * answers it. `presence: false` asks for no presence at all. */
  enable({ presence = true }: { presence?: boolean } = {}): number {
    this.checkAllowed("ENABLE", "enable");
    const rid = this.request("ENABLE", { t: "enable", presence });
    this.asked = presence;
    return rid;
  }

  /** Ask to disable messaging; `MessagingDisabled` answers it. */
  disable(): number {
    this.checkAllowed("DISABLE", "disable");
    return this.request("DISABLE", { t: "disable" });
  }

  /** Send to one participant id or a list of them; `RequestAcked` (with the message id and
   * the recipients count) or `RequestRefused` answers it. `idempotencyKey` (1 to 64
   * characters): the server delivers a key at most once within its idempotency window; a
   * repeat is acked with the first id (`duplicate`). Re-send with the same key after a
   * reconnect (PROTOCOL.md §26). */
  sendMessage(
    to: string | readonly string[],
    type: string,
    message: JsonObject,
    attachment?: Uint8Array | null,
    idempotencyKey?: string | null,
  ): number {
    this.checkAllowed("SEND", "send a message");
    let recipients: string[];
    if (typeof to === "string") {
      recipients = [to];
    } else {
      if (!Array.isArray(to) || !to.every((r) => typeof r === "string")) {
        throw new InvalidRequest("recipients must be participant ids (strings)");
      }
      recipients = [...new Set(to)]; // as the server counts them
      const most = this._limits.maxRecipients;
      if (recipients.length === 0 || recipients.length > most) {
        throw new InvalidRequest(`a send names 1 to ${most} recipients`);
      }
    }
    const frame = this.messageFrame("send", type, message, attachment, idempotencyKey);
    frame.to = recipients;
    return this.request("SEND", frame);
  }

  /** Send to every other participant with messaging enabled (`idempotencyKey`: as for
   * `sendMessage`). */
  broadcastMessage(type: string, message: JsonObject, attachment?: Uint8Array | null, idempotencyKey?: string | null): number {
    this.checkAllowed("SEND", "broadcast a message");
    return this.request("SEND", this.messageFrame("broadcast", type, message, attachment, idempotencyKey));
  }

  /** Merge `attributes` into this participant's own (a null value removes a key). */
  setAttributes(attributes: JsonObject): number {
    this.checkAllowed("ATTRIBUTES", "set attributes");
    const json = checkJson(attributes);
    if (!json) throw new InvalidRequest("attributes must be a JSON object");
    const merged: JsonObject = { ...this.me.attributes };
    for (const [key, value] of Object.entries(attributes)) {
      if (value === null) delete merged[key];
      else merged[key] = value;
    }
    const most = this._limits.maxAttributesSize;
    if (encodePayload(widenIntegers(merged) as object).length > most) {
      throw new MessageTooLarge(`attributes would be over the ${most}-byte limit`);
    }
    const wire = json === "wide" ? widenIntegers(attributes) : attributes;
    return this.request("ATTRIBUTES", { t: "attrs", attributes: wire }, merged);
  }

  /** Ask for the room's messages this participant may read (broadcasts, and direct messages
   * to or from its name): after seq `since` (exclusive), oldest first, or newest first with
   * `reverse`; at most `limit`, up to the advertised `maxHistoryLimit`. `HistoryReceived` or
   * `RequestRefused` answers it. `epoch`: the one `since` was seen in (PROTOCOL.md §21.2). */
  history({
    limit = 100,
    since = null,
    reverse = false,
    epoch = null,
  }: { limit?: number; since?: number | null; reverse?: boolean; epoch?: string | null } = {}): number {
    this.checkAllowed("HISTORY", "read history");
    const most = this._limits.maxHistoryLimit;
    if (!Number.isInteger(limit) || limit < 1 || limit > most) {
      throw new InvalidRequest(`limit must be an integer from 1 to ${most}`);
    }
    if (since !== null && (!Number.isInteger(since) || since < 0)) {
      throw new InvalidRequest("since must be None or a seq (an integer of 0 or more)");
    }
    const frame: Record<string, unknown> = { t: "history", limit, reverse };
    if (since !== null) frame.since = since;
    if (epoch !== null) frame.epoch = epoch;
    return this.request("HISTORY", frame);
  }

  // --- participant RPC (PROTOCOL.md §24) -------------------------------------------------

  /** Call one participant (by id); its one answer is `CallAnswered`, `CallFailed` (the
   * callee's error) or `RequestRefused` (the server's). */
  call(to: string, type: string, message: JsonObject, attachment?: Uint8Array | null): number {
    this.checkAllowed("CALL", "call a participant");
    if (typeof to !== "string") throw new InvalidRequest("a call names one participant id (a string)");
    const frame = this.messageFrame("call", type, message, attachment);
    frame.to = to;
    return this.request("CALL", frame);
  }

  /** Answer call `callId` (from `CallReceived`); `RequestAcked` or `RequestRefused`. */
  answer(callId: string, message: JsonObject, attachment?: Uint8Array | null): number {
    this.checkAllowed("ANSWER", "answer a call");
    const json = checkJson(message);
    if (!json) throw new InvalidRequest("message must be a JSON object (str keys, JSON values)");
    const frame: Record<string, unknown> = { t: "answer", id: callId, message: json === "wide" ? widenIntegers(message) : message };
    if (attachment !== undefined && attachment !== null) frame.att = plainBytes(attachment, "attachment");
    return this.answerFrame(frame);
  }

  /** Answer call `callId` with an error: `code` (any integer) and `reason` reach the caller. */
  failCall(callId: string, code: number, reason: string): number {
    this.checkAllowed("ANSWER", "answer a call");
    if (!Number.isSafeInteger(code) || typeof reason !== "string") {
      throw new InvalidRequest("a call's error is an integer code and a str reason");
    }
    return this.answerFrame({ t: "answer", id: callId, code, reason });
  }

  /** Give up on call `requestId`: the callee is told; the call still gets its one answer. */
  cancelCall(requestId: number): void {
    this.checkAllowed("CANCEL", "cancel a call");
    this.send({ t: "cancel", rid: requestId });
    this.move("CANCEL");
  }

  // --- streams (PROTOCOL.md §24.4) ------------------------------------------------------

  /** Open a stream to one participant; `RequestAcked` (its `messageId` is the stream id)
   * once the reader accepted. */
  openStream(to: string, header: JsonObject): number {
    this.checkAllowed("STREAM", "open a stream");
    if (typeof to !== "string") throw new InvalidRequest("a stream goes to one participant id (a string)");
    const json = checkJson(header);
    if (!json) throw new InvalidRequest("header must be a JSON object (str keys, JSON values)");
    return this.request("STREAM", { t: "open", to, header: json === "wide" ? widenIntegers(header) : header });
  }

  /** Accept a stream offered by `StreamOffered`. */
  acceptStream(streamId: string): number {
    this.checkAllowed("STREAM", "accept a stream");
    return this.request("STREAM", { t: "accept", sid: streamIdOf(streamId) });
  }

  /** Queue a chunk of a stream this participant writes (within the reader's credit). */
  sendChunk(streamId: string, data: Uint8Array, header?: JsonObject | null): void {
    const frame: Record<string, unknown> = { t: "chunk", sid: streamIdOf(streamId), data: plainBytes(data, "data") };
    if (header !== undefined && header !== null) {
      const json = checkJson(header);
      if (!json) throw new InvalidRequest("a chunk's header must be a JSON object");
      frame.header = json === "wide" ? widenIntegers(header) : header;
    }
    this.streamFrame(frame);
  }

  /** Let the writer of a stream this participant reads send `n` more bytes. */
  grantCredit(streamId: string, n: number): void {
    if (!Number.isSafeInteger(n) || n < 1) throw new InvalidRequest("credit is a positive integer of bytes");
    this.streamFrame({ t: "credit", sid: streamIdOf(streamId), n });
  }

  /** End a stream this participant writes. */
  endStream(streamId: string): void {
    this.streamFrame({ t: "end", sid: streamIdOf(streamId) });
  }

  /** Fail (or refuse) a stream: the other side gets `StreamAborted` with `reason`. */
  abortStream(streamId: string, reason = ""): void {
    if (typeof reason !== "string") throw new InvalidRequest("reason must be a str");
    this.streamFrame({ t: "abort", sid: streamIdOf(streamId), reason });
  }

  private answerFrame(frame: Record<string, unknown>): number {
    if (typeof frame.id !== "string") throw new InvalidRequest("a call id is a string");
    return this.request("ANSWER", frame);
  }

  private streamFrame(frame: Record<string, unknown>): void {
    this.checkAllowed("STREAM_DATA", "use a stream");
    const data = encodePayload(frame);
    const most = this._limits.maxSendSize;
    if (data.length > most) {
      throw new MessageTooLarge(`${String(frame.t)} frame of ${data.length} bytes is over the server's ${most}-byte limit`);
    }
    this.outbox.push(data);
    this.move("STREAM_DATA");
  }

  // --- services (PROTOCOL.md §23) ----------------------------------------------------------

  /** Send to the room's service only (a `send` with no recipients). */
  sendToService(type: string, message: JsonObject, attachment?: Uint8Array | null, idempotencyKey?: string | null): number {
    this.checkAllowed("SEND", "send a message");
    const frame = this.messageFrame("send", type, message, attachment, idempotencyKey);
    frame.to = [];
    return this.request("SEND", frame);
  }

  /** Attach as the room's service (the token needs the `intercept` grant); from the `ack` on,
   * `MessageIntercepted` events bring the room's messages to decide. */
  attachService(): number {
    this.checkAllowed("SERVICE", "attach as the room's service");
    return this.request("SERVICE", { t: "svc_attach" });
  }

  /** Start a clean close; `ConnectionClosed` follows when the server answers. */
  close(code: number = Code.NORMAL, reason = ""): void {
    this.checkAllowed("LOCAL_CLOSE", "close");
    if (codeName(code) === undefined || !closesConnection(code) || code === Code.CONNECTION_LOST) {
      throw new InvalidRequest(`${code} is not a close code that can be sent`);
    }
    this.send({ t: "close", code, reason });
    this.move("LOCAL_CLOSE");
    this.closeSent = { event: "ConnectionClosed", code, reason, byPeer: false };
  }

  // --- time -------------------------------------------------------------------------------

  /** When `handleTimer` must next run, or null when no timer is needed. */
  nextDeadline(): number | null {
    return this._state === "CLOSED" ? null : this.deadline;
  }

  /** Apply timeouts; a close it causes comes out of `nextEvent`. */
  handleTimer(now: number): void {
    if (now < this.deadline || this._state === "CLOSED") return;
    if (this._state === "HANDSHAKE") {
      this.abort(Code.HANDSHAKE_TIMEOUT, "no welcome within the handshake timeout");
    } else if (this._state === "CLOSING") {
      this.finish("ABORT", this.closeSent.code, this.closeSent.reason, false);
    } else {
      this.abort(Code.HEARTBEAT_TIMEOUT, "nothing heard from the server in time");
    }
  }

  // --- events -----------------------------------------------------------------------------

  /** Decode one frame and apply it; `NEED_DATA` when none is waiting. Throws
   * `RemoteProtocolError` on invalid input, after queuing a close frame. */
  nextEvent(now: number): ClientEvent | NeedData {
    for (;;) {
      if (this.closed !== null) return this.closed;
      if (this.inboxHead === this.inbox.length) return NEED_DATA;
      const payload = this.inbox[this.inboxHead]!;
      this.inbox[this.inboxHead++] = null; // release it
      if (this.inboxHead === this.inbox.length) this.inbox.length = this.inboxHead = 0;
      if (payload === null) {
        // The server hung up without a close frame.
        return this.finish("ABORT", Code.CONNECTION_LOST, "the transport closed", true);
      }
      let event: ClientEvent | null;
      try {
        event = this.handle(this.decode(payload), now);
      } catch (error) {
        if (error instanceof RemoteProtocolError) {
          this.abort(error.code, error.reason);
        }
        throw error;
      }
      if (event !== null) return event;
    }
  }

  private decode(payload: Uint8Array): Frame {
    // The size comes first: a message over the limit is refused unread.
    if (payload.byteLength > this.maxFrameSize) {
      throw new RemoteProtocolError(
        `frame of ${payload.byteLength} bytes is over the ${this.maxFrameSize}-byte limit`,
        Code.FRAME_TOO_LARGE,
      );
    }
    if (payload.byteLength === 0) throw badFrame("empty frame");
    return decodeServerFrame(payload);
  }

  private handle(frame: Frame, now: number): ClientEvent | null {
    const kind = frame.t;
    switch (kind) {
      case "msg": {
        this.expect("DELIVERY", kind);
        this.heard(now);
        this.position = Math.max(this.position, Number(frame.seq));
        return { event: "MessageReceived", message: messageFromWire(frame) };
      }
      case "history":
        return this.historyPage(frame, now);
      case "ack":
      case "error":
      case "snapshot":
        return this.reply(frame, now);
      case "joined":
      case "updated":
      case "left":
        return this.presenceChange(frame, now);
      case "welcome":
        return this.welcome(frame, now);
      case "close":
        return this.peerClose(frame);
      case "call":
      case "cancel":
      case "open":
        this.expect("DELIVERY", kind);
        this.heard(now);
        if (kind === "call") return { event: "CallReceived", call: callFromWire(frame) };
        if (kind === "cancel") return { event: "CallCancelled", callId: frame.id as string };
        return {
          event: "StreamOffered",
          streamId: frame.sid as string,
          fromParticipantId: frame.from as string,
          header: frame.header as JsonObject,
          timestamp: Number(frame.ts),
        };
      case "result":
        return this.result(frame, now);
      case "chunk":
      case "credit":
      case "end":
      case "abort":
        return this.streamEvent(frame, now);
      case "svc_msg":
      case "svc_timeout":
        this.expect("DELIVERY", kind);
        this.heard(now);
        return kind === "svc_timeout"
          ? { event: "InterceptTimedOut", messageId: frame.id as string }
          : { event: "MessageIntercepted", message: upwardFromWire(frame) };
      default: // ping or pong: proof of life; a ping is answered
        this.expect("HEARTBEAT", kind);
        this.heard(now);
        if (kind === "ping" && this._state !== "CLOSING") this.send({ t: "pong" }); // nothing follows our close
        return null;
    }
  }

  private welcome(frame: Frame, now: number): ClientEvent | null {
    this.expect("WELCOME", "welcome");
    if (frame.v !== PROTOCOL_VERSION) {
      throw new RemoteProtocolError(
        `the server speaks version ${String(frame.v)}, not ${PROTOCOL_VERSION}`,
        Code.UNSUPPORTED_VERSION,
      );
    }
    const participant = participantFromWire(frame.participant);
    const wire = asRecord(frame.limits)!;
    const limits = Object.fromEntries(
      LIMIT_FIELDS.map((name) => [name.replace(/_(.)/g, (_, c: string) => c.toUpperCase()), Number(wire[name] ?? LIMIT_DEFAULTS[name])]),
    ) as unknown as Limits;
    const maxFrameSize = limits.maxFrameSize;
    const ceiling = this.config.maxFrameSize;
    if (maxFrameSize > ceiling) {
      throw new RemoteProtocolError(
        `the server sends frames of up to ${maxFrameSize} bytes, over this client's ${ceiling}-byte ceiling`,
        Code.FRAME_TOO_LARGE,
      );
    }
    // From now on the server's promise bounds what it sends (deliveries included).
    this.maxFrameSize = maxFrameSize;
    this.interval = Number(frame.hb);
    this.timeout = Number(frame.hbt);
    if (this._state === "CLOSING") return null;
    this.me = participant;
    this._room = frame.room as string;
    this._limits = limits;
    this.connected = true;
    this.heard(now);
    const recovered = frame.recovered === true;
    this.secret = typeof frame.resume === "string" ? frame.resume : null;
    this.epoch = typeof frame.epoch === "string" ? frame.epoch : "";
    // Recovered: the replay that follows starts after the old position.
    this.position = recovered && this.resume !== null ? this.resume.seq : Number(frame.seq ?? 0);
    if (frame.enabled === true) {
      // The server enabled it (a resume): a snapshot answers "request 0" (§22).
      this.move("ENABLE");
      this.pending.set(0, ["ENABLE", null]);
      this.asked = this.resume?.presence ?? true;
    }
    return {
      event: "Connected",
      participant,
      room: frame.room as string,
      limits,
      heartbeatInterval: this.interval,
      heartbeatTimeout: this.timeout,
      resumed: frame.resumed === true,
      recovered,
      missed: Number(frame.missed ?? 0),
    };
  }

  private reply(frame: Frame, now: number): ClientEvent | null {
    const rid = frame.rid as number;
    const pending = this.pending.get(rid);
    if (pending === undefined) throw new RemoteProtocolError(`reply to unknown request ${rid}`, Code.PROTOCOL_ERROR);
    const [request, merged] = pending;
    const kind = frame.t;
    if (kind === "snapshot") {
      if (request !== "ENABLE") throw new RemoteProtocolError(`snapshot answers request ${rid}, not an enable`);
      return this.snapshotPage(frame, now);
    }
    if (kind === "error") {
      if (request === "DISABLE") {
        // The server accepts every disable it is sent (only an enabled client sends one); a
        // refusal would leave this side stuck in DISABLING.
        throw new RemoteProtocolError(`the server refused disable ${rid}`);
      }
      this.expect(request === "ENABLE" ? "ENABLE_REFUSED" : "REPLY", kind);
      this.pending.delete(rid);
      if (request === "ENABLE") this.snapshot = []; // pages received before the refusal are void
      this.heard(now);
      return { event: "RequestRefused", requestId: rid, code: frame.code as number, reason: frame.reason as string };
    }
    if (request === "ENABLE") {
      throw new RemoteProtocolError(`an enable (${rid}) is answered by a snapshot, not an ack`);
    }
    this.expect(request === "DISABLE" ? "DISABLE_ACK" : "REPLY", kind);
    this.pending.delete(rid);
    this.heard(now);
    if (request === "DISABLE") {
      this.enabledWith = null;
      this.present.clear();
      return { event: "MessagingDisabled", requestId: rid };
    }
    if (merged !== null) this.me = { ...this.me, attributes: merged };
    return {
      event: "RequestAcked",
      requestId: rid,
      messageId: (frame.id as string | undefined) ?? null,
      recipients: frame.recipients === undefined || frame.recipients === null ? null : Number(frame.recipients),
      duplicate: frame.dup === true,
    };
  }

  private snapshotPage(frame: Frame, now: number): ClientEvent | null {
    const rid = frame.rid as number;
    this.expect(frame.more ? "SNAPSHOT_PAGE" : "SNAPSHOT_END", "snapshot");
    for (const record of frame.participants as unknown[]) this.snapshot.push(participantFromWire(record));
    this.heard(now);
    if (frame.more) return null;
    this.pending.delete(rid);
    const participants = this.snapshot;
    this.snapshot = [];
    this.present = new Map(participants.map((p) => [p.id, p]));
    this.enabledWith = this.asked;
    return { event: "MessagingEnabled", requestId: rid, participants };
  }

  private historyPage(frame: Frame, now: number): ClientEvent | null {
    const rid = frame.rid as number;
    if (this.pending.get(rid)?.[0] !== "HISTORY") {
      throw new RemoteProtocolError(`a history page answers ${rid}, not a history request`);
    }
    this.expect("REPLY", "history");
    this.heard(now);
    for (const record of frame.messages as unknown[]) this.historyPages.push(messageFromWire(asRecord(record)!));
    if (frame.more) return null;
    this.pending.delete(rid);
    const messages = this.historyPages;
    this.historyPages = [];
    const epoch = typeof frame.epoch === "string" ? frame.epoch : null;
    return { event: "HistoryReceived", requestId: rid, messages, epoch, reset: frame.reset === true };
  }

  private result(frame: Frame, now: number): ClientEvent {
    const rid = frame.rid as number;
    if (this.pending.get(rid)?.[0] !== "CALL") throw new RemoteProtocolError(`a result answers ${rid}, not a call`);
    this.expect("REPLY", "result");
    this.heard(now);
    this.pending.delete(rid);
    if (Object.prototype.hasOwnProperty.call(frame, "code")) {
      return { event: "CallFailed", requestId: rid, code: Number(frame.code), reason: frame.reason as string };
    }
    return { event: "CallAnswered", requestId: rid, reply: callFromWire(frame) };
  }

  private streamEvent(frame: Frame, now: number): ClientEvent {
    this.expect("STREAM_EVENT", frame.t);
    this.heard(now);
    const streamId = frame.sid as string;
    switch (frame.t) {
      case "chunk":
        return { event: "ChunkReceived", streamId, data: frame.data as Uint8Array, header: (frame.header as JsonObject | undefined) ?? null };
      case "credit":
        return { event: "CreditGranted", streamId, n: Number(frame.n) };
      case "end":
        return { event: "StreamEnded", streamId };
      default:
        return { event: "StreamAborted", streamId, code: frame.code as number, reason: frame.reason as string };
    }
  }

  private presenceChange(frame: Frame, now: number): ClientEvent {
    const kind = frame.t;
    this.expect("DELIVERY", kind);
    this.heard(now);
    const seq = frame.seq as number;
    this.position = Math.max(this.position, Number(seq));
    if (kind === "left") {
      const id = frame.id as string;
      const gone = this.present.get(id);
      if (gone === undefined) throw new RemoteProtocolError(`'left' for absent participant ${pyRepr(id)}`);
      this.present.delete(id);
      return { event: "ParticipantRemoved", participant: gone, seq };
    }
    const participant = participantFromWire(frame.p);
    if (this.present.has(participant.id) !== (kind === "updated")) {
      throw new RemoteProtocolError(`${pyRepr(kind)} does not match presence for ${pyRepr(participant.id)}`);
    }
    this.present.set(participant.id, participant);
    return { event: kind === "joined" ? "ParticipantAdded" : "ParticipantUpdated", participant, seq };
  }

  private peerClose(frame: Frame): Closed {
    if (this._state === "CLOSING") {
      // The server's answer to our own close.
      return this.finish("PEER_CLOSE", this.closeSent.code, this.closeSent.reason, false);
    }
    this.send({ t: "close", code: frame.code, reason: frame.reason });
    return this.finish("PEER_CLOSE", frame.code as number, frame.reason as string, true);
  }

  // --- helpers ----------------------------------------------------------------------------

  private allowed(input: Input): boolean {
    return TRANSITIONS.has(`${this._state} ${input}`);
  }

  private move(input: Input): void {
    this._state = TRANSITIONS.get(`${this._state} ${input}`)!;
  }

  private expect(input: Input, kind: string): void {
    if (!this.allowed(input)) {
      throw new RemoteProtocolError(`${pyRepr(kind)} frame not allowed in state ${this._state}`, Code.PROTOCOL_ERROR);
    }
    this.move(input);
  }

  private checkAllowed(input: Input, what: string): void {
    if (!this.allowed(input)) throw new LocalProtocolError(`cannot ${what} in state ${this._state}`);
  }

  private send(frame: Record<string, unknown>): void {
    this.outbox.push(encodePayload(frame));
  }

  private messageFrame(
    kind: string,
    type: string,
    message: JsonObject,
    attachment: Uint8Array | null | undefined,
    key: string | null | undefined = null,
  ): Record<string, unknown> {
    const most = this._limits.maxTypeLength;
    if (typeof type !== "string" || !type.isWellFormed() || !inRange(codePoints(type), 1, most)) {
      throw new InvalidRequest(`type must be a string of 1 to ${most} characters`);
    }
    const json = checkJson(message);
    if (!json) throw new InvalidRequest("message must be a JSON object (str keys, JSON values)");
    const frame: Record<string, unknown> = { t: kind, type, message: json === "wide" ? widenIntegers(message) : message };
    if (attachment !== undefined && attachment !== null) {
      if (!(attachment instanceof Uint8Array)) throw new InvalidRequest("attachment must be a Uint8Array or null");
      // A plain Uint8Array: cbor-x writes some subclasses (Buffer aside) with tags.
      frame.att = attachment.constructor === Uint8Array ? attachment : new Uint8Array(attachment);
    }
    if (key !== undefined && key !== null) {
      if (typeof key !== "string" || !key.isWellFormed() || !inRange(codePoints(key), 1, MAX_KEY_LENGTH)) {
        throw new InvalidRequest(`idempotency_key must be text of 1 to ${MAX_KEY_LENGTH} characters`);
      }
      frame.key = key;
    }
    return frame;
  }

  private request(input: Input, frame: Record<string, unknown>, merged: JsonObject | null = null): number {
    const rid = this.nextRid++;
    frame.rid = rid;
    const data = encodePayload(frame);
    const most = this._limits.maxSendSize;
    if (data.length > most) {
      throw new MessageTooLarge(`${String(frame.t)} frame of ${data.length} bytes is over the server's ${most}-byte limit`);
    }
    this.outbox.push(data);
    this.move(input);
    this.pending.set(rid, [input, merged]);
    return rid;
  }

  private heard(now: number): void {
    if (this._state !== "CLOSING") this.deadline = now + this.interval + this.timeout;
  }

  private finish(input: Input, code: number, reason: string, byPeer: boolean): Closed {
    this.move(input);
    this.inbox.length = this.inboxHead = 0; // nothing more is decoded
    this.closed = { event: "ConnectionClosed", code, reason, byPeer };
    return this.closed;
  }

  /** Close from this side without waiting: queue a close frame, then CLOSED. */
  private abort(code: number, reason: string): Closed {
    this.send({ t: "close", code, reason });
    return this.finish("ABORT", code, reason, false);
  }
}

/** A call, or its answer, as the user sees it: outside the room's order (seq 0). */
function callFromWire(frame: Frame): RoomMessage {
  return {
    id: frame.id as string,
    seq: 0,
    timestamp: Number(frame.ts),
    fromParticipantId: frame.from as string,
    type: frame.type as string,
    message: frame.message as JsonObject,
    attachment: (frame.att as Uint8Array | undefined) ?? null,
    broadcast: false,
  };
}

/** A plain Uint8Array: cbor-x writes some subclasses (Buffer aside) with tags. */
function plainBytes(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new InvalidRequest(`${what} must be a Uint8Array`);
  return value.constructor === Uint8Array ? value : new Uint8Array(value);
}

function streamIdOf(streamId: unknown): string {
  if (typeof streamId !== "string") throw new InvalidRequest("a stream id is a string");
  return streamId;
}

function codePoints(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0xd800 || unit > 0xdbff) count++; // a high surrogate's pair counts once, at its low half
  }
  return count;
}

function inRange(value: number, low: number, high: number): boolean {
  return low <= value && value <= high;
}

/** What a client presents to take its place back after a lost connection
 * (`ClientConnection.resumeInfo`; PROTOCOL.md §22). */
export interface ResumeInfo {
  /** The participant id to take back. */
  readonly participantId: string;
  /** The welcome's `resume` secret for that id. */
  readonly secret: string;
  /** The room's epoch the position is in. */
  readonly epoch: string;
  /** The last room seq the client processed (the welcome's, if nothing since). */
  readonly seq: number;
  /** Messaging was enabled: a server that cannot give the id back enables the new one. */
  readonly enabled: boolean;
  /** It was enabled with presence. */
  readonly presence: boolean;
}

/** The hello's `resume` map, keys in the reference encoder's order. */
function resumeFrame(resume: ResumeInfo): Record<string, unknown> {
  const frame: Record<string, unknown> = {
    id: resume.participantId,
    secret: resume.secret,
    epoch: resume.epoch,
    seq: resume.seq,
  };
  if (resume.enabled) {
    frame.enable = true;
    frame.presence = resume.presence;
  }
  return frame;
}
