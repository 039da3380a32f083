/**
 * Frame bodies and their shapes (PROTOCOL.md §3, §7), mirroring `roomwire.frames`: decoding
 * throws only `RemoteProtocolError` with BAD_FRAME, and a shape check throws the same unless
 * the fields a kind needs have the right CBOR types. Unknown keys are ignored.
 */
import { Code, closesConnection, codeName } from "./codes.js";
import { CborError, decodeItem } from "./decode.js";
import { RemoteProtocolError } from "./errors.js";

/** A decoded frame: a map with a text "t". */
export type Frame = { readonly t: string; readonly [key: string]: unknown };

export const LIMIT_FIELDS = [
  "max_frame_size",
  "max_send_size",
  "max_recipients",
  "max_type_length",
  "max_attributes_size",
  "max_history_limit",
  "max_pending_calls",
  "stream_window",
  "max_open_streams",
  "idempotency_window",
  "max_idempotency_keys",
] as const;

/** Limits a welcome may lack (a server older than them), with the value then assumed. */
export const LIMIT_DEFAULTS: Readonly<Record<string, number>> = {
  max_history_limit: 1000,
  max_pending_calls: 256,
  stream_window: 1024 * 1024,
  max_open_streams: 8,
  idempotency_window: 120,
  max_idempotency_keys: 1000,
};

export function badFrame(reason: string): RemoteProtocolError {
  return new RemoteProtocolError(reason, Code.BAD_FRAME);
}

/** Decode one frame body and check its kind is one a server sends, with the right shape. */
export function decodeServerFrame(payload: Uint8Array): Frame {
  let decoded;
  try {
    decoded = decodeItem(payload);
  } catch (error) {
    if (!(error instanceof CborError)) throw error;
    // The wire reason is the reference's, fixed; the decoder's says more, locally.
    throw Object.assign(badFrame("undecodable CBOR, or over a decoding cap"), { cause: error });
  }
  const frame = asRecord(decoded.value);
  if (frame === null || typeof frame.t !== "string") {
    throw badFrame("a frame must be a CBOR map with a text 't' (the frame kind)");
  }
  const check = SERVER_FRAMES.get(frame.t);
  if (check === undefined) throw badFrame(`unknown frame kind ${pyRepr([...frame.t].slice(0, 40).join(""))}`);
  if (!check(frame as Frame, decoded.floatKeys)) throw badFrame(`malformed ${pyRepr(frame.t)} frame`);
  if (frame.t === "close" || frame.t === "error" || frame.t === "abort") checkCode(frame as Frame);
  return frame as Frame;
}

/** A map's text-keyed fields: the map itself, or, for a `Map` (it had byte-string keys,
 * which no protocol field has), its text keys. Null for anything else. */
export function asRecord(value: unknown): Record<string, unknown> | null {
  if (value instanceof Map) {
    return Object.fromEntries([...value].filter(([key]) => typeof key === "string"));
  }
  return isDict(value) ? (value as Record<string, unknown>) : null;
}

/** A decoded CBOR map: a plain object, or a `Map` when it had byte-string keys. */
function isDict(value: unknown): boolean {
  return (
    value instanceof Map ||
    (typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array) && Object.getPrototypeOf(value) === Object.prototype)
  );
}

/** Python's repr() of a string, as the reference's reasons quote names. */
export function pyRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = quote;
  for (const char of text) {
    const point = char.codePointAt(0)!;
    if (char === quote || char === "\\") out += `\\${char}`;
    else if (char === "\n") out += "\\n";
    else if (char === "\r") out += "\\r";
    else if (char === "\t") out += "\\t";
    else if (point < 0x20 || point === 0x7f) out += `\\x${point.toString(16).padStart(2, "0")}`;
    else out += char;
  }
  return out + quote;
}

// --- shapes -------------------------------------------------------------------------------

type Floats = ReadonlySet<string> | null;
type Check = (frame: Frame, floats: Floats) => boolean;

/** A uint below 2^63 that was a CBOR integer (not a float, not a boolean). */
function isUint(value: unknown, key: string, floats: Floats): boolean {
  if (typeof value === "bigint") return value >= 0n && value < 2n ** 63n;
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && !floats?.has(key);
}

/** A positive, finite number of seconds. */
function isDuration(value: unknown): boolean {
  return (typeof value === "number" && value > 0 && value < Infinity) || (typeof value === "bigint" && value > 0n);
}

function isNumber(value: unknown): boolean {
  return typeof value === "number" || typeof value === "bigint";
}

/** Absent or null (CBOR undefined is neither, as in the reference). */
function isNone(frame: Frame, key: string): boolean {
  return frame[key] === null || !Object.prototype.hasOwnProperty.call(frame, key);
}

function isParticipant(value: unknown): boolean {
  const record = asRecord(value);
  return (
    record !== null &&
    typeof record.id === "string" &&
    typeof record.name === "string" &&
    typeof record.role === "string" &&
    isDict(record.attributes)
  );
}

const bare: Check = () => true;

const SERVER_FRAMES = new Map<string, Check>([
  [
    "welcome",
    (f, floats) => {
      const limits = asRecord(f.limits);
      return (
        isUint(f.v, "v", floats) &&
        typeof f.room === "string" &&
        isParticipant(f.participant) &&
        limits !== null &&
        LIMIT_FIELDS.every(
          (name) => (name in LIMIT_DEFAULTS && !(name in limits)) || isUint(limits[name], `limits.${name}`, floats),
        ) &&
        isDuration(f.hb) &&
        isDuration(f.hbt)
      );
    },
  ],
  [
    "snapshot",
    (f, floats) =>
      isUint(f.rid, "rid", floats) &&
      typeof f.more === "boolean" &&
      Array.isArray(f.participants) &&
      f.participants.every(isParticipant),
  ],
  [
    "ack",
    (f, floats) =>
      isUint(f.rid, "rid", floats) &&
      (isNone(f, "id") || typeof f.id === "string") &&
      (isNone(f, "recipients") || isUint(f.recipients, "recipients", floats)) &&
      (!Object.prototype.hasOwnProperty.call(f, "dup") || typeof f.dup === "boolean"),
  ],
  ["error", (f, floats) => isUint(f.rid, "rid", floats) && isCoded(f, floats)],
  ["msg", isMessage],
  [
    "history",
    (f, floats) =>
      isUint(f.rid, "rid", floats) &&
      typeof f.more === "boolean" &&
      Array.isArray(f.messages) &&
      f.messages.every((m: unknown) => {
        const record = asRecord(m);
        return record !== null && isMessage(record as Frame, null);
      }) &&
      (f.epoch === undefined || typeof f.epoch === "string") &&
      (f.reset === undefined || typeof f.reset === "boolean"),
  ],
  ["joined", (f, floats) => isUint(f.seq, "seq", floats) && isParticipant(f.p)],
  ["updated", (f, floats) => isUint(f.seq, "seq", floats) && isParticipant(f.p)],
  ["left", (f, floats) => isUint(f.seq, "seq", floats) && typeof f.id === "string"],
  ["ping", bare],
  ["pong", bare],
  ["close", (f, floats) => isCoded(f, floats)],
  // Participant RPC and streams (PROTOCOL.md §24).
  [
    "call",
    (f) =>
      typeof f.id === "string" &&
      typeof f.from === "string" &&
      isNumber(f.ts) &&
      typeof f.type === "string" &&
      isDict(f.message) &&
      isOptionalBytes(f, "att"),
  ],
  [
    "result",
    (f, floats) =>
      isUint(f.rid, "rid", floats) &&
      typeof f.id === "string" &&
      typeof f.from === "string" &&
      isNumber(f.ts) &&
      typeof f.type === "string" &&
      isAnswer(f, floats),
  ],
  ["cancel", (f) => typeof f.id === "string"],
  ["open", (f) => typeof f.sid === "string" && typeof f.from === "string" && isNumber(f.ts) && isDict(f.header)],
  ["chunk", (f) => typeof f.sid === "string" && f.data instanceof Uint8Array && (isNone(f, "header") || isDict(f.header))],
  ["credit", (f, floats) => typeof f.sid === "string" && isUint(f.n, "n", floats) && Number(f.n) > 0],
  ["end", (f) => typeof f.sid === "string"],
  ["abort", (f, floats) => typeof f.sid === "string" && isCoded(f, floats)],
  [
    "svc_msg",
    (f) =>
      typeof f.id === "string" &&
      isNumber(f.ts) &&
      typeof f.from === "string" &&
      typeof f.type === "string" &&
      isDict(f.message) &&
      (isNone(f, "att") || f.att instanceof Uint8Array) &&
      (f.to === null || (Array.isArray(f.to) && f.to.every((r: unknown) => typeof r === "string"))),
  ],
  ["svc_timeout", (f) => typeof f.id === "string"],
]);

function isOptionalBytes(f: Frame, key: string): boolean {
  return isNone(f, key) || f[key] instanceof Uint8Array;
}

/** An answer's outcome: a message (and attachment), or any signed 64-bit code and a reason. */
function isAnswer(f: Frame, floats: Floats): boolean {
  if (Object.prototype.hasOwnProperty.call(f, "code")) {
    const code = f.code;
    const integer =
      (typeof code === "number" && Number.isInteger(code) && !floats?.has("code")) ||
      (typeof code === "bigint" && code >= -(2n ** 63n) && code < 2n ** 63n);
    return integer && typeof f.reason === "string";
  }
  return isDict(f.message) && isOptionalBytes(f, "att");
}

/** A `msg` frame's fields, also each message of a `history` page. */
function isMessage(f: Frame, floats: Floats): boolean {
  return (
    typeof f.id === "string" &&
    isUint(f.seq, "seq", floats) &&
    isNumber(f.ts) &&
    typeof f.from === "string" &&
    typeof f.type === "string" &&
    isDict(f.message) &&
    typeof f.bc === "boolean" &&
    (isNone(f, "att") || f.att instanceof Uint8Array)
  );
}

function isCoded(f: Frame, floats: Floats): boolean {
  return isUint(f.code, "code", floats) && typeof f.reason === "string";
}

/** A close carries a close code (never the local-only CONNECTION_LOST), an error or a
 * stream's abort a refusal. */
function checkCode(f: Frame): void {
  const code = f.code as number | bigint;
  if (typeof code === "bigint" || codeName(code) === undefined || code === Code.CONNECTION_LOST) {
    throw badFrame(`unknown code ${code} in ${pyRepr(f.t)}`);
  }
  if (closesConnection(code) !== (f.t === "close")) {
    throw badFrame(`code ${code} does not belong in ${pyRepr(f.t)}`);
  }
}
