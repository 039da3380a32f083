"""Presence: who has messaging enabled in each room, the snapshot a new member gets, and the
ordered changes every listener gets (local changes are also published to the cluster)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._codec import encode_frame
from ._fast import snapshot_frames
from ._participant import to_record
from ._room import Member, Room
from ._routing import Router

if TYPE_CHECKING:
    from ._cluster import Cluster


class Presence:
    __slots__ = ("_cluster", "_router")

    def __init__(self, router: Router, cluster: Cluster) -> None:
        self._router = router
        self._cluster = cluster

    def snapshot(self, room: Room, rid: int, max_frame_size: int, *, listed: bool) -> list[bytes]:
        """The snapshot pages answering enable ``rid``: everyone present now, or no one
        (one empty page) when the enable asked for no presence."""
        records = [member.encoded for member in room.members.values()] if listed else []
        return snapshot_frames(rid, records, max_frame_size)

    def add(self, room: Room, member: Member, *, publish: bool = True) -> None:
        pid = member.participant.id
        room.members[pid] = member
        if member.outbound is not None:
            room.local[pid] = member.outbound
        self._announce(room, {"t": "joined", "p": to_record(member.participant)}, pid)
        if publish:
            self._cluster.publish(room, {"t": "join", "p": to_record(member.participant)})

    def update(self, room: Room, member: Member, *, publish: bool = True) -> None:
        pid = member.participant.id
        room.members[pid] = member
        self._announce(room, {"t": "updated", "p": to_record(member.participant)}, pid)
        if publish:
            self._cluster.publish(room, {"t": "join", "p": to_record(member.participant)})

    def remove(self, room: Room, member: Member, *, publish: bool = True) -> None:
        pid = member.participant.id
        del room.members[pid]
        room.local.pop(pid, None)
        room.listeners.pop(pid, None)
        self._announce(room, {"t": "left", "id": pid}, pid)
        if publish:
            self._cluster.publish(room, {"t": "left", "id": pid})

    def _announce(self, room: Room, frame: dict[str, Any], skip: str) -> None:
        """Queue one presence change, encoded once, for every listener but ``skip``."""
        frame["seq"] = room.next_seq()
        listeners = room.listeners
        self._router.queue_to(
            [o for pid, o in listeners.items() if pid != skip], encode_frame(frame)
        )
