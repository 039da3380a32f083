"""Everything ``next_event`` returns, and the records those events carry.

Events are frozen and keyword-only; do not subclass them. A connection's state is always the
state *after* the last event it returned: ``receive_data`` only buffers, ``next_event`` decodes
one frame, applies its transition, then returns the event.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from .codes import Code

JSONObject = dict[str, Any]


class NeedData(enum.Enum):
    """Returned by ``next_event`` when no complete frame is buffered."""

    NEED_DATA = "NEED_DATA"


NEED_DATA = NeedData.NEED_DATA


@attrs.frozen(kw_only=True)
class RemoteParticipant:
    """A participant of the room, as presence reports it."""

    id: str
    """Server-assigned participant id, unique within the server (or the backplane cluster)."""
    name: str
    """Display name, from the participant's token. Not unique."""
    role: str
    """Role from the token, e.g. ``user``, ``agent`` or ``service``."""
    attributes: JSONObject = attrs.field(factory=dict)
    """JSON attributes the participant set for itself."""


@attrs.frozen(kw_only=True)
class RoomMessage:
    """A message as delivered: everything but the payload is stamped by the server."""

    id: str
    """Server-assigned message id (the same id the sender's ack carried)."""
    seq: int
    """The room's sequence number: increases with every room event, in room order."""
    timestamp: float
    """Server time (seconds, as the server's driver measures it) when the message was routed."""
    from_participant_id: str
    """The true sender, set by the server; clients cannot choose it."""
    type: str
    """Application-defined message type, e.g. ``chat``."""
    message: JSONObject
    """The JSON object the sender sent."""
    attachment: bytes | None
    """Optional binary attachment, or None."""
    broadcast: bool
    """True when the message was broadcast to the whole room."""


@attrs.frozen(kw_only=True)
class Limits:
    """Limits the server advertises in its welcome; clients check them before queuing."""

    max_frame_size: int
    """Largest frame, prefix excluded, either side may send."""
    max_send_size: int
    """Largest send / broadcast / attributes frame a client may send (leaves room for stamps)."""
    max_recipients: int
    """Most recipients one send may name."""
    max_type_length: int
    """Longest message ``type`` string, in characters."""
    max_attributes_size: int
    """Largest encoded attributes object a participant may hold."""
    max_history_limit: int = 1000
    """Most messages one ``history`` request may ask for (``ServerConfig``'s default)."""
    max_pending_calls: int = 256
    """Most calls one connection may have waiting for answers (``ServerConfig``'s default)."""
    stream_window: int = 1024 * 1024
    """Bytes of a stream a writer may send ahead of the reader's credit (§24.4)."""
    max_open_streams: int = 8
    """Most streams one connection may write or read at once."""
    idempotency_window: int = 120
    """Seconds the server remembers a send's idempotency key (§26)."""
    max_idempotency_keys: int = 1000
    """Most idempotency keys the server remembers per sender identity (§26)."""


class Event:
    """Base class of every event."""

    __slots__ = ()


@attrs.frozen(kw_only=True)
class Connected(Event):
    """Client: the server accepted the handshake."""

    participant: RemoteParticipant
    """This connection's own participant."""
    room: str
    """The room joined."""
    limits: Limits
    """The server's limits."""
    heartbeat_interval: float
    """Seconds between the server's pings."""
    heartbeat_timeout: float
    """Seconds past the interval after which silence means a dead peer."""
    resumed: bool = False
    """The hello's resume took its participant back: same id, attributes and enabled state
    (PROTOCOL.md §22)."""
    recovered: bool = False
    """A resume was asked and nothing it could have received since its position was lost:
    the ``missed`` messages follow, before anything else. False after a resume: the
    client's view of the room is stale (read history, re-fetch its state)."""
    missed: int = 0
    """Messages replayed after the welcome (when ``recovered``)."""


@attrs.frozen(kw_only=True)
class MessagingEnabled(Event):
    """Client: messaging is enabled and the presence snapshot is in."""

    request_id: int
    """The ``enable`` request's id."""
    participants: tuple[RemoteParticipant, ...]
    """Every other participant with messaging enabled (empty without presence)."""


@attrs.frozen(kw_only=True)
class MessagingDisabled(Event):
    """Client: messaging is disabled; presence is cleared."""

    request_id: int
    """The ``disable`` request's id."""


@attrs.frozen(kw_only=True)
class MessageReceived(Event):
    """Client: a message was delivered."""

    message: RoomMessage
    """The message."""


@attrs.frozen(kw_only=True)
class ParticipantAdded(Event):
    """Client: a participant enabled messaging."""

    participant: RemoteParticipant
    """The participant now present."""
    seq: int
    """The room sequence number of this change."""


@attrs.frozen(kw_only=True)
class ParticipantRemoved(Event):
    """Client: a participant disabled messaging, left, or was timed out. Sent once."""

    participant: RemoteParticipant
    """The participant as it was last seen."""
    seq: int
    """The room sequence number of this change."""


@attrs.frozen(kw_only=True)
class ParticipantUpdated(Event):
    """Client: a participant changed its attributes."""

    participant: RemoteParticipant
    """The participant with its new attributes."""
    seq: int
    """The room sequence number of this change."""


@attrs.frozen(kw_only=True)
class RequestAcked(Event):
    """Client: the server accepted a send, broadcast or attribute update."""

    request_id: int
    """The request's id."""
    message_id: str | None
    """The server's message id for a send or broadcast; None for other requests."""
    recipients: int | None = None
    """For a send or broadcast: how many participants it was queued for, the sender not
    counted (docs/PROTOCOL.md §26); None for other requests, when a service decides the
    message (§23), and from servers that do not count."""
    duplicate: bool = False
    """The send repeated an idempotency key seen within the server's window: it was not
    delivered again, and ``message_id`` and ``recipients`` are the first send's."""


@attrs.frozen(kw_only=True)
class HistoryReceived(Event):
    """Client: the answer to a ``history`` request, every page of it."""

    request_id: int
    """The ``history`` request's id."""
    messages: tuple[RoomMessage, ...]
    """The messages, in the order asked for (oldest first unless ``reverse``)."""
    epoch: str | None = None
    """The room's history epoch (PROTOCOL.md §21.2): if it is not the one asked with, the
    position asked for was not used. None from a server older than epochs."""
    reset: bool = False
    """True when the position asked for (``since``) was not honoured: from another epoch,
    or messages after it were already dropped (PROTOCOL.md §21.2). ``messages`` then start
    at the oldest kept."""


@attrs.frozen(kw_only=True)
class RequestRefused(Event):
    """Either side: a request was refused; the connection stays open."""

    request_id: int
    """The refused request's id."""
    code: Code
    """Why, as a registry code."""
    reason: str
    """Why, in words."""


@attrs.frozen(kw_only=True)
class ConnectionClosed(Event):
    """Either side: the connection is closed. Returned again on every later ``next_event``."""

    code: Code
    """The close code."""
    reason: str
    """The close reason."""
    by_peer: bool
    """True when the peer closed (or hung up); False when this side did."""


@attrs.frozen(kw_only=True)
class ParticipantJoined(Event):
    """Server: a connection completed the handshake (not yet visible to others)."""

    participant: RemoteParticipant
    """The authenticated participant."""
    room: str
    """Its room."""


@attrs.frozen(kw_only=True)
class ParticipantEnabled(Event):
    """Server: a participant enabled messaging and was announced to the room."""

    participant: RemoteParticipant
    """The participant."""


@attrs.frozen(kw_only=True)
class ParticipantDisabled(Event):
    """Server: a participant disabled messaging and was removed from presence."""

    participant: RemoteParticipant
    """The participant."""


@attrs.frozen(kw_only=True)
class AttributesChanged(Event):
    """Server: a participant changed its attributes."""

    participant: RemoteParticipant
    """The participant with its new attributes."""


@attrs.frozen(kw_only=True)
class MessageRouted(Event):
    """Server: a send or broadcast was accepted, acked and queued for its recipients."""

    message_id: str
    """The id stamped on the message."""
    from_participant_id: str
    """The sender."""
    broadcast: bool
    """True for a broadcast."""
    recipients: int
    """How many local connections it was queued for (0 when an interceptor dropped it)."""


@attrs.frozen(kw_only=True)
class CallReceived(Event):
    """Client: another participant called this one; answer with ``answer`` or
    ``fail_call``, naming ``call.id``."""

    call: RoomMessage
    """The request: ``id`` is the call's id, ``seq`` is 0 (calls are not in the room's order
    or history)."""


@attrs.frozen(kw_only=True)
class CallAnswered(Event):
    """Client: the participant called answered ``request_id``."""

    request_id: int
    """The ``call`` request's id."""
    reply: RoomMessage
    """The answer: from the callee, with the call's id and type (``seq`` is 0)."""


@attrs.frozen(kw_only=True)
class CallFailed(Event):
    """Client: the participant called answered ``request_id`` with an error (its handler's
    code, passed through unchanged, or NO_HANDLER / HANDLER_FAILED)."""

    request_id: int
    """The ``call`` request's id."""
    code: int
    """The callee's code: any integer the application chose."""
    reason: str
    """The callee's reason."""


@attrs.frozen(kw_only=True)
class CallCancelled(Event):
    """Client: a call this participant was asked is cancelled (the caller cancelled, timed
    out or left): its answer is no longer wanted."""

    call_id: str
    """The call's id."""


@attrs.frozen(kw_only=True)
class StreamOffered(Event):
    """Client: another participant opened a stream to this one; accept it with
    ``accept_stream`` or refuse it with ``abort_stream``."""

    stream_id: str
    """The stream's id, stamped by the server."""
    from_participant_id: str
    """The writer."""
    header: JSONObject
    """The writer's header."""
    timestamp: float
    """Server time of the open."""


@attrs.frozen(kw_only=True)
class ChunkReceived(Event):
    """Client: a chunk of a stream this participant reads."""

    stream_id: str
    """The stream."""
    data: bytes
    """The chunk's bytes (what it costs of the credit)."""
    header: JSONObject | None
    """The chunk's own header, if the writer gave one."""


@attrs.frozen(kw_only=True)
class CreditGranted(Event):
    """Client: the reader of a stream this participant writes granted more credit."""

    stream_id: str
    """The stream."""
    n: int
    """Bytes added to what the writer may send."""


@attrs.frozen(kw_only=True)
class StreamEnded(Event):
    """Client: the writer ended a stream this participant reads (every chunk came first)."""

    stream_id: str
    """The stream."""


@attrs.frozen(kw_only=True)
class StreamAborted(Event):
    """Client: a stream this participant writes or reads failed: the other side aborted it
    or left, a chunk broke the credit, or a frame named a stream not open."""

    stream_id: str
    """The stream."""
    code: Code
    """Why, as a registry code."""
    reason: str
    """Why, in words."""


@attrs.frozen(kw_only=True)
class UpwardMessage:
    """A message a user sent, as the room's service receives it (docs/PROTOCOL.md §23)."""

    id: str
    """The message id (the one the sender's ack carried): name it in the decision."""
    timestamp: float
    """Server time when the message was accepted."""
    from_participant_id: str
    """The true sender."""
    type: str
    """Its type."""
    message: JSONObject
    """Its JSON payload."""
    attachment: bytes | None
    """Its attachment, or None."""
    recipients: list[str] | None
    """The ids the sender asked for: ``[]`` for "the service only", None for a broadcast."""


@attrs.frozen(kw_only=True)
class MessageIntercepted(Event):
    """Client, as a room's service: a message awaits this service's decision."""

    message: UpwardMessage
    """The message."""


@attrs.frozen(kw_only=True)
class InterceptTimedOut(Event):
    """Client, as a room's service: a message was not decided within the server's
    ``service_timeout`` and was handled by the room's ``service_policy`` instead."""

    message_id: str
    """The message's id."""
