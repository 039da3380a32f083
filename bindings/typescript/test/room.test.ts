// The API of DESIGN §7.2 over an in-memory WebSocket (test/fake-server.ts): sends resolve with
// the message id, refusals reject with code and codeName, presence and messages reach the
// callbacks, limits are checked before sending, and a lost connection is reconnected, the
// attributes restored and messaging re-enabled.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { type Room, RoomError, type RoomMessage, connect as connectRoom } from "../src/index.js";
import { FakeServer, participant, until } from "./fake-server.js";

const URL = "ws://127.0.0.1:9/room";

// Every room a test opens is closed after it, failed or not: a room left open reconnects.
const opened: Promise<Room>[] = [];
afterEach(async () => {
  for (const room of opened.splice(0)) await room.then((r) => r.close(), () => {});
});

function connect(...args: Parameters<typeof connectRoom>): Promise<Room> {
  const room = connectRoom(...args);
  opened.push(room);
  return room;
}

async function enabledRoom(server: FakeServer, options: object = {}): Promise<Room> {
  const room = await connect(URL, { token: "t0k3n", WebSocket: server.WebSocket, reconnect: { firstDelay: 0.005 }, ...options });
  await room.messaging.enable();
  return room;
}

test("connect sends the token in the hello only, and exposes the welcome", async () => {
  const server = new FakeServer();
  const room = await connect(URL, { token: "t0k3n", WebSocket: server.WebSocket });
  assert.equal(server.last.url, URL);
  assert.deepEqual(server.received("hello"), [{ t: "hello", v: 1, token: "t0k3n" }]);
  assert.equal(room.localParticipant?.id, "me1");
  assert.equal(room.limits?.maxRecipients, 1000);
  assert.ok(room.connected);
  await room.close();
});

test("enable resolves with the snapshot in; presence lookups and participant_added", async () => {
  const server = new FakeServer();
  server.present = [participant("b1", "bob"), participant("c1", "carol")];
  const room = await connect(URL, { token: "t", WebSocket: server.WebSocket });
  const added: string[] = [];
  room.messaging.on("participant_added", (p) => added.push(p.name));
  await room.messaging.enable();
  assert.deepEqual(added, ["bob", "carol"]);
  assert.deepEqual(room.messaging.remoteParticipants.map((p) => p.id), ["b1", "c1"]);
  assert.equal(room.messaging.getParticipant("c1")?.name, "carol");
  assert.equal(room.messaging.getParticipantByName("bob")?.id, "b1");
  assert.equal(room.messaging.getParticipant("nobody"), null);
  assert.equal(room.messaging.getParticipantByName("nobody"), null);
  await room.close();
});

test("sendMessage resolves to the message id; to takes a participant, an id or a list", async () => {
  const server = new FakeServer();
  server.present = [participant("b1", "bob"), participant("c1", "carol")];
  const room = await enabledRoom(server);
  const bob = room.messaging.getParticipantByName("bob")!;
  const attachment = new Uint8Array([0, 1, 255]);
  assert.equal(await room.messaging.sendMessage({ to: bob, type: "chat", message: { text: "hi" }, attachment }), "m1");
  assert.equal(await room.messaging.sendMessage({ to: "c1", type: "chat", message: {} }), "m2");
  assert.equal(await room.messaging.sendMessage({ to: [bob, "c1", "b1"], type: "chat", message: {} }), "m3");
  const sends = server.received("send").map(({ key, ...rest }) => (assert.match(key as string, /^[0-9a-f]{32}$/), rest));
  assert.deepEqual(sends[0], { t: "send", type: "chat", message: { text: "hi" }, att: attachment, to: ["b1"], rid: 2 });
  assert.deepEqual(sends[1]!.to, ["c1"]);
  assert.deepEqual(sends[2]!.to, ["b1", "c1"]); // duplicates removed, as the server counts them
  assert.equal(await room.messaging.broadcastMessage({ type: "news", message: { n: 1 } }), "m4");
  const { key, ...broadcast } = server.received("broadcast")[0]!;
  assert.deepEqual(broadcast, { t: "broadcast", type: "news", message: { n: 1 }, rid: 5 });
  assert.notEqual(key, server.received("send")[0]!.key, "a key per send");
  await room.close();
});

test("many sends in flight at once each resolve with their own id", async () => {
  const server = new FakeServer();
  server.present = [participant("b1", "bob")];
  const room = await enabledRoom(server);
  const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => room.messaging.sendMessage({ to: "b1", type: "n", message: { i } })));
  assert.deepEqual(ids, Array.from({ length: 20 }, (_, i) => `m${i + 1}`));
  await room.close();
});

test("a refusal rejects with an Error carrying code and codeName; the room stays usable", async () => {
  const server = new FakeServer();
  server.present = [participant("b1", "bob")];
  const room = await enabledRoom(server);
  await assert.rejects(room.messaging.sendMessage({ to: "nobody", type: "chat", message: {} }), (error: unknown) => {
    assert.ok(error instanceof Error);
    assert.equal((error as { code?: number }).code, 4040);
    assert.equal((error as { codeName?: string }).codeName, "NOT_FOUND");
    assert.match(error.message, /nobody/);
    return true;
  });
  assert.equal(await room.messaging.sendMessage({ to: "b1", type: "chat", message: {} }), "m1");
  await room.close();
});

test("the advertised limits and the state are checked before anything is sent", async () => {
  const server = new FakeServer();
  const room = await connect(URL, { token: "t", WebSocket: server.WebSocket });
  const codeOf = async (promise: Promise<unknown>) => {
    try {
      await promise;
    } catch (error) {
      return `${(error as { code: number }).code} ${(error as { codeName: string }).codeName}`;
    }
    return "resolved";
  };
  assert.equal(await codeOf(room.messaging.sendMessage({ to: "b1", type: "chat", message: {} })), "1002 PROTOCOL_ERROR");
  await room.messaging.enable();
  const m = room.messaging;
  assert.equal(await codeOf(m.broadcastMessage({ type: "x".repeat(257), message: {} })), "4000 INVALID_REQUEST");
  // The limit counts characters (code points): 256 emoji are 512 UTF-16 units and fit.
  assert.equal(await codeOf(m.broadcastMessage({ type: "\u{1F600}".repeat(256), message: {} })), "resolved");
  assert.equal(await codeOf(m.broadcastMessage({ type: "", message: {} })), "4000 INVALID_REQUEST");
  assert.equal(await codeOf(m.sendMessage({ to: [], type: "a", message: {} })), "4000 INVALID_REQUEST");
  const many = Array.from({ length: 1001 }, (_, i) => `p${i}`);
  assert.equal(await codeOf(m.sendMessage({ to: many, type: "a", message: {} })), "4000 INVALID_REQUEST");
  assert.equal(await codeOf(m.broadcastMessage({ type: "a", message: { x: "y".repeat(1047552) } })), "4130 TOO_LARGE");
  assert.equal(await codeOf(m.broadcastMessage({ type: "a", message: { x: NaN } })), "4000 INVALID_REQUEST");
  assert.equal(await codeOf(m.broadcastMessage({ type: "a", message: { x: undefined } as never })), "4000 INVALID_REQUEST");
  assert.equal(await codeOf(m.broadcastMessage({ type: "a", message: { x: "\ud800" } })), "4000 INVALID_REQUEST");
  assert.equal(await codeOf(m.broadcastMessage({ type: "a", message: [] as never })), "4000 INVALID_REQUEST");
  assert.equal(await codeOf(m.broadcastMessage({ type: "a", message: {}, attachment: [1] as never })), "4000 INVALID_REQUEST");
  assert.deepEqual(server.received("broadcast").length, 1, "only the valid broadcast went out");
  await room.close();
});

test("deliveries and presence diffs reach the callbacks in order, and the view follows", async () => {
  const server = new FakeServer();
  server.present = [participant("b1", "bob")];
  const room = await enabledRoom(server);
  const seen: string[] = [];
  const messages: RoomMessage[] = [];
  room.messaging.on("message", (m) => messages.push(m));
  room.messaging.on("participant_added", (p) => seen.push(`added ${p.id}`));
  room.messaging.on("participant_updated", (p) => seen.push(`updated ${p.id} ${JSON.stringify(p.attributes)}`));
  room.messaging.on("participant_removed", (p) => seen.push(`removed ${p.id}`));
  const socket = server.last;
  socket.push({ t: "joined", p: participant("c1", "carol"), seq: 2 });
  socket.push({ t: "updated", p: participant("c1", "carol", { mood: "ok" }), seq: 3 });
  socket.push({ t: "msg", id: "m9", seq: 4, ts: 1234.5, from: "c1", type: "chat", message: { text: "hey" }, bc: false, att: new Uint8Array([7]) });
  socket.push({ t: "msg", id: "m10", seq: 5, ts: 1235, from: "b1", type: "news", message: {}, bc: true });
  socket.push({ t: "left", id: "b1", seq: 6 });
  await until(() => seen.length === 3);
  assert.deepEqual(seen, ["added c1", 'updated c1 {"mood":"ok"}', "removed b1"]);
  assert.deepEqual(messages, [
    { id: "m9", seq: 4, timestamp: 1234.5, fromParticipantId: "c1", type: "chat", message: { text: "hey" }, attachment: new Uint8Array([7]), broadcast: false },
    { id: "m10", seq: 5, timestamp: 1235, fromParticipantId: "b1", type: "news", message: {}, attachment: null, broadcast: true },
  ]);
  assert.deepEqual(room.messaging.remoteParticipants.map((p) => p.id), ["c1"]);
  assert.deepEqual(room.messaging.getParticipant("c1")?.attributes, { mood: "ok" });
  await room.close();
});

test("a callback that throws is reported and does not stop the others", async () => {
  const server = new FakeServer();
  const errors: unknown[] = [];
  const room = await enabledRoom(server, { onError: (e: unknown) => errors.push(e) });
  const names: string[] = [];
  room.messaging.on("participant_added", () => {
    throw new Error("app bug");
  });
  room.messaging.on("participant_added", (p) => names.push(p.name));
  server.last.push({ t: "joined", p: participant("c1", "carol"), seq: 2 });
  await until(() => names.length === 1);
  assert.equal((errors[0] as Error).message, "app bug");
  await room.close();
});

test("disable clears presence with participant_removed for each", async () => {
  const server = new FakeServer();
  server.present = [participant("b1", "bob")];
  const room = await enabledRoom(server);
  const removed: string[] = [];
  room.messaging.on("participant_removed", (p) => removed.push(p.id));
  await room.messaging.disable();
  assert.deepEqual(removed, ["b1"]);
  assert.equal(room.messaging.remoteParticipants.length, 0);
  assert.equal(room.messaging.enabled, false);
  await room.close();
});

test("pings are answered with pongs", async () => {
  const server = new FakeServer();
  const room = await enabledRoom(server);
  server.last.push({ t: "ping" });
  await until(() => server.received("pong").length === 1);
  await room.close();
});

test("a lost connection is reconnected and messaging re-enabled; presence is re-snapshotted", async () => {
  const server = new FakeServer();
  server.present = [participant("b1", "bob")];
  const room = await enabledRoom(server);
  const events: string[] = [];
  room.messaging.on("participant_added", (p) => events.push(`added ${p.id}`));
  room.messaging.on("participant_removed", (p) => events.push(`removed ${p.id}`));
  server.present = [participant("c1", "carol")]; // bob left while we were away
  server.last.hangUp();
  await until(() => server.sockets.length === 2 && server.received("enable").length === 2);
  await until(() => events.length === 2);
  assert.deepEqual(events, ["removed b1", "added c1"]);
  assert.equal(room.localParticipant?.id, "me2");
  assert.deepEqual(server.sockets[1]!.received.map((f) => f.t), ["hello", "enable"]);
  assert.equal(await room.messaging.sendMessage({ to: "c1", type: "chat", message: {} }), "m1");
  await room.close();
});

test("a reconnect resumes: the same id, no re-enable, what was missed first (PROTOCOL §22)", async () => {
  const server = new FakeServer();
  server.resumable = true;
  server.present = [participant("b1", "bob")];
  const room = await enabledRoom(server);
  await room.setAttributes({ mood: "calm" });
  const events: string[] = [];
  room.messaging.on("reconnected", (info) => events.push(`back ${info.participant.id} ${info.recovered} ${info.missed}`));
  room.messaging.on("message", (m) => events.push(`message ${String(m.message.n)}`));
  room.messaging.on("participant_removed", (p) => events.push(`removed ${p.id}`));
  server.replay = [1, 2].map((n) => ({ t: "msg", id: `m${n}`, seq: n, ts: 1, from: "b1", type: "chat", message: { n }, bc: true }));
  server.last.hangUp();
  await until(() => events.length === 3);
  assert.deepEqual(events, ["back me1 true 2", "message 1", "message 2"]); // nobody left, nothing added
  assert.equal(room.localParticipant?.id, "me1");
  const hello = server.sockets[1]!.received[0]!;
  assert.deepEqual(hello.resume, { id: "me1", secret: "s3cret", epoch: "e1", seq: 0, enable: true, presence: true });
  assert.deepEqual(server.sockets[1]!.received.map((f) => f.t), ["hello"]); // no re-enable, no attributes
  assert.ok(room.messaging.enabled);
  await room.close();
});

test("a re-enable the server refuses after a reconnect is reported, and the room stays up", async () => {
  const server = new FakeServer();
  const errors: unknown[] = [];
  const room = await enabledRoom(server, { onError: (e: unknown) => errors.push(e) });
  server.refuseEnable = 4032;
  server.last.hangUp();
  await until(() => errors.length === 1);
  assert.deepEqual([(errors[0] as RoomError).code, (errors[0] as RoomError).codeName], [4032, "FORBIDDEN_LIST"]);
  assert.ok(room.connected);
  await assert.rejects(room.messaging.broadcastMessage({ type: "a", message: {} }), { code: 1002, codeName: "PROTOCOL_ERROR" });
});

test("setAttributes is acked, checked against the limit first, and restored on reconnect", async () => {
  const server = new FakeServer();
  const room = await enabledRoom(server);
  await room.setAttributes({ mood: "ok", away: true });
  await room.setAttributes({ away: null });
  assert.deepEqual(room.localParticipant?.attributes, { mood: "ok" });
  await assert.rejects(room.setAttributes({ big: "x".repeat(65536) }), { code: 4130, codeName: "TOO_LARGE" });
  await assert.rejects(room.setAttributes({ bad: NaN }), { code: 4000, codeName: "INVALID_REQUEST" });
  assert.equal(server.received("attrs").length, 2);
  server.last.hangUp();
  await until(() => server.received("enable").length === 2);
  assert.deepEqual(server.sockets[1]!.received.map((f) => f.t), ["hello", "attrs", "enable"]);
  assert.deepEqual(server.sockets[1]!.received[1]!.attributes, { mood: "ok" });
});

test("requests wait while the WebSocket holds more than maxPendingBytes unsent", async () => {
  const server = new FakeServer();
  const room = await enabledRoom(server, { maxPendingBytes: 1000 });
  server.last.bufferedAmount = 1001;
  let done = false;
  const sending = room.messaging.broadcastMessage({ type: "a", message: {} }).then((id) => ((done = true), id));
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(done, false);
  assert.equal(server.received("broadcast").length, 0, "nothing queued while the socket is full");
  server.last.bufferedAmount = 1000;
  assert.equal(await sending, "m1");
});

test("a send made while reconnecting waits for the new connection", async () => {
  const server = new FakeServer();
  server.present = [participant("b1", "bob")];
  const room = await enabledRoom(server);
  server.last.hangUp();
  await until(() => !room.connected);
  const id = await room.messaging.sendMessage({ to: "b1", type: "chat", message: {} });
  assert.equal(id, "m1");
  assert.deepEqual(server.sockets[1]!.received.map((f) => f.t), ["hello", "enable", "send"]);
  await room.close();
});

test("a request in flight when the connection drops rejects with CONNECTION_LOST", async () => {
  const server = new FakeServer();
  const room = await enabledRoom(server, { reconnect: false });
  server.silent = true;
  const pending = room.messaging.broadcastMessage({ type: "a", message: {} });
  server.last.hangUp();
  await assert.rejects(pending, { code: 1006, codeName: "CONNECTION_LOST" });
  await assert.rejects(room.messaging.broadcastMessage({ type: "a", message: {} }), { code: 1006 });
});

test("a refused token rejects connect with its code, and is not retried", async () => {
  const server = new FakeServer();
  server.refuseWith = 3021;
  await assert.rejects(connect(URL, { token: "old", WebSocket: server.WebSocket }), { code: 3021, codeName: "TOKEN_EXPIRED" });
  assert.equal(server.sockets.length, 1);
  assert.deepEqual(server.last.received.map((f) => f.t), ["hello", "close"], "the client echoes the close");
});

test("an unreachable server rejects connect with CONNECTION_LOST; a bad URL with TypeError", async () => {
  const server = new FakeServer();
  server.silent = true;
  const connecting = connect(URL, { token: "t", WebSocket: server.WebSocket });
  await until(() => server.sockets.length === 1);
  server.last.hangUp();
  await assert.rejects(connecting, { code: 1006, codeName: "CONNECTION_LOST" });
  await assert.rejects(connect("tcp://127.0.0.1:1", { token: "t", WebSocket: server.WebSocket }), TypeError);
});

test("no welcome within the handshake timeout rejects with HANDSHAKE_TIMEOUT", async () => {
  const server = new FakeServer();
  server.silent = true;
  const start = Date.now();
  await assert.rejects(connect(URL, { token: "t", WebSocket: server.WebSocket, config: { handshakeTimeout: 0.05 } }), {
    code: 3002,
    codeName: "HANDSHAKE_TIMEOUT",
  });
  assert.ok(Date.now() - start < 1000);
  assert.deepEqual(server.last.received.map((f) => f.t), ["hello", "close"]);
});

test("a silent server is a dead peer after hb + hbt: closed with HEARTBEAT_TIMEOUT", async () => {
  const server = new FakeServer();
  server.hb = 0.03;
  server.hbt = 0.03;
  const room = await enabledRoom(server, { reconnect: false });
  const pending = room.messaging.broadcastMessage({ type: "a", message: {} });
  server.silent = true;
  await until(() => !room.connected);
  // The broadcast's ack did arrive; afterwards nothing did.
  assert.equal(await pending, "m1");
  assert.deepEqual(server.sockets[0]!.received.at(-1), { t: "close", code: 3001, reason: "nothing heard from the server in time" });
  await assert.rejects(room.messaging.broadcastMessage({ type: "a", message: {} }), { code: 3001, codeName: "HEARTBEAT_TIMEOUT" });
});

test("a server that breaks the protocol is closed with the code; a text message is BAD_FRAME", async () => {
  const server = new FakeServer();
  const room = await enabledRoom(server, { reconnect: false });
  server.last.pushText("hello?");
  await until(() => !room.connected);
  assert.deepEqual(server.last.received.at(-1), { t: "close", code: 1003, reason: "a text message is not a roomwire frame" });
  const server2 = new FakeServer();
  const room2 = await enabledRoom(server2, { reconnect: false });
  server2.last.push({ t: "left", id: "ghost", seq: 1 });
  await until(() => !room2.connected);
  assert.deepEqual(server2.last.received.at(-1), { t: "close", code: 1002, reason: "'left' for absent participant 'ghost'" });
  assert.equal(room.localParticipant?.id, "me1", "the last participant stays known");
});

test("close() sends a close, waits for the answer, and ends the room", async () => {
  const server = new FakeServer();
  const room = await enabledRoom(server);
  await room.close();
  assert.deepEqual(server.last.received.at(-1), { t: "close", code: 1000, reason: "client closing" });
  assert.equal(room.connected, false);
  await assert.rejects(room.messaging.sendMessage({ to: "x", type: "a", message: {} }), { code: 1000, codeName: "NORMAL" });
  assert.equal(server.sockets.length, 1, "no reconnect after close");
});

test("the core refuses to send a close with a code that is not a close code", async () => {
  const { ClientConnection } = await import("../src/index.js");
  const conn = new ClientConnection({ token: "t", now: 0 });
  for (const code of [4040, 1006, 1234]) assert.throws(() => conn.close(code), { code: 4000, codeName: "INVALID_REQUEST" });
  assert.equal(conn.state, "HANDSHAKE");
  conn.close(3002, "giving up");
  assert.equal(conn.state, "CLOSING");
});

test("on() refuses an unknown event name", async () => {
  const server = new FakeServer();
  const room = await connect(URL, { token: "t", WebSocket: server.WebSocket });
  assert.throws(() => room.messaging.on("messages" as "message", () => {}), TypeError);
  await room.close();
});

// --- idempotent sends and recipient counts (PROTOCOL.md §26) -------------------------------

test("receipt: true resolves to the id, the recipients count and duplicate; a key is sent as given", async () => {
  const server = new FakeServer();
  server.present = [participant("b1", "bob"), participant("c1", "carol")];
  const room = await enabledRoom(server);
  const sent = await room.messaging.broadcastMessage({ type: "a", message: {}, receipt: true, idempotencyKey: "order-17" });
  assert.deepEqual(sent, { messageId: "m1", recipients: 2, duplicate: false });
  assert.deepEqual(await room.messaging.sendMessage({ to: "b1", type: "a", message: {}, receipt: true }), { messageId: "m2", recipients: 1, duplicate: false });
  const again = await room.messaging.broadcastMessage({ type: "a", message: {}, receipt: true, idempotencyKey: "order-17" });
  assert.deepEqual(again, { messageId: "m1", recipients: 2, duplicate: true });
  assert.deepEqual(server.received("broadcast").map((f) => f.key), ["order-17", "order-17"]);
  await assert.rejects(room.messaging.broadcastMessage({ type: "a", message: {}, idempotencyKey: "k".repeat(65) }), { code: 4000 });
  assert.equal(room.limits?.idempotencyWindow, 120, "the default when the welcome does not say");
  await room.close();
});

test("a send whose ack was lost is re-sent with its key after the reconnect and resolves with the first id", async () => {
  const server = new FakeServer();
  server.present = [participant("b1", "bob")];
  const room = await enabledRoom(server);
  server.dropAcks = true; // the server routes it; its ack never arrives
  const sending = room.messaging.sendMessage({ to: "b1", type: "chat", message: {}, receipt: true });
  await until(() => server.received("send").length === 1);
  server.dropAcks = false;
  server.last.hangUp();
  assert.deepEqual(await sending, { messageId: "m1", recipients: 1, duplicate: true });
  assert.deepEqual(server.sockets[1]!.received.map((f) => f.t), ["hello", "enable", "send"]);
  const [first, resent] = server.received("send");
  assert.equal(resent!.key, first!.key);
  await room.close();
});

test("a send lost on its way in is delivered once after the reconnect; sends keep their order", async () => {
  const server = new FakeServer();
  const room = await enabledRoom(server);
  server.dropSends = true;
  const first = room.messaging.broadcastMessage({ type: "a", message: { n: 1 } });
  const second = room.messaging.broadcastMessage({ type: "a", message: { n: 2 } });
  await until(() => server.received("broadcast").length === 2);
  // The fake server answers a frame on a timer after recording it: let it drop both first
  // (else the second is acked, its ack lost with the link, and its re-send is a dup).
  await new Promise((resolve) => setTimeout(resolve));
  server.dropSends = false;
  server.last.hangUp();
  assert.deepEqual([await first, await second], ["m1", "m2"]);
  assert.deepEqual(server.sockets[1]!.received.map((f) => f.t), ["hello", "enable", "broadcast", "broadcast"]);
  assert.deepEqual(server.sockets[1]!.received.slice(2).map((f) => (f.message as { n: number }).n), [1, 2]);
  await room.close();
});

test("an unanswered send fails when reconnecting gives up, or when the room is closed", async () => {
  const server = new FakeServer();
  const room = await enabledRoom(server, { reconnect: { firstDelay: 0.005, giveUpAfter: 0.1 } });
  server.dropAcks = true;
  const sending = room.messaging.broadcastMessage({ type: "a", message: {} });
  await until(() => server.received("broadcast").length === 1);
  server.refuseWith = 1001; // GOING_AWAY: worth retrying, until the policy gives up
  server.last.hangUp();
  await assert.rejects(sending, (error: unknown) => error instanceof RoomError && /could not reconnect/.test(error.message));
  const other = await enabledRoom(new FakeServer());
  const server2 = new FakeServer();
  const third = await enabledRoom(server2);
  server2.dropAcks = true;
  const pending = third.messaging.broadcastMessage({ type: "a", message: {} });
  await until(() => server2.received("broadcast").length === 1);
  await third.close();
  await assert.rejects(pending, { code: 1000 });
  await other.close();
});
