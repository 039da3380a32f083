"""``RoomServer.stats`` and its gauges: what a driver exports as metrics (connections, rooms,
messages routed, deliveries, refusals and closes by code)."""

from __future__ import annotations

from roomwire import Code

from .helpers import Room, feed
from .test_server_slow import LIMIT, fill_to


def test_a_new_server_has_counted_nothing() -> None:
    stats = Room().server.stats
    assert (stats.connections_accepted, stats.messages_routed, stats.deliveries) == (0, 0, 0)
    assert (stats.refusals, stats.closes) == ({}, {})


def test_messages_deliveries_and_refusals_are_counted() -> None:
    room = Room()
    alice, bob, _ = (room.enabled(name) for name in ("alice", "bob", "carol"))
    mute = room.enabled("mute", can_broadcast=False)
    room.join("dave", room="other")  # connected, not enabled: its room counts all the same
    server = room.server
    assert (server.connection_count, server.room_count) == (5, 2)
    assert bob.server.participant is not None
    alice.client.send_message([bob.server.participant.id], "chat", {})
    alice.client.broadcast_message("news", {})
    alice.client.send_message(["nobody"], "chat", {})
    bob.client.send_message(["nobody"], "chat", {})
    mute.client.broadcast_message("news", {})
    room.pump()
    stats = server.stats
    assert (stats.connections_accepted, stats.messages_routed, stats.deliveries) == (5, 2, 4)
    assert stats.refusals == {Code.NOT_FOUND: 2, Code.FORBIDDEN_BROADCAST: 1}
    assert stats.closes == {}


def test_closes_are_counted_by_code_and_leave_the_gauges() -> None:
    room = Room(outbound_limit=LIMIT)
    alice, bob, carol = (room.enabled(name) for name in ("alice", "bob", "carol"))
    fill_to(room, alice, carol, LIMIT + 1)
    alice.client.broadcast_message("more", {})  # carol is over its bound: closed as slow
    feed(room, alice)
    bob.client.close()
    room.pump()
    server = room.server
    assert server.stats.closes == {Code.SLOW_CONSUMER: 1, Code.NORMAL: 1}
    assert (server.connection_count, server.room_count) == (1, 1)
    alice.client.close()
    room.pump()
    assert (server.connection_count, server.room_count) == (0, 0)
    assert server.stats.closes == {Code.SLOW_CONSUMER: 1, Code.NORMAL: 2}
