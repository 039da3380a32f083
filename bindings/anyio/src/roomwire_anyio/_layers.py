"""TLS and WebSocket on top of any byte transport, with no task of their own.

A ``Layered`` connection is what the byte transport (asyncio Protocol or anyio stream) sees:
bytes in, bytes out. Inside, the bytes go through TLS (optional), then WebSocket (optional),
and reach the core connection, which is MESSAGE-framed under WebSocket. ``LayeredPump`` sits
between the byte transport and the real pump, so neither pumps nor byte transports know the
layers exist, and the fast path stays one callback per read and one write per loop turn.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from roomwire import Framing, State

from ._tls import TlsLayer
from ._url import Endpoint
from ._websocket import NORMAL, HandshakeRefused, WebSocketLayer
from .transport import Connection, Pump, Transport

log = logging.getLogger("roomwire.transport")

Layers = tuple[TlsLayer | None, WebSocketLayer | None]


class CoreConnection(Connection, Protocol):
    """A core connection, which also has the doors of a message transport."""

    def receive_message(self, payload: bytes) -> None: ...

    def chunks_to_send(self) -> list[bytes]: ...


C = TypeVar("C", bound=CoreConnection)


class Layered(Generic[C]):
    """One core connection under its TLS and WebSocket layers (a byte ``Connection``)."""

    __slots__ = ("_fed_eof", "_peer", "conn", "tls", "transport", "ws")

    def __init__(self, layers: Layers, transport: Transport, peer: str) -> None:
        self.tls, self.ws = layers
        self.transport = transport
        self._peer = peer
        self._fed_eof = False
        self.conn: C

    @property
    def state(self) -> State:
        return self.conn.state

    @property
    def has_output(self) -> bool:
        """A layer has bytes of its own to write (handshakes, pongs, refusals, closes)."""
        return bool((self.tls and self.tls.has_output) or (self.ws and self.ws.has_output))

    def receive_data(self, data: bytes) -> None:
        tls = self.tls
        if tls is None:
            return self._deliver(data)
        plain = tls.receive_data(data)
        if tls.failure is not None:
            if not self._fed_eof:
                log.warning("%s: TLS failed: %s", self._peer, tls.failure)
            return self._end()
        if plain:
            self._deliver(plain)
        if tls.ended:
            self._deliver(b"")

    def _deliver(self, data: bytes) -> None:
        """Plaintext to the WebSocket layer, or straight to the core (``b""``: EOF)."""
        if self._fed_eof:
            return
        ws = self.ws
        if ws is None:
            self._fed_eof = not data
            return self.conn.receive_data(data)
        try:
            messages = ws.receive_data(data)
        except HandshakeRefused as exc:
            log.warning("%s: %s", self._peer, exc)
            return self._end()
        conn = self.conn
        for message in messages:
            conn.receive_message(message)
        if ws.closed is not None:
            if ws.refusal is not None:
                log.warning("%s: WebSocket upgrade refused: %s", self._peer, ws.refusal)
            elif ws.closed[0] != NORMAL:
                log.info("%s: WebSocket closed %s: %s", self._peer, *ws.closed)
            self._end()

    def _end(self) -> None:
        """A layer is finished: the core connection sees the end of its input."""
        if not self._fed_eof:
            self._fed_eof = True
            self.conn.receive_data(b"")

    def data_to_send(self) -> bytes:
        conn, ws = self.conn, self.ws
        if ws is None:
            out = conn.data_to_send()
        else:
            closed = conn.state is State.CLOSED
            if ws.opened:  # before the upgrade is done, frames wait in the core
                ws.send_frames(conn.chunks_to_send())
            elif closed:
                conn.chunks_to_send()  # closed before the upgrade: nobody to send them to
            if closed:
                ws.close()
            out = ws.data_to_send()
        if (tls := self.tls) is None:
            return out
        if out:
            tls.send(out)
        return tls.data_to_send()


class LayeredPump(Pump[Layered[C]]):
    """Puts each byte transport's connection under fresh layers; reports to ``pump``."""

    def __init__(self, pump: Pump[C], framing: Framing, layers: Callable[[], Layers]) -> None:
        self._pump = pump
        self._framing = framing
        self._layers = layers

    def attach(
        self, transport: Transport, peer: str, framing: Framing = Framing.STREAM
    ) -> Layered[C]:
        layered: Layered[C] = Layered(self._layers(), transport, peer)
        layered.conn = self._pump.attach(transport, peer, self._framing)
        if layered.has_output:
            transport.wake()  # the client's TLS hello or WebSocket upgrade request
        return layered

    def received(self, conn: Layered[C]) -> bool:
        closed = self._pump.received(conn.conn)
        if conn.has_output:
            conn.transport.wake()
        return closed

    def wrote(self, conn: Layered[C]) -> None:
        self._pump.wrote(conn.conn)

    def ended(self, conn: Layered[C]) -> None:
        self._pump.ended(conn.conn)


def server_pump(
    pump: Pump[C],
    endpoint: Endpoint,
    *,
    ssl_context: ssl.SSLContext | None,
    max_message_size: int,
    allowed_origins: frozenset[str] | None,
    first_message_size: int | None = None,
) -> Pump[C] | LayeredPump[C]:
    """The pump a listener on ``endpoint`` reports to: ``pump`` itself for plain TCP.
    ``first_message_size`` bounds a WebSocket's first message (the hello)."""
    if endpoint.tls and ssl_context is None:
        raise ValueError(f"listening on {endpoint.url()} needs ssl= (a server SSLContext)")
    if not (endpoint.tls or endpoint.websocket):
        return pump
    path = endpoint.path if endpoint.path not in ("", "/") else None

    def layers() -> Layers:
        tls = TlsLayer(ssl_context, server_side=True) if ssl_context and endpoint.tls else None
        ws = None
        if endpoint.websocket:
            ws = WebSocketLayer.server(
                max_message_size=max_message_size,
                allowed_origins=allowed_origins,
                path=path,
                first_message_size=first_message_size,
            )
        return tls, ws

    return LayeredPump(pump, endpoint.framing, layers)


def client_pump(
    pump: Pump[C],
    endpoint: Endpoint,
    *,
    ssl_context: ssl.SSLContext | None,
    max_message_size: int,
) -> Pump[C] | LayeredPump[C]:
    """The pump a dialled transport to ``endpoint`` reports to; TLS verifies the server's
    certificate against the system's roots unless ``ssl_context`` says otherwise."""
    if not (endpoint.tls or endpoint.websocket):
        return pump
    context = ssl_context or ssl.create_default_context()
    host = endpoint.host

    def layers() -> Layers:
        tls = TlsLayer(context, server_side=False, server_hostname=host) if endpoint.tls else None
        ws = None
        if endpoint.websocket:
            authority = endpoint.url().split("://", 1)[1].split("/", 1)[0]
            ws = WebSocketLayer.client(
                authority, endpoint.path or "/", max_message_size=max_message_size
            )
        return tls, ws

    return LayeredPump(pump, endpoint.framing, layers)
