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
  /** A code to refuse enables with, or null. */
  refuseEnable: number | null = null;
  private messages = 0;

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
        socket.push({
          t: "welcome",
          v: 1,
          room: "demo",
          participant: participant(`me${this.sockets.length}`, "alice"),
          limits: LIMITS,
          hb: this.hb,
          hbt: this.hbt,
        });
        return;
      case "enable":
        if (this.refuseEnable !== null) {
          socket.push({ t: "error", rid, code: this.refuseEnable, reason: "not now" });
          return;
        }
        socket.push({ t: "snapshot", rid, more: false, participants: frame.presence ? this.present : [] });
        return;
      case "send": {
        const known = new Set(this.present.map((p) => p.id));
        const missing = (frame.to as string[]).find((id) => !known.has(id));
        if (missing !== undefined) {
          socket.push({ t: "error", rid, code: 4040, reason: `not present with messaging enabled: '${missing}'` });
          return;
        }
        socket.push({ t: "ack", rid, id: `m${++this.messages}` });
        return;
      }
      case "broadcast":
        socket.push({ t: "ack", rid, id: `m${++this.messages}` });
        return;
      case "disable":
      case "attrs":
        socket.push({ t: "ack", rid });
        return;
      case "close":
        if (!socket.closeSent) socket.push({ t: "close", code: frame.code, reason: frame.reason });
        socket.hangUp();
        return;
      default: // pong
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
