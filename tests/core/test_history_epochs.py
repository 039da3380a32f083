"""One epoch per room (PROTOCOL.md §21.2, §25.3): the welcome and the history pages carry the
room's; a history store that names an epoch is authoritative (the room takes it, now or when
made, and its seq goes on after the store's); other rooms follow the rooms-freed rule."""

from __future__ import annotations

from roomwire.events import HistoryReceived

from .helpers import Room, raw_peer
from .test_hardening_rooms_freed import leave_all


def test_the_welcome_and_pages_carry_the_epoch_a_store_restored() -> None:
    ext = Room(external_history=True)
    ext.server.restore_history("disk1", {"demo": 41})
    alice = raw_peer(ext, "alice")
    (welcome,) = alice.client.take()
    alice.client.send({"t": "history", "rid": 1})
    ext.pump()
    (read,) = ext.server.history_reads()
    ext.server.answer_history(read, [], ext.now, epoch="disk1")
    ext.pump()
    (page,) = alice.client.take()
    room = ext.server.router.rooms["demo"]
    assert welcome["epoch"] == page["epoch"] == room.epoch == "disk1"
    assert ext.server.history_epoch("demo") == "disk1"
    assert room.seq == 41  # it goes on after the store's last


def test_a_store_naming_a_live_rooms_epoch_renames_the_room() -> None:
    ext = Room(external_history=True)
    ext.enabled("alice")
    room = ext.server.router.rooms["demo"]
    assert room.epoch != "s2"
    ext.server.set_history_epoch("demo", "s2", last_seq=50)
    assert (room.epoch, room.seq) == ("s2", 50)
    bob = raw_peer(ext, "bob")
    (welcome,) = bob.client.take()
    assert welcome["epoch"] == "s2" == ext.server.history_epoch("demo")
    bob.client.send({"t": "enable", "rid": 1})
    ext.pump()
    assert room.seq == 51  # bob's joined


def test_a_room_not_made_here_is_made_in_the_epoch_its_store_named() -> None:
    room = Room()
    room.server.set_history_epoch("later", "s9", last_seq=7)
    room.server.set_history_epoch("other", "a", last_seq=5)
    room.server.set_history_epoch("other", "b")  # a new epoch, the seq never goes back
    assert room.server.history_epoch("later") == "s9"
    assert room.server.history_epoch("other") == "b"
    assert room.server.history_positions() == {"later": 7, "other": 5}
    bob = room.join("bob", room="later")
    bob.client.enable()
    room.pump()
    made = room.server.router.rooms["later"]
    assert (made.epoch, made.seq) == ("s9", 8)  # bob's joined


def test_a_room_in_a_named_epoch_goes_on_when_freed_with_nothing_kept() -> None:
    room = Room(history_epoch="e1")
    room.enabled("alice")
    first = room.server.router.rooms["demo"]
    leave_all(room)
    assert room.server.history_positions() == {"demo": first.seq}
    room.enabled("bob")
    made_again = room.server.router.rooms["demo"]
    # The epoch is named: its seqs are never handed out twice.
    assert (made_again.epoch, made_again.seq) == ("e1", first.seq + 1)


def test_a_new_incarnation_does_not_inherit_the_old_ones_drops() -> None:
    room = Room(history_size=2, history_ttl=10.0)
    alice = room.enabled("alice")
    for n in range(3):  # the first is dropped by size
        alice.client.broadcast_message("chat", {"n": n})
    room.pump()
    room.now += 11  # and the others expire: the room keeps nothing
    alice.client.history()
    room.pump()
    assert alice.of(HistoryReceived)[0].messages == ()
    first_epoch = room.server.router.rooms["demo"].epoch
    leave_all(room)
    bob = room.enabled("bob")
    bob.client.broadcast_message("chat", {"n": 3})
    room.pump()
    bob.client.history(since=0, epoch=room.server.history_epoch("demo"))
    room.pump()
    (page,) = bob.of(HistoryReceived)
    assert page.epoch != first_epoch
    assert [m.message for m in page.messages] == [{"n": 3}]
    assert not page.reset  # nothing of this incarnation was dropped
