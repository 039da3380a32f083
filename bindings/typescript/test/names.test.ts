// PROTOCOL.md §9.5 (issue 13, finding 7): a name shared by several present participants
// names nobody, whatever the order of arrivals; it names the one left once the others go.
import assert from "node:assert/strict";
import { test } from "node:test";

import { connect } from "../src/index.js";
import { FakeServer, participant, until } from "./fake-server.js";

const URL = "ws://127.0.0.1:7890/";

test("a name two present participants share resolves to nobody, then to the one left", async () => {
  const server = new FakeServer();
  server.present = [participant("b1", "bob"), participant("c1", "carol")];
  const room = await connect(URL, { token: "t", WebSocket: server.WebSocket });
  await room.messaging.enable();
  assert.equal(room.messaging.getParticipantByName("bob")?.id, "b1");
  const socket = server.last;
  socket.push({ t: "joined", p: participant("b2", "bob"), seq: 2 }); // a newcomer takes the name
  await until(() => room.messaging.remoteParticipants.length === 3);
  assert.equal(room.messaging.getParticipantByName("bob"), null);
  assert.equal(room.messaging.getParticipantByName("carol")?.id, "c1");
  socket.push({ t: "left", id: "b1", seq: 3 });
  await until(() => room.messaging.remoteParticipants.length === 2);
  assert.equal(room.messaging.getParticipantByName("bob")?.id, "b2");
  await room.close();
});

test("a snapshot that already holds the name twice resolves it to nobody", async () => {
  const server = new FakeServer();
  server.present = [participant("b1", "bob"), participant("b2", "bob")];
  const room = await connect(URL, { token: "t", WebSocket: server.WebSocket });
  await room.messaging.enable();
  assert.equal(room.messaging.getParticipantByName("bob"), null);
  assert.equal(room.messaging.getParticipantByName("nobody"), null);
  await room.close();
});
