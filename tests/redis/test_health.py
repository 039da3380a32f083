"""``/healthz`` and ``roomwire_backplane_healthy`` follow the Redis backplane: unhealthy
while Redis is down, healthy again once it is back (a real redis-server, a real HTTP client)."""

from __future__ import annotations

import anyio
import pytest

from ..bindings import WAIT, samples, scrape
from . import RedisServer
from .conftest import Node

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
