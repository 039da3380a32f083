"""Services (docs/PROTOCOL.md §23): a participant with the ``intercept`` grant attaches as its
room's service. Every message sent in the room then goes to it first (``svc_msg``), and it
decides what goes down: as asked, rewritten, redirected, or nothing. It may also speak as any
member or as a puppet it created. A room with no service attached follows
``ServerConfig.service_policy``; a message not decided within ``service_timeout`` is handled
as if no service were attached, and the service is told (``svc_timeout``)."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TYPE_CHECKING, cast

import attrs

from ._codec import ATTRIBUTES_DEPTH, Frame, encode_frame, is_json_object
from ._config import InterceptedMessage
from ._errors import Refusal
from ._fast import encode_ack
from ._framing import PREFIX_SIZE
from ._idempotency import Sent
from ._participant import attributes_size
from ._room import Member, Room
from ._routing import delivery_frame, known_recipients
from ._state import State
from .codes import Code
from .events import Event, JSONObject, MessageRouted, RemoteParticipant

if TYPE_CHECKING:
    from ._server import RoomServer
    from ._session import ServerConnection
    from ._token import ParticipantToken

PUPPET_ROLE = "puppet"
LARGEST_SEQ = 2**64 - 1
log = logging.getLogger("roomwire.server")


@attrs.define(eq=False)
class Up:
    """A message on its way up: accepted and acked, waiting for the service's decision."""

    id: str
    sender: RemoteParticipant
    to: tuple[str, ...] | None
    type: str
    message: JSONObject
    attachment: bytes | None
    ts: float
    deadline: float = math.inf


@attrs.define(eq=False)
class ServiceSlot:
    """A room's service: its connection (None while none is attached), the messages it was
    handed and has not decided (in order), those held for the next one (policy ``hold``),
    and the puppets it created."""

    connection: ServerConnection | None = None
    pending: dict[str, Up] = attrs.Factory(dict)
    held: list[Up] = attrs.Factory(list)
    puppets: dict[str, Member] = attrs.Factory(dict)


@attrs.frozen(eq=False)
class Interception:
    """A message an ``async`` in-process interceptor is deciding (``RoomServer.interceptions``)."""

    awaitable: Awaitable[InterceptedMessage | None]
    """What the interceptor returned: await it, then give ``RoomServer.intercepted`` the
    outcome."""
    connection: ServerConnection
    request_id: int
    message_id: str
    key: str | None
    """The send's idempotency key (§26), remembered once the interceptor let it through."""


class Services:
    """Every room's service slot, the service requests and the timeouts of one server, and
    the messages an async in-process interceptor is deciding."""

    __slots__ = ("_attached", "_interceptions", "_server")

    def __init__(self, server: RoomServer) -> None:
        self._server = server
        self._attached: dict[ServerConnection, Room] = {}
        self._interceptions: list[Interception] = []

    def watch(self, room: Room) -> None:
        """A connection joined ``room``: with a policy other than ``bypass``, its messages
        go through a slot even before any service attaches."""
        if room.service is None and self._server.config.service_policy != "bypass":
            room.service = ServiceSlot()

    # --- what users send ------------------------------------------------------------------

    def intercept(  # noqa: PLR0917 - the fields of one message
        self,
        conn: ServerConnection,
        slot: ServiceSlot,
        rid: int,
        to: tuple[str, ...] | None,
        type_: str,
        message: JSONObject,
        attachment: bytes | None,
        now: float,
    ) -> MessageRouted:
        """Accept a user's message in a room with a slot: hand it to the service, hold it,
        or refuse it, as the policy says. The sender's ack only says it was accepted."""
        server = self._server
        config = server.config
        service = slot.connection
        if service is None:
            if config.service_policy == "refuse":
                raise Refusal(Code.SERVICE_UNAVAILABLE, "no service is attached to this room")
            if len(slot.held) >= config.history_size:
                raise Refusal(Code.SERVICE_UNAVAILABLE, "the room's hold queue is full")
        sender = cast("RemoteParticipant", conn.participant)
        up = Up(config.id_factory(), sender, to, type_, message, attachment, now)
        if service is None:
            slot.held.append(up)
        else:
            self._hand(service, slot, up, now)
        self._queue(conn, encode_ack(rid, up.id))
        server.stats.messages_routed += 1
        return MessageRouted(
            message_id=up.id, from_participant_id=sender.id, broadcast=to is None, recipients=0
        )

    # --- an async in-process interceptor ---------------------------------------------------

    def defer(
        self,
        conn: ServerConnection,
        rid: int,
        message_id: str,
        awaitable: Awaitable[InterceptedMessage | None],
        key: str | None,
    ) -> None:
        self._interceptions.append(Interception(awaitable, conn, rid, message_id, key))

    def take_interceptions(self) -> list[Interception]:
        jobs = self._interceptions
        if jobs:  # else the same empty list: a driver asks after every batch of work
            self._interceptions = []
        return jobs

    def resolve(
        self, job: Interception, outcome: InterceptedMessage | Exception | None, now: float
    ) -> None:
        """See ``RoomServer.intercepted``. A sender gone meanwhile gets no answer, but what
        the interceptor let through is still delivered."""
        conn, server = job.connection, self._server
        answer = conn.state is not State.CLOSED
        if isinstance(outcome, Exception):
            log.error("the interceptor failed on message %s", job.message_id, exc_info=outcome)
            if answer:
                conn.refuse(
                    job.request_id,
                    Code.INTERCEPTOR_FAILED,
                    "the server's interceptor failed on this message",
                )
            return
        recipients = 0
        try:
            if outcome is not None:
                self._route(outcome, job.message_id, now)
                room = server.router.room(outcome.room, now)
                recipients = known_recipients(room, outcome.sender.id, outcome.to)
        except Refusal as refusal:
            if answer:
                conn.refuse(job.request_id, refusal.code, refusal.reason)
            return
        if answer:
            self._queue(conn, encode_ack(job.request_id, job.message_id, recipients))
        if job.key is not None:
            sender = cast("RemoteParticipant", conn.participant)
            sent = Sent(job.message_id, recipients, now)
            server.sent_keys.remember(cast(str, conn.room), sender.name, job.key, sent)
        server.stats.messages_routed += 1

    def _route(self, message: InterceptedMessage, message_id: str, now: float) -> None:
        """Deliver a message the interceptor let through: here, or through the backplane
        (checked first with the largest seq, as the session does)."""
        server = self._server
        room = server.router.room(message.room, now)
        m = message
        if not server.cluster.relaying:
            self._deliver(room, m.sender, message_id, now, m.to, m.type, m.message, m.attachment)
            return
        data = delivery_frame(
            message_id, LARGEST_SEQ, now, m.sender.id, m.to, m.type, m.message, m.attachment
        )
        if len(data) - PREFIX_SIZE > server.config.max_frame_size:
            raise Refusal(Code.TOO_LARGE, "the delivery would be over the frame limit")
        server.cluster.publish_message(room, message, message_id, now)

    # --- what the service sends -----------------------------------------------------------

    def request(
        self, conn: ServerConnection, room: Room, frame: Frame, size: int, now: float
    ) -> Event | None:
        """A service request (``svc_*``) from ``conn``."""
        if not cast("ParticipantToken", conn.token).intercept:
            raise Refusal(
                Code.FORBIDDEN_INTERCEPT, "the token does not grant acting as the room's service"
            )
        most = self._server.config.max_send_size
        if size > most:
            raise Refusal(Code.TOO_LARGE, f"{size}-byte frame is over the {most}-byte limit")
        if frame["t"] == "svc_attach":
            self._attach(conn, room, frame["rid"], now)
            return None
        slot = room.service
        if slot is None or slot.connection is not conn:
            raise Refusal(Code.INVALID_STATE, "attach as the room's service first")
        return _HANDLERS[frame["t"]](self, conn, room, slot, frame, now)

    def _attach(self, conn: ServerConnection, room: Room, rid: int, now: float) -> None:
        server = self._server
        if server.config.node_id is not None:
            raise Refusal(
                Code.SERVICE_UNAVAILABLE,
                "services cannot attach to a node of a cluster (a server with a backplane)",
            )
        slot = room.service
        if slot is None:
            slot = room.service = ServiceSlot()
        if slot.connection is conn:
            raise Refusal(Code.INVALID_STATE, "already attached as the room's service")
        if slot.connection is not None:
            raise Refusal(Code.SERVICE_TAKEN, "the room already has a service attached")
        slot.connection = conn
        self._attached[conn] = room
        self._ack(conn, rid)
        held, slot.held = slot.held, []
        for up in held:
            self._hand(conn, slot, up, now)

    def _decide(
        self, conn: ServerConnection, room: Room, slot: ServiceSlot, frame: Frame, now: float
    ) -> Event | None:
        up = slot.pending.get(frame["id"])
        if up is None:
            raise Refusal(
                Code.NOT_INTERCEPTED, f"no message {frame['id'][:64]!r} awaits a decision"
            )
        if frame.get("drop", False):
            del slot.pending[up.id]
            self._queue(conn, encode_ack(frame["rid"], up.id))
            return None
        new_type, new_message = frame.get("type"), frame.get("message")
        new_to = _recipients(frame.get("to"))
        # Only what replaces the sender's is checked (the rest was, when it was sent).
        self._check(new_type, new_message, new_to)
        type_ = up.type if new_type is None else new_type
        message = up.message if new_message is None else new_message
        attachment = frame.get("att", up.attachment)
        to = new_to if "to" in frame else up.to
        recipients = self._deliver(room, up.sender, up.id, up.ts, to, type_, message, attachment)
        del slot.pending[up.id]
        self._queue(conn, encode_ack(frame["rid"], up.id))
        return MessageRouted(
            message_id=up.id,
            from_participant_id=up.sender.id,
            broadcast=to is None,
            recipients=recipients,
        )

    def _send(
        self, conn: ServerConnection, room: Room, slot: ServiceSlot, frame: Frame, now: float
    ) -> Event:
        sender_id = frame["from"]
        me = cast("RemoteParticipant", conn.participant)
        member = room.members.get(sender_id)
        if sender_id != me.id and member is None:
            raise Refusal(Code.NOT_FOUND, f"no participant {sender_id[:64]!r} to send as")
        sender = me if member is None else member.participant
        to = _recipients(frame.get("to"))
        type_, message, attachment = frame["type"], frame["message"], frame.get("att")
        self._check(type_, message, to)
        server = self._server
        message_id = server.config.id_factory()
        recipients = self._deliver(room, sender, message_id, now, to, type_, message, attachment)
        self._queue(conn, encode_ack(frame["rid"], message_id))
        server.stats.messages_routed += 1
        return MessageRouted(
            message_id=message_id,
            from_participant_id=sender.id,
            broadcast=to is None,
            recipients=recipients,
        )

    def _create_puppet(
        self, conn: ServerConnection, room: Room, slot: ServiceSlot, frame: Frame, now: float
    ) -> None:
        name, attributes = frame["name"], frame["attributes"]
        config = self._server.config
        if not 0 < len(name) <= _MAX_NAME:
            raise Refusal(Code.INVALID_REQUEST, f"a name has 1 to {_MAX_NAME} characters")
        if not is_json_object(attributes, ATTRIBUTES_DEPTH):
            raise Refusal(
                Code.INVALID_REQUEST,
                f"attributes must be a JSON object at most {ATTRIBUTES_DEPTH} levels deep",
            )
        if attributes_size(attributes) > config.max_attributes_size:
            most = config.max_attributes_size
            raise Refusal(Code.TOO_LARGE, f"attributes would be over the {most}-byte limit")
        puppet = RemoteParticipant(
            id=config.id_factory(), name=name, role=PUPPET_ROLE, attributes=attributes
        )
        member = slot.puppets[puppet.id] = Member(participant=puppet, outbound=None, node=None)
        # Announced before the ack: when the service hears back, its presence lists the puppet.
        self._server.presence.add(room, member)
        self._queue(conn, encode_ack(frame["rid"], puppet.id))

    def _remove_puppet(
        self, conn: ServerConnection, room: Room, slot: ServiceSlot, frame: Frame, now: float
    ) -> None:
        member = slot.puppets.pop(frame["id"], None)
        if member is None:
            raise Refusal(Code.NOT_FOUND, f"no puppet {frame['id'][:64]!r} of this service")
        self._server.presence.remove(room, member)
        self._ack(conn, frame["rid"])

    # --- the service goes, or is too slow ---------------------------------------------------

    def closed(self, conn: ServerConnection) -> None:
        """``conn`` closed: if it was a service, its puppets leave and what it had not decided
        goes as the policy says (with ``hold``, back in front of the held messages)."""
        room = self._attached.pop(conn, None)
        if room is None:
            return
        slot = cast(ServiceSlot, room.service)
        slot.connection = None
        presence = self._server.presence
        for member in slot.puppets.values():
            presence.remove(room, member)
        slot.puppets.clear()
        undecided = list(slot.pending.values())
        slot.pending.clear()
        if self._server.config.service_policy == "bypass":
            room.service = None
        for up in undecided:
            self._absent(room, slot, up)

    def next_deadline(self) -> float:
        """The first undecided message's deadline, over every attached service."""
        if not self._attached:
            return math.inf  # asked after every batch of work: no allocation then
        deadlines = [
            next(iter(slot.pending.values())).deadline
            for room in self._attached.values()
            if (slot := cast(ServiceSlot, room.service)).pending
        ]
        return min(deadlines, default=math.inf)

    def expire(self, now: float) -> None:
        """Handle the messages past their deadline as if no service were attached, and tell
        their service (``svc_timeout``)."""
        for conn, room in self._attached.items():
            slot = cast(ServiceSlot, room.service)
            pending = slot.pending
            while pending and (up := next(iter(pending.values()))).deadline <= now:
                del pending[up.id]
                self._server.router.queue_to(
                    [conn.outbound], encode_frame({"t": "svc_timeout", "id": up.id})
                )
                self._absent(room, slot, up)

    # --- inside ---------------------------------------------------------------------------

    def _absent(self, room: Room, slot: ServiceSlot, up: Up) -> None:
        """``up`` is handled as if no service were attached: delivered as asked (bypass),
        held for the next service (hold) or dropped (refuse: it was acked already)."""
        policy = self._server.config.service_policy
        if policy == "hold":
            slot.held.append(up)
        elif policy == "bypass":
            # A delivery can outgrow a frame only through compact CBOR re-encoded: dropped.
            with suppress(Refusal):
                self._deliver(
                    room, up.sender, up.id, up.ts, up.to, up.type, up.message, up.attachment
                )

    def _hand(self, service: ServerConnection, slot: ServiceSlot, up: Up, now: float) -> None:
        up.deadline = now + self._server.config.service_timeout
        slot.pending[up.id] = up
        frame: Frame = {
            "t": "svc_msg",
            "id": up.id,
            "ts": up.ts,
            "from": up.sender.id,
            "type": up.type,
            "message": up.message,
            "to": None if up.to is None else list(up.to),
        }
        if up.attachment is not None:
            frame["att"] = up.attachment
        self._queue(service, encode_frame(frame))

    def _check(
        self, type_: str | None, message: JSONObject | None, to: tuple[str, ...] | None
    ) -> None:
        """Check a message's parts as a send's are (None: nothing to check)."""
        config = self._server.config
        if type_ is not None and not 0 < len(type_) <= config.max_type_length:
            raise Refusal(
                Code.INVALID_REQUEST, f"type must have 1 to {config.max_type_length} characters"
            )
        if message is not None and not is_json_object(message):
            raise Refusal(Code.INVALID_REQUEST, "message must be a JSON object")
        if to is not None and len(to) > config.max_recipients:
            raise Refusal(
                Code.INVALID_REQUEST, f"a send names at most {config.max_recipients} recipients"
            )

    def _deliver(  # noqa: PLR0917 - the fields of one message
        self,
        room: Room,
        sender: RemoteParticipant,
        message_id: str,
        timestamp: float,
        to: tuple[str, ...] | None,
        type_: str,
        message: JSONObject,
        attachment: bytes | None,
    ) -> int:
        """Deliver to the local recipients present now (unknown or departed ones, and
        puppets, are skipped); returns how many it was queued for."""
        server = self._server
        seq = room.seq + 1
        data = delivery_frame(message_id, seq, timestamp, sender.id, to, type_, message, attachment)
        most = server.config.max_frame_size
        if len(data) - PREFIX_SIZE > most:
            raise Refusal(
                Code.TOO_LARGE,
                f"the delivery would be {len(data) - PREFIX_SIZE} bytes, over the {most}-byte"
                " frame limit",
            )
        room.next_seq()
        router = server.router
        router.history.keep(
            room, seq, message_id, timestamp, sender, to, type_, message, attachment, data
        )
        targets = router.targets(room, sender.id, to)
        router.queue_to(targets, data)
        server.stats.deliveries += len(targets)
        return len(targets)

    def _ack(self, conn: ServerConnection, rid: int) -> None:
        self._queue(conn, encode_frame({"t": "ack", "rid": rid}))

    def _queue(self, conn: ServerConnection, data: bytes) -> None:
        self._server.router.queue_to([conn.outbound], data)


_MAX_NAME = 256
"""Longest puppet name (as a token's)."""


def _recipients(to: list[str] | None) -> tuple[str, ...] | None:
    return None if to is None else tuple(dict.fromkeys(to))


_Handler = Callable[[Services, "ServerConnection", Room, ServiceSlot, Frame, float], Event | None]
_HANDLERS: dict[str, _Handler] = {
    "svc_decide": Services._decide,
    "svc_send": Services._send,
    "svc_puppet": Services._create_puppet,
    "svc_unpuppet": Services._remove_puppet,
}
