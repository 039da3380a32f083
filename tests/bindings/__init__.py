"""The bindings suite: one set of tests run on asyncio and on trio (see conftest.py).

This package module holds the small helpers the tests share: waiting for events, bounded
in time, so that nothing can hang.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Any, TypeVar

import anyio
import anyio.abc
from roomwire_anyio import parse_url

from roomwire import NEED_DATA, ClientConnection
from roomwire.events import Connected, ParticipantAdded

SECRET = "bindings-suite-secret-long-enough-for-hs256"
WAIT = 5.0
"""Upper bound on any wait for something that should happen within milliseconds."""

E = TypeVar("E")
Join = Callable[..., Awaitable[Any]]
"""The ``join`` fixture: ``await join("bob", enable=True, **options)`` -> RoomClient."""


async def next_event(
    room: Any,
    kind: type[E],
    where: Callable[[E], bool] = lambda _: True,
    *,
    timeout: float = WAIT,
) -> E:
    """The next event of ``kind`` (matching ``where``) from ``room.messaging.events()``;
    earlier events are consumed. Fails after ``timeout`` or if the events end first."""
    with anyio.fail_after(timeout):
        async with aclosing(room.messaging.events()) as events:
            async for event in events:
                if isinstance(event, kind) and where(event):
                    return event
    raise AssertionError(f"events() ended before a {kind.__name__} arrived")


async def collect(room: Any, count: int, kind: type[E], *, timeout: float = WAIT) -> list[E]:
    """The next ``count`` events of ``kind`` (others are skipped)."""
    found: list[E] = []
    with anyio.fail_after(timeout):
        async with aclosing(room.messaging.events()) as events:
            async for event in events:
                if isinstance(event, kind):
                    found.append(event)
                    if len(found) == count:
                        return found
    raise AssertionError(f"events() ended after {len(found)} of {count} {kind.__name__}")


async def drain(room: Any, *, timeout: float = WAIT) -> list[Any]:
    """Every event until ``events()`` ends (the connection closed for good)."""
    found: list[Any] = []
    with anyio.fail_after(timeout):
        async with aclosing(room.messaging.events()) as events:
            async for event in events:
                found.append(event)
    return found


async def wait_until(check: Callable[[], bool], *, timeout: float = WAIT) -> None:
    """Poll a condition that no event announces (bounded in time, never an assertion)."""
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.005)


async def participant(room: Any, name: str) -> Any:
    """The participant called ``name`` in ``room``'s view, waiting for its arrival if needed
    (events before it are consumed)."""
    found = room.messaging.get_participant_by_name(name)
    if found is not None:
        return found
    added = await next_event(room, ParticipantAdded, lambda e: e.participant.name == name)
    return added.participant


class RawClient:
    """A participant driven by hand with the sans-IO core over a real socket: it does exactly
    what the test says and nothing else (no pong unless the test pumps it)."""

    def __init__(self, stream: anyio.abc.ByteStream, conn: ClientConnection) -> None:
        self.stream = stream
        self.conn = conn

    async def until(self, kind: type[E], *, timeout: float = WAIT) -> E:
        """Write what is queued, then read until the core returns an event of ``kind``."""
        with anyio.fail_after(timeout):
            while True:
                data = self.conn.data_to_send()
                if data:
                    await self.stream.send(data)
                event = self.conn.next_event(time.time())
                if event is NEED_DATA:
                    try:
                        self.conn.receive_data(await self.stream.receive())
                    except anyio.EndOfStream:
                        self.conn.receive_data(b"")
                elif isinstance(event, kind):
                    return event


@asynccontextmanager
async def raw_client(url: str, token: str) -> AsyncIterator[RawClient]:
    """Connect and complete the handshake by hand."""
    host, port = parse_url(url)
    async with await anyio.connect_tcp(host, port) as stream:
        raw = RawClient(stream, ClientConnection(token=token, now=time.time()))
        await raw.until(Connected)
        yield raw


class ServerTask:
    """Runs ``rw.serve`` in its own task, so a test can stop a server (and start another on
    the same port) while its clients, in the test's task, stay connected."""

    def __init__(self, rw: Any, tg: anyio.abc.TaskGroup) -> None:
        self._rw = rw
        self._tg = tg
        self._stop = anyio.Event()
        self._stopped = anyio.Event()

    async def start(self, port: int = 0, **settings: Any) -> Any:
        self._stop, self._stopped = anyio.Event(), anyio.Event()
        stop, stopped = self._stop, self._stopped

        async def run(*, task_status: anyio.abc.TaskStatus[Any]) -> None:
            try:
                async with self._rw.serve("127.0.0.1", port, secret=SECRET, **settings) as s:
                    task_status.started(s)
                    await stop.wait()
            finally:
                stopped.set()

        return await self._tg.start(run)

    async def stop(self) -> float:
        """Leave the ``serve`` block (closing every connection); returns how long it took."""
        start = anyio.current_time()
        self._stop.set()
        with anyio.fail_after(WAIT):
            await self._stopped.wait()
        return anyio.current_time() - start


async def scrape(url: str) -> tuple[int, str, str]:
    """GET ``url`` with a real HTTP client (urllib, in a thread): status, content type, body;
    an HTTP error status is returned, not raised."""

    def get() -> tuple[int, str, str]:
        try:
            with urllib.request.urlopen(url, timeout=WAIT) as response:
                return response.status, response.headers["content-type"], response.read().decode()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers["content-type"], error.read().decode()

    return await anyio.to_thread.run_sync(get)


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text exposition -> {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }
