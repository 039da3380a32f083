"""Issue 13, finding 3 on a real redis-server: a node unsubscribes from a room's channel when
its last local connection there closes, so rooms that were joined and left keep no
subscription (PUBSUB CHANNELS lists none of them), and a room joined again is subscribed
again and works across nodes."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
import roomwire_asyncio
from redis.asyncio import Redis

from roomwire import ParticipantToken
from roomwire.events import MessageReceived

from . import SECRET, WAIT, RedisServer
from .conftest import Join, Node

pytestmark = pytest.mark.anyio

ROOMS = 200


async def room_channels(redis: RedisServer) -> set[bytes]:
    async with Redis.from_url(redis.url) as client:
        return {c for c in await client.pubsub_channels() if c.startswith(b"roomwire:room:")}


async def settled(redis: RedisServer, expected: set[bytes]) -> set[bytes]:
    with anyio.move_on_after(WAIT):
        while (found := await room_channels(redis)) != expected:
            await anyio.sleep(0.05)
    return found


async def test_hardening_rooms_freed_unsubscribe_their_channels(
    node: Node, join: Join, redis: RedisServer
) -> None:
    n1, n2 = await node("n1"), await node("n2")
    stay = await join(n2.url, "stayer", room="kept")
    start = time.monotonic()
    for k in range(ROOMS):
        token = ParticipantToken(room=f"room-{k}", name="visitor").to_jwt(SECRET)
        async with roomwire_asyncio.connect(n1.url, token=token, reconnect=False) as client:
            await client.messaging.enable()
            await client.messaging.broadcast_message(type="t", message={"k": k})
    took = time.monotonic() - start
    left = await settled(redis, {b"roomwire:room:kept"})
    print(f"\nrooms freed on redis: {ROOMS} rooms joined and left in {took:.2f} s;"
          f" room channels left: {sorted(left)}")  # fmt: skip
    assert left == {b"roomwire:room:kept"}
    assert n1.core.room_count == 0
    assert n1.core.router.rooms == {}

    # A freed room joined again: subscribed again, and messages cross the nodes.
    alice = await join(n1.url, "alice", room="room-7")
    bob = await join(n2.url, "bob", room="room-7")
    assert await settled(redis, {b"roomwire:room:kept", b"roomwire:room:room-7"}) == {
        b"roomwire:room:kept",
        b"roomwire:room:room-7",
    }
    with anyio.fail_after(WAIT):
        while len(alice.messaging.remote_participants) != 1:
            await anyio.sleep(0.02)
    mid = await alice.messaging.broadcast_message(type="t", message={"again": True})
    with anyio.fail_after(WAIT):
        async for event in bob.messaging.events():
            if isinstance(event, MessageReceived) and event.message.id == mid:
                break
    assert stay.connected


async def test_a_room_with_remote_members_only_is_unsubscribed_too(
    node: Node, join: Join, redis: RedisServer
) -> None:
    n1, n2 = await node("n1"), await node("n2")
    await join(n2.url, "bob")
    token: Any = ParticipantToken(room="main", name="alice").to_jwt(SECRET)
    async with roomwire_asyncio.connect(n1.url, token=token, reconnect=False) as alice:
        await alice.messaging.enable()
        with anyio.fail_after(WAIT):
            while not alice.messaging.remote_participants:
                await anyio.sleep(0.02)
    # n1 has nobody in main any more (bob is on n2): it forgets the room and its channel.
    with anyio.fail_after(WAIT):
        while "main" in n1.core.router.rooms:
            await anyio.sleep(0.02)
    async with Redis.from_url(redis.url) as client:
        assert await client.pubsub_numsub("roomwire:room:main") == [(b"roomwire:room:main", 1)]
