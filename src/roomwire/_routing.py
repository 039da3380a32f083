"""Routing: the rooms of this node, who a message is for, and fan-out to their queues
(broadcasts of one sender coalesced in a shared ``Batch``)."""

from __future__ import annotations

from collections.abc import Iterable

from ._codec import Frame, encode_frame
from ._config import InterceptedMessage
from ._history import History, check_epoch
from ._outbound import Batch, Outbound, Queues
from ._room import Room
from ._state import State
from .events import JSONObject


class Router:
    __slots__ = ("_batch", "_made", "freed", "history", "queues", "quiet", "rooms")

    def __init__(self, history: History, *, track_freed: bool = False) -> None:
        self.history = history
        """Every delivered message is kept here (the session keeps local ones itself)."""
        self.rooms: dict[str, Room] = {}
        """The rooms with local connections (a room goes with its last one)."""
        self.freed: list[str] | None = [] if track_freed else None
        """With a backplane: rooms freed since the driver last asked
        (``RoomServer.rooms_freed``)."""
        self.quiet: tuple[set[str], set[str]] = (set(), set())
        """With a backplane: rooms freed in this heartbeat interval and the one before. The
        records still on their way for them are dropped: they would make again a room that
        nobody here follows, whose later departures this node would never hear."""
        self._made = 0
        self.queues = Queues()
        self._batch: Batch | None = None
        """The open batch of the last broadcast, if nothing was queued since."""

    def room(self, name: str, now: float) -> Room:
        """Room ``name``; made if this node has no such room: going on from the epoch and
        seq its kept history or the driver's store names (``History.resume``), else in a
        new epoch."""
        room = self.rooms.get(name)
        if room is None:
            resumed = self.history.resume(name)
            if resumed is None:
                self._made += 1
                # Differs between incarnations on this node, restarts included (time moved).
                room = Room(name, epoch=f"{round(now * 1000):x}.{self._made}")
            else:  # its history was kept: the room goes on, same epoch, the next seq
                room = Room(name, epoch=resumed[0], seq=resumed[1], kept=True)
            self.rooms[name] = room
            self.history.began(name, room.seq)
        return room

    def name_epoch(self, name: str, epoch: str, last_seq: int) -> None:
        """The driver's store names room ``name``'s epoch and the last seq it holds: the
        room, now or when made, takes that epoch and goes on after that seq (PROTOCOL.md
        §21.2)."""
        room = self.rooms.get(name)
        if room is None:
            self.history.name(name, epoch, last_seq)
        else:
            room.epoch, room.seq = check_epoch(epoch), max(room.seq, last_seq)
            room.kept = True  # its epoch is the store's: freed, the room keeps it

    def epoch_of(self, name: str) -> str:
        """Room ``name``'s epoch: the one its welcome and history pages carry."""
        room = self.rooms.get(name)
        return self.history.epoch_of(name) if room is None else room.epoch

    def leave(self, room: Room) -> None:
        """A local connection of ``room`` closed: the last one frees the room, other nodes'
        participants included (nobody here would read them, and the backplane driver stops
        listening to the room); its history stays (``History.freed``)."""
        room.connections -= 1
        if not room.connections:
            self.free(room)
            if self.freed is not None:
                self.quiet[0].add(room.name)

    def free(self, room: Room) -> None:
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]
            self.history.freed(room)
            if self.freed is not None:
                self.freed.append(room.name)

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
        self.seal()
        self.queues.push(outbounds, data)

    def seal(self) -> None:
        """Close the open broadcast batch: the next broadcast goes to the room's queues as
        they are then (a member's queue changed without a presence change: a resume)."""
        batch = self._batch
        if batch is not None:
            batch.seal()
            self._batch = None

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


def known_recipients(room: Room, sender_id: str, to: tuple[str, ...] | None) -> int:
    """The participants of the room's presence a message is for, its sender not counted:
    an ack's ``recipients`` where the deliveries are not queued yet (through the backplane,
    PROTOCOL.md §26)."""
    members = room.members
    if to is None:
        return len(members) - (sender_id in members)
    return sum(1 for r in to if r != sender_id and r in members)
