"""The cluster side of a node: records to publish on the backplane, records received from
it, other nodes' liveness, and the outage paths (docs/PROTOCOL.md §17)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._backplane import BACKPLANE_RECORDS, check_content, record_member, sign, unsign
from ._codec import decode_payload, encode_payload
from ._config import InterceptedMessage, ServerConfig
from ._errors import bad_frame
from ._participant import to_record
from ._presence import Presence
from ._room import Room
from ._routing import Router
from ._rpc import Calls
from ._shapes import check_frame
from .events import RemoteParticipant

if TYPE_CHECKING:
    from ._service import Services


class Cluster:
    __slots__ = (
        "_beat_at",
        "_key",
        "_node_heard",
        "_records",
        "_router",
        "calls",
        "config",
        "presence",
        "relaying",
        "services",
    )

    services: Services
    """The rooms' services, whose records cross nodes too (set by the server)."""

    def __init__(self, config: ServerConfig, router: Router) -> None:
        self.config = config
        self._router = router
        self.presence = Presence(router, self)
        """Presence, which publishes its local changes here."""
        self.calls = Calls(router, self)
        """Participant RPC, whose calls with an end on another node travel as records."""
        self.relaying = config.node_id is not None
        """Messages go through the backplane and are delivered when they come back."""
        self._records: list[tuple[str | None, bytes]] = []
        self._node_heard: dict[str, float] = {}
        """When each other node was last heard from."""
        self._beat_at = math.inf if config.node_id is None else 0.0
        key = config.backplane_key
        self._key = key.encode() if isinstance(key, str) else key
        """The cluster key records are signed with, or None."""

    @property
    def next_beat(self) -> float:
        return self._beat_at

    def take_records(self) -> list[tuple[str | None, bytes]]:
        records, self._records = self._records, []
        return records

    def publish(self, room: Room, record: dict[str, Any]) -> None:
        if self.relaying:
            record.update(n=self.config.node_id, r=room.name)
            self._records.append((room.name, self._seal(record)))

    def publish_message(
        self, room: Room, message: InterceptedMessage, message_id: str, timestamp: float
    ) -> None:
        """Publish a local message; every node, this one included, delivers it (stamped with
        its own room seq) when it comes back from the backplane."""
        room.pending[message_id] = (message, timestamp)
        record: dict[str, Any] = {
            "t": "msg",
            "id": message_id,
            "ts": timestamp,
            "to": None if message.to is None else list(message.to),
            "from": message.sender.id,
            "type": message.type,
            "message": message.message,
        }
        if message.attachment is not None:
            record["att"] = message.attachment
        self.publish(room, record)

    def receive(self, data: bytes, now: float) -> None:
        """Apply one record (see ``RoomServer.receive_backplane``)."""
        if self._key is not None:
            data = unsign(self._key, data)
        if len(data) > self.config.max_frame_size:
            # Nothing that big becomes a frame a client accepts: not even decoded.
            raise bad_frame(f"backplane record of {len(data)} bytes is over max_frame_size")
        record = decode_payload(data)
        check_frame(record, BACKPLANE_RECORDS)
        check_content(record, len(data), self.config)
        if not self.relaying:
            return
        node = record["n"]
        kind = record["t"]
        if node == self.config.node_id:
            if kind == "msg":
                self._own_message_back(record["r"], record["id"])
            return
        self._node_heard[node] = now
        if kind == "hb":
            return
        router = self._router
        name = record["r"]
        if name not in router.rooms and (name in router.quiet[0] or name in router.quiet[1]):
            return  # sent before this node freed the room and stopped listening to it
        room = router.room(name, now)
        presence = self.presence
        if kind == "msg":
            outgoing = InterceptedMessage(
                room=room.name,
                sender=RemoteParticipant(id=record["from"], name="", role=""),
                to=None if record["to"] is None else tuple(record["to"]),
                type=record["type"],
                message=record["message"],
                attachment=record.get("att"),
            )
            self._router.deliver(room, outgoing, record["id"], record["ts"], remote=True)
        elif kind == "left":
            member = room.members.get(record["id"])
            if member is not None and member.node == node:
                presence.remove(room, member, publish=False)
                self.calls.gone(record["id"])
        elif kind == "call":
            self.calls.remote_call(room, record)
        elif kind == "result":
            self.calls.remote_result(record)
        elif kind == "cancel":
            self.calls.remote_cancel(record)
        elif kind.startswith("svc_"):
            self.services.remote(room, record, now)
        elif kind == "sync":
            # That node (re)starts its view of the room: forget what it had announced (its
            # participants, its service: announced again after this record) and announce ours.
            self._drop_node(node, [room])
            self.services.node_gone(node, [room])
            self._publish_presence(room)
        else:  # "join": insert or update a participant of that node
            member = record_member(record, node)
            existing = room.members.get(member.participant.id)
            if existing is None:
                presence.add(room, member, publish=False)
            elif existing.node == node and existing.encoded != member.encoded:
                presence.update(room, member, publish=False)
        self._free_if_empty(room)

    def lost(self) -> None:
        """See ``RoomServer.backplane_lost``."""
        if not self.relaying:
            return
        self.relaying = False
        self._records.clear()
        self._node_heard.clear()
        for room in list(self._router.rooms.values()):
            room.synced = False
            self._flush_pending(room)
            self._drop_node(None, [room])
        self.calls.node_gone(None)
        self.services.node_gone(None, self._router.rooms.values())

    def restored(self, now: float, rooms: Iterable[Room]) -> None:
        """See ``RoomServer.backplane_restored``; ``rooms`` are those with local connections."""
        if self.relaying or self.config.node_id is None:
            return
        self.relaying = True
        self._beat_at = now
        for room in rooms:
            self.sync(room)

    def sync(self, room: Room) -> None:
        """Ask the other nodes for the room's presence once, and announce ours."""
        if self.relaying and not room.synced:
            room.synced = True
            self.publish(room, {"t": "sync"})
            self._publish_presence(room)

    def beat(self, now: float) -> None:
        """Publish this node's heartbeat; remove the participants of nodes gone silent."""
        config = self.config
        self._beat_at = now + config.backplane_heartbeat
        router = self._router
        router.quiet = (set(), router.quiet[0])
        if not self.relaying:
            return
        self._records.append((None, self._seal({"t": "hb", "n": config.node_id, "r": ""})))
        for node, heard in list(self._node_heard.items()):
            if now - heard > config.backplane_ttl:
                del self._node_heard[node]
                self._drop_node(node, self._router.rooms.values())
                self.calls.node_gone(node)
                self.services.node_gone(node, self._router.rooms.values())

    def _seal(self, record: dict[str, Any]) -> bytes:
        """The record's bytes as published: signed when there is a cluster key."""
        data = encode_payload(record)
        return data if self._key is None else sign(self._key, data)

    def _publish_presence(self, room: Room) -> None:
        """Announce the room's participants of this node (its service's puppets included),
        then its service's claim."""
        for member in room.members.values():
            if member.node is None:
                self.publish(room, {"t": "join", "p": to_record(member.participant)})
        self.services.announce(room)

    def _drop_node(self, node: str | None, rooms: Iterable[Room]) -> None:
        """Remove the participants of ``node`` (of every other node if None) from ``rooms``."""
        for room in list(rooms):
            for member in list(room.members.values()):
                if member.node is not None and node in (None, member.node):
                    self.presence.remove(room, member, publish=False)
            self._free_if_empty(room)

    def _free_if_empty(self, room: Room) -> None:
        """A room known only from records (no local connection) goes with its last member."""
        if not room.connections and not room.members:
            self._router.free(room)

    def _own_message_back(self, room_name: str, message_id: str) -> None:
        """Deliver a local message that came back from the backplane, and any sent before it
        that did not (none should be missing: they are not held back)."""
        room = self._router.rooms.get(room_name)
        if room is None or message_id not in room.pending:
            return  # flushed when the backplane was lost
        pending = room.pending
        while True:
            first = next(iter(pending))
            message, timestamp = pending.pop(first)
            self._router.deliver(room, message, first, timestamp)
            if first == message_id:
                return

    def _flush_pending(self, room: Room) -> None:
        for message_id, (message, timestamp) in room.pending.items():
            self._router.deliver(room, message, message_id, timestamp)
        room.pending.clear()
