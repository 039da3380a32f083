"""Sends, broadcasts, replies, attachments, refusals, callbacks and the events() queue."""

from __future__ import annotations

import logging
import os
import time
from types import ModuleType
from typing import Any

import anyio
import cbor2
import pytest
from roomwire_anyio import EventsDropped, SendFailed

from roomwire import Code, RoomMessage
from roomwire.events import (
    MessageReceived,
    MessagingDisabled,
    MessagingEnabled,
    ParticipantAdded,
    ParticipantRemoved,
)

from . import Join, collect, next_event, participant

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("form", ["participant", "id", "list"])
async def test_send_message_to_each_recipient_form(join: Join, form: str) -> None:
    bob = await join("bob")
    alice = await join("alice")
    bob_p = alice.messaging.get_participant_by_name("bob")
    to = {"participant": bob_p, "id": bob_p.id, "list": [bob_p]}[form]
    payload = {"text": "hi", "n": [1, 2.5, None, True], "nested": {"k": "v"}}
    before = time.time()

    message_id = await alice.messaging.send_message(
        to=to, type="chat", message=payload, attachment=b"\x00\x01\xff"
    )

    got = (await next_event(bob, MessageReceived)).message
    assert isinstance(message_id, str)
    assert got.id == message_id
    assert got.from_participant_id == alice.local_participant.id
    assert (got.type, got.message, got.attachment) == ("chat", payload, b"\x00\x01\xff")
    assert not got.broadcast
    assert before - 1 <= got.timestamp <= time.time() + 1


async def test_send_to_a_list_reaches_each_once_and_reply_reaches_sender(join: Join) -> None:
    bob, carol = await join("bob"), await join("carol")
    alice = await join("alice")
    mid = await alice.messaging.send_message(
        to=[bob.local_participant, carol.local_participant.id, bob.local_participant.id],
        type="question",
        message={"q": "lunch?"},
    )
    for room in (bob, carol):
        question = (await next_event(room, MessageReceived)).message
        assert (question.id, question.message, question.attachment) == (
            mid,
            {"q": "lunch?"},
            None,
        )

    # carol replies to the true sender, as the server stamped it.
    reply_id = await carol.messaging.send_message(
        to=question.from_participant_id, type="answer", message={"a": "yes", "re": question.id}
    )
    reply = (await next_event(alice, MessageReceived)).message
    assert reply.id == reply_id != mid
    assert reply.from_participant_id == carol.local_participant.id
    assert reply.message == {"a": "yes", "re": mid}
    # bob got exactly one copy although he was named twice: the next thing he gets is this.
    marker = await alice.messaging.send_message(to=bob.local_participant, type="m", message={})
    assert (await next_event(bob, MessageReceived)).message.id == marker


async def test_broadcast_reaches_everyone_but_the_sender(join: Join) -> None:
    bob, carol = await join("bob"), await join("carol")
    alice = await join("alice")
    mid = await alice.messaging.broadcast_message(
        type="announcement", message={"x": 1}, attachment=b"blob"
    )
    for room in (bob, carol):
        got = (await next_event(room, MessageReceived)).message
        assert got.id == mid
        assert got.from_participant_id == alice.local_participant.id
        assert (got.type, got.message, got.attachment, got.broadcast) == (
            "announcement",
            {"x": 1},
            b"blob",
            True,
        )
    # The sender does not get its own broadcast: the next message alice sees is bob's.
    marker = await bob.messaging.send_message(to=alice.local_participant, type="m", message={})
    assert (await next_event(alice, MessageReceived)).message.id == marker


async def test_send_to_departed_participant_raises_not_found_quickly(
    rw: ModuleType, join: Join
) -> None:
    alice = await join("alice")
    bob = await join("bob")
    bob_p = await participant(alice, "bob")
    await bob.aclose()
    await next_event(alice, ParticipantRemoved)
    for to in (bob_p, bob_p.id, [alice.local_participant.id, bob_p.id]):
        with anyio.fail_after(1), pytest.raises(rw.NotFoundError) as caught:
            await alice.messaging.send_message(to=to, type="chat", message={})
        assert caught.value.code is Code.NOT_FOUND
        assert bob_p.id in caught.value.reason


@pytest.mark.parametrize(
    ("grant", "verb", "code"),
    [
        ("can_send", "send", Code.FORBIDDEN_SEND),
        ("can_broadcast", "broadcast", Code.FORBIDDEN_BROADCAST),
        ("can_list", "enable", Code.FORBIDDEN_LIST),
    ],
)
async def test_missing_grant_raises_forbidden(
    rw: ModuleType, join: Join, grant: str, verb: str, code: Code
) -> None:
    bob = await join("bob")
    eve = await join("eve", enable=False, **{grant: False})
    messaging = eve.messaging
    if verb == "enable":
        with pytest.raises(rw.ForbiddenError) as caught:
            await messaging.enable()
        await messaging.enable(presence=False)  # what the token does grant still works
        assert messaging.remote_participants == []
    else:
        await messaging.enable()
        send = {
            "send": lambda: messaging.send_message(to=bob.local_participant, type="t", message={}),
            "broadcast": lambda: messaging.broadcast_message(type="t", message={}),
        }[verb]
        with pytest.raises(rw.ForbiddenError) as caught:
            await send()
    assert caught.value.code is code
    # The connection stays usable: the other kind of send goes through.
    if verb == "send":
        mid = await messaging.broadcast_message(type="t", message={"ok": 1})
    else:
        mid = await messaging.send_message(to=bob.local_participant.id, type="t", message={"ok": 1})
    got = (await next_event(bob, MessageReceived)).message
    assert (got.id, got.message) == (mid, {"ok": 1})


async def test_wait_false_returns_request_id_and_reports_refusal_as_send_failed(
    join: Join,
) -> None:
    bob = await join("bob")
    alice = await join("alice", can_broadcast=False)
    ok_rid = await alice.messaging.send_message(
        to=bob.local_participant, type="t", message={"n": 1}, wait=False
    )
    bad_rid = await alice.messaging.send_message(
        to="no-such-id", type="t", message={"n": 2}, wait=False
    )
    forbidden_rid = await alice.messaging.broadcast_message(type="t", message={}, wait=False)
    assert all(type(r) is int for r in (ok_rid, bad_rid, forbidden_rid))
    assert len({ok_rid, bad_rid, forbidden_rid}) == 3

    failures = await collect(alice, 2, SendFailed)
    assert [(f.request_id, f.code) for f in failures] == [
        (bad_rid, Code.NOT_FOUND),
        (forbidden_rid, Code.FORBIDDEN_BROADCAST),
    ]
    assert all(f.reason for f in failures)
    assert (await next_event(bob, MessageReceived)).message.message == {"n": 1}


async def test_callbacks_sync_async_and_failing(
    join: Join, caplog: pytest.LogCaptureFixture
) -> None:
    bob = await join("bob")
    calls: dict[str, list[Any]] = {"sync": [], "async": [], "added": [], "removed": []}
    three_async = anyio.Event()

    def broken(message: RoomMessage) -> None:
        raise RuntimeError("a buggy sync callback")

    async def broken_async(message: RoomMessage) -> None:
        await anyio.sleep(0)
        raise RuntimeError("a buggy async callback")

    async def record_async(message: RoomMessage) -> None:
        await anyio.sleep(0)
        calls["async"].append(message.message["n"])
        if len(calls["async"]) == 3:
            three_async.set()

    bob.messaging.on("message", broken)  # registered first: must not stop the others
    bob.messaging.on("message", broken_async)
    bob.messaging.on("message", lambda m: calls["sync"].append(m.message["n"]))
    bob.messaging.on("message", record_async)
    bob.messaging.on("participant_added", calls["added"].append)
    bob.messaging.on("participant_removed", calls["removed"].append)
    with pytest.raises(ValueError, match="unknown event"):
        bob.messaging.on("messages", print)

    alice = await join("alice")
    for n in range(3):
        await alice.messaging.send_message(to=bob.local_participant, type="t", message={"n": n})
    await alice.messaging.disable()
    await next_event(bob, ParticipantRemoved)
    with anyio.fail_after(5):
        await three_async.wait()

    assert calls["sync"] == [0, 1, 2]
    assert sorted(calls["async"]) == [0, 1, 2]
    assert calls["added"] == calls["removed"] == [alice.local_participant]
    # Delivery went on, and every failure was logged rather than swallowed.
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 6
    assert all(r.name == "roomwire.client" for r in failures)


async def test_slow_async_callback_does_not_block_delivery(join: Join) -> None:
    bob = await join("bob")
    release = anyio.Event()

    async def stuck(message: RoomMessage) -> None:
        await release.wait()  # never set: cancelled when bob closes

    bob.messaging.on("message", stuck)
    alice = await join("alice")
    for n in range(5):
        await alice.messaging.send_message(to=bob.local_participant, type="t", message={"n": n})
    got = await collect(bob, 5, MessageReceived)
    assert [e.message.message["n"] for e in got] == list(range(5))


async def test_events_are_typed_and_in_order(join: Join) -> None:
    alice = await join("alice")
    bob = await join("bob")
    mid = await bob.messaging.send_message(to=alice.local_participant, type="t", message={})
    await bob.messaging.disable()
    await alice.messaging.disable()

    kinds = (MessagingEnabled, ParticipantAdded, MessageReceived, ParticipantRemoved)
    seen = [await next_event(alice, kind) for kind in (*kinds, MessagingDisabled)]
    enabled, added, received, removed, disabled = seen
    assert enabled.participants == ()
    assert added.participant == removed.participant == bob.local_participant
    assert added.seq < received.message.seq < removed.seq
    assert received.message.id == mid
    assert disabled.request_id > enabled.request_id


async def test_full_events_queue_reports_drops(join: Join) -> None:
    bob = await join("bob", events_queue_size=4)
    alice = await join("alice")
    delivered = anyio.Event()
    bob.messaging.on("message", lambda m: m.message["n"] == 9 and delivered.set())
    for n in range(10):
        await alice.messaging.send_message(to=bob.local_participant, type="t", message={"n": n})
    with anyio.fail_after(5):
        await delivered.wait()  # callbacks see every message, queue or not

    first = [await next_event(bob, object) for _ in range(5)]
    assert [type(e) for e in first] == [
        MessagingEnabled,
        ParticipantAdded,
        MessageReceived,
        MessageReceived,
        EventsDropped,
    ]
    assert [e.message.message["n"] for e in first[2:4]] == [0, 1]
    assert first[4].count == 8  # messages 2..9: counted, never silently lost
    # With room again, events flow as before.
    await alice.messaging.send_message(to=bob.local_participant, type="t", message={"n": 10})
    assert (await next_event(bob, object)).message.message == {"n": 10}


@pytest.mark.server(max_frame_size=64 * 1024)
async def test_attachment_up_to_the_advertised_limit(
    rw: ModuleType, server: Any, join: Join
) -> None:
    limit = server.core.config.max_send_size
    bob = await join("bob")
    alice = await join("alice")
    to = bob.local_participant.id
    size = _largest_attachment(limit, to)
    blob = os.urandom(size)

    mid = await alice.messaging.send_message(to=to, type="blob", message={}, attachment=blob)
    got = (await next_event(bob, MessageReceived)).message
    assert (got.id, got.attachment) == (mid, blob)

    with anyio.fail_after(1), pytest.raises(rw.TooLargeError) as caught:
        await alice.messaging.send_message(to=to, type="blob", message={}, attachment=blob + b"!")
    assert caught.value.code is Code.TOO_LARGE
    # The connection is still usable.
    mid = await alice.messaging.send_message(to=to, type="blob", message={}, attachment=b"ok")
    got = (await next_event(bob, MessageReceived)).message
    assert (got.id, got.attachment) == (mid, b"ok")


def _largest_attachment(limit: int, to: str) -> int:
    """The largest attachment whose send frame (the CBOR map the protocol defines, request id
    under 24) fits ``limit`` bytes, for ``type="blob", message={}`` to one recipient, with the
    binding's idempotency key (32 hex digits)."""

    def frame_size(n: int) -> int:
        frame = {"t": "send", "rid": 2, "type": "blob", "message": {}, "to": [to], "key": "k" * 32}
        return len(cbor2.dumps({**frame, "att": bytes(n)}))

    size = limit - frame_size(0)
    while frame_size(size) > limit:
        size -= 1
    assert frame_size(size) <= limit < frame_size(size + 1)
    return size


async def test_rooms_are_isolated(rw: ModuleType, join: Join) -> None:
    alice, bob = await join("alice", room="a"), await join("bob", room="a")
    carol, dave = await join("carol", room="b"), await join("dave", room="b")
    await participant(alice, "bob")
    await participant(carol, "dave")
    assert [p.name for p in alice.messaging.remote_participants] == ["bob"]
    assert [p.name for p in carol.messaging.remote_participants] == ["dave"]
    assert (alice.room, carol.room) == ("a", "b")

    await carol.messaging.broadcast_message(type="t", message={"from": "b"})
    with pytest.raises(rw.NotFoundError):
        await carol.messaging.send_message(to=alice.local_participant, type="t", message={})
    await alice.messaging.broadcast_message(type="t", message={"from": "a"})
    await alice.messaging.broadcast_message(type="t", message={"end": True})
    await carol.messaging.broadcast_message(type="t", message={"end": True})

    for room, expected in ((bob, "a"), (dave, "b")):
        got = await collect(room, 2, MessageReceived)
        assert [e.message.message for e in got] == [{"from": expected}, {"end": True}]
    assert [p.name for p in alice.messaging.remote_participants] == ["bob"]
    assert [p.name for p in carol.messaging.remote_participants] == ["dave"]


async def test_cancelled_send_leaves_the_connection_usable(join: Join) -> None:
    bob = await join("bob")
    alice = await join("alice")
    to = bob.local_participant
    # With the link up, a send's only checkpoint is the wait for its ack: that is where this
    # cancellation lands, after the frame was queued.
    with anyio.CancelScope() as scope:
        scope.cancel()
        await alice.messaging.send_message(to=to, type="t", message={"n": 1})
    assert scope.cancelled_caught

    mid = await alice.messaging.send_message(to=to, type="t", message={"n": 2})
    got = await collect(bob, 2, MessageReceived)
    assert [e.message.message["n"] for e in got] == [1, 2]
    assert got[1].message.id == mid != got[0].message.id


async def test_many_pipelined_sends_cancelled_together(join: Join) -> None:
    bob = await join("bob")
    alice = await join("alice")
    first_acked = anyio.Event()

    async def send(n: int) -> None:
        await alice.messaging.send_message(to=bob.local_participant, type="t", message={"n": n})
        first_acked.set()

    async with anyio.create_task_group() as tg:
        for n in range(50):
            tg.start_soon(send, n)
        await first_acked.wait()
        tg.cancel_scope.cancel()

    mid = await alice.messaging.send_message(to=bob.local_participant, type="t", message={"n": 50})
    got = await collect(bob, 51, MessageReceived)
    assert sorted(e.message.message["n"] for e in got) == list(range(51))
    assert got[-1].message.id == mid
