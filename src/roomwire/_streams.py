"""Flow-controlled streams between participants on the server (docs/PROTOCOL.md §24.4).

A writer opens a stream to a reader; once the reader accepts, the writer may send chunks
worth at most the credit the reader granted: ``stream_window`` bytes at first, then what
each ``credit`` frame adds back. The server forwards a chunk only within that credit, so it
never holds more than the window of one stream (in the reader's queue); a chunk past the
credit aborts the stream. Streams are not stored in history and have no room seq.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ._codec import Frame, encode_frame
from .codes import Code

if TYPE_CHECKING:
    from ._routing import Router
    from ._session import ServerConnection


@attrs.define(eq=False)
class Stream:
    id: str
    writer: ServerConnection
    reader: ServerConnection
    rid: int
    """The writer's ``open`` request: accepting the stream answers it."""
    credit: int = 0
    """Bytes the writer may still send: none until the reader accepts, then the window,
    less what was sent, plus what the reader granted since."""
    accepted: bool = False


class Streams:
    """Every open stream, by id and by each end's connection."""

    __slots__ = ("_by_conn", "_router", "window")

    def __init__(self, router: Router, window: int) -> None:
        self._router = router
        self.window = window
        self._by_conn: dict[ServerConnection, dict[str, Stream]] = {}
        """The streams each connection writes or reads."""

    def count(self, connection: ServerConnection) -> int:
        """How many streams ``connection`` writes or reads now."""
        return len(self._by_conn.get(connection, ()))

    def open(self, stream: Stream, data: bytes) -> None:
        """Record ``stream`` and queue its ``open`` frame (``data``) for the reader."""
        for end in (stream.writer, stream.reader):
            self._by_conn.setdefault(end, {})[stream.id] = stream
        self._router.queue_to([stream.reader.outbound], data)

    def of(self, connection: ServerConnection, stream_id: str) -> Stream | None:
        """The stream ``connection`` writes or reads with this id, or None."""
        return self._by_conn.get(connection, {}).get(stream_id)

    def accept(self, stream: Stream) -> None:
        """The reader accepted: answer the writer's ``open`` with the stream id."""
        stream.accepted = True
        stream.credit = self.window
        ack: Frame = {"t": "ack", "rid": stream.rid, "id": stream.id}
        self._router.queue_to([stream.writer.outbound], encode_frame(ack))

    def chunk(self, stream: Stream, data: bytes, size: int) -> None:
        """Forward a chunk frame (``data``, carrying ``size`` bytes of stream data) the writer
        had the credit for."""
        stream.credit -= size
        outbound = stream.reader.outbound
        self._router.queue_to([outbound], data)
        # Bounded by the window, not a sign of a slow reader: the reader's client holds
        # back credit instead.
        outbound.exempt(len(data))

    def credit(self, stream: Stream, frame: Frame) -> None:
        """Pass the reader's grant on to the writer."""
        stream.credit += frame["n"]
        self._router.queue_to([stream.writer.outbound], encode_frame(frame))

    def end(self, stream: Stream) -> None:
        """The writer is done: the reader gets ``end`` after every chunk."""
        self._close(stream)
        self._router.queue_to(
            [stream.reader.outbound], encode_frame({"t": "end", "sid": stream.id})
        )

    def abort(self, stream: Stream, by: ServerConnection | None, code: Code, reason: str) -> None:
        """Fail ``stream``: both ends are told, but ``by`` (the side that aborted). A writer
        whose ``open`` is not yet accepted gets its refusal instead."""
        self._close(stream)
        frame = {"t": "abort", "sid": stream.id, "code": int(code), "reason": reason}
        data = encode_frame(frame)
        if stream.reader is not by:
            self._router.queue_to([stream.reader.outbound], data)
        if stream.writer is not by:
            if not stream.accepted:
                frame = {"t": "error", "rid": stream.rid, "code": int(code), "reason": reason}
                data = encode_frame(frame)
            self._router.queue_to([stream.writer.outbound], data)

    def left(self, connection: ServerConnection) -> None:
        """``connection`` left messaging or closed: its streams fail for the other side."""
        for stream in list(self._by_conn.get(connection, {}).values()):
            self.abort(stream, connection, Code.STREAM_PEER_LEFT, "the other side left")

    def _close(self, stream: Stream) -> None:
        for end in (stream.writer, stream.reader):
            mine = self._by_conn[end]
            del mine[stream.id]
            if not mine:
                del self._by_conn[end]
