"""History in Redis Streams (the default with serve(redis=...)): readers on any node see the
same history, each message stored once, and the room's epoch changes whenever its stream is
lost (deleted, Redis restarted empty) or trimmed past a reader's position, so that reader
learns its position is not trusted (``HistoryReceived.reset``)."""

from __future__ import annotations

import anyio
import pytest
from redis.asyncio import Redis
from roomwire_asyncio import RoomClient

from roomwire import ParticipantToken
from roomwire.events import HistoryReceived, MessageReceived

from ..bindings import RawClient, next_event, raw_client
from . import SECRET, WAIT, RedisServer
from .conftest import Join, Node

pytestmark = pytest.mark.anyio

STREAM = "roomwire:history:main"


async def read(raw: RawClient, **args: object) -> HistoryReceived:
    raw.conn.history(**args)  # type: ignore[arg-type]
    return await raw.until(HistoryReceived)


async def first_read(alice: RoomClient, raw: RawClient, redis: RedisServer) -> HistoryReceived:
    """alice broadcasts n=0, then the reader reads: its first position and epoch. (A Redis
    Streams record follows its ack: the read waits for it, PROTOCOL.md §21.3.)"""
    await alice.messaging.broadcast_message(type="chat", message={"n": 0})
    await stored(redis, 1)
    return await read(raw)


async def stored(redis: RedisServer, count: int) -> None:
    """Wait until the room's stream holds ``count`` entries: a record follows its ack."""
    async with Redis.from_url(redis.url) as client:
        while await client.xlen(STREAM) != count:
            await anyio.sleep(0.005)


def token(name: str) -> str:
    return ParticipantToken(room="main", name=name).to_jwt(SECRET)


async def test_every_node_reads_the_same_history(
    node: Node, join: Join, redis: RedisServer
) -> None:
    n1, n2 = await node("n1"), await node("n2")
    alice, bob = await join(n1.url, "alice"), await join(n2.url, "bob")
    bob_id = bob.local_participant.id  # type: ignore[union-attr]
    with anyio.fail_after(WAIT):
        while bob_id not in {p.id for p in alice.messaging.remote_participants}:
            await anyio.sleep(0.01)  # n1 hears of bob through the backplane
        await alice.messaging.broadcast_message(type="chat", message={"n": 0})
        await alice.messaging.send_message(to=bob_id, type="dm", message={"n": 1})
        await bob.messaging.broadcast_message(type="chat", message={"n": 2})
        await next_event(alice, MessageReceived, lambda e: e.message.message["n"] == 2)
        await stored(redis, 3)  # each stored once, by the node it was sent on
    carol = await join(n2.url, "carol", enable=False)  # came later, on the other node
    with anyio.fail_after(WAIT):
        seen = {
            name: [m.message["n"] for m in await client.messaging.history()]
            for name, client in (("alice", alice), ("bob", bob), ("carol", carol))
        }
    # The order the nodes stored them in (each node's own in its order), the same for all.
    assert sorted(seen["alice"]) == [0, 1, 2]
    assert seen["bob"] == seen["alice"]
    assert seen["carol"] == [n for n in seen["alice"] if n != 1]  # not alice's note to bob


async def test_a_lost_stream_changes_the_epoch(node: Node, join: Join, redis: RedisServer) -> None:
    n1 = await node("n1")
    alice = await join(n1.url, "alice")
    async with raw_client(n1.url, token("reader")) as raw:
        with anyio.fail_after(WAIT):
            first = await first_read(alice, raw, redis)
            assert [m.message["n"] for m in first.messages] == [0]
            position, epoch = first.messages[0].seq, first.epoch
            assert not (await read(raw, since=position, epoch=epoch)).reset
            async with Redis.from_url(redis.url) as client:
                await client.delete(STREAM)  # lost (as by an eviction or a FLUSHALL)
            await alice.messaging.broadcast_message(type="chat", message={"n": 1})
            await stored(redis, 1)
            after = await read(raw, since=position, epoch=epoch)
    assert after.epoch != epoch
    assert after.reset  # the reader must not trust its position
    assert [m.message["n"] for m in after.messages] == [1]  # what the new epoch holds


async def test_redis_restarted_empty_changes_the_epoch(
    node: Node, join: Join, redis: RedisServer
) -> None:
    n1 = await node("n1")
    alice = await join(n1.url, "alice")
    async with raw_client(n1.url, token("reader")) as raw:
        with anyio.fail_after(WAIT):
            before = await first_read(alice, raw, redis)
        redis.stop()
        redis.start()  # no persistence: it comes back empty
        with anyio.fail_after(WAIT * 2):
            while not n1.backplane_healthy:
                await anyio.sleep(0.05)
            after = await read(raw, since=before.messages[0].seq, epoch=before.epoch)
    assert after.epoch != before.epoch
    assert after.reset
    assert after.messages == ()


@pytest.mark.parametrize("size", [5])
async def test_a_stream_trimmed_past_a_position_resets_it(
    node: Node, join: Join, redis: RedisServer, size: int
) -> None:
    n1 = await node("n1", history_size=size)
    alice = await join(n1.url, "alice")
    async with raw_client(n1.url, token("reader")) as raw:
        with anyio.fail_after(WAIT):
            first = await first_read(alice, raw, redis)
            position, epoch = first.messages[0].seq, first.epoch
            for n in range(1, 200):  # MAXLEN ~ trims in whole nodes: go well past them
                await alice.messaging.broadcast_message(type="chat", message={"n": n})
            trimmed = await read(raw, since=position, epoch=epoch, limit=1000)
            while not trimmed.messages or trimmed.messages[-1].message["n"] != 199:
                # until the last record is in (records follow their acks)
                trimmed = await read(raw, since=position, epoch=epoch, limit=1000)
            latest = await read(raw, since=trimmed.messages[-2].seq, epoch=epoch)
    assert trimmed.epoch == epoch  # the stream is not lost...
    assert trimmed.reset  # ...but what came after the position is, in part
    assert trimmed.messages[0].message["n"] > 1
    assert not latest.reset
    assert [m.message["n"] for m in latest.messages] == [199]
    async with Redis.from_url(redis.url) as client:
        assert size <= await client.xlen(STREAM) < 200


async def test_history_memory_keeps_a_node_to_itself(node: Node, join: Join) -> None:
    n1, n2 = await node("n1", history="memory://"), await node("n2", history="memory://")
    alice, bob = await join(n1.url, "alice"), await join(n2.url, "bob")
    with anyio.fail_after(WAIT):
        await alice.messaging.broadcast_message(type="chat", message={"n": 0})
        await next_event(bob, MessageReceived)
        assert [m.message["n"] for m in await bob.messaging.history()] == [0]
    assert not n1.core.config.external_history
