"""Room history: the messages each room keeps (``history_size``, ``history_ttl``), what a
participant may read of them, and the pages of a ``history`` reply.

The in-memory store is the default and lives here. With ``ServerConfig.external_history``
the driver's store (SQLite, Redis...) holds the records instead, through a door like the
backplane's: the core still decides what is stored (``keep``) and what a reader sees
(``select``); the driver only moves records (``RoomServer.history_to_store``,
``history_reads``, ``answer_history``, ``history_stored``).

Every room's history has an *epoch*: a name for one unbroken run of its seqs. A reader's
position (a seq) is trusted only in the epoch it was read in; a store that loses records
(a restart without its file, a lost Redis stream) starts a new epoch (PROTOCOL.md §21.2)."""

from __future__ import annotations

import secrets
from collections import deque
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar, cast

import attrs

from ._codec import decode_payload, encode_frame, encode_payload
from ._errors import LocalProtocolError, RemoteProtocolError
from ._fast import PAGE_OVERHEAD, page_records
from ._framing import PREFIX_SIZE
from ._shapes import check_stored
from .events import JSONObject, RemoteParticipant

if TYPE_CHECKING:
    from ._room import Room


class Acker(Protocol):
    """A sender whose ack waits for its message's record to be stored."""

    def queue_ack(self, ack: bytes) -> None: ...


class Entry(NamedTuple):
    """One stored message, with the names that may read it when it is direct (a tuple:
    one is made for every message, on the fan-out path)."""

    seq: int
    id: str
    timestamp: float
    sender_id: str
    sender_name: str
    to_names: frozenset[str] | None
    """The recipients' names for a direct message (their identities); None: a broadcast."""
    type: str
    message: JSONObject
    attachment: bytes | None
    to_ids: frozenset[str] | None = None
    """The recipients' participant ids for a direct message (None: a broadcast, or a record
    stored before PROTOCOL.md §22, which no resume replays)."""

    def readable_by(self, name: str) -> bool:
        return _readable(name, self.sender_name, self.to_names)

    def record(self) -> dict[str, Any]:
        """The message as a ``history`` page lists it: a ``msg`` frame's fields, no ``t``."""
        record: dict[str, Any] = {
            "id": self.id,
            "seq": self.seq,
            "ts": self.timestamp,
            "from": self.sender_id,
            "type": self.type,
            "message": self.message,
            "bc": self.to_names is None,
        }
        if self.attachment is not None:
            record["att"] = self.attachment
        return record


@attrs.frozen(kw_only=True)
class HistoryRead:
    """A ``history`` request for the driver's store to answer (with ``external_history``):
    read the room's stored records with a seq over ``since`` (all of them, oldest first) and
    hand them to ``RoomServer.answer_history``. The core picks what the reader may see."""

    room: str
    """The room whose records to read."""
    since: int | None
    """Only records with a larger seq; None: from the oldest."""
    connection_id: object
    """The connection that asked (the answer is dropped if it closed meanwhile)."""
    request_id: int
    """The request's id."""
    name: str = attrs.field(repr=False)
    limit: int = attrs.field(repr=False)
    reverse: bool = attrs.field(repr=False)
    epoch: str | None = None
    """The epoch ``since`` belongs to, if the reader named one."""
    resume: dict[str, Any] | None = attrs.field(default=None, repr=False)
    """A resume's read (PROTOCOL.md §22): the hello's ``resume``, whose welcome waits for
    the answer. The driver answers it like any other."""

    def after(self, epoch: str) -> int | None:
        """The seq to read after in a store whose epoch is ``epoch``: ``since``, or None
        (from the oldest) when the reader's position is from another epoch."""
        return self.since if self.epoch in {None, epoch} else None


EPOCH_KEY = 16
"""Bytes of a page's ``epoch`` key and the text head of its value."""


def _readable(name: str, sender_name: str, to_names: frozenset[str] | None) -> bool:
    """Broadcasts are the room's; a direct message is its sender's and recipients'."""
    return to_names is None or name == sender_name or name in to_names


def _delivered_to(participant_id: str, sender_id: str, to_ids: frozenset[str] | None) -> bool:
    """Whether a message was (or, had its connection been up, would have been) delivered to
    ``participant_id``: a broadcast of someone else's, or a direct message naming it."""
    return participant_id in to_ids if to_ids is not None else sender_id != participant_id


class Kept(NamedTuple):
    """A message as the in-memory store keeps it: what a read selects on, and the ``msg``
    frame already encoded for its delivery. Holding those bytes, not the decoded message,
    lets the message's objects go as soon as it is routed (measured: a store of decoded
    messages cost the routing path 5-8 %); a read decodes only what it returns."""

    seq: int
    timestamp: float
    sender_name: str
    to_names: frozenset[str] | None
    data: bytes
    sender_id: str
    to_ids: frozenset[str] | None

    def readable_by(self, name: str) -> bool:
        return _readable(name, self.sender_name, self.to_names)

    def entry(self) -> Entry:
        frame = decode_payload(self.data[PREFIX_SIZE:])
        return Entry(
            self.seq,
            frame["id"],
            self.timestamp,
            frame["from"],
            self.sender_name,
            self.to_names,
            frame["type"],
            frame["message"],
            frame.get("att"),
            self.to_ids,
        )


_E = TypeVar("_E", Entry, Kept)
_Row = tuple[int, float, str, frozenset[str] | None, bytes, str, frozenset[str] | None]
"""A ``Kept``'s fields as a plain tuple, the form kept in memory."""


class History:
    """Every room's bounded history on this node, by room name; with ``external``, the door
    to the driver's store instead: what to store (``to_store``) and what to read (``reads``)."""

    __slots__ = (
        "_base",
        "_dropped",
        "_held",
        "_max_frame_size",
        "_named",
        "_resume",
        "_rooms",
        "_shared",
        "_size",
        "_storing",
        "_to_store_ids",
        "_ttl",
        "epoch",
        "external",
        "holds_acks",
        "reads",
        "to_store",
    )

    def __init__(
        self,
        size: int,
        ttl: float,
        max_frame_size: int,
        *,
        external: bool,
        shared: bool = False,
        epoch: str | None = None,
    ) -> None:
        self._size, self._ttl, self._max_frame_size = size, ttl, max_frame_size
        self.external, self._shared = external, shared
        self.holds_acks = external and not shared
        """A store of this node's own: each sender's ack waits for its record. A store every
        node shares is written after the ack (its records follow in the next batch)."""
        self._rooms: dict[str, deque[_Row]] = {}
        self._resume: dict[str, tuple[str, int]] = {}
        """Rooms not made on this node whose epoch and last seq a room made goes on from:
        freed rooms whose history was kept, and rooms the driver's store named (``name``)."""
        self.to_store: list[tuple[str, bytes]] = []
        """External: records to append to each room's store, in order."""
        self._to_store_ids: list[str] = []
        """The message id of each record in ``to_store``."""
        self._storing: deque[str] = deque()
        """The message ids of the records the driver took and has not reported stored."""
        self._held: dict[str, list[tuple[Acker, bytes]]] = {}
        """External: each sender's ack, by message id, until its record is stored (with the
        acks of its duplicates, §26)."""
        self.reads: list[HistoryRead] = []
        """External: requests waiting for the store's records."""
        self._named = epoch is not None
        self.epoch = secrets.token_hex(8) if epoch is None else check_epoch(epoch)
        """The node's epoch (PROTOCOL.md §21.2). Named (``history_epoch``, or a store's
        ``restore``), it is the epoch of every room made without one of its own; else only
        what ``epoch_of`` says of a room this node holds nothing of."""
        self._dropped: dict[str, int] = {}
        """In memory: the last seq each room dropped (by size or age)."""
        self._base: dict[str, int] = {}
        """The seq after which the memory holds every message of a room: the room's seq when
        this node began keeping it. With ``external`` the memory keeps the rooms too, for
        resumes (PROTOCOL.md §22): a history read asks the store."""

    def epoch_of(self, room: str) -> str:
        """The epoch of room ``room`` when this node has not made it (``Router.epoch_of``
        asks the room first)."""
        return self._resume.get(room, (self.epoch,))[0]

    def restore(self, epoch: str) -> None:
        """The driver's store opened in ``epoch``: the node's, named."""
        self.epoch, self._named = check_epoch(epoch), True

    def name(self, room: str, epoch: str, last_seq: int) -> None:
        """The driver's store names ``epoch`` for room ``room``, not made on this node, and
        the last seq it holds: the room made goes on from them (its seq never goes back)."""
        known = self._resume.get(room)
        self._resume[room] = (check_epoch(epoch), max(last_seq, known[1] if known else 0))

    def positions(self) -> dict[str, int]:
        """The last seq of each room not made on this node that a room made goes on from."""
        return {room: seq for room, (_, seq) in self._resume.items() if seq}

    def hold(self, message_id: str, sender: Acker, ack: bytes) -> None:
        """With ``holds_acks``: keep ``ack`` until the message's record is stored."""
        self._held[message_id] = [(sender, ack)]

    def hold_duplicate(self, message_id: str, sender: Acker, ack: bytes) -> bool:
        """The ack of a duplicate send (§26): held beside its first send's while that waits
        for its record; False when nothing waits (queue it at once)."""
        held = self._held.get(message_id)
        if held is not None:
            held.append((sender, ack))
        return held is not None

    def take(self) -> list[tuple[str, bytes]]:
        """The records to store now; their acks wait for ``stored``."""
        records, self.to_store = self.to_store, []
        self._storing.extend(self._to_store_ids)
        self._to_store_ids = []
        return records

    def stored(self, count: int) -> None:
        """The first ``count`` records taken are stored: release their senders' acks."""
        storing = self._storing
        if not 0 <= count <= len(storing):
            raise LocalProtocolError(
                f"{count} records reported stored, but {len(storing)} await storing"
            )
        for _ in range(count):
            self._release(storing.popleft())

    def _release(self, message_id: str) -> None:
        for sender, ack in self._held.pop(message_id, ()):
            sender.queue_ack(ack)

    def keep(  # noqa: PLR0917 - the fields of one message
        self,
        room: Room,
        seq: int,
        message_id: str,
        timestamp: float,
        sender: RemoteParticipant,
        to: tuple[str, ...] | None,
        type_: str,
        message: JSONObject,
        attachment: bytes | None,
        data: bytes,
        *,
        remote: bool = False,
    ) -> None:
        """Store a delivered message, ``data`` its stream-framed ``msg`` frame. The rare one
        too large for a history page (an interceptor can grow a message to the frame limit)
        is delivered but not kept. A ``remote`` one (from another node) is not stored in a
        store every node shares: its own node stores it."""
        if len(data) > self._max_frame_size - PAGE_OVERHEAD:
            if self.external:
                self._release(message_id)
            return
        names = ids = None
        if to is not None:
            members = room.members
            names = frozenset(m.participant.name for r in to if (m := members.get(r)) is not None)
            ids = frozenset(to)
        if self.external and not (remote and self._shared):
            entry = Entry(
                seq,
                message_id,
                timestamp,
                sender.id,
                sender.name,
                names,
                type_,
                message,
                attachment,
                ids,
            )
            self.to_store.append((room.name, encode_entry(entry)))
            self._to_store_ids.append(message_id)
            room.kept = True
        name = room.name
        entries = self._rooms.get(name)
        if entries is None:
            entries = self._rooms[name] = deque(maxlen=self._size)
        elif entries and entries[0][1] < timestamp - self._ttl:
            self._expire(name, entries, timestamp)
        if len(entries) == self._size:  # the oldest goes
            self._dropped[name] = entries[0][0]
        # A plain tuple, made a Kept only when read: this runs for every message.
        entries.append((seq, timestamp, sender.name, names, data, sender.id, ids))

    def freed(self, room: Room) -> None:
        """The room was freed. Its history is the room's, not its members': it stays (within
        ``history_size`` and ``history_ttl``), and with it the room's epoch and seq, for the
        room made again to go on from (``resume``). A room that kept nothing leaves nothing."""
        if room.kept or self._rooms.get(room.name):
            self._resume[room.name] = (room.epoch, room.seq)
        else:  # a new incarnation starts from nothing
            self._dropped.pop(room.name, None)
            self._base.pop(room.name, None)

    def resume(self, name: str) -> tuple[str, int] | None:
        """The epoch and last seq room ``name``, made now, goes on from: a freed room's
        whose history was kept, the store's for the room, else (seq 0) the node's epoch if
        named; None: the room starts a new epoch."""
        resumed = self._resume.pop(name, None)
        if resumed is None and self._named:
            return self.epoch, 0
        return resumed

    def _expire(self, room: str, entries: deque[_Row], now: float) -> None:
        """Drop the entries older than ``history_ttl``: on a store (a room nobody reads
        holds no stale messages) and on every read (a room nobody writes to either)."""
        oldest = now - self._ttl
        while entries and entries[0][1] < oldest:
            self._dropped[room] = entries.popleft()[0]

    def ask(self, read: HistoryRead, epoch: str, now: float) -> list[Entry] | None:
        """The entries answering ``read`` from memory, the room in ``epoch``, or None when
        the driver's store answers it later (it is queued in ``reads``)."""
        if self.external:
            self.reads.append(read)
            return None
        entries = self._rooms.get(read.room)
        if entries is None:
            return []
        self._expire(read.room, entries, now)
        since = read.after(epoch)
        after = -1 if since is None else since
        kept = self.select(read, [Kept._make(e) for e in entries if e[0] > after], now)
        return [k.entry() for k in kept]

    def reset(
        self, read: HistoryRead, epoch: str, dropped: int, entries: list[Entry], now: float
    ) -> bool:
        """Whether ``read``'s position could not be honoured (PROTOCOL.md §21.2): it is
        from another epoch, or a message after it was dropped (by ``history_size`` or
        ``history_ttl``: ``dropped`` is the last seq a store dropped, ``entries`` are those
        it still holds after the position; in memory, this store's own drops count)."""
        if read.since is None:
            return False
        if read.epoch not in {None, epoch}:
            return True
        oldest = now - self._ttl
        expired = max((e.seq for e in entries if e.timestamp < oldest), default=0)
        # The store's own drops only: the memory beside an external store holds this
        # node's messages since it began, not what the store keeps.
        mine = 0 if self.external else self._dropped.get(read.room, 0)
        return read.since < max(dropped, expired, mine)

    def answer(
        self, read: HistoryRead, entries: list[Entry], epoch: str, dropped: int, now: float
    ) -> tuple[list[Entry], bool]:
        """What answers ``read`` of a store's ``entries`` (those after its position), and
        whether its position was not honoured (``reset``)."""
        return self.select(read, entries, now), self.reset(read, epoch, dropped, entries, now)

    def began(self, room: str, seq: int) -> None:
        """Room ``room`` was made at ``seq``: if the memory holds nothing of it, it holds
        every message of it after ``seq`` from now on."""
        if not self._rooms.get(room):
            self._base[room] = seq

    def replay(self, room: str, after: int, participant_id: str, now: float) -> list[bytes] | None:
        """The ``msg`` frames (stream-framed, oldest first) of room ``room`` after seq
        ``after`` that were for ``participant_id``, or None when the memory does not hold
        every message after ``after`` (dropped by size or age, or from before this node
        began keeping the room)."""
        base = self._base.get(room)
        entries = self._rooms.get(room) or deque()
        self._expire(room, entries, now)
        if base is None or after < max(base, self._dropped.get(room, 0)):
            return None
        return [e[4] for e in entries if e[0] > after and _delivered_to(participant_id, e[5], e[6])]

    def replay_stored(
        self, room: Room, answer: StoredAnswer, pid: str, now: float
    ) -> list[bytes] | None:
        """A resume's replay from the store's answer (the records after its position; None
        if damaged) and, after the last of them, the memory: None when the position was
        not honoured (the epoch, a drop) or the memory does not go on from there."""
        read, entries, dropped = answer
        if entries is None or self.reset(read, room.epoch, dropped, entries, now):
            return None
        since = cast(int, read.since)
        last = max((e.seq for e in entries), default=since)
        tail = self.replay(room.name, max(last, self._base.get(room.name, 0)), pid, now)
        if tail is None:
            return None
        oldest = now - self._ttl
        head = [
            encode_frame({"t": "msg", **e.record()})
            for e in entries
            if e.seq > since and e.timestamp >= oldest and _delivered_to(pid, e.sender_id, e.to_ids)
        ]
        return head + tail

    def select(self, read: HistoryRead, entries: list[_E], now: float) -> list[_E]:
        """Of ``entries`` (oldest first), what the reader may see: unexpired, readable by its
        name, the oldest ``limit`` (with ``reverse``, the newest, newest first)."""
        oldest = now - self._ttl
        ordered = reversed(entries) if read.reverse else iter(entries)
        found: list[_E] = []
        for entry in ordered:
            if entry.timestamp >= oldest and entry.readable_by(read.name):
                found.append(entry)
                if len(found) == read.limit:
                    break
        return found


StoredAnswer = tuple[HistoryRead, list[Entry] | None, int]
"""A resume's read, the store's records after its position (None: damaged) and the last
seq the store dropped of the room."""

MAX_EPOCH_LENGTH = 16
"""Characters an epoch may have: a history page has room for that beside its records."""


def check_epoch(epoch: str) -> str:
    """``epoch``, or ``LocalProtocolError`` when it is not 1 to 16 characters."""
    if not 0 < len(epoch) <= MAX_EPOCH_LENGTH:
        raise LocalProtocolError(f"an epoch has 1 to {MAX_EPOCH_LENGTH} characters: {epoch!r}")
    return epoch


def encode_entry(entry: Entry) -> bytes:
    """A stored record: the page record plus who may read it (``decode_entry`` reverses)."""
    record = entry.record()
    record["t"] = "stored"
    record["name"] = entry.sender_name
    record["to"] = None if entry.to_names is None else sorted(entry.to_names)
    if entry.to_ids is not None:
        record["ids"] = sorted(entry.to_ids)
    return encode_payload(record)


def decode_entry(data: bytes) -> Entry:
    """A stored record back; ``LocalProtocolError`` when the store handed back something
    that is not one (a corrupt store)."""
    try:
        r = decode_payload(data)
        check_stored(r)
    except RemoteProtocolError as exc:
        raise LocalProtocolError(f"a stored history record is malformed: {exc.reason}") from None
    to, ids = r["to"], r.get("ids")
    return Entry(
        r["seq"],
        r["id"],
        float(r["ts"]),
        r["from"],
        r["name"],
        None if to is None else frozenset(to),
        r["type"],
        r["message"],
        r.get("att"),
        None if ids is None else frozenset(ids),
    )


def history_frames(
    rid: int, entries: list[Entry], max_frame_size: int, epoch: str, reset: bool
) -> list[bytes]:
    """The reply to history request ``rid``: stream-framed pages that each fit a frame,
    each naming the room's ``epoch`` (and ``reset`` when the position was not honoured)."""
    records = [entry.record() for entry in entries]
    budget = max_frame_size - len(epoch.encode()) - EPOCH_KEY
    pages = page_records([encode_payload(r) for r in records], budget)
    frames, start = [], 0
    for number, encoded in enumerate(pages, start=1):
        end = start + len(encoded)
        page: dict[str, Any] = {
            "t": "history",
            "rid": rid,
            "more": number < len(pages),
            "epoch": epoch,
            "messages": records[start:end],
        }
        if reset:
            page["reset"] = True
        frames.append(encode_frame(page))
        start = end
    return frames
