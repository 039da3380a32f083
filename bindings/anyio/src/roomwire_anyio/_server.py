"""The server driver: a TCP listener, one reader and one writer per connection, one timer.
Every protocol decision stays in ``roomwire.RoomServer``."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import attrs

from roomwire import (
    NEED_DATA,
    RemoteProtocolError,
    RoomServer,
    ServerConfig,
    ServerConnection,
    State,
)
from roomwire.events import ConnectionClosed, Event, ParticipantJoined, RequestRefused

from ._url import format_url

if TYPE_CHECKING:
    from ._redis import RedisBackplane

log = logging.getLogger("roomwire.server")

READ_SIZE = 65536
CLOSE_GRACE = 1.0
"""Seconds a closed connection's last write may take before the socket is dropped."""


class _Link:
    """One accepted socket and the core's connection for it."""

    def __init__(self, stream: anyio.abc.ByteStream, conn: ServerConnection, timeout: float):
        self.stream = stream
        self.conn = conn
        self._timeout = timeout
        self._wake = anyio.Event()
        self._send_scope: anyio.CancelScope | None = None
        self.done = anyio.Event()
        # The writer outlives a cancellation of ``serve()``, so that GOING_AWAY still goes
        # out; the server ends it explicitly (``scope.cancel()``) after a grace period.
        self.scope = anyio.CancelScope(shield=True)

    def wake(self) -> None:
        self._wake.set()
        scope = self._send_scope
        if scope is not None and self.conn.state is State.CLOSED:
            # Closed while a write is stuck (a slow consumer): give that write a short grace.
            scope.deadline = min(scope.deadline, anyio.current_time() + CLOSE_GRACE)

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
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            data = self.conn.data_to_send()
            closing = self.conn.state is State.CLOSED
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


class Server:
    """A running room server: ``url``, the core ``RoomServer`` as ``core``, and ``aclose``."""

    def __init__(self, core: RoomServer, host: str, port: int) -> None:
        self.core = core
        self.host, self.port = host, port
        self.url = format_url(host, port)
        self._links: dict[int, _Link] = {}
        self._ids = itertools.count(1)
        self._rearm = anyio.Event()
        self._armed_for = float("inf")
        self._closed = anyio.Event()
        self._backplane: RedisBackplane | None = None

    @property
    def connection_count(self) -> int:
        return len(self._links)

    @property
    def backplane_healthy(self) -> bool | None:
        """With ``serve(redis=...)``: True while the backplane's liveness probe comes back;
        None for a single-node server."""
        return None if self._backplane is None else self._backplane.healthy

    async def _serve_connection(self, stream: anyio.abc.SocketStream) -> None:
        cid = next(self._ids)
        peer = _peer(stream)
        conn = self.core.accept(cid, time.time())
        config = self.core.config
        link = _Link(stream, conn, config.heartbeat_interval + config.heartbeat_timeout)
        self._links[cid] = link
        log.info("connection %s from %s", cid, peer)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(link.writer)
                self._flush()
                await self._read(link)
                with anyio.move_on_after(CLOSE_GRACE * 2):
                    await link.done.wait()
                link.scope.cancel()
                tg.cancel_scope.cancel()
        finally:
            del self._links[cid]

    async def _read(self, link: _Link) -> None:
        conn = link.conn
        while True:
            try:
                data = await link.stream.receive(READ_SIZE)
            except (
                anyio.EndOfStream,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                OSError,
            ):
                data = b""
            conn.receive_data(data)
            closed = self._drain(conn)
            self._flush()
            if closed:
                return

    def _drain(self, conn: ServerConnection) -> bool:
        """Process every complete frame; True once the connection is closed."""
        now = time.time()
        try:
            while (event := conn.next_event(now)) is not NEED_DATA:
                _log_event(conn, event)
                if isinstance(event, ConnectionClosed):
                    return True
        except RemoteProtocolError as exc:
            log.warning(
                "connection %s: closed for %s: %s", conn.connection_id, exc.code.name, exc.reason
            )
            return True
        return False

    def _flush(self) -> None:
        """Wake the writer of every connection with output: one write each per loop turn."""
        for conn in self.core.connections_with_output():
            link = self._links.get(conn.connection_id)  # type: ignore[call-overload]
            if link is not None:
                link.wake()
        deadline = self.core.next_deadline()
        if deadline is not None and deadline < self._armed_for:
            self._rearm.set()
        if self._backplane is not None:
            self._backplane.wake()

    async def _timer(self) -> None:
        while True:
            self._rearm = anyio.Event()
            deadline = self.core.next_deadline()
            self._armed_for = float("inf") if deadline is None else deadline
            delay = None if deadline is None else max(deadline - time.time(), 0.0)
            with anyio.move_on_after(delay):
                await self._rearm.wait()
            self.core.handle_timer(time.time())
            self._flush()

    async def aclose(self) -> None:
        """Close every connection with GOING_AWAY, let the close frames out, stop."""
        if self._closed.is_set():
            return
        self._closed.set()
        self.core.close()
        self._flush()
        if self._backplane is not None:
            # The other nodes hear the departures now rather than at the TTL.
            await self._backplane.drain(CLOSE_GRACE)
        links = list(self._links.values())
        with anyio.move_on_after(CLOSE_GRACE * 2):
            for link in links:
                await link.done.wait()
        for link in links:
            link.scope.cancel()


def _peer(stream: anyio.abc.SocketStream) -> str:
    try:
        address = stream.extra(anyio.abc.SocketAttribute.remote_address)
    except anyio.TypedAttributeLookupError:
        return "unknown"
    if isinstance(address, str):  # a UNIX socket path
        return address
    return f"{address[0]}:{address[1]}"


def _log_event(conn: ServerConnection, event: Event) -> None:
    if isinstance(event, ParticipantJoined):
        log.info(
            "connection %s: %s (%s) joined room %s",
            conn.connection_id,
            event.participant.id,
            event.participant.role,
            event.room,
        )
    elif isinstance(event, ConnectionClosed):
        log.info("connection %s: closed (%s) %s", conn.connection_id, event.code.name, event.reason)
    elif isinstance(event, RequestRefused):
        log.info("connection %s: refused %s: %s", conn.connection_id, event.code.name, event.reason)


@asynccontextmanager
async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    secret: str | bytes | None = None,
    config: ServerConfig | None = None,
    redis: str | None = None,
    probe_interval: float = 1.0,
    **settings: Any,
) -> AsyncIterator[Server]:
    """Run a room server on ``host:port`` (port 0 picks a free one; see ``server.url``).

    Pass ``secret`` (and any ``ServerConfig`` field as a keyword), or a whole ``config``.
    Leaving the block closes every connection with GOING_AWAY.

    ``redis="redis://host:6379/0"`` makes this server one node of a cluster (asyncio only,
    needs ``roomwire-anyio[redis]``): rooms span every node on that Redis, ``node_id``
    (a ServerConfig field) names this node (a random id by default), and a liveness probe
    goes through Redis every ``probe_interval`` seconds (see ``server.backplane_healthy``).
    """
    if config is None:
        config = ServerConfig(secret=secret, **settings)
    elif secret is not None or settings:
        raise TypeError("pass either config or secret/settings, not both")
    if redis is not None:
        config = _backplane_config(config)
    elif config.node_id is not None:
        # The core would wait for its own messages to come back through a backplane.
        raise TypeError("node_id names a node of a cluster: pass redis=... too")
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    bound = listener.extra(anyio.abc.SocketAttribute.local_port)
    server = Server(RoomServer(config), host, bound)
    log.info("serving on %s", server.url)
    body_error: Exception | None = None
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server._serve_connection, tg)
        tg.start_soon(server._timer)
        if redis is not None:
            await _start_backplane(server, tg, redis, probe_interval)
        try:
            yield server
        except Exception as exc:
            body_error = exc  # re-raised below, so it is not wrapped in an ExceptionGroup
        finally:
            with anyio.CancelScope(shield=True):
                await server.aclose()
            tg.cancel_scope.cancel()
    if body_error is not None:
        raise body_error


def _backplane_config(config: ServerConfig) -> ServerConfig:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        running = False
    else:
        running = True
    if not running:
        raise RuntimeError(
            "serve(redis=...) needs asyncio: redis-py's client is asyncio-only"
            " (use roomwire_asyncio for a multi-node server)"
        )
    if config.node_id is None:
        node_id = f"{socket.gethostname()}-{secrets.token_hex(4)}"
        config = attrs.evolve(config, node_id=node_id)
    return config


async def _start_backplane(
    server: Server, tg: anyio.abc.TaskGroup, url: str, probe_interval: float
) -> None:
    try:
        from ._redis import RedisBackplane  # noqa: PLC0415 - redis-py is an optional extra
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise RuntimeError(
            "serve(redis=...) needs redis-py: pip install 'roomwire-anyio[redis]'"
        ) from exc
    backplane = server._backplane = RedisBackplane(server, url, probe_interval=probe_interval)
    tg.start_soon(backplane.run)
    log.info("node %s: backplane %s", server.core.config.node_id, url)
    if not await backplane.wait_healthy(max(5.0, probe_interval * 4)):
        log.error("backplane %s not reachable yet: serving alone, retrying", url)
