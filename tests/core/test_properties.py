"""Property tests (hypothesis): frame round trips, the state table, and chunking.

1. Every valid frame of every kind round-trips through the codec unchanged.
2. Every ``State`` x ``Input`` pair of the state table, driven on a real client/server pair,
   either moves where ``TRANSITIONS`` says or raises the documented error.
3. However a valid byte stream is split, both sides see the same events and answer with the
   same bytes as when it arrives in one chunk.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from roomwire import (
    NEED_DATA,
    PROTOCOL_VERSION,
    ClientConnection,
    Code,
    Input,
    LocalProtocolError,
    RemoteProtocolError,
    ServerConnection,
    State,
)
from roomwire._state import TRANSITIONS
from roomwire.events import (
    ConnectionClosed,
    Event,
    MessageRouted,
    ParticipantDisabled,
    ParticipantEnabled,
    ParticipantJoined,
    RequestRefused,
)
from roomwire.frames import (
    CLIENT_FRAMES,
    LIMIT_FIELDS,
    PREFIX_SIZE,
    SERVER_FRAMES,
    Checker,
    FrameBuffer,
    check_frame,
    decode_payload,
    encode_frame,
)

from .helpers import Peer, Room, decode_frames, drain, token

Frame = dict[str, Any]

# --- 1. every valid frame round-trips -----------------------------------------------------

U63 = st.integers(0, 2**63 - 1)
TEXT = st.text(max_size=12)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
# JSON integers are kept to CBOR's native range (no bignum tags).
JSON_INT = st.integers(-(2**64), 2**64 - 1)
JSON = st.recursive(
    st.none() | st.booleans() | JSON_INT | FINITE | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=16,
)
JSON_OBJECT = st.dictionaries(TEXT, JSON, max_size=4)
ATTACHMENT = st.none() | st.binary(max_size=64)
# A close carries a close code (never CONNECTION_LOST, which is local only); an error carries
# a refusal code.
CLOSE_CODES = st.sampled_from(
    [int(c) for c in Code if c.closes_connection and c is not Code.CONNECTION_LOST]
)
REFUSAL_CODES = st.sampled_from([int(c) for c in Code if not c.closes_connection])
SECONDS = st.integers(1, 2**31) | st.floats(min_value=1e-3, max_value=1e9)
PARTICIPANT = st.fixed_dictionaries(
    {"id": TEXT, "name": TEXT, "role": TEXT, "attributes": JSON_OBJECT}
)


def frame_of(
    kind: str,
    required: dict[str, st.SearchStrategy[Any]],
    optional: dict[str, st.SearchStrategy[Any]] | None = None,
) -> st.SearchStrategy[Frame]:
    return st.fixed_dictionaries({"t": st.just(kind), **required}, optional=optional or {})


BARE = {kind: frame_of(kind, {}) for kind in ("ping", "pong")}
CLOSE = frame_of("close", {"code": CLOSE_CODES, "reason": TEXT})

STREAM_FRAMES = {
    "chunk": frame_of(
        "chunk", {"sid": TEXT, "data": st.binary(max_size=64)}, {"header": JSON_OBJECT}
    ),
    "credit": frame_of("credit", {"sid": TEXT, "n": st.integers(1, 2**63 - 1)}),
    "end": frame_of("end", {"sid": TEXT}),
}
"""The stream frames both sides send with the same shape."""
APP_CODES = st.integers(-(2**63), 2**63 - 1)
"""An answer's error code: any integer the application chose."""

CLIENT_FRAME_STRATEGIES: dict[str, st.SearchStrategy[Frame]] = {
    "hello": frame_of("hello", {"v": U63, "token": TEXT}, {"room": TEXT}),
    "enable": frame_of("enable", {"rid": U63}, {"presence": st.booleans()}),
    "disable": frame_of("disable", {"rid": U63}),
    "send": frame_of(
        "send",
        {"rid": U63, "to": st.lists(TEXT, max_size=4), "type": TEXT, "message": JSON_OBJECT},
        {"att": ATTACHMENT},
    ),
    "broadcast": frame_of(
        "broadcast", {"rid": U63, "type": TEXT, "message": JSON_OBJECT}, {"att": ATTACHMENT}
    ),
    "attrs": frame_of("attrs", {"rid": U63, "attributes": JSON_OBJECT}),
    "history": frame_of(
        "history",
        {"rid": U63},
        {"limit": JSON_INT, "since": st.none() | JSON_INT, "reverse": st.booleans()},
    ),
    "refresh": frame_of("refresh", {"rid": U63, "token": TEXT}),
    **BARE,
    "close": CLOSE,
    "call": frame_of(
        "call", {"rid": U63, "to": TEXT, "type": TEXT, "message": JSON_OBJECT}, {"att": ATTACHMENT}
    ),
    "answer": frame_of(
        "answer", {"rid": U63, "id": TEXT, "message": JSON_OBJECT}, {"att": ATTACHMENT}
    )
    | frame_of("answer", {"rid": U63, "id": TEXT, "code": APP_CODES, "reason": TEXT}),
    "cancel": frame_of("cancel", {"rid": U63}),
    "open": frame_of("open", {"rid": U63, "to": TEXT, "header": JSON_OBJECT}),
    "accept": frame_of("accept", {"rid": U63, "sid": TEXT}),
    **STREAM_FRAMES,
    "abort": frame_of("abort", {"sid": TEXT, "reason": TEXT}),
    "svc_attach": frame_of("svc_attach", {"rid": U63}),
    "svc_decide": frame_of(
        "svc_decide",
        {"rid": U63, "id": TEXT},
        {
            "drop": st.booleans(),
            "type": TEXT,
            "message": JSON_OBJECT,
            "att": ATTACHMENT,
            "to": st.none() | st.lists(TEXT, max_size=4),
        },
    ),
    "svc_send": frame_of(
        "svc_send",
        {"rid": U63, "from": TEXT, "type": TEXT, "message": JSON_OBJECT},
        {"att": ATTACHMENT, "to": st.none() | st.lists(TEXT, max_size=4)},
    ),
    "svc_puppet": frame_of("svc_puppet", {"rid": U63, "name": TEXT, "attributes": JSON_OBJECT}),
    "svc_unpuppet": frame_of("svc_unpuppet", {"rid": U63, "id": TEXT}),
}

MESSAGE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": TEXT,
    "seq": U63,
    "ts": U63 | FINITE,
    "from": TEXT,
    "type": TEXT,
    "message": JSON_OBJECT,
    "bc": st.booleans(),
}
"""A ``msg`` frame's fields, also each message of a history page."""

RESULT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "rid": U63,
    "id": TEXT,
    "from": TEXT,
    "ts": U63 | FINITE,
    "type": TEXT,
}
"""A ``result`` frame's fields, whatever the outcome."""

SERVER_FRAME_STRATEGIES: dict[str, st.SearchStrategy[Frame]] = {
    "welcome": frame_of(
        "welcome",
        {
            "v": U63,
            "room": TEXT,
            "participant": PARTICIPANT,
            "limits": st.fixed_dictionaries(dict.fromkeys(LIMIT_FIELDS, U63)),
            "hb": SECONDS,
            "hbt": SECONDS,
        },
    ),
    "snapshot": frame_of(
        "snapshot",
        {"rid": U63, "more": st.booleans(), "participants": st.lists(PARTICIPANT, max_size=3)},
    ),
    "ack": frame_of("ack", {"rid": U63}, {"id": st.none() | TEXT}),
    "error": frame_of("error", {"rid": U63, "code": REFUSAL_CODES, "reason": TEXT}),
    "msg": frame_of("msg", MESSAGE_FIELDS, {"att": ATTACHMENT}),
    "history": frame_of(
        "history",
        {
            "rid": U63,
            "more": st.booleans(),
            "messages": st.lists(
                st.fixed_dictionaries(MESSAGE_FIELDS, optional={"att": ATTACHMENT}), max_size=3
            ),
        },
    ),
    "joined": frame_of("joined", {"seq": U63, "p": PARTICIPANT}),
    "updated": frame_of("updated", {"seq": U63, "p": PARTICIPANT}),
    "left": frame_of("left", {"seq": U63, "id": TEXT}),
    **BARE,
    "close": CLOSE,
    "call": frame_of(
        "call",
        {"id": TEXT, "from": TEXT, "ts": U63 | FINITE, "type": TEXT, "message": JSON_OBJECT},
        {"att": ATTACHMENT},
    ),
    "result": frame_of("result", {**RESULT_FIELDS, "message": JSON_OBJECT}, {"att": ATTACHMENT})
    | frame_of("result", {**RESULT_FIELDS, "code": APP_CODES, "reason": TEXT}),
    "cancel": frame_of("cancel", {"id": TEXT}),
    "open": frame_of(
        "open", {"sid": TEXT, "from": TEXT, "ts": U63 | FINITE, "header": JSON_OBJECT}
    ),
    **STREAM_FRAMES,
    "abort": frame_of("abort", {"sid": TEXT, "code": REFUSAL_CODES, "reason": TEXT}),
    "svc_msg": frame_of(
        "svc_msg",
        {
            "id": TEXT,
            "ts": U63 | FINITE,
            "from": TEXT,
            "type": TEXT,
            "message": JSON_OBJECT,
            "to": st.none() | st.lists(TEXT, max_size=4),
        },
        {"att": ATTACHMENT},
    ),
    "svc_timeout": frame_of("svc_timeout", {"id": TEXT}),
}

ROLES: dict[str, tuple[dict[str, Checker], dict[str, st.SearchStrategy[Frame]]]] = {
    "client": (CLIENT_FRAMES, CLIENT_FRAME_STRATEGIES),
    "server": (SERVER_FRAMES, SERVER_FRAME_STRATEGIES),
}


def with_unknown_keys(frames: st.SearchStrategy[Frame]) -> st.SearchStrategy[Frame]:
    """Frames plus keys the receiver does not know (they must be kept and ignored)."""
    return st.builds(
        lambda frame, extra: {**extra, **frame},
        frames,
        st.dictionaries(TEXT.map(lambda key: "x-" + key), JSON, max_size=2),
    )


def same(a: object, b: object) -> bool:
    """Equal, with equal types all the way down (``True == 1`` and ``1 == 1.0`` do not count)
    and map keys in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return a == b


def test_every_frame_kind_has_a_strategy() -> None:
    assert set(CLIENT_FRAME_STRATEGIES) == set(CLIENT_FRAMES)
    assert set(SERVER_FRAME_STRATEGIES) == set(SERVER_FRAMES)


@pytest.mark.parametrize(
    ("role", "kind"),
    [(role, kind) for role, (kinds, _) in ROLES.items() for kind in kinds],
)
@given(data=st.data())
def test_every_valid_frame_round_trips(role: str, kind: str, data: st.DataObject) -> None:
    kinds, strategies = ROLES[role]
    frame = data.draw(with_unknown_keys(strategies[kind]), label="frame")
    check_frame(frame, kinds)  # the generator only makes valid frames
    wire = encode_frame(frame)
    buffer = FrameBuffer(max_frame_size=len(wire) - PREFIX_SIZE)
    buffer.feed(wire)
    payload = buffer.next_payload()
    assert payload == wire[PREFIX_SIZE:]
    assert buffer.next_payload() is None
    assert len(buffer) == 0
    decoded = decode_payload(payload)
    assert same(decoded, frame), (decoded, frame)
    check_frame(decoded, kinds)
    assert same(decoded, frame), "check_frame changed the frame"


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at ``cuts`` (positions, any order, duplicates ignored); no empty chunk."""
    edges = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


@st.composite
def cut_points(draw: st.DrawFn, size: int) -> list[int]:
    """Where to split a stream of ``size`` bytes: random cuts, every byte, or fixed steps."""
    if size < 2:
        return []
    how = draw(st.sampled_from(["random", "bytewise", "step"]))
    if how == "bytewise":
        return list(range(1, size))
    if how == "step":
        step = draw(st.integers(1, 16))
        return list(range(step, size, step))
    return draw(st.lists(st.integers(1, size - 1), max_size=40))


@given(
    frames=st.lists(
        st.sampled_from(["client", "server"]).flatmap(
            lambda role: st.sampled_from(sorted(ROLES[role][1])).flatmap(
                lambda kind: ROLES[role][1][kind]
            )
        ),
        min_size=1,
        max_size=8,
    ),
    data=st.data(),
)
def test_a_stream_of_frames_round_trips_however_it_is_split(
    frames: list[Frame], data: st.DataObject
) -> None:
    wire = b"".join(encode_frame(f) for f in frames)
    buffer = FrameBuffer(max_frame_size=len(wire))
    payloads: list[bytes] = []
    for chunk in chunked(wire, data.draw(cut_points(len(wire)), label="cuts")):
        buffer.feed(chunk)
        while (payload := buffer.next_payload()) is not None:
            payloads.append(payload)
    assert len(buffer) == 0
    decoded = [decode_payload(p) for p in payloads]
    assert len(decoded) == len(frames)
    assert all(same(d, f) for d, f in zip(decoded, frames, strict=True))


# --- 2. the state table: every State x Input --------------------------------------------


class Pair:
    """Alice's client and its server connection in a room where bob is enabled; ``pending``
    holds the request ids alice has outstanding, by what answers them."""

    def __init__(self) -> None:
        self.room = Room()
        self.bob = self.room.enabled("bob")
        bob_me = self.bob.client.local_participant
        assert bob_me is not None
        self.bob_id = bob_me.id
        self.alice: Peer
        self.pending: dict[str, int] = {}
        self.eof = False  # the transport ended: feeding more is the caller's error

    @property
    def client(self) -> ClientConnection:
        return self.alice.client

    def pump(self) -> None:
        self.room.pump()


def _handshake(p: Pair) -> None:
    # Constructing the client applies HELLO; the server has not seen it yet.
    p.alice = Peer(p.room, "alice", token(name="alice"), None)
    p.room.peers["alice"] = p.alice


def _open(p: Pair) -> None:
    p.alice = p.room.join("alice")


def _open_attrs(p: Pair) -> None:
    _open(p)
    p.pending["reply"] = p.client.set_attributes({"mood": "ok"})


def _enabling(p: Pair) -> None:
    _open(p)
    p.pending["enable"] = p.client.enable()


def _enabling_send(p: Pair) -> None:
    _enabling(p)
    p.pending["reply"] = p.client.broadcast_message("chat", {"n": 1})


def _enabled(p: Pair) -> None:
    _open(p)
    p.client.enable()
    p.pump()


def _enabled_send(p: Pair) -> None:
    _enabled(p)
    p.pending["reply"] = p.client.send_message(p.bob_id, "chat", {"n": 2})


def _disabling(p: Pair) -> None:
    _enabled_send(p)
    p.pending["disable"] = p.client.disable()


def _closing(reach: Callable[[Pair], None]) -> Callable[[Pair], None]:
    def path(p: Pair) -> None:
        reach(p)
        p.client.close()

    path.__name__ = f"closing_after{reach.__name__}"
    return path


def _closed_clean(p: Pair) -> None:
    _open(p)
    p.client.close()
    p.pump()


def _closed_by_server(p: Pair) -> None:
    _enabled(p)
    p.room.server.close()
    p.pump()


def _closed_eof(p: Pair) -> None:
    _enabled(p)
    p.client.receive_data(b"")
    p.eof = True
    assert isinstance(p.client.next_event(p.room.now), ConnectionClosed)


def _closed_timer(p: Pair) -> None:
    _open(p)
    p.client.handle_timer(p.room.now + 10_000)


def _closed_error(p: Pair) -> None:
    _enabled(p)
    p.client.receive_data(encode_frame({"t": "no-such-kind"}))
    with pytest.raises(RemoteProtocolError):
        p.client.next_event(p.room.now)


PATHS: dict[State, list[Callable[[Pair], None]]] = {
    State.HANDSHAKE: [_handshake],
    State.OPEN: [_open, _open_attrs],
    State.ENABLING: [_enabling, _enabling_send],
    State.ENABLED: [_enabled, _enabled_send],
    State.DISABLING: [_disabling],
    State.CLOSING: [
        _closing(reach) for reach in (_handshake, _open_attrs, _enabling_send, _enabled_send)
    ]
    + [_closing(_disabling)],
    State.CLOSED: [_closed_clean, _closed_by_server, _closed_eof, _closed_timer, _closed_error],
}
"""Ways to bring alice's client into each state, through the public API only."""


@functools.cache
def _offers(path: Callable[[Pair], None], need: str) -> bool:
    """Whether ``path`` leaves a request of kind ``need`` outstanding."""
    probe = Pair()
    path(probe)
    return need in probe.pending


# Verbs: inputs the client applies when its user calls it.
def _verb_enable(p: Pair, data: st.DataObject) -> None:
    p.client.enable(presence=data.draw(st.booleans(), label="presence"))


def _verb_disable(p: Pair, data: st.DataObject) -> None:
    p.client.disable()


def _verb_send(p: Pair, data: st.DataObject) -> None:
    if data.draw(st.booleans(), label="broadcast"):
        p.client.broadcast_message("chat", {"x": 1}, attachment=b"\x00")
    else:
        p.client.send_message([p.bob_id], "chat", {"x": 1})


def _verb_attributes(p: Pair, data: st.DataObject) -> None:
    p.client.set_attributes({"n": data.draw(st.integers(0, 9), label="n")})


def _verb_history(p: Pair, data: st.DataObject) -> None:
    p.client.history(limit=data.draw(st.integers(1, 100), label="limit"))


def _verb_refresh(p: Pair, data: st.DataObject) -> None:
    p.client.refresh_token(data.draw(st.sampled_from(["a.b.c", "x"]), label="token"))


def _verb_service(p: Pair, data: st.DataObject) -> None:
    p.client.attach_service()


def _verb_close(p: Pair, data: st.DataObject) -> None:
    p.client.close(data.draw(st.sampled_from([Code.NORMAL, Code.GOING_AWAY])), "bye")


def _verb_call(p: Pair, data: st.DataObject) -> None:
    p.client.call(p.bob_id, "f", {"n": data.draw(st.integers(0, 9), label="n")})


def _verb_answer(p: Pair, data: st.DataObject) -> None:
    p.client.answer(data.draw(st.sampled_from(["c1", "c2"]), label="call"), {})


def _verb_stream(p: Pair, data: st.DataObject) -> None:
    if data.draw(st.booleans(), label="open"):
        p.client.open_stream(p.bob_id, {})
    else:
        p.client.accept_stream("s1")


def _verb_stream_data(p: Pair, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["chunk", "credit", "end", "abort"]), label="kind")
    if kind == "chunk":
        p.client.send_chunk("s1", b"x")
    elif kind == "credit":
        p.client.grant_credit("s1", 1)
    elif kind == "end":
        p.client.end_stream("s1")
    else:
        p.client.abort_stream("s1", "r")


def _verb_cancel(p: Pair, data: st.DataObject) -> None:
    p.client.cancel_call(data.draw(st.integers(1, 9), label="rid"))


VERBS: dict[Input, Callable[[Pair, st.DataObject], None]] = {
    Input.ENABLE: _verb_enable,
    Input.DISABLE: _verb_disable,
    Input.SEND: _verb_send,
    Input.ATTRIBUTES: _verb_attributes,
    Input.HISTORY: _verb_history,
    Input.REFRESH: _verb_refresh,
    Input.LOCAL_CLOSE: _verb_close,
    Input.CALL: _verb_call,
    Input.ANSWER: _verb_answer,
    Input.CANCEL: _verb_cancel,
    Input.STREAM: _verb_stream,
    Input.STREAM_DATA: _verb_stream_data,
    Input.SERVICE: _verb_service,
}


# Received inputs: the frame a server would send for them. A reply names the outstanding
# request of the right kind, or request 999 (never used) when there is none.
def _participant(pid: str) -> Frame:
    return {"id": pid, "name": pid, "role": "user", "attributes": {}}


def _welcome(p: Pair, data: st.DataObject) -> Frame:
    limits = dict.fromkeys(LIMIT_FIELDS, 4096)
    return {
        "t": "welcome",
        "v": PROTOCOL_VERSION,
        "room": "demo",
        "participant": _participant("me"),
        "limits": limits,
        "hb": 25,
        "hbt": 10,
    }


def _snapshot(more: bool) -> Callable[[Pair, st.DataObject], Frame]:
    def frame(p: Pair, data: st.DataObject) -> Frame:
        extra = data.draw(st.lists(st.sampled_from(["zed", "ann"]), unique=True), label="page")
        return {
            "t": "snapshot",
            "rid": p.pending.get("enable", 999),
            "more": more,
            "participants": [_participant(pid) for pid in extra],
        }

    return frame


def _enable_refused(p: Pair, data: st.DataObject) -> Frame:
    rid = p.pending.get("enable", 999)
    return {"t": "error", "rid": rid, "code": int(Code.FORBIDDEN_LIST), "reason": "no list"}


def _disable_ack(p: Pair, data: st.DataObject) -> Frame:
    return {"t": "ack", "rid": p.pending.get("disable", 999)}


def _reply(p: Pair, data: st.DataObject) -> Frame:
    rid = p.pending.get("reply", 999)
    if data.draw(st.booleans(), label="refused"):
        return {"t": "error", "rid": rid, "code": int(Code.NOT_FOUND), "reason": "gone"}
    return {"t": "ack", "rid": rid, "id": "m1"}


def _delivery(p: Pair, data: st.DataObject) -> Frame:
    if data.draw(st.booleans(), label="presence"):
        return {"t": "joined", "seq": 50, "p": _participant("zed")}
    return {
        "t": "msg",
        "id": "m9",
        "seq": 51,
        "ts": 1000.5,
        "from": p.bob_id,
        "type": "chat",
        "message": {"hi": True},
        "bc": False,
    }


def _heartbeat(p: Pair, data: st.DataObject) -> Frame:
    return {"t": data.draw(st.sampled_from(["ping", "pong"]), label="kind")}


def _peer_close(p: Pair, data: st.DataObject) -> Frame:
    return {"t": "close", "code": int(Code.GOING_AWAY), "reason": "server shutting down"}


def _hello(p: Pair, data: st.DataObject) -> Frame:
    return {"t": "hello", "v": PROTOCOL_VERSION, "token": "x"}


def _stream_event(p: Pair, data: st.DataObject) -> Frame:
    if data.draw(st.booleans(), label="credit"):
        return {"t": "credit", "sid": "s1", "n": 5}
    return {"t": "abort", "sid": "s1", "code": int(Code.STREAM_ABORTED), "reason": "r"}


RECEIVED: dict[Input, Callable[[Pair, st.DataObject], Frame]] = {
    Input.WELCOME: _welcome,
    Input.SNAPSHOT_PAGE: _snapshot(more=True),
    Input.SNAPSHOT_END: _snapshot(more=False),
    Input.ENABLE_REFUSED: _enable_refused,
    Input.DISABLE_ACK: _disable_ack,
    Input.REPLY: _reply,
    Input.DELIVERY: _delivery,
    Input.HEARTBEAT: _heartbeat,
    Input.PEER_CLOSE: _peer_close,
    Input.STREAM_EVENT: _stream_event,
}

NEEDS = {
    Input.SNAPSHOT_PAGE: "enable",
    Input.SNAPSHOT_END: "enable",
    Input.ENABLE_REFUSED: "enable",
    Input.DISABLE_ACK: "disable",
    Input.REPLY: "reply",
}
"""Received inputs that only exist as the answer to an outstanding request."""


def test_the_state_table_inputs_are_all_covered() -> None:
    # HELLO and ABORT are applied by hand in the test below.
    assert set(VERBS) | set(RECEIVED) | {Input.HELLO, Input.ABORT} == set(Input)
    assert not set(VERBS) & set(RECEIVED)
    assert {state for state, _ in TRANSITIONS} | {State.CLOSED} == set(PATHS)


def _paths_for(state: State, event: Input) -> list[Callable[[Pair], None]]:
    paths = PATHS[state]
    need = NEEDS.get(event)
    if (state, event) in TRANSITIONS and need is not None:
        paths = [path for path in paths if _offers(path, need)]
    return paths


def _expect_close_queued(
    conn: ClientConnection | ServerConnection, exc: RemoteProtocolError
) -> None:
    frames = decode_frames(conn.data_to_send())
    assert frames, "no close frame was queued"
    close = frames[-1]
    assert close == {"t": "close", "code": int(exc.code), "reason": exc.reason}
    assert exc.reason
    assert conn.state is State.CLOSED


@pytest.mark.parametrize("event", list(Input), ids=lambda i: i.name)
@pytest.mark.parametrize("state", list(State), ids=lambda s: s.name)
@settings(max_examples=12, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_client_state_x_input(state: State, event: Input, data: st.DataObject) -> None:
    """Drive alice's client into ``state`` and apply ``event``: a verb, a received frame, the
    constructor (HELLO) or an abort (EOF or a timer)."""
    paths = _paths_for(state, event)
    assert paths, f"no way to reach {state.name} with what {event.name} answers"
    path = data.draw(st.sampled_from(paths), label="path")
    p = Pair()
    path(p)
    client = p.client
    assert client.state is state
    allowed = (state, event) in TRANSITIONS
    expected = TRANSITIONS.get((state, event))
    now = p.room.now

    if event is Input.HELLO and state is State.HANDSHAKE:
        # The client applies HELLO once, in its constructor, and queues the hello frame.
        assert allowed
        assert client.state is expected
        assert [f["t"] for f in decode_frames(client.data_to_send())] == ["hello"]
        return

    client.data_to_send()  # start from an empty outbound buffer

    if event is Input.ABORT:
        if data.draw(st.booleans(), label="by timer"):
            client.handle_timer(now + 10_000)
        elif p.eof:
            with pytest.raises(LocalProtocolError):
                client.receive_data(b"")
        else:
            client.receive_data(b"")
        if state is not State.CLOSED:
            assert allowed
            assert isinstance(client.next_event(now), ConnectionClosed)
        assert client.state is State.CLOSED
        return

    if event in VERBS:
        before = client.outbound_size
        if allowed:
            VERBS[event](p, data)
            assert client.state is expected
            assert client.outbound_size > before
        else:
            with pytest.raises(LocalProtocolError):
                VERBS[event](p, data)
            assert client.state is state, "a refused verb changed the state"
            assert client.outbound_size == before, "a refused verb queued bytes"
        return

    frame = (RECEIVED.get(event) or _hello)(p, data)
    if state is State.CLOSED:
        # Nothing is accepted after CLOSED: bytes are discarded and the close is repeated
        # (after an EOF, feeding bytes at all is the caller's error).
        if p.eof:
            with pytest.raises(LocalProtocolError):
                client.receive_data(encode_frame(frame))
        else:
            client.receive_data(encode_frame(frame))
        assert isinstance(client.next_event(now), ConnectionClosed)
        assert client.state is State.CLOSED
        assert client.data_to_send() == b""
        return
    client.receive_data(encode_frame(frame))
    if allowed:
        events = []
        while (item := client.next_event(now)) is not NEED_DATA:
            events.append(item)
            if isinstance(item, ConnectionClosed):
                break
        assert len(events) <= 1
        assert client.state is expected
        return
    with pytest.raises(RemoteProtocolError) as caught:
        client.next_event(now)
    # A hello is no frame a server sends at all; everything else is a known kind out of turn.
    want = Code.BAD_FRAME if event is Input.HELLO else Code.PROTOCOL_ERROR
    assert caught.value.code is want
    _expect_close_queued(client, caught.value)


# The same table, seen from the server: the inputs a server receives, in the states a server
# connection can be observed in (it passes through ENABLING and DISABLING inside one frame and
# never closes cleanly from its side, so it is never seen in CLOSING).

SERVER_STATES = [State.HANDSHAKE, State.OPEN, State.ENABLED, State.CLOSED]
SERVER_INPUTS = [
    Input.HELLO,
    Input.ENABLE,
    Input.DISABLE,
    Input.SEND,
    Input.ATTRIBUTES,
    Input.HEARTBEAT,
    Input.PEER_CLOSE,
    Input.ABORT,
]
REQUESTS = {Input.ENABLE, Input.DISABLE, Input.SEND, Input.ATTRIBUTES}
AUTOMATIC = {
    Input.HELLO: Input.WELCOME,
    Input.ENABLE: Input.SNAPSHOT_END,
    Input.DISABLE: Input.DISABLE_ACK,
}
"""The server answers these at once, and its answer is a transition of its own."""


class ServerSide:
    """Mallory's server connection, fed hand-built frames, in a room where bob is enabled."""

    def __init__(self) -> None:
        self.room = Room()
        self.bob = self.room.enabled("bob")
        bob_me = self.bob.client.local_participant
        assert bob_me is not None
        self.bob_id = bob_me.id
        self.conn = self.room.server.accept("mallory", self.room.now)
        self.now = self.room.now
        self.eof = False

    def feed(self, frame: Frame) -> list[Event]:
        self.conn.receive_data(encode_frame(frame))
        return list(drain(self.conn, self.now))


def _server_reach(side: ServerSide, state: State, data: st.DataObject) -> None:
    if state is State.HANDSHAKE:
        return
    side.feed({"t": "hello", "v": PROTOCOL_VERSION, "token": token(name="mallory")})
    if state is State.ENABLED:
        side.feed({"t": "enable", "rid": 1})
    if state is State.CLOSED:
        how = data.draw(st.sampled_from(["close", "eof", "garbage", "shutdown"]), label="how")
        if how == "close":
            side.feed({"t": "close", "code": 1000, "reason": ""})
        elif how == "eof":
            side.conn.receive_data(b"")
            side.eof = True
            list(drain(side.conn, side.now))
        elif how == "garbage":
            side.conn.receive_data(b"\x00\x00\x00\x01\xff")
            with pytest.raises(RemoteProtocolError):
                side.conn.next_event(side.now)
        else:
            side.room.server.close()
    side.conn.data_to_send()


def _server_frame(side: ServerSide, event: Input, data: st.DataObject) -> Frame:
    """The frame a client sends for ``event`` (request id 7)."""
    if event is Input.HELLO:
        return {"t": "hello", "v": PROTOCOL_VERSION, "token": token(name="mallory")}
    if event is Input.ENABLE:
        return {"t": "enable", "rid": 7, "presence": data.draw(st.booleans(), label="presence")}
    if event is Input.DISABLE:
        return {"t": "disable", "rid": 7}
    if event is Input.SEND:
        if data.draw(st.booleans(), label="broadcast"):
            return {"t": "broadcast", "rid": 7, "type": "x", "message": {}, "att": b"1"}
        return {"t": "send", "rid": 7, "to": [side.bob_id], "type": "x", "message": {}}
    if event is Input.ATTRIBUTES:
        return {"t": "attrs", "rid": 7, "attributes": {"a": 1}}
    if event is Input.HEARTBEAT:
        return {"t": data.draw(st.sampled_from(["ping", "pong"]), label="kind")}
    assert event is Input.PEER_CLOSE
    return {"t": "close", "code": 1000, "reason": "bye"}


@pytest.mark.parametrize("event", SERVER_INPUTS, ids=lambda i: i.name)
@pytest.mark.parametrize("state", SERVER_STATES, ids=lambda s: s.name)
@settings(max_examples=8)
@given(data=st.data())
def test_server_state_x_input(state: State, event: Input, data: st.DataObject) -> None:
    side = ServerSide()
    _server_reach(side, state, data)
    conn = side.conn
    assert conn.state is state
    if event is Input.ABORT:
        if data.draw(st.booleans(), label="by timer"):
            side.room.server.handle_timer(side.now + 10_000)
        elif side.eof:
            with pytest.raises(LocalProtocolError):
                conn.receive_data(b"")
        else:
            conn.receive_data(b"")
        assert state is State.CLOSED or (state, event) in TRANSITIONS
        assert isinstance(conn.next_event(side.now), ConnectionClosed)
        assert conn.state is State.CLOSED
        return
    frame = _server_frame(side, event, data)
    if state is State.CLOSED:
        if side.eof:
            with pytest.raises(LocalProtocolError):
                conn.receive_data(encode_frame(frame))
        else:
            conn.receive_data(encode_frame(frame))
        assert isinstance(conn.next_event(side.now), ConnectionClosed)
        assert conn.data_to_send() == b""
        return
    allowed = (state, event) in TRANSITIONS
    if allowed:
        expected = TRANSITIONS[(state, event)]
        if event in AUTOMATIC:
            expected = TRANSITIONS[(expected, AUTOMATIC[event])]
        events = side.feed(frame)
        assert conn.state is expected
        assert not any(isinstance(e, RequestRefused) for e in events), events
        kinds = {
            Input.HELLO: ParticipantJoined,
            Input.ENABLE: ParticipantEnabled,
            Input.DISABLE: ParticipantDisabled,
            Input.SEND: MessageRouted,
        }
        if event in kinds:
            assert [type(e) for e in events] == [kinds[event]]
        return
    if event in REQUESTS and state is not State.HANDSHAKE:
        # After the handshake a request out of turn is refused; the connection stays.
        events = side.feed(frame)
        assert events == [
            RequestRefused(request_id=7, code=Code.INVALID_STATE, reason=events[0].reason)
        ]
        assert conn.state is state
        assert decode_frames(conn.data_to_send())[-1]["t"] == "error"
        return
    conn.receive_data(encode_frame(frame))
    with pytest.raises(RemoteProtocolError) as caught:
        conn.next_event(side.now)
    assert caught.value.code is Code.PROTOCOL_ERROR
    _expect_close_queued(conn, caught.value)


# --- 3. any split of a valid stream gives the same events -------------------------------

TYPES = st.text(min_size=1, max_size=8)
SMALL_JSON = st.dictionaries(st.text(max_size=6), JSON, max_size=3)
SMALL_ATT = st.none() | st.binary(max_size=40)


class Tap:
    """Wraps a ClientConnection inside a Room and records the bytes it sends and receives."""

    def __init__(self, client: ClientConnection) -> None:
        self.client = client
        self.sent = bytearray()
        self.received = bytearray()

    def data_to_send(self) -> bytes:
        data = self.client.data_to_send()
        self.sent += data
        return data

    def receive_data(self, data: bytes) -> None:
        self.received += data
        self.client.receive_data(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def tapped(room: Room, name: str) -> tuple[Peer, Tap]:
    """Join ``name`` with a Tap around its client (the welcome is in when this returns)."""
    peer = Peer(room, name, token(name=name), None)
    tap = Tap(peer.client)
    peer.client = tap  # type: ignore[assignment]
    room.peers[name] = peer
    room.pump()
    return peer, tap


CLIENT_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("enable"), st.booleans()),
        st.tuples(st.just("disable")),
        st.tuples(
            st.just("send"),
            st.lists(st.sampled_from(["bob", "carol", "ghost"]), min_size=1, max_size=3),
            TYPES,
            SMALL_JSON,
            SMALL_ATT,
        ),
        st.tuples(st.just("broadcast"), TYPES, SMALL_JSON, SMALL_ATT),
        st.tuples(st.just("attrs"), SMALL_JSON),
        st.tuples(st.just("pump")),
        st.tuples(st.just("tick")),
    ),
    max_size=12,
)


def _ids(room: Room) -> dict[str, str]:
    ids = {"ghost": "nobody-has-this-id"}
    for name, peer in room.peers.items():
        me = peer.client.local_participant
        if me is not None:
            ids[name] = me.id
    return ids


def _background(room: Room) -> None:
    room.enabled("bob")
    room.enabled("carol")


def record_client_stream(
    ops: list[tuple[Any, ...]], close: bool, enable_first: bool
) -> tuple[bytes, list[Event]]:
    """Alice's bytes from a live session (and her server connection's events)."""
    room = Room()
    _background(room)
    alice, tap = tapped(room, "alice")
    ids = _ids(room)
    client = tap.client
    if enable_first:
        client.enable()
    for op in ops:
        try:
            if op[0] == "enable":
                client.enable(presence=op[1])
            elif op[0] == "disable":
                client.disable()
            elif op[0] == "send":
                client.send_message([ids[n] for n in op[1]], op[2], op[3], op[4])
            elif op[0] == "broadcast":
                client.broadcast_message(op[1], op[2], op[3])
            elif op[0] == "attrs":
                client.set_attributes(op[1])
            elif op[0] == "tick":
                room.advance(room.server.config.heartbeat_interval)
            else:
                room.pump()
        except LocalProtocolError:
            pass  # not allowed in alice's state right now: she does not send it
    room.pump()
    if close:
        client.close()
        room.pump()
    return bytes(tap.sent), alice.server_events


def replay_to_server(stream: bytes, cuts: list[int]) -> tuple[list[Event], dict[str, bytes]]:
    """Feed alice's stream to a fresh server (same room, same ids), then EOF."""
    room = Room()
    _background(room)
    conn = room.server.accept("alice", room.now)
    events: list[Event] = []
    out: dict[str, bytearray] = {"alice": bytearray(), "bob": bytearray(), "carol": bytearray()}
    for chunk in [*chunked(stream, cuts), b""]:
        conn.receive_data(chunk)
        events.extend(drain(conn, room.now))
        out["alice"] += conn.data_to_send()
        for name in ("bob", "carol"):
            out[name] += room.peers[name].server.data_to_send()
    return events, {name: bytes(data) for name, data in out.items()}


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(ops=CLIENT_OPS, close=st.booleans(), enable_first=st.booleans(), data=st.data())
def test_client_bytes_split_anyhow_give_the_server_the_same_events(
    ops: list[tuple[Any, ...]], close: bool, enable_first: bool, data: st.DataObject
) -> None:
    stream, live_events = record_client_stream(ops, close, enable_first)
    for kind in sorted({frame["t"] for frame in decode_frames(stream)}):
        event(f"alice sends {kind!r}")
    whole_events, whole_out = replay_to_server(stream, [])
    cuts = data.draw(cut_points(len(stream)), label="cuts")
    split_events, split_out = replay_to_server(stream, cuts)
    assert split_events == whole_events
    assert split_out == whole_out
    # The replay is the live session again (up to the EOF that ends the replay).
    assert whole_events[: len(once(live_events))] == once(live_events)
    assert not any(
        isinstance(e, RequestRefused) and e.code is Code.INVALID_STATE for e in whole_events
    )


# (b) what a server sends to a client.

OTHER = st.fixed_dictionaries(
    {"bio": (st.just(0) | st.integers(500, 950)).map(lambda n: "b" * n), "n": st.integers(0, 9)}
)
ROOM_ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(0, 5), SMALL_JSON, SMALL_ATT),
        st.tuples(st.just("broadcast"), st.integers(0, 5), SMALL_JSON, SMALL_ATT),
        st.tuples(st.just("attrs"), st.integers(0, 5), st.integers(0, 9)),
        st.tuples(st.just("disable"), st.integers(0, 5)),
        st.tuples(st.just("enable"), st.integers(0, 5)),
        st.tuples(st.just("leave"), st.integers(0, 5)),
        st.tuples(st.just("join")),
        st.tuples(st.just("tick")),
        st.tuples(st.just("carol-send"), st.booleans(), SMALL_JSON),
        st.tuples(st.just("carol-attrs"), SMALL_JSON),
        st.tuples(st.just("carol-disable")),
        st.tuples(st.just("carol-enable")),
    ),
    max_size=14,
)

Schedule = list[tuple[int, str, tuple[Any, ...]]]


def record_server_stream(
    others: list[dict[str, Any]], actions: list[tuple[Any, ...]], shutdown: bool
) -> tuple[bytes, Schedule, list[Event]]:
    """Carol's received bytes from a live session in a room with small frames (so snapshots
    come in pages), with the verbs she called and after how many of her events."""
    room = Room(max_frame_size=2100)
    names = []
    for i, attributes in enumerate(others):
        peer = room.enabled(f"p{i}")
        peer.client.set_attributes(attributes)
        room.pump()
        names.append(f"p{i}")
    carol, tap = tapped(room, "carol")
    schedule: Schedule = []

    def call(verb: str, *args: Any) -> None:
        try:
            getattr(tap.client, verb)(*args)
        except LocalProtocolError:
            return
        schedule.append((len(carol.events), verb, args))

    ids = _ids(room)
    call("enable")
    call("send_message", [ids.get("p0", "ghost"), "ghost"], "hi", {"a": 1})
    call("broadcast_message", "hey", {"b": [1, 2]}, b"\x01\x02")
    call("set_attributes", {"mood": "curious"})
    room.pump()
    for action in actions:
        kind = action[0]
        if kind.startswith("carol-"):
            ids = _ids(room)
            if kind == "carol-send":
                present = [p.id for p in tap.client.remote_participants]
                to = present[:1] if action[1] and present else ["ghost"]
                call("send_message", to, "note", action[2])
            elif kind == "carol-attrs":
                call("set_attributes", action[1])
            elif kind == "carol-disable":
                call("disable")
            else:
                call("enable")
        elif kind == "join":
            names.append(name := f"p{len(names)}")
            room.enabled(name)
        elif kind == "tick":
            room.advance(room.server.config.heartbeat_interval)
        elif names:
            other = room.peers[names[action[1] % len(names)]].client
            carol_id = ids.get("carol", "ghost")
            try:
                if kind == "send":
                    other.send_message(carol_id, "dm", action[2], action[3])
                elif kind == "broadcast":
                    other.broadcast_message("all", action[2], action[3])
                elif kind == "attrs":
                    other.set_attributes({"n": action[2]})
                elif kind == "disable":
                    other.disable()
                elif kind == "enable":
                    other.enable()
                else:
                    other.close()
            except LocalProtocolError:
                pass
        room.pump()
    if shutdown:
        room.server.close()
        room.pump()
    return bytes(tap.received), schedule, carol.events


def replay_to_client(
    stream: bytes, schedule: Schedule, cuts: list[int]
) -> tuple[list[Event], bytes]:
    """Feed carol's stream to a fresh client, calling her verbs after the same events."""
    client = ClientConnection(token=token(name="carol"), now=1000.0)
    events: list[Event] = []
    out = bytearray(client.data_to_send())
    todo = list(schedule)

    def run_verbs() -> None:
        while todo and todo[0][0] == len(events):
            _, verb, args = todo.pop(0)
            getattr(client, verb)(*args)

    for chunk in chunked(stream, cuts):
        client.receive_data(chunk)
        while (event := client.next_event(1000.0)) is not NEED_DATA:
            assert isinstance(event, Event)
            events.append(event)
            run_verbs()
            out += client.data_to_send()
            if isinstance(event, ConnectionClosed):
                break
        out += client.data_to_send()
    assert not todo, "a verb was never reached"
    return events, bytes(out)


def once(events: list[Event]) -> list[Event]:
    """``events`` up to the first ConnectionClosed (later ones repeat it)."""
    for i, item in enumerate(events):
        if isinstance(item, ConnectionClosed):
            assert all(e == item for e in events[i:])
            return events[: i + 1]
    return events


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(
    others=st.lists(OTHER, max_size=6),
    actions=ROOM_ACTIONS,
    shutdown=st.booleans(),
    data=st.data(),
)
def test_server_bytes_split_anyhow_give_the_client_the_same_events(
    others: list[dict[str, Any]],
    actions: list[tuple[Any, ...]],
    shutdown: bool,
    data: st.DataObject,
) -> None:
    stream, schedule, live_events = record_server_stream(others, actions, shutdown)
    kinds = [frame["t"] for frame in decode_frames(stream)]
    for kind in sorted(set(kinds)):
        event(f"carol receives {kind!r}")
    event(f"snapshot pages: {min(kinds.count('snapshot'), 3)}+")
    whole_events, whole_out = replay_to_client(stream, schedule, [])
    cuts = data.draw(cut_points(len(stream)), label="cuts")
    split_events, split_out = replay_to_client(stream, schedule, cuts)
    assert split_events == whole_events
    assert split_out == whole_out
    # The replay is the live session again (whose harness re-reads the final close each round).
    assert whole_events == once(live_events)
