"""Each speed trick in ``roomwire._fast`` gives the same bytes, or the same behaviour, as the
plain version beside it."""

from __future__ import annotations

import itertools

import cbor2
from hypothesis import given
from hypothesis import strategies as st

from roomwire import Code, RemoteProtocolError
from roomwire._codec import decode_payload
from roomwire._fast import (
    PlainStreamFramer,
    StreamFramer,
    decode_chunk,
    encode_ack,
    encode_chunk,
    plain_encode_ack,
    plain_encode_chunk,
    plain_snapshot_frames,
    snapshot_frames,
)
from roomwire.frames import HEADER

U63 = st.integers(min_value=0, max_value=2**63 - 1)
TEXT = st.text(max_size=300)


@given(rid=U63, message_id=TEXT, recipients=st.none() | U63, duplicate=st.booleans())
def test_the_hand_written_ack_is_cbor2s(
    rid: int, message_id: str, recipients: int | None, duplicate: bool
) -> None:
    fast = encode_ack(rid, message_id, recipients, duplicate)
    assert fast == plain_encode_ack(rid, message_id, recipients, duplicate)


@given(stream_id=TEXT, data=st.binary(max_size=300) | st.sampled_from([bytes(70_000)]))
def test_the_hand_written_chunk_is_cbor2s(stream_id: str, data: bytes) -> None:
    assert encode_chunk(stream_id, data) == plain_encode_chunk(stream_id, data)


def _head(major: int, value: int, width: int) -> bytes:
    """A CBOR head of ``major`` type with ``value`` in the given width (0: in the first byte)."""
    if width == 0:
        return bytes((major | value,))
    return bytes((major | (24 + width.bit_length() - 1),)) + value.to_bytes(width, "big")


@st.composite
def chunk_payloads(draw: st.DrawFn) -> bytes:
    """Chunk frames as encode_chunk lays them out, with any head widths, maybe damaged."""
    sid = draw(st.text(max_size=30)).encode()
    if draw(st.booleans()):
        sid = draw(st.binary(max_size=30))  # maybe not UTF-8
    data = draw(st.binary(max_size=40))
    widths = [0, 1, 2, 4, 8]
    sid_width = draw(st.sampled_from([w for w in widths if w or len(sid) < 24]))
    data_width = draw(st.sampled_from([w for w in widths if w or len(data) < 24]))
    payload = b"".join(
        (
            b"\xa3\x61t\x65chunk\x63sid",
            _head(0x60, len(sid), sid_width),
            sid,
            b"\x64data",
            _head(0x40, len(data), data_width),
            data,
        )
    )
    cut = draw(st.integers(min_value=0, max_value=len(payload)))
    if draw(st.booleans()):
        payload = payload[:cut] + draw(st.binary(max_size=3)) + payload[cut + 1 :]
    return payload


@given(chunk_payloads())
def test_the_hand_read_chunk_is_the_decoders(payload: bytes) -> None:
    frame = decode_chunk(payload)
    if frame is not None:
        assert decode_payload(payload) == frame


def test_the_hand_read_chunk_takes_a_whole_frame_only() -> None:
    good = encode_chunk("s1", b"xyz")[4:]
    assert decode_chunk(good) == {"t": "chunk", "sid": "s1", "data": b"xyz"}
    assert decode_chunk(good + b"\x00") is None  # bytes after the data: not this layout
    assert decode_chunk(good[:-1]) is None
    assert decode_chunk(b"\xa3\x61t\x65chunk\x63sid") is None  # ends before the sid
    assert decode_chunk(b"\xa3\x61t\x65chunk\x63sid\x79\x00") is None  # a cut head
    assert decode_chunk(b"\xa3\x61t\x65chunk\x63sid\x80") is None  # not text


participants = st.builds(
    lambda pid, name, attributes: cbor2.dumps(
        {"id": pid, "name": name, "role": "user", "attributes": attributes}
    ),
    TEXT,
    TEXT,
    st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=200), max_size=5),
)


@given(
    rid=U63,
    records=st.lists(participants, max_size=40),
    max_frame_size=st.integers(min_value=1000, max_value=5000),
)
def test_spliced_snapshot_pages_are_cbor2s(
    rid: int, records: list[bytes], max_frame_size: int
) -> None:
    fast = snapshot_frames(rid, records, max_frame_size)
    assert fast == plain_snapshot_frames(rid, records, max_frame_size)


def _frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def _run(
    framer: StreamFramer | PlainStreamFramer,
    chunks: list[bytes],
    skip: frozenset[int] = frozenset(),
) -> list[object]:
    """Feed every chunk and take payloads after each (but after the chunks numbered in
    ``skip``, whose next chunk comes first); an error ends the run."""
    seen: list[object] = []
    for number, chunk in enumerate(chunks):
        framer.feed(chunk)
        if number in skip and number < len(chunks) - 1:
            seen.append(len(framer))
            continue
        try:
            while (payload := framer.next_payload()) is not None:
                seen.append(payload)
        except RemoteProtocolError as exc:
            seen.append((exc.code, exc.reason))
            framer.clear()
            seen.append(len(framer))
            return seen
        seen.append(len(framer))
    return seen


stream = st.lists(
    st.binary(min_size=1, max_size=60).map(_frame)
    | st.just(HEADER.pack(0))
    | st.just(HEADER.pack(100)),
    max_size=12,
).map(b"".join)


@given(
    data=stream,
    cuts=st.lists(st.integers(min_value=0, max_value=800), max_size=30),
    mutable=st.booleans(),
    skip=st.frozensets(st.integers(min_value=0, max_value=30)),
)
def test_keeping_reads_as_they_came_changes_nothing(
    data: bytes, cuts: list[int], mutable: bool, skip: frozenset[int]
) -> None:
    points = sorted({c for c in cuts if c < len(data)} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    fed: list[bytes] = [bytearray(c) if mutable else c for c in chunks]  # type: ignore[misc]
    assert _run(StreamFramer(64), fed, skip) == _run(PlainStreamFramer(64), chunks, skip)


def test_a_read_in_a_reused_buffer_is_copied() -> None:
    framer, read = StreamFramer(64), bytearray(_frame(b"abc"))
    framer.feed(read)  # type: ignore[arg-type]
    read[:] = bytes(len(read))  # the caller reads the next bytes into the same buffer
    assert framer.next_payload() == b"abc"


def test_both_stream_framers_refuse_a_large_or_empty_prefix() -> None:
    for framer in (StreamFramer(64), PlainStreamFramer(64)):
        assert _run(framer, [HEADER.pack(65)]) == [
            (Code.FRAME_TOO_LARGE, "frame of 65 bytes is over the 64-byte limit"),
            0,
        ]
        assert _run(framer, [b"\x00\x00", b"\x00\x00"]) == [
            2,
            (Code.BAD_FRAME, "empty frame"),
            0,
        ]


def test_both_stream_framers_wait_for_a_whole_frame() -> None:
    for framer in (StreamFramer(64), PlainStreamFramer(64)):
        assert _run(framer, [HEADER.pack(3) + b"ab", b"c"]) == [6, b"abc", 0]
        # A frame taken before the rest of the next one arrives: the buffer moves up.
        assert _run(framer, [_frame(b"a") + HEADER.pack(1), b"b"]) == [b"a", 4, b"b", 0]
        # A prefix split across reads, then frames walked in the gathered bytes.
        one, two, three = _frame(b"one"), _frame(b"two"), _frame(b"three")
        reads = [one[:2], one[2:] + two + three[:1], three[1:]]
        assert _run(framer, reads) == [2, b"one", b"two", 1, b"three", 0]
        # A frame that ends in the next read, which holds more: walked on in that read.
        reads = [one + two[:6], two[6:] + three]
        assert _run(framer, reads) == [b"one", 6, b"two", b"three", 0]
