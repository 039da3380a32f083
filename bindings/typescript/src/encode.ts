/**
 * Encoding with cbor-x, configured to write what the Python reference writes byte for byte
 * (PROTOCOL.md §3): map keys in insertion order, the shortest head for every integer and
 * length, every non-integral number as a 64-bit float, byte strings without tags.
 *
 * cbor-x's defaults differ: it tags a Uint8Array (tag 64), writes records, and writes
 * integers of 2^32 and more as floats. The first two are options; for the third,
 * `checkJson` finds such integers and `widenIntegers` hands them over as bigints, which
 * cbor-x writes with the 8-byte head the reference uses for them.
 */
import { Encoder } from "cbor-x";

/** Deepest nesting of a message or attributes object (the frame's map is one level). */
const JSON_DEPTH = 31;

const encoder = new Encoder({
  tagUint8Array: false,
  useRecords: false,
  variableMapSize: true,
  useFloat32: 0,
});

export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
export type JsonObject = { [key: string]: JsonValue };

/** Encode one frame body (the form for message transports: no length prefix). */
export function encodePayload(frame: object): Uint8Array {
  // cbor-x may return a view of its reusable buffer: copy what the caller keeps.
  return new Uint8Array(encoder.encode(frame));
}

const MAX_UINT32 = 0xffffffff;

/**
 * Whether `value` is a JSON object this protocol can carry (as `frames.is_json_object`):
 * plain objects with well-formed string keys, arrays, well-formed strings, finite numbers,
 * booleans and null, nested at most `JSON_DEPTH` deep.
 * Returns "wide" when it holds integers that need `widenIntegers` before encoding.
 * Iterative, so neither depth nor a cycle costs recursion.
 */
export function checkJson(value: unknown): false | "ok" | "wide" {
  if (!isPlainObject(value)) return false;
  let wide = false;
  const stack: [object, number][] = [[value, 1]];
  while (stack.length) {
    const [container, depth] = stack.pop()!;
    if (depth > JSON_DEPTH) return false;
    const children = Array.isArray(container) ? container : Object.values(container);
    if (!Array.isArray(container)) {
      for (const key of Object.keys(container)) if (!key.isWellFormed()) return false;
    }
    for (const child of children) {
      switch (typeof child) {
        case "string":
          if (!child.isWellFormed()) return false;
          break;
        case "boolean":
          break;
        case "number":
          if (!Number.isFinite(child)) return false;
          if (isWide(child)) wide = true;
          break;
        case "object":
          if (child === null) break;
          if (!Array.isArray(child) && !isPlainObject(child)) return false;
          stack.push([child, depth + 1]);
          break;
        default:
          return false; // undefined, bigint, functions, symbols
      }
    }
  }
  return wide ? "wide" : "ok";
}

/** A copy of a checked JSON value with integers beyond 32 bits as bigints. */
export function widenIntegers(value: JsonValue): unknown {
  if (typeof value === "number") return isWide(value) ? BigInt(value) : value;
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(widenIntegers);
  const copy: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    Object.defineProperty(copy, key, { value: widenIntegers(child), enumerable: true });
  }
  return copy;
}

/**
 * An integer cbor-x would write as a float: 2^32 <= |n| < 2^64. JavaScript cannot tell 1e19
 * from 10000000000000000000; within CBOR's integer range it is written as an integer, and
 * beyond it (where it could only be a tagged bignum) as the float it is. -2^64 itself stays a
 * float too: cbor-x writes that bigint as a bignum.
 */
function isWide(n: number): boolean {
  return Number.isInteger(n) && (n > MAX_UINT32 || n < -MAX_UINT32 - 1) && n < 2 ** 64 && n > -(2 ** 64);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
