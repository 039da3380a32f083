"""The one interface between the pumps and the network, on both sides.

A transport carries one core connection: it feeds what arrives into the connection and
writes what the connection has to send. It is the only code that knows how bytes are framed
on the wire (a byte stream; under WebSocket, ``_layers.py`` feeds whole payloads instead), so
a new transport changes no pump. A pump applies what was fed and says
when output is waiting; it never touches the network.

A ``Network`` is how a runtime makes transports: ``dial`` one for a client, ``listen`` for a
server. The thin runtime packages choose one (``roomwire_asyncio``: asyncio Protocols;
``roomwire_trio``: anyio streams).
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import anyio.abc

from roomwire import Framing, State

READ_SIZE = 65536
CLOSE_GRACE = 1.0
"""Seconds a closed connection's last write may take before the transport is dropped."""


class Connection(Protocol):
    """What a byte-stream transport uses of a core connection (client or server side)."""

    @property
    def state(self) -> State: ...

    def receive_data(self, data: bytes) -> None: ...

    def data_to_send(self) -> bytes: ...


C = TypeVar("C", bound=Connection)


class Transport(Protocol):
    """What a pump asks of the transport carrying its connection."""

    def wake(self) -> None:
        """The connection has output (or was closed): write it soon, once per loop turn."""

    def abort(self) -> None:
        """Drop the transport now (its last bytes did not get out in time)."""


class Pump(Protocol[C]):
    """What a transport reports to: the pump of its side."""

    def attach(self, transport: Transport, peer: str, framing: Framing = Framing.STREAM) -> C:
        """A transport is up: the core connection it carries (``framing``: how the
        transport delimits frames; a message transport, such as WebSocket, passes MESSAGE)."""

    def received(self, conn: C) -> bool:
        """Input was fed to ``conn``: apply it. True once the connection is closed (the
        transport reads no more)."""

    def wrote(self, conn: C) -> None:
        """What ``conn`` had to send went to the network."""

    def ended(self, conn: C) -> None:
        """The transport is gone both ways."""


class Listener(Protocol):
    """A bound listening socket: ``start`` accepts connections, ``stop`` stops that."""

    port: int

    async def start(self, tg: anyio.abc.TaskGroup) -> None: ...

    def stop(self) -> None: ...


class Network(Protocol):
    """How a runtime makes transports."""

    async def dial(self, host: str, port: int, pump: Pump[Any], tg: anyio.abc.TaskGroup) -> None:
        """Connect to ``host:port``; the transport attaches to ``pump`` and its tasks, if any,
        run in ``tg``. Raises OSError when the server cannot be reached. ``pump`` is the client's
        pump, or a ``_layers.LayeredPump`` over it (TLS, WebSocket)."""

    async def listen(self, host: str, port: int, pump: Pump[Any], write_timeout: float) -> Listener:
        """Bind ``host:port``; each accepted transport drops a peer that takes nothing it is
        sent for ``write_timeout`` seconds."""
