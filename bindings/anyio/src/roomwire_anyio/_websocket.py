"""WebSocket as a message layer over a byte stream, on wsproto (no framing written here).

``WebSocketLayer`` is sans-IO like the core: bytes from the socket go in, whole binary
messages come out, and what must be written comes out of ``data_to_send``. It owns the HTTP
upgrade (the server checks the path and the ``Origin`` header; the client checks the answer),
refuses text messages (close 1003) and stops a message over the size limit as soon as it is
over (close 1009, before the message is buffered whole). The transport that carries a roomwire
connection over it hands each message to the core as one payload.
"""

from __future__ import annotations

import wsproto
import wsproto.events as ws
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import ProtocolError as WsProtocolError

from roomwire.frames import split_frames

NORMAL = int(CloseReason.NORMAL_CLOSURE)
UNSUPPORTED_DATA = int(CloseReason.UNSUPPORTED_DATA)
MESSAGE_TOO_BIG = int(CloseReason.MESSAGE_TOO_BIG)
ABNORMAL = int(CloseReason.ABNORMAL_CLOSURE)
"""Reported (never sent) when the peer vanished without a close handshake."""


class _SharedFrames:
    """Server side: stream-framed chunks as wsproto turned them into binary messages.

    A broadcast batch is one chunk object in every recipient's queue, and a server's messages
    for it are the same bytes on every connection (no mask; no extension is ever negotiated;
    whole messages leave wsproto's state as it was). So wsproto frames it once, not once per
    recipient (~6 us a message: most of a WebSocket broadcast's cost otherwise). Chunks stay
    here until ``MAX_BYTES`` of them are held (the slowest recipient may take its copy late),
    then it starts again empty."""

    MAX_BYTES = 16 * 1024 * 1024
    MAX_SIZE = MAX_BYTES // 4
    """A larger chunk is framed for each recipient (a batch this large is rare)."""

    def __init__(self) -> None:
        self.frames: dict[bytes, bytes] = {}
        self.size = 0

    def add(self, chunk: bytes, framed: bytes) -> None:
        if len(chunk) > self.MAX_SIZE:
            return
        if self.size >= self.MAX_BYTES:
            self.frames.clear()
            self.size = 0
        self.frames[chunk] = framed
        self.size += len(chunk) + len(framed)


_SHARED = _SharedFrames()


class HandshakeRefused(Exception):
    """The server answered the upgrade with an HTTP error (client side)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"the server refused the WebSocket upgrade: HTTP {status}")
        self.status, self.body = status, body


class WebSocketLayer:
    """One side of one WebSocket connection (see the module's doc).

    Server: ``WebSocketLayer.server(max_message_size=..., allowed_origins=..., path=None)``;
    client: ``WebSocketLayer.client(host, target, max_message_size=..., origin=None)``.
    Feed ``receive_data`` (``b""`` at EOF); it returns the whole messages that arrived.
    ``opened`` turns True once the upgrade is done; ``closed`` holds ``(code, reason)`` once
    the WebSocket is closed (by either side, or by the transport ending).
    """

    def __init__(
        self,
        connection: wsproto.WSConnection,
        max_message_size: int,
        allowed_origins: frozenset[str] | None = None,
        path: str | None = None,
        first_message_size: int | None = None,
    ) -> None:
        self._ws = connection
        self._server = connection.client is False
        self._max = max_message_size if first_message_size is None else first_message_size
        self._later_max = max_message_size
        """The bound after the first whole message (the hello is bounded apart)."""
        self._origins = allowed_origins
        self._path = path
        self._out = bytearray()
        self._partial = bytearray()
        self._rejected = 0
        """Client side: the HTTP status of a refused upgrade, while its body arrives."""
        self._reject_body = bytearray()
        self.opened = False
        self.closed: tuple[int, str] | None = None
        self.refusal: str | None = None
        """Server side: why the upgrade was refused (for the log), once it was."""

    @classmethod
    def server(
        cls,
        *,
        max_message_size: int,
        allowed_origins: frozenset[str] | None = None,
        path: str | None = None,
        first_message_size: int | None = None,
    ) -> WebSocketLayer:
        """``allowed_origins`` None or empty: any origin (the token is the gate); ``path``
        None: any path. ``first_message_size`` bounds the first message (the hello, before
        anyone is authenticated: ``max_hello_size``), ``max_message_size`` the later ones."""
        return cls(
            wsproto.WSConnection(wsproto.ConnectionType.SERVER),
            max_message_size,
            allowed_origins or None,
            path,
            first_message_size,
        )

    @classmethod
    def client(
        cls, host: str, target: str, *, max_message_size: int, origin: str | None = None
    ) -> WebSocketLayer:
        layer = cls(wsproto.WSConnection(wsproto.ConnectionType.CLIENT), max_message_size)
        headers = [] if origin is None else [(b"origin", origin.encode())]
        layer._send(ws.Request(host=host, target=target or "/", extra_headers=headers))
        return layer

    # --- doors ------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[bytes]:
        """Apply bytes from the socket (``b""``: EOF); returns the whole messages in them.

        Raises ``HandshakeRefused`` on the client side when the server refused the upgrade.
        """
        if self.closed is not None:
            return []
        if not data:
            # The peer is gone: nothing can be answered any more.
            self.closed = (ABNORMAL, "the transport closed")
            return []
        try:
            self._ws.receive_data(data)
            return self._apply_events()
        except WsProtocolError as exc:
            return self._broken(exc)

    def send_message(self, payload: bytes) -> None:
        """Queue one binary message (ignored once closed: nothing more goes out)."""
        if self.closed is None:
            self._send(ws.BytesMessage(data=payload))

    def send_frames(self, chunks: list[bytes]) -> None:
        """Queue the frames of stream-framed ``chunks`` (a core connection's
        ``chunks_to_send``), one binary message each; ignored once closed."""
        if self.closed is not None:
            return
        shared = self._server and self.opened
        for chunk in chunks:
            framed = _SHARED.frames.get(chunk) if shared else None
            if framed is None:
                framed = b"".join(
                    [self._ws.send(ws.BytesMessage(data=p)) for p in split_frames([chunk])]
                )
                if shared:
                    _SHARED.add(chunk, framed)
            self._out += framed

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Start the closing handshake (a no-op once closed or before the upgrade)."""
        if self.closed is None and self.opened:
            self._send(ws.CloseConnection(code=code, reason=reason))
            self.closed = (code, reason)

    @property
    def has_output(self) -> bool:
        return bool(self._out)

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    # --- internals --------------------------------------------------------------------------

    def _send(self, event: ws.Event) -> None:
        self._out += self._ws.send(event)

    def _apply_events(self) -> list[bytes]:
        messages: list[bytes] = []
        for event in self._ws.events():
            if isinstance(event, ws.Request):
                self._answer_upgrade(event)
            elif isinstance(event, ws.AcceptConnection):
                self.opened = True
            elif isinstance(event, ws.RejectConnection):
                self._rejected = event.status_code
                if not event.has_body:
                    self._refused()
            elif isinstance(event, ws.RejectData):
                self._reject_body += event.data[: 4096 - len(self._reject_body)]
                if event.body_finished:
                    self._refused()
            elif isinstance(event, ws.BytesMessage):
                message = self._collect(event)
                if message is not None:
                    messages.append(message)
            elif isinstance(event, ws.TextMessage):
                self.close(UNSUPPORTED_DATA, "roomwire frames are binary messages")
            elif isinstance(event, ws.Ping):
                self._send(event.response())
            elif isinstance(event, ws.CloseConnection):
                self._send(event.response())
                self.closed = (int(event.code), event.reason or "")
            if self.closed is not None:
                break
        return messages

    def _refused(self) -> None:
        self.closed = (ABNORMAL, f"upgrade refused with HTTP {self._rejected}")
        raise HandshakeRefused(self._rejected, bytes(self._reject_body))

    def _collect(self, event: ws.BytesMessage) -> bytes | None:
        """Add a piece of a binary message; the message once it is whole."""
        if len(self._partial) + len(event.data) > self._max:
            self._partial.clear()
            self.close(MESSAGE_TOO_BIG, f"a message is over the {self._max}-byte limit")
            return None
        if event.message_finished and not self._partial:
            self._max = self._later_max
            return bytes(event.data)  # the common case: one frame, one message, no copy kept
        self._partial += event.data
        if not event.message_finished:
            return None
        message = bytes(self._partial)
        self._partial.clear()
        self._max = self._later_max
        return message

    def _answer_upgrade(self, request: ws.Request) -> None:
        # Browsers always send Origin, so a missing one is a program, not a page another site
        # serves (cross-site WebSocket hijacking needs a browser): its token is the gate.
        sent = dict(request.extra_headers).get(b"origin")
        origin = "" if sent is None else sent.decode("latin-1")
        if self._path is not None and request.target.split("?", 1)[0] != self._path:
            self._refuse(404, f"no WebSocket endpoint at {request.target[:100]!r}")
        elif self._origins is not None and sent is not None and origin not in self._origins:
            self._refuse(403, f"origin {origin[:100]!r} is not allowed")
        else:
            # No subprotocol is chosen: roomwire needs none (a client that asks gets none).
            self._send(ws.AcceptConnection())
            self.opened = True

    def _refuse(self, status: int, reason: str) -> None:
        body = (reason + "\n").encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        self._send(ws.RejectConnection(status_code=status, headers=headers, has_body=True))
        self._send(ws.RejectData(data=body))
        self.refusal = reason
        self.closed = (ABNORMAL, reason)

    def _broken(self, exc: WsProtocolError) -> list[bytes]:
        """The peer broke HTTP or WebSocket rules: answer as wsproto suggests, then close."""
        hint = getattr(exc, "event_hint", None)
        reason = str(exc) or type(exc).__name__
        if not self.opened:
            self._refuse(400, f"bad WebSocket upgrade: {reason}")
        elif isinstance(hint, ws.CloseConnection):
            self.close(int(hint.code), hint.reason or reason)
        else:
            self.closed = (ABNORMAL, reason)
        return []
