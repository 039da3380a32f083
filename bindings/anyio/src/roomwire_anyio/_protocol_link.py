"""A connection served as an asyncio Protocol (the asyncio path): no task and no event per
connection. The transport's callbacks feed the core; the output of every connection that
has some is written once per loop turn, straight into its transport."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from roomwire import ServerConnection, State

from ._stream_link import CLOSE_GRACE

if TYPE_CHECKING:
    from ._server import Server


class TurnFlusher:
    """Collects the links woken during a loop turn and writes them all at its end
    (``call_soon``): many reads in one turn still give one write per connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: dict[ProtocolLink, None] = {}
        self._scheduled = False

    def add(self, link: ProtocolLink) -> None:
        self._pending[link] = None
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for link in pending:
            link.write_out()


class ProtocolLink(asyncio.Protocol):
    """One accepted transport and the core's connection for it."""

    __slots__ = (
        "_eof",
        "_flusher",
        "_hangup",
        "_paused",
        "_server",
        "_stall",
        "_transport",
        "conn",
    )

    # Set by connection_made, the first callback a transport makes.
    _transport: asyncio.Transport
    conn: ServerConnection

    def __init__(self, server: Server, flusher: TurnFlusher) -> None:
        self._server = server
        self._flusher = flusher
        self._paused = self._eof = False
        self._stall: asyncio.TimerHandle | None = None
        """While the transport's buffer is full: drops a peer that takes nothing for as long
        as a heartbeat timeout."""
        self._hangup: asyncio.TimerHandle | None = None
        """Once closed: drops the socket if the last bytes are not out within a grace."""

    # --- transport callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        shown = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.conn = self._server.accept(self, shown)

    def data_received(self, data: bytes) -> None:
        if self._server.feed(self.conn, data):
            self._transport.pause_reading()  # closed: what else comes is not read

    def eof_received(self) -> bool:
        self._end()
        return True  # the transport stays open until the close frame is written

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()
        for timer in (self._stall, self._hangup):
            if timer is not None:
                timer.cancel()
        self._server.forget(self.conn)

    def _end(self) -> None:
        """Tell the core the peer is gone (once: EOF and a lost connection may both come)."""
        if not self._eof:
            self._eof = True
            self._server.feed(self.conn, b"")

    def pause_writing(self) -> None:
        self._paused = True
        loop = self._flusher._loop
        self._stall = loop.call_later(self._server.write_timeout, self.abort)

    def resume_writing(self) -> None:
        self._paused = False
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        self.write_out()

    # --- what the server calls -------------------------------------------------------------

    def wake(self) -> None:
        self._flusher.add(self)

    def abort(self) -> None:
        self._transport.abort()

    def write_out(self) -> None:
        """Move the core's output into the transport; hang up once the connection is closed.

        While the transport is paused the output stays in the core, where the server's
        outbound bound applies (a slow consumer is closed there, not buffered here)."""
        conn, transport = self.conn, self._transport
        closed = conn.state is State.CLOSED
        if (self._paused and not closed) or transport.is_closing():
            return
        data = conn.data_to_send()
        if data:
            transport.write(data)
        if closed:
            transport.close()  # after the buffered bytes are written
            self._hangup = self._flusher._loop.call_later(CLOSE_GRACE, transport.abort)
