/**
 * One WebSocket driving one `ClientConnection`: the pump (message -> feed -> drain events ->
 * send), the heartbeat timer, and the requests waiting for their replies. Every protocol
 * decision stays in the core; a link ends once, with the `ConnectionClosed` it reports.
 */
import { Code } from "./codes.js";
import { ClientConnection } from "./connection.js";
import { ConnectionClosedError, RemoteProtocolError, RequestRefusedError, RoomError } from "./errors.js";
import { type ClientEvent, NEED_DATA } from "./events.js";
import { requestError } from "./rpc.js";
import { type WebSocketConstructor, type WebSocketLike, messageBytes } from "./transport.js";

export type Closed = Extract<ClientEvent, { event: "ConnectionClosed" }>;

interface Waiter {
  resolve(value: unknown): void;
  reject(error: RoomError): void;
  /** A message send: answered with its receipt, and not failed when the link ends. */
  send?: KeyedSend;
}

/** What the server said accepting a send or broadcast (PROTOCOL.md §26). */
export interface SendReceipt {
  /** The server's message id, the one its deliveries carry. */
  readonly messageId: string;
  /** Participants it was queued for, the sender not counted; null while a service decides. */
  readonly recipients: number | null;
  /** The server had accepted this send's idempotency key already: not delivered again. */
  readonly duplicate: boolean;
}

/** A message send, its verb carrying an idempotency key: the room re-sends it on its next
 * link when the link it went on ends unanswered. */
export interface KeyedSend {
  readonly verb: (conn: ClientConnection) => number;
  resolve(receipt: SendReceipt): void;
  reject(error: RoomError): void;
}

/** The waiter of a request nobody waits for: its answer, or refusal, is dropped. */
const QUIET: Waiter = { resolve() {}, reject() {} };

const DRAIN_POLL_MS = 5;

/** The events that are only their request's answer (others also go on to the room). */
const REPLIES = new Set(["RequestAcked", "RequestRefused", "CallAnswered", "CallFailed"]);

export function now(): number {
  return Date.now() / 1000;
}

export class Link {
  readonly conn: ClientConnection;
  /** Resolves with the close, once: the transport is done with. */
  readonly closed: Promise<Closed>;
  private readonly ws: WebSocketLike;
  private readonly waiters = new Map<number, Waiter | null>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private ended: Closed | null = null;
  private open = false;
  private backlog: Uint8Array[] = []; // frames queued before the transport opened
  private endLink!: (closed: Closed) => void;
  /** The sends still unanswered when the link ended, in order (for the next link). */
  readonly unanswered: KeyedSend[] = [];

  /**
   * @param onEvent gets every event but replies' own (`RequestAcked`, `RequestRefused`
   *   resolve their waiters) and the close; it runs inside the pump, so it must not throw.
   */
  constructor(
    url: string,
    WebSocket: WebSocketConstructor,
    conn: ClientConnection,
    private readonly onEvent: (event: ClientEvent) => void,
  ) {
    this.conn = conn;
    this.closed = new Promise((resolve) => (this.endLink = resolve));
    this.ws = new WebSocket(url);
    this.ws.binaryType = "arraybuffer";
    this.ws.onopen = () => {
      this.open = true;
      this.flush();
    };
    this.ws.onmessage = ({ data }) => this.onMessage(data);
    this.ws.onclose = () => this.onTransportEnd();
    // The standard has a close event follow every error; Node 20's WebSocket fires only the
    // error when it cannot connect. Either one ends the transport, once.
    this.ws.onerror = () => this.onTransportEnd();
    this.arm();
  }

  /** Resolves once the WebSocket holds at most `bytes` unsent (or the link has ended): the
   * WebSocket API has no drain event, so this polls. */
  async drained(bytes: number): Promise<void> {
    while (this.ended === null && this.ws.bufferedAmount > bytes) {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
    }
  }

  /** Whether frames can still be queued on this link. */
  get isUp(): boolean {
    return this.ended === null && this.conn.state !== "CLOSING" && this.conn.state !== "CLOSED";
  }

  /** Queue a frame, or a request whose answer nobody waits for (an answer to a call, a
   * stream's accept): a refusal (the call was cancelled meanwhile) is dropped. */
  send(verb: (conn: ClientConnection) => number | void): void {
    const rid = verb(this.conn);
    if (typeof rid === "number") this.waiters.set(rid, QUIET);
    this.flush();
  }

  /** Cancel call `rid`: its waiter is dropped; the server answers the call once more. */
  cancel(rid: number): void {
    if (!this.isUp) return;
    this.conn.cancelCall(rid);
    this.waiters.set(rid, QUIET);
    this.flush();
  }

  /** Queue a request through `verb` and wait for its reply: a message id (or null), or a
   * call's answer. */
  request(verb: (conn: ClientConnection) => number): Promise<unknown> {
    const rid = verb(this.conn);
    this.flush();
    return new Promise((resolve, reject) => this.waiters.set(rid, { resolve, reject }));
  }

  /** Queue a message send; its receipt or refusal settles `send`. Throws what the verb
   * throws (a local check). */
  requestKeyed(send: KeyedSend): void {
    const rid = send.verb(this.conn);
    this.flush();
    this.waiters.set(rid, { resolve: send.resolve as (value: unknown) => void, reject: send.reject, send });
  }

  /** Queue a request whose reply nobody waits for (one repeated after a reconnect). */
  requestDetached(verb: (conn: ClientConnection) => number): void {
    this.waiters.set(verb(this.conn), null);
    this.flush();
  }

  /** Start a clean close (when the state allows one) and wait for the server's answer, at
   * most `grace` seconds; then the transport is closed whatever happened. */
  async close(grace: number): Promise<Closed> {
    if (this.ended === null && this.conn.state !== "CLOSING") {
      this.conn.close(Code.NORMAL, "client closing");
      this.flush();
    }
    let timeout: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => (timeout = setTimeout(resolve, grace * 1000)));
    await Promise.race([this.closed, late]);
    clearTimeout(timeout);
    if (this.ended === null) this.end({ event: "ConnectionClosed", code: Code.NORMAL, reason: "client closing", byPeer: false });
    return this.ended!;
  }

  private onMessage(data: unknown): void {
    if (this.ended !== null) return;
    const bytes = messageBytes(data);
    if (bytes === null) {
      // Frames are binary messages only (PROTOCOL.md §2.2): a text message is a bad frame.
      this.fail(new RemoteProtocolError("a text message is not a roomwire frame", Code.BAD_FRAME));
      return;
    }
    this.conn.receiveFrame(bytes);
    this.drain();
  }

  private onTransportEnd(): void {
    if (this.ended !== null) return;
    this.conn.receiveEof();
    this.drain();
  }

  private onTimer(): void {
    this.timer = undefined;
    if (this.ended !== null) return;
    this.conn.handleTimer(now());
    this.drain();
  }

  private drain(): void {
    try {
      for (;;) {
        const event = this.conn.nextEvent(now());
        if (event === NEED_DATA) break;
        if (event.event === "ConnectionClosed") {
          this.end(event);
          return;
        }
        this.handle(event);
      }
    } catch (error) {
      if (!(error instanceof RemoteProtocolError)) throw error;
      this.end({ event: "ConnectionClosed", code: error.code, reason: error.reason, byPeer: false });
      return;
    }
    this.flush();
    this.arm();
  }

  private handle(event: ClientEvent): void {
    if ("requestId" in event) {
      const waiter = this.waiters.get(event.requestId);
      this.waiters.delete(event.requestId);
      if (event.event === "RequestRefused") waiter?.reject(new RequestRefusedError(event.reason, event.code));
      else if (event.event === "CallFailed") waiter?.reject(requestError(event.code, event.reason));
      else if (event.event === "CallAnswered") waiter?.resolve(event.reply);
      else if (event.event === "RequestAcked" && waiter?.send) {
        const { messageId, recipients, duplicate } = event;
        waiter.resolve({ messageId: messageId as string, recipients, duplicate } satisfies SendReceipt);
      } else waiter?.resolve(event.event === "RequestAcked" ? event.messageId : null);
      // Replies are their waiter's; a detached request's go on to the room.
      if (waiter && REPLIES.has(event.event)) return;
    }
    this.onEvent(event);
  }

  /** The server broke the protocol outside the core's view (a text message). */
  private fail(error: RemoteProtocolError): void {
    if (this.conn.state !== "CLOSING" && this.conn.state !== "CLOSED") this.conn.close(error.code, error.reason);
    this.end({ event: "ConnectionClosed", code: error.code, reason: error.reason, byPeer: false });
  }

  private flush(): void {
    this.backlog.push(...this.conn.framesToSend());
    if (!this.open) return; // onopen flushes
    const frames = this.backlog;
    this.backlog = [];
    try {
      for (const frame of frames) this.ws.send(frame);
    } catch {
      // The transport is closing: its close event ends the link.
    }
  }

  private arm(): void {
    clearTimeout(this.timer);
    const deadline = this.conn.nextDeadline();
    if (deadline !== null) this.timer = setTimeout(() => this.onTimer(), Math.max(0, (deadline - now()) * 1000));
  }

  /** The connection is over: send what is queued (the close frame), close the transport,
   * fail the requests still waiting. */
  private end(closed: Closed): void {
    this.ended = closed;
    clearTimeout(this.timer);
    this.flush();
    try {
      this.ws.close(1000);
    } catch {
      // already closed
    }
    const error = new ConnectionClosedError(closed.reason, closed.code);
    for (const waiter of this.waiters.values()) {
      if (waiter?.send) this.unanswered.push(waiter.send);
      else waiter?.reject(error);
    }
    this.waiters.clear();
    this.endLink(closed);
  }
}
