"""A transport with no socket, for ``roomwire_anyio.connect`` / ``serve``: both ends live in
this process and every wake-up hands the connection's output to the peer as one message.

It is written against ``roomwire_anyio.transport`` alone: that the pumps run over it
unchanged is what the interface promises to the next transport (WebSocket, TLS).
"""

from __future__ import annotations

from typing import Any, Generic

import anyio
import anyio.abc
from roomwire_anyio.transport import C, Pump

from roomwire import ClientConnection, ServerConnection, State


class MemoryTransport(Generic[C]):
    """One end of an in-memory connection (a ``Transport``)."""

    def __init__(self, pump: Pump[C]) -> None:
        self._pump = pump
        self.peer: MemoryTransport[Any] | None = None
        self._wake = anyio.Event()
        self._closed_in = False  # the pump said it reads no more
        self._gone = False
        self.conn = pump.attach(self, "memory")

    def wake(self) -> None:
        self._wake.set()

    def abort(self) -> None:
        self._end()

    def deliver(self, data: bytes) -> None:
        if not (self._gone or self._closed_in):
            self.conn.receive_data(data)
            self._closed_in = self._pump.received(self.conn)

    async def run(self) -> None:
        try:
            while not self._gone:
                await self._wake.wait()
                self._wake = anyio.Event()
                data = self.conn.data_to_send()
                if data and self.peer is not None:
                    self.peer.deliver(data)
                self._pump.wrote(self.conn)
                if self.conn.state is State.CLOSED:
                    return
        finally:
            self._end()

    def _end(self) -> None:
        """Both ends see the end of input, then are gone."""
        if not self._gone:
            self._gone = True
            self._wake.set()
            self._end_of_input()
            self._pump.ended(self.conn)
            if self.peer is not None:
                self.peer._end()

    def _end_of_input(self) -> None:
        if not self._closed_in:
            self.conn.receive_data(b"")
            self._closed_in = self._pump.received(self.conn)


class MemoryListener:
    def __init__(self, pump: Pump[ServerConnection], port: int) -> None:
        self.pump = pump
        self.port = port
        self.tg: anyio.abc.TaskGroup | None = None
        self.transports: list[MemoryTransport[ServerConnection]] = []

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        self.tg = tg

    def stop(self) -> None:
        self.tg = None


class MemoryNetwork:
    """A ``Network`` whose listeners are ports in a dict."""

    def __init__(self) -> None:
        self.listeners: dict[int, MemoryListener] = {}

    async def listen(
        self, host: str, port: int, pump: Pump[ServerConnection], write_timeout: float
    ) -> MemoryListener:
        listener = MemoryListener(pump, port or len(self.listeners) + 1)
        self.listeners[listener.port] = listener
        return listener

    async def dial(
        self, host: str, port: int, pump: Pump[ClientConnection], tg: anyio.abc.TaskGroup
    ) -> None:
        listener = self.listeners.get(port)
        if listener is None or listener.tg is None:
            raise ConnectionRefusedError(f"nothing listens on memory port {port}")
        client = MemoryTransport(pump)
        server = MemoryTransport(listener.pump)
        client.peer, server.peer = server, client
        listener.transports.append(server)
        tg.start_soon(client.run)
        listener.tg.start_soon(server.run)
