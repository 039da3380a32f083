// The shipped artifact: dist/index.js is one self-contained ES module (no imports left, no
// Node built-ins) that a page can load as is; it runs the API end to end; and over Node's own
// WebSocket a server that is not there, or is not a WebSocket server, is a typed rejection.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { test } from "node:test";

import { FakeServer, participant } from "./fake-server.js";

const DIST = new URL("../../dist/index.js", import.meta.url);
type Api = typeof import("../src/index.js");

test("dist/index.js imports nothing and names no Node built-in", () => {
  const code = readFileSync(DIST, "utf8");
  assert.doesNotMatch(code, /^\s*import\s/m, "a static import");
  assert.doesNotMatch(code, /\bimport\s*\(/, "a dynamic import");
  assert.doesNotMatch(code, /\brequire\s*\(/, "a require");
  assert.doesNotMatch(code, /["']node:/, "a node: module");
  assert.doesNotMatch(code, /\bprocess\./, "Node's process");
});

test("dist/index.js exports the API and runs it", async () => {
  const api = (await import(DIST.href)) as Api;
  for (const name of ["connect", "ClientConnection", "RoomError", "Code", "NEED_DATA", "decodeServerFrame", "encodePayload"]) {
    assert.ok(name in api, name);
  }
  const server = new FakeServer();
  server.present = [participant("b1", "bob")];
  const room = await api.connect("ws://127.0.0.1:9/", { token: "t", WebSocket: server.WebSocket });
  await room.messaging.enable();
  assert.equal(await room.messaging.sendMessage({ to: "b1", type: "chat", message: { a: 1 }, attachment: new Uint8Array([1]) }), "m1");
  await assert.rejects(room.messaging.sendMessage({ to: "x", type: "chat", message: {} }), (error: unknown) => {
    assert.ok(error instanceof api.RoomError);
    assert.equal(error.codeName, "NOT_FOUND");
    return true;
  });
  await room.close();
});

test("Node's WebSocket: nobody listening rejects with CONNECTION_LOST", async () => {
  const { connect } = (await import(DIST.href)) as Api;
  const port = await freePort();
  await assert.rejects(connect(`ws://127.0.0.1:${port}/`, { token: "t", reconnect: false }), { code: 1006, codeName: "CONNECTION_LOST" });
});

test("Node's WebSocket: a server that answers HTTP 400 to the upgrade rejects with CONNECTION_LOST", async () => {
  const { connect } = (await import(DIST.href)) as Api;
  const server = createServer((socket) => {
    socket.once("data", () => socket.end("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  try {
    await assert.rejects(connect(`ws://127.0.0.1:${port}/`, { token: "t" }), { code: 1006 });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
