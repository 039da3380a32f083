"""Services (docs/PROTOCOL.md §23): a participant with the ``intercept`` grant attaches as its
room's service. Every message sent in the room then goes to it first (``svc_msg``), and it
decides what goes down: as asked, rewritten, redirected, or nothing. It may also speak as any
member or as a puppet it created. A room with no service attached follows
``ServerConfig.service_policy``; a message not decided within ``service_timeout`` is handled
as if no service were attached, and the service is told (``svc_timeout``).

With a backplane the service may sit on any node (§23.6): its node claims the room
(``svc_on``), users' messages from other nodes reach it as ``svc_up`` records and its
decisions go down through the backplane like any message; a node whose users' messages are
out with another node's service keeps them until that node says they are done."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable
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
    origin: str | None = None
    """The node of a sender on another node (None: a local sender)."""


@attrs.define(eq=False)
class ServiceSlot:
    """A room's service: its connection (None while none is attached here), the messages it
    was handed and has not decided (in order), those held for the next one (policy ``hold``),
    and the puppets it created. With the service on another node, ``node`` names that node and
    ``pending`` holds the local messages out with it."""

    connection: ServerConnection | None = None
    node: str | None = None
    """The other node whose service holds the room (None: none, or this node's)."""
    since: float = 0.0
    """When the holding service attached, by its node's clock: the claim's rank (§23.6)."""
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
        if service is None and slot.node is None:
            if config.service_policy == "refuse":
                raise Refusal(Code.SERVICE_UNAVAILABLE, "no service is attached to this room")
            if len(slot.held) >= config.history_size:
                raise Refusal(Code.SERVICE_UNAVAILABLE, "the room's hold queue is full")
        sender = cast("RemoteParticipant", conn.participant)
        up = Up(config.id_factory(), sender, to, type_, message, attachment, now)
        if service is not None:
            self._hand(service, slot, up, now)
        elif slot.node is not None:
            self._send_up(server.router.rooms[cast(str, conn.room)], slot, up)
        else:
            slot.held.append(up)
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
        """Deliver a message the interceptor let through."""
        room = self._server.router.room(message.room, now)
        m = message
        self._deliver(room, m.sender, message_id, now, m.to, m.type, m.message, m.attachment)

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
        slot = room.service
        if slot is None:
            slot = room.service = ServiceSlot()
        if slot.connection is conn:
            raise Refusal(Code.INVALID_STATE, "already attached as the room's service")
        if slot.connection is not None or slot.node is not None:
            raise Refusal(Code.SERVICE_TAKEN, "the room already has a service attached")
        slot.connection, slot.since = conn, now
        self._attached[conn] = room
        self._ack(conn, rid)
        self._server.cluster.publish(room, {"t": "svc_on", "since": now})
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
            self._done(room, slot, up)
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
        self._done(room, slot, up)
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
        server = self._server
        presence = server.presence
        for member in slot.puppets.values():
            presence.remove(room, member)
        slot.puppets.clear()
        # Other nodes' messages go back to their nodes, which apply the policy on svc_off.
        server.cluster.publish(room, {"t": "svc_off"})
        undecided = [up for up in slot.pending.values() if up.origin is None]
        slot.pending.clear()
        self._vacated(room, slot, undecided)

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
                if up.origin is None:
                    self._absent(room, slot, up)
                else:  # its node applies the policy
                    self._server.cluster.publish(room, {"t": "svc_back", "id": up.id})

    # --- across backplane nodes (docs/PROTOCOL.md §23.6) -----------------------------------

    def announce(self, room: Room) -> None:
        """Claim ``room`` again for its service here, if any: another node asked for the
        room's state (a sync), or this node's backplane is back."""
        slot = room.service
        if slot is not None and slot.connection is not None:
            self._server.cluster.publish(room, {"t": "svc_on", "since": slot.since})

    def remote(self, room: Room, record: Frame, now: float) -> None:
        """A service record (``svc_*``) from another node."""
        kind, node, slot = record["t"], record["n"], room.service
        if kind == "svc_on":
            self._claimed(room, node, record["since"])
        elif slot is None:
            return  # nothing of this room waits for a service here
        elif kind == "svc_up":
            service = slot.connection
            if service is not None and slot.since == record["since"]:
                sender = RemoteParticipant(id=record["from"], name="", role="")
                to = record["to"]
                up = Up(
                    record["id"],
                    sender,
                    None if to is None else tuple(to),
                    record["type"],
                    record["message"],
                    record.get("att"),
                    record["ts"],
                    origin=node,
                )
                self._hand(service, slot, up, now)
            # else for a claim no longer held: its node takes it back on svc_off
        elif slot.node != node:
            return  # not from the node holding the room's service
        elif kind == "svc_off":
            self._holder_gone(room, slot)
        else:  # svc_done, svc_back: one of this node's messages, decided or handed back
            message_id: str = record["id"]
            mine = slot.pending.pop(message_id, None)
            if mine is not None and kind == "svc_back":
                self._absent(room, slot, mine)

    def node_gone(self, node: str | None, rooms: Iterable[Room]) -> None:
        """Node ``node`` (every other node if None) went silent, restarted its view of the
        rooms, or the backplane was lost: a service there is absent for this node's messages
        out with it (the policy applies), and its nodes' messages waiting for a service here
        are theirs to handle."""
        for room in list(rooms):
            slot = room.service
            if slot is None:
                continue
            if slot.node is not None and node in (None, slot.node):
                self._holder_gone(room, slot)
            else:
                theirs = slot.pending.values()
                gone = [u.id for u in theirs if u.origin is not None and node in (None, u.origin)]
                for message_id in gone:
                    del slot.pending[message_id]

    def _claimed(self, room: Room, node: str, since: float) -> None:
        """Node ``node`` claims ``room`` for a service attached at ``since``. The earliest
        claim wins, ties going to the smaller node id, so every node settles on the same
        holder whatever order the claims come in (after an outage both sides may hold one)."""
        slot = room.service
        if slot is not None:
            if slot.connection is not None:
                if (slot.since, cast(str, self._server.config.node_id)) <= (since, node):
                    return
                slot.connection.close_now(
                    Code.GOING_AWAY, "a service on another node holds the room"
                )
                slot = room.service
            elif slot.node is not None and (slot.since, slot.node) <= (since, node):
                return
        if slot is None:
            slot = room.service = ServiceSlot()
        # Messages out with a claim that lost go to the winner, after those held.
        moving = [*slot.held, *slot.pending.values()]
        slot.held, slot.pending = [], {}
        slot.node, slot.since = node, since
        for up in moving:
            self._send_up(room, slot, up)

    def _holder_gone(self, room: Room, slot: ServiceSlot) -> None:
        """The service of node ``slot.node`` is gone: this node's messages out with it are
        handled as if no service were attached."""
        slot.node = None
        undecided = list(slot.pending.values())
        slot.pending.clear()
        self._vacated(room, slot, undecided)

    def _send_up(self, room: Room, slot: ServiceSlot, up: Up) -> None:
        """Hand a local message to the service on node ``slot.node``; kept until that node
        says it is done with it."""
        slot.pending[up.id] = up
        record = {"t": "svc_up", "since": slot.since, **_fields(up)}
        self._server.cluster.publish(room, record)

    def _done(self, room: Room, slot: ServiceSlot, up: Up) -> None:
        """``up`` is decided: forgotten here, and by its node if it came from another."""
        del slot.pending[up.id]
        if up.origin is not None:
            self._server.cluster.publish(room, {"t": "svc_done", "id": up.id})

    # --- inside ---------------------------------------------------------------------------

    def _vacated(self, room: Room, slot: ServiceSlot, undecided: list[Up]) -> None:
        """No service holds the room any more: the messages it had not decided are handled
        as the policy says (with ``hold``, back in front of the held ones)."""
        if self._server.config.service_policy == "bypass":
            room.service = None
        for up in undecided:
            self._absent(room, slot, up)

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
        self._queue(service, svc_msg_frame(_fields(up)))

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
        """Deliver to the recipients present now (unknown or departed ones, and puppets, are
        skipped): here, or through the backplane (each node delivers it when it comes back,
        so its size is checked with the largest seq there can be). Returns how many local
        connections it is for."""
        server = self._server
        relaying = server.cluster.relaying
        seq = LARGEST_SEQ if relaying else room.seq + 1
        data = delivery_frame(message_id, seq, timestamp, sender.id, to, type_, message, attachment)
        most = server.config.max_frame_size
        if len(data) - PREFIX_SIZE > most:
            raise Refusal(
                Code.TOO_LARGE,
                f"the delivery would be {len(data) - PREFIX_SIZE} bytes, over the {most}-byte"
                " frame limit",
            )
        router = server.router
        targets = router.targets(room, sender.id, to)
        server.stats.deliveries += len(targets)
        if relaying:
            routed = InterceptedMessage(
                room=room.name,
                sender=sender,
                to=to,
                type=type_,
                message=message,
                attachment=attachment,
            )
            server.cluster.publish_message(room, routed, message_id, timestamp)
            return len(targets)
        room.next_seq()
        router.history.keep(
            room, seq, message_id, timestamp, sender, to, type_, message, attachment, data
        )
        router.queue_to(targets, data)
        return len(targets)

    def _ack(self, conn: ServerConnection, rid: int) -> None:
        self._queue(conn, encode_frame({"t": "ack", "rid": rid}))

    def _queue(self, conn: ServerConnection, data: bytes) -> None:
        self._server.router.queue_to([conn.outbound], data)


_MAX_NAME = 256
"""Longest puppet name (as a token's)."""


def _fields(up: Up) -> Frame:
    """An up's fields as its ``svc_msg`` frame and ``svc_up`` record carry them."""
    fields: Frame = {
        "id": up.id,
        "ts": up.ts,
        "from": up.sender.id,
        "type": up.type,
        "message": up.message,
        "to": None if up.to is None else list(up.to),
    }
    if up.attachment is not None:
        fields["att"] = up.attachment
    return fields


def svc_msg_frame(fields: Frame) -> bytes:
    """The ``svc_msg`` frame of an up's fields (an ``svc_up`` record's, say)."""
    frame: Frame = {"t": "svc_msg"}
    frame.update((key, fields[key]) for key in ("id", "ts", "from", "type", "message", "to"))
    if fields.get("att") is not None:
        frame["att"] = fields["att"]
    return encode_frame(frame)


def _recipients(to: list[str] | None) -> tuple[str, ...] | None:
    return None if to is None else tuple(dict.fromkeys(to))


_Handler = Callable[[Services, "ServerConnection", Room, ServiceSlot, Frame, float], Event | None]
_HANDLERS: dict[str, _Handler] = {
    "svc_decide": Services._decide,
    "svc_send": Services._send,
    "svc_puppet": Services._create_puppet,
    "svc_unpuppet": Services._remove_puppet,
}
