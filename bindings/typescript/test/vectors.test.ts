// Replays every client vector in tests/vectors/ (format: tests/vectors/README.md) against the
// TypeScript client core: the events, the output bytes, the states and the verbs' returns.
// The vectors are stream-framed; this client speaks the message framing of PROTOCOL.md §2.2,
// so input is cut at each 4-byte length prefix into messages, and output frames get a prefix.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { ClientConnection, NEED_DATA, RoomError } from "../src/index.js";
import { VECTORS_DIR, fromHex, toHex } from "./helpers.js";

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const files = readdirSync(VECTORS_DIR).filter((name) => name.startsWith("client_") && name.endsWith(".json"));

test("there are client vectors to replay", () => {
  assert.ok(files.length >= 24, `found ${files.length} client vectors in ${VECTORS_DIR}`);
});

for (const name of files.sort()) {
  const vector = JSON.parse(readFileSync(join(VECTORS_DIR, name), "utf8"));
  test(`vector ${name}: ${vector.description.slice(0, 60)}`, () => replay(vector));
}

function replay(vector: Json): void {
  const setup = vector.setup;
  assert.equal(setup.receiver, "client");
  assert.deepEqual(setup.config, {}, "this harness maps no ClientConfig fields");
  // ResumeInfo's defaults (enabled false, presence true) for the fields a vector leaves out.
  const resume =
    setup.resume === undefined
      ? null
      : { enabled: false, presence: true, ...setup.resume, participantId: setup.resume.participant_id };
  const conn = new ClientConnection({ token: setup.token, now: setup.now, room: setup.room, resume });
  assert.equal(outputHex(conn), setup.initial_output_hex, "the hello");
  let stream: Uint8Array = new Uint8Array(0);
  for (const [index, step] of vector.steps.entries()) {
    const where = `step ${index} (${step.note})`;
    const events: Json[] = [];
    const drain = () => events.push(...drainEvents(conn, step.now));
    if ("hex" in step) {
      for (const chunk of Array.isArray(step.hex) ? step.hex : [step.hex]) {
        stream = concat(stream, fromHex(chunk));
        stream = feedFrames(conn, stream);
        drain();
      }
    } else if (step.eof) {
      conn.receiveEof();
      drain();
    } else if (step.timer) {
      conn.handleTimer(step.now);
      drain();
    } else {
      assert.deepEqual(callVerb(conn, step.call, step.args), step.returns, `${where}: returns`);
    }
    assert.deepEqual(events, step.expected.map(fromPython), `${where}: events`);
    assert.equal(outputHex(conn), step.expected_output_hex, `${where}: output`);
    assert.equal(conn.state, step.expected_state, `${where}: state`);
  }
}

/** Hand every complete frame of `stream` to the client as one message; returns the rest. A
 * prefix over the client's current maximum goes in as soon as its four bytes are in (as the
 * stream reader refuses it): a stand-in message of that length, whose bytes the client must
 * not read, since it refuses on the size alone. */
function feedFrames(conn: ClientConnection, stream: Uint8Array): Uint8Array {
  let pos = 0;
  while (stream.length - pos >= 4) {
    const size = new DataView(stream.buffer, stream.byteOffset + pos).getUint32(0);
    const max = conn.limits?.maxFrameSize ?? conn.config.maxFrameSize;
    if (size > max) {
      conn.receiveFrame({ byteLength: size } as Uint8Array);
      return new Uint8Array(0);
    }
    if (stream.length - pos - 4 < size) break;
    conn.receiveFrame(stream.slice(pos + 4, pos + 4 + size));
    pos += 4 + size;
  }
  return stream.slice(pos);
}

function drainEvents(conn: ClientConnection, now: number): Json[] {
  const events: Json[] = [];
  for (;;) {
    try {
      const event = conn.nextEvent(now);
      if (event === NEED_DATA) return events;
      events.push(event);
      if (event.event === "ConnectionClosed") return events;
    } catch (error) {
      assert.ok(error instanceof RoomError && error.name === "RemoteProtocolError", String(error));
      events.push({ event: "RemoteProtocolError", code: error.code, reason: error.reason });
      return events;
    }
  }
}

function callVerb(conn: ClientConnection, call: string, args: Json): Json {
  const attachment = args.attachment === undefined ? undefined : fromHex(args.attachment);
  try {
    switch (call) {
      case "enable":
        return conn.enable(args);
      case "disable":
        return conn.disable();
      case "send_message":
        return conn.sendMessage(args.to, args.type, args.message, attachment, args.idempotency_key);
      case "broadcast_message":
        return conn.broadcastMessage(args.type, args.message, attachment, args.idempotency_key);
      case "set_attributes":
        return conn.setAttributes(args.attributes);
      case "history":
        return conn.history(args);
      case "close":
        conn.close(args.code, args.reason);
        return null;
      case "call":
        return conn.call(args.to, args.type, args.message, attachment);
      case "answer":
        return conn.answer(args.call_id, args.message, attachment);
      case "fail_call":
        return conn.failCall(args.call_id, args.code, args.reason);
      case "cancel_call":
        conn.cancelCall(args.request_id);
        return null;
      case "open_stream":
        return conn.openStream(args.to, args.header);
      case "accept_stream":
        return conn.acceptStream(args.stream_id);
      case "send_chunk":
        conn.sendChunk(args.stream_id, fromHex(args.data), args.header);
        return null;
      case "grant_credit":
        conn.grantCredit(args.stream_id, args.n);
        return null;
      case "end_stream":
        conn.endStream(args.stream_id);
        return null;
      case "abort_stream":
        conn.abortStream(args.stream_id, args.reason);
        return null;
      case "attach_service":
        return conn.attachService();
      case "send_to_service":
        return conn.sendToService(args.type, args.message, attachment, args.idempotency_key);
      default:
        throw new Error(`unknown verb ${call}`);
    }
  } catch (error) {
    assert.ok(error instanceof RoomError, String(error));
    return { event: error.name, code: error.code, reason: error.reason };
  }
}

/** An expected event, from the reference's field names to this client's. */
function fromPython(expected: Json): Json {
  const renamed: Record<string, string> = {
    request_id: "requestId",
    message_id: "messageId",
    heartbeat_interval: "heartbeatInterval",
    heartbeat_timeout: "heartbeatTimeout",
    by_peer: "byPeer",
    call_id: "callId",
    stream_id: "streamId",
    from_participant_id: "fromParticipantId",
  };
  const event: Json = {};
  for (const [key, value] of Object.entries(expected)) event[renamed[key] ?? key] = value;
  if (event.limits) event.limits = camelKeys(event.limits);
  if (event.message) event.message = messageFromPython(event.message);
  if (event.messages) event.messages = event.messages.map(messageFromPython);
  if (event.call) event.call = messageFromPython(event.call);
  if (event.reply) event.reply = messageFromPython(event.reply);
  if (event.event === "ChunkReceived") event.data = fromHex(event.data);
  return event;
}

function messageFromPython(message: Json): Json {
  const { from_participant_id, attachment, ...rest } = message;
  return { ...rest, fromParticipantId: from_participant_id, attachment: attachment === null ? null : fromHex(attachment) };
}

function camelKeys(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k.replace(/_(.)/g, (_, c: string) => c.toUpperCase()), v]));
}

function outputHex(conn: ClientConnection): string {
  return conn
    .framesToSend()
    .map((frame) => {
      const prefix = new Uint8Array(4);
      new DataView(prefix.buffer).setUint32(0, frame.length);
      return toHex(prefix) + toHex(frame);
    })
    .join("");
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
