"""In-memory benchmark of the roomwire core, each number a ratio to a baseline run alongside it.

Run: ``python benchmarks/core.py`` (full, under a minute) or ``python benchmarks/core.py --quick``
(a few seconds, for CI). No sockets, no threads; every input is built from ``random.Random(seed)``.
It prints rates and a ratio (roomwire rate / baseline rate) per line and never fails on speed:
the goals are printed for the reader. See ``benchmarks/README.md`` for what each line measures.

(a) codec: one client ``send`` frame encoded through ``ClientConnection.send_message`` (and
    through ``frames.encode_frame``) against ``cbor2.dumps`` of the same map; decoded through
    ``FrameBuffer`` + ``decode_payload`` + ``check_frame`` against ``cbor2.loads``; and, as a
    floor, ``cbor2.loads`` with the decoder's hardening options against plain ``cbor2.loads``
    and ``is_json_object`` (the check every send makes) + ``cbor2.dumps`` against ``dumps``.
(b) server ingest + route of ~1 MiB of send frames (sender -> one receiver) against a plain
    split + ``cbor2.loads`` + one ``__slots__`` event object per frame.
(c) broadcast fan-out to N = 10, 100, 1000 enabled participants against ``cbor2.dumps`` once
    per message + appending the bytes to N lists.
(d) a presence join (hello + enable) into a room of 1,000 enabled members: the newcomer's
    welcome and snapshot taken, a ``joined`` queued for everyone; against a lean router doing
    the same cbor2 work (decode hello + enable, encode the welcome, the snapshot page and one
    ``joined`` appended to 1,000 lists). Goal: at most twice the lean router's time
    (ratio >= 0.50).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import string
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version

import cbor2

import roomwire
from roomwire import (
    NEED_DATA,
    ClientConnection,
    ParticipantToken,
    RoomServer,
    ServerConfig,
    ServerConnection,
    State,
)
from roomwire.events import ConnectionClosed, MessageRouted
from roomwire.frames import (
    CLIENT_FRAMES,
    DECODE_OPTIONS,
    FrameBuffer,
    check_frame,
    decode_payload,
    encode_frame,
    is_json_object,
)

SECRET = "benchmark-secret-that-is-long-enough-for-hs256"
ROOM = "bench"
CHUNK = 64 * 1024
"""Receive chunk size, as a driver reading a stream transport gets it."""
MAX_FRAME = 1024 * 1024
TEXT = string.ascii_letters + string.digits + " "

Timer = Callable[[], float]
"""One pass of a benchmark: does its own untimed setup, returns the seconds of the timed part."""


# --- setup: a room wired in memory through the public API -----------------------------------


class SeededIds:
    """Participant and message ids shaped like the default factory's, but from the seed."""

    def __init__(self, rng: random.Random) -> None:
        self._prefix = f"{rng.getrandbits(32):08x}"
        self._n = 0

    def __call__(self) -> str:
        self._n += 1
        return f"{self._prefix}-{self._n}"


def _drain(conn: ClientConnection | ServerConnection, now: float) -> None:
    while (event := conn.next_event(now)) is not NEED_DATA:
        if isinstance(event, ConnectionClosed):
            raise RuntimeError(f"benchmark setup: a connection closed: {event}")


class Hub:
    """A RoomServer and its clients, pumped by hand. Used for setup only, never timed."""

    def __init__(self, rng: random.Random) -> None:
        self.now = 1000.0
        self.server = RoomServer(ServerConfig(secret=SECRET, id_factory=SeededIds(rng)))
        self.clients: dict[object, ClientConnection] = {}

    def join(self, *, presence: bool = False) -> tuple[ClientConnection, ServerConnection]:
        """A new participant with messaging enabled: its client and its server connection."""
        cid = f"c{len(self.clients) + 1}"
        tok = ParticipantToken(room=ROOM, name=cid).to_jwt(SECRET)
        client = ClientConnection(token=tok, now=self.now, room=ROOM)
        conn = self.server.accept(cid, self.now)
        self.clients[cid] = client
        self.pump(client, conn)
        client.enable(presence=presence)
        self.pump(client, conn)
        if client.state is not State.ENABLED or conn.state is not State.ENABLED:
            raise RuntimeError("benchmark setup: a participant did not get enabled")
        return client, conn

    def pump(self, client: ClientConnection, conn: ServerConnection) -> None:
        while True:
            data = client.data_to_send()
            moved = bool(data)
            if data:
                conn.receive_data(data)
            _drain(conn, self.now)
            for out_conn in self.server.connections_with_output():
                out = out_conn.data_to_send()
                peer = self.clients[out_conn.connection_id]
                if out:
                    peer.receive_data(out)
                    moved = True
                _drain(peer, self.now)
            if not moved:
                return

    def feed(
        self, conn: ServerConnection, chunks: list[bytes], keep: object = None
    ) -> tuple[list[object], bytes]:
        """Feed chunks as a driver would: the events, and what connection ``keep`` got."""
        events: list[object] = []
        kept: list[bytes] = []
        for chunk in chunks:
            conn.receive_data(chunk)
            while (event := conn.next_event(self.now)) is not NEED_DATA:
                events.append(event)
            for out in self.server.connections_with_output():
                data = out.data_to_send()
                if out.connection_id == keep:
                    kept.append(data)
        return events, b"".join(kept)


def _message(rng: random.Random) -> dict[str, object]:
    """A small JSON message of seeded size (8 to 120 characters of text)."""
    return {"text": "".join(rng.choices(TEXT, k=rng.randint(8, 120)))}


def _chunks(data: bytes, size: int = CHUNK) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _payloads(stream: bytes) -> list[bytes]:
    """Split a length-prefixed stream into frame bodies (setup only)."""
    out, pos = [], 0
    while pos < len(stream):
        (size,) = struct.unpack_from(">I", stream, pos)
        out.append(stream[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return out


# --- measurement ----------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    unit: str
    count: int
    """Units (frames, deliveries) processed by one pass of each side."""
    roomwire_s: float
    baseline_s: float
    goal: float | None

    @property
    def roomwire_rate(self) -> float:
        return self.count / self.roomwire_s

    @property
    def baseline_rate(self) -> float:
        return self.count / self.baseline_s

    @property
    def ratio(self) -> float:
        return self.baseline_s / self.roomwire_s


@dataclass
class Case:
    """Timed passes that share one setup, and how their best times become table rows."""

    timers: Sequence[Timer]
    rows: Callable[[list[float]], list[Row]]


def pair(
    name: str, unit: str, count: int, subject: Timer, baseline: Timer, *, goal: float | None
) -> Case:
    """The common case: one roomwire pass against one baseline pass."""
    return Case((subject, baseline), lambda best: [Row(name, unit, count, best[0], best[1], goal)])


def run_cases(cases: Sequence[Case], repeat: int, deadline: float) -> tuple[list[Row], int]:
    """One warm-up pass of everything, then up to ``repeat`` rounds over every pass of every
    case, keeping each pass's best time; returns the rows and the number of rounds run.

    Rounds spread each line's samples over the whole run, so a burst of load from another
    process spoils a few samples, not a whole line; within a case the roomwire and baseline
    passes run back to back. A round is not started when it would end after ``deadline``
    (``time.perf_counter()`` seconds): a loaded machine gets fewer rounds, not a longer run.
    """
    for case in cases:
        for timed_pass in case.timers:
            timed_pass()
    best = [[float("inf")] * len(case.timers) for case in cases]
    rounds = 0
    last = 0.0
    while rounds < repeat and (rounds == 0 or time.perf_counter() + last < deadline):
        started = time.perf_counter()
        for case, times in zip(cases, best, strict=True):
            for i, timed_pass in enumerate(case.timers):
                gc.collect()
                times[i] = min(times[i], timed_pass())
        rounds += 1
        last = time.perf_counter() - started
    rows = [row for case, times in zip(cases, best, strict=True) for row in case.rows(times)]
    return rows, rounds


# --- (a) codec ------------------------------------------------------------------------------


def bench_codec(rng: random.Random, ops: int) -> list[Case]:
    messages = [_message(rng) for _ in range(ops)]
    hub = Hub(rng)
    receiver, _ = hub.join()
    assert receiver.local_participant is not None
    to = receiver.local_participant.id

    def fresh_sender() -> ClientConnection:
        client, _ = hub.join()
        return client

    # The exact frames send_message queues, and the maps they hold (same keys, same order).
    probe = fresh_sender()
    for msg in messages:
        probe.send_message(to, "chat", msg)
    stream = probe.data_to_send()
    payloads = _payloads(stream)
    frames = [cbor2.loads(p) for p in payloads]
    if len(frames) != ops or any(f["t"] != "send" for f in frames):
        raise RuntimeError("benchmark setup: unexpected frames from send_message")
    chunks = _chunks(stream)
    dumps, loads = cbor2.dumps, cbor2.loads

    def api_encode() -> float:
        client = fresh_sender()  # a fresh one per pass: no growth of its pending requests
        send, take = client.send_message, client.data_to_send
        t0 = time.perf_counter()
        for msg in messages:
            send(to, "chat", msg)
            take()
        return time.perf_counter() - t0

    def frame_encode() -> float:
        t0 = time.perf_counter()
        for frame in frames:
            encode_frame(frame)
        return time.perf_counter() - t0

    def bare_dumps() -> float:
        t0 = time.perf_counter()
        for frame in frames:
            dumps(frame)
        return time.perf_counter() - t0

    def checked_dumps() -> float:
        t0 = time.perf_counter()
        for frame in frames:
            is_json_object(frame["message"])
            dumps(frame)
        return time.perf_counter() - t0

    def codec_decode() -> float:
        buf = FrameBuffer(MAX_FRAME)
        feed, next_payload = buf.feed, buf.next_payload
        n = 0
        t0 = time.perf_counter()
        for chunk in chunks:
            feed(chunk)
            while (payload := next_payload()) is not None:
                check_frame(decode_payload(payload), CLIENT_FRAMES)
                n += 1
        elapsed = time.perf_counter() - t0
        if n != ops:
            raise RuntimeError(f"codec decode saw {n} frames, not {ops}")
        return elapsed

    def payload_decode() -> float:
        t0 = time.perf_counter()
        for payload in payloads:
            check_frame(decode_payload(payload), CLIENT_FRAMES)
        return time.perf_counter() - t0

    def hardened_loads() -> float:
        t0 = time.perf_counter()
        for payload in payloads:
            loads(payload, **DECODE_OPTIONS)
        return time.perf_counter() - t0

    def bare_loads() -> float:
        t0 = time.perf_counter()
        for payload in payloads:
            loads(payload)
        return time.perf_counter() - t0

    lines = (
        ("a1 encode: send_message+data_to_send", api_encode, bare_dumps),
        ("a2 encode: frames.encode_frame", frame_encode, bare_dumps),
        ("a3 decode: FrameBuffer+decode+check", codec_decode, bare_loads),
        ("a4 decode: decode_payload+check_frame", payload_decode, bare_loads),
    )
    cases = [pair(name, "frames", ops, rw, base, goal=0.85) for name, rw, base in lines]
    # Floors: the least any send or decode of untrusted input costs, cbor2's own cost included.
    floors = (
        ("a5 floor: cbor2.loads+hardening", hardened_loads, bare_loads),
        ("a6 floor: is_json_object+cbor2.dumps", checked_dumps, bare_dumps),
    )
    cases += [pair(name, "frames", ops, rw, base, goal=None) for name, rw, base in floors]
    return cases


# --- (b) server ingest + route --------------------------------------------------------------


class RefEvent:
    """The reference loop's event: one small object per frame."""

    __slots__ = ("kind", "message", "request_id")

    def __init__(self, kind: str, request_id: int, message: object) -> None:
        self.kind = kind
        self.request_id = request_id
        self.message = message


def reference_ingest(chunks: list[bytes]) -> int:
    """Split by 4-byte length prefix (offset walk) + cbor2.loads + one event object per frame."""
    unpack_from, loads = struct.Struct(">I").unpack_from, cbor2.loads
    buf, pos, n = b"", 0, 0
    for chunk in chunks:
        buf = buf[pos:] + chunk if pos < len(buf) else chunk
        pos, end_of_data = 0, len(buf)
        while end_of_data - pos >= 4:
            (size,) = unpack_from(buf, pos)
            end = pos + 4 + size
            if end > end_of_data:
                break
            frame = loads(buf[pos + 4 : end])
            RefEvent(frame["t"], frame["rid"], frame["message"])
            n += 1
            pos = end
    return n


def reference_route(chunks: list[bytes], sender_id: str, now: float) -> int:
    """The reference loop plus the cbor2 work a route cannot skip: per frame one ack and one
    stamped delivery encoded with cbor2.dumps, prefixed and queued; queues joined per chunk."""
    unpack_from, loads, dumps = struct.Struct(">I").unpack_from, cbor2.loads, cbor2.dumps
    pack = struct.Struct(">I").pack
    to_sender: list[bytes] = []
    to_receiver: list[bytes] = []
    buf, pos, n = b"", 0, 0
    for chunk in chunks:
        buf = buf[pos:] + chunk if pos < len(buf) else chunk
        pos, end_of_data = 0, len(buf)
        while end_of_data - pos >= 4:
            (size,) = unpack_from(buf, pos)
            end = pos + 4 + size
            if end > end_of_data:
                break
            frame = loads(buf[pos + 4 : end])
            n += 1
            message_id = f"ref-{n}"
            ack = dumps({"t": "ack", "rid": frame["rid"], "id": message_id})
            to_sender.append(pack(len(ack)) + ack)
            delivery = dumps(
                {
                    "t": "msg",
                    "id": message_id,
                    "seq": n,
                    "ts": now,
                    "from": sender_id,
                    "type": frame["type"],
                    "message": frame["message"],
                    "bc": False,
                }
            )
            to_receiver.append(pack(len(delivery)) + delivery)
            RefEvent(frame["t"], frame["rid"], frame["message"])
            pos = end
        b"".join(to_sender)
        b"".join(to_receiver)
        to_sender.clear()
        to_receiver.clear()
    return n


def server_ingest(hub: Hub, conn: ServerConnection, chunks: list[bytes]) -> int:
    """What a driver does per received chunk: buffer it, drain the events, flush the output.
    Returns how many events were ``MessageRouted`` (a refusal would not count)."""
    receive, next_event, now = conn.receive_data, conn.next_event, hub.now
    with_output = hub.server.connections_with_output
    n = 0
    for chunk in chunks:
        receive(chunk)
        while (event := next_event(now)) is not NEED_DATA:
            if event.__class__ is MessageRouted:
                n += 1
        for out in with_output():
            out.data_to_send()
    return n


def _stream(
    sender: ClientConnection,
    verb: Callable[[dict[str, object]], object],
    *,
    size: int | None = None,
    count: int | None = None,
    rng: random.Random,
) -> tuple[bytes, int]:
    """Frames queued by ``verb`` until ``size`` bytes or ``count`` frames: (bytes, frames)."""
    parts: list[bytes] = []
    total = frames = 0
    while (size is not None and total < size) or (count is not None and frames < count):
        verb(_message(rng))
        data = sender.data_to_send()
        parts.append(data)
        total += len(data)
        frames += 1
    return b"".join(parts), frames


def bench_ingest(rng: random.Random, size: int) -> Case:
    hub = Hub(rng)
    sender, sender_conn = hub.join(presence=True)
    receiver, _ = hub.join(presence=True)
    hub.pump(sender, sender_conn)
    assert receiver.local_participant is not None
    to = receiver.local_participant.id
    stream, frames = _stream(
        sender, lambda msg: sender.send_message(to, "chat", msg), size=size, rng=rng
    )
    chunks = _chunks(stream)

    # Check once, untimed, that every frame is routed to the receiver.
    routed, _ = hub.feed(sender_conn, chunks)
    if len(routed) != frames or not all(
        isinstance(e, MessageRouted) and e.recipients == 1 for e in routed
    ):
        raise RuntimeError("benchmark setup: the send frames were not all routed")

    def subject() -> float:
        t0 = time.perf_counter()
        n = server_ingest(hub, sender_conn, chunks)
        elapsed = time.perf_counter() - t0
        if n != frames:
            raise RuntimeError(f"server ingest routed {n} of {frames} frames")
        return elapsed

    def baseline() -> float:
        t0 = time.perf_counter()
        n = reference_ingest(chunks)
        elapsed = time.perf_counter() - t0
        if n != frames:
            raise RuntimeError(f"reference loop saw {n} frames, not {frames}")
        return elapsed

    assert sender.local_participant is not None
    sender_id = sender.local_participant.id

    def route_baseline() -> float:
        t0 = time.perf_counter()
        n = reference_route(chunks, sender_id, hub.now)
        elapsed = time.perf_counter() - t0
        if n != frames:
            raise RuntimeError(f"reference route saw {n} frames, not {frames}")
        return elapsed

    mib = len(stream) / 1048576
    return Case(
        (subject, baseline, route_baseline),
        lambda best: [
            Row(f"b  ingest+route {mib:.2f} MiB of send", "frames", frames, best[0], best[1], 0.8),
            Row("b2 same, vs reference + route's cbor2", "frames", frames, best[0], best[2], None),
        ],
    )


# --- (c) broadcast fan-out ------------------------------------------------------------------


def bench_fanout(rng: random.Random, recipients: int, deliveries: int) -> Case:
    hub = Hub(rng)
    sender, sender_conn = hub.join()
    for _ in range(recipients):
        hub.join()
    count = max(deliveries // recipients, 20)
    stream, frames = _stream(
        sender, lambda msg: sender.broadcast_message("chat", msg), count=count, rng=rng
    )
    chunks = _chunks(stream)

    # The stamped map each recipient gets, for the baseline's one dumps per message.
    _, received = hub.feed(sender_conn, chunks, keep="c2")
    delivered = [cbor2.loads(p) for p in _payloads(received)]
    if len(delivered) != frames or any(d["t"] != "msg" for d in delivered):
        raise RuntimeError("benchmark setup: the broadcasts were not all delivered")
    # Chunk boundaries in message counts, so both sides clear their queues at the same points.
    per_chunk = max(1, frames * CHUNK // len(stream))

    def subject() -> float:
        t0 = time.perf_counter()
        n = server_ingest(hub, sender_conn, chunks)
        elapsed = time.perf_counter() - t0
        if n != frames:
            raise RuntimeError(f"server ingest routed {n} of {frames} broadcasts")
        return elapsed

    def baseline() -> float:
        dumps = cbor2.dumps
        queues: list[list[bytes]] = [[] for _ in range(recipients)]
        t0 = time.perf_counter()
        for i, frame in enumerate(delivered, start=1):
            data = dumps(frame)
            for queue in queues:
                queue.append(data)
            if i % per_chunk == 0:
                for queue in queues:
                    queue.clear()
        return time.perf_counter() - t0

    name = f"c  fan-out N={recipients}"
    return pair(name, "deliveries", frames * recipients, subject, baseline, goal=None)


# --- (d) presence join -----------------------------------------------------------------------


def _hello_and_enable(name: str) -> bytes:
    """What a client sends to join with presence: its hello, then its enable."""
    client = ClientConnection(token=ParticipantToken(room=ROOM, name=name).to_jwt(SECRET), now=0)
    return client.data_to_send() + encode_frame({"t": "enable", "rid": 1, "presence": True})


def bench_join(rng: random.Random, members: int, joins: int) -> Case:
    server = RoomServer(ServerConfig(secret=SECRET, id_factory=SeededIds(rng)))
    now = 1000.0
    # The members join by hand (no client objects): each one's output is thrown away.
    for n in range(members):
        conn = server.accept(f"m{n}", now)
        conn.receive_data(_hello_and_enable(f"m{n}"))
        _drain(conn, now)
        for out in server.connections_with_output():
            out.data_to_send()
    join = _hello_and_enable("newcomer")
    ids = iter(range(10**9))

    def subject() -> float:
        elapsed = 0.0
        for _ in range(joins):
            cid = f"new{next(ids)}"
            t0 = time.perf_counter()
            conn = server.accept(cid, now)
            conn.receive_data(join)
            _drain(conn, now)
            conn.data_to_send()
            elapsed += time.perf_counter() - t0
            if conn.state is not State.ENABLED:
                raise RuntimeError("benchmark: the newcomer was not enabled")
            conn.receive_data(b"")  # untimed: it leaves, and everyone's output is dropped
            conn.next_event(now)
            for out in server.connections_with_output():
                out.data_to_send()
        return elapsed

    # The lean router's inputs: the same records the room holds, as plain maps.
    records = [
        {"id": p.id, "name": p.name, "role": p.role, "attributes": p.attributes}
        for p in server.participants(ROOM)
    ]
    limits = dict.fromkeys(
        (
            "max_frame_size",
            "max_send_size",
            "max_recipients",
            "max_type_length",
            "max_attributes_size",
        ),
        1048576,
    )
    queues: list[list[bytes]] = [[] for _ in range(members)]

    def baseline() -> float:
        loads, dumps = cbor2.loads, cbor2.dumps
        elapsed = 0.0
        for n in range(joins):
            t0 = time.perf_counter()
            hello, enable = (loads(p) for p in _payloads(join))
            me = {"id": f"x-{n}", "name": "newcomer", "role": "user", "attributes": {}}
            welcome = dumps(
                {
                    "t": "welcome",
                    "v": 1,
                    "room": ROOM,
                    "participant": me,
                    "limits": limits,
                    "hb": 25.0,
                    "hbt": 10.0,
                }
            )
            page = dumps(
                {"t": "snapshot", "rid": enable["rid"], "more": False, "participants": records}
            )
            joined = dumps({"t": "joined", "p": me, "seq": n})
            for queue in queues:
                queue.append(joined)
            elapsed += time.perf_counter() - t0
            if not (hello["token"] and welcome and page):
                raise RuntimeError("reference join lost its frames")
            for queue in queues:
                queue.clear()
        return elapsed

    name = f"d  presence join, room of {members}"
    return pair(name, "joins", joins, subject, baseline, goal=0.5)


# --- report ---------------------------------------------------------------------------------


def _rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:7.2f} M/s"
    return f"{value / 1e3:7.1f} k/s"


def print_table(rows: list[Row]) -> None:
    head = (
        f"{'benchmark':<40} {'unit':<10} {'roomwire':>11} {'baseline':>11} "
        f"{'ratio':>6} {'goal':>6} {'rw us/op':>9} {'base us/op':>10}"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        goal = f">={row.goal:.2f}" if row.goal is not None else "-"
        print(
            f"{row.name:<40} {row.unit:<10} {_rate(row.roomwire_rate):>11} "
            f"{_rate(row.baseline_rate):>11} {row.ratio:6.2f} {goal:>6} "
            f"{row.roomwire_s / row.count * 1e6:9.3f} {row.baseline_s / row.count * 1e6:10.3f}"
        )


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"
    except (AttributeError, OSError):  # no load average on this platform
        return "n/a"


def cbor2_is_compiled() -> bool:
    return type(cbor2.dumps).__name__ == "builtin_function_or_method"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few seconds, CI)")
    parser.add_argument("--seed", type=int, default=1, help="random.Random seed (default 1)")
    parser.add_argument("--repeat", type=int, help="timed rounds; each pass's best is kept")
    parser.add_argument("--ops", type=int, help="frames per pass in the codec lines (a)")
    parser.add_argument("--size", type=int, help="bytes of send frames in the ingest line (b)")
    parser.add_argument(
        "--fanout", help="comma-separated recipient counts for (c) (default 10,100,1000)"
    )
    parser.add_argument("--deliveries", type=int, help="deliveries per pass in each (c) line")
    parser.add_argument("--members", type=int, help="room size for the join line (d)")
    parser.add_argument(
        "--budget", type=float, help="seconds after which no new round starts (default 40/10)"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    if args.repeat is None:
        args.repeat = 3 if quick else 7
    if args.ops is None:
        args.ops = 4000 if quick else 30000
    if args.size is None:
        args.size = 256 * 1024 if quick else 1024 * 1024
    args.fanout = [int(n) for n in (args.fanout or "10,100,1000").split(",")]
    if args.deliveries is None:
        args.deliveries = 40000 if quick else 300000
    if args.members is None:
        args.members = 100 if quick else 1000
    if args.budget is None:
        args.budget = 10.0 if quick else 40.0
    counts = (args.repeat, args.ops, args.size, args.deliveries, args.members, *args.fanout)
    if min(counts) < 1 or args.budget <= 0:
        parser.error("sizes and counts must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    if not cbor2_is_compiled():
        print(
            "benchmarks/core.py: cbor2 is the pure-Python build; ratios against it mean"
            " nothing. Install the compiled cbor2 (>= 6) and rerun.",
            file=sys.stderr,
        )
        return 2
    args = parse_args(argv)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    print(
        f"roomwire {roomwire.__version__} core benchmark ({'quick' if args.quick else 'full'}):"
        f" seed={args.seed}, best of up to {args.repeat} rounds after 1 warm-up"
    )
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()},"
        f" {platform.machine()}), cbor2 {version('cbor2')}"
        f" (compiled: {cbor2_is_compiled()}), attrs {version('attrs')}"
    )
    print(f"roomwire imported from {os.path.dirname(roomwire.__file__)}")
    print(f"load average before: {_load()} (other processes skew absolute rates; ratios less)")
    cases = bench_codec(rng, args.ops)
    cases.append(bench_ingest(rng, args.size))
    cases.extend(bench_fanout(rng, n, args.deliveries) for n in args.fanout)
    cases.append(bench_join(rng, args.members, joins=20))
    rows, rounds = run_cases(cases, args.repeat, started + args.budget)
    print()
    print_table(rows)
    print()
    print("ratio = roomwire rate / baseline rate, both measured in this run (higher is better).")
    if rounds < args.repeat:
        print(
            f"time budget ({args.budget:g} s) reached: best of {rounds} rounds, not {args.repeat}"
        )
    print(f"load average after: {_load()}; total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
