"""The public face of the codec and framing: what tests and custom drivers import.

Framing (``HEADER``, ``PREFIX_SIZE``, ``FrameBuffer``) lives in ``_framing`` and ``_fast``,
the codec in ``_codec``, the shape checks in ``_shapes``, and ``CLIENT_FRAMES`` /
``SERVER_FRAMES`` (kind -> checker) are read from the two registries.
"""

from __future__ import annotations

from ._client import SERVER_KINDS
from ._codec import (
    DECODE_OPTIONS,
    JSON_DEPTH,
    MAX_DEPTH,
    Frame,
    decode_payload,
    encode_frame,
    encode_payload,
    is_json_object,
)
from ._errors import bad_frame
from ._fast import StreamFramer as FrameBuffer
from ._fast import encode_ack
from ._framing import HEADER, PREFIX_SIZE, split_frames
from ._participant import is_record as is_participant
from ._registry import Checker
from ._session import CLIENT_KINDS
from ._shapes import LIMIT_FIELDS, check_frame

CLIENT_FRAMES: dict[str, Checker] = {kind: entry.check for kind, entry in CLIENT_KINDS.items()}
"""Frame kinds a client sends, with their shape checks (from the server's registry)."""

SERVER_FRAMES: dict[str, Checker] = {kind: entry.check for kind, entry in SERVER_KINDS.items()}
"""Frame kinds a server sends, with their shape checks (from the client's registry)."""

__all__ = [
    "CLIENT_FRAMES",
    "DECODE_OPTIONS",
    "HEADER",
    "JSON_DEPTH",
    "LIMIT_FIELDS",
    "MAX_DEPTH",
    "PREFIX_SIZE",
    "SERVER_FRAMES",
    "Checker",
    "Frame",
    "FrameBuffer",
    "bad_frame",
    "check_frame",
    "decode_payload",
    "encode_ack",
    "encode_frame",
    "encode_payload",
    "is_json_object",
    "is_participant",
    "split_frames",
]
