/**
 * Requests and streams between participants (PROTOCOL.md §24), as the Python binding's
 * `_rpc.py` and `_streams.py`: the errors a request raises, the handlers that answer
 * requests (each aborted through its `AbortSignal` when the caller cancels or leaves), and
 * the two ends of a flow-controlled stream. `Messaging` routes the connection's events here.
 */
import { Code } from "./codes.js";
import type { ClientConnection } from "./connection.js";
import type { JsonObject } from "./encode.js";
import { RoomError } from "./errors.js";
import type { ClientEvent, RoomMessage } from "./events.js";
import type { Link } from "./link.js";

/** The callee answered with an error: its `code` (any integer) and `reason`, unchanged.
 * Throw one in an `onRequest` handler to answer with it. */
export class RequestError extends RoomError {}

/** The callee has no handler for the request's type (code NO_HANDLER). */
export class NoHandlerError extends RequestError {}

/** No answer came within the request's timeout; the call was cancelled. */
export class RequestTimeoutError extends RoomError {}

/** A stream failed: the other side aborted or refused it, or left; the credit was broken;
 * or the connection closed. */
export class StreamError extends RoomError {}

/** An `onRequest` handler: returns the answer's message, or `[message, attachment]`, or
 * throws `RequestError`. `signal` aborts when the caller cancels or leaves. */
export type RequestHandler = (
  request: RoomMessage,
  signal: AbortSignal,
) => Promise<JsonObject | [JsonObject, Uint8Array | null]> | JsonObject | [JsonObject, Uint8Array | null];

export interface MessageStreamChunk {
  header?: JsonObject;
  data: Uint8Array;
}

/** The callee's error answer as the caller throws it. */
export function requestError(code: number, reason: string): RequestError {
  return code === Code.NO_HANDLER ? new NoHandlerError(reason, code) : new RequestError(reason, code);
}

type Verb = (conn: ClientConnection) => number;

/** What both ends of a stream share: its id, its link, and how it ended. */
class StreamEnd {
  protected error: RoomError | null = null;
  private wake: (() => void) | null = null;

  constructor(
    readonly id: string,
    protected readonly link: Link,
  ) {}

  /** @internal */
  _fail(error: RoomError): void {
    this.error ??= error;
    this._notify();
  }

  /** @internal */
  _notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  protected changed(): Promise<void> {
    return new Promise((resolve) => (this.wake = resolve));
  }

  protected check(): void {
    if (this.error !== null) throw this.error;
  }

  /** Fail the stream; the other side gets `StreamError` (STREAM_ABORTED, `reason`). */
  abort(reason = ""): void {
    if (this.error === null && this.link.isUp) this.link.send((c) => c.abortStream(this.id, reason));
    this._fail(new StreamError(`aborted here: ${reason}`, Code.STREAM_ABORTED));
  }
}

/** The writing end, from `createStream`: `write` waits while `window` bytes are unread. */
export class MessageStreamWriter extends StreamEnd {
  private creditLeft: number;
  private closed = false;

  constructor(
    id: string,
    link: Link,
    readonly to: string,
    readonly header: JsonObject,
    readonly window: number,
  ) {
    super(id, link);
    this.creditLeft = window;
  }

  /** @internal */
  _credit(n: number): void {
    this.creditLeft += n;
    this._notify();
  }

  /** Send a chunk once the reader's credit covers it; throws `StreamError` if the stream
   * failed, a `RoomError` with TOO_LARGE for data over the window. */
  async write({ header, data }: MessageStreamChunk): Promise<void> {
    if (data.length > this.window) {
      throw new RoomError(`a ${data.length}-byte chunk is over the ${this.window}-byte stream_window`, Code.TOO_LARGE);
    }
    if (this.closed) throw new StreamError("the stream is closed", Code.STREAM_NOT_FOUND);
    for (;;) {
      this.check();
      if (this.creditLeft >= data.length) break;
      await this.changed();
    }
    this.creditLeft -= data.length;
    this.link.send((c) => c.sendChunk(this.id, data, header && Object.keys(header).length ? header : null));
  }

  /** Wait until the reader consumed everything written so far. */
  async drain(): Promise<void> {
    for (;;) {
      this.check();
      if (this.creditLeft >= this.window) return;
      await this.changed();
    }
  }

  /** End the stream: the reader's iteration ends after the last chunk. */
  async close(): Promise<void> {
    this.check();
    if (!this.closed && this.link.isUp) {
      this.closed = true;
      this.link.send((c) => c.endStream(this.id));
    }
  }
}

/** The reading end, given to `enable({ onStreamAccept })`: `header`, and
 * `for await (const chunk of reader)`. Credit goes back as chunks are consumed. */
export class MessageStreamReader extends StreamEnd implements AsyncIterable<MessageStreamChunk> {
  private readonly chunks: MessageStreamChunk[] = [];
  private ended = false;
  private consumed = 0;
  private readonly threshold: number;

  constructor(
    id: string,
    link: Link,
    readonly fromParticipantId: string,
    readonly header: JsonObject,
    window: number,
  ) {
    super(id, link);
    this.threshold = Math.max(1, Math.floor(window / 4));
  }

  /** @internal */
  _chunk(chunk: MessageStreamChunk): void {
    this.chunks.push(chunk);
    this._notify();
  }

  /** @internal */
  _end(): void {
    this.ended = true;
    this._notify();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<MessageStreamChunk> {
    for (;;) {
      while (this.chunks.length === 0) {
        this.check();
        if (this.ended) return;
        await this.changed();
      }
      const chunk = this.chunks.shift()!;
      this.consumed += chunk.data.length;
      // In batches, and whenever nothing is left unread: a writer never waits for ever.
      if (this.consumed >= this.threshold || this.chunks.length === 0) {
        const n = this.consumed;
        if (this.error === null && !this.ended && this.link.isUp) this.link.send((c) => c.grantCredit(this.id, n));
        this.consumed = 0;
      }
      yield chunk;
    }
  }
}

/** The requests this participant answers and the streams it writes or reads, on the
 * current link; the handlers and the accept callback are kept across reconnects. */
export class Peers {
  private readonly handlers = new Map<string, RequestHandler>();
  private running = new Map<string, AbortController>();
  private ends = new Map<string, MessageStreamWriter | MessageStreamReader>();
  onStreamAccept: ((reader: MessageStreamReader) => unknown) | null = null;

  constructor(private readonly report: (error: unknown) => void) {}

  onRequest(type: string, handler: RequestHandler): void {
    this.handlers.set(type, handler);
  }

  offRequest(type: string): void {
    this.handlers.delete(type);
  }

  addWriter(writer: MessageStreamWriter): void {
    this.ends.set(writer.id, writer);
  }

  /** Route one event of `link`; false if it is not one of these. */
  dispatch(event: ClientEvent, link: Link): boolean {
    switch (event.event) {
      case "CallReceived":
        this.received(event.call, link);
        return true;
      case "CallCancelled":
        this.running.get(event.callId)?.abort();
        this.running.delete(event.callId);
        return true;
      case "StreamOffered":
        this.offered(event, link);
        return true;
      case "ChunkReceived": {
        const end = this.ends.get(event.streamId);
        if (end instanceof MessageStreamReader) end._chunk({ header: event.header ?? {}, data: event.data });
        return true;
      }
      case "CreditGranted": {
        const end = this.ends.get(event.streamId);
        if (end instanceof MessageStreamWriter) end._credit(event.n);
        return true;
      }
      case "StreamEnded": {
        const end = this.ends.get(event.streamId);
        this.ends.delete(event.streamId);
        if (end instanceof MessageStreamReader) end._end();
        return true;
      }
      case "StreamAborted": // one for a stream not known here crossed its end: ignored
        this.ends.get(event.streamId)?._fail(new StreamError(event.reason, event.code));
        this.ends.delete(event.streamId);
        return true;
      default:
        return false;
    }
  }

  /** The link ended: its streams fail, its handlers are aborted. */
  lost(error: RoomError): void {
    for (const end of this.ends.values()) end._fail(error);
    for (const controller of this.running.values()) controller.abort();
    this.ends = new Map();
    this.running = new Map();
  }

  private received(call: RoomMessage, link: Link): void {
    const handler = this.handlers.get(call.type);
    if (handler === undefined) {
      link.send((c) => c.failCall(call.id, Code.NO_HANDLER, `no handler for request type '${call.type}'`));
      return;
    }
    const controller = new AbortController();
    this.running.set(call.id, controller);
    const answer = async (): Promise<Verb> => {
      try {
        const outcome = await handler(call, controller.signal);
        const [message, attachment] = Array.isArray(outcome) ? outcome : [outcome, null];
        if (typeof message !== "object" || message === null || Array.isArray(message)) {
          return (c) => c.failCall(call.id, Code.HANDLER_FAILED, "the handler did not return an object");
        }
        return (c) => c.answer(call.id, message, attachment);
      } catch (error) {
        if (error instanceof RequestError) return (c) => c.failCall(call.id, error.code, error.reason);
        this.report(error);
        const kind = error instanceof Error ? error.name : typeof error;
        return (c) => c.failCall(call.id, Code.HANDLER_FAILED, `the handler failed (${kind})`);
      }
    };
    void answer().then((verb) => {
      if (controller.signal.aborted || this.running.get(call.id) !== controller) return; // not wanted
      this.running.delete(call.id);
      if (!link.isUp) return;
      try {
        link.send(verb);
      } catch (error) {
        // The answer broke a rule the core checks (size, JSON): say so instead.
        const reason = error instanceof RoomError ? error.reason : String(error);
        link.send((c) => c.failCall(call.id, Code.HANDLER_FAILED, `the handler's answer was refused: ${reason}`));
      }
    });
  }

  private offered(event: Extract<ClientEvent, { event: "StreamOffered" }>, link: Link): void {
    const callback = this.onStreamAccept;
    if (callback === null) {
      link.send((c) => c.abortStream(event.streamId, "not accepting streams"));
      return;
    }
    const window = link.conn.limits?.streamWindow ?? 0;
    const reader = new MessageStreamReader(event.streamId, link, event.fromParticipantId, event.header, window);
    this.ends.set(reader.id, reader);
    link.send((c) => c.acceptStream(event.streamId));
    try {
      const result = callback(reader);
      if (result instanceof Promise) result.catch((error: unknown) => this.report(error));
    } catch (error) {
      this.report(error);
    }
  }
}
