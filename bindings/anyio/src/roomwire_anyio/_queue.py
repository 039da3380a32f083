"""The bounded queue behind ``room.messaging.events()``: overflow is counted and reported."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator

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

    async def __aiter__(self) -> AsyncIterator[MessagingEvent]:
        while True:
            while self._items:
                yield self._items.popleft()
            self._flush_dropped()
            if self._items:
                continue
            if self._closed:
                return
            self._ready = anyio.Event()
            await self._ready.wait()
