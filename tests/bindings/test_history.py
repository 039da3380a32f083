"""room.messaging.history over TCP on both runtimes: what a reader sees, the grant, the
advertised cap, typed refusals, and a history larger than the outbound bound."""

from __future__ import annotations

from types import ModuleType

import anyio
import pytest

from roomwire import Code
from roomwire.events import MessageReceived

from . import Join, next_event

pytestmark = pytest.mark.anyio


async def test_history_holds_broadcasts_and_the_readers_direct_messages(join: Join) -> None:
    alice, bob = await join("alice"), await join("bob")
    first = await alice.messaging.broadcast_message(type="chat", message={"n": 0})
    await alice.messaging.send_message(to=bob.local_participant, type="dm", message={"n": 1})
    await next_event(bob, MessageReceived)
    carol = await join("carol", enable=False)  # came later, never enabled

    assert [m.message["n"] for m in await bob.messaging.history()] == [0, 1]
    seen = await carol.messaging.history()
    assert [(m.id, m.message["n"], m.broadcast) for m in seen] == [(first, 0, True)]
    newest = await bob.messaging.history(limit=1, reverse=True)
    assert [m.message["n"] for m in newest] == [1]
    assert await bob.messaging.history(since=newest[0].seq) == []


async def test_history_needs_the_grant(join: Join, rw: ModuleType) -> None:
    mallory = await join("mallory", can_history=False)
    with pytest.raises(rw.ForbiddenError) as caught:
        await mallory.messaging.history()
    assert caught.value.code is Code.FORBIDDEN_HISTORY
    await mallory.messaging.broadcast_message(type="chat", message={})  # still connected


@pytest.mark.server(max_history_limit=10)
async def test_absurd_limits_and_positions_are_typed_errors(join: Join, rw: ModuleType) -> None:
    alice = await join("alice")
    assert alice.limits.max_history_limit == 10
    for args in ({"limit": 0}, {"limit": 11}, {"limit": 2**70}, {"since": -1}):
        with pytest.raises(rw.InvalidRequestError):
            await alice.messaging.history(**args)
    with pytest.raises(rw.InvalidRequestError, match="since must be a seq") as caught:
        await alice.messaging.history(limit=5, since=10**12)  # refused by the server
    assert caught.value.code is Code.INVALID_REQUEST


@pytest.mark.server(outbound_limit=64 * 1024, history_size=500)
async def test_a_history_larger_than_the_outbound_bound_arrives_whole(join: Join) -> None:
    alice = await join("alice")
    for n in range(200):
        await alice.messaging.broadcast_message(type="chat", message={"n": n, "pad": "x" * 1000})
    bob = await join("bob", enable=False)
    with anyio.fail_after(10):
        found = await bob.messaging.history(limit=500)
    assert [m.message["n"] for m in found] == list(range(200))  # ~200 KiB, over 64 KiB
