"""Framing: how payloads (one CBOR item each) travel on a transport.

Connections deal in payloads; a framer sits between them and the transport. On a stream
(``tcp://``) each payload follows a 4-byte big-endian length (``_fast.StreamFramer`` reads
those); on a message transport (WebSocket) each payload is one binary message, no prefix
(``MessageFramer``). Either way the size limit is checked before anything is decoded.

Outbound, every connection queues stream-framed bytes (encoded once, shared by every
recipient of a fan-out); ``split_frames`` takes them apart for a message transport.
"""

from __future__ import annotations

import collections
import enum
import struct

from ._errors import RemoteProtocolError, bad_frame
from .codes import Code

HEADER = struct.Struct(">I")
PREFIX_SIZE = HEADER.size


class Framing(enum.Enum):
    """How a connection's transport delimits payloads."""

    STREAM = "STREAM"
    """A byte stream: each payload follows its 4-byte big-endian length (``tcp://``)."""
    MESSAGE = "MESSAGE"
    """A message transport: each payload is one binary message (WebSocket)."""


def too_large(size: int, most: int) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"frame of {size} bytes is over the {most}-byte limit", Code.FRAME_TOO_LARGE
    )


class MessageFramer:
    """Receive side of a message transport: each message is one payload, checked on arrival."""

    __slots__ = ("_messages", "max_frame_size")

    def __init__(self, max_frame_size: int) -> None:
        self._messages: collections.deque[bytes | RemoteProtocolError] = collections.deque()
        self.max_frame_size = max_frame_size
        """Largest payload accepted; a larger message is dropped unread."""

    def feed(self, message: bytes) -> None:
        if self._messages and type(self._messages[-1]) is not bytes:
            return  # the connection fails at the error already queued: nothing follows it
        size = len(message)
        if size > self.max_frame_size:
            self._messages.append(too_large(size, self.max_frame_size))
        elif size == 0:
            self._messages.append(bad_frame("empty frame"))
        else:
            self._messages.append(bytes(message))

    def clear(self) -> None:
        self._messages.clear()

    def next_payload(self) -> bytes | None:
        """The next payload, or None until another message arrives."""
        if not self._messages:
            return None
        item = self._messages.popleft()
        if isinstance(item, RemoteProtocolError):
            raise item
        return item


def split_frames(chunks: list[bytes]) -> list[bytes]:
    """The payloads of stream-framed ``chunks`` (each holds whole frames), prefixes removed."""
    payloads = []
    for chunk in chunks:
        pos, end = 0, len(chunk)
        while pos < end:
            (size,) = HEADER.unpack_from(chunk, pos)
            pos += PREFIX_SIZE
            payloads.append(chunk[pos : pos + size])
            pos += size
    return payloads
