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


def undecided(**config: Any) -> tuple[Cluster, Peer, UpwardMessage]:
    """A cluster with the service on n1 and bob's broadcast "late" waiting for it."""
    cluster = make_cluster(**config)
    service = attach(cluster, cluster.n1)
    _, bob, _ = users(cluster)
    sent(cluster, bob, "late")
    [up] = intercepted(service)
    return cluster, service, up


def test_bypass_delivers_what_a_departed_service_left_undecided() -> None:
    cluster, service, _ = undecided()
    alice, bob, dave = users(cluster)
    service.client.close()
    cluster.settle()
    assert texts(alice) == texts(dave) == ["late"]
    sent(cluster, bob, "direct")  # no service: as §10 says
    assert texts(alice) == texts(dave) == ["direct"]


def test_refuse_refuses_with_no_service_anywhere_and_drops_the_undecided() -> None:
    cluster, service, _ = undecided(service_policy="refuse")
    alice, bob, dave = users(cluster)
    service.client.close()
    cluster.settle()
    assert texts(alice) == texts(dave) == []
    bob.client.broadcast_message("chat", {"text": "anyone?"})
    cluster.settle()
    assert [e.code for e in bob.of(RequestRefused)] == [Code.SERVICE_UNAVAILABLE]


def test_a_timed_out_message_goes_back_to_its_node() -> None:
    cluster, service, up = undecided(service_timeout=5.0)
    alice, _, dave = users(cluster)
    cluster.n1.advance(6.0)
    cluster.settle()
    assert service.of(InterceptTimedOut)[0].message_id == up.id
    assert texts(alice) == texts(dave) == ["late"]  # bypass, applied by bob's node
    service.client.decide(up.id)
    cluster.settle()
    assert [e.code for e in service.of(RequestRefused)] == [Code.NOT_INTERCEPTED]


def beat(cluster: Cluster) -> None:
    for node in cluster.nodes():
        node.server.handle_timer(node.now)
    cluster.settle()


def test_a_silent_service_node_leaves_the_messages_to_the_policy() -> None:
    cluster, service, up = undecided(service_policy="hold")
    beat(cluster)
    n1, n2 = cluster.n1, cluster.n2
    for node in (n1, n2):  # each hears nothing from the other past the TTL
        node.now += 30.0
        node.server.handle_timer(node.now)
        node.pump()
    service.client.decide(up.id)  # n1 forgot n2's message: n2 handles it
    n1.pump()
    assert [e.code for e in service.of(RequestRefused)] == [Code.NOT_INTERCEPTED]
    second = n2.enabled("svc2", **SERVICE)  # n2 sees no service: it may have its own
    second.client.attach_service()
    n2.pump()
    events = [e for e in second.take() if isinstance(e, RequestAcked | MessageIntercepted)]
    assert [type(e) for e in events] == [RequestAcked, MessageIntercepted]
    assert events[1].message.id == up.id  # type: ignore[union-attr]


def test_a_lost_backplane_hands_the_messages_over_again_once_restored() -> None:
    cluster, service, up = undecided(service_policy="hold")
    alice, bob, _ = users(cluster)
    n1, n2 = cluster.n1, cluster.n2
    n2.server.backplane_lost(n2.now)
    n1.server.backplane_lost(n1.now)
    sent(cluster, bob, "alone")  # held on n2: its service is out of reach
    service.client.decide(up.id)  # n1 handed the decision back to n2 when it lost it
    n1.pump()
    assert [e.code for e in service.of(RequestRefused)] == [Code.NOT_INTERCEPTED]
    for node in (n1, n2):
        node.server.backplane_restored(node.now)
    cluster.settle()
    assert [u.message["text"] for u in intercepted(service)] == ["late", "alone"]
    assert texts(alice) == []


def test_after_an_outage_the_earliest_claim_keeps_the_room() -> None:
    cluster, service, up = undecided(service_policy="hold")
    n1, n2 = cluster.n1, cluster.n2
    for node in (n1, n2):
        node.server.backplane_lost(node.now)
    n2.now += 1.0
    second = n2.enabled("svc2", **SERVICE)
    second.client.attach_service()
    n2.pump()
    assert [u.id for u in intercepted(second)] == [up.id]  # n2's own service, meanwhile
    for node in (n1, n2):
        node.server.backplane_restored(node.now)
    cluster.settle()
    assert second.of(ConnectionClosed)[0].code is Code.GOING_AWAY
    # What n2's service had not decided goes to the service that holds the room.
    assert [u.id for u in intercepted(service)] == [up.id]


def test_claims_of_other_nodes_compare_among_themselves() -> None:
    """n1 hears two other nodes claim the room: the earliest holds it, whatever the order."""
    cluster = make_cluster(service_policy="hold")
    n1 = cluster.n1
    alice, _, _ = users(cluster)
    feed(n1, {"t": "svc_on", "n": "n3", "since": 9.0})
    sent_alone(n1, alice, "one")
    feed(n1, {"t": "svc_on", "n": "n4", "since": 9.5})  # later: n3 keeps the room
    feed(n1, {"t": "svc_on", "n": "n5", "since": 8.0})  # earlier: n5 gets it
    ups = [cbor2.loads(r) for r in n1.server.backplane_data_to_send() if b"svc_up" in r]
    assert [(u["n"], u["since"], u["message"]) for u in ups] == [
        ("n1", 9.0, {"text": "one"}),
        ("n1", 8.0, {"text": "one"}),
    ]
    feed(n1, {"t": "svc_done", "n": "n3", "id": ups[0]["id"]})  # from a claim that lost
    feed(n1, {"t": "svc_back", "n": "n5", "id": ups[0]["id"]})
    assert [r for r in n1.server.backplane_data_to_send() if b"svc_up" in r] == []


def feed(node: Room, record: dict[str, Any]) -> None:
    node.server.receive_backplane(cbor2.dumps({"r": "demo", **record}), node.now)
    node.pump()


def sent_alone(node: Room, peer: Peer, word: str) -> None:
    peer.client.broadcast_message("chat", {"text": word})
    node.pump()
    assert peer.of(RequestAcked)


BAD_RECORDS = [
    {"t": "svc_on"},
    {"t": "svc_on", "since": "now"},
    {"t": "svc_on", "since": float("nan")},
    {"t": "svc_done"},
    {"t": "svc_back", "id": 7},
    {"t": "svc_up", "id": "u", "ts": 1.0, "from": "x", "type": "t", "message": {}, "to": None},
    {"t": "svc_up", "since": 1.0, "id": "u", "ts": 1.0, "from": "x", "message": {}, "to": None},
    {
        "t": "svc_up",
        "since": 1.0,
        "id": "u",
        "ts": 1.0,
        "from": "x",
        "type": "",
        "message": {},
        "to": None,
    },
    {
        "t": "svc_up",
        "since": float("inf"),
        "id": "u",
        "ts": 1.0,
        "from": "x",
        "type": "t",
        "message": {},
        "to": [],
    },
    {
        "t": "svc_up",
        "since": 1.0,
        "id": "u",
        "ts": 1.0,
        "from": "x",
        "type": "t",
        "message": {"halves": [1.5] * 1200},
        "to": [],
    },
]


@pytest.mark.parametrize("record", BAD_RECORDS)
def test_service_records_no_node_could_have_sent_are_refused(record: dict[str, Any]) -> None:
    cluster, service, _ = undecided(max_frame_size=4096)
    # Canonical CBOR: 1.5 as a half float, which grows threefold in the svc_msg frame.
    data = cbor2.dumps({"n": "n2", "r": "demo", **record}, canonical=True)
    with pytest.raises(RemoteProtocolError) as caught:
        cluster.n1.server.receive_backplane(data, cluster.n1.now)
    assert caught.value.code is Code.BAD_FRAME
    cluster.settle()
    assert intercepted(service) == []
    _, bob, _ = users(cluster)
    sent(cluster, bob, "still")  # the node goes on
    assert len(intercepted(service)) == 1


def test_service_records_that_concern_no_one_here_change_nothing() -> None:
    cluster, service, up = undecided()
    n1, n2 = cluster.n1, cluster.n2
    alice, _, dave = users(cluster)
    base = {"id": "u9", "ts": 1.0, "from": "n2-1", "type": "chat", "message": {}, "to": None}
    feed(n1, {"t": "svc_up", "n": "n2", "since": 1.0, **base})  # for another claim
    feed(n2, {"t": "svc_up", "n": "n1", "since": 1.0, **base})  # n2 holds no service
    feed(n2, {"t": "svc_off", "n": "n3"})  # not the holder
    feed(n2, {"t": "svc_back", "n": "n1", "id": "unknown"})
    feed(n1, {"t": "svc_done", "n": "n2", "id": up.id})  # n1 holds it: n2 decides nothing
    feed(Room(node_id="n9"), {"t": "svc_back", "n": "n1", "id": up.id})  # no slot there
    assert intercepted(service) == []
    service.client.decide(up.id, message={"text": "kept"})
    cluster.settle()
    assert texts(alice) == texts(dave) == ["kept"]
