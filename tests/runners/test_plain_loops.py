"""The asyncio binding on loops started the way users start them (``asyncio.run``,
``uvloop.run``), outside anyio's pytest runner.

The runner lets anyio calls succeed anywhere, even where no task runs; a plain loop does not.
The asyncio drivers apply frames inside transport callbacks, where no task runs, so only a
plain loop shows whether callbacks, async ones included, still start from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import pytest
import roomwire_asyncio
import uvloop

from roomwire import ParticipantToken, RemoteParticipant, RoomMessage

SECRET = "plain-loop-suite-secret-long-enough-for-hs256"


def token(name: str) -> str:
    return ParticipantToken(room="main", name=name).to_jwt(SECRET)


async def callbacks_of_every_kind() -> list[tuple[str, object]]:
    seen: list[tuple[str, object]] = []
    done = anyio.Event()

    async def on_message(message: RoomMessage) -> None:
        await anyio.sleep(0)
        seen.append(("async", message.message["n"]))
        if len([kind for kind, _ in seen if kind == "async"]) == 2:
            done.set()

    async def on_added(participant: RemoteParticipant) -> None:
        await anyio.sleep(0)
        seen.append(("added", participant.name))

    async with (
        roomwire_asyncio.serve("127.0.0.1", 0, secret=SECRET) as server,
        roomwire_asyncio.connect(server.url, token=token("bob"), reconnect=False) as bob,
    ):
        bob.messaging.on("message", on_message)
        bob.messaging.on("message", lambda m: seen.append(("sync", m.message["n"])))
        bob.messaging.on("participant_added", on_added)
        await bob.messaging.enable()
        async with roomwire_asyncio.connect(
            server.url, token=token("alice"), reconnect=False
        ) as alice:
            await alice.messaging.enable()
            assert bob.local_participant is not None
            await alice.messaging.send_message(to=bob.local_participant, type="t", message={"n": 0})
            await alice.messaging.broadcast_message(type="t", message={"n": 1}, wait=False)
            with anyio.fail_after(5):
                await done.wait()
    assert asyncio.all_tasks() == {asyncio.current_task()}, "a task outlived the clients"
    return seen


RUNNERS: dict[str, Callable[[Coroutine[Any, Any, Any]], Any]] = {
    "asyncio": lambda coro: asyncio.run(coro, debug=True),
    "uvloop": uvloop.run,
}


@pytest.mark.parametrize("runner", RUNNERS)
def test_callbacks_run_on_a_plain_loop(runner: str) -> None:
    seen = RUNNERS[runner](callbacks_of_every_kind())
    assert ("added", "alice") in seen
    assert sorted(item for item in seen if item[0] != "added") == [
        ("async", 0),
        ("async", 1),
        ("sync", 0),
        ("sync", 1),
    ]
