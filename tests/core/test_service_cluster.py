"""Services across backplane nodes (PROTOCOL.md §23.6): the service on one node serves the
users of every node; one claim wins cluster-wide; the policies apply when the service's node
goes, goes silent or the backplane is lost; service records no node could have sent are
refused and records that do not concern a node change nothing."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from roomwire import Code, RemoteProtocolError
from roomwire.events import (
    ConnectionClosed,
    InterceptTimedOut,
    MessageIntercepted,
    MessageReceived,
    ParticipantAdded,
    ParticipantRemoved,
    RequestAcked,
    RequestRefused,
    UpwardMessage,
)

from .helpers import Peer, Room
from .test_backplane import Cluster, prefixed_ids

SERVICE = {"intercept": True, "hidden": True, "can_list": True}


def make_cluster(**config: Any) -> Cluster:
    """alice (n1-1) on n1, bob (n2-1) and dave (n2-2) on n2, events consumed."""
    cluster = Cluster()
    cluster.n1 = Room(node_id="n1", id_factory=prefixed_ids("n1"), **config)
    cluster.n2 = Room(node_id="n2", id_factory=prefixed_ids("n2"), **config)
    cluster.enabled(cluster.n1, "alice")
    cluster.enabled(cluster.n2, "bob")
    cluster.enabled(cluster.n2, "dave")
    cluster.quiet()
    return cluster


def attach(cluster: Cluster, node: Room, name: str = "svc") -> Peer:
    service = node.enabled(name, **SERVICE)
    service.client.attach_service()
    cluster.settle()
    assert service.of(RequestAcked)
    cluster.quiet()
    return service


def intercepted(peer: Peer) -> list[UpwardMessage]:
    return [e.message for e in peer.of(MessageIntercepted)]


def texts(peer: Peer) -> list[str]:
    return [e.message.message["text"] for e in peer.of(MessageReceived)]


def users(cluster: Cluster) -> tuple[Peer, Peer, Peer]:
    return cluster.n1.peers["alice"], cluster.n2.peers["bob"], cluster.n2.peers["dave"]


def sent(cluster: Cluster, peer: Peer, *words: str, to: list[str] | None = None) -> None:
    for word in words:
        if to is None:
            peer.client.broadcast_message("chat", {"text": word})
        elif not to:
            peer.client.send_to_service("chat", {"text": word})
        else:
            peer.client.send_message(to, "chat", {"text": word})
    cluster.settle()
    assert len(peer.of(RequestAcked)) == len(words)


def test_the_service_on_one_node_decides_for_users_of_every_node() -> None:
    cluster = make_cluster()
    alice, bob, dave = users(cluster)
    service = attach(cluster, cluster.n1)
    sent(cluster, bob, "hi")
    [up] = intercepted(service)
    assert (up.from_participant_id, up.recipients, up.message) == ("n2-1", None, {"text": "hi"})
    assert texts(alice) == texts(dave) == []  # nothing before the decision
    service.client.decide(up.id, message={"text": "hi lol~"})
    cluster.settle()
    assert service.of(RequestAcked)
    assert texts(alice) == texts(dave) == ["hi lol~"]
    assert texts(bob) == []
    # To the service only: it reaches the service, and a drop reaches no one.
    sent(cluster, bob, "psst", to=[])
    [up] = intercepted(service)
    assert up.recipients == []
    service.client.decide(up.id, drop=True)
    cluster.settle()
    assert service.of(RequestAcked)
    assert texts(alice) == texts(bob) == texts(dave) == []
    service.client.decide(up.id)  # decided already
    cluster.settle()
    assert [e.code for e in service.of(RequestRefused)] == [Code.NOT_INTERCEPTED]


def test_the_service_speaks_and_its_puppets_are_seen_on_every_node() -> None:
    cluster = make_cluster()
    alice, bob, dave = users(cluster)
    service = attach(cluster, cluster.n1)
    service.client.create_puppet("Meow", {"kind": "cat"})
    cluster.settle()
    [acked] = service.of(RequestAcked)
    puppet = acked.message_id
    for peer in (alice, bob, dave):
        [added] = peer.of(ParticipantAdded)
        assert (added.participant.id, added.participant.role) == (puppet, "puppet")
    service.client.send_as(puppet, "chat", {"text": "meow"}, to=["n2-1"])
    service.client.send_as("n2-2", "chat", {"text": "as dave"})
    cluster.settle()
    assert texts(bob) == ["meow", "as dave"]
    assert texts(alice) == ["as dave"]
    assert texts(dave) == []
    # A node that joins the room later learns the puppet and the claim from the sync.
    late = cluster.n2.enabled("erin")
    cluster.settle()
    assert puppet in {p.id for p in cluster.n2.server.participants("demo")}
    late.client.broadcast_message("chat", {"text": "hello"})
    cluster.settle()
    assert [u.message for u in intercepted(service)] == [{"text": "hello"}]
    service.client.close()
    cluster.settle()
    assert [e.participant.id for e in bob.of(ParticipantRemoved)] == [puppet]


def test_the_service_sees_the_presence_of_every_node() -> None:
    cluster = make_cluster()
    service = attach(cluster, cluster.n1)
    cluster.enabled(cluster.n2, "erin")
    [added] = service.of(ParticipantAdded)
    assert added.participant.name == "erin"
    cluster.n2.peers["erin"].client.close()
    cluster.settle()
    assert [e.participant.id for e in service.of(ParticipantRemoved)] == [added.participant.id]


def test_a_second_service_on_another_node_is_refused() -> None:
    cluster = make_cluster()
    attach(cluster, cluster.n1)
    second = cluster.n2.enabled("svc2", **SERVICE)
    second.client.attach_service()
    cluster.settle()
    assert [e.code for e in second.of(RequestRefused)] == [Code.SERVICE_TAKEN]


@pytest.mark.parametrize(("n1_at", "n2_at", "winner"), [(5.0, 5.0, "n1"), (7.0, 5.0, "n2")])
def test_two_services_attaching_at_once_settle_on_the_earliest_claim(
    n1_at: float, n2_at: float, winner: str
) -> None:
    cluster = make_cluster()
    cluster.n1.now, cluster.n2.now = n1_at, n2_at
    one = cluster.n1.enabled("svc1", **SERVICE)
    two = cluster.n2.enabled("svc2", **SERVICE)
    cluster.settle()
    one.client.attach_service()
    two.client.attach_service()
    cluster.n1.pump()
    cluster.n2.pump()
    cluster.settle()
    kept, lost = (one, two) if winner == "n1" else (two, one)
    assert kept.of(RequestAcked)
    closed = lost.of(ConnectionClosed)[0]  # reported again at every later pump
    assert (closed.code, closed.by_peer) == (Code.GOING_AWAY, True)
    _, bob, _ = users(cluster)
    sent(cluster, bob, "who")
    assert len(intercepted(kept)) == 1


def test_hold_keeps_messages_on_their_node_until_a_service_attaches_anywhere() -> None:
    cluster = make_cluster(service_policy="hold")
    alice, bob, _ = users(cluster)
    service = attach(cluster, cluster.n1)
    sent(cluster, bob, "one")
    [one] = intercepted(service)
    service.client.close()  # "one" was not decided: back to n2's hold
    cluster.settle()
    sent(cluster, bob, "two", "three")
    sent(cluster, alice, "four")
    again = attach_later(cluster, cluster.n1)
    handed = intercepted(again)
    # Each node hands over what it holds in order: n1's own first, then n2's.
    assert [u.message["text"] for u in handed] == ["four", "one", "two", "three"]
    assert handed[1].id == one.id


def attach_later(cluster: Cluster, node: Room) -> Peer:
    """Attach a service without consuming what it was handed."""
    service = node.enabled(f"svc{len(node.peers)}", **SERVICE)
    service.client.attach_service()
    cluster.settle()
    return service
