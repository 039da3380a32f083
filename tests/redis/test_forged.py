"""Finding 4 over a real redis-server: records anyone with access to Redis publishes are not
believed. Without a cluster key, nothing read from Redis crashes a node or makes it send a
frame over the limit; with one, a forged sender, participant or departure is refused."""

from __future__ import annotations

import struct
from typing import Any

import anyio
import cbor2
import pytest
from redis.asyncio import Redis

from roomwire.events import MessageReceived

from ..bindings import next_event
from . import RedisServer
from .conftest import Join, Node
from .test_cluster import names

pytestmark = pytest.mark.anyio

KEY = "cluster-key-0123456789abcdef-0123456789"
ROOM = "roomwire:room:main"


def records(*items: dict[str, Any] | bytes) -> bytes:
    """One pub/sub message of the Redis driver: records, each after its 4-byte length."""
    out = b""
    for item in items:
        data = item if isinstance(item, bytes) else cbor2.dumps(item)
        out += struct.pack(">I", len(data)) + data
    return out


def forgeries(node_id: str, victim: str) -> list[bytes]:
    """What a Redis user without the key can publish, each claiming to come from
    ``node_id`` (the victim's node)."""
    base = {"n": node_id, "r": "main"}
    fake = {"id": "fake-1", "name": "fake", "role": "user", "attributes": {}}
    msg = {"t": "msg", "id": "m-f", "ts": 1.0, "to": None, "from": victim, "type": "x"}
    return [
        records({**base, **msg, "message": {"text": "spoofed"}}),
        records({**base, "t": "join", "p": fake}),
        records({**base, "t": "left", "id": victim}),
        records({**base, "t": "sync"}),
        records({**base, **msg, "message": {"text": "x" * 1_500_000}}),  # 1.5 MB
    ]


async def test_forged_records_are_refused_by_a_keyed_cluster(
    node: Node, join: Join, redis: RedisServer
) -> None:
    n1 = await node("n1", backplane_key=KEY)
    n2 = await node("n2", backplane_key=KEY)
    alice = await join(n1.url, "alice")
    bob = await join(n2.url, "bob")
    await names(alice, {"bob"})
    bob_id = alice.messaging.get_participant_by_name("bob").id
    forged = forgeries("n2", bob_id)
    async with Redis.from_url(redis.url) as client:
        for data in forged:
            assert await client.publish(ROOM, data) == 2  # both nodes read every forgery
        await client.publish("roomwire:probe:n1", b"not-a-number")
        await client.publish("roomwire:probe:n1", str(10**30).encode())
    # A real message after the forgeries is the first (and only) thing alice receives.
    await bob.messaging.broadcast_message(type="real", message={})
    received = await next_event(alice, MessageReceived)
    assert received.message.type == "real"
    assert {p.name for p in alice.messaging.remote_participants} == {"bob"}
    await anyio.sleep(3 * 0.5)  # three probe intervals: the probe is still heard
    assert n1.backplane_healthy is True
    print(f"\nforged records refused: {len(forged)} of {len(forged)} (+2 forged probes)")


@pytest.mark.parametrize("probe", [b"not-a-number", str(10**30).encode(), b"x:1"])
async def test_garbage_on_redis_neither_kills_a_node_nor_reaches_its_clients(
    node: Node, join: Join, redis: RedisServer, probe: bytes
) -> None:
    n1, n2 = await node("n1"), await node("n2")
    alice = await join(n1.url, "alice")
    bob = await join(n2.url, "bob")
    await names(alice, {"bob"})
    async with Redis.from_url(redis.url) as client:
        await client.publish("roomwire:probe:n1", probe)
        oversize = forgeries("n2", "nobody")[-1]
        await client.publish(ROOM, oversize)
    await anyio.sleep(3 * 0.5)
    assert n1.backplane_healthy is True  # neither crashed nor blinded
    await bob.messaging.broadcast_message(type="after", message={})
    assert (await next_event(alice, MessageReceived)).message.type == "after"
