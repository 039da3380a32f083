"""``ClientSession`` without sockets: replies, refusals, presence diffs, reconnect restore and
callbacks, over real core connections and an in-memory server (see ``__init__``)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from roomwire_anyio import (
    ConnectionClosedError,
    Disconnected,
    NotEnabledError,
    NotFoundError,
    Reconnected,
    SendFailed,
    SendReceipt,
    TooLargeError,
)
from roomwire_anyio._session import Reply

from roomwire import Code, RemoteParticipant
from roomwire.events import (
    ConnectionClosed,
    MessageReceived,
    MessagingDisabled,
    MessagingEnabled,
    ParticipantAdded,
    ParticipantRemoved,
    ParticipantUpdated,
)

from . import Client, World, names


def enabled(world: World, name: str, **grants: Any) -> Client:
    client = Client(world, name, **grants)
    reply = client.session.request(client.conn, lambda c: client.session.enable(c, presence=True))
    world.pump()
    assert reply.settled
    assert reply.result() is None
    return client


def test_a_send_is_answered_with_the_id_the_recipient_sees() -> None:
    world = World()
    alice, bob = enabled(world, "alice"), enabled(world, "bob")
    reply = alice.session.request(
        alice.conn, lambda c: c.send_message(bob.id, "chat", {"text": "hi"}, b"\x01")
    )
    settled: list[bool] = []
    reply.on_settle = lambda: settled.append(reply.settled)
    assert not reply.settled
    world.pump()
    assert settled == [True]
    (received,) = bob.of(MessageReceived)
    assert reply.result() == received.message.id
    assert received.message.from_participant_id == alice.id
    assert received.message.attachment == b"\x01"


def test_a_refusal_settles_the_reply_with_its_typed_error() -> None:
    world = World()
    alice = enabled(world, "alice")
    reply = alice.session.request(alice.conn, lambda c: c.send_message("nobody", "chat", {}))
    world.pump()
    with pytest.raises(NotFoundError) as raised:
        reply.result()
    assert raised.value.code is Code.NOT_FOUND
    assert not alice.of(SendFailed)  # someone waited: the error went to them


def test_a_refused_post_is_emitted_as_send_failed() -> None:
    world = World()
    alice = enabled(world, "alice")
    rid = alice.session.post(alice.conn, lambda c: c.send_message("nobody", "chat", {}))
    world.pump()
    (failed,) = alice.of(SendFailed)
    assert (failed.request_id, failed.code) == (rid, Code.NOT_FOUND)


def test_local_pre_checks_raise_typed_errors_and_leave_nothing_pending() -> None:
    world = World(max_frame_size=4096)
    alice = Client(world, "alice")
    with pytest.raises(NotEnabledError):
        alice.session.request(alice.conn, lambda c: c.broadcast_message("chat", {}))
    alice.session.request(alice.conn, lambda c: alice.session.enable(c, presence=True))
    world.pump()
    with pytest.raises(TooLargeError):
        alice.session.post(alice.conn, lambda c: c.broadcast_message("chat", {"x": "y" * 4096}))
    alice.conn.close()
    with pytest.raises(ConnectionClosedError) as raised:
        alice.session.post(alice.conn, lambda c: c.broadcast_message("chat", {}))
    assert raised.value.code is Code.CONNECTION_LOST
    world.pump()
    alice.session.lost(ConnectionClosed(code=Code.NORMAL, reason="", by_peer=False), may_retry=True)
    assert not alice.of(SendFailed)


def test_presence_snapshot_then_diffs_reach_the_view_the_events_and_the_callbacks() -> None:
    world = World()
    bob = enabled(world, "bob")
    alice = Client(world, "alice")
    seen: list[tuple[str, str]] = []
    for kind in ("participant_added", "participant_updated", "participant_removed"):
        alice.session.on(kind, lambda p, kind=kind: seen.append((kind, p.name)))
    alice.session.request(alice.conn, lambda c: alice.session.enable(c, presence=True))
    world.pump()
    assert alice.session.enabled
    assert names(alice.session.remote_participants) == {"bob"}
    assert seen == [("participant_added", "bob")]  # the snapshot, told as additions

    carol = enabled(world, "carol")
    bob.session.request(bob.conn, lambda c: bob.session.set_attributes(c, {"mood": "busy"}))
    world.pump()
    assert alice.session.get_participant(bob.id) == RemoteParticipant(
        id=bob.id, name="bob", role="user", attributes={"mood": "busy"}
    )
    carol.session.request(carol.conn, lambda c: c.disable())
    world.pump()
    assert alice.session.get_participant_by_name("carol") is None
    assert alice.session.get_participant_by_name("bob") is not None
    assert seen[1:] == [
        ("participant_added", "carol"),
        ("participant_updated", "bob"),
        ("participant_removed", "carol"),
    ]
    kinds = [type(e) for e in alice.events]
    assert kinds == [MessagingEnabled, ParticipantAdded, ParticipantUpdated, ParticipantRemoved]


def test_disable_clears_the_view_telling_the_callbacks() -> None:
    world = World()
    enabled(world, "bob"), enabled(world, "carol")
    alice = enabled(world, "alice")
    removed: list[str] = []
    alice.session.on("participant_removed", lambda p: removed.append(p.name))
    reply = alice.session.request(alice.conn, lambda c: c.disable())
    world.pump()
    assert reply.settled
    assert reply.result() is None
    assert not alice.session.enabled
    assert alice.session.remote_participants == []
    assert sorted(removed) == ["bob", "carol"]
    assert isinstance(alice.events[-1], MessagingDisabled)


def test_a_lost_connection_fails_what_waits_and_says_whether_to_reconnect() -> None:
    world = World()
    alice, bob = enabled(world, "alice"), enabled(world, "bob")
    reply = alice.session.request(alice.conn, lambda c: c.send_message(bob.id, "chat", {}))
    closed = alice.lose()  # before the server could answer
    assert closed.code is Code.CONNECTION_LOST
    assert alice.session.lost(closed, may_retry=True)
    with pytest.raises(ConnectionClosedError):
        reply.result()
    assert alice.of(Disconnected) == [
        Disconnected(code=Code.CONNECTION_LOST, reason=closed.reason, reconnecting=True)
    ]
    assert alice.session.local_participant is not None  # as last seen
    assert alice.session.limits is None
    assert not alice.session.lost(closed, may_retry=False)
    normal = ConnectionClosed(code=Code.NORMAL, reason="bye", by_peer=True)
    assert not alice.session.lost(normal, may_retry=True)  # not worth a retry
    alice.session.gave_up(ConnectionClosedError("could not reconnect", Code.CONNECTION_LOST))
    assert [e.reconnecting for e in alice.of(Disconnected)] == [True, False, False, False]


@pytest.mark.parametrize("window", [30.0, 0.0])
def test_a_reconnect_restores_attributes_then_the_enable_with_its_presence_choice(
    window: float,
) -> None:
    # Within the window the server gives it all back (PROTOCOL.md §22); with none, the
    # server enables a new participant at the welcome and the session sets its attributes.
    world = World(resume_window=window)
    bob = enabled(world, "bob")
    alice = Client(world, "alice")
    session = alice.session
    session.request(alice.conn, lambda c: session.enable(c, presence=False))
    for update in ({"mood": "busy", "x": 1}, {"x": None}):
        session.request(alice.conn, lambda c, u=update: session.set_attributes(c, u))
    refused = session.request(alice.conn, lambda c: session.set_attributes(c, {"y": 1}))
    world.pump()
    assert refused.settled  # a refused update is not restored (see below)
    assert alice.session.remote_participants == []  # presence=False: no snapshot
    first_id = alice.id
    session.lost(alice.lose(), may_retry=True)
    assert (bob.session.get_participant(first_id) is None) is (not window)

    alice.connect()
    assert alice.reenable is not None
    assert alice.reenable.settled
    assert [e.participant.id for e in alice.of(Reconnected)] == [alice.id]
    assert (alice.id == first_id) is bool(window)
    back = bob.session.get_participant(alice.id)
    assert back is not None
    assert back.attributes == {"mood": "busy", "y": 1}
    assert alice.session.remote_participants == []  # still presence=False


def test_a_refused_attribute_update_is_not_kept() -> None:
    world = World(max_attributes_size=32)
    alice = enabled(world, "alice")
    bob = enabled(world, "bob")
    session = alice.session
    session.request(alice.conn, lambda c: session.set_attributes(c, {"a": 1}))
    world.pump()
    # Passes the client's pre-check against its own view, then the server refuses it
    # (another update went first).
    first = session.post(alice.conn, lambda c: session.set_attributes(c, {"b": "x" * 12}))
    second = session.request(alice.conn, lambda c: session.set_attributes(c, {"c": "y" * 12}))
    world.pump()
    assert not [e for e in alice.of(SendFailed) if e.request_id == first]
    with pytest.raises(Exception, match="attributes"):
        second.result()
    session.lost(alice.lose(), may_retry=True)
    alice.connect()
    back = bob.session.get_participant(alice.id)
    assert back is not None
    assert back.attributes == {"a": 1, "b": "x" * 12}


def test_callbacks_fail_alone_and_async_ones_are_handed_to_spawn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    alice, bob = enabled(world, "alice"), enabled(world, "bob")
    got: list[str] = []

    def broken(message: Any) -> None:
        raise RuntimeError("boom")

    async def later(message: Any) -> None:
        got.append("async")

    def plain(message: Any) -> None:
        got.append(message.type)

    for callback in (broken, later, plain):
        bob.session.on("message", callback)
    with caplog.at_level(logging.ERROR, logger="roomwire.client"):
        alice.session.post(alice.conn, lambda c: c.send_message(bob.id, "chat", {}))
        world.pump()
    assert "message callback failed" in caplog.text
    assert got == ["chat"]
    ((name, awaitable),) = bob.spawned
    assert name == "message"
    awaitable.close()  # a driver would run it as a task
    bob.session.off("message", plain)
    alice.session.post(alice.conn, lambda c: c.send_message(bob.id, "chat", {}))
    world.pump()
    assert got == ["chat"]
    bob.spawned.pop()[1].close()
    with pytest.raises(ValueError, match="unknown event"):
        bob.session.on("messages", plain)


def test_garbage_from_the_server_closes_with_its_code() -> None:
    world = World()
    alice = enabled(world, "alice")
    alice.conn.receive_data(b"\x00\x00\x00\x01\xff")  # one byte that is not CBOR
    closed = alice.session.drain(alice.conn, world.now)
    assert closed is not None
    assert not closed.by_peer
    assert closed.code is not Code.NORMAL


# --- sends re-sent after a reconnect (PROTOCOL.md §26) --------------------------------------


def test_an_unanswered_send_is_re_sent_after_the_re_enable_and_answers_its_caller() -> None:
    world = World()
    alice, bob = enabled(world, "alice"), enabled(world, "bob")
    session = alice.session
    reply = Reply()
    session.send(alice.conn, lambda c: c.broadcast_message("chat", {}, None, "k1"), reply)
    rid = session.send(alice.conn, lambda c: c.broadcast_message("chat", {}, None, "k2"), None)
    session.lost(alice.lose(), may_retry=True)  # the server never got them
    assert not reply.settled
    alice.connect()
    assert reply.settled
    receipt = reply.result()
    assert isinstance(receipt, SendReceipt)
    assert (receipt.recipients, receipt.duplicate) == (1, False)
    delivered = [m.message.id for m in bob.of(MessageReceived)]
    assert len(delivered) == 2
    assert delivered[0] == receipt.message_id
    assert alice.of(SendFailed) == []
    assert rid > 0


def test_a_re_send_that_cannot_be_made_or_is_refused_fails_as_its_first_request() -> None:
    world = World()
    alice, bob = enabled(world, "alice"), enabled(world, "bob")
    session = alice.session
    waiting = Reply()
    session.send(alice.conn, lambda c: c.send_message(bob.id, "chat", {}, None, "k1"), waiting)
    rid = session.send(alice.conn, lambda c: c.send_message(bob.id, "t", {}, None, "k2"), None)
    session.lost(alice.lose(), may_retry=True)
    bob.conn.close(Code.NORMAL, "bye")  # the recipient leaves before the re-send
    world.pump()
    alice.connect()
    with pytest.raises(NotFoundError):
        waiting.result()
    [failed] = alice.of(SendFailed)
    assert (failed.request_id, failed.code) == (rid, Code.NOT_FOUND)
    # Sends left when messaging is no longer enabled on the new connection fail typed.
    late = Reply()
    session.send(alice.conn, lambda c: c.broadcast_message("chat", {}, None, "k3"), late)
    session.lost(alice.lose(), may_retry=True)
    session.enabled = False  # as if its enable had never been answered,
    session.resume = None  # on a server that could not resume it (PROTOCOL.md §22)
    alice.connect()
    with pytest.raises(NotEnabledError):
        late.result()


def test_unanswered_sends_fail_when_no_reconnect_follows_or_it_gives_up() -> None:
    world = World()
    alice = enabled(world, "alice")
    session = alice.session
    first, second = Reply(), Reply()
    session.send(alice.conn, lambda c: c.broadcast_message("chat", {}, None, "a"), first)
    session.lost(alice.lose(), may_retry=False)
    with pytest.raises(ConnectionClosedError):
        first.result()
    alice.connect()
    session.send(alice.conn, lambda c: c.broadcast_message("chat", {}, None, "b"), second)
    session.lost(alice.lose(), may_retry=True)
    assert not second.settled
    session.gave_up(ConnectionClosedError("could not reconnect", Code.CONNECTION_LOST))
    with pytest.raises(ConnectionClosedError, match="could not reconnect"):
        second.result()
