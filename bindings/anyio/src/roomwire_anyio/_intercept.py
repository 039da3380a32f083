"""The server driver's part of an ``async`` in-process interceptor: the core hands out the
messages it is deciding (``RoomServer.interceptions``); this awaits them one at a time, in
that order (so each sender's messages stay in order), and gives the core each outcome."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import anyio

from roomwire import InterceptedMessage, Interception, RoomServer


class Interceptions:
    def __init__(self, core: RoomServer, flush: Callable[[], None]) -> None:
        self._core = core
        self._flush = flush
        self._jobs: deque[Interception] = deque()
        self._wake = anyio.Event()

    def collect(self) -> None:
        """Take what the core has for the interceptor (after every batch of work)."""
        jobs = self._core.interceptions()
        if jobs:
            self._jobs.extend(jobs)
            self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                while self._jobs:
                    job = self._jobs[0]
                    outcome: InterceptedMessage | Exception | None
                    try:
                        outcome = await job.awaitable
                    except Exception as exc:  # the core refuses the message and logs it
                        outcome = exc
                    self._jobs.popleft()
                    self._core.intercepted(job, outcome, time.time())
                    self._flush()
        finally:
            for job in self._jobs:
                close = getattr(job.awaitable, "close", None)
                if close is not None:
                    close()  # never awaited: no "never awaited" warning either
