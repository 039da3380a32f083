"""Each speed trick in ``roomwire._fast`` gives the same bytes, or the same behaviour, as the
plain version beside it."""

from __future__ import annotations

import itertools

import cbor2
from hypothesis import given
from hypothesis import strategies as st

from roomwire import Code, RemoteProtocolError
from roomwire._fast import (
    PlainStreamFramer,
    StreamFramer,
    encode_ack,
    plain_encode_ack,
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


def _run(framer: StreamFramer | PlainStreamFramer, chunks: list[bytes]) -> list[object]:
    """Feed every chunk and take payloads after each; an error ends the run."""
    seen: list[object] = []
    for chunk in chunks:
        framer.feed(chunk)
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


@given(data=stream, cuts=st.lists(st.integers(min_value=0, max_value=800), max_size=10))
def test_the_shared_drained_buffer_changes_nothing(data: bytes, cuts: list[int]) -> None:
    points = sorted({c for c in cuts if c < len(data)} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    assert _run(StreamFramer(64), chunks) == _run(PlainStreamFramer(64), chunks)


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
