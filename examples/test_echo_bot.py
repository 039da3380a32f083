"""Testing your own app against a real roomwire server with the pytest plugin's fixtures.

``roomwire_server`` (a server on 127.0.0.1, a free port) and ``roomwire_token`` come with
roomwire-anyio, so with either binding; no conftest is needed. The tests run on the event
loop anyio's pytest plugin gives them: here on asyncio and on trio.

Run: python -m pytest examples/test_echo_bot.py
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import anyio
import pytest
import roomwire_asyncio
import roomwire_trio

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
def rw(anyio_backend: str) -> ModuleType:
    return roomwire_asyncio if anyio_backend == "asyncio" else roomwire_trio


async def echo_bot(room: Any) -> None:
    """The app under test: answers every ``ping`` with a ``pong`` to its sender."""
    async for event in room.messaging.events():
        if isinstance(event, roomwire_asyncio.MessageReceived) and event.message.type == "ping":
            await room.messaging.send_message(
                to=event.message.from_participant_id, type="pong", message=event.message.message
            )


async def test_echo_bot_answers_a_ping(
    rw: ModuleType, roomwire_server: Any, roomwire_token: Any
) -> None:
    url = roomwire_server.url
    async with (
        rw.connect(url, token=roomwire_token("bot", room="lobby")) as bot,
        rw.connect(url, token=roomwire_token("alice", room="lobby")) as alice,
        anyio.create_task_group() as tg,
    ):
        await bot.messaging.enable()
        tg.start_soon(echo_bot, bot)
        await alice.messaging.enable()
        await alice.messaging.send_message(to=bot.local_participant, type="ping", message={"n": 1})
        with anyio.fail_after(5):
            async for event in alice.messaging.events():
                if isinstance(event, rw.MessageReceived):
                    assert (event.message.type, event.message.message) == ("pong", {"n": 1})
                    break
        tg.cancel_scope.cancel()


@pytest.mark.roomwire_server(max_frame_size=4096)
async def test_server_settings_come_from_the_marker(
    rw: ModuleType, roomwire_server: Any, roomwire_token: Any
) -> None:
    async with rw.connect(roomwire_server.url, token=roomwire_token("alice")) as alice:
        await alice.messaging.enable()
        with pytest.raises(rw.TooLargeError):
            await alice.messaging.broadcast_message(type="big", message={"x": "y" * 8192})
