"""What both sides' connections share: the receive buffer, the outbound buffer, the state
table and the close paths."""

from __future__ import annotations

from ._errors import LocalProtocolError, RemoteProtocolError
from ._state import TRANSITIONS, Input, State
from .codes import Code
from .events import ConnectionClosed, Event, NeedData
from .frames import Frame, FrameBuffer, encode_frame

NextEvent = Event | NeedData


class BaseConnection:
    """One side of one connection. Subclasses add the frame handlers of their role."""

    __slots__ = (
        "_buffer",
        "_closed",
        "_eof",
        "_out",
        "_out_size",
        "_state",
    )

    def __init__(self, max_frame_size: int) -> None:
        self._buffer = FrameBuffer(max_frame_size)
        self._out: list[bytes] = []
        self._out_size = 0
        self._state = State.HANDSHAKE
        self._closed: ConnectionClosed | None = None
        self._eof = False

    @property
    def state(self) -> State:
        """The state after the last event returned (or verb called)."""
        return self._state

    @property
    def outbound_size(self) -> int:
        """Bytes queued and not yet taken by ``data_to_send``."""
        return self._out_size

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the peer; ``b""`` means the transport reached EOF.

        Nothing is decoded here: call ``next_event`` until it returns ``NEED_DATA``. Bytes that
        arrive after this side closed are discarded.
        """
        if self._eof:
            raise LocalProtocolError("receive_data called after EOF")
        if not data:
            self._eof = True
        elif self._state is not State.CLOSED:
            self._buffer.feed(data)

    def data_to_send(self) -> bytes:
        """Take every byte queued for the peer (frames, replies, heartbeats, close)."""
        if not self._out:
            return b""
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        return data

    # --- internals shared by both roles ---------------------------------------------------

    def _allowed(self, event: Input) -> bool:
        return (self._state, event) in TRANSITIONS

    def _move(self, event: Input) -> None:
        self._state = TRANSITIONS[(self._state, event)]

    def _queue(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)

    def _send(self, frame: Frame) -> None:
        self._queue(encode_frame(frame))

    def _next_payload(self) -> bytes | NeedData | ConnectionClosed:
        """The next frame body, NEED_DATA, or the close event once the peer has hung up."""
        if self._closed is not None:
            return self._closed
        payload = self._buffer.next_payload()
        if payload is not None:
            return payload
        if self._eof:
            # The peer hung up without a close frame; a partial frame is simply lost.
            return self._finish(Input.ABORT, Code.CONNECTION_LOST, "the transport closed", True)
        return NeedData.NEED_DATA

    def _finish(self, event: Input, code: Code, reason: str, by_peer: bool) -> ConnectionClosed:
        """Move to CLOSED through ``event`` and remember the close for later calls."""
        self._move(event)
        # Release what was buffered now, not when the last reference goes (a closed server
        # connection can stay on the timer heap until its old deadline).
        self._buffer.clear()
        self._closed = ConnectionClosed(code=code, reason=reason, by_peer=by_peer)
        self._on_closed()
        return self._closed

    def _abort(self, code: Code, reason: str) -> ConnectionClosed:
        """Close from this side without waiting: queue a close frame, then CLOSED."""
        self._send({"t": "close", "code": int(code), "reason": reason})
        return self._finish(Input.ABORT, code, reason, by_peer=False)

    def _fail(self, exc: RemoteProtocolError) -> RemoteProtocolError:
        """The peer broke the protocol: close with the error's code before it is raised."""
        self._abort(exc.code, exc.reason)
        return exc

    def _on_closed(self) -> None:
        """Hook for the role to release what it holds once the connection is CLOSED."""
