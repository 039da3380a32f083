"""Room history: the messages each room keeps (``history_size``, ``history_ttl``), what a
participant may read of them, and the pages of a ``history`` reply.

The in-memory store is the default and lives here; what is stored is decided by the
session (every delivered send or broadcast), what a reader sees is decided by ``read``."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, NamedTuple

from ._codec import encode_frame, encode_payload
from ._fast import PAGE_OVERHEAD, page_records
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
        """Broadcasts are the room's; a direct message is its sender's and recipients'."""
        to = self.to_names
        return to is None or name == self.sender_name or name in to

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


class History:
    """Every room's bounded history on this node, by room name."""

    __slots__ = ("_max_frame_size", "_rooms", "_size", "_ttl")

    def __init__(self, size: int, ttl: float, max_frame_size: int) -> None:
        self._size, self._ttl, self._max_frame_size = size, ttl, max_frame_size
        self._rooms: dict[str, deque[Entry]] = {}

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
        size: int,
    ) -> None:
        """Store a delivered message of ``size`` bytes (as a stream-framed ``msg``). The
        rare one too large for a history page (an interceptor can grow a message to the
        frame limit) is delivered but not kept."""
        if size > self._max_frame_size - PAGE_OVERHEAD:
            return
        names = None
        if to is not None:
            members = room.members
            names = frozenset(m.participant.name for r in to if (m := members.get(r)) is not None)
        entries = self._rooms.get(room.name)
        if entries is None:
            entries = self._rooms[room.name] = deque(maxlen=self._size)
        entries.append(
            Entry(
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
        )

    def read(  # noqa: PLR0917 - the fields of one request
        self, room: str, name: str, since: int | None, limit: int, reverse: bool, now: float
    ) -> list[Entry]:
        """What ``name`` may read after seq ``since``: the oldest ``limit`` of them, or with
        ``reverse`` the newest ``limit``, newest first. Expired entries are dropped here, so
        storing costs no clock check."""
        entries = self._rooms.get(room)
        if entries is None:
            return []
        oldest = now - self._ttl
        while entries and entries[0].timestamp < oldest:
            entries.popleft()
        after = -1 if since is None else since
        ordered = reversed(entries) if reverse else iter(entries)
        found: list[Entry] = []
        for entry in ordered:
            if entry.seq <= after:
                if reverse:
                    break
                continue
            if entry.readable_by(name):
                found.append(entry)
                if len(found) == limit:
                    break
        return found


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
