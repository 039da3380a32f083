"""Room history: the messages each room keeps (``history_size``, ``history_ttl``), what a
participant may read of them, and the pages of a ``history`` reply.

The in-memory store is the default and lives here. With ``ServerConfig.external_history``
the driver's store (SQLite, Redis...) holds the records instead, through a door like the
backplane's: the core still decides what is stored (``keep``) and what a reader sees
(``select``); the driver only moves records (``RoomServer.history_to_store``,
``history_reads``, ``answer_history``)."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import attrs

from ._codec import decode_payload, encode_frame, encode_payload
from ._errors import LocalProtocolError, RemoteProtocolError
from ._fast import PAGE_OVERHEAD, page_records
from ._framing import PREFIX_SIZE
from ._shapes import check_stored
from .events import JSONObject, RemoteParticipant

if TYPE_CHECKING:
    from ._room import Room


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


def _readable(name: str, sender_name: str, to_names: frozenset[str] | None) -> bool:
    """Broadcasts are the room's; a direct message is its sender's and recipients'."""
    return to_names is None or name == sender_name or name in to_names


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
        )


_E = TypeVar("_E", Entry, Kept)
_Row = tuple[int, float, str, frozenset[str] | None, bytes]
"""A ``Kept``'s fields as a plain tuple, the form kept in memory."""


class History:
    """Every room's bounded history on this node, by room name; with ``external``, the door
    to the driver's store instead: what to store (``to_store``) and what to read (``reads``)."""

    __slots__ = ("_external", "_max_frame_size", "_rooms", "_size", "_ttl", "reads", "to_store")

    def __init__(self, size: int, ttl: float, max_frame_size: int, *, external: bool) -> None:
        self._size, self._ttl, self._max_frame_size = size, ttl, max_frame_size
        self._external = external
        self._rooms: dict[str, deque[_Row]] = {}
        self.to_store: list[tuple[str, bytes]] = []
        """External: records to append to each room's store, in order."""
        self.reads: list[HistoryRead] = []
        """External: requests waiting for the store's records."""

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
    ) -> None:
        """Store a delivered message, ``data`` its stream-framed ``msg`` frame. The rare one
        too large for a history page (an interceptor can grow a message to the frame limit)
        is delivered but not kept."""
        if len(data) > self._max_frame_size - PAGE_OVERHEAD:
            return
        names = None
        if to is not None:
            members = room.members
            names = frozenset(m.participant.name for r in to if (m := members.get(r)) is not None)
        if self._external:
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
            )
            self.to_store.append((room.name, encode_entry(entry)))
            return
        entries = self._rooms.get(room.name)
        if entries is None:
            entries = self._rooms[room.name] = deque(maxlen=self._size)
        elif entries and entries[0][1] < timestamp - self._ttl:
            self._expire(entries, timestamp)
        # A plain tuple, made a Kept only when read: this runs for every message.
        entries.append((seq, timestamp, sender.name, names, data))

    def _expire(self, entries: deque[_Row], now: float) -> None:
        """Drop the entries older than ``history_ttl``: on a store (a room nobody reads
        holds no stale messages) and on every read (a room nobody writes to either)."""
        oldest = now - self._ttl
        while entries and entries[0][1] < oldest:
            entries.popleft()

    def ask(self, read: HistoryRead, now: float) -> list[Entry] | None:
        """The entries answering ``read`` from memory, or None when the driver's store
        answers it later (it is queued in ``reads``)."""
        if self._external:
            self.reads.append(read)
            return None
        entries = self._rooms.get(read.room)
        if entries is None:
            return []
        self._expire(entries, now)
        after = -1 if read.since is None else read.since
        kept = self.select(read, [Kept._make(e) for e in entries if e[0] > after], now)
        return [k.entry() for k in kept]

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


def encode_entry(entry: Entry) -> bytes:
    """A stored record: the page record plus who may read it (``decode_entry`` reverses)."""
    record = entry.record()
    record["t"] = "stored"
    record["name"] = entry.sender_name
    record["to"] = None if entry.to_names is None else sorted(entry.to_names)
    return encode_payload(record)


def decode_entry(data: bytes) -> Entry:
    """A stored record back; ``LocalProtocolError`` when the store handed back something
    that is not one (a corrupt store)."""
    try:
        r = decode_payload(data)
        check_stored(r)
    except RemoteProtocolError as exc:
        raise LocalProtocolError(f"a stored history record is malformed: {exc.reason}") from None
    to = r["to"]
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
    )


def history_frames(rid: int, entries: list[Entry], max_frame_size: int) -> list[bytes]:
    """The reply to history request ``rid``: stream-framed pages that each fit a frame."""
    records = [entry.record() for entry in entries]
    pages = page_records([encode_payload(r) for r in records], max_frame_size)
    frames, start = [], 0
    for number, page in enumerate(pages, start=1):
        end = start + len(page)
        frames.append(
            encode_frame(
                {
                    "t": "history",
                    "rid": rid,
                    "more": number < len(pages),
                    "messages": records[start:end],
                }
            )
        )
        start = end
    return frames
