/**
 * The connection state machine (PROTOCOL.md §5), the same table as `roomwire._state`: every
 * state change goes through `TRANSITIONS`, fed with every frame the client sends and receives.
 * A missing (state, input) pair is not allowed: a `LocalProtocolError` when the caller tried
 * it, a `RemoteProtocolError` when the server did.
 */

export type State = "HANDSHAKE" | "OPEN" | "ENABLING" | "ENABLED" | "DISABLING" | "CLOSING" | "CLOSED";

export type Input =
  | "HELLO"
  | "WELCOME"
  | "ENABLE"
  | "SNAPSHOT_PAGE"
  | "SNAPSHOT_END"
  | "ENABLE_REFUSED"
  | "DISABLE"
  | "DISABLE_ACK"
  | "SEND"
  | "ATTRIBUTES"
  | "HISTORY"
  | "REPLY"
  | "DELIVERY"
  | "HEARTBEAT"
  | "LOCAL_CLOSE"
  | "PEER_CLOSE"
  | "ABORT"
  | "CALL"
  | "ANSWER"
  | "CANCEL"
  | "STREAM"
  | "STREAM_DATA"
  | "STREAM_EVENT"
  | "SERVICE";

const LIVE: State[] = ["OPEN", "ENABLING", "ENABLED", "DISABLING"];

const TABLE: [State, Input, State][] = [
  ["HANDSHAKE", "HELLO", "HANDSHAKE"],
  ["HANDSHAKE", "WELCOME", "OPEN"],
  ["OPEN", "ENABLE", "ENABLING"],
  ["ENABLING", "SNAPSHOT_PAGE", "ENABLING"],
  ["ENABLING", "SNAPSHOT_END", "ENABLED"],
  ["ENABLING", "ENABLE_REFUSED", "OPEN"],
  ["ENABLED", "DISABLE", "DISABLING"],
  ["DISABLING", "DISABLE_ACK", "OPEN"],
  ["ENABLING", "SEND", "ENABLING"],
  ["ENABLED", "SEND", "ENABLED"],
  ["ENABLED", "DELIVERY", "ENABLED"],
  ["DISABLING", "DELIVERY", "DISABLING"],
  ...LIVE.flatMap((s): [State, Input, State][] => [
    [s, "ATTRIBUTES", s],
    [s, "HISTORY", s],
    [s, "REPLY", s],
    [s, "HEARTBEAT", s],
  ]),
  ...(["HANDSHAKE", ...LIVE] as State[]).map((s): [State, Input, State] => [s, "LOCAL_CLOSE", "CLOSING"]),
  ...(["HANDSHAKE", ...LIVE, "CLOSING"] as State[]).flatMap((s): [State, Input, State][] => [
    [s, "PEER_CLOSE", "CLOSED"],
    [s, "ABORT", "CLOSED"],
  ]),
  // After our clean close, what the server sent before seeing it still arrives and counts.
  ...(
    ["WELCOME", "SNAPSHOT_PAGE", "SNAPSHOT_END", "ENABLE_REFUSED", "DISABLE_ACK", "REPLY", "DELIVERY", "HEARTBEAT"] as Input[]
  ).map((i): [State, Input, State] => ["CLOSING", i, "CLOSING"]),
  // Participant RPC and streams (PROTOCOL.md §24).
  ["ENABLING", "CALL", "ENABLING"],
  ["ENABLED", "CALL", "ENABLED"],
  ...LIVE.flatMap((s): [State, Input, State][] => [
    [s, "ANSWER", s],
    [s, "CANCEL", s],
  ]),
  ["ENABLED", "STREAM", "ENABLED"],
  ...LIVE.map((s): [State, Input, State] => [s, "STREAM_DATA", s]), // sent
  ...([...LIVE, "CLOSING"] as State[]).map((s): [State, Input, State] => [s, "STREAM_EVENT", s]), // received
  // Services (PROTOCOL.md §23): every service request is made with messaging enabled (or
  // enabling: a reconnecting service attaches again right after its re-enable).
  ["ENABLED", "SERVICE", "ENABLED"],
  ["ENABLING", "SERVICE", "ENABLING"],
];

/** `${state} ${input}` -> the next state. */
export const TRANSITIONS: ReadonlyMap<string, State> = new Map(TABLE.map(([s, i, next]) => [`${s} ${i}`, next]));
