/**
 * The strict CBOR decoder for frame bodies (PROTOCOL.md §3), in one pass.
 *
 * It stands in for cbor-x's decode, whose defaults accept what roomwire refuses (duplicate
 * keys, indefinite lengths, tags, tag 1 as a Date) and which loses what the shape checks
 * need (an integer-valued float reads as an integer, CBOR undefined as an absent key). It
 * accepts exactly what the Python reference (cbor2 with `roomwire.frames.DECODE_OPTIONS`)
 * accepts: definite lengths, no tags, text or byte-string map keys without duplicates,
 * containers nested at most `MAX_DEPTH` deep, well-formed UTF-8, any float width, and bytes
 * after the first item ignored. Anything else throws `CborError`.
 *
 * Values: maps -> plain objects (a map with a byte-string key -> `Map`), arrays -> arrays,
 * byte strings -> `Uint8Array` views into `data` (so the caller must not reuse that buffer: a
 * WebSocket hands each message a buffer of its own), integers -> numbers (`bigint` beyond the safe range,
 * |n| > 2^53 - 1), CBOR
 * undefined -> `undefined`, simple values -> `SimpleValue`.
 */

/** Deepest nesting of arrays and maps, the frame's own map included (`frames.MAX_DEPTH`). */
const MAX_DEPTH = 32;

export class CborError extends Error {}

/** A CBOR simple value other than false, true, null and undefined (cbor2's CBORSimpleValue). */
export class SimpleValue {
  constructor(readonly value: number) {}
}

/** A decoded frame and the keys (at depth 1, or "outer.inner" at depth 2) whose values were
 * CBOR floats: JavaScript numbers cannot tell `1.0` from `1`, and the protocol can. */
export interface DecodedItem {
  value: unknown;
  floatKeys: ReadonlySet<string> | null;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const EMPTY = new Uint8Array(0);

// The decoder's cursor: decoding is synchronous and never re-entered.
let src: Uint8Array = EMPTY;
let pos = 0;
let depth = 0;
let lastWasFloat = false;
let floatKeys: Set<string> | null = null;

/** Decode the first CBOR item of `data` under the rules above. */
export function decodeItem(data: Uint8Array): DecodedItem {
  src = data;
  pos = 0;
  depth = 0;
  floatKeys = null;
  try {
    return { value: readItem(""), floatKeys };
  } finally {
    src = EMPTY; // hold no reference to the caller's buffer
  }
}

function fail(reason: string): never {
  throw new CborError(reason);
}

function need(n: number): void {
  if (n > src.length - pos) fail("the data ends inside an item");
}

/** The argument of a head whose additional information is `info` (indefinite refused). */
function readArgument(info: number): number | bigint {
  if (info < 24) return info;
  switch (info) {
    case 24:
      need(1);
      return src[pos++]!;
    case 25:
      need(2);
      pos += 2;
      return (src[pos - 2]! << 8) | src[pos - 1]!;
    case 26:
      need(4);
      pos += 4;
      return uint32(pos - 4);
    case 27: {
      need(8);
      const high = uint32(pos);
      const low = uint32(pos + 4);
      pos += 8;
      // A number while safe (below 2^53); above, a bigint.
      return high < 0x200000 ? high * 0x100000000 + low : (BigInt(high) << 32n) | BigInt(low);
    }
    case 31:
      return fail("indefinite lengths are not allowed");
    default:
      return fail(`reserved additional information ${info}`);
  }
}

function uint32(at: number): number {
  return src[at]! * 0x1000000 + ((src[at + 1]! << 16) | (src[at + 2]! << 8) | src[at + 3]!);
}

/** A big-endian float of `size` bytes at `pos`, read through a scratch view (a view per
 * frame would cost more than the floats do). */
const scratch = new Uint8Array(8);
const scratchView = new DataView(scratch.buffer);

function readFloat(size: 2 | 4 | 8): number {
  need(size);
  for (let i = 0; i < size; i++) scratch[i] = src[pos + i]!;
  pos += size;
  lastWasFloat = true;
  if (size === 2) return halfToNumber(scratchView.getUint16(0));
  return size === 4 ? scratchView.getFloat32(0) : scratchView.getFloat64(0);
}

/** A length argument that fits in the rest of the data, at `unit` bytes per element. */
function readLength(info: number, unit: number): number {
  const length = readArgument(info);
  if (typeof length === "bigint" || length * unit > src.length - pos) {
    fail("a length runs past the end of the data");
  }
  return length;
}

/** Read one item; `parentKey` is the key holding it when it is a map value at depth 1 (for
 * the floats its own map values may hold), "" elsewhere. */
function readItem(parentKey: string): unknown {
  need(1);
  const head = src[pos++]!;
  const major = head >> 5;
  const info = head & 0x1f;
  lastWasFloat = false;
  switch (major) {
    case 0:
      return readArgument(info);
    case 1: {
      const n = readArgument(info);
      return typeof n === "number" && n < Number.MAX_SAFE_INTEGER ? -1 - n : -1n - BigInt(n);
    }
    case 2: {
      const length = readLength(info, 1);
      pos += length;
      return src.subarray(pos - length, pos);
    }
    case 3:
      return readText(readLength(info, 1));
    case 4:
      return readArray(readLength(info, 1));
    case 5:
      return readMap(readLength(info, 2), parentKey);
    case 6:
      return fail("CBOR tags are not part of roomwire frames");
    default:
      return readSimple(info);
  }
}

function readText(length: number): string {
  const start = pos;
  pos += length;
  if (length < 32) {
    // Short ASCII (nearly every kind, id and word) without a TextDecoder call.
    for (let i = start; i < pos; i++) if (src[i]! >= 0x80) return decodeUtf8(start);
    return ascii(start, pos);
  }
  return decodeUtf8(start);
}

// Map keys repeat from frame to frame ("t", "id", "seq", ...): short ASCII keys are looked up
// by their bytes instead of being built again. A slot holds the last key that hashed to it.
const KEY_SLOTS = 4096;
const keyBytes: (Uint8Array | undefined)[] = new Array(KEY_SLOTS);
const keyTexts: string[] = new Array(KEY_SLOTS);

/** A map key: text (through the cache when short) or, for the caller to see, null when the
 * key is not text. */
function readKey(): string | null {
  need(1);
  const head = src[pos]!;
  if (head >> 5 !== 3) return null;
  const info = head & 0x1f;
  if (info >= 24) {
    pos++;
    return readText(readLength(info, 1));
  }
  need(1 + info);
  const start = pos + 1;
  const end = start + info;
  let hash = info;
  for (let i = start; i < end; i++) {
    const byte = src[i]!;
    if (byte >= 0x80) {
      pos++;
      return readText(info);
    }
    hash = (hash * 31 + byte) & (KEY_SLOTS - 1);
  }
  pos = end;
  const cached = keyBytes[hash];
  if (cached !== undefined && cached.length === info) {
    let same = true;
    for (let i = 0; i < info; i++) {
      if (cached[i] !== src[start + i]) {
        same = false;
        break;
      }
    }
    if (same) return keyTexts[hash]!;
  }
  const text = ascii(start, end);
  keyBytes[hash] = src.slice(start, end);
  keyTexts[hash] = text;
  return text;
}

const char = String.fromCharCode;

/** The ASCII bytes from `start` to `end` as a string, in pieces of up to four characters
 * (no typed-array view per string: creating one costs more than a short string). */
function ascii(start: number, end: number): string {
  let text = "";
  let i = start;
  for (; i + 4 <= end; i += 4) text += char(src[i]!, src[i + 1]!, src[i + 2]!, src[i + 3]!);
  switch (end - i) {
    case 3:
      return text + char(src[i]!, src[i + 1]!, src[i + 2]!);
    case 2:
      return text + char(src[i]!, src[i + 1]!);
    case 1:
      return text + char(src[i]!);
    default:
      return text;
  }
}

function decodeUtf8(start: number): string {
  try {
    return utf8.decode(src.subarray(start, pos));
  } catch {
    return fail("a text string is not valid UTF-8");
  }
}

function enter(): void {
  if (++depth > MAX_DEPTH) fail(`containers nest deeper than ${MAX_DEPTH}`);
}

function readArray(length: number): unknown[] {
  enter();
  const array = new Array<unknown>(length);
  for (let i = 0; i < length; i++) array[i] = readItem("");
  depth--;
  lastWasFloat = false;
  return array;
}

function readMap(length: number, parentKey: string): Record<string, unknown> | Map<unknown, unknown> {
  enter();
  const tracked = depth <= 2; // the frame's map and the maps directly in it
  const object: Record<string, unknown> = {};
  for (let i = 0; i < length; i++) {
    const key = readKey();
    if (key === null) {
      if (src[pos]! >> 5 === 2) return readMapWithBytes(object, length - i);
      fail("map keys must be text or byte strings");
    }
    if (Object.prototype.hasOwnProperty.call(object, key)) fail(`duplicate map key "${key}"`);
    const value = readItem(depth === 1 ? key : "");
    if (lastWasFloat && tracked) (floatKeys ??= new Set()).add(depth === 1 ? key : `${parentKey}.${key}`);
    if (key === "__proto__") {
      Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
    } else {
      object[key] = value;
    }
  }
  depth--;
  lastWasFloat = false;
  return object;
}

/** The rest of a map once a byte-string key appears: a `Map`, text and byte keys distinct. */
function readMapWithBytes(start: Record<string, unknown>, left: number): Map<unknown, unknown> {
  const map = new Map<unknown, unknown>(Object.entries(start));
  const byteKeys = new Set<string>();
  for (let i = 0; i < left; i++) {
    need(1);
    const keyHead = src[pos]! >> 5;
    if (keyHead !== 2 && keyHead !== 3) fail("map keys must be text or byte strings");
    const key = readItem("") as string | Uint8Array;
    const seen = typeof key === "string" ? map.has(key) : !addBytes(byteKeys, key);
    if (seen) fail("duplicate map key");
    map.set(key, readItem(""));
  }
  depth--;
  lastWasFloat = false;
  return map;
}

function addBytes(keys: Set<string>, key: Uint8Array): boolean {
  const text = Array.from(key, (b) => String.fromCharCode(b)).join("");
  if (keys.has(text)) return false;
  keys.add(text);
  return true;
}

function readSimple(info: number): unknown {
  switch (info) {
    case 20:
      return false;
    case 21:
      return true;
    case 22:
      return null;
    case 23:
      return undefined;
    case 24: {
      need(1);
      const value = src[pos++]!;
      if (value < 32) fail("a two-byte simple value below 32");
      return new SimpleValue(value);
    }
    case 25:
      return readFloat(2);
    case 26:
      return readFloat(4);
    case 27:
      return readFloat(8);
    case 31:
      return fail("a break code outside an indefinite-length item");
    default:
      if (info < 20) return new SimpleValue(info);
      return fail(`reserved simple value ${info}`);
  }
}

function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1024 + fraction) * 2 ** (exponent - 25);
}
