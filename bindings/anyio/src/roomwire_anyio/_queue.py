"""The bounded queue behind ``room.messaging.events()``: overflow is counted and reported."""

from __future__ import annotations

from collections import deque

import anyio

from .events import EventsDropped, MessagingEvent


class EventQueue:
    """Single-consumer queue of at most ``size`` events. When full, new events are dropped
    and an ``EventsDropped`` takes their place in the order, so loss is never silent."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("the events queue needs room for at least one event")
        self._items: deque[MessagingEvent] = deque()
        self._size = size
        self._dropped = 0
        self._ready = anyio.Event()
        self._closed = False

    def put(self, event: MessagingEvent) -> None:
        if self._closed:
            return
        if len(self._items) >= self._size:
            self._dropped += 1
            return
        self._flush_dropped()
        self._items.append(event)
        self._ready.set()

    def close(self) -> None:
        """End iteration once the queued events are consumed."""
        self._closed = True
        self._ready.set()

    def _flush_dropped(self) -> None:
        if self._dropped:
            self._items.append(EventsDropped(count=self._dropped))
            self._dropped = 0

    async def get(self) -> MessagingEvent | None:
        """The next event, waiting for one; None once closed and every event is taken."""
        while True:
            if self._items:
                return self._items.popleft()
            self._flush_dropped()
            if self._items:
                continue
            if self._closed:
                return None
            self._ready = anyio.Event()
            await self._ready.wait()


class Events:
    """What ``room.messaging.events()`` returns: the queue's events in order, ending on close.

    A plain async iterator, not a generator: leaving an ``async for`` early (``break``) leaves
    nothing for the garbage collector to finalize, which trio would warn about. ``aclose()``
    ends it at once, so ``contextlib.aclosing(room.messaging.events())`` works too.
    """

    def __init__(self, queue: EventQueue) -> None:
        self._queue: EventQueue | None = queue

    def __aiter__(self) -> Events:
        return self

    async def __anext__(self) -> MessagingEvent:
        event = None if self._queue is None else await self._queue.get()
        if event is None:
            self._queue = None
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        """End the iteration: ``__anext__`` raises ``StopAsyncIteration`` from now on."""
        self._queue = None
