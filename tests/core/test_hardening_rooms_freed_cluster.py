"""Issue 13, finding 3 on a cluster (two RoomServers wired in memory, every record to every
node): a node frees a room with its last local connection, other nodes' participants
included; records still on their way for it are dropped for a heartbeat interval or two; a
room known only from records goes with its last member."""

from __future__ import annotations

from roomwire.events import MessagingEnabled

from .test_backplane import Cluster


def bob_left() -> Cluster:
    """alice on n1 stays; bob, n2's only participant, has left: n2 freed the room."""
    cluster = Cluster()
    cluster.enabled(cluster.n1, "alice")
    bob = cluster.enabled(cluster.n2, "bob")
    bob.client.close()
    cluster.settle()
    return cluster


def test_a_room_known_only_from_records_goes_with_its_last_member() -> None:
    cluster = Cluster()
    alice = cluster.enabled(cluster.n1, "alice")
    assert "demo" in cluster.n2.server.router.rooms  # n2 heard alice's join: nobody of its own
    alice.client.close()
    cluster.settle()
    assert cluster.n1.server.router.rooms == {}
    assert cluster.n2.server.router.rooms == {}
    assert cluster.n1.server.rooms_freed() == ["demo"]
    assert cluster.n2.server.rooms_freed() == ["demo"]


def test_records_for_a_room_just_freed_are_dropped_then_heard_again() -> None:
    cluster = bob_left()
    n2 = cluster.n2.server
    assert n2.router.rooms == {}  # freed with bob, alice (on n1) included
    cluster.n1.peers["alice"].client.set_attributes({"late": True})
    cluster.settle()
    assert n2.router.rooms == {}  # alice's update was on its way: dropped
    for _ in range(2):  # two heartbeat intervals later, records make the room again
        cluster.n2.advance(cluster.n2.server.config.backplane_heartbeat)
    cluster.n1.peers["alice"].client.set_attributes({"later": True})
    cluster.settle()
    assert [p.name for p in n2.participants("demo")] == ["alice"]


def test_a_room_made_again_on_a_node_hears_the_others_again() -> None:
    cluster = bob_left()
    carol = cluster.n2.enabled("carol")  # demo made again on n2: it asks the others (sync)
    cluster.settle()
    assert sorted(p.name for p in cluster.n2.server.participants("demo")) == ["alice", "carol"]
    assert carol.of(MessagingEnabled)


def test_losing_the_backplane_frees_the_rooms_known_only_from_records() -> None:
    cluster = Cluster()
    cluster.enabled(cluster.n1, "alice")
    n2 = cluster.n2.server
    assert "demo" in n2.router.rooms
    n2.backplane_lost(cluster.n2.now)
    assert n2.router.rooms == {}
