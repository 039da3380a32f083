"""The client fed hand-built server frames: every kind, every malformation, every frame that is
not allowed where it arrives. A RemoteProtocolError always comes with a close frame queued,
the state CLOSED, and ConnectionClosed from every later ``next_event``."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import cbor2
import pytest

from roomwire import (
    NEED_DATA,
    ClientConfig,
    Code,
    LocalProtocolError,
    RemoteParticipant,
    RemoteProtocolError,
    RoomMessage,
    State,
)
from roomwire.events import (
    Connected,
    ConnectionClosed,
    Event,
    MessageReceived,
    MessagingDisabled,
    MessagingEnabled,
    ParticipantAdded,
    ParticipantRemoved,
    ParticipantUpdated,
    RequestAcked,
    RequestRefused,
)
from roomwire.frames import HEADER, MAX_DEPTH, encode_frame

from .helpers import WIRE_LIMITS, LoneClient, welcome_frame, wire_participant

P1 = wire_participant("p1", "bob")
P2 = wire_participant("p2", "carol", mood="calm")
MSG = {
    "t": "msg",
    "id": "m1",
    "seq": 7,
    "ts": 1500,
    "from": "p1",
    "type": "chat",
    "message": {"text": "hi"},
    "bc": False,
}


def remote(p: dict[str, Any]) -> RemoteParticipant:
    return RemoteParticipant(**p)


def raw(payload: bytes) -> bytes:
    """A frame around any payload (for bodies ``encode_frame`` cannot make)."""
    return len(payload).to_bytes(4, "big") + payload


def expect_remote_error(lone: LoneClient, code: Code, reason: str | None = None) -> str:
    """The next event is a RemoteProtocolError: check everything that must go with it."""
    with pytest.raises(RemoteProtocolError, match=reason) as info:
        lone.client.next_event(lone.now)
    error = info.value
    assert error.code is code
    assert lone.sent()[-1] == {"t": "close", "code": int(code), "reason": error.reason}
    assert lone.client.state is State.CLOSED
    closed = ConnectionClosed(code=code, reason=error.reason, by_peer=False)
    assert lone.client.next_event(lone.now) == closed
    assert lone.client.next_event(lone.now + 1) == closed
    assert lone.client.next_deadline() is None
    return error.reason


# --- states a lone client is brought to ---------------------------------------------------


def handshake() -> LoneClient:
    return LoneClient()


def opened() -> LoneClient:
    return LoneClient().open()


def enabling() -> LoneClient:
    lone = opened()
    assert lone.client.enable() == 1
    lone.sent()
    return lone


def enabled() -> LoneClient:
    """Enabled with P1 present."""
    return LoneClient().enable(P1)


def sending() -> LoneClient:
    """Enabled with P1 present and send 2 waiting for its answer."""
    lone = enabled()
    assert lone.client.send_message("p1", "chat", {}) == 2
    lone.sent()
    return lone


def disabling() -> LoneClient:
    lone = enabled()
    assert lone.client.disable() == 2
    lone.sent()
    return lone


def after_left() -> LoneClient:
    """Enabled; P1 was present and has left."""
    lone = enabled()
    lone.feed({"t": "left", "seq": 8, "id": "p1"})
    assert [type(e) for e in lone.events()] == [ParticipantRemoved]
    return lone


def closing(setup: Callable[[], LoneClient]) -> Callable[[], LoneClient]:
    def make() -> LoneClient:
        lone = setup()
        lone.client.close(Code.GOING_AWAY, "leaving")
        assert lone.sent() == [{"t": "close", "code": 1001, "reason": "leaving"}]
        return lone

    return make


# --- every server frame kind, accepted ------------------------------------------------------

ACCEPTED: dict[str, tuple[Callable[[], LoneClient], dict[str, Any], Event | None]] = {
    "snapshot": (
        enabling,
        {"t": "snapshot", "rid": 1, "more": False, "participants": [P1, P2]},
        MessagingEnabled(request_id=1, participants=(remote(P1), remote(P2))),
    ),
    "ack send": (
        sending,
        {"t": "ack", "rid": 2, "id": "m9"},
        RequestAcked(request_id=2, message_id="m9"),
    ),
    "ack disable": (disabling, {"t": "ack", "rid": 2}, MessagingDisabled(request_id=2)),
    "error": (
        sending,
        {"t": "error", "rid": 2, "code": 4040, "reason": "gone"},
        RequestRefused(request_id=2, code=Code.NOT_FOUND, reason="gone"),
    ),
    "msg": (
        enabled,
        MSG,
        MessageReceived(
            message=RoomMessage(
                id="m1",
                seq=7,
                timestamp=1500.0,
                from_participant_id="p1",
                type="chat",
                message={"text": "hi"},
                attachment=None,
                broadcast=False,
            )
        ),
    ),
    "msg in DISABLING": (
        disabling,
        {**MSG, "att": b"\x00", "bc": True, "ts": 2.5},
        MessageReceived(
            message=RoomMessage(
                id="m1",
                seq=7,
                timestamp=2.5,
                from_participant_id="p1",
                type="chat",
                message={"text": "hi"},
                attachment=b"\x00",
                broadcast=True,
            )
        ),
    ),
    "joined": (
        enabled,
        {"t": "joined", "seq": 8, "p": P2},
        ParticipantAdded(participant=remote(P2), seq=8),
    ),
    "updated": (
        enabled,
        {"t": "updated", "seq": 8, "p": {**P1, "attributes": {"k": [1]}}},
        ParticipantUpdated(participant=remote({**P1, "attributes": {"k": [1]}}), seq=8),
    ),
    "left": (
        enabled,
        {"t": "left", "seq": 8, "id": "p1"},
        ParticipantRemoved(participant=remote(P1), seq=8),
    ),
    "left in DISABLING": (
        disabling,
        {"t": "left", "seq": 8, "id": "p1"},
        ParticipantRemoved(participant=remote(P1), seq=8),
    ),
    "close": (
        sending,
        {"t": "close", "code": 3003, "reason": "too slow"},
        ConnectionClosed(code=Code.SLOW_CONSUMER, reason="too slow", by_peer=True),
    ),
    "ping": (opened, {"t": "ping"}, None),
    "pong": (enabled, {"t": "pong"}, None),
}


@pytest.mark.parametrize(("setup", "frame", "event"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_every_server_frame_kind_is_accepted_where_it_belongs(
    setup: Callable[[], LoneClient], frame: dict[str, Any], event: Event | None
) -> None:
    lone = setup()
    lone.feed(frame)
    expected = NEED_DATA if event is None else event
    assert lone.client.next_event(lone.now) == expected


def test_presence_view_follows_the_diffs() -> None:
    lone = enabled()
    assert lone.client.remote_participants == [remote(P1)]
    lone.feed(
        {"t": "joined", "seq": 8, "p": P2},
        {"t": "updated", "seq": 9, "p": {**P1, "name": "robert"}},
        {"t": "left", "seq": 10, "id": "p2"},
    )
    assert len(lone.events()) == 3
    assert lone.client.remote_participants == [remote({**P1, "name": "robert"})]
    assert lone.client.get_participant_by_name("robert") == remote({**P1, "name": "robert"})
    assert lone.client.get_participant("p2") is None


def test_disable_ack_clears_presence() -> None:
    lone = disabling()
    assert lone.client.remote_participants == [remote(P1)]
    lone.feed({"t": "ack", "rid": 2})
    assert lone.events() == [MessagingDisabled(request_id=2)]
    assert (lone.client.state, lone.client.remote_participants) == (State.OPEN, [])


def test_a_paged_snapshot_gives_one_event_after_the_last_page() -> None:
    lone = enabling()
    lone.feed({"t": "snapshot", "rid": 1, "more": True, "participants": [P1]})
    assert lone.client.next_event(lone.now) is NEED_DATA
    assert (lone.client.state, lone.client.remote_participants) == (State.ENABLING, [])
    lone.feed(
        {"t": "snapshot", "rid": 1, "more": True, "participants": []},
        {"t": "snapshot", "rid": 1, "more": False, "participants": [P2]},
    )
    assert lone.events() == [MessagingEnabled(request_id=1, participants=(remote(P1), remote(P2)))]
    assert lone.client.remote_participants == [remote(P1), remote(P2)]


def test_a_refused_enable_forgets_the_pages_already_received() -> None:
    lone = enabling()
    lone.feed(
        {"t": "snapshot", "rid": 1, "more": True, "participants": [P1]},
        {"t": "error", "rid": 1, "code": 4032, "reason": "no"},
    )
    assert lone.events() == [RequestRefused(request_id=1, code=Code.FORBIDDEN_LIST, reason="no")]
    assert lone.client.state is State.OPEN
    assert lone.client.enable() == 2
    lone.feed({"t": "snapshot", "rid": 2, "more": False, "participants": [P2]})
    assert lone.events() == [MessagingEnabled(request_id=2, participants=(remote(P2),))]


def test_sends_are_pipelined_and_answered_in_any_order() -> None:
    lone = enabled()
    rids = [lone.client.send_message("p1", "chat", {"n": n}) for n in range(3)]
    lone.feed(
        {"t": "ack", "rid": rids[2], "id": "c"},
        {"t": "error", "rid": rids[0], "code": 4000, "reason": "bad"},
        {"t": "ack", "rid": rids[1], "id": "b"},
    )
    assert lone.events() == [
        RequestAcked(request_id=rids[2], message_id="c"),
        RequestRefused(request_id=rids[0], code=Code.INVALID_REQUEST, reason="bad"),
        RequestAcked(request_id=rids[1], message_id="b"),
    ]
    lone.feed({"t": "ack", "rid": rids[1], "id": "b"})  # answered once only
    expect_remote_error(lone, Code.PROTOCOL_ERROR, f"unknown request {rids[1]}")


def test_any_split_of_the_stream_gives_the_same_events() -> None:
    frames: list[dict[str, Any]] = [
        {"t": "joined", "seq": 8, "p": P2},
        {"t": "ping"},
        {**MSG, "att": b"\xff" * 10},
        {"t": "updated", "seq": 9, "p": P1},
        {"t": "left", "seq": 10, "id": "p2"},
        {"t": "close", "code": 1000, "reason": "done"},
    ]
    whole = enabled()
    whole.feed(*frames)
    expected, replies = whole.events(), whole.sent()
    assert len(expected) == 5
    assert replies == [{"t": "pong"}, {"t": "close", "code": 1000, "reason": "done"}]
    data = b"".join(encode_frame(f) for f in frames)
    for step in (1, 3, 7):
        lone = enabled()
        events = []
        for start in range(0, len(data), step):
            lone.client.receive_data(data[start : start + step])
            events.extend(lone.events())
        assert events == expected
        assert lone.sent() == replies


def test_a_ping_is_answered_with_a_pong_and_a_pong_with_nothing() -> None:
    lone = opened()
    lone.feed({"t": "ping"}, {"t": "pong"}, {"t": "ping"})
    assert lone.client.next_event(lone.now) is NEED_DATA
    assert lone.sent() == [{"t": "pong"}, {"t": "pong"}]


# --- malformed frames: BAD_FRAME whatever the state -----------------------------------------

MISSING = object()


def with_(frame: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``frame`` with fields replaced, or removed where the value is MISSING."""
    changed = {**frame, **changes}
    return {k: v for k, v in changed.items() if v is not MISSING}


ME = welcome_frame()["participant"]
LIMITS = welcome_frame()["limits"]
SNAPSHOT = {"t": "snapshot", "rid": 1, "more": False, "participants": [P1]}
ACK = {"t": "ack", "rid": 2, "id": "m1"}
ERROR = {"t": "error", "rid": 2, "code": 4040, "reason": "gone"}
JOINED = {"t": "joined", "seq": 8, "p": P2}
UPDATED = {"t": "updated", "seq": 8, "p": P1}
LEFT = {"t": "left", "seq": 8, "id": "p1"}
CLOSE = {"t": "close", "code": 1000, "reason": "bye"}

MALFORMED: dict[str, tuple[Callable[[], LoneClient], dict[str, Any]]] = {
    # Each frame is valid in its state but for the one field changed.
    "welcome v text": (handshake, welcome_frame(v="1")),
    "welcome v negative": (handshake, welcome_frame(v=-1)),
    "welcome v huge": (handshake, welcome_frame(v=2**63)),
    "welcome v bool": (handshake, welcome_frame(v=True)),
    "welcome room none": (handshake, welcome_frame(room=None)),
    "welcome no room": (handshake, with_(welcome_frame(), room=MISSING)),
    "welcome room bytes": (handshake, welcome_frame(room=b"demo")),
    "welcome participant text": (handshake, welcome_frame(participant="me")),
    "welcome participant no id": (handshake, welcome_frame(participant=with_(ME, id=MISSING))),
    "welcome participant name int": (handshake, welcome_frame(participant=with_(ME, name=1))),
    "welcome participant role none": (handshake, welcome_frame(participant=with_(ME, role=None))),
    "welcome participant attributes list": (
        handshake,
        welcome_frame(participant=with_(ME, attributes=[])),
    ),
    "welcome limits list": (handshake, welcome_frame(limits=[4096])),
    "welcome limits missing one": (
        handshake,
        welcome_frame(limits=with_(LIMITS, max_recipients=MISSING)),
    ),
    "welcome limit text": (handshake, welcome_frame(limits=with_(LIMITS, max_send_size="big"))),
    "welcome limit negative": (handshake, welcome_frame(limits=with_(LIMITS, max_frame_size=-1))),
    "welcome hb text": (handshake, welcome_frame(hb="25")),
    "welcome hb missing": (handshake, with_(welcome_frame(), hb=MISSING)),
    "welcome hbt bool": (handshake, welcome_frame(hbt=True)),
    "welcome hb zero": (handshake, welcome_frame(hb=0)),
    "welcome hb nan": (handshake, welcome_frame(hb=float("nan"))),
    "welcome hb inf": (handshake, welcome_frame(hb=float("inf"))),
    "welcome hbt negative": (handshake, welcome_frame(hbt=-0.5)),
    "snapshot rid text": (enabling, with_(SNAPSHOT, rid="1")),
    "snapshot no rid": (enabling, with_(SNAPSHOT, rid=MISSING)),
    "snapshot more int": (enabling, with_(SNAPSHOT, more=0)),
    "snapshot no more": (enabling, with_(SNAPSHOT, more=MISSING)),
    "snapshot participants map": (enabling, with_(SNAPSHOT, participants={"p1": P1})),
    "snapshot participant id": (enabling, with_(SNAPSHOT, participants=["p1"])),
    "snapshot participant no role": (
        enabling,
        with_(SNAPSHOT, participants=[with_(P1, role=MISSING)]),
    ),
    "ack rid negative": (sending, with_(ACK, rid=-2)),
    "ack rid float": (sending, with_(ACK, rid=2.0)),
    "ack id int": (sending, with_(ACK, id=5)),
    "ack id bytes": (sending, with_(ACK, id=b"m1")),
    "error rid none": (sending, with_(ERROR, rid=None)),
    "error code text": (sending, with_(ERROR, code="4040")),
    "error no code": (sending, with_(ERROR, code=MISSING)),
    "error reason bytes": (sending, with_(ERROR, reason=b"gone")),
    "error no reason": (sending, with_(ERROR, reason=MISSING)),
    "msg id int": (enabled, with_(MSG, id=1)),
    "msg seq negative": (enabled, with_(MSG, seq=-1)),
    "msg seq text": (enabled, with_(MSG, seq="7")),
    "msg ts text": (enabled, with_(MSG, ts="now")),
    "msg no ts": (enabled, with_(MSG, ts=MISSING)),
    "msg from none": (enabled, with_(MSG, **{"from": None})),
    "msg type bytes": (enabled, with_(MSG, type=b"chat")),
    "msg message list": (enabled, with_(MSG, message=["hi"])),
    "msg bc int": (enabled, with_(MSG, bc=0)),
    "msg no bc": (enabled, with_(MSG, bc=MISSING)),
    "msg att text": (enabled, with_(MSG, att="x")),
    "joined no seq": (enabled, with_(JOINED, seq=MISSING)),
    "joined p id": (enabled, with_(JOINED, p="p2")),
    "joined p name missing": (enabled, with_(JOINED, p=with_(P2, name=MISSING))),
    "updated seq float": (enabled, with_(UPDATED, seq=8.0)),
    "updated attributes none": (enabled, with_(UPDATED, p=with_(P1, attributes=None))),
    "left seq none": (enabled, with_(LEFT, seq=None)),
    "left id int": (enabled, with_(LEFT, id=1)),
    "left no id": (enabled, with_(LEFT, id=MISSING)),
    "close code text": (enabled, with_(CLOSE, code="1000")),
    "close code negative": (enabled, with_(CLOSE, code=-1)),
    "close no reason": (enabled, with_(CLOSE, reason=MISSING)),
    "close reason int": (enabled, with_(CLOSE, reason=0)),
}


@pytest.mark.parametrize(("setup", "frame"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_server_frame_closes_with_bad_frame(
    setup: Callable[[], LoneClient], frame: dict[str, Any]
) -> None:
    lone = setup()
    lone.feed(frame)
    expect_remote_error(lone, Code.BAD_FRAME, f"malformed {frame['t']!r} frame")


WRONG_CODE = {
    "close 1234": ({"t": "close", "code": 1234, "reason": ""}, "unknown code 1234 in 'close'"),
    "close 4999": ({"t": "close", "code": 4999, "reason": ""}, "unknown code 4999 in 'close'"),
    "close 1006 (local only)": (
        {"t": "close", "code": 1006, "reason": ""},
        "unknown code 1006 in 'close'",
    ),
    "close with a refusal code": (
        {"t": "close", "code": 4040, "reason": ""},
        "code 4040 does not belong in 'close'",
    ),
    "error 4999": ({"t": "error", "rid": 2, "code": 4999, "reason": ""}, "unknown code 4999"),
    "error 999": ({"t": "error", "rid": 2, "code": 999, "reason": ""}, "unknown code 999"),
    "error with a close code": (
        {"t": "error", "rid": 2, "code": 1000, "reason": ""},
        "code 1000 does not belong in 'error'",
    ),
}


@pytest.mark.parametrize(("frame", "reason"), WRONG_CODE.values(), ids=WRONG_CODE.keys())
def test_a_close_or_error_code_of_the_wrong_kind_is_a_bad_frame(
    frame: dict[str, Any], reason: str
) -> None:
    lone = sending()
    lone.feed(frame)
    expect_remote_error(lone, Code.BAD_FRAME, reason)


def deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


BAD_BYTES = {
    "bad CBOR": (raw(b"\xff\xff"), "undecodable CBOR"),
    "truncated CBOR": (raw(cbor2.dumps({"t": "ping"})[:-1]), "undecodable CBOR"),
    "indefinite map": (raw(b"\xbf\x61t\x64ping\xff"), "undecodable CBOR"),
    "duplicate key": (raw(b"\xa2\x61t\x64ping\x61t\x64pong"), "undecodable CBOR"),
    "too deep": (encode_frame({"t": "ping", "x": deep(MAX_DEPTH + 1)}), "undecodable CBOR"),
    "huge declared length": (raw(b"\x7b" + (2**40).to_bytes(8, "big")), "undecodable CBOR"),
    "not a map": (raw(cbor2.dumps(["t", "ping"])), "must be a CBOR map"),
    "no kind": (encode_frame({"type": "ping"}), "must be a CBOR map"),
    "kind not text": (encode_frame({"t": b"ping"}), "must be a CBOR map"),
    "empty frame": (b"\x00\x00\x00\x00", "empty frame"),
    "unknown kind": (encode_frame({"t": "nope"}), "unknown frame kind 'nope'"),
    "client kind": (encode_frame({"t": "hello", "v": 1, "token": "x"}), "unknown frame kind"),
    "long unknown kind": (encode_frame({"t": "x" * 1000}), f"unknown frame kind '{'x' * 40}'$"),
}


@pytest.mark.parametrize(("data", "reason"), BAD_BYTES.values(), ids=BAD_BYTES.keys())
def test_garbage_bytes_close_with_bad_frame(data: bytes, reason: str) -> None:
    lone = opened()
    lone.client.receive_data(data)
    expect_remote_error(lone, Code.BAD_FRAME, reason)


def test_a_deep_but_allowed_frame_is_accepted() -> None:
    lone = opened()
    lone.feed({"t": "ping", "x": deep(MAX_DEPTH - 1)})
    assert lone.client.next_event(lone.now) is NEED_DATA
    assert lone.sent() == [{"t": "pong"}]


def test_an_oversized_prefix_closes_before_the_body_arrives() -> None:
    lone = LoneClient(config=ClientConfig(max_frame_size=4096))
    lone.client.receive_data((4097).to_bytes(4, "big"))
    expect_remote_error(lone, Code.FRAME_TOO_LARGE, "frame of 4097 bytes is over the 4096-byte")


def test_a_frame_at_the_size_limit_is_accepted() -> None:
    limits = {**WIRE_LIMITS, "max_frame_size": 200}
    data = encode_frame(welcome_frame(pad="x" * 100, limits=limits))
    lone = LoneClient(config=ClientConfig(max_frame_size=len(data) - 4))
    lone.client.receive_data(data)
    assert [type(e) for e in lone.events()] == [Connected]


def test_a_server_advertising_frames_over_the_ceiling_is_refused() -> None:
    lone = LoneClient(config=ClientConfig(max_frame_size=WIRE_LIMITS["max_frame_size"] - 1))
    lone.feed(welcome_frame())
    expect_remote_error(lone, Code.FRAME_TOO_LARGE, "over this client's 4095-byte ceiling")


def test_after_the_welcome_frames_are_held_to_the_advertised_size() -> None:
    lone = opened()  # the ceiling is 16 MiB, the server advertised 4096 bytes
    lone.client.receive_data(HEADER.pack(4097))
    expect_remote_error(lone, Code.FRAME_TOO_LARGE, "frame of 4097 bytes is over the 4096")


# --- frames not allowed where they arrive: PROTOCOL_ERROR -----------------------------------

NOT_ALLOWED: dict[str, tuple[Callable[[], LoneClient], dict[str, Any], Code, str]] = {
    "ping before welcome": (handshake, {"t": "ping"}, Code.PROTOCOL_ERROR, "'ping' frame not"),
    "msg before welcome": (handshake, MSG, Code.PROTOCOL_ERROR, "in state HANDSHAKE"),
    "ack before welcome": (handshake, {"t": "ack", "rid": 1}, Code.PROTOCOL_ERROR, "unknown"),
    "wrong version": (handshake, welcome_frame(v=2), Code.UNSUPPORTED_VERSION, "version 2, not"),
    "welcome twice": (opened, welcome_frame(), Code.PROTOCOL_ERROR, "'welcome' frame not"),
    "welcome when enabled": (enabled, welcome_frame(), Code.PROTOCOL_ERROR, "state ENABLED"),
    "msg before enable": (
        opened,
        MSG,
        Code.PROTOCOL_ERROR,
        "'msg' frame not allowed in state OPEN",
    ),
    "msg while enabling": (enabling, MSG, Code.PROTOCOL_ERROR, "state ENABLING"),
    "joined before enable": (opened, JOINED, Code.PROTOCOL_ERROR, "'joined' frame not"),
    "left before enable": (opened, LEFT, Code.PROTOCOL_ERROR, "'left' frame not"),
    "reply to unknown rid": (opened, {"t": "ack", "rid": 7}, Code.PROTOCOL_ERROR, "request 7"),
    "error for unknown rid": (enabled, with_(ERROR, rid=1), Code.PROTOCOL_ERROR, "request 1"),
    "snapshot for a send": (sending, with_(SNAPSHOT, rid=2), Code.PROTOCOL_ERROR, "not an enable"),
    "snapshot for a disable": (
        disabling,
        with_(SNAPSHOT, rid=2),
        Code.PROTOCOL_ERROR,
        "snapshot answers request 2",
    ),
    "snapshot after enable": (enabled, SNAPSHOT, Code.PROTOCOL_ERROR, "unknown request 1"),
    "ack for an enable": (enabling, {"t": "ack", "rid": 1}, Code.PROTOCOL_ERROR, "not an ack"),
    "joined for a present id": (enabled, with_(JOINED, p=P1), Code.PROTOCOL_ERROR, "'p1'"),
    "updated for an absent id": (enabled, with_(UPDATED, p=P2), Code.PROTOCOL_ERROR, "'p2'"),
    "left for an absent id": (enabled, with_(LEFT, id="p2"), Code.PROTOCOL_ERROR, "absent"),
    "left twice": (after_left, LEFT, Code.PROTOCOL_ERROR, "absent participant 'p1'"),
    "error for a disable": (disabling, with_(ERROR, rid=2), Code.PROTOCOL_ERROR, "refused disable"),
}


@pytest.mark.parametrize(
    ("setup", "frame", "code", "reason"), NOT_ALLOWED.values(), ids=NOT_ALLOWED.keys()
)
def test_a_frame_not_allowed_in_the_state_closes_the_connection(
    setup: Callable[[], LoneClient], frame: dict[str, Any], code: Code, reason: str
) -> None:
    lone = setup()
    lone.feed(frame)
    expect_remote_error(lone, code, reason)


def test_frames_after_the_error_are_never_decoded() -> None:
    lone = opened()
    lone.feed(MSG, {"t": "ping"})
    expect_remote_error(lone, Code.PROTOCOL_ERROR)
    lone.feed({"t": "ping"})
    assert lone.client.next_event(lone.now) == ConnectionClosed(
        code=Code.PROTOCOL_ERROR,
        reason="'msg' frame not allowed in state OPEN",
        by_peer=False,
    )
    assert lone.client.data_to_send() == b""


def test_a_remote_error_while_closing_still_queues_a_close() -> None:
    lone = closing(enabled)()
    lone.client.receive_data(raw(b"\xff"))
    expect_remote_error(lone, Code.BAD_FRAME, "undecodable")


# --- after our clean close, what the server sent before seeing it still counts -------------

IN_FLIGHT: dict[str, tuple[Callable[[], LoneClient], dict[str, Any], type[Event] | None]] = {
    "welcome": (handshake, welcome_frame(), None),
    "snapshot page": (enabling, with_(SNAPSHOT, more=True), None),
    "snapshot end": (enabling, SNAPSHOT, MessagingEnabled),
    "refused enable": (enabling, with_(ERROR, rid=1), RequestRefused),
    "ack": (sending, ACK, RequestAcked),
    "ack disable": (disabling, {"t": "ack", "rid": 2}, MessagingDisabled),
    "msg": (enabled, MSG, MessageReceived),
    "joined": (enabled, JOINED, ParticipantAdded),
    "left": (enabled, LEFT, ParticipantRemoved),
    "ping": (opened, {"t": "ping"}, None),
}


@pytest.mark.parametrize(("setup", "frame", "event"), IN_FLIGHT.values(), ids=IN_FLIGHT.keys())
def test_frames_in_flight_while_closing_are_still_applied(
    setup: Callable[[], LoneClient], frame: dict[str, Any], event: type[Event] | None
) -> None:
    lone = closing(setup)()
    lone.feed(frame, CLOSE)
    events = lone.events()
    assert [type(e) for e in events] == [t for t in (event, ConnectionClosed) if t]
    # The server's close answers ours: the close is reported as ours.
    assert events[-1] == ConnectionClosed(code=Code.GOING_AWAY, reason="leaving", by_peer=False)
    assert lone.client.state is State.CLOSED


def test_a_welcome_after_close_does_not_connect() -> None:
    lone = closing(handshake)()
    lone.feed(welcome_frame())
    assert lone.client.next_event(lone.now) is NEED_DATA
    assert lone.client.state is State.CLOSING
    assert (lone.client.local_participant, lone.client.limits) == (None, None)


def test_a_disallowed_frame_while_closing_is_still_an_error() -> None:
    lone = closing(opened)()
    lone.feed({"t": "updated", "seq": 1, "p": P1})
    expect_remote_error(lone, Code.PROTOCOL_ERROR, "'p1'")


# --- close, EOF, and bytes after the end ----------------------------------------------------


def test_the_server_close_is_echoed_once() -> None:
    lone = enabled()
    lone.feed({"t": "close", "code": 1001, "reason": "restart"})
    closed = ConnectionClosed(code=Code.GOING_AWAY, reason="restart", by_peer=True)
    assert lone.events() == [closed]
    assert lone.sent() == [{"t": "close", "code": 1001, "reason": "restart"}]
    assert lone.client.next_event(lone.now) == closed
    assert lone.client.data_to_send() == b""


def test_the_echo_of_our_close_is_not_echoed_back() -> None:
    lone = closing(opened)()
    lone.feed({"t": "close", "code": 1000, "reason": "whatever the server says"})
    closed = ConnectionClosed(code=Code.GOING_AWAY, reason="leaving", by_peer=False)
    assert lone.events() == [closed]
    assert lone.client.data_to_send() == b""


LOST = ConnectionClosed(code=Code.CONNECTION_LOST, reason="the transport closed", by_peer=True)


@pytest.mark.parametrize(
    "setup", [handshake, opened, enabling, sending, disabling, closing(enabled)]
)
def test_eof_without_a_close_is_connection_lost(setup: Callable[[], LoneClient]) -> None:
    lone = setup()
    lone.client.receive_data(b"")
    assert lone.client.next_event(lone.now) == LOST
    assert lone.client.state is State.CLOSED
    assert lone.client.data_to_send() == b""
    assert lone.client.next_event(lone.now) == LOST
    assert lone.client.next_deadline() is None


def test_frames_before_eof_come_out_first_and_a_partial_frame_is_dropped() -> None:
    lone = enabled()
    data = encode_frame(MSG)
    lone.client.receive_data(data + data[:-1])
    lone.client.receive_data(b"")
    assert [type(e) for e in lone.events()] == [MessageReceived, ConnectionClosed]
    assert lone.client.next_event(lone.now) == LOST


def test_eof_with_only_a_partial_prefix_buffered() -> None:
    lone = opened()
    lone.client.receive_data(b"\x00\x00")
    assert lone.client.next_event(lone.now) is NEED_DATA
    lone.client.receive_data(b"")
    assert lone.client.next_event(lone.now) == LOST


@pytest.mark.parametrize("data", [b"", encode_frame({"t": "ping"})])
def test_receive_data_after_eof_is_a_local_error(data: bytes) -> None:
    lone = opened()
    lone.client.receive_data(b"")
    with pytest.raises(LocalProtocolError, match="after EOF") as info:
        lone.client.receive_data(data)
    assert info.value.code is Code.PROTOCOL_ERROR


def test_data_after_close_is_discarded() -> None:
    lone = enabled()
    lone.feed(CLOSE)
    closed = lone.client.next_event(lone.now)
    lone.sent()
    lone.feed({"t": "ping"}, MSG)
    chunk = bytes(1 << 20)
    tracemalloc.start()
    try:
        for _ in range(8):
            lone.client.receive_data(chunk)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < len(chunk)  # not buffered
    assert lone.client.next_event(lone.now) == closed
    assert lone.client.data_to_send() == b""
    lone.client.receive_data(b"")  # EOF after the close is still fine
    assert lone.client.next_event(lone.now) == closed


# --- timers ----------------------------------------------------------------------------------


def test_no_welcome_in_time_is_a_handshake_timeout() -> None:
    lone = LoneClient(config=ClientConfig(handshake_timeout=5.0))
    assert lone.client.next_deadline() == 1005.0
    lone.client.handle_timer(1004.999)
    assert (lone.client.state, lone.client.data_to_send()) == (State.HANDSHAKE, b"")
    lone.client.handle_timer(1005.0)
    reason = "no welcome within the handshake timeout"
    assert lone.sent() == [{"t": "close", "code": 3002, "reason": reason}]
    assert lone.client.state is State.CLOSED
    assert lone.client.next_deadline() is None
    closed = ConnectionClosed(code=Code.HANDSHAKE_TIMEOUT, reason=reason, by_peer=False)
    assert lone.client.next_event(lone.now) == closed
    lone.client.handle_timer(2000.0)  # nothing more happens once closed
    assert lone.client.data_to_send() == b""
    assert lone.client.next_event(2000.0) == closed


def test_the_welcome_replaces_the_handshake_deadline_with_the_heartbeat() -> None:
    lone = LoneClient(config=ClientConfig(handshake_timeout=5.0))
    lone.now = 1003.0
    lone.feed(welcome_frame(hb=20, hbt=2.5))
    lone.events()
    assert lone.client.next_deadline() == 1003.0 + 22.5
    lone.client.handle_timer(1010.0)
    assert lone.client.state is State.OPEN


@pytest.mark.parametrize(
    ("setup", "frame"),
    [
        (opened, {"t": "ping"}),
        (opened, {"t": "pong"}),
        (enabled, MSG),
        (enabled, JOINED),
        (sending, ACK),
        (sending, ERROR),
        (enabling, SNAPSHOT),
        (enabling, with_(SNAPSHOT, more=True)),
    ],
    ids=["ping", "pong", "msg", "joined", "ack", "error", "snapshot", "snapshot page"],
)
def test_every_frame_heard_pushes_the_heartbeat_deadline(
    setup: Callable[[], LoneClient], frame: dict[str, Any]
) -> None:
    lone = setup()
    assert lone.client.next_deadline() == 1035.0
    lone.now = 1030.0
    lone.feed(frame)
    lone.events()
    assert lone.client.next_deadline() == 1065.0


def test_silence_past_the_heartbeat_timeout_closes() -> None:
    lone = enabled()
    lone.client.handle_timer(1034.9)
    assert (lone.client.state, lone.client.data_to_send()) == (State.ENABLED, b"")
    lone.client.handle_timer(1035.0)
    reason = "nothing heard from the server in time"
    assert lone.sent() == [{"t": "close", "code": 3001, "reason": reason}]
    closed = ConnectionClosed(code=Code.HEARTBEAT_TIMEOUT, reason=reason, by_peer=False)
    assert lone.client.next_event(lone.now) == closed
    assert lone.client.next_deadline() is None


def test_a_close_unanswered_in_time_ends_the_connection() -> None:
    lone = closing(enabled)()
    assert lone.client.next_deadline() == 1035.0
    lone.now = 1030.0
    lone.feed({"t": "ping"}, MSG)  # delivered, but no longer proof of life, and not answered
    assert [type(e) for e in lone.events()] == [MessageReceived]
    assert lone.sent() == []  # nothing follows our close
    assert lone.client.next_deadline() == 1035.0
    lone.client.handle_timer(1035.0)
    assert lone.client.data_to_send() == b""  # our close is already out
    closed = ConnectionClosed(code=Code.GOING_AWAY, reason="leaving", by_peer=False)
    assert lone.client.next_event(lone.now) == closed
    assert lone.client.state is State.CLOSED


def test_a_close_unanswered_during_the_handshake_times_out_on_the_handshake_deadline() -> None:
    lone = LoneClient()
    lone.client.close()
    assert lone.sent() == [{"t": "close", "code": 1000, "reason": ""}]
    assert lone.client.next_deadline() == 1010.0
    lone.client.handle_timer(1010.0)
    closed = ConnectionClosed(code=Code.NORMAL, reason="", by_peer=False)
    assert lone.client.next_event(lone.now) == closed
