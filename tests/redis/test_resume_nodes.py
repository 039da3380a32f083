"""Resume across nodes with Redis Streams history (PROTOCOL.md §22): a client cut off from
one node comes back on a node that made the room after its position. That node reads the
room's stream for what the client missed (the broadcasts, and the direct messages sent to
its old id: the secret, an HMAC under the shared secret, proves the id), replays it in order
with a new participant id, and says recovered."""

from __future__ import annotations

import anyio
import pytest
import roomwire_asyncio
from redis.asyncio import Redis

from roomwire import ParticipantToken

from ..bindings import next_event
from ..bindings.proxy import proxy
from . import SECRET, WAIT, RedisServer
from .conftest import Join, Node
from .test_history_streams import STREAM, stored

pytestmark = pytest.mark.anyio

MISSED = 5


async def test_a_client_cut_from_one_node_recovers_on_another(
    node: Node, join: Join, redis: RedisServer
) -> None:
    # n2 runs from the start (its task group must outlive the proxy's block) but has no
    # connection in the room, so it makes the room only when the receiver comes back.
    n1, n2 = await node("n1"), await node("n2")
    sender = await join(n1.url, "sender")
    with anyio.fail_after(WAIT):
        # The room's first write names its epoch in Redis (PROTOCOL.md §21.2): a welcome
        # from before it would name the node's own, and its position could not be trusted.
        await sender.messaging.broadcast_message(type="n", message={"n": -1})
        await stored(redis, 1)
    policy = roomwire_asyncio.ReconnectPolicy(first_delay=0.01, max_delay=0.05, give_up_after=WAIT)
    token = ParticipantToken(room="main", name="receiver").to_jwt(SECRET)
    got: list[int] = []
    async with (
        proxy(n1.port) as cutter,
        roomwire_asyncio.connect(cutter.url(), token=token, reconnect=policy) as receiver,
    ):
        receiver.messaging.on("message", lambda m: got.append(m.message["n"]))
        with anyio.fail_after(WAIT):
            await receiver.messaging.enable()
            old_id = receiver.local_participant.id
            await sender.messaging.broadcast_message(type="n", message={"n": 0})
            while got != [0]:
                await anyio.sleep(0.005)
            cutter.paused = True
            cutter.sever()
            await sender.messaging.send_message(to=old_id, type="n", message={"n": 1})
            for n in range(2, MISSED + 1):
                await sender.messaging.broadcast_message(type="n", message={"n": n})
            await stored(redis, MISSED + 2)  # n1 wrote them to the room's stream
        cutter.target = n2.port
        cutter.paused = False
        back = await next_event(receiver, roomwire_asyncio.Reconnected)
        assert back.participant.id != old_id  # another node holds no suspended participant
        assert back.recovered is True
        assert back.missed == MISSED
        with anyio.fail_after(WAIT):
            while len(got) < MISSED + 1:
                await anyio.sleep(0.005)
        assert got == list(range(MISSED + 1))  # in order, the direct one included


@pytest.mark.parametrize("loss", ["deleted", "trimmed"])
async def test_a_lost_or_trimmed_stream_is_not_recovered_on_another_node(
    node: Node, join: Join, redis: RedisServer, loss: str
) -> None:
    """What the client missed is no longer all in the stream (deleted, or trimmed to the
    history size): it learns recovered=False, and nothing is replayed."""
    trimmed = loss == "trimmed"
    size = 5 if trimmed else 1000
    n1, n2 = await node("n1", history_size=size), await node("n2", history_size=size)
    sender = await join(n1.url, "sender")
    with anyio.fail_after(WAIT):
        await sender.messaging.broadcast_message(type="n", message={"n": -1})
        await stored(redis, 1)
    policy = roomwire_asyncio.ReconnectPolicy(first_delay=0.01, max_delay=0.05, give_up_after=WAIT)
    token = ParticipantToken(room="main", name="receiver").to_jwt(SECRET)
    missed = 200 if trimmed else MISSED  # MAXLEN ~ trims whole nodes: go well past them
    async with (
        proxy(n1.port) as cutter,
        roomwire_asyncio.connect(cutter.url(), token=token, reconnect=policy) as receiver,
        Redis.from_url(redis.url) as client,
    ):
        with anyio.fail_after(WAIT):
            await receiver.messaging.enable()
            cutter.paused = True
            cutter.sever()
            for n in range(missed):
                await sender.messaging.broadcast_message(type="n", message={"n": n})
            while (await client.xinfo_stream(STREAM))["entries-added"] < missed + 1:
                await anyio.sleep(0.005)  # n1 wrote them all (a record follows its ack)
            if not trimmed:
                await client.delete(STREAM)  # as by an eviction or a FLUSHALL
            else:
                assert await client.xlen(STREAM) < missed
        cutter.target = n2.port
        cutter.paused = False
        back = await next_event(receiver, roomwire_asyncio.Reconnected)
        assert back.recovered is False
        assert back.missed == 0
