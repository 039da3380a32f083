"""The tasks async callbacks run in (request handlers, stream readers, message callbacks).

They start from the client's spawner task. On asyncio each is a bare task of the loop, kept
in a set and cancelled (and waited for) when the spawner ends: anyio's ``start_soon`` costs
several times a bare task there (a handle, a cancel scope and a wrapper coroutine per task),
and every request a participant answers starts one. On trio they are the task group's."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

import anyio
import anyio.abc

log = logging.getLogger("roomwire.client")


class CallbackTasks:
    """Starts callbacks as tasks; ``aclose`` cancels those still running and waits for them.
    Made inside a task of the client's task group."""

    def __init__(self, tg: anyio.abc.TaskGroup) -> None:
        self._tg = tg
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio: trio
            self._loop = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, name: str, awaitable: Awaitable[object]) -> None:
        if self._loop is None:
            self._tg.start_soon(run_callback, name, awaitable)
            return
        task = self._loop.create_task(run_callback(name, awaitable))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Cancel the bare tasks still running and wait until they ended (shielded: this runs
        while the client's task group is being cancelled)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            with anyio.CancelScope(shield=True):
                await asyncio.wait(tasks)


async def run_callback(name: str, awaitable: Awaitable[object]) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("%s callback failed", name)
