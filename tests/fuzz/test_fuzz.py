"""The fuzz invariant (h11's, as a hypothesis test that runs in CI).

Bytes from a peer, whatever they are and however they are split, give events or a
``RemoteProtocolError`` and nothing else. After the error a close frame with a registry code and
a reason is queued and the connection is CLOSED; the connection's buffers stay bounded; and
the other connections of the room are unaffected: they still exchange messages, exactly once,
and see the offender leave at most once.

The garbage is a mix of arbitrary bytes, valid frame streams with bytes flipped, cut, inserted
or deleted, and length prefixes (right, wrong or over the limit) around random CBOR: random
values, valid frames with random fields, hand-made CBOR heads, and valid CBOR that uses the
format's sharing features (value sharing, string references, half-precision floats).
"""

from __future__ import annotations

import itertools
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from roomwire import (
    NEED_DATA,
    PROTOCOL_VERSION,
    ClientConfig,
    ClientConnection,
    Code,
    RemoteProtocolError,
    ServerConnection,
    State,
)
from roomwire.events import (
    ConnectionClosed,
    Event,
    MessageReceived,
    ParticipantAdded,
    ParticipantRemoved,
    RequestAcked,
)
from roomwire.frames import (
    CLIENT_FRAMES,
    HEADER,
    LIMIT_FIELDS,
    PREFIX_SIZE,
    SERVER_FRAMES,
    check_frame,
    encode_frame,
)

from ..core.helpers import Peer, RawPeer, Room, decode_frames, raw_peer, token
from . import watchdog

MAX_FRAME = 4096
"""A small frame limit for the fuzzed room, so random prefixes often cross it."""
OUTBOUND = 64 * 1024
WATCHDOG_SECONDS = 2.0
"""Any example taking this long is a hang (a normal one takes milliseconds)."""

SETTINGS = settings(
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- what garbage is made of -----------------------------------------------------------

ALICE_ID, BOB_ID, MALLORY_ID = "id1", "id2", "id3"
"""Participant ids in the fuzzed room (the helpers' ids are deterministic; checked below)."""
MALLORY_TOKEN = token(name="mallory")

MESSAGES: list[dict[str, Any]] = [
    {},
    {"text": "hi"},
    {"n": [1, 2.5, None, True, -7]},
    {"deep": {"a": {"b": [{"c": "d"}, []]}}},
    {"big": 2**64 - 1, "small": -(2**64), "f": 1e300},
    {"\u00e9t\u00e9": "\u00fc" * 12, "": ""},
]
RIDS = [0, 1, 2, 3, 7, 2**63 - 1]
RECIPIENTS: list[list[str]] = [
    [BOB_ID],
    [ALICE_ID, BOB_ID],
    [MALLORY_ID],
    ["ghost"],
    [BOB_ID, BOB_ID],
    [],
    [""],
]
CLOSE_CODES = [1000, 1001, 1002, 3001]


def _client_pool() -> list[dict[str, Any]]:
    """Valid frames of every kind a client sends, with the room's real ids (and a few that
    are well-formed but refused: another room, another version, a bad token)."""
    pool: list[dict[str, Any]] = [
        {"t": "hello", "v": PROTOCOL_VERSION, "token": MALLORY_TOKEN},
        {"t": "hello", "v": PROTOCOL_VERSION, "token": MALLORY_TOKEN, "room": "demo"},
        {"t": "hello", "v": PROTOCOL_VERSION, "token": MALLORY_TOKEN, "room": "other"},
        {"t": "hello", "v": PROTOCOL_VERSION + 1, "token": MALLORY_TOKEN},
        {"t": "hello", "v": PROTOCOL_VERSION, "token": "not.a.jwt"},
        {"t": "ping"},
        {"t": "pong"},
    ]
    for i, rid in enumerate(RIDS):
        message = MESSAGES[i % len(MESSAGES)]
        att = None if i % 2 else bytes(range(i * 7))
        pool += [
            {"t": "enable", "rid": rid},
            {"t": "enable", "rid": rid, "presence": bool(i % 2)},
            {"t": "disable", "rid": rid},
            {"t": "attrs", "rid": rid, "attributes": message},
            {"t": "attrs", "rid": rid, "attributes": {"text": None}},
            {"t": "broadcast", "rid": rid, "type": "chat", "message": message},
            {"t": "broadcast", "rid": rid, "type": "t" * (i * 60), "message": {}, "att": b"a"},
            {"t": "history", "rid": rid},
            {"t": "history", "rid": rid, "limit": i * 400, "since": i - 1, "reverse": bool(i % 2)},
        ]
        # Services (§23): mallory has no intercept grant, so these are refused.
        pool += [
            {"t": "svc_attach", "rid": rid},
            {"t": "svc_decide", "rid": rid, "id": f"m{i}", "drop": bool(i % 2)},
            {"t": "svc_decide", "rid": rid, "id": f"m{i}", "message": message, "to": None},
            {"t": "svc_send", "rid": rid, "from": ALICE_ID, "type": "chat", "message": message},
            {"t": "svc_puppet", "rid": rid, "name": "Meow", "attributes": message},
            {"t": "svc_unpuppet", "rid": rid, "id": f"id{i}"},
        ]
        for to in RECIPIENTS:
            frame = {"t": "send", "rid": rid, "to": to, "type": "chat", "message": message}
            if att is not None:
                frame["att"] = att
            pool.append(frame)
    pool += [{"t": "refresh", "rid": rid, "token": MALLORY_TOKEN} for rid in RIDS]
    # Participant RPC (§24): calls to the room's ids (and a ghost), answers naming call ids
    # the server may have stamped (and some it did not), cancels.
    for i, rid in enumerate(RIDS):
        pool += [
            {
                "t": "call",
                "rid": rid,
                "to": [BOB_ID, ALICE_ID, "ghost"][i % 3],
                "type": "f",
                "message": MESSAGES[i % len(MESSAGES)],
            },
            {"t": "answer", "rid": rid, "id": f"id{3 + i}", "message": {}, "att": b"r"},
            {"t": "answer", "rid": rid, "id": f"id{3 + i}", "code": -i, "reason": "no"},
            {"t": "cancel", "rid": rid},
            {"t": "open", "rid": rid, "to": [BOB_ID, ALICE_ID, "ghost"][i % 3], "header": {}},
            {"t": "accept", "rid": rid, "sid": f"id{3 + i}"},
            {"t": "chunk", "sid": f"id{3 + i}", "data": bytes(i * 9), "header": {"i": i}},
            {"t": "credit", "sid": f"id{3 + i}", "n": 1 + i * 100},
            {"t": "end", "sid": f"id{3 + i}"},
            {"t": "abort", "sid": f"id{3 + i}", "reason": "stop"},
        ]
    pool += [{"t": "close", "code": code, "reason": "bye"} for code in CLOSE_CODES]
    return pool


def _participant(pid: str, **attributes: Any) -> dict[str, Any]:
    return {"id": pid, "name": pid, "role": "user", "attributes": attributes}


def _server_pool() -> list[dict[str, Any]]:
    """Valid frames of every kind a server sends, naming the fuzzed client's requests
    (rids 1 to 3) and the room's participants (and some that are out of turn)."""
    limits = dict.fromkeys(LIMIT_FIELDS, 4096)
    pool: list[dict[str, Any]] = [
        {
            "t": "welcome",
            "v": PROTOCOL_VERSION,
            "room": "demo",
            "participant": _participant("id9"),
            "limits": limits,
            "hb": 25,
            "hbt": 10.0,
        },
        {"t": "ping"},
        {"t": "pong"},
    ]
    for rid in (1, 2, 3, 99):
        pool += [
            {"t": "ack", "rid": rid},
            {"t": "ack", "rid": rid, "id": "m7"},
            {"t": "error", "rid": rid, "code": 4040, "reason": "gone"},
            {"t": "snapshot", "rid": rid, "more": True, "participants": []},
            {"t": "snapshot", "rid": rid, "more": False, "participants": [_participant("id8")]},
            {"t": "history", "rid": rid, "more": rid == 2, "messages": []},
        ]
    for i, pid in enumerate([ALICE_ID, "id3", "id4", "id8"]):
        message = MESSAGES[i % len(MESSAGES)]
        pool += [
            {"t": "joined", "seq": 10 + i, "p": _participant(pid)},
            {"t": "updated", "seq": 20 + i, "p": _participant(pid, mood="ok")},
            {"t": "left", "seq": 30 + i, "id": pid},
            {
                "t": "msg",
                "id": f"m{i}",
                "seq": 40 + i,
                "ts": 1000.5 + i,
                "from": pid,
                "type": "chat",
                "message": message,
                "bc": bool(i % 2),
                "att": bytes(i * 5),
            },
            {
                "t": "history",
                "rid": 1 + i % 3,
                "more": False,
                "messages": [
                    {
                        "id": f"h{i}",
                        "seq": i,
                        "ts": 1.0,
                        "from": pid,
                        "type": "chat",
                        "message": message,
                        "bc": True,
                    }
                ],
            },
        ]
    for rid in (1, 2, 3, 99):
        call = {"t": "call", "id": f"c{rid}", "from": BOB_ID, "ts": 1.5, "type": "f"}
        result = {"rid": rid, "id": f"c{rid}", "from": BOB_ID, "ts": 2, "type": "f"}
        pool += [
            {**call, "message": {"n": rid}},
            {"t": "cancel", "id": f"c{rid}"},
            {"t": "result", **result, "message": {}, "att": b"a"},
            {"t": "result", **result, "code": 4043, "reason": "no handler"},
            {"t": "open", "sid": f"s{rid}", "from": BOB_ID, "ts": 3, "header": {"n": rid}},
            {"t": "chunk", "sid": f"s{rid}", "data": bytes(rid % 7)},
            {"t": "credit", "sid": f"s{rid}", "n": rid},
            {"t": "end", "sid": f"s{rid}"},
            {"t": "abort", "sid": f"s{rid}", "code": 4046, "reason": "left"},
        ]
    pool += [
        {"t": "svc_timeout", "id": "m1"},
        {
            "t": "svc_msg",
            "id": "m2",
            "ts": 1000.5,
            "from": ALICE_ID,
            "type": "chat",
            "message": {},
            "to": [],
            "att": b"a",
        },
    ]
    pool += [{"t": "close", "code": code, "reason": "bye"} for code in CLOSE_CODES]
    return pool


CLIENT_FRAME_POOL = _client_pool()
SERVER_FRAME_POOL = _server_pool()
CLIENT_FRAME_ST = st.sampled_from(CLIENT_FRAME_POOL)
SERVER_FRAME_ST = st.sampled_from(SERVER_FRAME_POOL)


SIMPLE = st.sampled_from([*range(20), *range(32, 256)]).map(cbor2.CBORSimpleValue)
INTERESTING_TAGS = [0, 1, 2, 3, 4, 5, 21, 22, 23, 24, 25, 28, 29, 30, 32, 33, 34, 35, 36, 37]
INTERESTING_TAGS += [52, 54, 100, 256, 258, 260, 261, 1004, 43000, 55799]
TAGS = st.sampled_from(INTERESTING_TAGS) | st.integers(0, 2**64 - 1)
CBOR_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.binary(max_size=24)
    | st.text(max_size=12)
    | st.just(cbor2.undefined)
    | SIMPLE,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=6) | st.binary(max_size=4) | st.integers(), inner, max_size=4
        )
        | st.builds(cbor2.CBORTag, TAGS, inner)
    ),
    max_leaves=5,
)
"""Anything cbor2 can encode, semantic tags included."""

ENCODINGS = st.fixed_dictionaries(
    {},
    optional={
        "value_sharing": st.booleans(),
        "string_referencing": st.booleans(),
        "canonical": st.booleans(),
    },
)


def dumps(value: object, options: dict[str, bool]) -> bytes:
    try:
        return cbor2.dumps(value, **options)
    except cbor2.CBOREncodeError:
        return cbor2.dumps(value)


def _mangle(frame: dict[str, Any], swaps: list[tuple[int, Any]]) -> dict[str, Any]:
    """Swap some fields of ``frame`` (the kind included) for other values; index
    ``len(keys)`` and up add a key instead."""
    frame = dict(frame)
    keys = [*frame, "rid", "to", "message", "x"]
    for index, value in swaps:
        frame[keys[index % len(keys)]] = value
    return frame


def mangled(frames: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid frames with some fields swapped for random CBOR values."""
    swaps = st.lists(st.tuples(st.integers(0, 15), CBOR_VALUES), min_size=1, max_size=3)
    return st.builds(_mangle, frames, swaps)


def _heads(seed: bytes) -> bytes:
    """Read ``seed`` as a recipe of CBOR heads: each byte is an initial byte (any major type,
    any additional info), followed by as many argument bytes as that head announces, taken
    from the rest of the seed (so the heads are well-formed and the values random)."""
    out = bytearray()
    data = iter(seed)
    for initial in data:
        out.append(initial)
        info = initial & 0x1F
        width = {24: 1, 25: 2, 26: 4, 27: 8}.get(info, 0)
        out += bytes(next(data, 0xFF) for _ in range(width))
    return bytes(out)


RAW_CBOR = st.binary(min_size=1, max_size=48).map(_heads)
"""Hand-made CBOR heads (every major type, every additional-info value) with random tails."""


def _amplifier(how: str, where: str, n: int, size: int) -> bytes:
    options: dict[str, bool]
    value: Any
    if how == "cycle":
        cyclic: dict[str, Any] = {}
        cyclic["again"] = cyclic
        value, options = cyclic, {"value_sharing": True}
    elif how == "dag":
        value = [1]
        for _ in range(n % 31):
            value = [value, value]
        options = {"value_sharing": True}
    elif how == "stringref":
        value, options = ["s" * size] * n, {"string_referencing": True}
    else:
        value, options = [1.5] * n, {"canonical": True}
    if where == "attrs":
        frame: dict[str, Any] = {"t": "attrs", "rid": 1, "attributes": {"v": value}}
    else:
        frame = {"t": where, "rid": 1, "type": "x", "message": {"v": value}}
        if where == "send":
            frame["to"] = [ALICE_ID, BOB_ID]
    return cbor2.dumps(frame, **options)


AMPLIFIERS = st.builds(
    _amplifier,
    st.sampled_from(["cycle", "dag", "stringref", "float16"]),
    st.sampled_from(["broadcast", "send", "attrs"]),
    st.integers(1, 1000),
    st.integers(3, 1500),
)
"""Requests whose CBOR is small but whose value is big or endless once decoded: value
sharing (a cycle, a doubling DAG), string references, half-precision floats."""


def _prefixed(body: bytes, how: str, delta: int, size: int) -> bytes:
    if how == "exact":
        size = len(body)
    elif how == "off":
        size = max(0, len(body) + delta)
    elif how == "limit":
        size = MAX_FRAME + delta
    return HEADER.pack(size) + body


def framed(frames: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """A length prefix (exact, a little off, at the limit, or anything) around a body: random
    CBOR, valid frames with random fields, raw heads, amplifiers, or random bytes."""
    bodies = st.one_of(
        st.builds(dumps, CBOR_VALUES, ENCODINGS),
        st.builds(dumps, mangled(frames), ENCODINGS),
        st.builds(dumps, frames, ENCODINGS),
        RAW_CBOR,
        st.binary(max_size=64),
        AMPLIFIERS,
    )
    return st.builds(
        _prefixed,
        bodies,
        st.sampled_from(["exact", "exact", "exact", "off", "limit", "any"]),
        st.integers(-3, 3),
        st.integers(0, 2**32 - 1),
    )


EDITS = ("flip", "truncate", "insert", "delete", "repeat")


def _mutate(frames: list[dict[str, Any]], script: bytes) -> bytes:
    """Encode ``frames``, then apply the edits ``script`` spells, four bytes per edit: what,
    where (two bytes, taken modulo the length), and an amount (the flip mask, how many bytes
    to delete or repeat, or the byte to insert)."""
    data = bytearray(b"".join(encode_frame(f) for f in frames))
    for i in range(0, len(script) - 3, 4):
        how = EDITS[script[i] % len(EDITS)]
        at = int.from_bytes(script[i + 1 : i + 3], "big") % (len(data) + 1)
        amount = script[i + 3]
        if how == "flip" and at < len(data):
            data[at] ^= amount or 0x80
        elif how == "truncate":
            del data[at:]
        elif how == "insert":
            data[at:at] = bytes([amount])
        elif how == "delete":
            del data[at : at + amount % 8 + 1]
        elif how == "repeat":
            data[at:at] = data[at : at + amount % 32 + 1]
    return bytes(data) or b"\x00"  # never empty: an empty chunk would be an EOF


def mutated(frames: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """Valid frames, encoded, then bytes flipped, cut, inserted, deleted or repeated."""
    return st.builds(_mutate, st.lists(frames, max_size=4), st.binary(max_size=20))


def garbage(frames: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    piece = st.one_of(st.binary(min_size=1, max_size=512), mutated(frames), framed(frames))
    return st.lists(piece, min_size=1, max_size=3).map(b"".join)


SPLITS = st.tuples(
    st.sampled_from(["whole", "bytes", "random", "random"]),
    st.lists(st.integers(0, 2**16), max_size=12),
)
"""How to split the garbage: in one chunk, byte by byte, or at random places."""


def split(data: bytes, how: tuple[str, list[int]]) -> list[bytes]:
    """``data`` in chunks as ``how`` says; never an empty chunk (that would be an EOF)."""
    kind, cuts = how
    if kind == "whole" or len(data) < 2:
        return [data]
    if kind == "bytes":
        return [data[i : i + 1] for i in range(len(data))]
    edges = [0, *sorted({c % (len(data) - 1) + 1 for c in cuts}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


SERVER_GARBAGE = garbage(CLIENT_FRAME_ST)
CLIENT_GARBAGE = garbage(SERVER_FRAME_ST)


# --- the checks --------------------------------------------------------------------------


def receive_buffer_size(conn: ServerConnection | ClientConnection) -> int:
    """Bytes buffered and not yet decoded. White-box: there is no public accessor."""
    return len(conn._buffer)


class Feeder:
    """Feeds garbage to one connection and checks the invariant after every call."""

    def __init__(self, conn: ServerConnection | ClientConnection, now: float) -> None:
        self.conn = conn
        self.now = now
        self.events: list[Event] = []
        self.sent: list[dict[str, Any]] = []
        self.sent_bytes = 0
        self.error: RemoteProtocolError | None = None

    def take_output(self) -> None:
        data = self.conn.data_to_send()
        self.sent_bytes += len(data)
        self.sent.extend(decode_frames(data))

    def feed(self, chunk: bytes) -> bool:
        """Feed one chunk and drain the events; True when it produced an event (or failed)."""
        conn = self.conn
        closed = conn.state is State.CLOSED
        buffered = receive_buffer_size(conn)
        conn.receive_data(chunk)
        if closed:
            assert receive_buffer_size(conn) == buffered, "bytes were kept after CLOSED"
            assert isinstance(conn.next_event(self.now), ConnectionClosed)
            assert conn.data_to_send() == b""
            return False
        events = len(self.events)
        while True:
            try:
                item = conn.next_event(self.now)
            except RemoteProtocolError as exc:
                self.failed(exc)
                return True
            self.take_output()
            if item is NEED_DATA:
                assert receive_buffer_size(conn) < MAX_FRAME + PREFIX_SIZE
                break
            assert isinstance(item, Event), item
            self.events.append(item)
            if isinstance(item, ConnectionClosed):
                assert conn.state is State.CLOSED
                break
        return len(self.events) > events

    def failed(self, exc: RemoteProtocolError) -> None:
        assert self.error is None, "a second RemoteProtocolError: the first did not close"
        self.error = exc
        assert self.conn.state is State.CLOSED
        self.take_output()
        assert self.sent, "no close frame was queued"
        close = self.sent[-1]
        assert close == {"t": "close", "code": int(exc.code), "reason": exc.reason}
        assert exc.code in Code.__members__.values()
        assert exc.code.closes_connection
        assert exc.reason.strip(), "an empty reason"
        assert len(exc.reason) <= 1000, "the reason echoes too much"
        # Once closed, the same close comes back and nothing more is sent.
        again = self.conn.next_event(self.now)
        assert again == ConnectionClosed(code=exc.code, reason=exc.reason, by_peer=False)
        assert self.conn.data_to_send() == b""


def outcome(feeder: Feeder) -> None:
    """Label the example for ``--hypothesis-show-statistics``: how the garbage ended."""
    if feeder.error is not None:
        event(f"RemoteProtocolError {feeder.error.code.name}")
    elif feeder.conn.state is State.CLOSED:
        event("closed without an error")
    else:
        event(f"still {feeder.conn.state.name} after {len(feeder.events)} events")


def pump(room: Room) -> None:
    try:
        room.pump()
    except RemoteProtocolError as exc:
        pytest.fail(f"an innocent client was sent something invalid: {exc.code.name}: {exc}")


def presence_story(peer: Peer, who: str) -> list[str]:
    """The presence changes ``peer`` saw about ``who``, in order."""
    story = []
    for item in peer.events:
        if isinstance(item, ParticipantAdded) and item.participant.id == who:
            story.append("added")
        elif isinstance(item, ParticipantRemoved) and item.participant.id == who:
            story.append("removed")
    return story


def fuzzed_room(phase: str) -> tuple[Room, Peer, Peer, RawPeer]:
    # No resume window: mallory's hang-up removes it at once, as the presence story below
    # expects (a lost connection's suspension is tests/core/test_resume.py's).
    room = Room(
        client_config=ClientConfig(max_frame_size=MAX_FRAME),
        max_frame_size=MAX_FRAME,
        outbound_limit=OUTBOUND,
        resume_window=0,
    )
    alice = room.enabled("alice")
    bob = room.enabled("bob")
    mallory = raw_peer(room, "mallory", MALLORY_TOKEN, hello=phase != "fresh")
    if phase == "enabled":
        mallory.client.send({"t": "enable", "rid": 1})
        room.pump()
    for peer, pid in ((alice, ALICE_ID), (bob, BOB_ID)):
        me = peer.client.local_participant
        assert me is not None
        assert me.id == pid
    if phase != "fresh":
        assert mallory.server.participant is not None
        assert mallory.server.participant.id == MALLORY_ID
    alice.take()
    bob.take()
    mallory.client.take()
    return room, alice, bob, mallory


@SETTINGS
@given(
    phase=st.sampled_from(["fresh", "open", "enabled"]),
    junk=SERVER_GARBAGE,
    how=SPLITS,
)
def test_garbage_into_a_server_connection(
    phase: str, junk: bytes, how: tuple[str, list[int]]
) -> None:
    room, alice, bob, mallory = fuzzed_room(phase)
    feeder = Feeder(mallory.server, room.now)
    was_present = MALLORY_ID in {p.id for p in room.server.participants("demo")}

    with watchdog(WATCHDOG_SECONDS):
        for piece in split(junk, how):
            if feeder.feed(piece):
                # What mallory did may concern the others: deliver it, as a driver would.
                pump(room)
            assert mallory.server.outbound_size <= OUTBOUND + MAX_FRAME + 1024
        # Whatever mallory's connection made of it, it never answers out of proportion.
        assert feeder.sent_bytes <= 16 * len(junk) + MAX_FRAME
        outcome(feeder)

        # The others still work: a direct message and a broadcast, each delivered once.
        rid = alice.client.send_message(BOB_ID, "after", {"n": 1})
        bob.client.broadcast_message("after-all", {"n": 2})
        pump(room)
        # Then mallory hangs up (if it has not already been closed).
        if mallory.server.state is not State.CLOSED:
            feeder.feed(b"")
        pump(room)

    for peer in (alice, bob):
        assert peer.client.state is State.ENABLED
        assert not [e for e in peer.events if isinstance(e, ConnectionClosed)]
    acks = [e for e in alice.events if isinstance(e, RequestAcked) and e.request_id == rid]
    assert len(acks) == 1
    direct = [
        e.message
        for e in bob.events
        if isinstance(e, MessageReceived) and e.message.id == acks[0].message_id
    ]
    assert len(direct) == 1
    assert (direct[0].from_participant_id, direct[0].type) == (ALICE_ID, "after")
    broadcasts = [
        e.message
        for e in alice.events
        if isinstance(e, MessageReceived) and e.message.type == "after-all"
    ]
    assert [(m.from_participant_id, m.broadcast) for m in broadcasts] == [(BOB_ID, True)]

    # Presence: mallory's arrivals and departures alternate (so it is removed at most once
    # per arrival), and both views end where the server is: without mallory.
    for peer in (alice, bob):
        story = presence_story(peer, MALLORY_ID)
        start = ["removed", "added"] if was_present else ["added", "removed"]
        assert story == [start[i % 2] for i in range(len(story))], story
        assert (len(story) % 2 == 1) == was_present, story
        assert MALLORY_ID not in {p.id for p in peer.client.remote_participants}
    assert {p.id for p in room.server.participants("demo")} == {ALICE_ID, BOB_ID}


# --- the client side -------------------------------------------------------------------


@settings(
    max_examples=2_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(phase=st.sampled_from(["open", "enabled"]), junk=CLIENT_GARBAGE, how=SPLITS)
def test_garbage_into_a_client_connection(
    phase: str, junk: bytes, how: tuple[str, list[int]]
) -> None:
    room = Room(max_frame_size=MAX_FRAME)
    room.enabled("alice")
    carol = room.enabled("carol") if phase == "enabled" else room.join("carol")
    # Requests in flight, so that replies to rids 1..3 can be meaningful.
    carol.client.set_attributes({"k": 1})
    if phase == "enabled":
        carol.client.broadcast_message("x", {})
    carol.client.data_to_send()
    feeder = Feeder(carol.client, room.now)
    with watchdog(WATCHDOG_SECONDS):
        for piece in split(junk, how):
            feeder.feed(piece)
            assert carol.client.outbound_size <= len(junk) + MAX_FRAME
    outcome(feeder)
    assert feeder.sent_bytes <= 2 * len(junk) + MAX_FRAME
    for frame in feeder.sent:
        assert frame["t"] in {"pong", "close"}


def test_the_frame_pools_cover_every_kind_and_are_valid() -> None:
    """The fuzz starts from valid frames of every kind (else its mutations are shallow)."""
    for pool, kinds in ((CLIENT_FRAME_POOL, CLIENT_FRAMES), (SERVER_FRAME_POOL, SERVER_FRAMES)):
        for frame in pool:
            check_frame(frame, kinds)
        assert {frame["t"] for frame in pool} == set(kinds)
