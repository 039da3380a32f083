// The "garbage gives events or RemoteProtocolError" invariant (DESIGN §6, after h11): the
// server frames of every client vector, intact or mutated with a seeded generator (bytes
// flipped, truncated, spliced, and plain noise), fed to a client in each state. Each call of
// nextEvent returns an event or NEED_DATA, or throws RemoteProtocolError with the client
// CLOSED and that close frame queued; nothing else is thrown, and nothing hangs.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { ClientConnection, NEED_DATA, RemoteProtocolError } from "../src/index.js";
import { decodeItem } from "../src/decode.js";
import { VECTORS_DIR, fromHex } from "./helpers.js";

const ROUNDS = 4000;

/** Every frame body the server sends in the client vectors. */
function serverBodies(): Uint8Array[] {
  const bodies: Uint8Array[] = [];
  for (const name of readdirSync(VECTORS_DIR).filter((n) => n.startsWith("client_"))) {
    const vector = JSON.parse(readFileSync(join(VECTORS_DIR, name), "utf8"));
    for (const step of vector.steps) {
      if (!("hex" in step)) continue;
      const stream = fromHex(Array.isArray(step.hex) ? step.hex.join("") : step.hex);
      for (let pos = 0; pos + 4 <= stream.length; ) {
        const size = new DataView(stream.buffer, stream.byteOffset + pos).getUint32(0);
        if (size === 0 || pos + 4 + size > stream.length) break;
        bodies.push(stream.slice(pos + 4, pos + 4 + size));
        pos += 4 + size;
      }
    }
  }
  return bodies;
}

const WELCOME = serverBodies().find((b) => (decodeItem(b).value as { t: string }).t === "welcome")!;
const SNAPSHOT = fromHex("a4617468736e617073686f746372696401646d6f7265f46c7061727469636970616e747380");

function mutate(body: Uint8Array, random: () => number, others: Uint8Array[]): Uint8Array {
  const out = Array.from(body);
  const edits = 1 + Math.floor(random() * 4);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(random() * (out.length + 1));
    switch (Math.floor(random() * 5)) {
      case 0:
        out[at] = Math.floor(random() * 256);
        break;
      case 1:
        out.length = at;
        break;
      case 2:
        out.splice(at, 0, ...Array.from({ length: 1 + Math.floor(random() * 8) }, () => Math.floor(random() * 256)));
        break;
      case 3: {
        const other = others[Math.floor(random() * others.length)]!;
        out.splice(at, 0, ...other.subarray(Math.floor(random() * other.length)));
        break;
      }
      default:
        out.splice(at, 1);
    }
  }
  return new Uint8Array(out);
}

test("mutated and random frames give events or RemoteProtocolError, in every state", () => {
  const bodies = serverBodies();
  assert.ok(bodies.length > 50);
  let state = 14;
  const random = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const outcomes = { events: 0, refused: 0 };
  for (let round = 0; round < ROUNDS; round++) {
    const conn = new ClientConnection({ token: "t", now: 0 });
    const setup = Math.floor(random() * 3); // 0: HANDSHAKE, 1: OPEN, 2: ENABLED
    if (setup >= 1) conn.receiveFrame(WELCOME);
    while (conn.nextEvent(0) !== NEED_DATA);
    if (setup === 2) {
      conn.enable();
      conn.receiveFrame(SNAPSHOT);
      while (conn.nextEvent(0) !== NEED_DATA);
    }
    conn.framesToSend();
    const frames = Array.from({ length: 1 + Math.floor(random() * 3) }, () => {
      const roll = random();
      const body = bodies[Math.floor(random() * bodies.length)]!;
      if (roll < 0.1) return new Uint8Array(Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 256)));
      return roll < 0.4 ? body : mutate(body, random, bodies); // intact frames reach later states
    });
    for (const frame of frames) conn.receiveFrame(frame);
    for (let calls = 0; calls <= frames.length; calls++) {
      try {
        const event = conn.nextEvent(1);
        if (event === NEED_DATA) break;
        outcomes.events++;
        if (event.event === "ConnectionClosed") break;
      } catch (error) {
        assert.ok(error instanceof RemoteProtocolError, `round ${round}: ${String(error)}`);
        assert.equal(conn.state, "CLOSED");
        const sent = conn.framesToSend().map((f) => decodeItem(f).value);
        assert.deepEqual(sent.at(-1), { t: "close", code: error.code, reason: error.reason });
        outcomes.refused++;
        break;
      }
    }
  }
  // Both outcomes happen: the inputs are neither all fatal nor all harmless.
  assert.ok(outcomes.events > 100 && outcomes.refused > ROUNDS / 2, JSON.stringify(outcomes));
});
