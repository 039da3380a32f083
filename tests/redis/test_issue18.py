"""What issue 18 adds to a cluster: ``/healthz`` and ``roomwire_backplane_healthy`` follow the
Redis backplane (unhealthy while Redis is down, healthy again once it is back; a real
redis-server, a real HTTP client), and a hidden sender is no presence churn on other nodes."""

from __future__ import annotations

import anyio
import pytest

from roomwire.events import MessageReceived, ParticipantAdded, ParticipantRemoved

from ..bindings import WAIT, collect, next_event, participant, samples, scrape
from . import RedisServer
from .conftest import Join, Node

pytestmark = pytest.mark.anyio


async def _health(url: str) -> tuple[int, float]:
    status, _, _ = await scrape(f"{url}/healthz")
    metrics = samples((await scrape(f"{url}/metrics"))[2])
    return status, metrics[("roomwire_backplane_healthy", ())]


async def _until(url: str, expected: tuple[int, float]) -> None:
    with anyio.fail_after(WAIT * 2):
        while await _health(url) != expected:
            await anyio.sleep(0.05)


async def test_healthz_reports_the_backplane_down_and_back(node: Node, redis: RedisServer) -> None:
    n1 = await node("n1", metrics="http://127.0.0.1:0")
    assert await _health(n1.metrics_url) == (200, 1.0)
    redis.stop()
    await _until(n1.metrics_url, (503, 0.0))
    _, _, body = await scrape(f"{n1.metrics_url}/healthz")
    assert body == '{"status": "unhealthy", "backplane": false}\n'
    redis.start()
    await _until(n1.metrics_url, (200, 1.0))


async def test_a_hidden_sender_is_no_churn_on_other_nodes(node: Node, join: Join) -> None:
    n1, n2 = await node("n1"), await node("n2")
    bob = await join(n2.url, "bob")
    cli = await join(n1.url, "cli", hidden=True)
    carol = await join(n1.url, "carol")  # a marker: bob hears of her after anything before
    added = await next_event(bob, ParticipantAdded)
    assert added.participant.name == "carol"  # the first arrival bob hears of: not cli
    await participant(cli, "carol")
    assert sorted(p.name for p in cli.messaging.remote_participants) == ["bob", "carol"]
    await cli.messaging.broadcast_message(type="hi", message={})
    await carol.messaging.broadcast_message(type="marker", message={})
    events = await collect(bob, 2, MessageReceived)
    assert [e.message.type for e in events] == ["hi", "marker"]
    await cli.aclose()
    await carol.messaging.disable()
    removed = await next_event(bob, ParticipantRemoved)
    assert removed.participant.name == "carol"  # the first removal bob hears of
    assert [p.name for p in n2.core.participants("main")] == ["bob"]
