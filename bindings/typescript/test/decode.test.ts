// The strict decoder against the reference: test/cbor_cases.json holds frame bodies and
// whether the Python client accepts each (written by test/make_cbor_cases.py from
// roomwire.frames), one or more per rule of PROTOCOL.md §3 and per field shape of §7.3.
// Then the values the decoder builds where JavaScript has no exact match for CBOR.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { CborError, SimpleValue, decodeItem } from "../src/decode.js";
import { decodeServerFrame } from "../src/frames.js";
import { RemoteProtocolError } from "../src/index.js";
import { fromHex } from "./helpers.js";

const cases: { hex: string; note: string; accepted: boolean }[] = JSON.parse(
  readFileSync(new URL("../../test/cbor_cases.json", import.meta.url), "utf8"),
);

test("the reference's cases cover acceptance and refusal", () => {
  assert.ok(cases.filter((c) => c.accepted).length >= 30);
  assert.ok(cases.filter((c) => !c.accepted).length >= 60);
});

for (const { hex, note, accepted } of cases) {
  test(`${accepted ? "accepts" : "refuses"} ${note}`, () => {
    const decode = () => decodeServerFrame(fromHex(hex));
    if (accepted) {
      decode();
    } else {
      assert.throws(decode, (error: unknown) => {
        assert.ok(error instanceof RemoteProtocolError, String(error));
        assert.equal(error.code, 1003);
        return true;
      });
    }
  });
}

const value = (hex: string) => decodeItem(fromHex(hex)).value;

test("a map with a byte-string key is a Map, text and byte keys kept apart", () => {
  const map = value("a2617401417402") as Map<unknown, unknown>;
  assert.ok(map instanceof Map);
  assert.deepEqual([...map], [["t", 1], [new Uint8Array([0x74]), 2]]);
});

test("a __proto__ key is an own property, not the prototype", () => {
  const object = value("a1695f5f70726f746f5f5fa16178 01".replace(" ", "")) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(object), Object.prototype);
  assert.deepEqual(Object.getOwnPropertyDescriptor(object, "__proto__")?.value, { x: 1 });
});

test("integers beyond 2^53 are bigints; others are exact numbers", () => {
  assert.equal(value("1bffffffffffffffff"), 2n ** 64n - 1n);
  assert.equal(value("3bffffffffffffffff"), -(2n ** 64n));
  assert.equal(value("1b001fffffffffffff"), 2 ** 53 - 1);
  assert.equal(value("3b001ffffffffffffe"), -(2 ** 53) + 1);
  assert.equal(value("3b001fffffffffffff"), -(2n ** 53n));
  assert.equal(value("1b0020000000000000"), 2n ** 53n);
  assert.equal(value("3a7fffffff"), -(2 ** 31));
});

test("floats of every width; half floats exactly", () => {
  assert.equal(value("f93c00"), 1);
  assert.equal(value("f93e00"), 1.5);
  assert.equal(value("f90001"), 2 ** -24); // the smallest subnormal
  assert.equal(value("f97bff"), 65504);
  assert.equal(value("f9fc00"), -Infinity);
  assert.ok(Number.isNaN(value("f97e00")));
  assert.equal(value("fa47c35000"), 100000);
  assert.equal(value("fb3ff199999999999a"), 1.1);
});

test("undefined, simple values, byte strings and text as cbor2 gives them", () => {
  assert.equal(value("f7"), undefined);
  assert.deepEqual(value("f0"), new SimpleValue(16));
  assert.deepEqual(value("f8ff"), new SimpleValue(255));
  const bytes = fromHex("4300ff01");
  const decoded = decodeItem(bytes).value as Uint8Array;
  assert.deepEqual(decoded, new Uint8Array([0, 255, 1]));
  assert.equal(decoded.buffer, bytes.buffer, "a view of the input, not a copy");
  assert.equal(value("63efbbbf"), "\ufeff");
  assert.equal(value("6449c3b174"), "I\u00f1t");
});

test("integer-valued floats are reported by key at depth 1 and 2 only", () => {
  const { floatKeys } = decodeItem(fromHex("a3617201617af93c006161a2617801617af93c00"));
  assert.deepEqual([...floatKeys!].sort(), ["a.z", "z"]);
  assert.equal(decodeItem(fromHex("a1617201")).floatKeys, null);
  const deep = decodeItem(fromHex("a16161a16162a16163f93c00")).floatKeys;
  assert.equal(deep, null);
  const inArray = decodeItem(fromHex("a1617281f93c00")).floatKeys;
  assert.equal(inArray, null, "an array holding a float is not a float");
});

test("every refusal is a CborError, however the bytes are cut", () => {
  const body = fromHex("a361746361636b63726964016269646469643132");
  decodeItem(body);
  for (let cut = 0; cut < body.length; cut++) {
    assert.throws(() => decodeItem(body.subarray(0, cut)), CborError, `cut at ${cut}`);
  }
});

test("decoding works on a view into a larger buffer", () => {
  const buffer = fromHex("ffffa161741a00010000ffff");
  assert.deepEqual(value(Buffer.from(buffer.subarray(2, 10)).toString("hex")), { t: 65536 });
  assert.deepEqual(decodeItem(buffer.subarray(2, 10)).value, { t: 65536 });
});
