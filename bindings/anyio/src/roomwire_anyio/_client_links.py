"""What carries a client's connection: an asyncio Protocol on asyncio (no reader or writer
task: bytes are applied as they arrive and written once per loop turn), anyio streams with a
reader and a writer task elsewhere. ``RoomClient`` drives either through the same methods."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import anyio
import anyio.abc

from roomwire import ClientConnection, State
from roomwire.events import ConnectionClosed

from ._errors import RoomError
from ._stream_link import CLOSE_GRACE, READ_SIZE

Drain = Callable[[], ConnectionClosed | None]
"""Applies every buffered frame; returns the close event once the connection ends."""


class Waiter:
    """A one-shot result slot a sender awaits (anyio has no future)."""

    __slots__ = ("_done", "error", "value")

    def __init__(self) -> None:
        self._done = anyio.Event()
        self.value: str | None = None
        self.error: RoomError | None = None

    def resolve(self, value: str | None = None, error: RoomError | None = None) -> None:
        self.value, self.error = value, error
        self._done.set()

    async def wait(self) -> str | None:
        await self._done.wait()
        if self.error is not None:
            raise self.error
        return self.value


class ClientLink:
    """What both kinds of link hold: the core connection, the requests waiting for an
    answer, and the events the client waits on."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.waiters: dict[int, Waiter | None] = {}
        self.reenable: Waiter | None = None
        """The re-enable queued on a reconnect's new connection, before the link is used."""
        self.close_sent = anyio.Event()
        self.closed = anyio.Event()
        self._drained: anyio.Event | None = None

    async def wait_drained(self) -> None:
        """Until the next write (backpressure: a sender waits while too much is queued)."""
        if self._drained is None:
            self._drained = anyio.Event()
        await self._drained.wait()

    def _wrote(self) -> None:
        if self.conn.state in (State.CLOSING, State.CLOSED):
            self.close_sent.set()
        if self._drained is not None:
            self._drained.set()
            self._drained = None

    def _ended(self) -> None:
        self.closed.set()
        self.close_sent.set()
        if self._drained is not None:
            self._drained.set()  # senders held back by backpressure must see the close
            self._drained = None


class StreamLink(ClientLink):
    """anyio streams: a reader loop and a writer task that writes everything queued since
    its last wake-up at once."""

    def __init__(self, stream: anyio.abc.ByteStream, conn: ClientConnection) -> None:
        super().__init__(conn)
        self.stream = stream
        self._wake = anyio.Event()
        # The writer outlives a cancellation of the client's scope, so that the close frame
        # still goes out; the driver ends it explicitly (``abort()``).
        self._scope = anyio.CancelScope(shield=True)

    async def send_now(self) -> None:
        await self.stream.send(self.conn.data_to_send())

    async def receive_more(self) -> None:
        self.conn.receive_data(await _receive(self.stream))

    def start(self, tg: anyio.abc.TaskGroup) -> None:
        tg.start_soon(self._writer)

    def wake(self) -> None:
        self._wake.set()

    def abort(self) -> None:
        self._scope.cancel()

    async def hang_up(self) -> None:
        await self.stream.aclose()

    async def read_until_closed(self, drain: Drain) -> ConnectionClosed:
        while True:
            closed = drain()
            if closed is not None:
                return closed
            try:
                await self.receive_more()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                self.conn.receive_data(b"")

    async def _writer(self) -> None:
        with self._scope:
            try:
                while True:
                    await self._wake.wait()
                    self._wake = anyio.Event()
                    data = self.conn.data_to_send()
                    if data:
                        await self.stream.send(data)
                    self._wrote()
                    if self.conn.state is State.CLOSED:
                        break
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass
            finally:
                # Closing the stream also wakes the reader, which then reads EOF.
                with anyio.CancelScope(shield=True):
                    await self.stream.aclose()
                self._ended()


async def _receive(stream: anyio.abc.ByteStream) -> bytes:
    try:
        return await stream.receive(READ_SIZE)
    except anyio.EndOfStream:
        return b""


class ProtocolLink(ClientLink, asyncio.Protocol):
    """An asyncio transport: frames are applied in ``data_received`` (no reader task) and the
    output is written once per loop turn (``call_soon``, no writer task)."""

    _transport: asyncio.Transport  # set by connection_made, the transport's first callback

    def __init__(self, conn: ClientConnection) -> None:
        super().__init__(conn)
        self._loop = asyncio.get_running_loop()
        self._drain: Drain | None = None
        self._arrived: asyncio.Future[ConnectionClosed | None] | None = None
        """What ``receive_more`` or ``read_until_closed`` waits on."""
        self._eof = self._paused = self._scheduled = False
        self._hangup: asyncio.TimerHandle | None = None

    # --- transport callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self._arrive()

    def eof_received(self) -> bool:
        self._end_of_data()
        return True  # the transport stays open until the close frame is written

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_of_data()
        if self._hangup is not None:
            self._hangup.cancel()
        self._ended()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._write_out()

    def _end_of_data(self) -> None:
        if not self._eof:
            self._eof = True
            self.conn.receive_data(b"")
            self._arrive()

    def _arrive(self) -> None:
        """Apply what arrived (once running), and wake whoever waits for it."""
        closed = None if self._drain is None else self._drain()
        arrived = self._arrived
        if arrived is not None and not arrived.done() and (self._drain is None or closed):
            arrived.set_result(closed)

    # --- what the client calls --------------------------------------------------------------

    async def send_now(self) -> None:
        self._transport.write(self.conn.data_to_send())

    async def receive_more(self) -> None:
        if not self._eof:
            self._arrived = self._loop.create_future()
            await self._arrived

    def start(self, tg: anyio.abc.TaskGroup) -> None:
        pass  # nothing runs in a task: the transport's callbacks do the work

    def wake(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._write_out)

    def abort(self) -> None:
        self._transport.abort()

    async def hang_up(self) -> None:
        self._transport.abort()

    async def read_until_closed(self, drain: Drain) -> ConnectionClosed:
        closed = drain()
        if closed is None:
            self._drain = drain
            self._arrived = self._loop.create_future()
            try:
                closed = await self._arrived
            finally:
                self._drain = None  # what comes after the end is not applied
            assert closed is not None
        return closed

    def _write_out(self) -> None:
        self._scheduled = False
        conn, transport = self.conn, self._transport
        if transport.is_closing() or (self._paused and conn.state is not State.CLOSED):
            return  # paused: the output waits in the core, where senders see its size
        data = conn.data_to_send()
        if data:
            transport.write(data)
        self._wrote()
        if conn.state is State.CLOSED:
            transport.close()  # after the buffered bytes are written
            self._hangup = self._loop.call_later(CLOSE_GRACE, transport.abort)


Link = StreamLink | ProtocolLink


async def dial(host: str, port: int, conn: ClientConnection) -> StreamLink | ProtocolLink:
    """Open a TCP connection for ``conn``: a Protocol on asyncio, anyio streams elsewhere.
    Raises OSError when the server cannot be reached."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return StreamLink(await anyio.connect_tcp(host, port), conn)
    _, link = await loop.create_connection(lambda: ProtocolLink(conn), host, port)
    return link
