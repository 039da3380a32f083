"""The store door's promises (PROTOCOL.md §21.2-21.4): a sender's ack waits for its record to
be stored, epochs name one run of seqs (a position from another epoch is not used), a store
that opens tells the rooms their last seqs, and a store every node shares gets each message
once."""

from __future__ import annotations

from typing import Any

import attrs
import cbor2
import pytest

from roomwire import LocalProtocolError
from roomwire.events import HistoryReceived, MessageReceived, RequestAcked, RequestRefused

from .helpers import LoneClient, Peer, Room
from .test_backplane import Cluster, prefixed_ids


def acks(peer: Peer) -> list[RequestAcked]:
    return [e for e in peer.take() if isinstance(e, RequestAcked)]


def answer(room: Room, peer: Peer) -> HistoryReceived:
    (found,) = [e for e in peer.take() if isinstance(e, HistoryReceived | RequestRefused)]
    assert isinstance(found, HistoryReceived), found
    return found


# --- the ack waits for the store -------------------------------------------------------------


def test_an_ack_waits_until_its_record_is_stored() -> None:
    ext = Room(external_history=True)
    alice, bob = ext.enabled("alice"), ext.enabled("bob")
    alice.client.broadcast_message("chat", {"n": 0})
    alice.client.broadcast_message("chat", {"n": 1})
    ext.pump()
    assert len(bob.of(MessageReceived)) == 2  # delivered at once...
    assert acks(alice) == []  # ...acknowledged once stored
    records = ext.server.history_to_store()
    assert [cbor2.loads(r)["message"] for _, r in records] == [{"n": 0}, {"n": 1}]
    ext.server.history_stored(1)
    ext.pump()
    assert len(acks(alice)) == 1  # the first record only
    ext.server.history_stored(1)
    ext.pump()
    assert len(acks(alice)) == 1


def test_in_memory_the_ack_comes_at_once() -> None:
    room = Room()
    alice = room.enabled("alice")
    alice.client.broadcast_message("chat", {"n": 0})
    room.pump()
    assert len(acks(alice)) == 1
    assert room.server.history_to_store() == []


@pytest.mark.parametrize("count", [-1, 2])
def test_reporting_more_than_were_taken_is_a_local_error(count: int) -> None:
    ext = Room(external_history=True)
    alice = ext.enabled("alice")
    alice.client.broadcast_message("chat", {"n": 0})
    ext.pump()
    ext.server.history_to_store()
    with pytest.raises(LocalProtocolError, match="reported stored"):
        ext.server.history_stored(count)


def test_a_record_not_yet_taken_cannot_be_reported() -> None:
    ext = Room(external_history=True)
    alice = ext.enabled("alice")
    alice.client.broadcast_message("chat", {"n": 0})
    ext.pump()
    with pytest.raises(LocalProtocolError, match="0 await storing"):
        ext.server.history_stored(1)


def test_the_ack_of_a_sender_that_left_is_dropped() -> None:
    ext = Room(external_history=True)
    alice = ext.enabled("alice")
    alice.client.broadcast_message("chat", {"n": 0})
    ext.pump()
    ext.server.history_to_store()
    alice.client.close()
    ext.pump()
    ext.server.history_stored(1)
    assert ext.server.connections_with_output() == []


def test_a_message_too_large_to_keep_is_acked_at_once() -> None:
    def grow(m: Any) -> Any:  # an interceptor can grow a message near the frame limit
        return attrs.evolve(m, message={"n": 0, "pad": "x" * (4096 - 100)})

    ext = Room(external_history=True, max_frame_size=4096, interceptor=grow)
    alice, bob = ext.enabled("alice"), ext.enabled("bob")
    alice.client.broadcast_message("chat", {"n": 0})
    ext.pump()
    assert len(acks(alice)) == 1
    assert ext.server.history_to_store() == []
    assert len(bob.of(MessageReceived)) == 1


def test_an_interceptor_drop_is_acked_at_once() -> None:
    ext = Room(external_history=True, interceptor=lambda message: None)
    alice = ext.enabled("alice")
    alice.client.broadcast_message("chat", {"n": 0})
    ext.pump()
    assert len(acks(alice)) == 1
    assert ext.server.history_to_store() == []


# --- epochs ----------------------------------------------------------------------------------


def history(room: Room, peer: Peer, **args: Any) -> HistoryReceived:
    peer.client.history(**args)
    room.pump()
    return answer(room, peer)


def test_every_page_names_the_epoch() -> None:
    room = Room(history_epoch="e1")
    alice = room.enabled("alice")
    alice.client.broadcast_message("chat", {"n": 0})
    room.pump()
    assert history(room, alice).epoch == "e1"
    assert room.server.history_epoch("demo") == "e1"


def test_a_random_epoch_by_default() -> None:
    one, two = Room(), Room()
    assert one.server.history_epoch("demo") != two.server.history_epoch("demo")
    assert len(one.server.history_epoch("demo")) == 16


def test_a_position_from_another_epoch_is_not_used() -> None:
    room = Room(history_epoch="e2")
    alice = room.enabled("alice")
    for n in range(3):
        alice.client.broadcast_message("chat", {"n": n})
    room.pump()
    seqs = [m.seq for m in history(room, alice).messages]
    same = history(room, alice, since=seqs[0], epoch="e2")
    assert [m.message["n"] for m in same.messages] == [1, 2]
    # The epoch changed under the reader: its position (even one past the room's last seq)
    # is not trusted, and the answer says which epoch it is from.
    other = history(room, alice, since=10**6, epoch="e1")
    assert other.epoch == "e2"
    assert [m.message["n"] for m in other.messages] == [0, 1, 2]
    refused = alice.client.history(since=10**6, epoch="e2")
    room.pump()
    (found,) = [e for e in alice.take() if isinstance(e, RequestRefused)]
    assert found.request_id == refused


def test_the_store_names_a_rooms_epoch_when_it_answers() -> None:
    ext = Room(external_history=True, history_epoch="e1")
    alice = ext.enabled("alice")
    alice.client.history(since=0, epoch="old")
    ext.pump()
    (read,) = ext.server.history_reads()
    assert read.epoch == "old"
    assert read.after("new") is None  # another epoch: read from the oldest
    assert read.after("old") == 0
    ext.server.answer_history(read, [], ext.now, epoch="new")
    ext.pump()
    assert answer(ext, alice).epoch == "new"
    assert ext.server.history_epoch("demo") == "new"
    assert ext.server.history_epoch("elsewhere") == "e1"
    ext.server.set_history_epoch("elsewhere", "e9")  # no last seq: its seq stays
    assert ext.server.history_epoch("elsewhere") == "e9"
    assert "elsewhere" not in ext.server.history_positions()
    alice.client.history()
    ext.pump()
    (read,) = ext.server.history_reads()
    ext.server.answer_history(read, [], ext.now)
    ext.pump()
    assert answer(ext, alice).epoch == "new"
    ext.server.set_history_epoch("demo", "newer", last_seq=99)
    alice.client.broadcast_message("chat", {"n": 0})
    ext.pump()
    ((_, record),) = ext.server.history_to_store()
    assert cbor2.loads(record)["seq"] == 100  # it continues after the store's last
    assert ext.server.history_epoch("demo") == "newer"
    ext.server.history_stored(1)
    ext.pump()
    alice.take()


@pytest.mark.parametrize("epoch", ["", "x" * 17])
def test_an_epoch_has_1_to_16_characters(epoch: str) -> None:
    room = Room()
    with pytest.raises(LocalProtocolError, match="1 to 16 characters"):
        room.server.set_history_epoch("demo", epoch)
    with pytest.raises(LocalProtocolError, match="1 to 16 characters"):
        room.server.restore_history(epoch)


def test_a_store_that_opens_continues_each_rooms_seq() -> None:
    ext = Room(external_history=True)
    ext.server.restore_history("disk1", {"demo": 41})
    ext.server.restore_history("disk1")
    alice = ext.enabled("alice")
    alice.client.broadcast_message("chat", {"n": 0})
    ext.pump()
    ((room, record),) = ext.server.history_to_store()
    assert (room, cbor2.loads(record)["seq"]) == ("demo", 43)  # 42 was alice's joined
    assert ext.server.history_epoch("demo") == "disk1"
    assert ext.server.history_positions() == {"demo": 43}


def test_the_client_sends_the_epoch_it_names() -> None:
    lone = LoneClient().open()
    lone.client.history(since=5, epoch="e1")
    (sent,) = lone.sent()[-1:]
    assert (sent["since"], sent["epoch"]) == (5, "e1")
    lone.client.history()
    assert "epoch" not in lone.sent()[-1]


# --- a store every node shares ---------------------------------------------------------------


def test_a_shared_store_gets_each_message_from_its_own_node_only() -> None:
    cluster = Cluster()
    for name in ("n1", "n2"):
        node = Room(
            node_id=name,
            id_factory=prefixed_ids(name),
            external_history=True,
            shared_history=True,
        )
        setattr(cluster, name, node)
    alice = cluster.enabled(cluster.n1, "alice")
    cluster.enabled(cluster.n2, "bob")
    alice.client.broadcast_message("chat", {"n": 0})
    cluster.settle()
    assert len(acks(alice)) == 1  # a shared store's record follows the ack
    stored = [len(node.server.history_to_store()) for node in cluster.nodes()]
    assert stored == [1, 0]
    cluster.n1.server.history_stored(1)


def test_a_store_of_its_own_on_each_node_gets_every_message() -> None:
    cluster = Cluster()
    for name in ("n1", "n2"):
        node = Room(node_id=name, id_factory=prefixed_ids(name), external_history=True)
        setattr(cluster, name, node)
    alice = cluster.enabled(cluster.n1, "alice")
    cluster.enabled(cluster.n2, "bob")
    alice.client.broadcast_message("chat", {"n": 0})
    cluster.settle()
    assert [len(node.server.history_to_store()) for node in cluster.nodes()] == [1, 1]
    for node in cluster.nodes():
        node.server.history_stored(1)  # n2 holds no ack for it: its sender is on n1
    cluster.settle()
    assert len(acks(alice)) == 1


# --- a position the history can no longer honour ---------------------------------------------


def test_a_position_before_what_the_room_dropped_is_reset() -> None:
    room = Room(history_size=2)
    alice = room.enabled("alice")
    for n in range(3):
        alice.client.broadcast_message("chat", {"n": n})
    room.pump()
    kept = history(room, alice)
    assert [m.message["n"] for m in kept.messages] == [1, 2]
    first = kept.messages[0].seq
    assert not kept.reset
    # Message 0 (seq first - 1) was dropped: a reader that stopped before it lost it.
    lost = history(room, alice, since=first - 2)
    assert lost.reset
    assert [m.message["n"] for m in lost.messages] == [1, 2]
    assert not history(room, alice, since=first - 1).reset  # it had seen message 0


def test_a_position_before_what_expired_is_reset() -> None:
    room = Room(history_ttl=10.0)
    alice = room.enabled("alice")
    alice.client.broadcast_message("chat", {"n": 0})
    room.pump()
    (message,) = history(room, alice).messages
    room.now += 11
    alice.client.broadcast_message("chat", {"n": 1})
    room.pump()
    assert history(room, alice, since=message.seq - 1).reset
    assert not history(room, alice, since=message.seq).reset


def test_a_store_says_what_it_dropped() -> None:
    ext = Room(external_history=True, history_ttl=10.0, history_epoch="e1")
    alice = ext.enabled("alice")
    alice.client.broadcast_message("chat", {"n": 0})
    ext.pump()
    ((_, record),) = ext.server.history_to_store()
    seq = cbor2.loads(record)["seq"]

    def ask(dropped: int, records: list[bytes], since: int) -> HistoryReceived:
        alice.client.history(since=since)
        ext.pump()
        (read,) = ext.server.history_reads()
        ext.server.answer_history(read, records, ext.now, "e1", dropped)
        ext.pump()
        return answer(ext, alice)

    assert ask(seq - 1, [record], seq - 2).reset  # the store dropped seq - 1
    assert not ask(seq - 1, [record], seq - 1).reset
    ext.now += 11  # the record expired: the core drops it whatever the store keeps
    found = ask(0, [record], seq - 1)
    assert (found.reset, found.messages) == (True, ())
