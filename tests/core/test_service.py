"""Services (docs/PROTOCOL.md §23) through the public API: a client with the ``intercept``
grant attaches as its room's service and decides every message; the policies with no service
attached; timeouts; puppets; the in-process interceptor that raises."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from roomwire import Code, InvalidRequest, MessageTooLarge, ParticipantToken
from roomwire.events import (
    InterceptTimedOut,
    MessageIntercepted,
    MessageReceived,
    MessageRouted,
    ParticipantAdded,
    ParticipantRemoved,
    RequestAcked,
    RequestRefused,
    UpwardMessage,
)
from roomwire.frames import encode_frame

from .helpers import SECRET, Peer, Room, drain

SERVICE = {"intercept": True, "hidden": True}


def service_room(*names: str, **config: Any) -> tuple[Room, Peer, list[Peer]]:
    """A room with ``names`` enabled and an attached service (hidden), all events consumed."""
    room = Room(**config)
    users = [room.enabled(name) for name in names]
    service = room.enabled("svc", **SERVICE)
    service.client.attach_service()
    room.pump()
    assert service.of(RequestAcked)
    for peer in users:
        peer.take()
    return room, service, users


def refusal(peer: Peer) -> Code:
    [refused] = peer.of(RequestRefused)
    return refused.code


def intercepted(peer: Peer) -> list[UpwardMessage]:
    return [e.message for e in peer.of(MessageIntercepted)]


def received(peer: Peer) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (e.message.from_participant_id, e.message.type, e.message.message)
        for e in peer.of(MessageReceived)
    ]


def raw(peer: Peer, **frame: Any) -> Code:
    """Send a hand-built frame (past the client's own checks); the code it was refused with,
    as the server reports it (the client did not make the request, so it is not pumped)."""
    peer.server.receive_data(encode_frame({"rid": 900, **frame}))
    [refused] = [e for e in drain(peer.server, peer.room.now) if isinstance(e, RequestRefused)]
    return refused.code


def test_the_intercept_grant_round_trips_and_is_absent_by_default() -> None:
    assert ParticipantToken.from_jwt(
        ParticipantToken(room="r", name="s", intercept=True).to_jwt(SECRET), SECRET
    ).intercept
    plain = ParticipantToken(room="r", name="u")
    assert not ParticipantToken.from_jwt(plain.to_jwt(SECRET), SECRET).intercept


def test_attaching_needs_the_grant() -> None:
    room = Room()
    user = room.enabled("mallory")
    user.take()
    user.client.attach_service()
    room.pump()
    assert refusal(user) is Code.FORBIDDEN_INTERCEPT


def test_every_message_waits_for_the_service_which_may_forward_it_as_asked() -> None:
    room, service, [alice, bob] = service_room("alice", "bob")
    alice.client.send_message([bob.client.local_participant.id], "chat", {"text": "hi"}, b"\x01")  # type: ignore[union-attr]
    room.pump()
    [ack] = alice.of(RequestAcked)
    assert received(bob) == []
    [up] = intercepted(service)
    assert (up.id, up.from_participant_id, up.type, up.message, up.attachment) == (
        ack.message_id,
        "id1",
        "chat",
        {"text": "hi"},
        b"\x01",
    )
    assert up.recipients == ["id2"]
    service.client.decide(up.id)
    room.pump()
    assert service.of(RequestAcked)
    [message] = bob.of(MessageReceived)
    assert (message.message.id, message.message.from_participant_id) == (up.id, "id1")
    assert message.message.attachment == b"\x01"
    routed = [e for e in service.server_events if isinstance(e, MessageRouted)]
    assert routed[-1].recipients == 1


def test_the_service_may_rewrite_redirect_broadcast_or_drop() -> None:
    room, service, [alice, bob, carol] = service_room("alice", "bob", "carol")
    for text in ("one", "two", "three", "four"):
        alice.client.send_message(["id2"], "chat", {"text": text})
    room.pump()
    one, two, three, four = intercepted(service)
    service.client.decide(one.id, message={"text": "one lol~"}, type="said", attachment=b"x")
    service.client.decide(two.id, to=["id3", "ghost"])
    service.client.decide(three.id, to=None, attachment=None, message={})
    service.client.decide(four.id, drop=True)
    room.pump()
    assert len(service.of(RequestAcked)) == 4
    assert received(bob) == [("id1", "said", {"text": "one lol~"}), ("id1", "chat", {})]
    assert received(carol) == [("id1", "chat", {"text": "two"}), ("id1", "chat", {})]
    assert received(alice) == []


def test_a_user_may_send_to_the_service_only() -> None:
    room, service, [alice, bob] = service_room("alice", "bob")
    alice.client.send_to_service("chat", {"text": "create Meow"})
    alice.client.broadcast_message("chat", {"text": "all"})
    room.pump()
    only, everyone = intercepted(service)
    assert (only.recipients, everyone.recipients) == ([], None)
    service.client.decide(only.id)
    room.pump()
    assert received(bob) == []


def test_the_service_speaks_as_members_puppets_or_itself_skipping_absent_recipients() -> None:
    room, service, [alice, bob] = service_room("alice", "bob")
    service.client.create_puppet("Meow", {"kind": "cat"})
    room.pump()
    [created] = service.of(RequestAcked)
    assert created.message_id is not None
    puppet = service.client.get_participant(created.message_id)
    assert puppet is not None
    assert (puppet.name, puppet.role) == ("Meow", "puppet")
    [added] = bob.of(ParticipantAdded)
    assert added.participant == puppet
    me = service.client.local_participant.id  # type: ignore[union-attr]
    service.client.send_as(puppet.id, "chat", {"text": "meow"}, to=["id2", "gone", puppet.id])
    service.client.send_as("id1", "chat", {"text": "as alice"})
    service.client.send_as(me, "chat", {"text": "as me"}, b"a", to=["id1"])
    room.pump()
    assert len(service.of(RequestAcked)) == 3
    assert received(bob) == [
        (puppet.id, "chat", {"text": "meow"}),
        ("id1", "chat", {"text": "as alice"}),
    ]
    assert received(alice) == [(me, "chat", {"text": "as me"})]
    service.client.send_as("nobody", "chat", {})
    room.pump()
    assert refusal(service) is Code.NOT_FOUND
    service.client.remove_puppet(puppet.id)
    room.pump()
    assert service.of(RequestAcked)
    assert [e.participant.id for e in bob.of(ParticipantRemoved)] == [puppet.id]
    service.client.remove_puppet(puppet.id)
    room.pump()
    assert refusal(service) is Code.NOT_FOUND


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"t": "svc_send", "from": "id1", "type": "", "message": {}}, Code.INVALID_REQUEST),
        (
            {"t": "svc_send", "from": "id1", "type": "x", "message": {"a": float("nan")}},
            Code.INVALID_REQUEST,
        ),
        (
            {"t": "svc_send", "from": "id1", "type": "x", "message": {}, "to": ["a", "b"]},
            Code.INVALID_REQUEST,
        ),
        ({"t": "svc_puppet", "name": "", "attributes": {}}, Code.INVALID_REQUEST),
        ({"t": "svc_puppet", "name": "p", "attributes": {"a": float("nan")}}, Code.INVALID_REQUEST),
        ({"t": "svc_puppet", "name": "p", "attributes": {"a": "x" * 100}}, Code.TOO_LARGE),
        ({"t": "svc_decide", "id": "nope"}, Code.NOT_INTERCEPTED),
        (
            {"t": "svc_send", "from": "id1", "type": "x", "message": {"x": "y" * 3500}},
            Code.TOO_LARGE,
        ),
    ],
)
def test_the_server_checks_what_a_service_sends(frame: dict[str, Any], code: Code) -> None:
    _room, service, _ = service_room(
        "alice", max_recipients=1, max_attributes_size=64, max_frame_size=4096
    )
    assert raw(service, **frame) is code


def test_a_rewrite_too_large_to_deliver_is_refused_and_stays_undecided() -> None:
    room, service, [alice, bob] = service_room("alice", "bob", max_frame_size=4096)
    alice.client.send_message(["id2"], "chat", {}, b"a" * 2000)
    room.pump()
    [up] = intercepted(service)
    service.client.decide(up.id, message={"x": "y" * 2060})
    room.pump()
    assert refusal(service) is Code.TOO_LARGE
    service.client.decide(up.id)
    room.pump()
    assert len(bob.of(MessageReceived)) == 1


def test_service_requests_need_an_attached_service() -> None:
    room = Room()
    service = room.enabled("svc", **SERVICE)
    service.take()
    service.client.send_as("x", "chat", {})
    room.pump()
    assert refusal(service) is Code.INVALID_STATE


def test_one_service_per_room_the_first_keeps_it() -> None:
    room, service, _ = service_room("alice")
    service.client.attach_service()
    room.pump()
    assert refusal(service) is Code.INVALID_STATE
    second = room.enabled("svc2", **SERVICE)
    second.take()
    second.client.attach_service()
    room.pump()
    assert refusal(second) is Code.SERVICE_TAKEN
    service.client.close()
    room.pump()
    second.client.attach_service()
    room.pump()
    assert second.of(RequestAcked)


def test_policy_refuse_refuses_while_no_service_is_attached() -> None:
    room = Room(service_policy="refuse")
    alice, bob = room.enabled("alice"), room.enabled("bob")
    alice.take()
    alice.client.send_message(["id2"], "chat", {})
    room.pump()
    assert refusal(alice) is Code.SERVICE_UNAVAILABLE
    assert received(bob) == []


def test_policy_hold_keeps_messages_in_order_for_the_next_service() -> None:
    room = Room(service_policy="hold", history_size=2)
    alice, _bob = room.enabled("alice"), room.enabled("bob")
    alice.take()
    for text in ("one", "two", "three"):
        alice.client.send_message(["id2"], "chat", {"text": text})
    room.pump()
    answers = alice.take()
    assert [type(e) for e in answers] == [RequestAcked, RequestAcked, RequestRefused]
    assert answers[2].code is Code.SERVICE_UNAVAILABLE  # type: ignore[attr-defined]
    service = room.enabled("svc", **SERVICE)
    service.client.attach_service()
    room.pump()
    assert [up.message["text"] for up in intercepted(service)] == ["one", "two"]


@pytest.mark.parametrize(
    ("policy", "delivered", "handed_again"),
    [("bypass", ["one"], []), ("hold", [], ["one"]), ("refuse", [], [])],
)
def test_a_service_leaving_mid_decision_applies_the_policy(
    policy: str, delivered: list[str], handed_again: list[str]
) -> None:
    room, service, [alice, bob] = service_room("alice", "bob", service_policy=policy)
    service.client.create_puppet("Meow", {})
    alice.client.send_message(["id2"], "chat", {"text": "one"})
    room.pump()
    [_up] = intercepted(service)
    service.client.close()
    room.pump()
    events = bob.take()
    got = [e.message.message["text"] for e in events if isinstance(e, MessageReceived)]
    assert got == delivered
    # The puppet left with its service.
    assert len([e for e in events if isinstance(e, ParticipantRemoved)]) == 1
    successor = room.enabled("svc2", **SERVICE)
    successor.client.attach_service()
    room.pump()
    assert [u.message["text"] for u in intercepted(successor)] == handed_again


@pytest.mark.parametrize(
    ("policy", "delivered", "held"), [("bypass", 1, 0), ("hold", 0, 1), ("refuse", 0, 0)]
)
def test_a_message_not_decided_in_time_is_handled_as_if_no_service_were_attached(
    policy: str, delivered: int, held: int
) -> None:
    room, service, [alice, bob] = service_room(
        "alice", "bob", service_policy=policy, service_timeout=5.0
    )
    alice.client.send_message(["id2"], "chat", {"text": "one"})
    room.pump()
    [up] = intercepted(service)
    assert room.server.next_deadline() == pytest.approx(room.now + 5.0)
    room.advance(4.0)
    assert service.of(InterceptTimedOut) == []
    room.advance(1.5)
    assert [e.message_id for e in service.of(InterceptTimedOut)] == [up.id]
    assert len(bob.of(MessageReceived)) == delivered
    service.client.decide(up.id)
    room.pump()
    assert refusal(service) is Code.NOT_INTERCEPTED
    service.client.close()
    room.pump()
    successor = room.enabled("svc2", **SERVICE)
    successor.client.attach_service()
    room.pump()
    assert len(intercepted(successor)) == held


def test_a_service_request_over_the_send_size_is_refused() -> None:
    _room, service, _ = service_room("alice", max_frame_size=4096)
    assert raw(service, t="svc_puppet", name="p", attributes={"a": "b" * 3500}) is Code.TOO_LARGE


def test_an_interceptor_that_raises_refuses_the_message_and_keeps_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(message: object) -> None:
        raise RuntimeError("bug")

    room = Room(interceptor=broken)
    alice, _bob = room.enabled("alice"), room.enabled("bob")
    alice.take()
    alice.client.send_message(["id2"], "chat", {})
    room.pump()
    assert refusal(alice) is Code.INTERCEPTOR_FAILED
    assert [r.message for r in caplog.records] == ["the interceptor failed on a message from id1"]
    alice.client.send_message(["id2"], "chat", {})
    room.pump()
    assert refusal(alice) is Code.INTERCEPTOR_FAILED  # still connected


def test_the_client_checks_service_requests_before_sending() -> None:
    _room, service, _ = service_room("alice", max_recipients=1, max_attributes_size=64)
    client = service.client
    with pytest.raises(InvalidRequest):
        client.decide("x", type="")
    with pytest.raises(InvalidRequest):
        client.decide("x", message={"a": float("nan")})
    with pytest.raises(InvalidRequest):
        client.send_as("x", "chat", {}, to=["a", 1])  # type: ignore[list-item]
    with pytest.raises(InvalidRequest):
        client.send_as("x", "chat", {}, to=["a", "b"])
    with pytest.raises(InvalidRequest):
        client.create_puppet("", {})
    with pytest.raises(InvalidRequest):
        client.create_puppet("p", {"a": float("nan")})
    with pytest.raises(MessageTooLarge):
        client.create_puppet("p", {"a": "x" * 100})


# --- an async in-process interceptor ------------------------------------------------------


def outcome_of(awaitable: Any) -> Any:
    """Run a coroutine that never suspends: its result, or the exception it raised."""
    try:
        awaitable.send(None)
    except StopIteration as stop:
        return stop.value
    except Exception as exc:
        return exc
    raise AssertionError("the interceptor suspended")


def async_room(decide: Any, **config: Any) -> tuple[Room, Peer, Peer]:
    async def interceptor(message: Any) -> Any:
        return decide(message)

    room = Room(interceptor=interceptor, **config)
    alice, bob = room.enabled("alice"), room.enabled("bob")
    alice.take()
    bob.take()
    return room, alice, bob


def settle(room: Room) -> None:
    for job in room.server.interceptions():
        room.server.intercepted(job, outcome_of(job.awaitable), room.now)
    room.pump()


def fail(message: Any) -> Any:
    raise RuntimeError("bug")


@pytest.mark.parametrize(
    ("decide", "bob_gets"),
    [
        pytest.param(lambda m: m, [("id1", "chat", {"text": "hi"})], id="pass"),
        pytest.param(
            lambda m: attrs.evolve(m, message={"text": "hi lol~"}),
            [("id1", "chat", {"text": "hi lol~"})],
            id="rewrite",
        ),
        pytest.param(lambda m: None, [], id="drop"),
    ],
)
def test_an_async_interceptor_decides_before_the_ack(decide: Any, bob_gets: list[Any]) -> None:
    room, alice, bob = async_room(decide)
    alice.client.send_message(["id2"], "chat", {"text": "hi"})
    room.pump()
    assert alice.take() == []  # no ack while the interceptor decides
    settle(room)
    assert room.server.interceptions() == []  # each is handed out once
    assert len(alice.of(RequestAcked)) == 1
    assert received(bob) == bob_gets


def test_an_async_interceptor_that_raises_refuses_the_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    room, alice, bob = async_room(fail)
    alice.client.send_message(["id2"], "chat", {})
    room.pump()
    settle(room)
    assert refusal(alice) is Code.INTERCEPTOR_FAILED
    assert len(caplog.records) == 1
    assert received(bob) == []


def test_an_async_rewrite_too_large_to_deliver_is_refused() -> None:
    room, alice, _bob = async_room(
        lambda m: attrs.evolve(m, message={"x": "y" * 4100}), max_frame_size=4096
    )
    alice.client.send_message(["id2"], "chat", {})
    room.pump()
    settle(room)
    assert refusal(alice) is Code.TOO_LARGE


@pytest.mark.parametrize(
    ("decide", "delivered"),
    [(lambda m: m, 1), (fail, 0), (lambda m: attrs.evolve(m, message={"x": "y" * 4100}), 0)],
)
def test_a_sender_gone_before_the_decision_gets_no_answer(decide: Any, delivered: int) -> None:
    room, alice, bob = async_room(decide, max_frame_size=4096)
    alice.client.send_message(["id2"], "chat", {})
    room.pump()
    jobs = room.server.interceptions()
    alice.client.close()
    room.pump()
    for job in jobs:
        room.server.intercepted(job, outcome_of(job.awaitable), room.now)
    assert room.server.connections_with_output() == [bob.server] * delivered


@pytest.mark.parametrize(("size", "answer"), [(10, RequestAcked), (4100, RequestRefused)])
def test_an_async_decision_on_a_cluster_node_goes_through_the_backplane(
    size: int, answer: type
) -> None:
    room, alice, bob = async_room(
        lambda m: attrs.evolve(m, message={"x": "y" * size}), node_id="n1", max_frame_size=4096
    )
    alice.client.send_message(["id2"], "chat", {})
    room.pump()
    settle(room)
    assert [type(e) for e in alice.take()] == [answer]
    for data in room.server.backplane_data_to_send():
        room.server.receive_backplane(data, room.now)
    room.pump()
    assert len(received(bob)) == (answer is RequestAcked)
