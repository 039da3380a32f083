"""The server driver: a TCP listener, the links that carry each connection (an asyncio
Protocol, or anyio streams elsewhere), one timer. Every protocol decision stays in
``roomwire.RoomServer``."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.abc
import attrs

from roomwire import (
    NEED_DATA,
    RemoteProtocolError,
    RoomServer,
    ServerConfig,
    ServerConnection,
)
from roomwire.events import ConnectionClosed, Event, ParticipantJoined, RequestRefused

from ._protocol_link import ProtocolLink, TurnFlusher
from ._stream_link import CLOSE_GRACE, serve_stream
from ._url import format_url

if TYPE_CHECKING:
    from ._redis import RedisBackplane

log = logging.getLogger("roomwire.server")


class Link(Protocol):
    """How the server drives one connection's transport, whichever runtime serves it."""

    def wake(self) -> None:
        """The core has output for this connection (or closed it): write it soon."""

    def abort(self) -> None:
        """Drop the transport now (its close frame did not get out in time)."""


class Server:
    """A running room server: ``url``, the core ``RoomServer`` as ``core``, and ``aclose``."""

    def __init__(self, core: RoomServer, host: str) -> None:
        self.core = core
        self.host = host
        self.port = 0
        self.url = ""
        config = core.config
        self.write_timeout = config.heartbeat_interval + config.heartbeat_timeout
        """Seconds a peer may take nothing we write before it is dropped."""
        self._links: dict[object, Link] = {}
        self._ids = itertools.count(1)
        self._rearm = anyio.Event()
        self._armed_for = float("inf")
        self._closing = False
        self._idle = anyio.Event()
        self._backplane: RedisBackplane | None = None

    def _bound(self, port: int) -> None:
        self.port = port
        self.url = format_url(self.host, port)

    @property
    def connection_count(self) -> int:
        return len(self._links)

    @property
    def backplane_healthy(self) -> bool | None:
        """With ``serve(redis=...)``: True while the backplane's liveness probe comes back;
        None for a single-node server."""
        return None if self._backplane is None else self._backplane.healthy

    # --- what the links call ---------------------------------------------------------------

    def accept(self, link: Link, peer: str) -> ServerConnection:
        """A new transport: the core's connection for it."""
        cid = next(self._ids)
        conn = self.core.accept(cid, time.time())
        self._links[cid] = link
        log.info("connection %s from %s", cid, peer)
        self._flush()  # arms the handshake deadline
        return conn

    def feed(self, conn: ServerConnection, data: bytes) -> bool:
        """Bytes from a transport (``b""`` at EOF): process every complete frame, then wake
        the connections with output. True once the connection is closed."""
        conn.receive_data(data)
        closed = self._drain(conn)
        self._flush()
        return closed

    def forget(self, conn: ServerConnection) -> None:
        """The transport is gone."""
        del self._links[conn.connection_id]
        if not self._links:
            self._idle.set()

    # --- the core's side -------------------------------------------------------------------

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
        """Wake every connection with output: each writes once per loop turn."""
        for conn in self.core.connections_with_output():
            link = self._links.get(conn.connection_id)
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
        if self._closing:
            return
        self._closing = True
        self.core.close()
        self._flush()
        if self._backplane is not None:
            # The other nodes hear the departures now rather than at the TTL.
            await self._backplane.drain(CLOSE_GRACE)
        with anyio.move_on_after(CLOSE_GRACE * 2):
            while self._links:
                self._idle = anyio.Event()
                await self._idle.wait()
        for link in list(self._links.values()):
            link.abort()


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
    server = Server(RoomServer(config), host)
    listening = _Listening(server)
    await listening.bind(host, port)
    log.info("serving on %s", server.url)
    body_error: Exception | None = None
    async with anyio.create_task_group() as tg:
        await listening.start(tg)
        tg.start_soon(server._timer)
        if redis is not None:
            await _start_backplane(server, tg, redis, probe_interval)
        try:
            yield server
        except Exception as exc:
            body_error = exc  # re-raised below, so it is not wrapped in an ExceptionGroup
        finally:
            listening.stop()
            with anyio.CancelScope(shield=True):
                await server.aclose()
            tg.cancel_scope.cancel()
    if body_error is not None:
        raise body_error


class _Listening:
    """The bound listening socket(s); ``start`` accepts connections, ``stop`` stops that.

    On asyncio each connection is a Protocol written once per loop turn (no task per
    connection: the fast path). Elsewhere it is an anyio stream with a reader and a writer."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._protocols: asyncio.Server | None = None
        self._streams: anyio.abc.Listener[anyio.abc.SocketStream] | None = None
        self._scope = anyio.CancelScope()

    async def bind(self, host: str, port: int) -> None:
        server = self._server
        if _on_asyncio():
            flusher = TurnFlusher(asyncio.get_running_loop())
            self._protocols = await asyncio.get_running_loop().create_server(
                lambda: ProtocolLink(server, flusher), host, port, start_serving=False
            )
            server._bound(self._protocols.sockets[0].getsockname()[1])
        else:
            self._streams = streams = await anyio.create_tcp_listener(
                local_host=host, local_port=port
            )
            server._bound(streams.extra(anyio.abc.SocketAttribute.local_port))

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        if self._protocols is not None:
            await self._protocols.start_serving()
        else:
            tg.start_soon(self._accept_streams, tg)

    async def _accept_streams(self, tg: anyio.abc.TaskGroup) -> None:
        assert self._streams is not None
        with self._scope:
            async with self._streams:
                await self._streams.serve(partial(serve_stream, self._server), tg)

    def stop(self) -> None:
        if self._protocols is not None:
            self._protocols.close()
        self._scope.cancel()


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _backplane_config(config: ServerConfig) -> ServerConfig:
    if not _on_asyncio():
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
