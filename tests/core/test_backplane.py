"""The backplane door: two RoomServers wired together in memory share presence and messages."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import cbor2
import pytest

from roomwire import Code, RemoteProtocolError
from roomwire.events import (
    MessageReceived,
    MessageRouted,
    MessagingEnabled,
    ParticipantAdded,
    ParticipantRemoved,
    ParticipantUpdated,
    RemoteParticipant,
    RequestAcked,
    RequestRefused,
    RoomMessage,
)

from .helpers import Peer, Room, server_config


def prefixed_ids(prefix: str) -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter)}"


class Cluster:
    """Two nodes, each a ``Room`` with its own RoomServer, and a backplane between them."""

    def __init__(self) -> None:
        self.n1 = Room(node_id="n1", id_factory=prefixed_ids("n1"))
        self.n2 = Room(node_id="n2", id_factory=prefixed_ids("n2"))
        self.published: list[bytes] = []

    def nodes(self) -> list[Room]:
        return [self.n1, self.n2]

    def settle(self) -> None:
        """Pump the nodes and carry every record, in one order, to every node (the publisher
        included, as a pub/sub channel does) until all is quiet."""
        for _ in range(20):
            for node in self.nodes():
                node.pump()
            batch = [r for node in self.nodes() for r in node.server.backplane_data_to_send()]
            self.published += batch
            for record in batch:
                for node in self.nodes():
                    node.server.receive_backplane(record, node.now)
            if not batch:
                for node in self.nodes():
                    node.pump()
                return
        raise AssertionError("the cluster did not settle")

    def enabled(self, node: Room, name: str) -> Peer:
        peer = node.enabled(name)
        self.settle()
        return peer

    def quiet(self) -> None:
        for node in (self.n1, self.n2):
            for peer in node.peers.values():
                peer.take()


def received(peer: Peer) -> list[RoomMessage]:
    return [e.message for e in peer.take() if isinstance(e, MessageReceived)]


@pytest.fixture
def cluster() -> Cluster:
    """alice and carol on n1, bob and dave on n2, all enabled, events consumed."""
    cluster = Cluster()
    for node, name in ((cluster.n1, "alice"), (cluster.n2, "bob")):
        cluster.enabled(node, name)
    for node, name in ((cluster.n1, "carol"), (cluster.n2, "dave")):
        cluster.enabled(node, name)
    cluster.quiet()
    return cluster


def peers(cluster: Cluster) -> tuple[Peer, Peer, Peer, Peer]:
    return (
        cluster.n1.peers["alice"],
        cluster.n2.peers["bob"],
        cluster.n1.peers["carol"],
        cluster.n2.peers["dave"],
    )


def test_presence_crosses_nodes() -> None:
    cluster = Cluster()
    alice = cluster.enabled(cluster.n1, "alice")
    bob = cluster.enabled(cluster.n2, "bob")
    assert bob.of(MessagingEnabled)[0].participants == (
        RemoteParticipant(id="n1-1", name="alice", role="user", attributes={}),
    )
    assert [e.participant.id for e in alice.of(ParticipantAdded)] == ["n2-1"]
    assert cluster.n1.server.participants("demo") == cluster.n2.server.participants("demo")

    alice.client.set_attributes({"mood": "busy"})
    cluster.settle()
    [updated] = bob.of(ParticipantUpdated)
    assert updated.participant.attributes == {"mood": "busy"}
    assert cluster.n2.server.participants("demo")[0].attributes == {"mood": "busy"}

    alice.client.disable()
    cluster.settle()
    assert [e.participant.id for e in bob.of(ParticipantRemoved)] == ["n1-1"]
    assert [p.id for p in cluster.n2.server.participants("demo")] == ["n2-1"]


def test_a_disconnect_on_one_node_is_seen_once_on_the_other(cluster: Cluster) -> None:
    alice, bob, carol, dave = peers(cluster)
    bob.server.receive_data(b"")
    cluster.settle()
    for peer in (alice, carol, dave):  # held for a resume (PROTOCOL.md §22)
        assert peer.take() == []
    for _ in range(6):  # its window ends; the nodes' heartbeats go on meanwhile
        for node in cluster.nodes():
            node.advance(5.0)
        cluster.settle()
    for peer in (alice, carol, dave):
        assert [e.participant.name for e in peer.take()] == ["bob"]
    assert [p.name for p in cluster.n1.server.participants("demo")] == ["alice", "carol", "dave"]


def test_direct_messages_cross_nodes(cluster: Cluster) -> None:
    alice, bob, carol, dave = peers(cluster)
    cluster.n1.now = 1111.0
    rid = alice.client.send_message(["n2-1", "n1-2"], "chat", {"text": "hi"}, attachment=b"\x07")
    cluster.settle()
    assert alice.take() == [RequestAcked(request_id=rid, message_id="n1-3", recipients=2)]
    [to_bob], [to_carol] = received(bob), received(carol)
    assert to_bob.id == to_carol.id == "n1-3"
    assert to_bob.timestamp == to_carol.timestamp == 1111.0
    assert (to_bob.from_participant_id, to_bob.message, to_bob.attachment) == (
        "n1-1",
        {"text": "hi"},
        b"\x07",
    )
    assert to_bob.broadcast is False
    assert received(dave) == []
    # Only carol is local to n1.
    assert alice.server_events[-1] == MessageRouted(
        message_id="n1-3", from_participant_id="n1-1", broadcast=False, recipients=1
    )


def test_broadcasts_cross_nodes(cluster: Cluster) -> None:
    alice, bob, carol, dave = peers(cluster)
    alice.client.broadcast_message("news", {"n": 1})
    cluster.settle()
    [on_bob], [on_dave], [on_carol] = received(bob), received(dave), received(carol)
    assert on_bob == on_dave
    assert (on_bob.id, on_bob.type, on_bob.broadcast) == (on_carol.id, "news", True)
    assert on_bob.attachment is None
    assert received(alice) == []


def test_every_node_delivers_in_the_backplanes_order(cluster: Cluster) -> None:
    alice, bob, carol, dave = peers(cluster)
    bob.client.broadcast_message("from-bob", {})
    alice.client.broadcast_message("from-alice", {})
    bob.client.broadcast_message("from-bob-2", {})
    cluster.settle()  # the backplane carries n1's record first
    # Local messages wait for the backplane too: dave (on n2, with bob) gets alice's first.
    order = ["from-alice", "from-bob", "from-bob-2"]
    on_carol, on_dave = received(carol), received(dave)
    assert [m.type for m in on_carol] == [m.type for m in on_dave] == order
    assert [m.type for m in received(alice)] == ["from-bob", "from-bob-2"]
    assert [m.type for m in received(bob)] == ["from-alice"]
    # Every node numbers them with its own seq, in that one order.
    assert [m.seq for m in on_carol] == [m.seq for m in on_dave] == [5, 6, 7]


def test_a_remote_recipient_that_left_is_not_found(cluster: Cluster) -> None:
    alice, bob, _, _ = peers(cluster)
    bob.client.disable()
    cluster.settle()
    alice.take()
    rid = alice.client.send_message("n2-1", "chat", {})
    cluster.settle()
    [refused] = alice.take()
    assert refused == RequestRefused(request_id=rid, code=Code.NOT_FOUND, reason=refused.reason)
    assert "msg" not in [cbor2.loads(r)["t"] for r in cluster.published]


def test_a_node_applies_only_its_own_messages_and_each_once(cluster: Cluster) -> None:
    alice, _, carol, _ = peers(cluster)
    alice.client.broadcast_message("once", {})
    alice.client.set_attributes({"x": 1})
    cluster.n1.pump()
    records = cluster.n1.server.backplane_data_to_send()
    assert [cbor2.loads(r)["t"] for r in records] == ["msg", "join"]
    assert received(carol) == []  # not before it comes back
    for record in records * 2:
        cluster.n1.server.receive_backplane(record, cluster.n1.now)
    cluster.n1.pump()
    assert [m.type for m in received(carol)] == ["once"]
    assert cluster.n1.server.connections_with_output() == []


def record(kind: str, **fields: Any) -> dict[str, Any]:
    return {"t": kind, "n": "n2", "r": "demo", **fields}


def participant(pid: str, **attributes: Any) -> dict[str, Any]:
    return {"id": pid, "name": "mallory", "role": "user", "attributes": attributes}


def test_a_join_for_a_participant_of_another_node_is_ignored(cluster: Cluster) -> None:
    alice, _, carol, _ = peers(cluster)
    server = cluster.n1.server
    before = server.participants("demo")
    # n2 claims alice (local to n1) and a third node claims bob (owned by n2).
    server.receive_backplane(cbor2.dumps(record("join", p=participant("n1-1", x=1))), 0.0)
    forged = {**record("join", p=participant("n2-1", x=1)), "n": "n3"}
    server.receive_backplane(cbor2.dumps(forged), 0.0)
    # Likewise for departures, and for someone nobody knows.
    server.receive_backplane(cbor2.dumps(record("left", id="n1-1")), 0.0)
    server.receive_backplane(cbor2.dumps({**record("left", id="n2-1"), "n": "n3"}), 0.0)
    server.receive_backplane(cbor2.dumps(record("left", id="ghost")), 0.0)
    assert server.participants("demo") == before
    cluster.n1.pump()
    assert alice.take() == carol.take() == []


def test_a_remote_message_for_nobody_here_is_dropped_quietly(cluster: Cluster) -> None:
    _, _, carol, _ = peers(cluster)
    message = record("msg", id="m1", ts=5.0, message={}, type="x", to=["ghost"])
    message["from"] = "n2-1"
    cluster.n1.server.receive_backplane(cbor2.dumps(message), 0.0)
    cluster.n1.pump()
    assert carol.take() == []


GOOD_MSG = record("msg", id="m1", ts=1.0, type="x", message={}, to=None) | {"from": "n2-1"}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\xff", id="not-cbor"),
        pytest.param(cbor2.dumps([1, 2]), id="not-a-map"),
        pytest.param(cbor2.dumps(record("hello")), id="unknown-kind"),
        pytest.param(cbor2.dumps({**GOOD_MSG, "n": 1}), id="msg-node"),
        pytest.param(cbor2.dumps({**GOOD_MSG, "r": None}), id="msg-room"),
        pytest.param(cbor2.dumps({**GOOD_MSG, "id": 1}), id="msg-id"),
        pytest.param(cbor2.dumps({**GOOD_MSG, "ts": "now"}), id="msg-ts"),
        pytest.param(cbor2.dumps({**GOOD_MSG, "from": None}), id="msg-from"),
        pytest.param(cbor2.dumps({**GOOD_MSG, "type": 3}), id="msg-type"),
        pytest.param(cbor2.dumps({**GOOD_MSG, "message": []}), id="msg-message"),
        pytest.param(cbor2.dumps({**GOOD_MSG, "att": "text"}), id="msg-att"),
        pytest.param(cbor2.dumps({**GOOD_MSG, "to": "n1-1"}), id="msg-to"),
        pytest.param(cbor2.dumps({**GOOD_MSG, "to": [1]}), id="msg-to-item"),
        pytest.param(cbor2.dumps(record("join")), id="join-no-p"),
        pytest.param(cbor2.dumps(record("join", p={"id": "x"})), id="join-bad-p"),
        pytest.param(cbor2.dumps({**record("join", p=participant("x")), "n": 2}), id="join-n"),
        pytest.param(cbor2.dumps(record("left")), id="left-no-id"),
        pytest.param(cbor2.dumps({**record("left", id="n2-1"), "r": 1}), id="left-room"),
        pytest.param(cbor2.dumps({"t": "hb", "n": "n2"}), id="hb-room"),
        pytest.param(cbor2.dumps({**record("sync"), "n": None}), id="sync-node"),
    ],
)
def test_malformed_records_raise_and_change_nothing(cluster: Cluster, data: bytes) -> None:
    server = cluster.n1.server
    before = server.participants("demo")
    with pytest.raises(RemoteProtocolError) as caught:
        server.receive_backplane(data, 0.0)
    assert caught.value.code is Code.BAD_FRAME
    assert server.participants("demo") == before
    assert server.connections_with_output() == []
    assert server.backplane_data_to_send() == []
    # The good form of the same message does get through.
    server.receive_backplane(cbor2.dumps(GOOD_MSG), 0.0)
    assert len(server.connections_with_output()) == 2


def test_a_single_node_server_publishes_nothing() -> None:
    room = Room()
    alice, bob = room.enabled("alice"), room.enabled("bob")
    alice.client.broadcast_message("x", {})
    alice.client.send_message("id2", "x", {})
    alice.client.set_attributes({"a": 1})
    bob.client.disable()
    room.pump()
    assert len(received(bob)) == 2
    assert room.server.backplane_data_to_send() == []
    assert room.server.next_deadline() is not None
    room.server.handle_timer(room.now)
    assert room.server.backplane_data_to_send() == []
    assert room.server.backplane_up
    # Records and the backplane calls mean nothing to it.
    room.server.receive_backplane(cbor2.dumps(GOOD_MSG), 0.0)
    room.server.backplane_lost(0.0)
    room.server.backplane_restored(0.0)
    assert room.server.backplane_up
    assert room.server.connections_with_output() == []
    assert room.server.backplane_data_to_send() == []


def kinds(peer: Peer) -> list[tuple[str, str]]:
    """Presence diffs as (kind, participant id)."""
    found = []
    for event in peer.take():
        if isinstance(event, ParticipantAdded):
            found.append(("joined", event.participant.id))
        elif isinstance(event, ParticipantRemoved):
            found.append(("left", event.participant.id))
    return found


def beat(cluster: Cluster) -> None:
    for node in cluster.nodes():
        node.server.handle_timer(node.now)
    cluster.settle()


def test_a_silent_node_is_removed_once_after_the_ttl(cluster: Cluster) -> None:
    alice, bob, carol, dave = peers(cluster)
    n1 = cluster.n1
    assert n1.server.next_deadline() == 0.0  # the first heartbeat is due at once
    beat(cluster)
    hb = [r for r in cluster.published if cbor2.loads(r)["t"] == "hb"]
    assert [cbor2.loads(r) for r in hb] == [{"t": "hb", "n": n, "r": ""} for n in ("n1", "n2")]
    assert n1.server.next_deadline() == n1.now + 5.0
    n1.now += 10.0
    beat(cluster)  # n2 is still heard: nothing changes
    n1.now += 15.5
    n1.server.handle_timer(n1.now)  # n2 last heard 15.5 s ago, over the 15 s TTL
    n1.pump()
    assert kinds(alice) == [("left", "n2-1"), ("left", "n2-2")]
    assert kinds(carol) == [("left", "n2-1"), ("left", "n2-2")]
    assert [p.name for p in n1.server.participants("demo")] == ["alice", "carol"]
    n1.now += 30.0
    n1.server.handle_timer(n1.now)  # exactly once
    # A late departure of a removed participant changes nothing.
    n1.server.receive_backplane(cbor2.dumps(record("left", id="n2-1")), n1.now)
    n1.pump()
    assert alice.take() == carol.take() == []
    assert bob.take() == dave.take() == []


def test_a_sync_request_is_answered_with_presence(cluster: Cluster) -> None:
    alice, _, carol, _ = peers(cluster)
    server = cluster.n1.server
    server.backplane_data_to_send()
    server.receive_backplane(cbor2.dumps({**record("join", p=participant("n3-1")), "n": "n3"}), 0)
    server.receive_backplane(cbor2.dumps({**record("sync"), "n": "n3"}), 0)
    cluster.n1.pump()
    # n3 starts over: what it announced is dropped, then it announces it again.
    assert kinds(alice) == [("joined", "n3-1"), ("left", "n3-1")]
    published = [cbor2.loads(r) for r in server.backplane_data_to_send()]
    assert [(r["t"], r["p"]["name"]) for r in published] == [("join", "alice"), ("join", "carol")]
    carol.take()


def test_a_node_asks_for_presence_when_a_room_is_new_to_it() -> None:
    cluster = Cluster()
    cluster.enabled(cluster.n1, "alice")
    cluster.n2.join("bob")
    cluster.n2.pump()
    first = [cbor2.loads(r) for r in cluster.n2.server.backplane_data_to_send()]
    assert first == [{"t": "sync", "n": "n2", "r": "demo"}]
    cluster.n2.join("dave")  # the room is known now: no second request
    cluster.n2.pump()
    assert cluster.n2.server.backplane_data_to_send() == []


def test_an_identical_announcement_is_not_an_update(cluster: Cluster) -> None:
    alice, _, _, _ = peers(cluster)
    again = {**record("join", p=participant("n2-1")), "n": "n2"}
    again["p"]["name"] = "bob"
    cluster.n1.server.receive_backplane(cbor2.dumps(again), 0)
    cluster.n1.pump()
    assert alice.take() == []


def test_losing_the_backplane_delivers_locally_and_resyncs(cluster: Cluster) -> None:
    alice, bob, carol, dave = peers(cluster)
    n1, server = cluster.n1, cluster.n1.server
    alice.client.broadcast_message("in-flight", {})
    n1.pump()
    in_flight = server.backplane_data_to_send()
    server.backplane_lost(n1.now)
    server.backplane_lost(n1.now)  # once is enough
    assert not server.backplane_up
    n1.pump()
    # The local recipient still gets it; the other node's participants are gone from view.
    events = carol.take()
    assert [e.message.type for e in events if isinstance(e, MessageReceived)] == ["in-flight"]
    assert [e.participant.id for e in events if isinstance(e, ParticipantRemoved)] == [
        "n2-1",
        "n2-2",
    ]
    assert kinds(alice) == [("left", "n2-1"), ("left", "n2-2")]
    # Alone: local messages go at once, remote recipients are not found, nothing is published.
    alice.client.broadcast_message("alone", {})
    rid = alice.client.send_message("n2-1", "chat", {})
    n1.pump()
    assert [m.type for m in received(carol)] == ["alone"]
    assert [e.code for e in alice.of(RequestRefused)] == [Code.NOT_FOUND]
    assert rid
    server.handle_timer(n1.now + 5)
    server.receive_backplane(cbor2.dumps({**GOOD_MSG, "to": ["n1-1"]}), n1.now)
    assert server.backplane_data_to_send() == []
    n1.pump()
    assert alice.take() == []
    # Back: presence is asked for and announced again; the in-flight message is not doubled.
    server.accept("still-handshaking", n1.now)
    server.backplane_restored(n1.now)
    server.backplane_restored(n1.now)
    for data in in_flight:
        server.receive_backplane(data, n1.now)
    assert server.backplane_up
    cluster.settle()
    assert kinds(alice) == [("joined", "n2-1"), ("joined", "n2-2")]
    assert received(carol) == []
    # n2 saw n1's participants leave and come back: the gap is not silent.
    assert kinds(bob) == [
        ("left", "n1-1"),
        ("left", "n1-2"),
        ("joined", "n1-1"),
        ("joined", "n1-2"),
    ]
    dave.take()
    alice.client.broadcast_message("together", {})
    cluster.settle()
    assert [m.type for m in received(bob)] == ["together"]


def test_local_messages_come_back_in_order(cluster: Cluster) -> None:
    alice, _, carol, _ = peers(cluster)
    server = cluster.n1.server
    alice.client.broadcast_message("one", {})
    alice.client.broadcast_message("two", {})
    cluster.n1.pump()
    first, second = server.backplane_data_to_send()
    server.receive_backplane(second, 0)  # the first is delivered before it
    server.receive_backplane(first, 0)
    cluster.n1.pump()
    assert [m.type for m in received(carol)] == ["one", "two"]
    # Another node's room name in an own record: nothing pending there.
    server.receive_backplane(cbor2.dumps({**GOOD_MSG, "n": "n1", "r": "elsewhere"}), 0)


def test_the_heartbeat_must_be_shorter_than_the_ttl() -> None:
    with pytest.raises(ValueError, match="backplane_heartbeat"):
        server_config(node_id="n1", backplane_heartbeat=3.0, backplane_ttl=3.0)
