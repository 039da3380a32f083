/**
 * The public API of DESIGN §7.2: `connect(url, { token })` -> a `Room` with `messaging`.
 * Reconnects with jittered backoff and re-enables messaging, as the Python binding does
 * (`roomwire_anyio._client`).
 */
import { Code, isRetryable } from "./codes.js";
import { type ClientConfig, ClientConnection, type ResumeInfo } from "./connection.js";
import type { JsonObject } from "./encode.js";
import { ConnectionClosedError, LocalProtocolError, RoomError } from "./errors.js";
import type { ClientEvent, Limits, RemoteParticipant, RoomMessage } from "./events.js";
import { type Closed, type KeyedSend, Link, type SendReceipt, now } from "./link.js";
import { ParticipantView } from "./participants.js";
import {
  type MessageStreamReader,
  MessageStreamWriter,
  Peers,
  type RequestHandler,
  RequestTimeoutError,
} from "./rpc.js";
import { type WebSocketConstructor, checkUrl, platformWebSocket } from "./transport.js";

/** Capped exponential backoff with full jitter between reconnect attempts (seconds). */
export interface ReconnectPolicy {
  enabled: boolean;
  firstDelay: number;
  maxDelay: number;
  /** Seconds of failed attempts after which the room closes for good. */
  giveUpAfter: number;
}

const MAX_PENDING_BYTES = 1024 * 1024;

export const DEFAULT_RECONNECT: ReconnectPolicy = { enabled: true, firstDelay: 0.1, maxDelay: 5, giveUpAfter: 60 };

export interface ConnectOptions {
  /** The participant token (a JWT); it travels only in the first frame. */
  token: string;
  /** The room meant; the server refuses a token for another one. */
  room?: string;
  config?: ClientConfig;
  /** `false` never reconnects; an object overrides parts of `DEFAULT_RECONNECT`. */
  reconnect?: boolean | Partial<ReconnectPolicy>;
  /** The WebSocket class to use (default: the global one). */
  WebSocket?: WebSocketConstructor;
  /** Where callback errors and reconnect trouble are reported (default: console.error). */
  onError?: (error: unknown) => void;
  /** Requests wait while the WebSocket holds more than this many unsent bytes (default 1 MiB):
   * a sender faster than the network does not buffer without bound. */
  maxPendingBytes?: number;
}

export type Recipient = RemoteParticipant | string;

export interface MessageInput {
  type: string;
  message: JsonObject;
  attachment?: Uint8Array | null;
}

/** A send's options: its idempotency key (1 to 64 characters; a random one by default), and
 * `receipt: true` to get the `SendReceipt` (id, recipients, duplicate) instead of the id. */
export interface SendOptions {
  idempotencyKey?: string;
  receipt?: boolean;
}

/** What the `reconnected` callback gets (PROTOCOL.md §22). */
export interface Reconnected {
  /** The local participant: the same id as before when the server still held it. */
  readonly participant: RemoteParticipant;
  /** Nothing was lost: the `missed` messages come first, in order, before live traffic.
   * False: the view of the room is stale (read its history again). */
  readonly recovered: boolean;
  /** Messages the server replays, sent while this client was away. */
  readonly missed: number;
}

interface Callbacks {
  message: (message: RoomMessage) => void;
  reconnected: (info: Reconnected) => void;
  participant_added: (participant: RemoteParticipant) => void;
  participant_removed: (participant: RemoteParticipant) => void;
  participant_updated: (participant: RemoteParticipant) => void;
}

export type MessagingEventName = keyof Callbacks;

/** Connect to the room server at `url` (ws:// or wss://); resolves once the welcome is in.
 * Rejects with a `RoomError` (`.code`, `.codeName`) when the server refuses or is unreachable. */
export async function connect(url: string, options: ConnectOptions): Promise<Room> {
  checkUrl(url);
  const room = new Room(url, options);
  room._link = await room._open();
  room._supervise(room._link);
  return room;
}

export class Room {
  readonly url: string;
  readonly messaging: Messaging;
  /** @internal */ _link: Link | null = null;
  private me: RemoteParticipant | null = null;
  /** What the next connection presents to resume the last one (PROTOCOL.md §22). */
  private resume: ResumeInfo | null = null;
  private closing = false;
  private closeReason: RoomError | null = null;
  private upWaiters: (() => void)[] = [];
  private readonly attributes: JsonObject = {}; // as the server accepted them
  private readonly policy: ReconnectPolicy;
  private readonly WebSocket: WebSocketConstructor;
  /** @internal */ readonly _report: (error: unknown) => void;
  /** @internal: the requests this room answers and its streams. */ readonly _peers: Peers;
  /** Sends a lost link left unanswered, in order: re-sent on the next link. */
  private unsent: KeyedSend[] = [];

  /** @internal: use `connect`. */
  constructor(
    url: string,
    private readonly options: ConnectOptions,
  ) {
    this.url = url;
    const { reconnect = true } = options;
    this.policy = { ...DEFAULT_RECONNECT, ...(typeof reconnect === "boolean" ? { enabled: reconnect } : reconnect) };
    this.WebSocket = options.WebSocket ?? platformWebSocket();
    this._report = options.onError ?? ((error) => console.error("roomwire:", error));
    this._peers = new Peers(this._report);
    this.messaging = new Messaging(this);
  }

  /** Whether a connection is up now (false while reconnecting and after close). */
  get connected(): boolean {
    return this._link !== null;
  }

  /** This client's participant (its id changes with every connection). */
  get localParticipant(): RemoteParticipant | null {
    return this._link?.conn.localParticipant ?? this.me;
  }

  /** The limits the server advertised on this connection (null while disconnected). */
  get limits(): Limits | null {
    return this._link?.conn.limits ?? null;
  }

  /**
   * Merge `attributes` into this participant's own (a null value removes a key); resolves
   * once the server accepted them, and others with presence see `participant_updated`. They
   * are set again on every reconnect.
   */
  async setAttributes(attributes: JsonObject): Promise<void> {
    await this._request((conn) => conn.setAttributes(attributes));
    for (const [key, value] of Object.entries(attributes)) {
      if (value === null) delete this.attributes[key];
      else this.attributes[key] = value;
    }
  }

  /** Close cleanly: tell the server, wait briefly for its answer, end the room for good. */
  async close(): Promise<void> {
    this.closing = true;
    const link = this._link;
    if (link !== null) await link.close(2);
    this.finish(new ConnectionClosedError("the room is closed", Code.NORMAL));
  }

  /** @internal: connect, handshake, and return the link once the welcome is in. A
   * reconnect (`again`) presents the last connection's resume info (PROTOCOL.md §22). */
  async _open(again = false): Promise<Link> {
    const { token, room = null, config } = this.options;
    const conn = new ClientConnection({ token, now: now(), room, config, resume: again ? this.resume : null });
    let welcomed!: () => void;
    let resumed = false;
    const welcome = new Promise<void>((resolve) => (welcomed = resolve));
    const link = new Link(this.url, this.WebSocket, conn, (event) => {
      if (event.event === "Connected") {
        welcomed();
        resumed = event.resumed;
        // Before the replay and the snapshot that follow it in this same batch.
        if (again) this.messaging._reconnected({ participant: event.participant, recovered: event.recovered, missed: event.missed });
      } else if (!this._peers.dispatch(event, link)) this.messaging._dispatch(event);
    });
    const closed = await Promise.race([welcome.then(() => null), link.closed]);
    if (closed !== null) {
      const reason = closed.code === Code.CONNECTION_LOST ? `cannot reach ${this.url}: ${closed.reason}` : closed.reason;
      throw new ConnectionClosedError(reason, closed.code);
    }
    if (Object.keys(this.attributes).length && !resumed) {
      // Reconnecting: restore our attributes first, so that the re-enable announces them.
      link.requestDetached((c) => c.setAttributes(this.attributes));
    }
    if (this.messaging.enabled && conn.state === "OPEN") {
      // (Not when the server enabled it at the welcome: a resume.)
      // Reconnecting: queue the re-enable before the link is published, so that a send made
      // as soon as it is up goes out after the enable, which the state table allows.
      link.requestDetached((c) => c.enable({ presence: this.messaging._presence }));
    }
    // Then the sends the last link left unanswered, with their keys (PROTOCOL.md §26): the
    // server delivers each at most once, and their callers get these answers.
    for (const send of this.unsent.splice(0)) {
      try {
        link.requestKeyed(send);
      } catch (error) {
        send.reject(error as RoomError);
      }
    }
    return link;
  }

  /** @internal: run links one after another, reconnecting after retryable losses. */
  async _supervise(first: Link): Promise<void> {
    let link = first;
    for (;;) {
      this.wakeUpWaiters();
      const closed = await link.closed;
      this.unsent.push(...link.unanswered);
      this._peers.lost(new ConnectionClosedError(closed.reason, closed.code));
      this.me = link.conn.localParticipant;
      this.resume = link.conn.resumeInfo;
      this._link = null;
      if (this.closing || !this.policy.enabled || !(isRetryable(closed.code) || closed.code === Code.CONNECTION_LOST)) {
        this.finish(new ConnectionClosedError(closed.reason, closed.code));
        return;
      }
      const next = await this.reconnect(closed);
      if (next instanceof RoomError) {
        this.finish(next);
        return;
      }
      if (this.closing) {
        await next.close(2); // close() was called while this connection was being made
        this.unsent.push(...next.unanswered);
        this.finish(new ConnectionClosedError("the room is closed", Code.NORMAL));
        return;
      }
      this._link = link = next;
    }
  }

  private async reconnect(closed: Closed): Promise<Link | RoomError> {
    const giveUp = now() + this.policy.giveUpAfter;
    let error: RoomError = new ConnectionClosedError(closed.reason, closed.code);
    for (let attempt = 0; now() < giveUp; attempt++) {
      const ceiling = Math.min(this.policy.maxDelay, this.policy.firstDelay * 2 ** attempt);
      await sleep(Math.random() * ceiling);
      if (this.closing) return new ConnectionClosedError("the room is closed", Code.NORMAL);
      try {
        return await this._open(true);
      } catch (caught) {
        if (!(caught instanceof RoomError)) throw caught;
        if (!isRetryable(caught.code) && caught.code !== Code.CONNECTION_LOST) return caught; // e.g. an expired token
        error = caught;
      }
    }
    return new ConnectionClosedError(`could not reconnect: ${error.reason}`, error.code);
  }

  private finish(reason: RoomError): void {
    this.closeReason ??= reason;
    for (const send of this.unsent.splice(0)) send.reject(this.closeReason);
    this.wakeUpWaiters();
  }

  private wakeUpWaiters(): void {
    const waiters = this.upWaiters;
    this.upWaiters = [];
    for (const wake of waiters) wake();
  }

  /** @internal: the link to send on, waiting for a reconnect when there is none. */
  async _linkUp(): Promise<Link> {
    if (this._link === null && this.closeReason === null) {
      let timeout: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.upWaiters.push(resolve);
        timeout = setTimeout(resolve, this.policy.giveUpAfter * 1000);
      });
      clearTimeout(timeout);
    }
    if (this._link === null) {
      throw this.closeReason ?? new ConnectionClosedError("not connected to the server", Code.CONNECTION_LOST);
    }
    return this._link;
  }

  /** @internal: a call and its one answer; a timeout (seconds, or null) cancels it. */
  async _call(verb: (conn: ClientConnection) => number, timeout: number | null): Promise<RoomMessage> {
    let rid = -1;
    let link: Link | null = null;
    const answer = this._request((conn) => (rid = verb(conn)), (used) => (link = used));
    if (timeout === null) return (await answer) as RoomMessage;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RequestTimeoutError(`no answer within ${timeout} s`, Code.CALL_CANCELLED)), timeout * 1000);
    });
    try {
      return (await Promise.race([answer, late])) as RoomMessage;
    } catch (error) {
      if (error instanceof RequestTimeoutError && rid >= 0) (link as Link | null)?.cancel(rid); // the callee's handler is aborted
      throw error;
    } finally {
      clearTimeout(timer);
      answer.catch(() => {}); // settled after a timeout: nobody waits any more
    }
  }

  /** @internal: open a stream; its writer once the reader accepted. */
  async _openStream(to: string, header: JsonObject): Promise<MessageStreamWriter> {
    let link: Link | null = null;
    const id = (await this._request((conn) => conn.openStream(to, header), (used) => (link = used))) as string;
    const used = link as unknown as Link;
    const writer = new MessageStreamWriter(id, used, to, header, used.conn.limits?.streamWindow ?? 0);
    this._peers.addWriter(writer);
    return writer;
  }

  /** @internal: one request, answered by a message id (or null), a call's answer, or a
   * typed error. `onLink` learns the link it went on. */
  async _request(verb: (conn: ClientConnection) => number, onLink?: (link: Link) => void): Promise<unknown> {
    const link = await this._linkUp();
    await link.drained(this.options.maxPendingBytes ?? MAX_PENDING_BYTES);
    onLink?.(link);
    try {
      return await link.request(verb);
    } catch (error) {
      throw closingError(link, error);
    }
  }

  /** @internal: a message send (its verb carries an idempotency key), answered by its
   * receipt: unanswered when its link ends, it is re-sent on the next one and answered
   * there; it fails only if it is refused or reconnecting gives up. */
  async _send(verb: (conn: ClientConnection) => number): Promise<SendReceipt> {
    const link = await this._linkUp();
    await link.drained(this.options.maxPendingBytes ?? MAX_PENDING_BYTES);
    return await new Promise<SendReceipt>((resolve, reject) => {
      try {
        link.requestKeyed({ verb, resolve, reject });
      } catch (error) {
        reject(closingError(link, error));
      }
    });
  }
}

/** `room.messaging`: enable, presence (`remoteParticipants`, `getParticipant`,
 * `getParticipantByName`, kept current as events arrive), send, broadcast and callbacks. */
export class Messaging extends ParticipantView {
  private readonly callbacks: { [K in MessagingEventName]: Set<Callbacks[K]> } = {
    message: new Set(),
    reconnected: new Set(),
    participant_added: new Set(),
    participant_removed: new Set(),
    participant_updated: new Set(),
  };
  private _enabled = false;
  /** @internal */ _presence = true;

  constructor(private readonly room: Room) {
    super();
  }

  get enabled(): boolean {
    return this._enabled;
  }

  /** Enable messaging; resolves once the presence snapshot is in. `onStreamAccept` accepts
   * the streams others open to this participant (kept across reconnects); without it they
   * are refused. */
  async enable({
    presence = true,
    onStreamAccept,
  }: { presence?: boolean; onStreamAccept?: (reader: MessageStreamReader) => unknown } = {}): Promise<void> {
    if (onStreamAccept !== undefined) this.room._peers.onStreamAccept = onStreamAccept;
    this._presence = presence;
    await this.room._request((conn) => conn.enable({ presence }));
    this._enabled = true;
  }

  /** Disable messaging; presence is cleared (`participant_removed` for each). */
  async disable(): Promise<void> {
    await this.room._request((conn) => conn.disable());
    this._enabled = false;
  }

  /** Send to a participant, an id, or a list of them; resolves to the server's message id
   * (`receipt: true`: to a `SendReceipt`, with the recipients count). Every send carries an
   * idempotency key (`idempotencyKey`, or a random one): if the connection is lost before
   * the server answers, it is re-sent with that key after the reconnect, delivered at most
   * once, and this resolves with the re-send's answer (PROTOCOL.md §26). */
  sendMessage(input: SendInput & { receipt: true }): Promise<SendReceipt>;
  sendMessage(input: SendInput & { receipt?: false }): Promise<string>;
  async sendMessage({ to, type, message, attachment, idempotencyKey, receipt }: SendInput): Promise<string | SendReceipt> {
    const ids = Array.isArray(to) ? to.map(participantId) : participantId(to as Recipient);
    const key = idempotencyKey ?? randomKey();
    const sent = await this.room._send((conn) => conn.sendMessage(ids, type, message, attachment, key));
    return receipt ? sent : sent.messageId;
  }

  /** Send to every other participant with messaging enabled; resolves to the message id
   * (options as for `sendMessage`). */
  broadcastMessage(input: MessageInput & SendOptions & { receipt: true }): Promise<SendReceipt>;
  broadcastMessage(input: MessageInput & SendOptions & { receipt?: false }): Promise<string>;
  async broadcastMessage({ type, message, attachment, idempotencyKey, receipt }: MessageInput & SendOptions): Promise<string | SendReceipt> {
    const key = idempotencyKey ?? randomKey();
    const sent = await this.room._send((conn) => conn.broadcastMessage(type, message, attachment, key));
    return receipt ? sent : sent.messageId;
  }

  /** Call one participant's `onRequest` handler for `type`; resolves to its answer (a
   * RoomMessage from the callee). Rejects with `RequestError` (the handler's code and
   * reason), `NoHandlerError`, `RequestTimeoutError` after `timeout` seconds (default 10,
   * null for none; the callee's handler is aborted), or a refusal (`NOT_FOUND`,
   * `CALLEE_LEFT` at once when the callee leaves). */
  async request({
    to,
    type,
    message,
    attachment,
    timeout = 10,
  }: MessageInput & { to: Recipient; timeout?: number | null }): Promise<RoomMessage> {
    const id = participantId(to);
    return await this.room._call((conn) => conn.call(id, type, message, attachment), timeout);
  }

  /** Answer requests of `type` with `handler` (registers at once, replacing an earlier
   * one): it returns the answer's message or `[message, attachment]`, or throws
   * `RequestError(reason, code)`; anything else thrown answers HANDLER_FAILED. Its `signal`
   * aborts when the caller cancels or leaves. */
  onRequest(type: string, handler: RequestHandler): void {
    this.room._peers.onRequest(type, handler);
  }

  /** Stop answering requests of `type` (they get NO_HANDLER). */
  offRequest(type: string): void {
    this.room._peers.offRequest(type);
  }

  /** Open a stream to one participant; resolves to its writer once the reader accepted. */
  async createStream({ to, header = {} }: { to: Recipient; header?: JsonObject }): Promise<MessageStreamWriter> {
    return await this.room._openStream(participantId(to), header);
  }

  /** Call `callback` for each `message` (a RoomMessage) or presence change (a participant). */
  on<K extends MessagingEventName>(event: K, callback: Callbacks[K]): void {
    const callbacks = this.callbacks[event] as Set<Callbacks[K]> | undefined;
    if (callbacks === undefined) throw new TypeError(`unknown event ${String(event)}; expected one of ${Object.keys(this.callbacks).join(", ")}`);
    callbacks.add(callback);
  }

  off<K extends MessagingEventName>(event: K, callback: Callbacks[K]): void {
    (this.callbacks[event] as Set<Callbacks[K]>).delete(callback);
  }

  private emit<K extends MessagingEventName>(event: K, value: Parameters<Callbacks[K]>[0]): void {
    for (const callback of this.callbacks[event]) {
      try {
        (callback as (value: unknown) => void)(value);
      } catch (error) {
        this.room._report(error); // a callback's bug must not stall the connection
      }
    }
  }

  /** Replace the view, telling callbacks what changed (all new on the first enable). */
  private applySnapshot(participants: readonly RemoteParticipant[]): void {
    const old = this.present;
    this.present = new Map(participants.map((p) => [p.id, p]));
    for (const participant of old.values()) if (!this.present.has(participant.id)) this.emit("participant_removed", participant);
    for (const participant of participants) if (!old.has(participant.id)) this.emit("participant_added", participant);
  }

  /** @internal: a reconnect's welcome. */
  _reconnected(info: Reconnected): void {
    this.emit("reconnected", info);
  }

  /** @internal */
  _dispatch(event: ClientEvent): void {
    switch (event.event) {
      case "MessageReceived":
        this.emit("message", event.message);
        break;
      case "ParticipantAdded":
      case "ParticipantUpdated":
        this.present.set(event.participant.id, event.participant);
        this.emit(event.event === "ParticipantAdded" ? "participant_added" : "participant_updated", event.participant);
        break;
      case "ParticipantRemoved":
        this.present.delete(event.participant.id);
        this.emit("participant_removed", event.participant);
        break;
      case "MessagingEnabled":
        this.applySnapshot(event.participants);
        break;
      case "MessagingDisabled":
        this.applySnapshot([]);
        break;
      default: // a refusal of a detached request: one repeated after a reconnect
        if (event.event === "RequestRefused") {
          this.room._report(new RoomError(`a request repeated after reconnecting was refused: ${event.reason}`, event.code));
        }
    }
  }
}

function participantId(recipient: Recipient): string {
  return typeof recipient === "string" ? recipient : recipient.id;
}

function sleep(seconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000));
}

type SendInput = MessageInput & SendOptions & { to: Recipient | readonly Recipient[] };

/** A random idempotency key: 128 bits in 32 hex digits (`getRandomValues` is in every
 * browser context, secure or not, and in Node). */
function randomKey(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A local refusal on a link that is closing is the connection's loss, not the caller's bug. */
function closingError(link: Link, error: unknown): unknown {
  if (error instanceof LocalProtocolError && (link.conn.state === "CLOSING" || link.conn.state === "CLOSED")) {
    return new ConnectionClosedError("the connection is closing", Code.CONNECTION_LOST);
  }
  return error;
}
