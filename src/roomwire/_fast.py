"""The core's speed tricks, each beside the plain version it must equal.

The main path calls only the fast versions. The plain ones are the specification, kept for
the equality tests (tests/core/test_fast.py) and for the reader.
"""

from __future__ import annotations

from typing import Any

import cbor2

from ._errors import bad_frame
from ._framing import HEADER, PREFIX_SIZE, too_large

Frame = dict[str, object]

# --- 1. the ack, written by hand: one goes out for every message routed ------------------


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


_ACK_KEYS = b"\x61t\x63ack\x63rid"  # "t": "ack", "rid": ...
_ACK_ID = b"\x62id"
_ACK_RECIPIENTS = b"\x6arecipients"
_ACK_DUP = b"\x63dup\xf5"  # "dup": true
_ACK_MAP4 = b"\xa4" + _ACK_KEYS  # a map of 4: t, rid, id, recipients


def encode_ack(
    request_id: int, message_id: str, recipients: int | None = None, duplicate: bool = False
) -> bytes:
    """``plain_encode_ack``'s bytes, built without the generic encoder."""
    text = message_id.encode()
    if duplicate is False and recipients is not None:  # every message routed: no list
        body = b"".join(
            (
                _ACK_MAP4,
                _head(0x00, request_id),
                _ACK_ID,
                _head(0x60, len(text)),
                text,
                _ACK_RECIPIENTS,
                _head(0x00, recipients),
            )
        )
        return HEADER.pack(len(body)) + body
    parts = [
        bytes((0xA3 + (recipients is not None) + duplicate,)),
        _ACK_KEYS,
        _head(0x00, request_id),
        _ACK_ID,
        _head(0x60, len(text)),
        text,
    ]
    if recipients is not None:
        parts += (_ACK_RECIPIENTS, _head(0x00, recipients))
    if duplicate:
        parts.append(_ACK_DUP)
    body = b"".join(parts)
    return HEADER.pack(len(body)) + body


def plain_encode_ack(
    request_id: int, message_id: str, recipients: int | None = None, duplicate: bool = False
) -> bytes:
    """A message's ack, stream-framed: ``recipients`` and ``dup`` only when there is one."""
    frame: Frame = {"t": "ack", "rid": request_id, "id": message_id}
    if recipients is not None:
        frame["recipients"] = recipients
    if duplicate:
        frame["dup"] = True
    body = cbor2.dumps(frame)
    return HEADER.pack(len(body)) + body


# --- 1b. a stream chunk, written by hand: a stream is mostly these, each up to 1 MiB --------

CHUNK_START = b"\xa3\x61t\x65chunk\x63sid"  # {"t": "chunk", "sid": ...
_CHUNK_DATA = b"\x64data"


def encode_chunk(stream_id: str, data: bytes) -> bytes:
    """``plain_encode_chunk``'s bytes: the data is copied once, not encoded and then copied
    again behind its length prefix."""
    sid = stream_id.encode()
    head = b"".join((CHUNK_START, _head(0x60, len(sid)), sid, _CHUNK_DATA, _head(0x40, len(data))))
    return b"".join((HEADER.pack(len(head) + len(data)), head, data))


_TEXT_HEAD = 0x60
_BYTES_HEAD = 0x40


def _read_head(payload: bytes, pos: int, major: int) -> tuple[int, int] | None:
    """A definite-length head of ``major`` type at ``pos``: (length, where the item starts)."""
    if pos >= len(payload):
        return None
    info = payload[pos] - major
    if 0 <= info < 24:
        return info, pos + 1
    if 24 <= info <= 27:
        width = 1 << (info - 24)
        end = pos + 1 + width
        if end > len(payload):
            return None
        return int.from_bytes(payload[pos + 1 : end], "big"), end
    return None


def decode_chunk(payload: bytes) -> dict[str, Any] | None:
    """``decode_payload``'s frame for a ``chunk`` laid out as ``encode_chunk`` writes it (any
    head widths), read without the generic decoder, which copies the data twice; None for
    any other payload, which then takes the generic path."""
    if not payload.startswith(CHUNK_START):
        return None  # (receive tests this first: other frames skip the call)
    head = _read_head(payload, len(CHUNK_START), _TEXT_HEAD)
    if head is None:
        return None
    size, start = head
    end = start + size
    if payload[end : end + len(_CHUNK_DATA)] != _CHUNK_DATA:
        return None
    head = _read_head(payload, end + len(_CHUNK_DATA), _BYTES_HEAD)
    if head is None or head[1] + head[0] != len(payload):
        return None
    try:
        sid = payload[start:end].decode()
    except UnicodeDecodeError:
        return None
    return {"t": "chunk", "sid": sid, "data": payload[head[1] :]}


def plain_encode_chunk(stream_id: str, data: bytes) -> bytes:
    """A chunk frame without a header, stream-framed."""
    body = cbor2.dumps({"t": "chunk", "sid": stream_id, "data": data})
    return HEADER.pack(len(body)) + body


# --- 2. snapshot pages spliced from records encoded once ---------------------------------

PAGE_OVERHEAD = 64
"""Bytes a snapshot page or a presence frame needs besides its participant records (its keys,
request id or sequence number, array header): a record this much under the frame size fits."""


def page_records(records: list[bytes], max_frame_size: int) -> list[list[bytes]]:
    """Encoded records cut into pages that each fit a frame (at least one page)."""
    budget = max_frame_size - PAGE_OVERHEAD
    pages: list[list[bytes]] = [[]]
    used = 0
    for record in records:
        size = len(record)
        if pages[-1] and used + size > budget:
            pages.append([])
            used = 0
        pages[-1].append(record)
        used += size
    return pages


def snapshot_frames(rid: int, records: list[bytes], max_frame_size: int) -> list[bytes]:
    """``plain_snapshot_frames``'s bytes: the records, encoded once per membership change,
    are spliced into each page's array, so a large room costs no re-encoding per enable."""
    pages = page_records(records, max_frame_size)
    frames = []
    for number, page in enumerate(pages, start=1):
        head = cbor2.dumps(
            {"t": "snapshot", "rid": rid, "more": number < len(pages), "participants": []}
        )
        # The empty array is the map's last value: swap it for the records.
        body = head[:-1] + _head(0x80, len(page)) + b"".join(page)
        frames.append(HEADER.pack(len(body)) + body)
    return frames


def plain_snapshot_frames(rid: int, records: list[bytes], max_frame_size: int) -> list[bytes]:
    """The presence snapshot as stream-framed pages of at most ``max_frame_size`` bytes."""
    pages = page_records(records, max_frame_size)
    frames = []
    for number, page in enumerate(pages, start=1):
        frame = {
            "t": "snapshot",
            "rid": rid,
            "more": number < len(pages),
            "participants": [cbor2.loads(r) for r in page],
        }
        body = cbor2.dumps(frame)
        frames.append(HEADER.pack(len(body)) + body)
    return frames


# --- 3. the stream receive buffer: bytes kept as they came, one copy per payload ----------

_DRAINED = b""
"""Every drained StreamFramer's buffer: an idle connection holds no buffer of its own."""


class StreamFramer:
    """``PlainStreamFramer`` that walks frames by offset and copies each payload once.

    A read is kept as the ``bytes`` it came in, and each payload is sliced out of it; a frame
    that continues in the next read is joined from both reads' slices, and the rest of the
    next read is walked in place. Only when a frame spans more than two reads (or the caller
    feeds again without taking payloads) are the reads gathered in a ``bytearray``. Stream
    chunks are 64 KiB and more: each copy and large allocation saved shows in throughput."""

    __slots__ = ("_data", "_next", "_pos", "max_frame_size")

    def __init__(self, max_frame_size: int) -> None:
        self._data: bytes | bytearray = _DRAINED
        self._pos = 0
        self._next = _DRAINED
        """A read that came while ``_data`` still held the start of a frame."""
        self.max_frame_size = max_frame_size
        """Largest frame body accepted; a larger length prefix is refused unread."""

    def __len__(self) -> int:
        return len(self._data) - self._pos + len(self._next)

    def feed(self, data: bytes) -> None:
        if type(data) is not bytes:
            data = bytes(data)  # the caller may reuse its buffer
        held, pos = self._data, self._pos
        if pos == len(held):
            self._data, self._pos = data, 0
        elif type(held) is bytes and not self._next:
            self._next = data
        else:
            self._gather()
            self._data += data  # _gather made it a bytearray: appended in place

    def _gather(self) -> None:
        """Put what is held in one bytearray (a frame spans more than two reads)."""
        held, pos = self._data, self._pos
        if isinstance(held, bytearray):
            if pos:
                del held[:pos]  # one compaction per feed, not one per frame
        else:
            held = bytearray(memoryview(held)[pos:])
        held += self._next
        self._data, self._pos, self._next = held, 0, _DRAINED

    def clear(self) -> None:
        """Drop everything buffered (the connection is closed: nothing more is decoded)."""
        self._data, self._pos, self._next = _DRAINED, 0, _DRAINED

    def next_payload(self) -> bytes | None:
        """The next complete frame body, or None until more bytes arrive."""
        data, pos = self._data, self._pos
        if len(data) - pos < PREFIX_SIZE:
            if not self._next:
                return None
            self._gather()  # the length prefix itself spans the reads
            data, pos = self._data, 0
            if len(data) < PREFIX_SIZE:
                return None
        (size,) = HEADER.unpack_from(data, pos)
        if size > self.max_frame_size:
            raise too_large(size, self.max_frame_size)
        if size == 0:
            raise bad_frame("empty frame")
        start = pos + PREFIX_SIZE
        end = start + size
        if end <= len(data):
            # One copy either way (a bytearray's slice would make two).
            view = data if type(data) is bytes else memoryview(data)
            payload = bytes(view[start:end])
            if end < len(data):
                self._pos = end
            else:
                self._data, self._pos, self._next = self._next, 0, _DRAINED
            return payload
        following = self._next
        rest = end - len(data)
        if rest > len(following):
            return None
        # The frame ends in the next read: join the two slices, walk on in that read.
        payload = b"".join((memoryview(data)[start:], memoryview(following)[:rest]))
        if rest < len(following):
            self._data, self._pos, self._next = following, rest, _DRAINED
        else:
            self._data, self._pos, self._next = _DRAINED, 0, _DRAINED
        return payload


class PlainStreamFramer:
    """Receive buffer of a stream transport: 4-byte big-endian length, then the payload. The
    length is checked against the limit as soon as it is buffered, before the body."""

    def __init__(self, max_frame_size: int) -> None:
        self._data = bytearray()
        self.max_frame_size = max_frame_size

    def __len__(self) -> int:
        return len(self._data)

    def feed(self, data: bytes) -> None:
        self._data += data

    def clear(self) -> None:
        self._data = bytearray()

    def next_payload(self) -> bytes | None:
        if len(self._data) < PREFIX_SIZE:
            return None
        (size,) = HEADER.unpack_from(self._data)
        if size > self.max_frame_size:
            raise too_large(size, self.max_frame_size)
        if size == 0:
            raise bad_frame("empty frame")
        if len(self._data) < PREFIX_SIZE + size:
            return None
        payload = bytes(self._data[PREFIX_SIZE : PREFIX_SIZE + size])
        del self._data[: PREFIX_SIZE + size]
        return payload
