"""RoomServer outbound bounds: a connection whose queued bytes pass ``outbound_limit`` is closed
as a slow consumer, others are unaffected, and cascades of such closes end."""

from __future__ import annotations

from roomwire import Code, State
from roomwire.events import (
    ConnectionClosed,
    MessageReceived,
    MessageRouted,
    ParticipantRemoved,
    RequestAcked,
)

from .helpers import Peer, Room, decode_frames, drain, feed

LIMIT = 3000


def room_of(*names: str) -> tuple[Room, list[Peer]]:
    room = Room(outbound_limit=LIMIT)
    peers = [room.enabled(name) for name in names]
    for peer in peers:
        peer.take()
    return room, peers


def fill_to(room: Room, sender: Peer, target: Peer, total: int) -> None:
    """Without letting anyone read, have ``sender`` send ``target`` two messages that leave
    exactly ``total`` bytes queued for it: a probe measures a message's size, then a second
    one is padded to make up the rest."""
    assert target.server.participant is not None
    to = target.server.participant.id
    before = target.server.outbound_size
    sender.client.send_message(to, "fill", {"pad": "x" * 300})
    feed(room, sender)
    probe = target.server.outbound_size - before
    sender.client.send_message(to, "fill", {"pad": "x" * (300 + total - before - 2 * probe)})
    feed(room, sender)
    assert target.server.outbound_size == total


def removed(peer: Peer) -> list[str]:
    return [e.participant.name for e in peer.take() if isinstance(e, ParticipantRemoved)]


def test_a_frame_arriving_with_the_bound_full_is_queued() -> None:
    room, [alice, _, carol] = room_of("alice", "bob", "carol")
    fill_to(room, alice, carol, LIMIT)
    alice.client.send_message("id3", "one-more", {"pad": "x" * LIMIT})
    feed(room, alice)
    # The bound is checked on what already waits: exactly LIMIT is not over it.
    assert carol.server.state is State.ENABLED
    assert carol.server.outbound_size > 2 * LIMIT


def test_a_queue_one_byte_over_the_bound_is_closed_by_the_next_frame() -> None:
    room, [alice, bob, carol] = room_of("alice", "bob", "carol")
    fill_to(room, alice, carol, LIMIT + 1)  # the frame that passed the bound was queued
    assert carol.server.state is State.ENABLED

    alice.client.send_message("id3", "last", {})
    feed(room, alice)
    assert carol.server.state is State.CLOSED
    # Nothing queued would ever be read: only the close frame is left.
    data = carol.server.data_to_send()
    [close] = decode_frames(data)
    assert (close["t"], close["code"]) == ("close", Code.SLOW_CONSUMER)
    assert f"over {LIMIT} bytes queued" in close["reason"]
    carol.client.receive_data(data)
    assert list(drain(carol.client, room.now)) == [
        ConnectionClosed(code=Code.SLOW_CONSUMER, reason=close["reason"], by_peer=True)
    ]

    room.pump()
    assert [type(e) for e in alice.take()] == [RequestAcked] * 3 + [ParticipantRemoved]
    assert removed(bob) == ["carol"]
    assert room.server.participants("demo") == [alice.server.participant, bob.server.participant]
    # Bob was never at risk and still talks to alice.
    bob.client.send_message("id1", "still-here", {})
    room.pump()
    assert [e.message.type for e in alice.take() if isinstance(e, MessageReceived)] == [
        "still-here"
    ]


def test_a_closing_slow_consumer_can_overflow_another_and_the_cascade_ends() -> None:
    room, [alice, bob, carol, dave] = room_of("alice", "bob", "carol", "dave")
    # One unread frame takes each queue past the bound: the next frame for any of them closes it.
    for peer in (bob, carol, dave):
        assert peer.server.participant is not None
        alice.client.send_message(peer.server.participant.id, "fill", {"pad": "x" * LIMIT})
        feed(room, alice)
        assert peer.server.outbound_size > LIMIT
    alice.client.send_message("id3", "flood", {})
    feed(room, alice)
    # carol overflowed; her 'left' overflowed bob and dave; theirs reached only alice.
    assert [p.server.state for p in (bob, carol, dave)] == [State.CLOSED] * 3
    room.pump()
    for peer in (bob, carol, dave):
        assert peer.of(ConnectionClosed)[0].code is Code.SLOW_CONSUMER
    assert sorted(removed(alice)) == ["bob", "carol", "dave"]
    assert alice.client.state is State.ENABLED
    assert room.server.participants("demo") == [alice.server.participant]


def test_shutdown_closes_a_full_queue_with_going_away_and_keeps_its_data() -> None:
    room, [alice, bob] = room_of("alice", "bob")
    fill_to(room, alice, bob, LIMIT)
    room.server.close()  # alice goes first; her 'left' takes bob over the limit
    room.pump()
    events = bob.take()
    assert [type(e) for e in events[:3]] == [MessageReceived, MessageReceived, ParticipantRemoved]
    assert events[3] == ConnectionClosed(
        code=Code.GOING_AWAY, reason="server shutting down", by_peer=True
    )


def test_a_client_closing_with_a_full_queue_still_gets_its_answer() -> None:
    room, [alice, bob] = room_of("alice", "bob")
    fill_to(room, alice, bob, LIMIT)
    bob.client.close(Code.NORMAL, "bye")
    feed(room, bob)  # the server answers the close on top of the full queue
    assert bob.server.state is State.CLOSED
    room.pump()
    closed = bob.of(ConnectionClosed)[0]
    assert (closed.code, closed.reason) == (Code.NORMAL, "bye")
    assert removed(alice) == ["bob"]


def newcomer_to_a_big_room() -> tuple[Room, Peer]:
    """dave enables in a room whose snapshot (three 1200-byte bios) is over the bound."""
    room = Room(outbound_limit=LIMIT)
    for name in ("alice", "bob", "carol"):
        peer = room.enabled(name)
        peer.client.set_attributes({"bio": "x" * 1200})
        room.pump()
    dave = room.join("dave")
    dave.client.enable()
    return room, dave


def test_a_snapshot_larger_than_the_bound_does_not_make_the_newcomer_slow() -> None:
    room, dave = newcomer_to_a_big_room()
    feed(room, dave)  # the snapshot stays queued, unread
    assert dave.server.outbound_size > LIMIT
    assert dave.server.state is State.ENABLED
    # Past the snapshot, the bound counts again: LIMIT more unread bytes close dave.
    alice = room.peers["alice"]
    assert dave.server.participant is not None
    alice.client.send_message(dave.server.participant.id, "fill", {"pad": "x" * LIMIT})
    alice.client.send_message(dave.server.participant.id, "more", {})
    feed(room, alice)
    assert dave.server.state is State.CLOSED


def test_once_the_snapshot_is_taken_the_bound_applies_to_everything_queued() -> None:
    room, dave = newcomer_to_a_big_room()
    feed(room, dave)
    assert len(dave.server.data_to_send()) > LIMIT  # the driver took the snapshot
    alice = room.peers["alice"]
    assert dave.server.participant is not None
    alice.client.send_message(dave.server.participant.id, "fill", {"pad": "x" * (LIMIT - 200)})
    feed(room, alice)
    assert dave.server.state is State.ENABLED


def test_broadcasts_queued_together_meet_the_bound_as_if_queued_one_by_one() -> None:
    # One drain's broadcasts from one sender are joined before they are queued; the frame
    # that arrives while more than the bound waits still closes the readers, no later.
    def recipients(*, drain_each: bool) -> list[int]:
        room, [alice, bob, carol] = room_of("alice", "bob", "carol")
        for _ in range(40):
            alice.client.broadcast_message("fill", {"pad": "x" * 200})
            if drain_each:
                feed(room, alice)
        feed(room, alice)
        assert (bob.server.state, carol.server.state) == (State.CLOSED, State.CLOSED)
        [close] = decode_frames(carol.server.data_to_send())
        assert close["code"] == Code.SLOW_CONSUMER
        return [e.recipients for e in alice.server_events if isinstance(e, MessageRouted)]

    one_by_one = recipients(drain_each=True)
    reached = one_by_one.count(2)  # bob and carol, until both are closed together
    assert one_by_one == [2] * reached + [0] * (40 - reached)
    assert 0 < reached < 40
    assert recipients(drain_each=False) == one_by_one


def test_a_broadcast_larger_than_the_bound_is_queued_for_everyone() -> None:
    room, [alice, bob, carol] = room_of("alice", "bob", "carol")
    alice.client.broadcast_message("big", {"pad": "x" * LIMIT})
    [routed] = [e for e in feed(room, alice) if isinstance(e, MessageRouted)]
    assert routed.recipients == 2
    for reader in (bob, carol):
        assert reader.server.state is State.ENABLED
        assert reader.server.outbound_size > LIMIT
