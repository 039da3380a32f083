// The encoder against the reference: test/encode_cases.json holds JSON objects and the bytes
// roomwire.frames.encode_payload writes for them (test/make_cbor_cases.py); every one must
// come out byte for byte. Then the cbor-x defaults this client must not inherit.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { decodeItem } from "../src/decode.js";
import { checkJson, encodePayload, widenIntegers, type JsonObject } from "../src/encode.js";
import { toHex } from "./helpers.js";

const cases: { json: string; hex: string }[] = JSON.parse(
  readFileSync(new URL("../../test/encode_cases.json", import.meta.url), "utf8"),
);

/** What the client does with a message: check it, widen it when needed, encode it. */
function encodeMessage(message: JsonObject): string {
  const json = checkJson(message);
  assert.ok(json, "a JSON object");
  return toHex(encodePayload((json === "wide" ? widenIntegers(message) : message) as object));
}

test("every reference encoding is reproduced byte for byte, and decodes back", () => {
  assert.ok(cases.length >= 80);
  for (const [index, { json, hex }] of cases.entries()) {
    const message = JSON.parse(json) as JsonObject;
    assert.equal(encodeMessage(message), hex, `case ${index}: ${json.slice(0, 80)}`);
    const decoded = decodeItem(Buffer.from(hex, "hex")).value;
    assert.deepEqual(JSON.parse(JSON.stringify(decoded, (_, v) => (typeof v === "bigint" ? Number(v) : v))), message, `case ${index} decodes back`);
  }
});

test("integers take the shortest head, 2^32 and beyond included (cbor-x writes floats)", () => {
  const expected: [number, string][] = [
    [23, "17"],
    [24, "1818"],
    [65536, "1a00010000"],
    [2 ** 32 - 1, "1affffffff"],
    [2 ** 32, "1b0000000100000000"],
    [-(2 ** 32), "3affffffff"],
    [-(2 ** 32) - 1, "3b0000000100000000"],
    [2 ** 53, "1b0020000000000000"],
    [2 ** 64 - 2 ** 11, "1bfffffffffffff800"],
    [-(2 ** 64) + 2 ** 11, "3bfffffffffffff7ff"],
    [-(2 ** 64), "fbc3f0000000000000"],
    // Beyond CBOR's integers a JavaScript number can only be the float it is.
    [2 ** 64, "fb43f0000000000000"],
    [-(2 ** 64) - 2 ** 12, "fbc3f0000000000001"],
  ];
  for (const [n, head] of expected) assert.equal(encodeMessage({ n }), `a1616e${head}`, String(n));
});

test("non-integral numbers are 64-bit floats; byte strings carry no tag; keys keep their order", () => {
  assert.equal(toHex(encodePayload({ x: 0.5 })), "a16178fb3fe0000000000000");
  assert.equal(toHex(encodePayload({ att: new Uint8Array([1, 2]) })), "a16361747442 0102".replace(" ", ""));
  assert.equal(toHex(encodePayload({ t: "a", rid: 1, b: 2 })), "a3617461616372696401616202");
});

test("checkJson refuses what the reference's is_json_object refuses", () => {
  const refused: unknown[] = [
    [],
    null,
    "x",
    new Map(),
    { x: undefined },
    { x: NaN },
    { x: Infinity },
    { x: 1n },
    { x: new Uint8Array(1) },
    { x: new Date(0) },
    { x: () => 1 },
    { "\ud800": 1 },
    { x: ["\udc00"] },
    { x: JSON.parse("[".repeat(31) + "]".repeat(31)) },
  ];
  for (const value of refused) assert.equal(checkJson(value), false, String(value));
  assert.equal(checkJson({ x: JSON.parse("[".repeat(30) + "]".repeat(30)) }), "ok", "31 levels, the frame's map makes 32");
  assert.equal(checkJson({ x: -(2 ** 64) + 2 ** 11 }), "wide");
  assert.equal(checkJson(Object.create(null)), "ok");
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.equal(checkJson(cyclic), false, "a cycle is refused at the depth cap");
});

test("widenIntegers copies a __proto__ key as a key", () => {
  const message = JSON.parse('{"__proto__": {"n": 5000000000}}') as JsonObject;
  assert.equal(checkJson(message), "wide");
  assert.equal(toHex(encodePayload(widenIntegers(message) as object)), "a1695f5f70726f746f5f5fa1616e1b000000012a05f200");
});
