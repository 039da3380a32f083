"""A room's presence and order: who has messaging enabled, and the room's sequence counter."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import attrs
import cbor2

from .events import RemoteParticipant
from .frames import PREFIX_SIZE, Frame, encode_frame

if TYPE_CHECKING:
    from ._config import InterceptedMessage
    from ._server import ServerConnection


def participant_record(participant: RemoteParticipant) -> Frame:
    """The wire form of a participant, as in welcome, snapshot and presence frames."""
    return {
        "id": participant.id,
        "name": participant.name,
        "role": participant.role,
        "attributes": participant.attributes,
    }


@attrs.define(eq=False)
class Member:
    """A participant with messaging enabled, on this node (``connection``) or another."""

    participant: RemoteParticipant
    connection: ServerConnection | None
    node: str | None
    encoded: bytes = attrs.field(init=False)
    """The participant record, encoded once for every snapshot that lists it."""

    def __attrs_post_init__(self) -> None:
        self.encoded = cbor2.dumps(participant_record(self.participant))


@attrs.define(eq=False)
class Room:
    name: str
    seq: int = 0
    members: dict[str, Member] = attrs.Factory(dict)
    """Every participant with messaging enabled, by id, in the order they enabled."""
    local: dict[str, ServerConnection] = attrs.Factory(dict)
    """The connections of the members on this node, by participant id: fan-out's targets."""
    listeners: dict[str, ServerConnection] = attrs.Factory(dict)
    """Local connections that receive presence (enabled with the list grant)."""
    pending: dict[str, tuple[InterceptedMessage, float]] = attrs.Factory(dict)
    """With a backplane: local messages published and not yet back from it, by message id,
    in the order they were sent (each is delivered locally when it comes back)."""
    synced: bool = False
    """With a backplane: this node asked the others for the room's presence (a sync record)."""

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


PAGE_OVERHEAD = 64
"""Bytes a snapshot page or a presence frame needs besides its participant records (its keys,
request id or sequence number, array header): a record this much under the frame size fits."""


def _array_header(count: int) -> bytes:
    # An unsigned integer's CBOR head (major type 0) becomes an array's head (major type 4)
    # by setting the top bit of its first byte; cbor2 picks the shortest form for ``count``.
    head = cbor2.dumps(count)
    return bytes([head[0] | 0x80]) + head[1:]


def snapshot_frames(rid: int, members: list[Member], max_frame_size: int) -> list[bytes]:
    """The presence snapshot as frames of at most ``max_frame_size`` bytes each.

    Records are encoded once per membership change and spliced into each page's array, so a
    large room costs no re-encoding per enable.
    """
    budget = max_frame_size - PAGE_OVERHEAD
    pages: list[list[bytes]] = [[]]
    used = 0
    for member in members:
        size = len(member.encoded)
        if pages[-1] and used + size > budget:
            pages.append([])
            used = 0
        pages[-1].append(member.encoded)
        used += size
    frames = []
    for number, records in enumerate(pages, start=1):
        head = encode_frame(
            {"t": "snapshot", "rid": rid, "more": number < len(pages), "participants": []}
        )
        # The empty array is the map's last value: swap it for the records.
        body = head[PREFIX_SIZE:-1] + _array_header(len(records)) + b"".join(records)
        frames.append(struct.pack(">I", len(body)) + body)
    return frames
