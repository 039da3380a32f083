"""RoomServer timers: pings at the interval, dead peers dropped after interval + timeout, and
``next_deadline`` telling the driver when to wake. Time only moves by hand."""

from __future__ import annotations

from roomwire import Code, State
from roomwire.events import ConnectionClosed, ParticipantRemoved

from .helpers import RawPeer, Room, raw_peer


def step_to(room: Room, when: float) -> None:
    room.advance(when - room.now)


def frames(peer: RawPeer) -> list[str]:
    return [f["t"] for f in peer.client.take()]


def test_pings_and_dead_peer_detection_follow_the_clock() -> None:
    room = Room(heartbeat_interval=25.0, heartbeat_timeout=10.0, handshake_timeout=10.0)
    peer = raw_peer(room, "raw")  # hello heard at 1000
    assert frames(peer) == ["welcome"]
    assert room.server.next_deadline() == 1010.0  # the handshake deadline, still armed
    step_to(room, 1010.0)
    assert frames(peer) == []
    assert room.server.next_deadline() == 1025.0
    step_to(room, 1025.0)
    assert frames(peer) == ["ping"]
    assert room.server.next_deadline() == 1035.0  # last heard 1000 + 25 + 10
    step_to(room, 1030.0)
    peer.client.send({"t": "pong"})
    room.pump()
    assert frames(peer) == []  # a pong is not answered
    step_to(room, 1035.0)
    assert frames(peer) == []  # heard at 1030: not dead, and the next ping is not due
    assert room.server.next_deadline() == 1050.0
    step_to(room, 1050.0)
    assert frames(peer) == ["ping"]
    assert room.server.next_deadline() == 1065.0
    step_to(room, 1064.5)
    assert peer.server.state is State.OPEN
    step_to(room, 1065.0)
    [close] = peer.client.take()
    assert (close["t"], close["code"]) == ("close", Code.HEARTBEAT_TIMEOUT)
    assert peer.server_events[-1] == ConnectionClosed(
        code=Code.HEARTBEAT_TIMEOUT, reason=close["reason"], by_peer=False
    )
    assert room.server.next_deadline() == 1095.0  # its resume window (PROTOCOL.md §22)
    step_to(room, 1095.0)
    assert room.server.next_deadline() is None


def test_a_ping_from_the_client_is_answered_and_counts_as_life() -> None:
    room = Room(heartbeat_interval=25.0, heartbeat_timeout=10.0)
    peer = raw_peer(room, "raw")
    peer.client.take()
    step_to(room, 1034.0)
    assert frames(peer) == ["ping"]  # sent at 1025
    peer.client.send({"t": "ping"}, {"t": "ping"})
    room.pump()
    assert frames(peer) == ["pong", "pong"]
    assert len(peer.server_events) == 1  # the join: heartbeats make no events
    step_to(room, 1068.0)
    assert peer.server.state is State.OPEN
    step_to(room, 1069.0)
    assert peer.server.state is State.CLOSED


def test_live_clients_outlast_many_intervals_while_a_silent_one_is_dropped() -> None:
    room = Room(heartbeat_interval=25.0, heartbeat_timeout=10.0)
    alice, bob = room.enabled("alice"), room.enabled("bob")
    silent = raw_peer(room, "silent")
    silent.client.send({"t": "enable", "rid": 1})
    room.pump()
    alice.take()
    for _ in range(8):
        room.advance(12.5)
    assert (alice.client.state, bob.client.state) == (State.ENABLED, State.ENABLED)
    assert [type(e) for e in alice.take()] == [ParticipantRemoved]
    assert silent.server.state is State.CLOSED
    assert room.server.participants("demo") == [alice.server.participant, bob.server.participant]


def test_next_deadline_is_the_earliest_connection() -> None:
    room = Room(handshake_timeout=10.0)
    raw_peer(room, "first", hello=False)
    room.now = 1003.0
    late = raw_peer(room, "late", hello=False)
    assert room.server.next_deadline() == 1010.0
    step_to(room, 1010.0)
    assert room.server.next_deadline() == 1013.0
    late.server.receive_data(b"")
    room.pump()
    assert room.server.next_deadline() is None
