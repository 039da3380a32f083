"""Events the bindings add to the core's, for ``room.messaging.events()``."""

from __future__ import annotations

import attrs

from roomwire import Code, RemoteParticipant
from roomwire.events import (
    Event,
    MessageReceived,
    MessagingDisabled,
    MessagingEnabled,
    ParticipantAdded,
    ParticipantRemoved,
    ParticipantUpdated,
)


@attrs.frozen(kw_only=True)
class SendFailed(Event):
    """A send made with ``wait=False`` was refused after it was queued."""

    request_id: int
    """The request id ``send_message(..., wait=False)`` returned."""
    code: Code
    """Why, as a registry code."""
    reason: str
    """Why, in words."""


@attrs.frozen(kw_only=True)
class SendReceipt:
    """What the server said accepting a send or broadcast (``receipt=True``)."""

    message_id: str
    """The server's message id, the one its deliveries carry."""
    recipients: int | None
    """How many participants it was queued for, the sender not counted (docs/PROTOCOL.md
    §26); None when the room's service decides it, or the server does not count."""
    duplicate: bool
    """The server had accepted this send's idempotency key already (it was re-sent after a
    reconnect): not delivered again; the id and count are the first acceptance's."""


@attrs.frozen(kw_only=True)
class EventsDropped(Event):
    """The events queue was full: this many events were dropped before this one."""

    count: int
    """How many events were lost."""


@attrs.frozen(kw_only=True)
class Disconnected(Event):
    """The connection to the server was lost."""

    code: Code
    """The close code."""
    reason: str
    """The close reason."""
    reconnecting: bool
    """True when the client will try to reconnect."""


@attrs.frozen(kw_only=True)
class Reconnected(Event):
    """The client reconnected, messaging enabled again if it was (PROTOCOL.md §22)."""

    participant: RemoteParticipant
    """The local participant: the same id as before when the server still held it (within
    its ``resume_window``), else a new one."""
    recovered: bool = False
    """True when nothing was lost: the ``missed`` messages follow, in order, before any
    live traffic. False: the view of the room is stale (read its history again)."""
    missed: int = 0
    """Messages the server replays, sent while this client was away."""


MessagingEvent = (
    MessageReceived
    | ParticipantAdded
    | ParticipantRemoved
    | ParticipantUpdated
    | MessagingEnabled
    | MessagingDisabled
    | SendFailed
    | EventsDropped
    | Disconnected
    | Reconnected
)
"""Everything ``room.messaging.events()`` yields."""
