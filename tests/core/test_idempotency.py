"""Idempotent sends and recipient counts (PROTOCOL.md §26) through the public API: a key is
delivered at most once per sender identity within ``idempotency_window``, a repeat is acked
with the first send's id and count, memory stays bounded, and every message ack counts the
participants it was queued for, the sender not counted."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomwire import Code, InvalidRequest
from roomwire.events import MessageIntercepted, MessageReceived, RequestAcked, RequestRefused

from .helpers import Peer, Room, raw_peer, token
from .test_backplane import Cluster
from .test_server_messaging import quiet_room as quiet
from .test_service import async_room, service_room, settle


def acks(peer: Peer) -> list[RequestAcked]:
    return [e for e in peer.take() if isinstance(e, RequestAcked)]


def got(peer: Peer) -> list[str]:
    return [e.message.id for e in peer.of(MessageReceived)]


def test_a_repeated_key_is_delivered_once_and_acked_with_the_first_id() -> None:
    room, [alice, bob, carol] = quiet("alice", "bob", "carol")
    alice.client.broadcast_message("chat", {"n": 1}, idempotency_key="k1")
    room.pump()
    [first] = acks(alice)
    assert (first.recipients, first.duplicate) == (2, False)
    alice.client.broadcast_message("chat", {"n": 1}, idempotency_key="k1")
    room.pump()
    [again] = acks(alice)
    assert (again.message_id, again.recipients, again.duplicate) == (first.message_id, 2, True)
    assert got(bob) == got(carol) == [first.message_id]


def test_a_reconnected_sender_is_the_same_identity() -> None:
    # The key is the token's name's: a new connection (a new participant id) repeats it.
    room, [alice, bob] = quiet("alice", "bob")
    alice.client.send_message(bob.server.participant.id, "chat", {}, idempotency_key="k")  # type: ignore[union-attr]
    room.pump()
    [first] = acks(alice)
    bob.take()
    alice.server.close_now(Code.GOING_AWAY, "cut")
    room.pump()
    again = room.enabled("alice-again", tok=token("demo", "alice"))
    again.take()
    bob.take()
    # The recipient left meanwhile too: a repeat is acked before the recipients are checked.
    again.client.send_message("gone", "chat", {}, idempotency_key="k")
    room.pump()
    [dup] = acks(again)
    assert (dup.message_id, dup.recipients, dup.duplicate) == (first.message_id, 1, True)
    assert got(bob) == []


def test_after_the_window_a_key_is_new_again() -> None:
    room, [alice, bob] = quiet("alice", "bob", idempotency_window=30)
    alice.client.broadcast_message("chat", {}, idempotency_key="k")
    room.pump()
    room.advance(29.5)
    alice.client.broadcast_message("chat", {}, idempotency_key="k")
    room.pump()
    assert len(got(bob)) == 1
    room.advance(0.5)
    alice.client.broadcast_message("chat", {}, idempotency_key="k")
    room.pump()
    assert len(got(bob)) == 1
    assert [a.duplicate for a in acks(alice)] == [False, True, False]


def test_another_identity_with_the_same_key_is_another_send() -> None:
    room, [alice, bob, carol] = quiet("alice", "bob", "carol")
    alice.client.broadcast_message("chat", {}, idempotency_key="same")
    carol.client.broadcast_message("chat", {}, idempotency_key="same")
    room.pump()
    assert len(got(bob)) == 2
    # The same name in another room is another identity too.
    other = room.enabled("alice-elsewhere", tok=token("lobby", "alice"))
    other.client.broadcast_message("chat", {}, idempotency_key="same")
    room.pump()
    [ack] = acks(other)
    assert (ack.duplicate, ack.recipients) == (False, 0)


def test_sends_without_a_key_are_never_deduplicated() -> None:
    room, [alice, bob] = quiet("alice", "bob")
    for _ in range(2):
        alice.client.broadcast_message("chat", {})
    room.pump()
    assert len(got(bob)) == 2
    assert len(room.server.sent_keys) == 0


@pytest.mark.parametrize("key", [7, "", "k" * 65, b"bytes", ["k"]])
def test_a_bad_key_is_refused_and_the_connection_kept(key: object) -> None:
    room, [bob] = quiet("bob")
    raw = raw_peer(room, "raw")
    raw.client.send({"t": "enable", "rid": 0})
    room.pump()
    raw.client.take()
    for rid, kind in ((1, "broadcast"), (2, "send")):
        frame = {"t": kind, "rid": rid, "type": "chat", "message": {}, "key": key, "to": ["id1"]}
        raw.client.send(frame)
        room.pump()
        [error] = raw.client.take()
        assert (error["t"], error["code"]) == ("error", Code.INVALID_REQUEST)
        assert "key must be text of 1 to 64 characters" in error["reason"]
    raw.client.send({"t": "broadcast", "rid": 3, "type": "chat", "message": {}, "key": None})
    room.pump()
    assert raw.client.take() == [{"t": "ack", "rid": 3, "id": "id3", "recipients": 1}]
    assert got(bob) == ["id3"]


@pytest.mark.parametrize("key", ["", "k" * 65])
def test_the_client_checks_a_key_before_sending(key: str) -> None:
    _room, [alice] = quiet("alice")
    with pytest.raises(InvalidRequest, match="idempotency_key must be text of 1 to 64"):
        alice.client.broadcast_message("chat", {}, idempotency_key=key)
    with pytest.raises(InvalidRequest, match="idempotency_key"):
        alice.client.send_message("id1", "chat", {}, idempotency_key=key)
    assert alice.client.broadcast_message("chat", {}, idempotency_key="k" * 64) > 0


def test_the_window_and_the_bound_are_advertised() -> None:
    _room, [alice] = quiet("alice", idempotency_window=45, max_idempotency_keys=7)
    limits = alice.client.limits
    assert limits is not None
    assert (limits.idempotency_window, limits.max_idempotency_keys) == (45, 7)


# --- memory ---------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    keys=st.lists(st.text(min_size=1, max_size=64), min_size=1, max_size=60),
    bound=st.integers(min_value=1, max_value=10),
)
def test_one_identity_keeps_at_most_the_bound(keys: list[str], bound: int) -> None:
    room, [alice, _bob] = quiet("alice", "bob", max_idempotency_keys=bound)
    for key in keys:
        alice.client.broadcast_message("chat", {}, idempotency_key=key)
        room.pump()
        assert len(room.server.sent_keys) <= bound
    # The newest key is always remembered; delivered once per distinct key still kept.
    alice.client.broadcast_message("chat", {}, idempotency_key=keys[-1])
    room.pump()
    assert acks(alice)[-1].duplicate


def test_the_oldest_key_goes_first_past_the_bound() -> None:
    room, [alice, bob] = quiet("alice", "bob", max_idempotency_keys=2)
    for key in ("a", "b", "c", "a"):
        alice.client.broadcast_message("chat", {}, idempotency_key=key)
        room.pump()
    # "a" was evicted by "c": the bound is what a client may have unconfirmed at a cut.
    assert [a.duplicate for a in acks(alice)] == [False, False, False, False]
    alice.client.broadcast_message("chat", {}, idempotency_key="c")
    room.pump()
    assert acks(alice)[-1].duplicate
    assert len(got(bob)) == 4


def test_identities_whose_keys_expired_are_dropped() -> None:
    room = Room(idempotency_window=10)
    senders = [room.enabled(f"user{n}") for n in range(50)]
    for peer in senders:
        peer.client.broadcast_message("chat", {}, idempotency_key="k")
    room.pump()
    assert room.server.sent_keys.identities == 50
    room.advance(10)
    senders[0].client.broadcast_message("chat", {}, idempotency_key="k2")
    room.pump()
    assert (room.server.sent_keys.identities, len(room.server.sent_keys)) == (1, 1)


def test_a_busy_identity_keeps_its_bound_and_an_expired_key_is_new_again() -> None:
    room, [alice] = quiet("alice", idempotency_window=10, max_idempotency_keys=2)
    for key in ("old", "mid"):
        alice.client.broadcast_message("chat", {}, idempotency_key=key)
        room.pump()
        room.advance(6)
    alice.client.broadcast_message("chat", {}, idempotency_key="old")  # 12 s later
    room.pump()
    alice.client.broadcast_message("chat", {}, idempotency_key="mid")  # 6 s later
    room.pump()
    assert [a.duplicate for a in acks(alice)] == [False, False, False, True]
    assert len(room.server.sent_keys) == 2


# --- recipient counts -------------------------------------------------------------------


def test_recipients_count_zero_one_and_many() -> None:
    room, [alice] = quiet("alice")
    alice.client.broadcast_message("chat", {})
    room.pump()
    assert [a.recipients for a in acks(alice)] == [0]
    others = [room.enabled(name) for name in ("bob", "carol", "dave")]
    alice.client.send_message(others[0].server.participant.id, "chat", {})  # type: ignore[union-attr]
    alice.client.send_message([p.server.participant.id for p in others[:2]], "chat", {})  # type: ignore[union-attr]
    alice.client.broadcast_message("chat", {})
    room.pump()
    assert [a.recipients for a in acks(alice)] == [1, 2, 3]


def test_a_send_to_oneself_does_not_count_the_sender() -> None:
    room, [alice, bob] = quiet("alice", "bob")
    me = alice.server.participant.id  # type: ignore[union-attr]
    alice.client.send_message([me, bob.server.participant.id], "chat", {})  # type: ignore[union-attr]
    alice.client.send_message(me, "chat", {})
    room.pump()
    assert [a.recipients for a in acks(alice)] == [1, 0]


def test_a_hidden_participant_is_no_recipient_of_a_broadcast() -> None:
    room, [alice] = quiet("alice")
    room.enabled("watcher", hidden=True)
    alice.client.broadcast_message("chat", {})
    room.pump()
    assert [a.recipients for a in acks(alice)] == [0]


def test_through_a_backplane_the_count_is_of_the_nodes_presence() -> None:
    cluster = Cluster()
    for node, name in ((cluster.n1, "alice"), (cluster.n2, "bob"), (cluster.n2, "dave")):
        cluster.enabled(node, name)
    cluster.settle()
    alice, bob = cluster.n1.peers["alice"], cluster.n2.peers["bob"]
    alice.take()
    alice.client.broadcast_message("chat", {}, idempotency_key="k")
    cluster.settle()
    alice.client.broadcast_message("chat", {}, idempotency_key="k")
    cluster.settle()
    assert [(a.recipients, a.duplicate) for a in acks(alice)] == [(2, False), (2, True)]
    assert len(got(bob)) == 1


def test_with_a_service_the_ack_has_no_count_and_a_repeat_is_not_handed_over_again() -> None:
    room, service, [alice, bob] = service_room("alice", "bob")
    alice.client.send_message(bob.server.participant.id, "chat", {}, idempotency_key="k")  # type: ignore[union-attr]
    room.pump()
    alice.client.send_message(bob.server.participant.id, "chat", {}, idempotency_key="k")  # type: ignore[union-attr]
    room.pump()
    first, again = acks(alice)
    assert (first.recipients, again.recipients, again.duplicate) == (None, None, True)
    assert first.message_id == again.message_id
    assert len(service.of(MessageIntercepted)) == 1


def test_an_async_interceptor_remembers_the_key_once_it_decided() -> None:
    room, alice, bob = async_room(lambda m: m)
    alice.client.send_message(["id2"], "chat", {}, idempotency_key="k")
    room.pump()
    settle(room)
    alice.client.send_message(["id2"], "chat", {}, idempotency_key="k")
    room.pump()
    assert room.server.interceptions() == []  # a repeat is not intercepted again
    first, again = acks(alice)
    assert (first.recipients, again.recipients, again.duplicate) == (1, 1, True)
    assert len(got(bob)) == 1


def test_an_async_interceptor_drop_is_remembered_with_no_recipients() -> None:
    room, alice, _bob = async_room(lambda m: None)
    alice.client.broadcast_message("chat", {}, idempotency_key="k")
    room.pump()
    settle(room)
    [ack] = acks(alice)
    assert ack.recipients == 0


def test_a_repeat_waits_while_the_first_waits_for_its_record() -> None:
    room, [alice, bob] = quiet("alice", "bob", external_history=True)
    alice.client.broadcast_message("chat", {}, idempotency_key="k")
    room.pump()
    again = room.enabled("alice-again", tok=token("demo", "alice"))
    again.take()
    again.client.broadcast_message("chat", {}, idempotency_key="k")
    room.pump()
    assert acks(alice) == acks(again) == []
    room.server.history_to_store()
    room.server.history_stored(1)
    room.pump()
    [first], [dup] = acks(alice), acks(again)
    assert (dup.message_id, dup.duplicate) == (first.message_id, True)
    # Once stored, a repeat is acked at once.
    again.client.broadcast_message("chat", {}, idempotency_key="k")
    room.pump()
    assert [a.duplicate for a in acks(again)] == [True]
    assert len(got(bob)) == 1
    assert not [e for e in alice.take() if isinstance(e, RequestRefused)]
