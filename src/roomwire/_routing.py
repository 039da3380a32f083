"""Routing: the rooms of this node, who a message is for, and fan-out to their queues
(broadcasts of one sender coalesced in a shared ``Batch``)."""

from __future__ import annotations

from collections.abc import Iterable

from ._codec import Frame, encode_frame
from ._config import InterceptedMessage
from ._history import History
from ._outbound import Batch, Outbound, Queues
from ._room import Room
from ._state import State
from .events import JSONObject


class Router:
    __slots__ = ("_batch", "history", "queues", "rooms")

    def __init__(self, history: History) -> None:
        self.history = history
        """Every delivered message is kept here (the session keeps local ones itself)."""
        self.rooms: dict[str, Room] = {}
        self.queues = Queues()
        self._batch: Batch | None = None
        """The open batch of the last broadcast, if nothing was queued since."""

    def room(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name)
        return room

    def targets(self, room: Room, sender_id: str, to: tuple[str, ...] | None) -> list[Outbound]:
        """The queues of the local connections a message is for."""
        local = room.local
        if to is None:
            return [o for pid, o in local.items() if pid != sender_id]
        return [o for r in to if (o := local.get(r)) is not None]

    def deliver(
        self,
        room: Room,
        message: InterceptedMessage,
        message_id: str,
        timestamp: float,
        *,
        remote: bool = False,
    ) -> None:
        """Stamp a message with the room's next seq and queue it for every local recipient
        (``remote``: it came from another node)."""
        seq, m = room.next_seq(), message
        data = delivery_frame(
            message_id, seq, timestamp, m.sender.id, m.to, m.type, m.message, m.attachment
        )
        self.history.keep(
            room,
            seq,
            message_id,
            timestamp,
            m.sender,
            m.to,
            m.type,
            m.message,
            m.attachment,
            data,
            remote=remote,
        )
        self.queue_to(self.targets(room, m.sender.id, m.to), data)

    def broadcast(self, sender: Outbound, room: Room, sender_id: str, data: bytes) -> int:
        """Queue a local participant's broadcast; returns how many connections it is for.

        Consecutive broadcasts of one sender go to the same connections (any change of
        membership queues presence first, which seals the batch), so they share one batch."""
        batch = self._batch
        if batch is None or not batch.open or batch.sender is not sender:
            if batch is not None:
                batch.seal()
            batch = self._batch = Batch(sender, self.targets(room, sender_id, None), self.queues)
        recipients = len(batch.targets)
        batch.add(data)
        return recipients

    def queue_to(self, outbounds: Iterable[Outbound], data: bytes) -> None:
        """Queue the same bytes for each queue, after any broadcasts they reference."""
        batch = self._batch
        if batch is not None:
            batch.seal()
            self._batch = None
        self.queues.push(outbounds, data)

    def reap(self) -> None:
        """Close slow consumers. Closing one announces a departure, which can overflow
        another, so loop until none is left."""
        slow = self.queues.slow
        while slow:
            connection = slow.pop().connection
            if connection.state is not State.CLOSED:
                connection.close_slow()


def delivery_frame(  # noqa: PLR0917 - the fields of one frame
    message_id: str,
    seq: int,
    timestamp: float,
    sender_id: str,
    to: tuple[str, ...] | None,
    type_: str,
    message: JSONObject,
    attachment: bytes | None,
) -> bytes:
    """A ``msg`` frame, stamped with its id, the room's seq, the time and the true sender."""
    frame: Frame = {
        "t": "msg",
        "id": message_id,
        "seq": seq,
        "ts": timestamp,
        "from": sender_id,
        "type": type_,
        "message": message,
        "bc": to is None,
    }
    if attachment is not None:
        frame["att"] = attachment
    return encode_frame(frame)
