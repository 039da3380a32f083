// An in-memory stand-in for a roomwire server behind a WebSocket, for the API tests: each
// FakeSocket is one client connection; the FakeServer answers hellos, enables, sends and
// closes the way the reference server does, and the tests push deliveries by hand.
import { decodeItem } from "../src/decode.js";
import { encodePayload } from "../src/encode.js";
import type { WebSocketConstructor, WebSocketLike } from "../src/transport.js";

export type Frame = Record<string, unknown> & { t: string };

export const LIMITS = {
  max_frame_size: 1048576,
  max_send_size: 1047552,
  max_recipients: 1000,
  max_type_length: 256,
  max_attributes_size: 65536,
  stream_window: 4096,
};

export function participant(id: string, name: string, attributes: Record<string, unknown> = {}) {
  return { id, name, role: "user", attributes };
}

export class FakeServer {
  /** Every connection ever made, in order. */
  readonly sockets: FakeSocket[] = [];
  /** What each hello is answered with: a welcome, or a close with this code. */
  refuseWith: number | null = null;
  /** Others present, listed in every snapshot. */
  present: ReturnType<typeof participant>[] = [];
  hb = 25;
  hbt = 10;
  /** Whether to answer hellos at all. */
  silent = false;
  /** Resume (PROTOCOL.md §22): welcomes hand out a secret, and a hello presenting it takes
   * its participant back (enabled, a snapshot for request 0, then `replay`). */
  resumable = false;
  /** The `msg` frames a resume replays. */
  replay: Frame[] = [];
  /** A code to refuse enables with, or null. */
  refuseEnable: number | null = null;
  /** Sends and broadcasts are read and forgotten (lost on the way in). */
  dropSends = false;
  /** Acks of sends and broadcasts are not sent (lost on the way out). */
  dropAcks = false;
  /** The ack of each idempotency key accepted (every client is "alice": one identity). */
  private readonly keys = new Map<unknown, Frame>();
  private messages = 0;
  /** Calls and streams routed between the sockets (PROTOCOL.md §24), by id. */
  private readonly calls = new Map<string, { caller: FakeSocket; rid: unknown; callee: FakeSocket; type: unknown }>();
  private readonly streams = new Map<string, { writer: FakeSocket; reader: FakeSocket; rid: unknown }>();
  private ids = 0;

  readonly WebSocket: WebSocketConstructor;

  constructor() {
    const server = this;
    this.WebSocket = class extends FakeSocket {
      constructor(url: string) {
        super(url, server);
      }
    };
  }

  get last(): FakeSocket {
    return this.sockets.at(-1)!;
  }

  /** Frames of kind `t` the clients sent, over every connection. */
  received(t: string): Frame[] {
    return this.sockets.flatMap((s) => s.received.filter((f) => f.t === t));
  }

  answer(socket: FakeSocket, frame: Frame): void {
    const rid = frame.rid;
    switch (frame.t) {
      case "hello":
        if (this.silent) return;
        if (this.refuseWith !== null) {
          socket.push({ t: "close", code: this.refuseWith, reason: "refused" });
          return;
        }
        const resume = frame.resume as { id: string; secret: string } | undefined;
        const resumed = this.resumable && resume?.secret === "s3cret";
        socket.id = resumed ? resume!.id : `me${this.sockets.length}`;
        socket.push({
          t: "welcome",
          v: 1,
          room: "demo",
          participant: participant(socket.id, "alice"),
          limits: LIMITS,
          hb: this.hb,
          hbt: this.hbt,
          ...(this.resumable ? { epoch: "e1", seq: 0, resume: "s3cret", resume_window: 30 } : {}),
          ...(resumed ? { resumed: true, recovered: true, missed: this.replay.length, enabled: true } : {}),
        });
        if (resumed) {
          socket.push({ t: "snapshot", rid: 0, more: false, participants: this.present });
          for (const msg of this.replay) socket.push(msg);
        }
        return;
      case "enable":
        if (this.refuseEnable !== null) {
          socket.push({ t: "error", rid, code: this.refuseEnable, reason: "not now" });
          return;
        }
        socket.push({ t: "snapshot", rid, more: false, participants: frame.presence ? this.present : [] });
        return;
      case "send":
      case "broadcast":
        this.message(socket, frame);
        return;
      case "disable":
      case "attrs":
        socket.push({ t: "ack", rid });
        return;
      case "call":
      case "answer":
      case "cancel":
        this.routeCall(socket, frame);
        return;
      case "open":
      case "accept":
      case "chunk":
      case "credit":
      case "end":
      case "abort":
        this.routeStream(socket, frame);
        return;
      case "close":
        if (!socket.closeSent) socket.push({ t: "close", code: frame.code, reason: frame.reason });
        socket.hangUp();
        return;
      default: // pong
    }
  }

  /** A send or broadcast, acked with its recipients count; a key seen before is acked with
   * the first ack's id and count and dup (PROTOCOL.md §26). */
  private message(socket: FakeSocket, frame: Frame): void {
    if (this.dropSends) return;
    const rid = frame.rid;
    const first = this.keys.get(frame.key);
    let ack: Frame;
    if (first !== undefined) {
      ack = { ...first, rid, dup: true };
    } else {
      const known = new Set(this.present.map((p) => p.id));
      const to = frame.t === "send" ? (frame.to as string[]) : null;
      const missing = to?.find((id) => !known.has(id));
      if (missing !== undefined) {
        socket.push({ t: "error", rid, code: 4040, reason: `not present with messaging enabled: '${missing}'` });
        return;
      }
      ack = { t: "ack", rid, id: `m${++this.messages}`, recipients: to === null ? known.size : to.length };
      if (frame.key !== undefined) this.keys.set(frame.key, ack);
    }
    if (!this.dropAcks) socket.push(ack);
  }

  /** Calls as the reference server routes them (its checks are the core tests'). */
  private routeCall(socket: FakeSocket, frame: Frame): void {
    const rid = frame.rid;
    if (frame.t === "call") {
      const callee = this.sockets.find((s) => s.id === frame.to && !s.closed);
      if (callee === undefined) {
        socket.push({ t: "error", rid, code: 4040, reason: "not present" });
        return;
      }
      const id = `c${++this.ids}`;
      this.calls.set(id, { caller: socket, rid, callee, type: frame.type });
      const { t, rid: _, to: __, ...rest } = frame;
      callee.push({ ...rest, t, id, from: socket.id, ts: 1 });
      return;
    }
    if (frame.t === "cancel") {
      for (const [id, call] of this.calls) {
        if (call.caller !== socket || call.rid !== rid) continue;
        this.calls.delete(id);
        call.callee.push({ t: "cancel", id });
        socket.push({ t: "error", rid, code: 4080, reason: "the caller cancelled the call" });
      }
      return;
    }
    const call = this.calls.get(frame.id as string);
    if (call === undefined || call.callee !== socket) {
      socket.push({ t: "error", rid, code: 4041, reason: "no such call" });
      return;
    }
    this.calls.delete(frame.id as string);
    socket.push({ t: "ack", rid });
    const { t: _, rid: __, ...outcome } = frame;
    call.caller.push({ ...outcome, t: "result", rid: call.rid, from: socket.id, ts: 2, type: call.type });
  }

  /** Streams as the reference server routes them, credit unchecked. */
  private routeStream(socket: FakeSocket, frame: Frame): void {
    if (frame.t === "open") {
      const reader = this.sockets.find((s) => s.id === frame.to && !s.closed);
      if (reader === undefined) {
        socket.push({ t: "error", rid: frame.rid, code: 4040, reason: "not present" });
        return;
      }
      const sid = `s${++this.ids}`;
      this.streams.set(sid, { writer: socket, reader, rid: frame.rid });
      reader.push({ t: "open", sid, from: socket.id, ts: 1, header: frame.header });
      return;
    }
    const stream = this.streams.get(frame.sid as string);
    if (stream === undefined) return;
    const other = stream.writer === socket ? stream.reader : stream.writer;
    if (frame.t === "accept") {
      socket.push({ t: "ack", rid: frame.rid });
      stream.writer.push({ t: "ack", rid: stream.rid, id: frame.sid });
    } else if (frame.t === "abort") {
      this.streams.delete(frame.sid as string);
      if (other === stream.writer && !socket.accepted.has(frame.sid as string)) {
        other.push({ t: "error", rid: stream.rid, code: 4045, reason: frame.reason });
      } else {
        other.push({ t: "abort", sid: frame.sid, code: 4045, reason: frame.reason });
      }
    } else {
      if (frame.t === "end") this.streams.delete(frame.sid as string);
      other.push(frame);
    }
  }
}

export class FakeSocket implements WebSocketLike {
  binaryType = "blob";
  /** What the test says is waiting to go out. */
  bufferedAmount = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: unknown) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  /** Frames this client sent, decoded. */
  readonly received: Frame[] = [];
  /** The participant id its welcome gave it. */
  id = "";
  /** Streams this client accepted. */
  readonly accepted = new Set<string>();
  closed = false;
  closeSent = false;

  constructor(
    readonly url: string,
    private readonly server: FakeServer,
  ) {
    server.sockets.push(this);
    setTimeout(() => this.onopen?.({}));
  }

  send(data: Uint8Array): void {
    if (this.closed) return;
    if (this.binaryType !== "arraybuffer") throw new Error("the client must ask for ArrayBuffers");
    const frame = decodeItem(data).value as Frame;
    this.received.push(frame);
    if (frame.t === "accept") this.accepted.add(frame.sid as string);
    setTimeout(() => this.server.answer(this, frame));
  }

  close(): void {
    this.hangUp();
  }

  /** Deliver a frame from the server, one binary message. */
  push(frame: Record<string, unknown>): void {
    if (frame.t === "close") this.closeSent = true;
    const bytes = encodePayload(frame);
    setTimeout(() => {
      if (!this.closed) this.onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
    });
  }

  /** Deliver a text message (not a roomwire frame). */
  pushText(text: string): void {
    setTimeout(() => this.onmessage?.({ data: text }));
  }

  /** The transport ends (after anything already pushed). */
  hangUp(): void {
    setTimeout(() => {
      if (this.closed) return;
      this.closed = true;
      this.onclose?.({});
    });
  }
}

/** Resolve once `predicate` holds, polling; fail after `seconds`. */
export async function until(predicate: () => boolean, seconds = 2): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (!predicate()) {
    if (Date.now() > end) throw new Error("timed out waiting for a condition");
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
