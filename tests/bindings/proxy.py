"""A loopback TCP proxy for the tests that cut connections: it forwards every connection to
a server, and ``sever()`` drops all the current ones at once, with no close frame on either
side (the server and the client each see the transport end: CONNECTION_LOST)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
from anyio.abc import SocketAttribute


class Proxy:
    def __init__(self, port: int, target: int) -> None:
        self.port = port
        """The proxy's port on 127.0.0.1: connect to it instead of the server."""
        self.target = target
        """The server's port: may change (a server restarted on another port)."""
        self._live: list[anyio.CancelScope] = []
        self.connections = 0
        """Connections forwarded so far."""
        self.paused = False
        """While True, a new connection is closed at once (the client tries again)."""

    def url(self, scheme: str = "tcp") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def sever(self) -> None:
        """Drop every forwarded connection now (both sockets closed, no bytes flushed)."""
        for scope in self._live:
            scope.cancel()
        self._live = []

    async def forward(self, client: anyio.abc.SocketStream) -> None:
        try:
            if self.paused:
                raise ConnectionRefusedError("paused")
            upstream = await anyio.connect_tcp("127.0.0.1", self.target)
        except OSError:  # paused, or no server there now: the client tries again
            await client.aclose()
            return
        async with client, upstream:
            self.connections += 1
            with anyio.CancelScope() as scope:
                self._live.append(scope)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_copy, client, upstream, scope)
                    tg.start_soon(_copy, upstream, client, scope)


async def _copy(
    source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream, scope: anyio.CancelScope
) -> None:
    try:
        async for data in source:
            await sink.send(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    scope.cancel()  # one side ended: end the other too


@asynccontextmanager
async def proxy(target: int) -> AsyncIterator[Proxy]:
    """A proxy to 127.0.0.1:``target`` for the block's duration."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener, anyio.create_task_group() as tg:
        forwarding = Proxy(listener.extra(SocketAttribute.local_port), target)
        tg.start_soon(listener.serve, forwarding.forward)
        try:
            yield forwarding
        finally:
            tg.cancel_scope.cancel()
