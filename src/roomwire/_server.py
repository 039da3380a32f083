"""The room server: a thin facade over the sessions (``_session``), routing (``_routing``),
presence (``_presence``), the cluster side (``_cluster``) and the timers (``_timers``)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import cast

import attrs

from ._admission import Admission
from ._cluster import Cluster
from ._config import STRONG_KEY, InterceptedMessage, ServerConfig
from ._errors import LocalProtocolError
from ._framing import Framing
from ._history import Entry, History, HistoryRead, decode_entry
from ._idempotency import SentKeys
from ._resume import Suspended
from ._routing import Router
from ._service import Interception, Services
from ._session import ServerConnection
from ._stats import ServerStats
from ._streams import Streams
from ._timers import Timers
from ._token import ParticipantToken
from .codes import Code
from .events import RemoteParticipant


class RoomServer:
    """The room server's state machine for any number of rooms and connections.

    The driver calls ``accept(connection_id, now)`` per transport, feeds each
    ``ServerConnection``, and after each batch of work writes out
    ``connections_with_output()`` and closes those that are CLOSED. Timers: ``next_deadline``
    and ``handle_timer``. Backplane (with ``config.node_id``): publish
    ``backplane_records()`` in order, feed every record the backplane carries (this node's
    own included: local messages are delivered when they come back) to
    ``receive_backplane``, and report outages with ``backplane_lost`` /
    ``backplane_restored`` (docs/PROTOCOL.md §17).
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        # The parts the sessions work with (internal).
        self.router = Router(
            History(
                config.history_size,
                config.history_ttl,
                config.max_frame_size,
                external=config.external_history,
                shared=config.shared_history,
                epoch=config.history_epoch,
            ),
            track_freed=config.node_id is not None,
        )
        self.cluster = Cluster(config, self.router)
        self.calls = self.cluster.calls
        self.streams = Streams(self.router, config.stream_window)
        self.presence = self.cluster.presence
        self.timers = Timers()
        self.authenticate = config.authenticator or _jwt_authenticator(
            cast(str | bytes, config.secret)
        )
        self.advertised_limits = attrs.asdict(config.limits)
        self.burst = float(config.rate_burst)
        self._connections: dict[object, ServerConnection] = {}
        self._admission = Admission(config.max_connections, config.max_connections_per_address)
        self.stats = ServerStats()
        """Counters for metrics (``ServerStats``); the driver reads them when asked."""
        self.services = self.cluster.services = Services(self)
        """Rooms' services (docs/PROTOCOL.md §23)."""
        self.sent_keys = SentKeys(config.idempotency_window, config.max_idempotency_keys)
        """Internal: the idempotency keys of recent sends (docs/PROTOCOL.md §26)."""
        self.suspended = Suspended(config.resume_window)
        """Participants whose connection was lost, held for a resume (PROTOCOL.md §22)."""
        self.by_participant: dict[str, ServerConnection] = {}
        """The open, welcomed connections by participant id (a resume closes a stale one)."""

    # --- connections ----------------------------------------------------------------------

    def accept(
        self,
        connection_id: object,
        now: float,
        framing: Framing = Framing.STREAM,
        address: str | None = None,
    ) -> ServerConnection:
        """Start serving a new transport under an id the driver chooses (any hashable); a
        message transport (WebSocket) takes ``framing=Framing.MESSAGE``. ``address`` is the
        peer's (for ``max_connections_per_address``). Over a connection cap the connection
        comes back CLOSED, its TOO_MANY_CONNECTIONS close frame queued."""
        if connection_id in self._connections:
            raise LocalProtocolError(f"connection id {connection_id!r} is already in use")
        refused = self._admission.admit(connection_id, address, len(self._connections))
        connection = ServerConnection(self, connection_id, now, framing)
        self._connections[connection_id] = connection
        self.stats.connections_accepted += 1
        if refused is not None:
            connection.close_now(Code.TOO_MANY_CONNECTIONS, refused)
        return connection

    @property
    def connection_count(self) -> int:
        """Connections open now (accepted and not yet closed)."""
        return len(self._connections)

    @property
    def room_count(self) -> int:
        """Rooms with someone in them now: a participant with messaging enabled (on any
        node) or a connection of this node."""
        rooms = self.router.rooms
        local = {c.room for c in self._connections.values()}
        return sum(1 for name, room in rooms.items() if room.members or name in local)

    @property
    def suspended_count(self) -> int:
        """Participants held for a resume now: their connection was lost, their window is
        not over (PROTOCOL.md §22)."""
        return len(self.suspended)

    def connection(self, connection_id: object) -> ServerConnection | None:
        """The open connection with this id, or None (never accepted, or closed)."""
        return self._connections.get(connection_id)

    def connections_with_output(self) -> list[ServerConnection]:
        """Connections that have bytes queued or were closed since the last call: write their
        ``data_to_send()``, then close the transport of those whose state is CLOSED."""
        self.router.reap()
        dirty = self.router.queues.dirty
        connections = [outbound.connection for outbound in dirty]
        dirty.clear()
        return connections

    def participants(self, room: str) -> list[RemoteParticipant]:
        """Everyone in ``room`` with messaging enabled, on this node or others."""
        found = self.router.rooms.get(room)
        return [] if found is None else [m.participant for m in found.members.values()]

    def close(self, code: Code = Code.GOING_AWAY, reason: str = "server shutting down") -> None:
        """Close every connection (graceful shutdown): flush their output, then hang up."""
        for connection in list(self._connections.values()):
            connection.close_now(code, reason)
        self.router.reap()

    def forget(self, connection: ServerConnection) -> None:
        """Internal: ``connection`` closed; its driver still takes its close frame."""
        self._connections.pop(connection.connection_id, None)
        self._admission.release(connection.connection_id)
        self.router.queues.dirty[connection.outbound] = None

    # --- time -----------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` must next run (pings, timeouts, backplane heartbeats), or
        None."""
        when = min(
            self.timers.next_deadline(),
            self.cluster.next_beat,
            self.services.next_deadline(),
            self.suspended.next_deadline(),
        )
        return None if when == math.inf else when

    def handle_timer(self, now: float) -> None:
        """Send due pings, close connections that timed out; with a backplane, publish this
        node's heartbeat and remove the participants of nodes not heard within the TTL."""
        self.timers.run_due(now)
        self.services.expire(now)
        for connection in self.suspended.lapse(now):
            connection.lapsed()
        if now >= self.cluster.next_beat:
            self.cluster.beat(now)
        self.router.reap()

    # --- an async interceptor (docs/PROTOCOL.md §23) ------------------------------------

    def interceptions(self) -> list[Interception]:
        """Messages an ``async`` interceptor is deciding: await each one's ``awaitable`` in
        this order (per-sender order depends on it), then pass the outcome (its result, or
        the exception it raised) to ``intercepted``."""
        return self.services.take_interceptions()

    def intercepted(
        self, job: Interception, outcome: InterceptedMessage | Exception | None, now: float
    ) -> None:
        """The async interceptor decided ``job``: deliver and ack it, or refuse it
        (INTERCEPTOR_FAILED, logged once) if the interceptor raised."""
        self.services.resolve(job, outcome, now)
        self.router.reap()

    # --- history in the driver's store (config.external_history) ----------------------

    def history_to_store(self) -> list[tuple[str, bytes]]:
        """Records to append to each room's store, with the room's name, in order. Keep at
        least the last ``history_size`` of each room. Each sender's ack waits until
        ``history_stored`` reports its record stored."""
        return self.router.history.take()

    def history_stored(self, count: int) -> None:
        """The first ``count`` records taken by ``history_to_store`` (in order, not yet
        reported) are stored: their senders' acks are queued now. ``LocalProtocolError``
        for more than are waiting."""
        self.router.history.stored(count)

    def restore_history(self, epoch: str, seqs: Mapping[str, int] | None = None) -> None:
        """The driver's store opened: its epoch (every room's it holds and every room made
        without one, PROTOCOL.md §21.2) and the last seq of each room it holds, which the
        rooms' seqs continue after. Call before accepting connections."""
        router = self.router
        router.history.restore(epoch)
        for name, seq in (seqs or {}).items():
            router.name_epoch(name, epoch, seq)

    def history_positions(self) -> dict[str, int]:
        """Each room's last seq (messages and presence changes): what a store saves at a
        clean stop so that ``restore_history`` continues after it."""
        router = self.router
        live = {name: room.seq for name, room in router.rooms.items() if room.seq}
        return router.history.positions() | live

    def set_history_epoch(self, room: str, epoch: str, last_seq: int = 0) -> None:
        """The driver's store names ``room``'s epoch (it found the room's records lost and
        started a new one, or learned another node's) and the last seq it holds, which the
        room's seq continues after: the room, now or when made, carries that epoch."""
        self.router.name_epoch(room, epoch, last_seq)

    def history_epoch(self, room: str) -> str:
        """``room``'s history epoch, as this server knows it (the one its welcome says)."""
        return self.router.epoch_of(room)

    def history_reads(self) -> list[HistoryRead]:
        """History requests waiting for the store: answer each with ``answer_history``."""
        history = self.router.history
        reads, history.reads = history.reads, []
        return reads

    def answer_history(
        self,
        read: HistoryRead,
        records: list[bytes],
        now: float,
        epoch: str | None = None,
        dropped: int = 0,
    ) -> None:
        """Answer ``read`` with the room's stored records whose seq is over
        ``read.after(epoch)``, oldest first, the store's ``epoch`` for the room (None: the
        one this server knows) and the last seq the store dropped of the room (by size or
        age; 0: none); the core picks what the reader may see and whether its position was
        honoured. Raises ``LocalProtocolError`` for a record that is not one (a corrupt
        store); dropped if the reader has gone."""
        if read.resume is not None:
            self._resume_answered(read, records, now, epoch, dropped)
            return
        entries = [decode_entry(record) for record in records]
        router = self.router
        if epoch is not None:
            router.name_epoch(read.room, epoch, 0)
        connection = self._connections.get(read.connection_id)
        if connection is not None:
            room_epoch = router.epoch_of(read.room)
            found, reset = router.history.answer(read, entries, room_epoch, dropped, now)
            connection.queue_history(read.request_id, found, room_epoch, reset)

    def _resume_answered(
        self, read: HistoryRead, records: list[bytes], now: float, epoch: str | None, dropped: int
    ) -> None:
        """A resume's read answered (PROTOCOL.md §22): its handshake goes on. Damaged
        records are no error here: the resume learns that it recovered nothing."""
        try:
            entries: list[Entry] | None = [decode_entry(record) for record in records]
        except LocalProtocolError:
            entries = None
        if epoch is not None:  # the room, if made now, goes on after what the store holds
            last = max((entry.seq for entry in entries or ()), default=0)
            self.router.name_epoch(read.room, epoch, last)
        connection = self._connections.get(read.connection_id)
        if connection is not None:
            connection.resumed_from_store((read, entries, dropped), now)
        self.router.reap()

    def rooms_freed(self) -> list[str]:
        """With a backplane (``node_id``): rooms freed since the last call (their last local
        connection closed) and not made again since. The driver unsubscribes from their
        channels, and must call this as often as ``backplane_records``."""
        router = self.router
        freed = router.freed
        if not freed:
            return []
        router.freed = []
        return [name for name in dict.fromkeys(freed) if name not in router.rooms]

    # --- backplane ------------------------------------------------------------------------

    @property
    def backplane_up(self) -> bool:
        """False between ``backplane_lost`` and ``backplane_restored``."""
        return self.cluster.relaying or self.config.node_id is None

    def backplane_records(self) -> list[tuple[str | None, bytes]]:
        """Records to publish, each with its topic: a room's name, or None for node-wide
        records (heartbeats). Publish them in this order; records of one topic must reach
        every node, this one included, in one order (one channel per topic does that)."""
        return self.cluster.take_records()

    def backplane_data_to_send(self) -> list[bytes]:
        """``backplane_records()`` without the topics, for a backplane with one channel."""
        return [data for _, data in self.backplane_records()]

    def receive_backplane(self, data: bytes, now: float) -> None:
        """Apply one record from the backplane, including this node's own (a local message is
        delivered when it comes back). Raises ``RemoteProtocolError`` (and changes nothing)
        when the record is malformed. Ignored while the backplane is lost."""
        self.cluster.receive(data, now)
        self.router.reap()

    def backplane_lost(self, now: float) -> None:
        """The driver lost the backplane (publishing failed, the subscription broke or went
        deaf): local messages not yet back are delivered locally now, participants of other
        nodes are removed (local listeners get ``left``), and until ``backplane_restored``
        the node runs alone (messages are delivered locally at once, nothing is published).
        """
        self.cluster.lost()
        self.router.reap()

    def backplane_restored(self, now: float) -> None:
        """The backplane works again (resubscribed and heard back): for every room with local
        connections, ask the others to announce their participants again (a sync record) and
        announce the local ones."""
        rooms = self.router.rooms
        joined = [rooms[c.room] for c in self._connections.values() if c.room is not None]
        self.cluster.restored(now, joined)


def _jwt_authenticator(secret: str | bytes) -> Callable[[str, float], ParticipantToken]:
    def authenticate(token: str, now: float) -> ParticipantToken:
        return ParticipantToken.from_jwt(token, secret, now=now)

    if len(secret.encode() if isinstance(secret, str) else secret) >= STRONG_KEY:
        return authenticate

    def authenticate_weak(token: str, now: float) -> ParticipantToken:
        # Only with allow_weak_secret (the config refuses it otherwise): the server accepted
        # the key once, at its start. PyJWT's warning would repeat at every token check, and
        # under -W error turn each hello into a failure.
        from jwt.warnings import InsecureKeyLengthWarning  # noqa: PLC0415 - see _token

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            return authenticate(token, now)

    return authenticate_weak
