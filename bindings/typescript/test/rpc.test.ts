// request / onRequest and createStream / onStreamAccept over the in-memory server
// (test/fake-server.ts routes calls and streams between its connections as the reference
// server does): answers, errors passed through, no handler, a failing handler, timeouts that
// abort the handler, streams with flow control, refusals and aborts.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import {
  type MessageStreamReader,
  NoHandlerError,
  RequestError,
  RequestRefusedError,
  RequestTimeoutError,
  type Room,
  StreamError,
  connect,
} from "../src/index.js";
import { FakeServer, until } from "./fake-server.js";

const URL = "ws://127.0.0.1:9/room";
const opened: Room[] = [];
afterEach(async () => {
  for (const room of opened.splice(0)) await room.close();
});

async function pair(onError: (error: unknown) => void = () => {}): Promise<[Room, Room, FakeServer]> {
  const server = new FakeServer();
  const alice = await connect(URL, { token: "a", WebSocket: server.WebSocket, reconnect: false });
  const bob = await connect(URL, { token: "b", WebSocket: server.WebSocket, reconnect: false, onError });
  opened.push(alice, bob);
  await alice.messaging.enable();
  return [alice, bob, server];
}

test("a request resolves with the callee's answer and attachment", async () => {
  const [alice, bob] = await pair();
  bob.messaging.onRequest("tool.add", (request) => [{ sum: Number(request.message.a) + Number(request.message.b) }, request.attachment]);
  await bob.messaging.enable();
  const reply = await alice.messaging.request({ to: bob.localParticipant!, type: "tool.add", message: { a: 2, b: 3 }, attachment: new Uint8Array([7]) });
  assert.deepEqual(reply.message, { sum: 5 });
  assert.deepEqual(reply.attachment, new Uint8Array([7]));
  assert.equal(reply.fromParticipantId, bob.localParticipant!.id);
  assert.equal(reply.seq, 0);
});

test("errors pass through; no handler; a failing handler is HANDLER_FAILED and reported", async () => {
  const reported: unknown[] = [];
  const [alice, bob] = await pair((error) => reported.push(error));
  bob.messaging.onRequest("refuse", async () => {
    throw new RequestError("quota", 12345);
  });
  bob.messaging.onRequest("broken", async () => {
    throw new TypeError("secret detail");
  });
  await bob.messaging.enable();
  const to = bob.localParticipant!.id;
  await assert.rejects(alice.messaging.request({ to, type: "refuse", message: {} }), (e: unknown) => e instanceof RequestError && e.code === 12345 && e.reason === "quota");
  await assert.rejects(alice.messaging.request({ to, type: "none", message: {} }), (e: unknown) => e instanceof NoHandlerError && e.codeName === "NO_HANDLER");
  await assert.rejects(
    alice.messaging.request({ to, type: "broken", message: {} }),
    (e: unknown) => e instanceof RequestError && e.codeName === "HANDLER_FAILED" && e.reason === "the handler failed (TypeError)",
  );
  assert.equal(reported.length, 1);
  await assert.rejects(alice.messaging.request({ to: "nobody", type: "x", message: {} }), (e: unknown) => e instanceof RequestRefusedError && e.codeName === "NOT_FOUND");
});

test("a timeout rejects with RequestTimeoutError and aborts the callee's handler", async () => {
  const [alice, bob, server] = await pair();
  let aborted = false;
  bob.messaging.onRequest("slow", (_, signal) => new Promise((resolve) => signal.addEventListener("abort", () => ((aborted = true), resolve({})))));
  await bob.messaging.enable();
  await assert.rejects(alice.messaging.request({ to: bob.localParticipant!, type: "slow", message: {}, timeout: 0.05 }), (e: unknown) => e instanceof RequestTimeoutError && e.codeName === "CALL_CANCELLED");
  await until(() => aborted);
  assert.equal(server.received("cancel").length, 1);
  assert.equal(server.received("answer").length, 0); // an aborted handler's answer is not sent
});

test("a stream's chunks arrive in order; the writer waits at the window; close ends it", async () => {
  const [alice, bob, server] = await pair();
  const readers: MessageStreamReader[] = [];
  await bob.messaging.enable({ onStreamAccept: (reader) => void readers.push(reader) });
  const writer = await alice.messaging.createStream({ to: bob.localParticipant!, header: { name: "f" } });
  assert.equal(writer.window, 4096);
  const reader = readers[0]!;
  assert.deepEqual(reader.header, { name: "f" });
  for (let i = 0; i < 4; i++) await writer.write({ header: { i }, data: new Uint8Array(1024).fill(i) });
  let fifth = false;
  const pending = writer.write({ data: new Uint8Array([9]) }).then(() => (fifth = true));
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(fifth, false, "a write past the window went out before the reader read");
  const got: number[] = [];
  const reading = (async () => {
    for await (const chunk of reader) got.push(chunk.data.length);
  })();
  await pending;
  await writer.close();
  await reading;
  assert.deepEqual(got, [1024, 1024, 1024, 1024, 1]);
  assert.ok(server.received("credit").length >= 1);
});

test("a refused stream rejects createStream; an abort fails the other side", async () => {
  const [alice, bob] = await pair();
  await bob.messaging.enable();
  await assert.rejects(alice.messaging.createStream({ to: bob.localParticipant! }), (e: unknown) => e instanceof RequestRefusedError && e.codeName === "STREAM_ABORTED" && e.reason === "not accepting streams");
  const [carol, dave] = await pair();
  const readers: MessageStreamReader[] = [];
  await dave.messaging.enable({ onStreamAccept: (reader) => void readers.push(reader) });
  const writer = await carol.messaging.createStream({ to: dave.localParticipant! });
  readers[0]!.abort("disk full");
  await assert.rejects(
    (async () => {
      for (let i = 0; i < 100; i++) await writer.write({ data: new Uint8Array(1024) });
    })(),
    (e: unknown) => e instanceof StreamError && e.codeName === "STREAM_ABORTED" && e.reason === "disk full",
  );
});
