"""Transports as asyncio Protocols (the fast path, client and server): no task and no event
per connection. The transport's callbacks feed the connection and tell the pump at once; the
output of every transport woken during a loop turn is written once, at the turn's end."""

from __future__ import annotations

import asyncio
import math
import socket
from typing import Any, Generic, cast

import anyio.abc
from roomwire_anyio import TcpListener
from roomwire_anyio.transport import CLOSE_GRACE, C, Pump

from roomwire import State


class TurnFlusher:
    """Collects the transports woken during a loop turn and writes them all at its end
    (``call_soon``): many reads in one turn still give one write per connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._pending: dict[ProtocolTransport[Any], None] = {}
        self._scheduled = False

    def add(self, transport: ProtocolTransport[Any]) -> None:
        self._pending[transport] = None
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for transport in pending:
            transport.write_out()


class ProtocolTransport(asyncio.Protocol, Generic[C]):
    """One asyncio transport carrying one connection."""

    __slots__ = (
        "_eof",
        "_flusher",
        "_hangup",
        "_paused",
        "_pump",
        "_stall",
        "_transport",
        "_write_timeout",
        "conn",
    )

    # Set by connection_made, the first callback a transport makes.
    _transport: asyncio.Transport
    conn: C

    def __init__(self, pump: Pump[C], flusher: TurnFlusher, write_timeout: float) -> None:
        self._pump = pump
        self._flusher = flusher
        self._write_timeout = write_timeout
        self._paused = self._eof = False
        self._stall: asyncio.TimerHandle | None = None
        """While the transport's buffer is full: drops a peer that takes nothing for
        ``write_timeout`` seconds."""
        self._hangup: asyncio.TimerHandle | None = None
        """Once closed: drops the socket if the last bytes are not out within a grace."""

    # --- transport callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        shown = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.conn = self._pump.attach(self, shown)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        if self._pump.received(conn):
            self._transport.pause_reading()  # closed: what else comes is not read

    def eof_received(self) -> bool:
        self._end_of_data()
        return True  # the transport stays open until the close frame is written

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_of_data()
        for timer in (self._stall, self._hangup):
            if timer is not None:
                timer.cancel()
        self._pump.ended(self.conn)

    def _end_of_data(self) -> None:
        """Tell the core the peer is gone (once: EOF and a lost connection may both come)."""
        if not self._eof:
            self._eof = True
            self.conn.receive_data(b"")
            self._pump.received(self.conn)

    def pause_writing(self) -> None:
        self._paused = True
        if self._write_timeout < math.inf:
            self._stall = self._flusher.loop.call_later(self._write_timeout, self.abort)

    def resume_writing(self) -> None:
        self._paused = False
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        self.write_out()

    # --- what the pump calls ---------------------------------------------------------------

    def wake(self) -> None:
        self._flusher.add(self)

    def abort(self) -> None:
        self._transport.abort()

    def write_out(self) -> None:
        """Move the core's output into the transport; hang up once the connection is closed.

        While the transport is paused the output stays in the core, where its outbound bound
        applies (a slow consumer is closed there, not buffered here)."""
        conn, transport = self.conn, self._transport
        closed = conn.state is State.CLOSED
        if (self._paused and not closed) or transport.is_closing():
            return
        data = conn.data_to_send()
        if data:
            transport.write(data)
        self._pump.wrote(conn)
        if closed:
            transport.close()  # after the buffered bytes are written
            self._hangup = self._flusher.loop.call_later(CLOSE_GRACE, transport.abort)


class ProtocolNetwork:
    """TCP through asyncio Protocols (a ``Network``): what ``roomwire_asyncio`` uses."""

    async def dial(self, host: str, port: int, pump: Pump[Any], tg: anyio.abc.TaskGroup) -> None:
        loop = asyncio.get_running_loop()
        flusher = TurnFlusher(loop)
        await loop.create_connection(lambda: ProtocolTransport(pump, flusher, math.inf), host, port)

    async def listen(
        self, host: str, port: int, pump: Pump[Any], write_timeout: float
    ) -> TcpListener:
        loop = asyncio.get_running_loop()
        flusher = TurnFlusher(loop)

        def protocol() -> ProtocolTransport[Any]:
            return ProtocolTransport(pump, flusher, write_timeout)

        async def accept_one(listener: anyio.abc.SocketListener, tg: anyio.abc.TaskGroup) -> None:
            # Our own accept (not loop.create_server's): running out of descriptors backs off
            # with one log line, on uvloop too (which would accept and drop peers silently).
            raw, _ = await loop.sock_accept(listener.extra(anyio.abc.SocketAttribute.raw_socket))
            try:
                # asyncio sets TCP_NODELAY only on sockets made with proto IPPROTO_TCP.
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await loop.connect_accepted_socket(protocol, raw)
            except OSError:
                raw.close()
                raise

        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        return TcpListener(listener, accept_one)
