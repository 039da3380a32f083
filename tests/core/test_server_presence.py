"""RoomServer presence: the snapshot (in pages), ordered diffs, and removal exactly once
however a participant goes."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import cbor2
import pytest

from roomwire import ClientConfig, Code, RemoteProtocolError, State
from roomwire.events import (
    ConnectionClosed,
    MessagingEnabled,
    ParticipantAdded,
    ParticipantDisabled,
    ParticipantRemoved,
    ParticipantUpdated,
)

from .helpers import Peer, RawPeer, Room, feed, raw_peer


def raw_enable(room: Room, peer: RawPeer) -> list[bytes]:
    """Enable ``peer`` and return the raw frames (prefix included) the server answered with."""
    peer.client.send({"t": "enable", "rid": 9})
    feed(room, peer)
    data = peer.server.data_to_send()
    frames = []
    while data:
        (size,) = struct.unpack_from(">I", data)
        frames.append(data[: 4 + size])
        data = data[4 + size :]
    return frames


def test_diffs_arrive_in_order_with_rising_seq() -> None:
    room = Room()
    bob = room.enabled("bob")
    carol = room.join("carol")
    bob.take()
    carol.client.enable()
    carol.client.set_attributes({"away": True})
    room.pump()
    carol.client.disable()
    room.pump()
    diffs = bob.take()
    assert [type(e) for e in diffs] == [ParticipantAdded, ParticipantUpdated, ParticipantRemoved]
    assert [e.participant.attributes for e in diffs] == [{}, {"away": True}, {"away": True}]
    assert {e.participant.id for e in diffs} == {"id2"}
    seqs = [e.seq for e in diffs]
    assert seqs == sorted(set(seqs))
    assert bob.client.remote_participants == []
    assert [e for e in carol.server_events if isinstance(e, ParticipantDisabled)] == [
        ParticipantDisabled(participant=diffs[-1].participant)
    ]


def test_a_participant_hears_no_diff_about_itself() -> None:
    room = Room()
    room.enabled("bob")
    carol = room.enabled("carol")
    carol.take()
    carol.client.set_attributes({"x": 1})
    room.pump()
    assert [type(e).__name__ for e in carol.take()] == ["RequestAcked"]


# --- removal exactly once ------------------------------------------------------------------


def by_disable(room: Room, leaver: RawPeer, observer: Peer) -> None:
    leaver.client.send({"t": "disable", "rid": 1})
    room.pump()


def by_close(room: Room, leaver: RawPeer, observer: Peer) -> None:
    leaver.client.send({"t": "close", "code": Code.NORMAL, "reason": "bye"})
    room.pump()


def by_eof(room: Room, leaver: RawPeer, observer: Peer) -> None:
    leaver.server.receive_data(b"")
    room.pump()


def by_heartbeat_timeout(room: Room, leaver: RawPeer, observer: Peer) -> None:
    room.advance(25.0)  # pings: the observer answers, the leaver does not
    room.advance(10.0)


def by_protocol_error(room: Room, leaver: RawPeer, observer: Peer) -> None:
    leaver.server.receive_data(b"\x00\x00\x00\x01\xff")
    with pytest.raises(RemoteProtocolError):
        leaver.server.next_event(room.now)
    room.pump()


def by_slow_consumer(room: Room, leaver: RawPeer, observer: Peer) -> None:
    observer.client.send_message("id2", "big", {"pad": "x" * 3000})  # past outbound_limit
    observer.client.send_message("id2", "more", {})  # arrives while over it: closes
    room.pump()


@pytest.mark.parametrize(
    ("leave", "code"),
    [
        (by_disable, None),
        (by_close, Code.NORMAL),
        (by_eof, Code.CONNECTION_LOST),
        (by_heartbeat_timeout, Code.HEARTBEAT_TIMEOUT),
        (by_protocol_error, Code.BAD_FRAME),
        (by_slow_consumer, Code.SLOW_CONSUMER),
    ],
)
def test_a_participant_is_removed_exactly_once(
    leave: Callable[[Room, RawPeer, Peer], None], code: Code | None
) -> None:
    # A lost connection's participant is removed once its resume window ends
    # (tests/core/test_resume.py): here, at once.
    room = Room(outbound_limit=2048, resume_window=0)
    observer = room.enabled("observer")
    leaver = raw_peer(room, "leaver")
    leaver.client.send({"t": "enable", "rid": 0})
    room.pump()
    assert [e.participant.id for e in observer.of(ParticipantAdded)] == ["id2"]

    leave(room, leaver, observer)
    removed = [e.participant.id for e in observer.take() if isinstance(e, ParticipantRemoved)]
    assert removed == ["id2"]
    assert room.server.participants("demo") == [observer.server.participant]
    closes = {e.code for e in leaver.server_events if isinstance(e, ConnectionClosed)}
    assert closes == ({code} if code else set())

    # Everything that could end it again: a close, EOF, a long silence, a server shutdown.
    leaver.client.send({"t": "close", "code": Code.NORMAL, "reason": "again"})
    room.pump()
    if leave is not by_eof:
        leaver.server.receive_data(b"")
    room.pump()
    room.advance(25.0)
    room.advance(25.0)
    room.server.close()
    room.pump()
    assert not [e for e in observer.take() if isinstance(e, ParticipantRemoved)]
    assert leaver.server.state is State.CLOSED


# --- snapshot pages -------------------------------------------------------------------------


def test_a_snapshot_larger_than_a_frame_comes_in_pages() -> None:
    config: dict[str, Any] = {"max_frame_size": 4096, "max_attributes_size": 1500}
    room = Room(client_config=ClientConfig(max_frame_size=4096), **config)
    names = [f"p{n}" for n in range(10)]  # about 850 bytes each: 4 to a page
    for name in names:
        peer = room.join(name)
        peer.client.set_attributes({"bio": name * 400})
        peer.client.enable()
    room.pump()

    pages = raw_enable(room, raw_peer(room, "raw"))
    assert len(pages) == 3
    assert all(len(page) - 4 <= 4096 for page in pages)
    decoded = [cbor2.loads(page[4:]) for page in pages]
    assert [(d["t"], d["rid"], d["more"]) for d in decoded] == [
        ("snapshot", 9, True),
        ("snapshot", 9, True),
        ("snapshot", 9, False),
    ]
    listed = [p for d in decoded for p in d["participants"]]
    assert [p["name"] for p in listed] == names
    assert all(p["attributes"] == {"bio": p["name"] * 400} for p in listed)

    # A real client with the same frame limit reassembles the pages.
    late = room.enabled("late")
    [enabled] = late.of(MessagingEnabled)
    assert [p.name for p in enabled.participants] == [*names, "raw"]


def remote_members(room: Room, count: int) -> None:
    """Add ``count`` participants owned by another backplane node (cheap, no connections)."""
    for n in range(count):
        record = {"id": f"r{n}", "name": "n", "role": "user", "attributes": {}}
        room.server.receive_backplane(
            cbor2.dumps({"t": "join", "n": "other", "r": "demo", "p": record}), room.now
        )


@pytest.mark.parametrize("count", [0, 1, 23, 24, 255, 256, 1000])
def test_snapshot_pages_hold_any_number_of_records(count: int) -> None:
    room = Room(node_id="here")
    remote_members(room, count)
    [page] = raw_enable(room, raw_peer(room, "raw"))
    snapshot = cbor2.loads(page[4:])
    assert snapshot["more"] is False
    assert [p["id"] for p in snapshot["participants"]] == [f"r{n}" for n in range(count)]


def test_a_page_split_keeps_every_record_once() -> None:
    room = Room(node_id="here", max_frame_size=4096)
    remote_members(room, 300)
    pages = [cbor2.loads(page[4:]) for page in raw_enable(room, raw_peer(room, "raw"))]
    assert len(pages) > 1
    assert [p["more"] for p in pages] == [True] * (len(pages) - 1) + [False]
    ids = [p["id"] for page in pages for p in page["participants"]]
    assert ids == [f"r{n}" for n in range(300)]
