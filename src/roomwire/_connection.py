"""What both sides' connections share: the framer, the outbound buffer, the state table and
the close paths."""

from __future__ import annotations

from ._codec import Frame, encode_frame
from ._errors import LocalProtocolError, RemoteProtocolError
from ._fast import StreamFramer
from ._framing import Framing, MessageFramer, split_frames
from ._state import TRANSITIONS, Input, State
from .codes import Code
from .events import ConnectionClosed, Event, NeedData

NextEvent = Event | NeedData


class BaseConnection:
    """One side of one connection. Subclasses add the frame handlers of their role."""

    __slots__ = (
        "_buffer",
        "_closed",
        "_eof",
        "_framing",
        "_out",
        "_out_size",
        "_state",
    )

    def __init__(self, max_frame_size: int, framing: Framing) -> None:
        if not isinstance(framing, Framing):
            raise LocalProtocolError(f"framing must be a Framing, not {framing!r}")
        self._framing = framing
        self._buffer: StreamFramer | MessageFramer = (
            StreamFramer(max_frame_size)
            if framing is Framing.STREAM
            else MessageFramer(max_frame_size)
        )
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
    def framing(self) -> Framing:
        """How this connection's transport delimits frames."""
        return self._framing

    @property
    def outbound_size(self) -> int:
        """Bytes queued and not yet taken by ``data_to_send``."""
        return self._out_size

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from a stream transport; ``b""`` means the transport reached EOF (on
        either framing).

        Nothing is decoded here: call ``next_event`` until it returns ``NEED_DATA``. Bytes that
        arrive after this side closed are discarded.
        """
        if data and self._framing is not Framing.STREAM:
            raise LocalProtocolError("a message connection takes receive_message")
        self._receive(data)

    def receive_message(self, payload: bytes) -> None:
        """Buffer one message from a message transport: one frame, no length prefix. Its size
        is checked on arrival; an empty or oversized message fails in ``next_event``."""
        if self._framing is not Framing.MESSAGE:
            raise LocalProtocolError("a stream connection takes receive_data")
        if self._eof:
            raise LocalProtocolError("receive_message called after EOF")
        if self._state is not State.CLOSED:
            self._buffer.feed(payload)  # an empty message is BAD_FRAME, not EOF

    def _receive(self, data: bytes) -> None:
        if self._eof:
            raise LocalProtocolError("receive_data called after EOF")
        if not data:
            self._eof = True
        elif self._state is not State.CLOSED:
            self._buffer.feed(data)

    def data_to_send(self) -> bytes:
        """Take every byte queued for a stream transport (frames, replies, heartbeats, close)."""
        if self._framing is not Framing.STREAM:
            raise LocalProtocolError("a message connection gives messages_to_send")
        out = self._take_output()
        if not out:
            return b""
        return out[0] if len(out) == 1 else b"".join(out)

    def messages_to_send(self) -> list[bytes]:
        """Take every frame queued for a message transport: one message each, in order."""
        if self._framing is not Framing.MESSAGE:
            raise LocalProtocolError("a stream connection gives data_to_send")
        return split_frames(self._take_output())

    def chunks_to_send(self) -> list[bytes]:
        """Take every frame queued, as queued: stream-framed chunks, each holding whole frames
        (either framing). A broadcast batch is one bytes object in every recipient's queue, so
        a message transport can turn it into messages once for all of them
        (``frames.split_frames`` takes a chunk apart)."""
        return self._take_output()

    def _take_output(self) -> list[bytes]:
        """Take the queue: stream-framed chunks, each holding whole frames."""
        out = self._out
        if out:
            self._out = []
            self._out_size = 0
        return out

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
        return self._settle(code, reason, by_peer)

    def _settle(self, code: Code, reason: str, by_peer: bool) -> ConnectionClosed:
        """Once CLOSED: release the buffer and remember the close for later calls."""
        # Release what was buffered now, not when the last reference goes (a closed server
        # connection can stay on the timer heap until its old deadline).
        self._buffer.clear()
        self._closed = ConnectionClosed(code=code, reason=reason, by_peer=by_peer)
        self._on_closed(code)
        return self._closed

    def _abort(self, code: Code, reason: str) -> ConnectionClosed:
        """Close from this side without waiting: queue a close frame, then CLOSED."""
        self._send({"t": "close", "code": int(code), "reason": reason})
        return self._finish(Input.ABORT, code, reason, by_peer=False)

    def _fail(self, exc: RemoteProtocolError) -> RemoteProtocolError:
        """The peer broke the protocol: close with the error's code before it is raised."""
        self._abort(exc.code, exc.reason)
        return exc

    def _on_closed(self, code: Code) -> None:
        """Hook for the role to release what it holds once the connection is CLOSED
        (with ``code``)."""
