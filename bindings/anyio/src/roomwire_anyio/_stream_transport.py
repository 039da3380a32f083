"""Transports over anyio byte streams (any runtime; ``roomwire_trio`` uses them): a reader
that feeds the connection and a writer task that writes everything queued since its last
wake-up at once."""

from __future__ import annotations

import math
from typing import Any, Generic

import anyio
import anyio.abc

from roomwire import State

from ._accept import TcpListener
from .transport import CLOSE_GRACE, READ_SIZE, C, Pump

_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class StreamTransport(Generic[C]):
    """One byte stream carrying one connection (see ``run``)."""

    def __init__(
        self, stream: anyio.abc.ByteStream, pump: Pump[C], write_timeout: float = math.inf
    ) -> None:
        self._stream = stream
        self._pump = pump
        self._write_timeout = write_timeout
        self._wake = anyio.Event()
        self._send_scope: anyio.CancelScope | None = None
        self._written = anyio.Event()
        # The writer outlives a cancellation of its caller, so that the close frame still
        # goes out; ``abort()`` ends it.
        self._scope = anyio.CancelScope(shield=True)
        self.conn = pump.attach(self, _peer(stream))

    def wake(self) -> None:
        self._wake.set()
        scope = self._send_scope
        if scope is not None and self.conn.state is State.CLOSED:
            # Closed while a write is stuck (a slow consumer): give that write a short grace.
            scope.deadline = min(scope.deadline, anyio.current_time() + CLOSE_GRACE)

    def abort(self) -> None:
        self._scope.cancel()

    async def run(self) -> None:
        """Carry the connection until it is closed and its last write is out (or dropped)."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._writer)
                await self._read_until_closed()
                with anyio.move_on_after(CLOSE_GRACE * 2):
                    await self._written.wait()
                self.abort()
                tg.cancel_scope.cancel()
        finally:
            self._pump.ended(self.conn)

    async def _read_until_closed(self) -> None:
        conn, pump, stream = self.conn, self._pump, self._stream
        while True:
            try:
                data = await stream.receive(READ_SIZE)
            except (anyio.EndOfStream, *_GONE):
                data = b""
            conn.receive_data(data)
            if pump.received(conn) or not data:
                return

    async def _writer(self) -> None:
        with self._scope:
            try:
                await self._write_until_closed()
            except _GONE:
                pass
            finally:
                # Closing the stream also wakes the reader, which then reads EOF.
                with anyio.CancelScope(shield=True):
                    await self._stream.aclose()
                self._written.set()

    async def _write_until_closed(self) -> None:
        conn = self.conn
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            data = conn.data_to_send()
            closing = conn.state is State.CLOSED
            if data:
                limit = CLOSE_GRACE if closing else self._write_timeout
                with anyio.CancelScope(deadline=anyio.current_time() + limit) as scope:
                    self._send_scope = scope
                    await self._stream.send(data)
                self._send_scope = None
                if scope.cancelled_caught:
                    return  # a peer that takes nothing for this long is gone
            self._pump.wrote(conn)
            if closing:
                return


class StreamNetwork:
    """TCP through anyio streams (a ``Network``)."""

    async def dial(self, host: str, port: int, pump: Pump[Any], tg: anyio.abc.TaskGroup) -> None:
        transport = StreamTransport(await anyio.connect_tcp(host, port), pump)
        tg.start_soon(transport.run)

    async def listen(
        self, host: str, port: int, pump: Pump[Any], write_timeout: float
    ) -> TcpListener:
        async def accept_one(socket: anyio.abc.SocketListener, tg: anyio.abc.TaskGroup) -> None:
            stream = await socket.accept()
            tg.start_soon(StreamTransport(stream, pump, write_timeout).run)

        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        return TcpListener(listener, accept_one)


def _peer(stream: anyio.abc.ByteStream) -> str:
    try:
        address = stream.extra(anyio.abc.SocketAttribute.remote_address)
    except anyio.TypedAttributeLookupError:
        return "unknown"
    if isinstance(address, str):  # a UNIX socket path
        return address
    return f"{address[0]}:{address[1]}"
