"""Fixtures for the bindings suite: every test runs on asyncio (debug on) and on trio.

``rw`` is ``roomwire_asyncio`` or ``roomwire_trio`` to match the runtime. ``server`` is a
real server on 127.0.0.1, port 0; ``@pytest.mark.server(**settings)`` passes ServerConfig
fields to it. ``join(name)`` connects (and by default enables) a participant that is closed
at teardown. A leak check runs after every test: no task may outlive it.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from types import ModuleType
from typing import Any

import anyio
import pytest
import roomwire_asyncio
import roomwire_trio
import trio

from roomwire import ParticipantToken

from . import SECRET, WAIT, Join, ServerTask


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "server(**settings): ServerConfig fields for the `server` fixture"
    )


@pytest.fixture(
    params=[pytest.param(("asyncio", {"debug": True}), id="asyncio"), pytest.param("trio")]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
def rw(anyio_backend_name: str) -> ModuleType:
    """The binding under test: the same API on either runtime."""
    return roomwire_asyncio if anyio_backend_name == "asyncio" else roomwire_trio


def _live_tasks(backend: str) -> set[object]:
    if backend == "asyncio":
        # Leave out the test runner's own per-call tasks.
        return {t for t in asyncio.all_tasks() if "TestRunner" not in t.get_coro().__qualname__}
    tasks: set[object] = set()
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is not None:
            tasks.add(task)
            stack.extend(t for n in task.child_nurseries for t in n.child_tasks)
    return tasks


@pytest.fixture(autouse=True)
async def no_leaked_tasks(anyio_backend_name: str) -> AsyncIterator[None]:
    """Set up first, torn down last: every task a test started must be gone by then."""
    if anyio_backend_name == "asyncio":
        assert asyncio.get_running_loop().get_debug()
    before = _live_tasks(anyio_backend_name)
    yield
    await anyio.sleep(0)
    leaked = _live_tasks(anyio_backend_name) - before
    assert not leaked, f"tasks outlived the test: {leaked}"
    gc.collect()  # unclosed sockets and never-awaited coroutines warn here, in this test


@pytest.fixture
def make_token() -> Callable[..., str]:
    """``make_token("alice", room="main", can_send=False, ...)`` -> a signed JWT."""

    def make(name: str, room: str = "main", secret: str = SECRET, **fields: Any) -> str:
        return ParticipantToken(room=room, name=name, **fields).to_jwt(secret)

    return make


@pytest.fixture
async def server(rw: ModuleType, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    marker = request.node.get_closest_marker("server")
    settings = marker.kwargs if marker else {}
    async with rw.serve("127.0.0.1", 0, secret=SECRET, **settings) as running:
        yield running


@pytest.fixture
async def join(rw: ModuleType, server: Any, make_token: Callable[..., str]) -> AsyncIterator[Join]:
    """``await join("bob", enable=True, room="main", grants..., **connect_kwargs)`` -> RoomClient.

    Token fields (``can_send`` ...) go to the token, anything else to ``rw.connect``. Clients
    do not reconnect unless asked: a lost connection should fail a test, not be papered over.
    """
    token_fields = {"role", "can_send", "can_broadcast", "can_list", "can_history", "expires_at"}
    token_fields |= {"intercept", "hidden"}  # services (§23)
    async with AsyncExitStack() as stack:

        async def connect(
            name: str, *, enable: bool = True, room: str = "main", **kwargs: Any
        ) -> Any:
            fields = {k: kwargs.pop(k) for k in token_fields & kwargs.keys()}
            kwargs.setdefault("reconnect", False)
            token = make_token(name, room=room, **fields)
            client = await stack.enter_async_context(rw.connect(server.url, token=token, **kwargs))
            if enable:
                with anyio.fail_after(WAIT):
                    await client.messaging.enable()
            return client

        yield connect


@pytest.fixture
async def server_task(rw: ModuleType) -> AsyncIterator[ServerTask]:
    """Start and stop servers at will (see ServerTask); whatever still runs stops at teardown."""
    async with anyio.create_task_group() as tg:
        yield ServerTask(rw, tg)
        tg.cancel_scope.cancel()
