"""Participant RPC in the core (PROTOCOL.md §24): a call routed to its callee with the
caller stamped, exactly one answer per call (the result, the callee's error, or the server's
refusal), cancels, departures, and every bad input: answers to calls never made or already
answered, stale cancels, calls to nobody, over the limits."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from roomwire import Code, InvalidRequest, LocalProtocolError, RemoteProtocolError
from roomwire.events import (
    CallAnswered,
    CallCancelled,
    CallFailed,
    CallReceived,
    ConnectionClosed,
    Event,
    MessageReceived,
    RequestAcked,
    RequestRefused,
)

from .helpers import LoneClient, Peer, RawPeer, Room, raw_peer, welcome_frame


def pid(peer: Peer) -> str:
    me = peer.client.local_participant
    assert me is not None
    return me.id


def only(peer: Peer, kind: type) -> Any:
    events = peer.take()
    found = [e for e in events if isinstance(e, kind)]
    assert len(found) == 1, events
    return found[0]


@pytest.fixture
def room() -> Room:
    room = Room()
    room.enabled("alice")
    room.enabled("bob")
    for peer in room.peers.values():
        peer.take()
    return room


def raw_enabled(room: Room) -> RawPeer:
    """A hand-driven peer with messaging enabled, its earlier frames taken."""
    raw = raw_peer(room, "raw")
    raw.client.send({"t": "enable", "rid": 1})
    room.pump()
    raw.client.take()
    return raw


def call(room: Room, caller: Peer, callee: Peer, **args: Any) -> tuple[int, CallReceived]:
    rid = caller.client.call(pid(callee), args.pop("type", "tool.add"), {"a": 1}, **args)
    room.pump()
    return rid, only(callee, CallReceived)


def test_a_call_reaches_its_callee_stamped_and_its_answer_comes_back(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    rid, received = call(room, alice, bob, attachment=b"\x01")
    asked = received.call
    assert (asked.from_participant_id, asked.type, asked.message) == (
        pid(alice),
        "tool.add",
        {"a": 1},
    )
    assert (asked.attachment, asked.seq, asked.broadcast) == (b"\x01", 0, False)
    answer_rid = bob.client.answer(asked.id, {"sum": 2}, b"\x02")
    room.pump()
    assert only(bob, RequestAcked).request_id == answer_rid
    answered = only(alice, CallAnswered)
    reply = answered.reply
    assert answered.request_id == rid
    assert (reply.id, reply.from_participant_id, reply.type) == (asked.id, pid(bob), "tool.add")
    assert (reply.message, reply.attachment) == ({"sum": 2}, b"\x02")


def test_a_callee_error_passes_through_unchanged(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    rid, received = call(room, alice, bob)
    bob.client.fail_call(received.call.id, 12345, "no such tool")
    room.pump()
    assert only(alice, CallFailed) == CallFailed(request_id=rid, code=12345, reason="no such tool")


def test_an_answer_without_an_attachment_has_none(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    _, received = call(room, alice, bob)
    bob.client.answer(received.call.id, {})
    room.pump()
    assert only(alice, CallAnswered).reply.attachment is None


def test_a_second_answer_is_refused_for_the_replier_alone(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    carol = room.enabled("carol")
    carol.take()
    _, received = call(room, alice, bob)
    bob.client.answer(received.call.id, {"n": 1})
    room.pump()
    alice.take()
    bob.take()
    again = bob.client.answer(received.call.id, {"n": 2})
    room.pump()
    refused = only(bob, RequestRefused)
    assert (refused.request_id, refused.code) == (again, Code.CALL_NOT_FOUND)
    assert alice.take() == []
    assert carol.take() == []
    assert bob.client.state.name == "ENABLED"


def test_an_answer_to_a_call_never_made_or_asked_of_another_is_refused(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    bob.client.answer("never-made", {})
    room.pump()
    assert only(bob, RequestRefused).code is Code.CALL_NOT_FOUND
    _, received = call(room, alice, bob)
    alice.client.answer(received.call.id, {})  # alice was not asked
    room.pump()
    assert only(alice, RequestRefused).code is Code.CALL_NOT_FOUND
    bob.client.answer(received.call.id, {"still": "open"})
    room.pump()
    assert only(alice, CallAnswered).reply.message == {"still": "open"}


def test_a_cancel_tells_the_callee_and_answers_the_caller_once(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    rid, received = call(room, alice, bob)
    alice.client.cancel_call(rid)
    alice.client.cancel_call(rid)  # the server ignores a cancel for a call with its answer
    room.pump()
    assert only(bob, CallCancelled).call_id == received.call.id
    refused = only(alice, RequestRefused)
    assert (refused.request_id, refused.code) == (rid, Code.CALL_CANCELLED)
    bob.client.answer(received.call.id, {})  # too late
    room.pump()
    assert only(bob, RequestRefused).code is Code.CALL_NOT_FOUND
    assert alice.take() == []
    alice.client.cancel_call(rid)  # answered: the server ignores it
    alice.client.cancel_call(12345)
    room.pump()
    assert alice.take() == []
    assert bob.take() == []


def test_a_cancel_naming_a_send_is_ignored(room: Room) -> None:
    alice = room.peers["alice"]
    rid = alice.client.send_message(pid(room.peers["bob"]), "chat", {})
    alice.client.cancel_call(rid)
    room.pump()
    assert only(alice, RequestAcked).request_id == rid


@pytest.mark.parametrize("leave", ["close", "disable"])
def test_a_callee_that_leaves_fails_its_calls_at_once(room: Room, leave: str) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    rid, _ = call(room, alice, bob)
    getattr(bob.client, leave)()
    room.pump()
    refused = only(alice, RequestRefused)
    assert (refused.request_id, refused.code) == (rid, Code.CALLEE_LEFT)


def test_a_caller_that_leaves_cancels_its_calls(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    _, received = call(room, alice, bob)
    alice.client.close()
    room.pump()
    assert only(bob, CallCancelled).call_id == received.call.id


def test_calls_are_refused_like_sends(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    alice.client.call("nobody", "t", {})
    room.pump()
    assert only(alice, RequestRefused).code is Code.NOT_FOUND
    mute = room.enabled("mute", can_send=False)
    mute.take()
    mute.client.call(pid(bob), "t", {})
    room.pump()
    assert only(mute, RequestRefused).code is Code.FORBIDDEN_SEND


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "", "message": {}}, Code.INVALID_REQUEST),
        ({"type": "t", "message": {"x": float("nan")}}, Code.INVALID_REQUEST),
        ({"type": "t", "message": {}, "att": b"x" * 2000}, Code.TOO_LARGE),
    ],
)
def test_a_raw_call_breaking_a_rule_is_refused(frame: dict[str, Any], code: Code) -> None:
    room = Room(max_frame_size=3000)
    bob = room.enabled("bob")
    raw = raw_enabled(room)
    raw.client.send({"t": "call", "rid": 2, "to": pid(bob), **frame})
    room.pump()
    (refusal,) = raw.client.take()
    assert (refusal["t"], refusal["rid"], refusal["code"]) == ("error", 2, code)


def test_a_call_whose_stamped_frame_would_outgrow_the_frame_limit_is_refused() -> None:
    # Half-precision floats are 3 bytes each on the way in but 9 once re-encoded (as in
    # test_server_messaging): the call fits max_send_size, the stamped one would not fit.
    room = Room(max_frame_size=4096)
    bob = room.enabled("bob")
    raw = raw_enabled(room)
    bob.take()
    floats = b"\xa1\x61f\x99" + (1000).to_bytes(2) + b"\xf9\x3e\x00" * 1000
    fields = ("t", "call", "rid", 7, "type", "t", "to", pid(bob), "message")
    body = b"\xa5" + b"".join(cbor2.dumps(item) for item in fields) + floats
    assert len(body) <= room.server.config.max_send_size
    raw.server.receive_data(len(body).to_bytes(4) + body)
    room.pump()
    (refused,) = raw.client.take()
    assert (refused["t"], refused["rid"], refused["code"]) == ("error", 7, Code.TOO_LARGE)
    assert "the stamped 'call' would be 90" in refused["reason"]
    assert bob.take() == []


def test_a_raw_answer_breaking_a_rule_is_refused_and_the_call_stays(room: Room) -> None:
    alice = room.peers["alice"]
    raw = raw_enabled(room)
    alice.take()
    rid = alice.client.call(raw.server.participant.id, "t", {})  # type: ignore[union-attr]
    room.pump()
    (asked,) = raw.client.take()
    raw.client.send({"t": "answer", "rid": 2, "id": asked["id"], "message": {"x": float("inf")}})
    room.pump()
    (refusal,) = raw.client.take()
    assert (refusal["rid"], refusal["code"]) == (2, Code.INVALID_REQUEST)
    raw.client.send({"t": "answer", "rid": 3, "id": asked["id"], "code": -5, "reason": "r"})
    room.pump()
    assert raw.client.take() == [{"t": "ack", "rid": 3}]
    assert only(alice, CallFailed) == CallFailed(request_id=rid, code=-5, reason="r")


def test_a_request_id_of_a_waiting_call_is_not_reused(room: Room) -> None:
    bob = room.peers["bob"]
    raw = raw_enabled(room)
    call_frame = {"t": "call", "rid": 2, "to": pid(bob), "type": "t", "message": {}}
    raw.client.send(call_frame, call_frame)
    room.pump()
    (refusal,) = raw.client.take()
    assert (refusal["rid"], refusal["code"]) == (2, Code.INVALID_REQUEST)
    assert len([e for e in bob.take() if isinstance(e, CallReceived)]) == 1


def test_pending_calls_are_bounded() -> None:
    room = Room(max_pending_calls=2)
    alice, bob = room.enabled("alice"), room.enabled("bob")
    assert alice.client.limits is not None
    assert alice.client.limits.max_pending_calls == 2
    for _ in range(3):
        alice.client.call(pid(bob), "t", {})
    room.pump()
    assert only(alice, RequestRefused).code is Code.TOO_MANY_CALLS
    assert len([e for e in bob.take() if isinstance(e, CallReceived)]) == 2


def test_calls_are_not_stored_in_history(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    _, received = call(room, alice, bob)
    bob.client.answer(received.call.id, {})
    room.pump()
    alice.client.history()
    room.pump()
    (page,) = [e for e in alice.take() if not isinstance(e, CallAnswered)]
    assert page.messages == ()  # type: ignore[attr-defined]


def test_calling_needs_messaging_enabled() -> None:
    room = Room()
    lone = room.join("lone")
    with pytest.raises(LocalProtocolError, match="cannot call"):
        lone.client.call("x", "t", {})
    raw = raw_peer(room, "raw")
    raw.client.take()
    raw.client.send({"t": "call", "rid": 1, "to": "x", "type": "t", "message": {}})
    room.pump()
    (refusal,) = raw.client.take()
    assert refusal["code"] == Code.INVALID_STATE


def test_the_client_checks_its_arguments() -> None:
    lone = LoneClient().enable()
    with pytest.raises(InvalidRequest, match="one participant id"):
        lone.client.call(["a"], "t", {})  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="type"):
        lone.client.call("a", "", {})
    with pytest.raises(InvalidRequest, match="JSON object"):
        lone.client.answer("c", {"x": {1, 2}})  # type: ignore[dict-item]
    with pytest.raises(InvalidRequest, match="attachment"):
        lone.client.answer("c", {}, "text")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="call id"):
        lone.client.answer(5, {})  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="integer code"):
        lone.client.fail_call("c", 2**63, "r")
    with pytest.raises(InvalidRequest, match="integer code"):
        lone.client.fail_call("c", 1, b"r")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="integer code"):
        lone.client.fail_call("c", True, "r")
    assert lone.sent() == []
    lone.client.answer("c", {}, bytearray(b"\x01"))
    (frame,) = lone.sent()
    assert frame == {"t": "answer", "id": "c", "message": {}, "att": b"\x01", "rid": 2}


def results(lone: LoneClient, *frames: dict[str, Any]) -> list[Event]:
    lone.feed(*frames)
    return lone.events()


def test_a_result_that_answers_no_call_breaks_the_protocol() -> None:
    lone = LoneClient().enable()
    result = {"t": "result", "rid": 2, "id": "c", "from": "b", "ts": 1, "type": "t", "message": {}}
    with pytest.raises(RemoteProtocolError, match="not a call"):
        results(lone, result)
    lone = LoneClient().enable()
    lone.client.history()
    with pytest.raises(RemoteProtocolError, match="not a call"):
        results(lone, result)


def test_the_client_reads_incoming_calls_and_cancels() -> None:
    lone = LoneClient().enable()
    incoming = {"t": "call", "id": "c1", "from": "b", "ts": 5, "type": "t", "message": {"q": 1}}
    (event,) = results(lone, incoming, {"t": "cancel", "id": "c1"})[:1]
    assert isinstance(event, CallReceived)
    assert event.call.message == {"q": 1}
    lone.feed({"t": "cancel", "id": "c1"})
    assert lone.events() == [CallCancelled(call_id="c1")]


@pytest.mark.parametrize(
    "frame",
    [
        {"t": "call", "id": "c", "from": "b", "ts": 1, "type": "t"},
        {"t": "cancel", "id": 5},
        {"t": "result", "rid": 2, "id": "c", "from": "b", "ts": 1, "type": "t", "code": "x"},
        {"t": "result", "rid": 2, "id": "c", "from": "b", "ts": 1, "type": "t", "code": 2**63},
        {"t": "result", "rid": 2, "id": "c", "from": "b", "ts": 1, "type": "t", "code": 1},
    ],
)
def test_malformed_rpc_frames_from_the_server_are_bad_frames(frame: dict[str, Any]) -> None:
    lone = LoneClient().enable()
    lone.client.call("b", "t", {})
    lone.feed(frame)
    with pytest.raises(RemoteProtocolError) as caught:
        lone.events()
    assert caught.value.code is Code.BAD_FRAME


def test_a_call_outside_enabled_breaks_the_protocol() -> None:
    lone = LoneClient().open()
    lone.feed({"t": "call", "id": "c", "from": "b", "ts": 1, "type": "t", "message": {}})
    with pytest.raises(RemoteProtocolError, match="not allowed"):
        lone.events()
    assert isinstance(lone.events()[-1], ConnectionClosed)


def test_messages_and_calls_stay_apart(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    call(room, alice, bob)
    alice.client.send_message(pid(bob), "chat", {})
    room.pump()
    assert [type(e) for e in bob.take()] == [MessageReceived]


def test_welcome_without_max_pending_calls_keeps_the_default() -> None:
    lone = LoneClient()
    lone.feed(welcome_frame())
    lone.events()
    assert lone.client.limits is not None
    assert lone.client.limits.max_pending_calls == 256
