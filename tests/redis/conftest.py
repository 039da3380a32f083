"""Fixtures of the multi-node suite: a redis-server per test, nodes, participants.

``redis`` is a started ``RedisServer``; ``node(name)`` runs ``serve(redis=...)`` in the test's
event loop; ``spawn(name)`` runs a node in a subprocess (``node.py``); ``join(url, name)``
connects and enables a participant. Everything is stopped at teardown (processes by pid).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import roomwire_asyncio

from roomwire import ParticipantToken

from . import NODE_SETTINGS, SECRET, NodeProcess, RedisServer

Node = Callable[..., Awaitable[roomwire_asyncio.Server]]
Join = Callable[..., Awaitable[roomwire_asyncio.RoomClient]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis-py's client is asyncio-only


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


@pytest.fixture
def node(redis: RedisServer, stack: AsyncExitStack) -> Node:
    async def start(node_id: str, **settings: Any) -> roomwire_asyncio.Server:
        settings = NODE_SETTINGS | {"node_id": node_id} | settings
        return await stack.enter_async_context(
            roomwire_asyncio.serve(port=0, secret=SECRET, redis=redis.url, **settings)
        )

    return start


@pytest.fixture
def spawn(redis: RedisServer, tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    started: list[NodeProcess] = []

    def start(node_id: str, **settings: Any) -> NodeProcess:
        process = NodeProcess(redis.url, node_id, tmp_path, **settings)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.kill()


@pytest.fixture
def join(stack: AsyncExitStack) -> Join:
    async def connect(
        url: str, name: str, *, room: str = "main", enable: bool = True, **grants: Any
    ) -> roomwire_asyncio.RoomClient:
        token = ParticipantToken(room=room, name=name, **grants).to_jwt(SECRET)
        client = await stack.enter_async_context(
            roomwire_asyncio.connect(url, token=token, reconnect=False, events_queue_size=100_000)
        )
        if enable:
            await client.messaging.enable()
        return client

    return connect
