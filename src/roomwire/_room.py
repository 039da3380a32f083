"""A room's presence and order: who has messaging enabled, and the room's sequence counter."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ._participant import encode
from .events import RemoteParticipant

if TYPE_CHECKING:
    from ._config import InterceptedMessage
    from ._outbound import Outbound
    from ._service import ServiceSlot


LAPSED_KEPT = 1000
"""Lapsed participants a room remembers (``Room.lapsed``)."""


@attrs.define(eq=False)
class Member:
    """A participant with messaging enabled, on this node (with its connection's queue,
    ``outbound``) or on the ``node`` named."""

    participant: RemoteParticipant
    outbound: Outbound | None
    node: str | None
    encoded: bytes = attrs.field(init=False)
    """The participant record, encoded once for every snapshot that lists it."""

    def __attrs_post_init__(self) -> None:
        self.encoded = encode(self.participant)


@attrs.define(eq=False)
class Room:
    name: str
    epoch: str = ""
    """This incarnation of the room on this node: a room is freed when its last local
    connection closes, and made again (a new epoch, seq from 0) when one joins."""
    connections: int = 0
    """Local connections in the room (authenticated, not yet closed)."""
    kept: bool = False
    """A message of the room went to the driver's history store (``external_history``)."""
    seq: int = 0
    members: dict[str, Member] = attrs.Factory(dict)
    """Every participant with messaging enabled, by id, in the order they enabled."""
    local: dict[str, Outbound] = attrs.Factory(dict)
    """The queues of the members on this node, by participant id: fan-out's targets."""
    listeners: dict[str, Outbound] = attrs.Factory(dict)
    """The queues of local members that receive presence (enabled with the list grant)."""
    pending: dict[str, tuple[InterceptedMessage, float]] = attrs.Factory(dict)
    """With a backplane: local messages published and not yet back from it, by message id,
    in the order they were sent (each is delivered locally when it comes back)."""
    synced: bool = False
    """With a backplane: this node asked the others for the room's presence (a sync record)."""
    service: ServiceSlot | None = None
    """The room's service slot (docs/PROTOCOL.md §23): None while no message needs one."""

    lapsed: dict[str, None] = attrs.Factory(dict)
    """Participants removed when their resume window ended, the last ``LAPSED_KEPT``: a
    resume naming one learns that its view is lost (PROTOCOL.md §22)."""

    def lapse(self, participant_id: str) -> None:
        lapsed = self.lapsed
        lapsed[participant_id] = None
        if len(lapsed) > LAPSED_KEPT:
            del lapsed[next(iter(lapsed))]

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq
