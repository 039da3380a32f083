"""Client verbs refused at the call: wrong state, bad content, over an advertised limit.

Every refusal raises before anything is queued and leaves the state as it was. The limits are
the small ones of ``WIRE_LIMITS`` (3 recipients, types of 8 characters, 64-byte attributes,
3072-byte requests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from roomwire import (
    ClientConnection,
    Code,
    InvalidRequest,
    LocalProtocolError,
    MessageTooLarge,
    State,
)
from roomwire.events import RequestAcked
from roomwire.frames import encode_payload

from .helpers import WIRE_LIMITS, LoneClient, decode_frames, wire_participant


def in_state(state: State) -> LoneClient:
    """A lone client brought to ``state`` through the public API."""
    lone = LoneClient()
    if state is State.HANDSHAKE:
        return lone
    if state is State.CLOSING:
        lone.open().client.close()
    elif state is State.CLOSED:
        lone.open().client.receive_data(b"")
        lone.events()
    elif state is State.OPEN:
        lone.open()
    elif state is State.ENABLING:
        lone.open().client.enable()
    else:
        lone.enable(wire_participant("p1"))
        if state is State.DISABLING:
            lone.client.disable()
    lone.sent()
    assert lone.client.state is state
    return lone


Verb = Callable[[ClientConnection], object]
VERBS: dict[str, tuple[Verb, str]] = {
    "enable": (lambda c: c.enable(), "enable"),
    "enable_no_presence": (lambda c: c.enable(presence=False), "enable"),
    "disable": (lambda c: c.disable(), "disable"),
    "send_one": (lambda c: c.send_message("p1", "chat", {"n": 1}), "send"),
    "send_list": (lambda c: c.send_message(["p1", "p2"], "chat", {}), "send"),
    "broadcast": (lambda c: c.broadcast_message("chat", {}, b"\x00"), "broadcast"),
    "set_attributes": (lambda c: c.set_attributes({"a": 1}), "attrs"),
    "close": (lambda c: c.close(), "close"),
}

ALLOWED: dict[str, dict[State, State]] = {
    "enable": {State.OPEN: State.ENABLING},
    "disable": {State.ENABLED: State.DISABLING},
    "send": {State.ENABLING: State.ENABLING, State.ENABLED: State.ENABLED},
    "broadcast": {State.ENABLING: State.ENABLING, State.ENABLED: State.ENABLED},
    "attrs": {s: s for s in (State.OPEN, State.ENABLING, State.ENABLED, State.DISABLING)},
    "close": dict.fromkeys(
        (State.HANDSHAKE, State.OPEN, State.ENABLING, State.ENABLED, State.DISABLING),
        State.CLOSING,
    ),
}
"""Where each verb is allowed and the state it leads to, written out by hand."""


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("verb", list(VERBS))
def test_every_verb_in_every_state(state: State, verb: str) -> None:
    lone = in_state(state)
    call, kind = VERBS[verb]
    after = ALLOWED[kind].get(state)
    if after is None:
        with pytest.raises(LocalProtocolError, match=f"in state {state.name}") as info:
            call(lone.client)
        assert type(info.value) is LocalProtocolError
        assert info.value.code is Code.PROTOCOL_ERROR
        assert lone.client.data_to_send() == b""
        assert lone.client.state is state
    else:
        call(lone.client)
        (frame,) = lone.sent()
        assert frame["t"] == kind
        assert lone.client.state is after


def test_verbs_return_increasing_request_ids_that_go_on_the_wire() -> None:
    lone = in_state(State.ENABLED)  # rid 1 was the enable
    rids = [
        lone.client.send_message("p1", "chat", {}),
        lone.client.broadcast_message("chat", {}),
        lone.client.set_attributes({}),
        lone.client.disable(),
    ]
    assert rids == [2, 3, 4, 5]
    assert [f["rid"] for f in lone.sent()] == rids


def test_request_frames_carry_what_the_caller_gave() -> None:
    lone = in_state(State.ENABLED)
    lone.client.send_message(["p1", "p2"], "chat", {"text": "hi"}, bytearray(b"\x01"))
    lone.client.broadcast_message("note", {"n": [1.5, None]})
    lone.client.set_attributes({"a": 1, "b": None})
    assert lone.sent() == [
        {"t": "send", "type": "chat", "message": {"text": "hi"}, "att": b"\x01",
         "to": ["p1", "p2"], "rid": 2},
        {"t": "broadcast", "type": "note", "message": {"n": [1.5, None]}, "rid": 3},
        {"t": "attrs", "attributes": {"a": 1, "b": None}, "rid": 4},
    ]  # fmt: skip


def test_outbound_bytes_are_counted_until_taken() -> None:
    lone = in_state(State.ENABLED)
    assert lone.client.outbound_size == 0
    lone.client.broadcast_message("chat", {})
    lone.client.set_attributes({"a": 1})
    queued = lone.client.outbound_size
    data = lone.client.data_to_send()
    assert len(data) == queued > 0
    assert [f["t"] for f in decode_frames(data)] == ["broadcast", "attrs"]
    assert (lone.client.outbound_size, lone.client.data_to_send()) == (0, b"")


def send(**changes: Any) -> Verb:
    args: dict[str, Any] = {"to": "p1", "type": "chat", "message": {}} | changes
    return lambda c: c.send_message(**args)


def broadcast(**changes: Any) -> Verb:
    args: dict[str, Any] = {"type": "chat", "message": {}} | changes
    return lambda c: c.broadcast_message(**args)


def attributes(value: Any) -> Verb:
    return lambda c: c.set_attributes(value)


INVALID = {
    "no recipients": (send(to=[]), "1 to 3 recipients"),
    "too many recipients": (send(to=["a", "b", "c", "d"]), "1 to 3 recipients"),
    "recipient not a string": (send(to=["a", 5]), "recipients must be"),
    "recipient a participant": (send(to=[{"id": "p1"}]), "recipients must be"),
    "empty type": (send(type=""), "type must be"),
    "type too long": (send(type="x" * 9), "type must be"),
    "type not a string": (broadcast(type=b"chat"), "type must be"),
    "message a list": (send(message=[1]), "message must be"),
    "message with a set": (broadcast(message={"a": {1}}), "message must be"),
    "message with a tuple": (send(message={"a": (1,)}), "message must be"),
    "message with int key": (broadcast(message={"a": {1: "x"}}), "message must be"),
    "message with nan": (send(message={"f": float("nan")}), "message must be"),
    "message with inf": (broadcast(message={"f": [float("-inf")]}), "message must be"),
    "message with bytes": (send(message={"b": b"x"}), "message must be"),
    "attachment text": (send(attachment="x"), "attachment must be"),
    "attachment a list": (broadcast(attachment=[1]), "attachment must be"),
    "attributes a list": (attributes([("a", 1)]), "attributes must be"),
    "attributes with bytes": (attributes({"a": b"x"}), "attributes must be"),
    "attributes with int key": (attributes({1: "x"}), "attributes must be"),
}


@pytest.mark.parametrize(("call", "reason"), INVALID.values(), ids=INVALID.keys())
def test_invalid_content_is_refused_before_queuing(call: Verb, reason: str) -> None:
    lone = in_state(State.ENABLED)
    with pytest.raises(InvalidRequest, match=reason) as info:
        call(lone.client)
    assert info.value.code is Code.INVALID_REQUEST
    assert lone.client.data_to_send() == b""
    assert lone.client.state is State.ENABLED


def test_limits_are_inclusive() -> None:
    lone = in_state(State.ENABLED)
    lone.client.send_message(["a", "b", "c"], "x" * 8, {})
    lone.client.set_attributes({"k": "v" * 59})  # 64 bytes encoded
    assert [f["t"] for f in lone.sent()] == ["send", "attrs"]


def padded(frame: dict[str, Any], size: int) -> dict[str, Any]:
    """A message that makes ``frame`` (with that message) encode to exactly ``size`` bytes."""
    filler = 1000  # long enough that the string's header no longer grows
    frame["message"] = {"p": "x" * filler}
    message = {"p": "x" * (size - len(encode_payload(frame)) + filler)}
    frame["message"] = message
    assert len(encode_payload(frame)) == size
    return message


@pytest.mark.parametrize("kind", ["send", "broadcast"])
def test_a_request_over_max_send_size_is_refused(kind: str) -> None:
    most = WIRE_LIMITS["max_send_size"]
    lone = in_state(State.ENABLED)
    frame: dict[str, Any] = {"t": kind, "type": "t", "message": {}}
    call = broadcast
    if kind == "send":
        frame["to"], call = ["p1"], send
    frame["rid"] = 2
    with pytest.raises(MessageTooLarge, match=f"{kind} frame of {most + 1} bytes") as info:
        call(type="t", message=padded(frame, most + 1))(lone.client)
    assert info.value.code is Code.TOO_LARGE
    assert lone.client.data_to_send() == b""
    fits = padded(frame, most)
    call(type="t", message=fits)(lone.client)
    (sent,) = lone.sent()
    assert (sent["message"], len(encode_payload(sent))) == (fits, most)


def test_attributes_over_the_limit_count_what_is_already_held() -> None:
    lone = in_state(State.OPEN)
    with pytest.raises(MessageTooLarge, match="64-byte limit") as info:
        lone.client.set_attributes({"k": "v" * 60})
    assert info.value.code is Code.TOO_LARGE
    assert lone.client.data_to_send() == b""
    rid = lone.client.set_attributes({"a": "x" * 30})
    lone.feed({"t": "ack", "rid": rid})
    assert lone.events() == [RequestAcked(request_id=rid, message_id=None)]
    with pytest.raises(MessageTooLarge):
        lone.client.set_attributes({"b": "y" * 30})
    # Deleting a key in the same update makes room.
    lone.client.set_attributes({"a": None, "b": "y" * 30})
    assert lone.sent()[-1]["attributes"] == {"a": None, "b": "y" * 30}
