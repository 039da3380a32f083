"""Presence: the snapshot, then joins, updates and departures (disable, disconnect, silence)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import anyio
import pytest

from roomwire import Code, RemoteParticipant
from roomwire.events import (
    ConnectionClosed,
    MessageReceived,
    MessagingEnabled,
    ParticipantAdded,
    ParticipantRemoved,
    ParticipantUpdated,
    RequestAcked,
)

from . import WAIT, Join, collect, next_event, participant, raw_client

pytestmark = pytest.mark.anyio

HEARTBEAT = 0.2
HEARTBEAT_TIMEOUT = 0.2


async def test_snapshot_then_join(join: Join) -> None:
    alice, bob = await join("alice"), await join("bob")
    added: list[RemoteParticipant] = []
    alice.messaging.on("participant_added", added.append)
    carol = await join("carol")
    assert sorted(p.name for p in carol.messaging.remote_participants) == ["alice", "bob"]
    assert {p.id for p in carol.messaging.remote_participants} == {
        alice.local_participant.id,
        bob.local_participant.id,
    }
    event = await next_event(alice, ParticipantAdded, lambda e: e.participant.name == "carol")
    assert event.participant == carol.local_participant
    assert added == [carol.local_participant]
    assert alice.messaging.get_participant(carol.local_participant.id) == carol.local_participant


async def test_presence_without_listing_sees_nobody_but_is_seen(join: Join) -> None:
    alice = await join("alice")
    ghost = await join("ghost", enable=False)
    await ghost.messaging.enable(presence=False)
    assert ghost.messaging.remote_participants == []
    assert (await participant(alice, "ghost")) == ghost.local_participant
    await join("bob")
    # ghost gets no presence diffs: after its (empty) snapshot, alice's message comes next.
    mid = await alice.messaging.send_message(to=ghost.local_participant, type="t", message={})
    enabled, received = [await next_event(ghost, object) for _ in range(2)]
    assert isinstance(enabled, MessagingEnabled)
    assert enabled.participants == ()
    assert received.message.id == mid
    assert ghost.messaging.remote_participants == []


async def test_disable_removes_from_presence(join: Join) -> None:
    alice = await join("alice")
    bob = await join("bob")
    removed: list[RemoteParticipant] = []
    alice.messaging.on("participant_removed", removed.append)
    await participant(alice, "bob")
    await bob.messaging.disable()
    event = await next_event(alice, ParticipantRemoved)
    assert event.participant == bob.local_participant
    assert removed == [bob.local_participant]
    assert alice.messaging.get_participant_by_name("bob") is None


async def test_disconnect_removes_from_presence_once(
    rw: ModuleType, server: Any, join: Join, make_token: Callable[..., str]
) -> None:
    alice = await join("alice")
    async with rw.connect(server.url, token=make_token("carol")) as carol:
        await carol.messaging.enable()
        carol_p = await participant(alice, "carol")
    removed = await next_event(alice, ParticipantRemoved, timeout=1)
    assert removed.participant == carol_p
    assert alice.messaging.remote_participants == []
    # Exactly once: the next event after the removal is bob's arrival, nothing in between.
    await join("bob")
    assert (await next_event(alice, object)).participant.name == "bob"


async def test_participant_updated(server: Any, join: Join, make_token: Callable[..., str]) -> None:
    alice = await join("alice")
    updated: list[RemoteParticipant] = []
    alice.messaging.on("participant_updated", updated.append)
    async with raw_client(server.url, make_token("raw")) as raw:
        raw.conn.enable()
        await raw.until(MessagingEnabled)
        await participant(alice, "raw")
        raw.conn.set_attributes({"mood": "curious"})
        await raw.until(RequestAcked)
        event = await next_event(alice, ParticipantUpdated)
    assert event.participant.attributes == {"mood": "curious"}
    assert updated == [event.participant]
    assert alice.messaging.get_participant_by_name("raw").attributes == {"mood": "curious"}


# No resume window (PROTOCOL.md §22): a timed-out peer is removed at the timeout itself.
@pytest.mark.server(
    heartbeat_interval=HEARTBEAT, heartbeat_timeout=HEARTBEAT_TIMEOUT, resume_window=0
)
async def test_silent_peer_removed_after_heartbeat_timeout(
    server: Any, join: Join, make_token: Callable[..., str], record_property: Any
) -> None:
    """A peer that enables and then neither reads nor answers pings is removed once, within
    interval + timeout of its last frame, while equally idle live clients (who answer the
    pings) stay."""
    alice = await join("alice")
    bob = await join("bob")
    await participant(alice, "bob")
    async with raw_client(server.url, make_token("silent")) as silent:
        silent.conn.enable()
        await silent.until(MessagingEnabled)
        quiet_since = anyio.current_time()  # the server heard its enable just before this
        silent_p = await participant(alice, "silent")
        removed = await next_event(alice, ParticipantRemoved, timeout=5)
        took = anyio.current_time() - quiet_since
    assert removed.participant == silent_p
    record_property("silent_peer_removed_after", round(took, 3))
    print(f"silent peer removed after {took:.3f} s")
    window = HEARTBEAT + HEARTBEAT_TIMEOUT
    assert window - 0.1 <= took <= window + 0.3  # (the lower bound allows for latency)
    # alice and bob have been idle longer than the window too, yet they are still here.
    mid = await alice.messaging.send_message(to=bob.local_participant, type="t", message={})
    assert (await next_event(bob, MessageReceived)).message.id == mid
    assert [p.name for p in alice.messaging.remote_participants] == ["bob"]


@pytest.mark.server(outbound_limit=256 * 1024)
async def test_slow_consumer_is_removed_and_others_unaffected(
    server: Any, join: Join, make_token: Callable[..., str]
) -> None:
    """A peer that stops reading fills its socket, then its bounded server-side queue: the
    server closes it as a slow consumer while a reading peer gets every message."""
    bob = await join("bob")
    alice = await join("alice")
    blob = bytes(128 * 1024)
    async with raw_client(server.url, make_token("slow")) as slow:
        slow.conn.enable()
        await slow.until(MessagingEnabled)
        slow_p = await participant(alice, "slow")
        sent = 0
        with anyio.fail_after(WAIT):
            while alice.messaging.get_participant(slow_p.id) is not None:
                assert sent < 1000, "the slow consumer was never closed"
                await alice.messaging.broadcast_message(
                    type="t", message={"n": sent}, attachment=blob
                )
                sent += 1
        # Reading again, it finds what its socket held, then the close with the named code.
        start = anyio.current_time()
        closed = await slow.until(ConnectionClosed)
        print(f"{sent} broadcasts, read back in {anyio.current_time() - start:.3f} s")
    assert closed.code is Code.SLOW_CONSUMER
    got = await collect(bob, sent, MessageReceived)
    assert [e.message.message["n"] for e in got] == list(range(sent))
    assert [p.name for p in bob.messaging.remote_participants] == ["alice"]


async def test_set_attributes_reaches_others_and_the_local_participant(join: Join) -> None:
    alice, bob = await join("alice"), await join("bob")
    await participant(alice, "bob")
    await bob.set_attributes({"mood": "curious", "lang": "en"})
    await bob.set_attributes({"lang": None})
    assert bob.local_participant.attributes == {"mood": "curious"}
    first = await next_event(alice, ParticipantUpdated)
    second = await next_event(alice, ParticipantUpdated)
    assert first.participant.attributes == {"mood": "curious", "lang": "en"}
    assert second.participant.attributes == {"mood": "curious"}
    assert alice.messaging.get_participant_by_name("bob").attributes == {"mood": "curious"}
    assert bob.limits is not None
    assert bob.limits.max_attributes_size == 64 * 1024
