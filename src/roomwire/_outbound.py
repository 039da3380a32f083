"""What the server queues for its connections: each connection's own queue and accounting
(``Outbound``), the broadcast batch several queues share (``Batch``), and the one loop that
queues the same bytes for many (``Queues.push``)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._session import ServerConnection


class Outbound:
    """One server connection's queue of stream-framed bytes, and its bound."""

    __slots__ = ("batch", "chunks", "connection", "headroom", "limit", "slow", "snapshot_bytes")

    def __init__(self, connection: ServerConnection, limit: int) -> None:
        self.connection = connection
        self.chunks: list[bytes | Batch] = []
        self.limit = limit
        self.headroom = limit
        """What may still be queued before the reader counts as slow: the bound minus what
        waits (snapshot pages and an open batch aside). One counter, so fan-out updates one
        field."""
        self.snapshot_bytes = 0
        """Snapshot pages waiting: not a sign of a slow reader, so not held to the bound."""
        self.slow = False
        self.batch: Batch | None = None
        """The last batch this queue references, until the queue is taken."""

    @property
    def size(self) -> int:
        """Bytes waiting, an open batch included."""
        batch = self.batch
        pending = batch.size if batch is not None and batch.open else 0
        return self.limit - self.headroom + self.snapshot_bytes + pending

    def exempt(self, size: int) -> None:
        """Hold the last ``size`` bytes queued (snapshot pages) to no bound until taken."""
        self.snapshot_bytes += size
        self.headroom += size

    def take(self) -> list[bytes]:
        """Everything waiting, in order; the queue starts empty and within its bound again."""
        chunks = self.chunks
        if self.batch is not None:
            self.batch = None
            if len(chunks) == 1:  # fan-out's common case: one batch, nothing else
                chunks = [chunks[0].data()]  # type: ignore[union-attr]
            else:
                chunks = [c.data() if type(c) is Batch else c for c in chunks]
        if chunks:
            self.chunks = []
        self.headroom, self.snapshot_bytes = self.limit, 0
        return chunks  # type: ignore[return-value]

    def drop(self) -> None:
        """Forget what waits (its reader is too slow to take it)."""
        self.chunks = []
        self.batch = None
        self.headroom, self.snapshot_bytes = self.limit, 0


class Batch:
    """Consecutive broadcasts of one sender, queued once per recipient: every recipient's queue
    holds this one object, and each broadcast appends to it once.

    It is sealed (takes no more) when any recipient's queue is taken, when anything else is
    queued for a recipient, or when it would take a recipient past its bound; sealing
    charges its size to every recipient. So every queue keeps its order, and a reader that
    falls behind is closed exactly as if each broadcast had been queued one by one.
    """

    __slots__ = ("_data", "_headroom", "_queues", "open", "parts", "sender", "size", "targets")

    def __init__(self, sender: Outbound, targets: list[Outbound], queues: Queues) -> None:
        self.sender = sender
        self.targets = targets
        self._queues = queues
        self.parts: list[bytes] = []
        self.size = 0
        self.open = True
        self._data = b""
        dirty = queues.dirty
        least = sys.maxsize
        for target in targets:
            target.chunks.append(self)
            target.batch = self
            dirty[target] = None
            if target.headroom < least:  # noqa: PLR1730 - min() costs a call per recipient
                least = target.headroom
        self._headroom = least
        """The least headroom among the targets, less the batch."""

    def add(self, data: bytes) -> None:
        size = len(data)
        self.parts.append(data)
        self.size += size
        self._headroom -= size
        if self._headroom < 0:
            # A recipient now waits on more than the bound: charge it, so that its next
            # frame finds it over the bound and closes it, exactly as one by one.
            self.seal()

    def seal(self) -> None:
        if self.open:
            self.open = False
            least = self._headroom + self.size  # when the batch began
            self._queues.charge(self.targets, self.size, least)
            self.targets = []  # holds no queue once charged

    def data(self) -> bytes:
        """The joined broadcasts (sealing the batch), joined once for every recipient."""
        if self.open:
            self.seal()
        if self.parts:
            parts, self.parts = self.parts, []
            self._data = parts[0] if len(parts) == 1 else b"".join(parts)
        return self._data


class Queues:
    """Which queues have output since the driver last looked, and which are slow."""

    __slots__ = ("dirty", "slow")

    def __init__(self) -> None:
        self.dirty: dict[Outbound, None] = {}
        self.slow: list[Outbound] = []

    def push(self, outbounds: Iterable[Outbound], data: bytes) -> None:
        """Append the same bytes to each queue: the one place output is queued, written as
        one loop because fan-out runs it once per recipient.

        The bound is checked on what already waits, so one frame may take a queue past it: a
        frame larger than the bound never closes a reader that keeps up."""
        size, dirty, slow = len(data), self.dirty, self.slow
        for outbound in outbounds:
            headroom = outbound.headroom
            outbound.headroom = headroom - size
            outbound.chunks.append(data)
            dirty[outbound] = None
            if headroom < 0 and not outbound.slow:
                outbound.slow = True
                slow.append(outbound)

    def push_one(self, outbound: Outbound, data: bytes) -> None:
        """Queue a connection's own frame, after the broadcasts it already references."""
        batch = outbound.batch
        if batch is not None:
            batch.seal()
        self.push((outbound,), data)

    def charge(self, outbounds: list[Outbound], size: int, least: int) -> None:
        """``push`` for bytes already queued (a sealed batch), given the least headroom among
        ``outbounds``: when none is over its bound, none can become slow here."""
        if least >= 0:
            for outbound in outbounds:
                outbound.headroom -= size
            return
        slow = self.slow
        for outbound in outbounds:
            headroom = outbound.headroom
            outbound.headroom = headroom - size
            if headroom < 0 and not outbound.slow:
                outbound.slow = True
                slow.append(outbound)
