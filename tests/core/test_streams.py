"""Streams in the core (PROTOCOL.md §24.4): open, accept, chunks within the reader's credit,
credit, end, abort, departures, the per-connection limit, and every bad input: chunks past
the credit, for unknown or closed streams, or from the wrong side, grants past the window,
accepts of nothing. The server never holds more than the window of a stream."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from roomwire import (
    Code,
    InvalidRequest,
    LocalProtocolError,
    MessageTooLarge,
    RemoteProtocolError,
    State,
)
from roomwire.events import (
    ChunkReceived,
    CreditGranted,
    RequestAcked,
    RequestRefused,
    StreamAborted,
    StreamEnded,
    StreamOffered,
)

from .helpers import WIRE_LIMITS, LoneClient, Peer, Room, feed, raw_peer
from .test_rpc import only, pid

WINDOW = 1000


@pytest.fixture
def room() -> Room:
    room = Room(stream_window=WINDOW, max_open_streams=2)
    room.enabled("alice")
    room.enabled("bob")
    for peer in room.peers.values():
        peer.take()
    return room


def opened(room: Room, writer: Peer, reader: Peer, **header: Any) -> str:
    """A stream from writer to reader, accepted; returns its id."""
    rid = writer.client.open_stream(pid(reader), header)
    room.pump()
    offer = only(reader, StreamOffered)
    assert (offer.from_participant_id, offer.header) == (pid(writer), header)
    reader.client.accept_stream(offer.stream_id)
    room.pump()
    assert only(reader, RequestAcked).message_id is None
    acked = only(writer, RequestAcked)
    assert (acked.request_id, acked.message_id) == (rid, offer.stream_id)
    return offer.stream_id


def test_chunks_flow_within_the_credit_and_end(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    sid = opened(room, alice, bob, name="file.bin")
    alice.client.send_chunk(sid, b"x" * 600, {"part": 1})
    alice.client.send_chunk(sid, b"y" * 400)
    room.pump()
    assert bob.take() == [
        ChunkReceived(stream_id=sid, data=b"x" * 600, header={"part": 1}),
        ChunkReceived(stream_id=sid, data=b"y" * 400, header=None),
    ]
    bob.client.grant_credit(sid, 600)
    room.pump()
    assert alice.take() == [CreditGranted(stream_id=sid, n=600)]
    alice.client.send_chunk(sid, b"z" * 600)
    alice.client.end_stream(sid)
    room.pump()
    assert [type(e) for e in bob.take()] == [ChunkReceived, StreamEnded]
    alice.client.send_chunk(sid, b"late")  # ended: this writer has no such stream now
    room.pump()
    aborted = only(alice, StreamAborted)
    assert (aborted.stream_id, aborted.code) == (sid, Code.STREAM_NOT_FOUND)
    assert bob.take() == []


def test_a_chunk_past_the_credit_aborts_the_stream_for_both(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    sid = opened(room, alice, bob)
    alice.client.send_chunk(sid, b"x" * 900)
    alice.client.send_chunk(sid, b"y" * 101)
    room.pump()
    first, aborted = bob.take()
    assert isinstance(first, ChunkReceived)
    assert aborted == StreamAborted(
        stream_id=sid, code=Code.OVER_CREDIT, reason="a 101-byte chunk over the 100 bytes of credit"
    )
    assert only(alice, StreamAborted).code is Code.OVER_CREDIT
    bob.client.grant_credit(sid, 10)  # stale: ignored
    alice.client.abort_stream(sid, "stale")  # stale: ignored
    room.pump()
    assert alice.take() == []
    assert bob.take() == []


def test_a_grant_past_the_window_aborts_the_stream(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    sid = opened(room, alice, bob)
    bob.client.grant_credit(sid, 1)
    room.pump()
    assert only(alice, StreamAborted).code is Code.OVER_CREDIT
    assert only(bob, StreamAborted).reason == "credit past stream_window"


def test_either_side_aborts_with_its_reason(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    sid = opened(room, alice, bob)
    bob.client.abort_stream(sid, "disk full")
    room.pump()
    assert bob.take() == []
    assert alice.take() == [
        StreamAborted(stream_id=sid, code=Code.STREAM_ABORTED, reason="disk full")
    ]
    sid = opened(room, alice, bob)
    alice.client.abort_stream(sid, "cancelled")
    room.pump()
    assert only(bob, StreamAborted).reason == "cancelled"


def test_a_refused_offer_fails_the_writers_open(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    rid = alice.client.open_stream(pid(bob), {})
    room.pump()
    offer = only(bob, StreamOffered)
    bob.client.abort_stream(offer.stream_id, "not accepting streams")
    room.pump()
    refused = only(alice, RequestRefused)
    assert (refused.request_id, refused.code) == (rid, Code.STREAM_ABORTED)
    assert refused.reason == "not accepting streams"


@pytest.mark.parametrize("leave", ["close", "disable"])
def test_a_departed_side_fails_the_stream_for_the_other(room: Room, leave: str) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    carol = room.enabled("carol")
    carol.take()
    to_bob = opened(room, alice, bob)
    from_carol = opened(room, carol, alice)
    getattr(alice.client, leave)()
    room.pump()
    assert only(bob, StreamAborted) == StreamAborted(
        stream_id=to_bob, code=Code.STREAM_PEER_LEFT, reason="the other side left"
    )
    assert only(carol, StreamAborted).stream_id == from_carol


def test_a_reader_leaving_before_accepting_fails_the_open(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    rid = alice.client.open_stream(pid(bob), {})
    room.pump()
    bob.client.close()
    room.pump()
    refused = only(alice, RequestRefused)
    assert (refused.request_id, refused.code) == (rid, Code.STREAM_PEER_LEFT)


def test_open_streams_are_bounded_on_both_sides(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    carol = room.enabled("carol")
    carol.take()
    assert alice.client.limits is not None
    assert (alice.client.limits.stream_window, alice.client.limits.max_open_streams) == (
        WINDOW,
        2,
    )
    opened(room, alice, bob)
    opened(room, alice, bob)
    alice.client.open_stream(pid(carol), {})
    room.pump()
    assert only(alice, RequestRefused).reason == "this connection has 2 streams open"
    carol.client.open_stream(pid(bob), {})
    room.pump()
    assert only(carol, RequestRefused).reason == "the reader has 2 streams open"


def test_opens_are_refused_like_sends(room: Room) -> None:
    alice = room.peers["alice"]
    for to, header, code in (
        ("nobody", {}, Code.NOT_FOUND),
        (pid(alice), {}, Code.INVALID_REQUEST),
    ):
        alice.client.open_stream(to, header)
        room.pump()
        assert only(alice, RequestRefused).code is code
    mute = room.enabled("mute", can_send=False)
    mute.take()
    mute.client.open_stream(pid(alice), {})
    room.pump()
    assert only(mute, RequestRefused).code is Code.FORBIDDEN_SEND


def raw_enabled(room: Room) -> Any:
    raw = raw_peer(room, "raw")
    raw.client.send({"t": "enable", "rid": 1})
    room.pump()
    raw.client.take()
    for peer in room.peers.values():
        if peer is not raw:
            peer.take()  # its arrival
    return raw


def test_raw_stream_frames_breaking_a_rule(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    raw = raw_enabled(room)
    alice.take()
    raw.client.send({"t": "open", "rid": 2, "to": pid(bob), "header": {"x": float("nan")}})
    raw.client.send({"t": "accept", "rid": 3, "sid": "nothing"})
    raw.client.send({"t": "chunk", "sid": "nothing", "data": b"x"})
    raw.client.send({"t": "credit", "sid": "nothing", "n": 5})
    raw.client.send({"t": "end", "sid": "nothing"})
    raw.client.send({"t": "abort", "sid": "nothing", "reason": ""})
    room.pump()
    refused, not_offered, no_stream = raw.client.take()
    assert (refused["rid"], refused["code"]) == (2, Code.INVALID_REQUEST)
    assert (not_offered["rid"], not_offered["code"]) == (3, Code.STREAM_NOT_FOUND)
    assert (no_stream["t"], no_stream["sid"], no_stream["code"]) == (
        "abort",
        "nothing",
        Code.STREAM_NOT_FOUND,
    )
    assert alice.take() == []
    assert bob.take() == []


def test_only_the_reader_accepts_and_only_the_writer_sends(room: Room) -> None:
    alice, bob = room.peers["alice"], room.peers["bob"]
    alice.client.open_stream(pid(bob), {})
    room.pump()
    sid = only(bob, StreamOffered).stream_id
    alice.client.accept_stream(sid)  # the writer cannot accept its own stream
    room.pump()
    assert only(alice, RequestRefused).code is Code.STREAM_NOT_FOUND
    bob.client.accept_stream(sid)
    bob.client.accept_stream(sid)  # twice
    room.pump()
    assert only(bob, RequestRefused).code is Code.STREAM_NOT_FOUND
    alice.take()
    bob.client.send_chunk(sid, b"wrong way")
    alice.client.grant_credit(sid, 5)  # the writer cannot grant: ignored
    room.pump()
    assert only(bob, StreamAborted).code is Code.STREAM_NOT_FOUND
    assert alice.take() == []


def test_a_chunk_or_end_before_the_accept_aborts_the_stream(room: Room) -> None:
    bob = room.peers["bob"]
    raw = raw_enabled(room)
    for n, kind in enumerate(("chunk", "end")):
        raw.client.send({"t": "open", "rid": 10 + n, "to": pid(bob), "header": {}})
        room.pump()
        sid = only(bob, StreamOffered).stream_id
        raw.client.send({"t": kind, "sid": sid, "data": b"early"})
        room.pump()
        (refused,) = raw.client.take()
        assert (refused["t"], refused["rid"]) == ("error", 10 + n)
        assert only(bob, StreamAborted).code in {Code.OVER_CREDIT, Code.STREAM_ABORTED}
        assert refused["code"] == (Code.OVER_CREDIT if kind == "chunk" else Code.STREAM_ABORTED)


@pytest.mark.parametrize("frame_limit", [None, 4096])
def test_a_chunk_header_must_be_json_and_fit(frame_limit: int | None) -> None:
    room = Room(**({} if frame_limit is None else {"max_frame_size": frame_limit}))
    bob = room.enabled("bob")
    raw = raw_enabled(room)
    raw.client.send({"t": "open", "rid": 10, "to": pid(bob), "header": {}})
    room.pump()
    sid = only(bob, StreamOffered).stream_id
    bob.client.accept_stream(sid)
    room.pump()
    bob.take()
    raw.client.take()
    if frame_limit is None:
        raw.client.send({"t": "chunk", "sid": sid, "data": b"", "header": {"x": float("inf")}})
        expected = Code.INVALID_REQUEST
    else:
        # Half floats grow when re-encoded, and a chunk with a key the server drops is
        # re-encoded: the forwarded chunk would outgrow the frame.
        floats = b"\xa1\x61f\x99" + (1000).to_bytes(2) + b"\xf9\x3e\x00" * 1000
        fields = ("t", "chunk", "sid", sid, "data", b"", "new", 0, "header")
        body = b"\xa5" + b"".join(cbor2.dumps(item) for item in fields) + floats
        raw.server.receive_data(len(body).to_bytes(4) + body)
        expected = Code.TOO_LARGE
    room.pump()
    (aborted,) = raw.client.take()
    assert (aborted["t"], aborted["code"]) == ("abort", expected)
    assert only(bob, StreamAborted).code is expected


def test_a_chunk_with_no_other_keys_is_forwarded_as_the_writer_encoded_it() -> None:
    """Else it is re-encoded with the keys the server knows."""
    room = Room(max_frame_size=4096)
    bob = room.enabled("bob")
    raw = raw_enabled(room)
    raw.client.send({"t": "open", "rid": 10, "to": pid(bob), "header": {}})
    room.pump()
    sid = only(bob, StreamOffered).stream_id
    bob.client.accept_stream(sid)
    room.pump()
    bob.take()
    # Half floats, keys in another order: re-encoded, this frame would not fit.
    floats = b"\xa1\x61f\x99" + (1000).to_bytes(2) + b"\xf9\x3e\x00" * 1000
    fields = ("data", b"xy", "sid", sid, "t", "chunk", "header")
    body = b"\xa4" + b"".join(cbor2.dumps(item) for item in fields) + floats
    raw.server.receive_data(len(body).to_bytes(4) + body)
    room.pump()
    (chunk,) = bob.of(ChunkReceived)
    assert (chunk.stream_id, chunk.data, chunk.header) == (sid, b"xy", {"f": [1.5] * 1000})
    # A key the server does not know: re-encoded without it.
    raw.client.send({"t": "chunk", "sid": sid, "data": b"z", "new": 1})
    room.pump()
    (chunk,) = bob.of(ChunkReceived)
    assert (chunk.stream_id, chunk.data, chunk.header) == (sid, b"z", None)


def test_a_reader_that_does_not_read_costs_the_server_at_most_the_window() -> None:
    window = 64 * 1024
    room = Room(stream_window=window, outbound_limit=16 * 1024)
    alice, bob = room.enabled("alice"), room.enabled("bob")
    sid = opened(room, alice, bob)
    # From now on bob's client reads nothing: what the server forwards stays in his queue.
    for _ in range(64):
        alice.client.send_chunk(sid, b"x" * 1024)
    feed(room, alice)
    held = bob.server.outbound_size
    assert window < held < window + 64 * 32  # the window and the chunks' framing
    assert bob.server.state is State.ENABLED  # over outbound_limit, yet not a slow consumer
    for _ in range(100):  # the writer pushes on, past the credit
        alice.client.send_chunk(sid, b"y" * 1024)
    feed(room, alice)
    assert bob.server.outbound_size < held + 100  # only the abort was added
    assert StreamAborted(
        stream_id=sid, code=Code.OVER_CREDIT, reason="a 1024-byte chunk over the 0 bytes of credit"
    ) in list(drain_all(room, bob))


def drain_all(room: Room, peer: Peer) -> list[Any]:
    """Deliver what the server holds for ``peer`` now; the events it produced."""
    room.pump()
    return peer.take()


def test_the_client_checks_its_arguments() -> None:
    lone = LoneClient().enable()
    with pytest.raises(InvalidRequest, match="one participant id"):
        lone.client.open_stream(["a"], {})  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="header"):
        lone.client.open_stream("a", {"x": {1}})  # type: ignore[dict-item]
    with pytest.raises(InvalidRequest, match="stream id"):
        lone.client.accept_stream(5)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="data must be bytes"):
        lone.client.send_chunk("s", "text")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="chunk's header"):
        lone.client.send_chunk("s", b"", [])  # type: ignore[arg-type]
    for n in (0, 2**63, 1.5):
        with pytest.raises(InvalidRequest, match="credit"):
            lone.client.grant_credit("s", n)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="reason"):
        lone.client.abort_stream("s", None)  # type: ignore[arg-type]
    with pytest.raises(MessageTooLarge, match="chunk frame of"):
        lone.client.send_chunk("s", bytes(WIRE_LIMITS["max_send_size"]))
    assert lone.sent() == []
    lone.client.send_chunk("s", memoryview(b"ab"), {"h": 1})
    assert lone.sent() == [{"t": "chunk", "sid": "s", "data": b"ab", "header": {"h": 1}}]


def test_streams_need_messaging_enabled() -> None:
    lone = LoneClient().open()
    with pytest.raises(LocalProtocolError, match="cannot open a stream"):
        lone.client.open_stream("b", {})
    with pytest.raises(LocalProtocolError, match="cannot accept a stream"):
        lone.client.accept_stream("s")
    lone.client.end_stream("s")  # stream frames flow while live
    lone.feed({"t": "open", "sid": "s", "from": "b", "ts": 1, "header": {}})
    with pytest.raises(RemoteProtocolError, match="not allowed"):
        lone.events()


def test_the_client_reads_every_stream_frame() -> None:
    lone = LoneClient().enable()
    lone.feed(
        {"t": "open", "sid": "s", "from": "b", "ts": 2, "header": {"n": "f"}},
        {"t": "chunk", "sid": "s", "data": b"\x01"},
        {"t": "credit", "sid": "w", "n": 7},
        {"t": "end", "sid": "s"},
        {"t": "abort", "sid": "w", "code": int(Code.STREAM_PEER_LEFT), "reason": "gone"},
    )
    assert lone.events() == [
        StreamOffered(stream_id="s", from_participant_id="b", header={"n": "f"}, timestamp=2.0),
        ChunkReceived(stream_id="s", data=b"\x01", header=None),
        CreditGranted(stream_id="w", n=7),
        StreamEnded(stream_id="s"),
        StreamAborted(stream_id="w", code=Code.STREAM_PEER_LEFT, reason="gone"),
    ]


@pytest.mark.parametrize(
    "frame",
    [
        {"t": "open", "sid": "s", "from": "b", "ts": 1},
        {"t": "chunk", "sid": "s", "data": "text"},
        {"t": "chunk", "sid": "s", "data": b"", "header": []},
        {"t": "credit", "sid": "s", "n": 0},
        {"t": "end", "sid": 1},
        {"t": "abort", "sid": "s", "code": 1000, "reason": "a close code"},
    ],
)
def test_malformed_stream_frames_from_the_server_are_bad_frames(frame: dict[str, Any]) -> None:
    lone = LoneClient().enable()
    lone.feed(frame)
    with pytest.raises(RemoteProtocolError) as caught:
        lone.events()
    assert caught.value.code is Code.BAD_FRAME
