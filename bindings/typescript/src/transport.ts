/**
 * The WebSocket a room runs over: the subset of the WHATWG `WebSocket` this client uses, so
 * that a browser's, Node's (>= 22, or 20 with `--experimental-websocket`) or a test's fake
 * can be passed in.
 */
export interface WebSocketLike {
  binaryType: string;
  /** Bytes given to `send` and not yet handed to the network. */
  readonly bufferedAmount: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: unknown) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** The platform's WebSocket, or a clear error where there is none (Node 20 without its flag). */
export function platformWebSocket(): WebSocketConstructor {
  const ctor = (globalThis as { WebSocket?: unknown }).WebSocket;
  if (typeof ctor !== "function") {
    throw new TypeError(
      "no global WebSocket: use Node >= 22, or Node 20 with --experimental-websocket, or pass options.WebSocket",
    );
  }
  return ctor as WebSocketConstructor;
}

/** Only ws:// and wss:// URLs reach a WebSocket (tcp:// and tls:// are for the Python clients). */
export function checkUrl(url: string): void {
  let scheme: string;
  try {
    scheme = new URL(url).protocol;
  } catch {
    throw new TypeError(`not a URL: ${url}`);
  }
  if (scheme !== "ws:" && scheme !== "wss:") {
    throw new TypeError(`a roomwire URL for this client is ws://host:port/path or wss://...; got ${url}`);
  }
}

/** A message's bytes, whatever binary form the WebSocket delivered; null for a text message. */
export function messageBytes(data: unknown): Uint8Array | null {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}
