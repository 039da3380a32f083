"""Streams in the bindings (docs/PROTOCOL.md §24.4): ``MessageStreamWriter`` (waits for the
reader's credit before each chunk), ``MessageStreamReader`` (grants credit back as the
application consumes chunks) and ``Streams``, which routes a connection's stream events to
them. Nothing here buffers more than ``stream_window`` bytes of a stream: the writer stops at
the credit, and the reader only holds what the writer had credit for."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import attrs

from roomwire import ClientConnection, Code, State
from roomwire.events import (
    ChunkReceived,
    CreditGranted,
    StreamAborted,
    StreamEnded,
    StreamOffered,
)

from ._errors import RoomError, StreamError, TooLargeError
from ._session import Reply

log = logging.getLogger("roomwire.client")


@attrs.frozen
class MessageStreamChunk:
    """One chunk of a stream: its own ``header`` (a JSON object, may be empty) and bytes."""

    header: dict[str, Any] = attrs.field(factory=dict)
    data: bytes = b""


class _End:
    """What both ends share: the stream's id, its connection, and how it ended."""

    def __init__(self, stream_id: str, conn: ClientConnection, wake: Callable[[], None]) -> None:
        self.id = stream_id
        self._conn = conn
        self._wake = wake
        self._error: RoomError | None = None
        self._changed: anyio.Event | None = None
        """Set when something arrives; made by the waiting task (frames can arrive in a
        transport callback, where no anyio primitive can be made)."""

    def fail(self, error: RoomError) -> None:
        if self._error is None:
            self._error = error
        self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def _wait(self) -> None:
        self._changed = anyio.Event()
        await self._changed.wait()
        self._changed = None

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _live(self) -> bool:
        return self._conn.state not in (State.CLOSING, State.CLOSED)

    async def abort(self, reason: str = "") -> None:
        """Fail the stream; the other side gets ``StreamError`` (STREAM_ABORTED, ``reason``)."""
        if self._error is None and self._live():
            self._conn.abort_stream(self.id, reason)
            self._wake()
        self.fail(StreamError(f"aborted here: {reason}", Code.STREAM_ABORTED))


class MessageStreamWriter(_End):
    """The writing end, from ``room.messaging.create_stream``: ``write`` chunks, then
    ``close`` (or ``abort``). A write waits while the reader has ``stream_window`` bytes
    unread."""

    def __init__(
        self,
        stream_id: str,
        conn: ClientConnection,
        wake: Callable[[], None],
        *,
        to: str,
        header: dict[str, Any],
        window: int,
    ) -> None:
        super().__init__(stream_id, conn, wake)
        self.to = to
        """The reader's participant id."""
        self.header = header
        """The header the stream was opened with."""
        self.window = window
        self._credit = window
        self._closed = False

    def credit(self, n: int) -> None:
        self._credit += n
        self._notify()

    async def write(self, chunk: MessageStreamChunk) -> None:
        """Send a chunk once the reader's credit covers its data. Raises ``StreamError`` if
        the stream failed, ``TooLargeError`` for data over ``stream_window``."""
        data = chunk.data
        if len(data) > self.window:
            raise TooLargeError(
                f"a {len(data)}-byte chunk is over the {self.window}-byte stream_window",
                Code.TOO_LARGE,
            )
        if self._closed:
            raise StreamError("the stream is closed", Code.STREAM_NOT_FOUND)
        while True:
            self._check()
            if self._credit >= len(data):
                break
            await self._wait()
        if not self._live():
            raise StreamError("the connection is closing", Code.CONNECTION_LOST)
        self._credit -= len(data)
        self._conn.send_chunk(self.id, data, chunk.header or None)
        self._wake()

    async def drain(self) -> None:
        """Wait until the reader consumed every byte written so far (all the credit is
        back). Raises ``StreamError`` if the stream fails meanwhile."""
        while True:
            self._check()
            if self._credit >= self.window:
                return
            await self._wait()

    async def close(self) -> None:
        """End the stream: the reader's iteration ends after the last chunk."""
        self._check()
        if not self._closed and self._live():
            self._closed = True
            self._conn.end_stream(self.id)
            self._wake()


class MessageStreamReader(_End):
    """The reading end, passed to ``enable(on_stream_accept=...)``'s callback: ``header``,
    and ``async for chunk in reader``. Iteration ends at the writer's ``close`` and raises
    ``StreamError`` if the stream fails. Credit goes back to the writer as chunks are
    consumed, so a reader that stops iterating stops the writer."""

    def __init__(
        self,
        stream_id: str,
        conn: ClientConnection,
        wake: Callable[[], None],
        *,
        from_participant_id: str,
        header: dict[str, Any],
        window: int,
    ) -> None:
        super().__init__(stream_id, conn, wake)
        self.from_participant_id = from_participant_id
        """The writer's participant id."""
        self.header = header
        """The header the writer opened the stream with."""
        self._chunks: deque[MessageStreamChunk] = deque()
        self._ended = False
        self._consumed = 0
        """Bytes consumed and not yet granted back."""
        self._threshold = max(1, window // 4)

    def chunk(self, chunk: MessageStreamChunk) -> None:
        self._chunks.append(chunk)
        self._notify()

    def end(self) -> None:
        self._ended = True
        self._notify()

    def __aiter__(self) -> AsyncIterator[MessageStreamChunk]:
        return self

    async def __anext__(self) -> MessageStreamChunk:
        while not self._chunks:
            self._check()
            if self._ended:
                raise StopAsyncIteration
            await self._wait()
        chunk = self._chunks.popleft()
        self._consumed += len(chunk.data)
        # Grant in batches, and whenever nothing is left unread: a writer waiting for more
        # credit than the batch is then never stuck.
        if self._consumed and (self._consumed >= self._threshold or not self._chunks):
            if self._error is None and not self._ended and self._live():
                self._conn.grant_credit(self.id, self._consumed)
                self._wake()
            self._consumed = 0
        return chunk


AcceptCallback = Callable[[MessageStreamReader], object]
"""``enable(on_stream_accept=...)``: called with each stream offered (sync or async)."""


class Streams:
    """The streams of the current connection, by id, and the accept callback (kept across
    reconnects). ``spawn`` runs an async callback as a task; ``wake`` has the connection's
    output written; ``quiet(conn, verb)`` queues a request nobody waits for."""

    def __init__(
        self,
        spawn: Callable[[str, Awaitable[object]], None],
        wake: Callable[[], None],
        quiet: Callable[[ClientConnection, Callable[[ClientConnection], int]], None],
    ) -> None:
        self._spawn = spawn
        self.wake = wake
        self._quiet = quiet
        self.on_accept: AcceptCallback | None = None
        self._ends: dict[str, MessageStreamWriter | MessageStreamReader] = {}

    def opening(self, conn: ClientConnection, to: str, header: dict[str, Any]) -> Opening:
        """The reply of an ``open`` on ``conn``: it registers the writer as the ack arrives,
        before any credit or abort for the stream can."""
        limits = conn.limits
        assert limits is not None  # requests are only made on a welcomed connection
        return Opening(self, conn, to, header, limits.stream_window)

    def add(self, end: MessageStreamWriter | MessageStreamReader) -> None:
        self._ends[end.id] = end

    def offered(self, conn: ClientConnection, event: StreamOffered) -> None:
        callback = self.on_accept
        if callback is None:
            conn.abort_stream(event.stream_id, "not accepting streams")
            return
        limits = conn.limits
        assert limits is not None
        reader = MessageStreamReader(
            event.stream_id,
            conn,
            self.wake,
            from_participant_id=event.from_participant_id,
            header=event.header,
            window=limits.stream_window,
        )
        self._ends[reader.id] = reader
        self._quiet(conn, lambda c: c.accept_stream(event.stream_id))
        try:
            result = callback(reader)
        except Exception:
            log.exception("on_stream_accept callback failed")
            return
        if result is not None and hasattr(result, "__await__"):
            self._spawn("on_stream_accept", result)

    def event(self, event: ChunkReceived | CreditGranted | StreamEnded | StreamAborted) -> None:
        """A stream frame arrived: pass it to its reader or writer."""
        if isinstance(event, ChunkReceived):
            self.chunk(event)
        elif isinstance(event, CreditGranted):
            self.credit(event)
        elif isinstance(event, StreamEnded):
            self.ended(event)
        else:
            self.aborted(event)

    def chunk(self, event: ChunkReceived) -> None:
        end = self._ends.get(event.stream_id)
        if isinstance(end, MessageStreamReader):
            end.chunk(MessageStreamChunk(header=event.header or {}, data=event.data))

    def credit(self, event: CreditGranted) -> None:
        end = self._ends.get(event.stream_id)
        if isinstance(end, MessageStreamWriter):
            end.credit(event.n)

    def ended(self, event: StreamEnded) -> None:
        end = self._ends.pop(event.stream_id, None)
        if isinstance(end, MessageStreamReader):
            end.end()

    def aborted(self, event: StreamAborted) -> None:
        # An abort for a stream not known here crossed its end: ignored (§24.4).
        end = self._ends.pop(event.stream_id, None)
        if end is not None:
            end.fail(StreamError(event.reason, event.code))

    def lost(self, error: RoomError) -> None:
        """The connection ended: every stream on it fails."""
        ends, self._ends = self._ends, {}
        for end in ends.values():
            end.fail(error)


class Opening(Reply):
    """An ``open``'s reply: when the ack brings the stream id, the writer is registered at
    once; if nobody waits any more (the caller was cancelled), the stream is aborted."""

    __slots__ = ("_conn", "_header", "_streams", "_to", "_window", "abandoned", "writer")

    def __init__(
        self,
        streams: Streams,
        conn: ClientConnection,
        to: str,
        header: dict[str, Any],
        window: int,
    ) -> None:
        super().__init__()
        self._streams, self._conn, self._to = streams, conn, to
        self._header, self._window = header, window
        self.writer: MessageStreamWriter | None = None
        self.abandoned = False

    def settle(self, value: object = None, error: Exception | None = None) -> None:
        if error is None and isinstance(value, str):
            if self.abandoned:
                self._conn.abort_stream(value, "the writer gave up before the accept")
                self._streams.wake()
            else:
                self.writer = MessageStreamWriter(
                    value,
                    self._conn,
                    self._streams.wake,
                    to=self._to,
                    header=self._header,
                    window=self._window,
                )
                self._streams.add(self.writer)
        super().settle(value, error)
