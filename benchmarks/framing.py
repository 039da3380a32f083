"""The core's cost per frame with the message framer (WebSocket) against the stream framer
(TCP, TLS): the same send frames from one enabled participant to another, ingested, routed
and taken out by the server, once per framing, in the same run.

Run: ``python benchmarks/framing.py [--quick] [--ops 30000] [--repeat 7]``.

Stream: the frames arrive as 64 KiB chunks (``receive_data``) and leave through
``data_to_send``. Message: the same frames arrive one message each (``receive_message``), in
the same groups a 64 KiB read would hold, and leave through ``messages_to_send``. After each
chunk or group every connection with output is drained, as a driver does once per read.
Setup (handshakes, enable, encoding the frames) is never timed; each pass gets a fresh server.
Ratio = message time per frame / stream time per frame (goal <= 1.1). A report, not a test.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable, Sequence

from roomwire import (
    NEED_DATA,
    ClientConnection,
    Framing,
    ParticipantToken,
    RoomServer,
    ServerConfig,
    ServerConnection,
    State,
)
from roomwire.events import ConnectionClosed

SECRET = "benchmark-secret-that-is-long-enough-for-hs256"
ROOM = "bench"
CHUNK = 64 * 1024


def _drain(conn: ClientConnection | ServerConnection) -> None:
    while (event := conn.next_event(0.0)) is not NEED_DATA:
        if isinstance(event, ConnectionClosed):
            raise RuntimeError(f"benchmark setup: a connection closed: {event}")


class Pair:
    """A server with two enabled participants of one framing; the sender's frames ready."""

    def __init__(self, framing: Framing, ops: int, rng: random.Random) -> None:
        self.framing = framing
        self.server = RoomServer(ServerConfig(secret=SECRET, outbound_limit=1 << 30))
        self.clients: dict[str, ClientConnection] = {}
        sender, self.conn = self.join("a")
        receiver, _ = self.join("b")
        target = [receiver_id(receiver)]
        for _ in range(ops):
            text = "".join(rng.choices("abcdefghij klmnop", k=rng.randint(8, 120)))
            sender.send_message(target, "chat", {"text": text})
        if framing is Framing.STREAM:
            data = sender.data_to_send()
            self.inputs = [[data[i : i + CHUNK]] for i in range(0, len(data), CHUNK)]
        else:
            messages = sender.messages_to_send()
            per_chunk = max(1, CHUNK * len(messages) // sum(len(m) + 4 for m in messages))
            self.inputs = [messages[i : i + per_chunk] for i in range(0, ops, per_chunk)]

    def join(self, name: str) -> tuple[ClientConnection, ServerConnection]:
        token = ParticipantToken(room=ROOM, name=name).to_jwt(SECRET)
        client = ClientConnection(token=token, now=0.0, room=ROOM, framing=self.framing)
        conn = self.server.accept(name, 0.0, self.framing)
        self.clients[name] = client
        for _ in range(2):
            self.pump(client, conn)
            if client.state is State.OPEN:
                client.enable(presence=False)
        self.pump(client, conn)
        if client.state is not State.ENABLED:
            raise RuntimeError("benchmark setup: a participant did not get enabled")
        return client, conn

    def pump(self, client: ClientConnection, conn: ServerConnection) -> None:
        stream = self.framing is Framing.STREAM
        for _ in range(10):
            if stream:
                if data := client.data_to_send():  # b"" would be EOF
                    conn.receive_data(data)
            else:
                for message in client.messages_to_send():
                    conn.receive_message(message)
            _drain(conn)
            for out in self.server.connections_with_output():
                peer = self.clients[out.connection_id]
                if stream:
                    if data := out.data_to_send():
                        peer.receive_data(data)
                else:
                    for message in out.messages_to_send():
                        peer.receive_message(message)
                _drain(peer)


def receiver_id(client: ClientConnection) -> str:
    participant = client.local_participant
    assert participant is not None
    return participant.id


def stream_pass(pair: Pair) -> None:
    conn, server = pair.conn, pair.server
    for (chunk,) in pair.inputs:
        conn.receive_data(chunk)
        _drain(conn)
        for out in server.connections_with_output():
            out.data_to_send()


def message_pass(pair: Pair) -> None:
    conn, server = pair.conn, pair.server
    for group in pair.inputs:
        for message in group:
            conn.receive_message(message)
        _drain(conn)
        for out in server.connections_with_output():
            out.messages_to_send()


def best_time(framing: Framing, run: Callable[[Pair], None], ops: int, seed: int) -> float:
    pair = Pair(framing, ops, random.Random(seed))
    gc.collect()
    start = time.perf_counter()
    run(pair)
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("--ops", type=int, help="frames per pass (default 30000, quick 2000)")
    parser.add_argument("--repeat", type=int, help="rounds, best kept (default 7, quick 2)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    ops = args.ops or (2000 if args.quick else 30000)
    repeat = args.repeat or (2 if args.quick else 7)
    best = {Framing.STREAM: float("inf"), Framing.MESSAGE: float("inf")}
    runs = {Framing.STREAM: stream_pass, Framing.MESSAGE: message_pass}
    best_time(Framing.STREAM, stream_pass, ops // 10, args.seed)  # warm-up
    for _ in range(repeat):  # alternating, so a burst of load spoils both alike
        for framing, run in runs.items():
            best[framing] = min(best[framing], best_time(framing, run, ops, args.seed))
    stream_us = best[Framing.STREAM] / ops * 1e6
    message_us = best[Framing.MESSAGE] / ops * 1e6
    ratio = message_us / stream_us
    print(f"frames per pass: {ops}, rounds: {repeat} (best kept)")
    print(f"stream framer : {stream_us:.2f} us/frame (ingest + route + output)")
    print(f"message framer: {message_us:.2f} us/frame (ingest + route + output)")
    print(
        f"message / stream cost: {ratio:.3f}x (goal <= 1.1): {'met' if ratio <= 1.1 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
