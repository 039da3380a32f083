"""The server driver: the runtime's listener, the ``ServerPump`` every transport reports to,
one timer. Every protocol decision stays in ``roomwire.RoomServer``."""

from __future__ import annotations

import itertools
import logging
import math
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from ssl import SSLContext
from typing import Any, Protocol

import anyio
import anyio.abc
import attrs

from roomwire import (
    NEED_DATA,
    Framing,
    RemoteProtocolError,
    RoomServer,
    ServerConfig,
    ServerConnection,
    State,
)
from roomwire.events import ConnectionClosed, Event, ParticipantJoined, RequestRefused

from ._history_store import HistoryPump, HistoryStoreFactory, open_store
from ._intercept import Interceptions
from ._layers import server_pump
from ._url import format_url, parse_endpoint, parse_url, redact_url
from .transport import CLOSE_GRACE, Listener, Network, Transport

log = logging.getLogger("roomwire.server")


class Backplane(Protocol):
    """What the server pump needs of a backplane driver (``roomwire_asyncio``'s Redis one)."""

    healthy: bool

    def wake(self) -> None:
        """The core may have records to publish."""

    async def run(self) -> None:
        """Carry records until cancelled."""

    async def wait_healthy(self, timeout: float) -> bool: ...

    async def drain(self, timeout: float) -> None:
        """Publish what the core still has, if connected (on close)."""


REFUSALS_QUIET = 10.0
"""Seconds without a refusal over a connection cap that end an episode of them."""

BackplaneFactory = Callable[["ServerPump", str, float], Backplane]
"""``(pump, url, probe_interval)`` -> a backplane driver."""


class ServerPump:
    """The server side's one pump (a ``Pump[ServerConnection]`` for every transport): each
    arrival is applied, then every connection with output is woken (each writes once per
    loop turn) and the timer re-armed."""

    def __init__(self, core: RoomServer) -> None:
        self.core = core
        config = core.config
        self.write_timeout = config.heartbeat_interval + config.heartbeat_timeout
        """Seconds a peer may take nothing we write before it is dropped."""
        self.backplane: Backplane | None = None
        self.history: HistoryPump | None = None
        """With ``serve(history=...)``: moves records to and from the store."""
        self._transports: dict[object, Transport] = {}
        self._ids = itertools.count(1)
        self._rearm = anyio.Event()
        self._armed_for = float("inf")
        self._idle = anyio.Event()
        self.route_time: Callable[[float], None] | None = None
        """With metrics: records how long applying one read took, in seconds."""
        self._refused_at = -math.inf
        """When a connection was last refused over a cap: one is logged only after a quiet
        ``REFUSALS_QUIET`` seconds (the core's stats count every one)."""
        self.interceptions: Interceptions | None = None
        """With an in-process interceptor: awaits it when it is async."""

    @property
    def connection_count(self) -> int:
        return len(self._transports)

    # --- what the transports call ----------------------------------------------------------

    def attach(
        self, transport: Transport, peer: str, framing: Framing = Framing.STREAM
    ) -> ServerConnection:
        cid = next(self._ids)
        conn = self.core.accept(cid, time.time(), framing, address=peer.rpartition(":")[0] or None)
        self._transports[cid] = transport
        if conn.state is State.CLOSED:  # over max_connections(_per_address)
            now = time.monotonic()
            if now - self._refused_at > REFUSALS_QUIET:
                log.warning(
                    "connection %s from %s refused at a connection cap (the next refusals"
                    " are not logged until %g s pass without one)",
                    cid,
                    peer,
                    REFUSALS_QUIET,
                )
            self._refused_at = now
        else:
            log.info("connection %s from %s", cid, peer)
        self.flush()  # arms the handshake deadline (or sends the refusal)
        return conn

    def received(self, conn: ServerConnection) -> bool:
        if self.route_time is None:
            closed = _drain(conn)
        else:
            start = time.perf_counter()
            closed = _drain(conn)
            self.route_time(time.perf_counter() - start)
        self.flush()
        return closed

    def wrote(self, conn: ServerConnection) -> None:
        pass  # the core bounds each connection's output: nothing to release here

    def ended(self, conn: ServerConnection) -> None:
        del self._transports[conn.connection_id]
        if not self._transports:
            self._idle.set()

    # --- the core's side -------------------------------------------------------------------

    def flush(self) -> None:
        """Wake every connection with output, re-arm the timer, wake the backplane."""
        transports = self._transports
        for conn in self.core.connections_with_output():
            transport = transports.get(conn.connection_id)
            if transport is not None:
                transport.wake()
        deadline = self.core.next_deadline()
        if deadline is not None and deadline < self._armed_for:
            self._rearm.set()
        if self.backplane is not None:
            self.backplane.wake()
        if self.history is not None:
            self.history.wake()
        if self.interceptions is not None:
            self.interceptions.collect()

    async def run_timer(self) -> None:
        while True:
            self._rearm = anyio.Event()
            deadline = self.core.next_deadline()
            self._armed_for = float("inf") if deadline is None else deadline
            delay = None if deadline is None else max(deadline - time.time(), 0.0)
            with anyio.move_on_after(delay):
                await self._rearm.wait()
            self.core.handle_timer(time.time())
            self.flush()

    async def close(self) -> None:
        """Close every connection with GOING_AWAY, let the close frames out, drop the rest."""
        self.core.close()
        self.flush()
        if self.backplane is not None:
            # The other nodes hear the departures now rather than at the TTL.
            await self.backplane.drain(CLOSE_GRACE)
        if self.history is not None:
            await self.history.aclose(CLOSE_GRACE)
        with anyio.move_on_after(CLOSE_GRACE * 2):
            while self._transports:
                self._idle = anyio.Event()
                await self._idle.wait()
        for transport in list(self._transports.values()):
            transport.abort()


def _drain(conn: ServerConnection) -> bool:
    """Process every complete frame; True once the connection is closed."""
    if conn.state is State.CLOSED:
        return True  # its close was logged when it happened: the core repeats it, we do not
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


class Server:
    """A running room server: ``urls`` (``url`` is the first), the core ``RoomServer`` as
    ``core``, and ``aclose``. ``host`` and ``port`` are those of the first listener."""

    def __init__(self, pump: ServerPump, urls: list[str]) -> None:
        self._pump = pump
        self.core = pump.core
        self.urls = urls
        self.url = urls[0]
        self.host, self.port = parse_url(self.url)
        self._backplane = pump.backplane
        self._closing = False
        self.metrics_url: str | None = None
        """With ``serve(metrics=...)``: where ``/metrics`` and ``/healthz`` are served."""

    @property
    def connection_count(self) -> int:
        return self._pump.connection_count

    @property
    def backplane_healthy(self) -> bool | None:
        """With ``serve(redis=...)``: True while the backplane's liveness probe comes back;
        None for a single-node server."""
        return None if self._backplane is None else self._backplane.healthy

    async def aclose(self) -> None:
        """Close every connection with GOING_AWAY, let the close frames out, stop."""
        if not self._closing:
            self._closing = True
            await self._pump.close()


@asynccontextmanager
async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    network: Network,
    backplane: BackplaneFactory | None = None,
    secret: str | bytes | None = None,
    config: ServerConfig | None = None,
    redis: str | None = None,
    probe_interval: float = 1.0,
    listen: Sequence[str] | None = None,
    ssl: SSLContext | None = None,
    allowed_origins: Iterable[str] | None = None,
    metrics: str | None = None,
    history: str | None = None,
    history_store: HistoryStoreFactory | None = None,
    **settings: Any,
) -> AsyncIterator[Server]:
    """Run a room server on ``host:port`` (port 0 picks a free one; see ``server.url``) over
    ``network`` (the runtime packages pass theirs, and ``backplane`` where they have one).

    ``listen`` replaces ``host``/``port`` with one listener per URL: ``tcp://``, ``tls://``,
    ``ws://host:port/path`` and ``wss://`` (see ``server.urls``, ports resolved). ``tls://``
    and ``wss://`` need ``ssl``, a server ``SSLContext`` holding the certificate. A WebSocket
    listener accepts any path when its URL's path is ``/``, else only that one, and no
    subprotocol; ``allowed_origins`` (none: any origin, the token is the gate) refuses an
    upgrade from another ``Origin`` with HTTP 403.

    Pass ``secret`` (and any ``ServerConfig`` field as a keyword), or a whole ``config``.
    Leaving the block closes every connection with GOING_AWAY.

    ``redis="redis://host:6379/0"`` makes this server one node of a cluster (asyncio only,
    needs ``roomwire-asyncio[redis]``): rooms span every node on that Redis, ``node_id``
    (a ServerConfig field) names this node (a random id by default), and a liveness probe
    goes through Redis every ``probe_interval`` seconds (see ``server.backplane_healthy``).

    ``metrics="http://127.0.0.1:9464"`` serves Prometheus metrics at ``/metrics`` and a health
    check at ``/healthz`` there (port 0 picks a free one: ``server.metrics_url``); needs
    ``prometheus-client`` (``roomwire-asyncio[metrics]``).

    ``history`` says where room history lives: ``"memory://"`` (the default, on this node),
    ``"sqlite:///relative.db"`` or ``"sqlite:////absolute/path.db"`` (survives a restart;
    ``HistoryStoreError`` at start for a file that is not a usable SQLite database), or
    ``"redis://..."`` (Redis Streams, shared by every node; asyncio only, the default with
    ``redis=``). With a store, a sender's ack waits until its message is stored.
    """
    if config is None:
        config = ServerConfig(secret=secret, **settings)
    elif secret is not None or settings:
        raise TypeError("pass either config or secret/settings, not both")
    if redis is not None:
        if backplane is None:
            raise RuntimeError(
                "serve(redis=...) needs asyncio: redis-py's client is asyncio-only"
                " (use roomwire_asyncio for a multi-node server)"
            )
        config = _node_config(config)
    elif config.node_id is not None:
        # The core would wait for its own messages to come back through a backplane.
        raise TypeError("node_id names a node of a cluster: pass redis=... too")
    if history is None and history_store is not None:
        history = redis  # with a cluster, history is in Redis unless said otherwise
    if history == "memory://":
        history = None
    if history is not None:
        shared = not history.startswith("sqlite:")
        config = attrs.evolve(config, external_history=True, shared_history=shared)
    pump = ServerPump(RoomServer(config))
    if config.interceptor is not None:
        pump.interceptions = Interceptions(pump.core, pump.flush)
    if redis is not None and backplane is not None:
        pump.backplane = backplane(pump, redis, probe_interval)
    if history is not None:
        pump.history = await open_store(pump, history, history_store)
    origins = frozenset(allowed_origins or ()) or None
    endpoints = [parse_endpoint(url) for url in listen or [format_url(host, port)]]
    # Every URL is checked before anything is bound.
    size = config.max_frame_size
    # Nothing is authenticated before the hello: its message has the core's smaller bound.
    hello = min(config.max_hello_size, size)
    pumps = [
        server_pump(
            pump,
            e,
            ssl_context=ssl,
            max_message_size=size,
            allowed_origins=origins,
            first_message_size=hello,
        )
        for e in endpoints
    ]
    metrics_endpoint = None
    if metrics is not None:
        from ._metrics import Endpoint  # noqa: PLC0415 - needs prometheus-client, an extra

        metrics_endpoint = await Endpoint.bind(metrics)
    listeners: list[Listener] = []
    try:
        for endpoint, layered in zip(endpoints, pumps, strict=True):
            listeners.append(
                await network.listen(endpoint.host, endpoint.port, layered, pump.write_timeout)
            )
    except BaseException:
        for listener in listeners:
            listener.stop()
        if pump.history is not None:
            await pump.history.aclose(0.0)
        if metrics_endpoint is not None:
            await metrics_endpoint.listener.aclose()
        raise
    urls = [e.url(listener.port) for e, listener in zip(endpoints, listeners, strict=True)]
    server = Server(pump, urls)
    log.info("serving on %s", " ".join(urls))
    body_error: Exception | None = None
    async with anyio.create_task_group() as tg:
        for listener in listeners:
            await listener.start(tg)
        if metrics_endpoint is not None:
            tg.start_soon(metrics_endpoint.attach(server, pump))
        tg.start_soon(pump.run_timer)
        if pump.history is not None:
            tg.start_soon(pump.history.run)
        if pump.interceptions is not None:
            tg.start_soon(pump.interceptions.run)
        if pump.backplane is not None and redis is not None:
            tg.start_soon(pump.backplane.run)
            log.info("node %s: backplane %s", config.node_id, redact_url(redis))
            if not await pump.backplane.wait_healthy(max(5.0, probe_interval * 4)):
                log.error(
                    "backplane %s not reachable yet: serving alone, retrying", redact_url(redis)
                )
        try:
            yield server
        except Exception as exc:
            body_error = exc  # re-raised below, so it is not wrapped in an ExceptionGroup
        finally:
            for listener in listeners:
                listener.stop()
            with anyio.CancelScope(shield=True):
                await server.aclose()
            tg.cancel_scope.cancel()
    if body_error is not None:
        raise body_error


def _node_config(config: ServerConfig) -> ServerConfig:
    if config.node_id is None:
        node_id = f"{socket.gethostname()}-{secrets.token_hex(4)}"
        config = attrs.evolve(config, node_id=node_id)
    return config
