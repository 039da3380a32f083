"""The stateless codec: a frame is one CBOR map whose ``"t"`` names the kind.

``_framing`` delimits frames on the transport and ``_shapes`` checks each kind's fields.
Decoding raises only ``RemoteProtocolError``.
"""

from __future__ import annotations

import math
from typing import Any

import cbor2

from ._errors import bad_frame
from ._framing import HEADER

MAX_DEPTH = 32
"""Deepest nesting of CBOR arrays and maps a frame may hold, its own map included."""

JSON_DEPTH = MAX_DEPTH - 1
"""Deepest nesting of a message object (it travels one level down, in the frame's map)."""

ATTRIBUTES_DEPTH = MAX_DEPTH - 3
"""Deepest nesting of an attributes object: it travels three levels down, in a snapshot
page's participant record (frame map, participants array, record map)."""

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
    """Encode one frame, stream-framed (length prefix included)."""
    payload = cbor2.dumps(frame)
    return HEADER.pack(len(payload)) + payload


def encode_payload(frame: Frame) -> bytes:
    """Encode one frame without its length prefix (the form for message transports)."""
    return cbor2.dumps(frame)


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
    # cbor2's cap counts items, not containers: it lets an empty array or map through one
    # level below MAX_DEPTH, and nothing else. An empty one is the byte 0x80 or 0xa0, and
    # each level is an array or map head, one byte of 0x80-0xbf, so only a payload with such
    # a byte and more heads than MAX_DEPTH can hold one: two scans in C (the first is enough
    # for most text) spare the walk for almost every frame.
    if (
        (0x80 in payload or 0xA0 in payload)
        and len(payload.translate(None, _NOT_CONTAINER_HEADS)) > MAX_DEPTH
        and _too_deep(obj)
    ):
        raise bad_frame(f"arrays and maps nested over {MAX_DEPTH} levels deep")
    return obj


_NOT_CONTAINER_HEADS = bytes(b for b in range(256) if not 0x80 <= b <= 0xBF)
"""Every byte that cannot start an array or a map (major types 4 and 5)."""


def _too_deep(frame: Frame) -> bool:
    """True when some array or map of ``frame`` lies more than ``MAX_DEPTH`` levels deep."""
    stack: list[tuple[Any, int]] = [(frame, 1)]
    while stack:
        container, depth = stack.pop()
        for child in container.values() if type(container) is dict else container:
            if type(child) is dict or type(child) is list:
                if depth == MAX_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


def is_json_object(value: object, most_depth: int = JSON_DEPTH) -> bool:
    """True when ``value`` is a JSON object this protocol can carry: str-keyed maps, lists,
    text, 64-bit ints, finite floats, bools and null, nested at most ``most_depth`` deep
    (``JSON_DEPTH`` for a message, ``ATTRIBUTES_DEPTH`` for attributes: the depth left where
    it travels). Iterative, so neither depth nor a cycle costs recursion."""
    if type(value) is not dict:
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > most_depth:
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
