"""The stateless codec in roomwire.frames: framing, decoding limits, JSON checks, frame shapes."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from roomwire import Code, RemoteProtocolError
from roomwire.frames import (
    CLIENT_FRAMES,
    JSON_DEPTH,
    MAX_DEPTH,
    PREFIX_SIZE,
    SERVER_FRAMES,
    FrameBuffer,
    check_frame,
    decode_payload,
    encode_frame,
    encode_payload,
    is_json_object,
)

from .helpers import welcome_frame


def test_a_frame_is_a_big_endian_length_then_its_payload() -> None:
    frame = {"t": "ping", "n": [1, "x", None]}
    payload = encode_payload(frame)
    assert encode_frame(frame) == len(payload).to_bytes(4, "big") + payload
    assert PREFIX_SIZE == 4
    assert decode_payload(payload) == frame


def test_buffers_that_run_empty_in_turn_keep_their_own_bytes() -> None:
    # A drained buffer gives its storage up; the next bytes it gets are its own, whatever
    # other buffers drain or fill meanwhile.
    one, two = encode_frame({"t": "ping"}), encode_frame({"t": "pong", "pad": "x" * 50})
    a, b = FrameBuffer(100), FrameBuffer(100)
    b.feed(one)
    assert (b.next_payload(), len(b)) == (one[PREFIX_SIZE:], 0)
    a.feed(two + one[:3])
    assert (a.next_payload(), a.next_payload(), len(a)) == (two[PREFIX_SIZE:], None, 3)
    b.feed(two[:9])
    a.feed(one[3:])
    assert (a.next_payload(), len(a)) == (one[PREFIX_SIZE:], 0)
    a.feed(one)
    b.feed(two[9:])
    assert (b.next_payload(), len(b)) == (two[PREFIX_SIZE:], 0)
    assert (a.next_payload(), len(a)) == (one[PREFIX_SIZE:], 0)


def bad_frame(call: Any, *args: Any) -> str:
    with pytest.raises(RemoteProtocolError) as info:
        call(*args)
    assert info.value.code is Code.BAD_FRAME
    return info.value.reason


def nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "undecodable CBOR"),
        (b"\x1c", "undecodable CBOR"),  # reserved additional information
        (b"\x5b" + b"\xff" * 8, "undecodable CBOR"),  # a 2^64-byte string, declared
        (b"\xd9\xd9\xf7" * 40 + b"\xa0", "undecodable CBOR"),  # a long tag chain
        (cbor2.dumps({"t": "x", "d": nested(MAX_DEPTH)}), "undecodable CBOR"),
        (b"\xa1\x61t\x7f\x61a\xff", "undecodable CBOR"),  # indefinite text
        (cbor2.dumps({"t": "x", ("a",): 1}), "undecodable CBOR"),  # unhashable key, strictly
        (cbor2.dumps(7), "must be a CBOR map"),
        (cbor2.dumps([{"t": "ping"}]), "must be a CBOR map"),
        (cbor2.dumps({"t": None}), "must be a CBOR map"),
        (cbor2.dumps({1: "ping"}), "undecodable CBOR"),  # not a text key
        (cbor2.dumps({"kind": "ping"}), "must be a CBOR map"),
    ],
)
def test_decode_payload_raises_only_bad_frame(payload: bytes, reason: str) -> None:
    assert reason in bad_frame(decode_payload, payload)


def test_decode_payload_accepts_the_deepest_allowed_nesting() -> None:
    frame = {"t": "x", "d": nested(MAX_DEPTH - 1)}
    assert decode_payload(cbor2.dumps(frame)) == frame


def cyclic() -> dict[str, object]:
    loop: dict[str, object] = {}
    loop["self"] = [loop]
    return loop


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"s": "s", "i": 0, "f": 1.5, "b": True, "n": None},
        {"a": [{"b": [None, 2.0, "c"]}]},
        {"big": 2**64 - 1, "small": -(2**64)},
        nested(JSON_DEPTH),  # the deepest a frame can carry
    ],
)
def test_json_objects(value: object) -> None:
    assert is_json_object(value) is True


@pytest.mark.parametrize(
    "value",
    [
        [],  # not an object
        "s",
        None,
        {"b": b"x"},
        {"t": (1,)},
        {"s": {1}},
        {1: "a"},
        {"a": {("k",): 1}},
        {"n": [float("nan")]},
        {"a": float("inf")},
        {"o": object()},
        {"a": [1, [2, [b"deep"]]]},
        {"wide": 2**64},  # needs a CBOR bignum tag
        {"wide": -(2**64) - 1},
        nested(JSON_DEPTH + 1),  # one level more
        cyclic(),
    ],
)
def test_non_json_objects(value: object) -> None:
    assert is_json_object(value) is False


def test_frame_buffer_walks_frames_however_the_bytes_are_split() -> None:
    frames = [{"t": "ping"}, {"t": "msg", "x": "y" * 300}, {"t": "pong"}]
    data = b"".join(encode_frame(f) for f in frames)
    for step in (1, 2, 5, len(data)):
        buffer = FrameBuffer(1000)
        got = []
        for start in range(0, len(data), step):
            buffer.feed(data[start : start + step])
            while (payload := buffer.next_payload()) is not None:
                got.append(decode_payload(payload))
        assert got == frames
        assert len(buffer) == 0


def test_frame_buffer_length_counts_unread_bytes() -> None:
    buffer = FrameBuffer(100)
    first, second = encode_frame({"t": "ping"}), encode_frame({"t": "pong"})
    buffer.feed(first + second[:3])
    assert len(buffer) == len(first) + 3
    assert buffer.next_payload() == first[PREFIX_SIZE:]
    assert len(buffer) == 3
    assert buffer.next_payload() is None
    buffer.feed(second[3:])
    assert len(buffer) == len(second)
    assert buffer.next_payload() == second[PREFIX_SIZE:]
    assert buffer.next_payload() is None


def test_frame_buffer_checks_the_prefix_before_the_body() -> None:
    buffer = FrameBuffer(100)
    buffer.feed((100).to_bytes(4, "big"))
    assert buffer.next_payload() is None  # at the limit: waits for the body
    buffer = FrameBuffer(100)
    buffer.feed((101).to_bytes(4, "big"))
    with pytest.raises(RemoteProtocolError, match="101 bytes is over the 100-byte") as info:
        buffer.next_payload()
    assert info.value.code is Code.FRAME_TOO_LARGE
    buffer = FrameBuffer(100)
    buffer.feed(bytes(4))
    assert bad_frame(buffer.next_payload) == "empty frame"


# --- frame shapes ----------------------------------------------------------------------------

PERSON = {"id": "p1", "name": "bob", "role": "user", "attributes": {}}

VALID_CLIENT_FRAMES = [
    {"t": "hello", "v": 1, "token": "jwt"},
    {"t": "hello", "v": 1, "token": "jwt", "room": "demo"},
    {"t": "hello", "v": 1, "token": "jwt", "room": None},
    {"t": "enable", "rid": 1},
    {"t": "enable", "rid": 1, "presence": False},
    {"t": "disable", "rid": 0},
    {"t": "send", "rid": 2, "to": [], "type": "", "message": {}},
    {"t": "send", "rid": 2, "to": ["a", "b"], "type": "x", "message": {"a": 1}, "att": b""},
    {"t": "broadcast", "rid": 2**63 - 1, "type": "x", "message": {}, "att": None},
    {"t": "attrs", "rid": 3, "attributes": {"a": None}},
    {"t": "ping", "extra": "ignored"},
    {"t": "pong"},
    {"t": "close", "code": 1000, "reason": ""},
]

VALID_SERVER_FRAMES = [
    welcome_frame(),
    welcome_frame(hb=0.5, hbt=3),
    {"t": "snapshot", "rid": 1, "more": True, "participants": []},
    {"t": "snapshot", "rid": 1, "more": False, "participants": [PERSON, PERSON]},
    {"t": "ack", "rid": 1},
    {"t": "ack", "rid": 1, "id": "m1"},
    {"t": "error", "rid": 1, "code": 4040, "reason": "gone"},
    {"t": "msg", "id": "m", "seq": 0, "ts": 1, "from": "p", "type": "", "message": {}, "bc": True},
    {"t": "joined", "seq": 1, "p": PERSON},
    {"t": "updated", "seq": 1, "p": PERSON},
    {"t": "left", "seq": 1, "id": "p1"},
    {"t": "ping"},
    {"t": "pong"},
    {"t": "close", "code": 3003, "reason": "slow"},
]


@pytest.mark.parametrize("frame", VALID_CLIENT_FRAMES, ids=lambda f: f["t"])
def test_valid_client_frames_pass_their_check(frame: dict[str, Any]) -> None:
    check_frame(frame, CLIENT_FRAMES)
    assert decode_payload(encode_payload(frame)) == frame


@pytest.mark.parametrize("frame", VALID_SERVER_FRAMES, ids=lambda f: f["t"])
def test_valid_server_frames_pass_their_check(frame: dict[str, Any]) -> None:
    check_frame(frame, SERVER_FRAMES)
    assert decode_payload(encode_payload(frame)) == frame


MALFORMED_CLIENT_FRAMES = [
    {"t": "hello", "v": "1", "token": "jwt"},
    {"t": "hello", "v": 1},
    {"t": "hello", "v": 1, "token": "jwt", "room": 5},
    {"t": "enable", "rid": -1},
    {"t": "enable", "rid": 1, "presence": None},
    {"t": "enable", "rid": 1, "presence": 1},
    {"t": "disable"},
    {"t": "send", "rid": 2, "to": "a", "type": "x", "message": {}},
    {"t": "send", "rid": 2, "to": ["a", 1], "type": "x", "message": {}},
    {"t": "send", "rid": 2, "to": ["a"], "type": 1, "message": {}},
    {"t": "send", "rid": 2, "to": ["a"], "type": "x", "message": []},
    {"t": "send", "rid": 2, "to": ["a"], "type": "x", "message": {}, "att": "text"},
    {"t": "broadcast", "rid": 2**63, "type": "x", "message": {}},
    {"t": "broadcast", "rid": 2, "type": "x", "message": {}, "att": 1},
    {"t": "attrs", "rid": 3, "attributes": []},
    {"t": "close", "code": 1000},
    {"t": "close", "code": True, "reason": ""},
]


@pytest.mark.parametrize("frame", MALFORMED_CLIENT_FRAMES, ids=lambda f: f["t"])
def test_malformed_client_frames_fail_their_check(frame: dict[str, Any]) -> None:
    assert bad_frame(check_frame, frame, CLIENT_FRAMES) == f"malformed {frame['t']!r} frame"


@pytest.mark.parametrize(
    ("frame", "kinds"),
    [
        ({"t": "welcome"}, CLIENT_FRAMES),
        ({"t": "hello", "v": 1, "token": "jwt"}, SERVER_FRAMES),
        ({"t": ""}, SERVER_FRAMES),
    ],
)
def test_a_kind_of_the_other_side_is_unknown(frame: dict[str, Any], kinds: Any) -> None:
    assert bad_frame(check_frame, frame, kinds) == f"unknown frame kind {frame['t']!r}"


@pytest.mark.parametrize("kinds", [CLIENT_FRAMES, SERVER_FRAMES])
def test_a_close_code_must_be_in_the_registry(kinds: Any) -> None:
    frame = {"t": "close", "code": 1234, "reason": ""}
    assert bad_frame(check_frame, frame, kinds) == "unknown code 1234 in 'close'"
    for code in Code:
        close = {"t": "close", "code": int(code), "reason": ""}
        if code.closes_connection and code is not Code.CONNECTION_LOST:
            check_frame(close, kinds)
        else:
            assert bad_frame(check_frame, close, kinds).startswith(("unknown code", "code"))


def _tag_head(tag: int) -> bytes:
    if tag < 24:
        return bytes([0xC0 | tag])
    info, size = next((i, n) for i, n in ((24, 1), (25, 2), (26, 4), (27, 8)) if tag < 2 ** (8 * n))
    return bytes([0xC0 | info]) + tag.to_bytes(size)


def test_every_cbor_tag_is_refused_before_its_decoder_runs() -> None:
    # cbor2 decodes many tags itself (datetimes, bignums, regexes, shared values...): a frame
    # may hold none of them, whatever their content.
    tags = [*range(2**16), 2**16, 2**32 - 1, 2**32, 2**64 - 1]
    for tag in tags:
        payload = b"\xa2\x61t\x64ping\x61x" + _tag_head(tag) + b"\x82\x00\x00"
        assert "undecodable CBOR" in bad_frame(decode_payload, payload), tag
