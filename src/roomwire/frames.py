"""The stateless codec: length-prefixed CBOR frames and the shape of every frame kind.

A frame on a stream transport is a 4-byte big-endian length N, then N bytes holding one CBOR
map whose ``"t"`` names the kind. The length is checked against the limit as soon as its four
bytes are buffered, before the body is decoded. Decoding raises only ``RemoteProtocolError``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

import cbor2

from ._errors import RemoteProtocolError
from .codes import Code

HEADER = struct.Struct(">I")
PREFIX_SIZE = HEADER.size
MAX_DEPTH = 32
"""Deepest nesting of CBOR containers (and tags) a frame may hold."""

JSON_DEPTH = MAX_DEPTH - 1
"""Deepest nesting of a message or attributes object (the frame's own map is one level)."""

Frame = dict[str, Any]


def _refuse_tag(*_: object) -> None:
    raise cbor2.CBORDecodeError("CBOR tags are not part of roomwire frames")


# cbor2 decodes these tags itself before any tag_hook runs (some at a cost that grows with the
# square of their size, others into cycles): each must be refused by number. Every other tag
# reaches the tag_hook, which refuses it too.
_NO_TAGS = dict.fromkeys(
    (
        0,
        1,
        2,
        3,
        4,
        5,
        25,
        28,
        29,
        30,
        35,
        36,
        37,
        52,
        54,
        100,
        256,
        258,
        260,
        261,
        1004,
        43000,
        55799,
    ),
    _refuse_tag,
)


DECODE_OPTIONS: dict[str, Any] = {
    "max_depth": MAX_DEPTH,
    "allow_indefinite": False,
    "allow_duplicate_keys": False,
    "strict_hashable_types": True,
    "semantic_decoders": _NO_TAGS,
    "tag_hook": _refuse_tag,
}
"""The decoder's hardening: what ``decode_payload`` passes to ``cbor2.loads``."""


def encode_frame(frame: Frame) -> bytes:
    """Encode one frame, length prefix included."""
    payload = cbor2.dumps(frame)
    return HEADER.pack(len(payload)) + payload


def _head(major: int, value: int) -> bytes:
    """A CBOR item head: major type bits plus the shortest encoding of ``value``."""
    if value < 24:
        return bytes((major | value,))
    if value < 0x100:
        return bytes((major | 24, value))
    if value < 0x10000:
        return bytes((major | 25,)) + value.to_bytes(2, "big")
    if value < 0x100000000:
        return bytes((major | 26,)) + value.to_bytes(4, "big")
    return bytes((major | 27,)) + value.to_bytes(8, "big")


_ACK_START = b"\xa3\x61t\x63ack\x63rid"  # {"t": "ack", "rid": ...
_ACK_ID = b"\x62id"


def encode_ack(request_id: int, message_id: str) -> bytes:
    """``encode_frame({"t": "ack", "rid": request_id, "id": message_id})``, the same bytes,
    written out by hand: one goes out for every message routed."""
    text = message_id.encode()
    body = b"".join((_ACK_START, _head(0x00, request_id), _ACK_ID, _head(0x60, len(text)), text))
    return HEADER.pack(len(body)) + body


def encode_payload(frame: Frame) -> bytes:
    """Encode one frame without its length prefix (the form for message transports)."""
    return cbor2.dumps(frame)


def bad_frame(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(reason, Code.BAD_FRAME)


def decode_payload(payload: bytes) -> Frame:
    """Decode one frame body to a map with a text ``"t"``; anything else is BAD_FRAME."""
    try:
        obj = cbor2.loads(payload, **DECODE_OPTIONS)
    # cbor2 documents CBORDecodeError, but hostile input has also raised ValueError,
    # OverflowError and MemoryError there (cbor2#198): all of them mean "bad frame" here.
    # The wire reason is fixed (cbor2's messages change between versions); the cause is
    # chained for local debugging.
    except Exception as exc:
        raise bad_frame("undecodable CBOR, or over a decoding cap") from exc
    if type(obj) is not dict or type(obj.get("t")) is not str:
        raise bad_frame("a frame must be a CBOR map with a text 't' (the frame kind)")
    return obj


def is_json_object(value: object) -> bool:
    """True when ``value`` is a JSON object this protocol can carry: str-keyed maps, lists,
    text, 64-bit ints, finite floats, bools and null, nested at most ``JSON_DEPTH`` deep (it
    travels inside a frame's map). Iterative, so neither depth nor a cycle costs recursion."""
    if type(value) is not dict:
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > JSON_DEPTH:
            return False
        if type(container) is dict:
            for key in container:  # a plain loop: a generator costs more than small maps do
                if type(key) is not str:
                    return False
            children = container.values()
        else:
            children = container
        for child in children:
            kind = type(child)
            if kind is str or kind is bool or child is None:
                continue
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind is int:
                if not -(2**64) <= child < 2**64:  # wider ints need CBOR tags, refused
                    return False
            elif kind is not float or not math.isfinite(child):
                return False
    return True


_DRAINED = bytearray()
"""Every drained FrameBuffer's buffer: shared, so ``feed`` replaces it rather than grow it."""


class FrameBuffer:
    """Receive buffer: appends chunks and walks complete frames by offset."""

    __slots__ = (
        "_data",
        "_pos",
        "max_frame_size",
    )

    def __init__(self, max_frame_size: int) -> None:
        self._data = _DRAINED
        self._pos = 0
        self.max_frame_size = max_frame_size
        """Largest frame body accepted; a larger length prefix is refused unread."""

    def __len__(self) -> int:
        return len(self._data) - self._pos

    def feed(self, data: bytes) -> None:
        if self._pos:
            # One compaction per feed, not one per frame.
            del self._data[: self._pos]
            self._pos = 0
        if self._data:
            self._data += data
        else:
            self._data = bytearray(data)  # never into _DRAINED, which stays empty

    def clear(self) -> None:
        """Drop everything buffered (the connection is closed: nothing more is decoded)."""
        self._data, self._pos = _DRAINED, 0

    def next_payload(self) -> bytes | None:
        """The next complete frame body, or None until more bytes arrive."""
        data, pos = self._data, self._pos
        if len(data) - pos < PREFIX_SIZE:
            return None
        (size,) = HEADER.unpack_from(data, pos)
        if size > self.max_frame_size:
            raise RemoteProtocolError(
                f"frame of {size} bytes is over the {self.max_frame_size}-byte limit",
                Code.FRAME_TOO_LARGE,
            )
        if size == 0:
            raise bad_frame("empty frame")
        end = pos + PREFIX_SIZE + size
        if len(data) < end:
            return None
        if end == len(data):
            # Everything is read: an idle connection keeps no buffer of its own.
            self._data, self._pos = _DRAINED, 0
        else:
            self._pos = end
        return bytes(data[pos + PREFIX_SIZE : end])


# --- frame shapes -----------------------------------------------------------------------
# Each checker takes a decoded map and raises BAD_FRAME unless the fields it needs have the
# right types. Unknown keys are ignored (room for additive, backwards-compatible fields).

Checker = Callable[[Frame], None]


def _require(ok: bool, kind: str) -> None:
    if not ok:
        raise bad_frame(f"malformed {kind!r} frame")


def _is_int(value: object) -> bool:
    return type(value) is int and 0 <= value < 2**63


def _is_duration(value: object) -> bool:
    """A positive, finite number of seconds (NaN fails both comparisons)."""
    return (type(value) is int or type(value) is float) and 0 < value < math.inf


def is_participant(value: object) -> bool:
    return (
        type(value) is dict
        and type(value.get("id")) is str
        and type(value.get("name")) is str
        and type(value.get("role")) is str
        and type(value.get("attributes")) is dict
    )


def _optional_attachment(frame: Frame) -> bool:
    att = frame.get("att")
    return att is None or type(att) is bytes


def _check_hello(f: Frame) -> None:
    room = f.get("room")
    _require(
        _is_int(f.get("v")) and type(f.get("token")) is str and (room is None or type(room) is str),
        "hello",
    )


def _check_request(f: Frame) -> None:
    _require(_is_int(f.get("rid")), f["t"])


def _check_enable(f: Frame) -> None:
    presence = f.get("presence", True)
    _require(_is_int(f.get("rid")) and type(presence) is bool, "enable")


def _check_send(f: Frame) -> None:
    # The hottest check (every direct message): written out, with no helper calls.
    get = f.get
    to, rid, att = get("to"), get("rid"), get("att")
    if not (
        type(rid) is int
        and 0 <= rid < 2**63
        and type(to) is list
        and type(get("type")) is str
        and type(get("message")) is dict
        and (att is None or type(att) is bytes)
    ):
        raise bad_frame("malformed 'send' frame")
    for recipient in to:
        if type(recipient) is not str:
            raise bad_frame("malformed 'send' frame")


def _check_broadcast(f: Frame) -> None:
    _require(
        _is_int(f.get("rid"))
        and type(f.get("type")) is str
        and type(f.get("message")) is dict
        and _optional_attachment(f),
        "broadcast",
    )


def _check_attrs(f: Frame) -> None:
    _require(_is_int(f.get("rid")) and type(f.get("attributes")) is dict, "attrs")


def _check_bare(f: Frame) -> None:
    """ping and pong carry nothing."""


def _check_coded(f: Frame, closes: bool) -> None:
    """A close carries a close code (below 4000, never the local-only CONNECTION_LOST); an
    error carries a refusal code (4000 and up)."""
    _require(_is_int(f.get("code")) and type(f.get("reason")) is str, f["t"])
    code = f["code"]
    if code not in Code._value2member_map_ or code == Code.CONNECTION_LOST:
        raise bad_frame(f"unknown code {code} in {f['t']!r}")
    if Code(code).closes_connection is not closes:
        raise bad_frame(f"code {code} does not belong in {f['t']!r}")


def _check_close(f: Frame) -> None:
    _check_coded(f, closes=True)


def _check_welcome(f: Frame) -> None:
    limits = f.get("limits")
    _require(
        _is_int(f.get("v"))
        and type(f.get("room")) is str
        and is_participant(f.get("participant"))
        and type(limits) is dict
        and all(_is_int(limits.get(name)) for name in LIMIT_FIELDS)
        and _is_duration(f.get("hb"))
        and _is_duration(f.get("hbt")),
        "welcome",
    )


def _check_snapshot(f: Frame) -> None:
    participants = f.get("participants")
    _require(
        _is_int(f.get("rid"))
        and type(f.get("more")) is bool
        and type(participants) is list
        and all(is_participant(p) for p in participants),
        "snapshot",
    )


def _check_ack(f: Frame) -> None:
    message_id = f.get("id")
    _require(_is_int(f.get("rid")) and (message_id is None or type(message_id) is str), "ack")


def _check_error(f: Frame) -> None:
    _require(_is_int(f.get("rid")), "error")
    _check_coded(f, closes=False)


def _check_msg(f: Frame) -> None:
    _require(
        type(f.get("id")) is str
        and _is_int(f.get("seq"))
        and type(f.get("ts")) in (int, float)
        and type(f.get("from")) is str
        and type(f.get("type")) is str
        and type(f.get("message")) is dict
        and type(f.get("bc")) is bool
        and _optional_attachment(f),
        "msg",
    )


def _check_presence(f: Frame) -> None:
    _require(_is_int(f.get("seq")) and is_participant(f.get("p")), f["t"])


def _check_left(f: Frame) -> None:
    _require(_is_int(f.get("seq")) and type(f.get("id")) is str, "left")


LIMIT_FIELDS = (
    "max_frame_size",
    "max_send_size",
    "max_recipients",
    "max_type_length",
    "max_attributes_size",
)

CLIENT_FRAMES: dict[str, Checker] = {
    "hello": _check_hello,
    "enable": _check_enable,
    "disable": _check_request,
    "send": _check_send,
    "broadcast": _check_broadcast,
    "attrs": _check_attrs,
    "ping": _check_bare,
    "pong": _check_bare,
    "close": _check_close,
}
"""Frame kinds a client sends, with their shape checks."""

SERVER_FRAMES: dict[str, Checker] = {
    "welcome": _check_welcome,
    "snapshot": _check_snapshot,
    "ack": _check_ack,
    "error": _check_error,
    "msg": _check_msg,
    "joined": _check_presence,
    "updated": _check_presence,
    "left": _check_left,
    "ping": _check_bare,
    "pong": _check_bare,
    "close": _check_close,
}
"""Frame kinds a server sends, with their shape checks."""


def check_frame(frame: Frame, kinds: dict[str, Checker]) -> None:
    """Raise BAD_FRAME unless ``frame`` is one of ``kinds`` with the right field types."""
    checker = kinds.get(frame["t"])
    if checker is None:
        raise bad_frame(f"unknown frame kind {frame['t'][:40]!r}")
    checker(frame)
