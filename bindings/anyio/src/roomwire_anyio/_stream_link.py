"""A connection served through anyio streams (the trio path): one reader, one writer task."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import anyio.abc

from roomwire import ServerConnection, State

if TYPE_CHECKING:
    from ._server import Server

READ_SIZE = 65536
CLOSE_GRACE = 1.0
"""Seconds a closed connection's last write may take before the socket is dropped."""


class StreamLink:
    """One accepted stream and the core's connection for it."""

    def __init__(self, stream: anyio.abc.ByteStream, timeout: float):
        self.stream = stream
        self.conn: ServerConnection | None = None
        self._timeout = timeout
        self._wake = anyio.Event()
        self._send_scope: anyio.CancelScope | None = None
        self.done = anyio.Event()
        # The writer outlives a cancellation of ``serve()``, so that GOING_AWAY still goes
        # out; the server ends it explicitly (``abort()``) after a grace period.
        self.scope = anyio.CancelScope(shield=True)

    def wake(self) -> None:
        self._wake.set()
        scope = self._send_scope
        if scope is not None and self._connection.state is State.CLOSED:
            # Closed while a write is stuck (a slow consumer): give that write a short grace.
            scope.deadline = min(scope.deadline, anyio.current_time() + CLOSE_GRACE)

    def abort(self) -> None:
        self.scope.cancel()

    @property
    def _connection(self) -> ServerConnection:
        assert self.conn is not None
        return self.conn

    async def writer(self) -> None:
        """Write everything queued since the last wake-up at once (per-turn coalescing)."""
        with self.scope:
            try:
                await self._write_until_closed()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass
            finally:
                with anyio.CancelScope(shield=True):
                    await self.stream.aclose()
                self.done.set()

    async def _write_until_closed(self) -> None:
        conn = self._connection
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            data = conn.data_to_send()
            closing = conn.state is State.CLOSED
            if data:
                limit = CLOSE_GRACE if closing else self._timeout
                with anyio.CancelScope(deadline=anyio.current_time() + limit) as scope:
                    self._send_scope = scope
                    await self.stream.send(data)
                self._send_scope = None
                if scope.cancelled_caught:
                    return  # a peer that takes nothing for this long is gone
            if closing:
                return


async def serve_stream(server: Server, stream: anyio.abc.SocketStream) -> None:
    """Serve one accepted stream until its connection is closed and its last write is out."""
    link = StreamLink(stream, server.write_timeout)
    conn = link.conn = server.accept(link, _peer(stream))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(link.writer)
            while True:
                try:
                    data = await stream.receive(READ_SIZE)
                except (
                    anyio.EndOfStream,
                    anyio.BrokenResourceError,
                    anyio.ClosedResourceError,
                    OSError,
                ):
                    data = b""
                if server.feed(conn, data):
                    break
            with anyio.move_on_after(CLOSE_GRACE * 2):
                await link.done.wait()
            link.abort()
            tg.cancel_scope.cancel()
    finally:
        server.forget(conn)


def _peer(stream: anyio.abc.SocketStream) -> str:
    try:
        address = stream.extra(anyio.abc.SocketAttribute.remote_address)
    except anyio.TypedAttributeLookupError:
        return "unknown"
    if isinstance(address, str):  # a UNIX socket path
        return address
    return f"{address[0]}:{address[1]}"
