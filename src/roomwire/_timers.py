"""The server's connection timers: one heap, each connection armed at its next deadline."""

from __future__ import annotations

import heapq
import itertools
import math
from typing import TYPE_CHECKING

from ._state import State

if TYPE_CHECKING:
    from ._session import ServerConnection


class Timers:
    __slots__ = ("_armed", "_heap", "_ids")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, ServerConnection]] = []
        self._ids = itertools.count()
        self._armed: dict[ServerConnection, float] = {}
        """Each connection's one live deadline; heap entries that differ are superseded."""

    def arm(self, connection: ServerConnection, when: float) -> None:
        """Run ``connection.on_timer`` at ``when``, unless it is armed earlier already."""
        if when < self._armed.get(connection, math.inf) and connection.state is not State.CLOSED:
            self._armed[connection] = when
            heapq.heappush(self._heap, (when, next(self._ids), connection))

    def cancel(self, connection: ServerConnection) -> None:
        self._armed.pop(connection, None)

    def next_deadline(self) -> float:
        heap, armed = self._heap, self._armed
        while heap and heap[0][0] != armed.get(heap[0][2]):
            heapq.heappop(heap)  # superseded entry
        return heap[0][0] if heap else math.inf

    def run_due(self, now: float) -> None:
        heap, armed = self._heap, self._armed
        while heap and heap[0][0] <= now:
            when, _, connection = heapq.heappop(heap)
            if armed.get(connection) == when:
                del armed[connection]
                connection.on_timer(now)
