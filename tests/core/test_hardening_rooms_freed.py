"""Issue 13, finding 3 (the core): a room goes from memory with its last local connection.
Its history is the room's, not its members': it stays, and a room made again goes on from it
(the same ``epoch``, the next ``seq``); a room that kept nothing comes back as a new
incarnation (a new ``epoch`` in the welcome and the history replies, ``seq`` from 0).
20,000 rooms joined and left leave the server's memory flat."""

from __future__ import annotations

import gc
import tracemalloc

from roomwire import Code, ParticipantToken, RoomServer
from roomwire.events import HistoryReceived, RequestAcked
from roomwire.frames import encode_frame

from .helpers import Room, decode_frames, server_config, token

ROOMS = 20_000


def _room_token(room: str, now: float) -> ParticipantToken:
    return ParticipantToken(room=room, name="p")


def visit(server: RoomServer, n: int, now: float) -> None:
    """One connection joins room ``r<n>``, enables, sets attributes and hangs up: the room
    must go with it."""
    conn = server.accept(n, now)
    conn.receive_data(
        encode_frame({"t": "hello", "v": 1, "token": f"r{n}"})
        + encode_frame({"t": "enable", "rid": 1})
        + encode_frame({"t": "attrs", "rid": 2, "attributes": {"n": n}})
    )
    conn.receive_data(b"")
    while conn.next_event(now) is not None and conn.state.name != "CLOSED":
        pass
    for output in server.connections_with_output():
        output.data_to_send()


def settle(server: RoomServer, now: float) -> None:
    """Run the timers as a driver does: a closed connection's old deadline leaves the heap
    once it is due."""
    server.handle_timer(now)
    server.next_deadline()


def test_hardening_rooms_freed_memory_stays_flat() -> None:
    # Each visit's connection is lost (EOF): with no resume window its room goes at once,
    # as this test means (with one, the rooms go when the windows end, all together).
    server = RoomServer(server_config(authenticator=_room_token, resume_window=0))
    # Warm up with as many rooms: every path runs, and the tables that only grow to a high
    # water mark (the interned room names' table) reach it.
    for n in range(ROOMS):
        visit(server, n, 1000.0 + n / 1000)
    settle(server, 1100.0 + ROOMS / 1000)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(ROOMS, 2 * ROOMS):
            visit(server, n, 1100.0 + n / 1000)
        settle(server, 1200.0 + 2 * ROOMS / 1000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    print(f"\nrooms freed: {ROOMS} more rooms joined and left, traced memory grew {grown} bytes")
    assert server.room_count == 0
    assert server.connection_count == 0
    assert server.router.rooms == {}
    assert server.stats.closes == {Code.CONNECTION_LOST: 2 * ROOMS}
    assert grown < 64 * 1024, grown  # was +17.6 MiB for 20,000 rooms (issue 13)


def leave_all(room: Room) -> None:
    for peer in room.peers.values():
        if peer.client.state.name != "CLOSED":
            peer.client.close()
    room.pump()
    assert room.server.room_count == 0
    assert "demo" not in room.server.router.rooms


def test_a_room_that_kept_nothing_comes_back_in_a_new_epoch_from_seq_0() -> None:
    room = Room()
    room.enabled("alice")
    first_epoch = room.server.router.rooms["demo"].epoch
    leave_all(room)
    room.now += 1  # a new incarnation, one second later
    bob = room.enabled("bob")
    made_again = room.server.router.rooms["demo"]
    assert made_again.epoch != first_epoch
    assert made_again.seq == 1  # from 0: bob's own joined was the first event
    bob.client.broadcast_message("t", {"n": 1})
    room.pump()
    assert [type(e) for e in bob.take()][-1] is RequestAcked
    assert made_again.seq == 2


def test_a_room_whose_history_was_kept_goes_on_from_it() -> None:
    room = Room()
    alice = room.enabled("alice")
    epoch = room.server.router.rooms["demo"].epoch
    alice.client.broadcast_message("t", {"n": 1})
    room.pump()
    first = room.server.router.rooms["demo"]
    leave_all(room)
    room.now += 1
    bob = room.enabled("bob")
    made_again = room.server.router.rooms["demo"]
    assert made_again is not first
    assert (made_again.epoch, made_again.seq) == (epoch, first.seq + 1)  # + bob's joined
    bob.client.history(limit=10)
    room.pump()
    [page] = bob.of(HistoryReceived)
    assert [(m.seq, m.message) for m in page.messages] == [(2, {"n": 1})]  # after joined (1)
    bob.client.broadcast_message("t", {"n": 2})
    room.pump()
    assert made_again.seq == first.seq + 2
    bob.client.history(limit=10)
    room.pump()
    [page] = bob.of(HistoryReceived)
    assert [m.message for m in page.messages] == [{"n": 1}, {"n": 2}]


def test_with_a_history_store_a_freed_room_goes_on_too() -> None:
    room = Room(external_history=True)
    alice = room.enabled("alice")
    epoch = room.server.router.rooms["demo"].epoch
    alice.client.broadcast_message("t", {"n": 1})
    room.pump()
    assert len(room.server.history_to_store()) == 1
    first = room.server.router.rooms["demo"]
    leave_all(room)
    room.enabled("bob")
    made_again = room.server.router.rooms["demo"]
    assert (made_again.epoch, made_again.seq) == (epoch, first.seq + 1)


def test_the_welcome_and_history_pages_carry_the_epoch() -> None:
    server = RoomServer(server_config())
    conn = server.accept("c", 1000.0)
    conn.receive_data(
        encode_frame({"t": "hello", "v": 1, "token": token()})
        + encode_frame({"t": "history", "rid": 1})
    )
    while conn.next_event(1000.0) is not None and conn.outbound_size == 0:
        pass
    conn.next_event(1000.0)
    welcome, page = decode_frames(conn.data_to_send())
    epoch = server.router.rooms["demo"].epoch
    assert welcome["epoch"] == page["epoch"] == epoch == "f4240.1"  # 1000 s in ms, first room


def test_with_a_backplane_freed_rooms_are_reported_once() -> None:
    room = Room(node_id="n1")
    server = room.server
    assert server.rooms_freed() == []
    alice = room.join("alice")
    room.join("bob", room="other")
    alice.client.close()
    room.pump()
    assert server.rooms_freed() == ["demo"]
    assert server.rooms_freed() == []
    room.join("carol")
    room.peers["carol"].client.close()
    room.pump()
    room.join("dave")  # demo made again before the driver asked: not reported as freed
    assert server.rooms_freed() == []
