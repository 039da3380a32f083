"""Counters a room server keeps about itself, for a driver to export (e.g. as Prometheus
metrics). Plain ints on a slotted object: counting costs an add on the hot path."""

from __future__ import annotations

from .codes import Code


class ServerStats:
    """What ``RoomServer.stats`` has counted since the server started (never reset).

    Gauges are not here: ``RoomServer.connection_count`` and ``room_count`` read them.
    """

    __slots__ = ("closes", "connections_accepted", "deliveries", "messages_routed", "refusals")

    def __init__(self) -> None:
        self.connections_accepted = 0
        """Transports accepted (``RoomServer.accept``)."""
        self.messages_routed = 0
        """Sends and broadcasts from this node's connections the server accepted."""
        self.deliveries = 0
        """Recipients those were queued for (the sender not counted)."""
        self.refusals: dict[Code, int] = {}
        """Requests refused with an error frame, by code."""
        self.closes: dict[Code, int] = {}
        """Connections closed, by close code (``SLOW_CONSUMER`` for slow consumers)."""
