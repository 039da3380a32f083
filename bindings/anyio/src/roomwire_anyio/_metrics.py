"""Prometheus metrics for a running server (``serve(metrics="http://127.0.0.1:9464")``).

The core counts (``RoomServer.stats``, plain ints); this module turns those counts into
Prometheus metrics when scraped, so nothing is counted twice and the hot path pays nothing
for metrics. The route-time histogram is the one thing measured here: the pump times each
batch of input it applies. ``/metrics`` and ``/healthz`` are served over anyio streams with
h11 (already here for WebSocket), so the endpoint runs on asyncio and trio alike.
Needs ``prometheus-client`` (``pip install "roomwire-asyncio[metrics]"``).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Coroutine, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import h11

from roomwire import Code

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

    from ._server import Server, ServerPump

REQUEST_TIMEOUT = 10.0
"""Seconds a scraper may take to send its request."""
MAX_REQUEST = 16 * 1024
"""Bytes of request head accepted: a scrape is one short GET."""
ROUTE_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 0.1, 1.0)
"""Seconds: a batch of frames is routed in microseconds to milliseconds."""


def parse_metrics_url(url: str) -> tuple[str, int]:
    """``http://host:port`` (the path, if any, is ignored: the endpoint serves ``/metrics`` and
    ``/healthz``) -> ``(host, port)``; ValueError for anything else."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or not parts.hostname or port is None:
        raise ValueError(f"the metrics URL must be http://host:port, not {url!r}")
    return parts.hostname, port


class ServerCollector:
    """Reads a server's counters and gauges when Prometheus scrapes."""

    def __init__(self, server: Server) -> None:
        self._server = server

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import (  # noqa: PLC0415 - an optional dependency
            CounterMetricFamily,
            GaugeMetricFamily,
        )

        core = self._server.core
        stats = core.stats
        yield GaugeMetricFamily(
            "roomwire_connections", "Connections open now.", value=core.connection_count
        )
        yield GaugeMetricFamily(
            "roomwire_rooms", "Rooms with someone in them now.", value=core.room_count
        )
        yield CounterMetricFamily(
            "roomwire_connections_accepted",
            "Connections accepted since the server started.",
            value=stats.connections_accepted,
        )
        yield CounterMetricFamily(
            "roomwire_messages_routed",
            "Sends and broadcasts accepted from this node's connections.",
            value=stats.messages_routed,
        )
        yield CounterMetricFamily(
            "roomwire_deliveries",
            "Recipients those messages were queued for.",
            value=stats.deliveries,
        )
        for name, help_text, counts in (
            ("roomwire_refusals", "Requests refused, by code.", stats.refusals),
            ("roomwire_closes", "Connections closed, by close code.", stats.closes),
        ):
            family = CounterMetricFamily(name, help_text, labels=["code"])
            for code, count in sorted(counts.items()):
                family.add_metric([code.name], count)
            yield family
        yield CounterMetricFamily(
            "roomwire_slow_consumer_closes",
            "Connections closed for reading too slowly (SLOW_CONSUMER).",
            value=stats.closes.get(Code.SLOW_CONSUMER, 0),
        )
        healthy = self._server.backplane_healthy
        if healthy is not None:
            yield GaugeMetricFamily(
                "roomwire_backplane_healthy",
                "1 while the Redis backplane's liveness probe comes back, else 0.",
                value=int(healthy),
            )


def registry_for(server: Server) -> tuple[CollectorRegistry, Callable[[float], None]]:
    """A registry of ``server``'s metrics (its own, so several servers in one process do not
    clash) and the function that records one route time, in seconds."""
    from prometheus_client import CollectorRegistry, Histogram  # noqa: PLC0415 - optional

    registry = CollectorRegistry()
    registry.register(ServerCollector(server))
    route = Histogram(
        "roomwire_route_seconds",
        "Time to apply one read's frames: decode, route, queue the fan-out.",
        buckets=ROUTE_BUCKETS,
        registry=registry,
    )
    return registry, route.observe


def health(server: Server) -> tuple[int, bytes]:
    """``/healthz``: 200 while the server can serve its rooms, 503 when its backplane is down."""
    healthy = server.backplane_healthy
    status = 503 if healthy is False else 200
    body = {"status": "ok" if status == 200 else "unhealthy", "backplane": healthy}
    return status, json.dumps(body).encode() + b"\n"


class Endpoint:
    """The metrics endpoint: bound by ``bind`` (before the server starts, so a bad URL or a
    taken port fails ``serve`` plainly), then ``attach``-ed to the server."""

    def __init__(self, listener: anyio.abc.Listener[anyio.abc.SocketStream], url: str) -> None:
        self.listener = listener
        self.url = url
        """``http://host:port`` with the port actually bound."""

    @classmethod
    async def bind(cls, url: str) -> Endpoint:
        host, port = parse_metrics_url(url)
        if importlib.util.find_spec("prometheus_client") is None:
            raise ImportError(
                "metrics need prometheus-client: pip install 'roomwire-asyncio[metrics]'"
                " (from a clone: pip install -e 'bindings/asyncio[metrics]')"
            )
        try:
            listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        except OSError as exc:  # named by its URL, not confused with the server's address
            raise OSError(exc.errno, exc.strerror, url) from None
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        return cls(listener, f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}")

    def attach(self, server: Server, pump: ServerPump) -> Callable[[], Coroutine[Any, Any, None]]:
        """Export ``server``'s counters, time ``pump``'s routing; returns the task that
        answers scrapes until cancelled."""
        registry, pump.route_time = registry_for(server)
        server.metrics_url = self.url
        return partial(serve_http, self.listener, server, registry)


async def serve_http(
    listener: anyio.abc.Listener[anyio.abc.SocketStream],
    server: Server,
    registry: CollectorRegistry,
) -> None:
    """Answer scrapes until cancelled; the listener is closed on the way out."""

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            with anyio.move_on_after(REQUEST_TIMEOUT):
                await _answer(stream, server, registry)

    async with listener:
        await listener.serve(handle)


async def _answer(
    stream: anyio.abc.SocketStream, server: Server, registry: CollectorRegistry
) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST)
    try:
        event = conn.next_event()
        while event is h11.NEED_DATA:
            try:
                conn.receive_data(await stream.receive())
            except anyio.EndOfStream:
                conn.receive_data(b"")
            event = conn.next_event()
    except h11.RemoteProtocolError:
        return  # not HTTP: nothing sensible to answer
    if not isinstance(event, h11.Request):
        return  # the peer left without asking
    status, content_type, body = _route(event, server, registry)
    response = h11.Response(
        status_code=status,
        headers=[
            ("content-type", content_type),
            ("content-length", str(len(body))),
            ("connection", "close"),
        ],
    )
    try:
        await stream.send(
            conn.send(response) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        )
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        return  # the scraper went away first


def _route(
    request: h11.Request, server: Server, registry: CollectorRegistry
) -> tuple[int, str, bytes]:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest  # noqa: PLC0415

    path = request.target.split(b"?", 1)[0]
    if request.method != b"GET":
        return 405, "text/plain", b"only GET\n"
    if path == b"/metrics":
        return 200, CONTENT_TYPE_LATEST, generate_latest(registry)
    if path == b"/healthz":
        status, body = health(server)
        return status, "application/json", body
    return 404, "text/plain", b"try /metrics or /healthz\n"
