/**
 * The registry of roomwire's close and refusal codes (PROTOCOL.md §15), mirroring
 * `roomwire.codes`. Codes below 4000 close the connection; from 4000 up they refuse one request.
 */

/** Code name -> [number, retry]: whether reconnecting (a close) or resending (a refusal)
 * may succeed unchanged. */
const REGISTRY = {
  NORMAL: [1000, false],
  GOING_AWAY: [1001, true],
  PROTOCOL_ERROR: [1002, false],
  BAD_FRAME: [1003, false],
  CONNECTION_LOST: [1006, true],
  FRAME_TOO_LARGE: [1009, false],
  HEARTBEAT_TIMEOUT: [3001, true],
  HANDSHAKE_TIMEOUT: [3002, true],
  SLOW_CONSUMER: [3003, true],
  RATE_LIMIT_EXCEEDED: [3004, true],
  TOO_MANY_CONNECTIONS: [3005, true],
  RESUMED_ELSEWHERE: [3006, false],
  UNSUPPORTED_VERSION: [3010, false],
  TOKEN_INVALID: [3020, false],
  TOKEN_EXPIRED: [3021, false],
  TOKEN_BAD_SIGNATURE: [3022, false],
  TOKEN_BAD_ALGORITHM: [3023, false],
  ROOM_MISMATCH: [3024, false],
  INVALID_REQUEST: [4000, false],
  TOKEN_REFUSED: [4001, false],
  FORBIDDEN_SEND: [4030, false],
  FORBIDDEN_BROADCAST: [4031, false],
  FORBIDDEN_LIST: [4032, false],
  FORBIDDEN_HISTORY: [4033, false],
  NOT_FOUND: [4040, false],
  CALL_NOT_FOUND: [4041, false],
  CALLEE_LEFT: [4042, false],
  NO_HANDLER: [4043, false],
  STREAM_NOT_FOUND: [4044, false],
  STREAM_ABORTED: [4045, false],
  STREAM_PEER_LEFT: [4046, false],
  CALL_CANCELLED: [4080, false],
  INVALID_STATE: [4090, false],
  TOO_MANY_CALLS: [4091, true],
  TOO_MANY_STREAMS: [4092, true],
  OVER_CREDIT: [4093, false],
  TOO_LARGE: [4130, false],
  RATE_LIMITED: [4290, true],
  HANDLER_FAILED: [4550, false],
  // Services (PROTOCOL.md §23).
  FORBIDDEN_INTERCEPT: [4035, false],
  SERVICE_UNAVAILABLE: [4500, true],
  SERVICE_TAKEN: [4501, true],
  NOT_INTERCEPTED: [4502, false],
  INTERCEPTOR_FAILED: [4503, false],
} as const satisfies Record<string, readonly [number, boolean]>;

export type CodeName = keyof typeof REGISTRY;

/** `Code.NOT_FOUND === 4040`, and so on for every registered code. */
export const Code = Object.freeze(
  Object.fromEntries(Object.entries(REGISTRY).map(([name, [value]]) => [name, value])),
) as { readonly [K in CodeName]: (typeof REGISTRY)[K][0] };

const NAMES = new Map<number, CodeName>(
  Object.entries(REGISTRY).map(([name, [value]]) => [value, name as CodeName]),
);
const RETRY = new Set<number>(
  Object.values(REGISTRY)
    .filter(([, retry]) => retry)
    .map(([value]) => value),
);

/** The registered name of `code`, or undefined for an unregistered number. */
export function codeName(code: number): CodeName | undefined {
  return NAMES.get(code);
}

/** Whether reconnecting after this close (or resending after this refusal) may succeed. */
export function isRetryable(code: number): boolean {
  return RETRY.has(code);
}

/** True for close codes, false for codes that refuse a single request. */
export function closesConnection(code: number): boolean {
  return code < 4000;
}
