"""The room-server side: many rooms, many connections, one process (plus a backplane door)."""

from __future__ import annotations

import heapq
import itertools
import math
import sys
from collections.abc import Callable, Iterable
from typing import Any, cast

import attrs
import cbor2

from ._backplane import BACKPLANE_RECORDS, record_member
from ._codec import Frame, decode_payload, encode_frame, encode_payload, is_json_object
from ._config import PROTOCOL_VERSION, InterceptedMessage, ServerConfig
from ._connection import BaseConnection, NextEvent
from ._errors import LocalProtocolError, RemoteProtocolError, TokenError, bad_frame
from ._fast import PAGE_OVERHEAD, encode_ack, snapshot_frames
from ._framing import PREFIX_SIZE, Framing
from ._participant import attributes_size, merge_attributes, to_record
from ._registry import FrameKind
from ._room import Member, Room
from ._shapes import (
    check_attrs,
    check_bare,
    check_broadcast,
    check_close,
    check_enable,
    check_frame,
    check_hello,
    check_request,
    check_send,
)
from ._state import ON_REFUSAL, Input, State
from ._token import ParticipantToken
from .codes import Code
from .events import (
    AttributesChanged,
    Event,
    JSONObject,
    MessageRouted,
    ParticipantDisabled,
    ParticipantEnabled,
    ParticipantJoined,
    RemoteParticipant,
    RequestRefused,
)


class _Refusal(Exception):
    """A request is refused; the connection answers with an error frame and stays open."""

    def __init__(self, code: Code, reason: str) -> None:
        self.code, self.reason = code, reason


class ServerConnection(BaseConnection):
    """The server's side of one client connection, made by ``RoomServer.accept``.

    Feed it with ``receive_data`` and drain ``next_event(now)`` as for a client. Its output
    (including fan-out from other connections) is found through
    ``RoomServer.connections_with_output()``; once ``state`` is CLOSED and its data is sent,
    close the transport.
    """

    __slots__ = (
        "_bucket_at",
        "_deadline",
        "_heard",
        "_joined",
        "_left",
        "_me",
        "_member",
        "_pinged",
        "_room",
        "_server",
        "_slow",
        "_snapshot_bytes",
        "_strikes",
        "_timer_at",
        "_token",
        "_tokens",
        "connection_id",
    )

    def __init__(
        self, server: RoomServer, connection_id: object, now: float, framing: Framing
    ) -> None:
        super().__init__(server.config.max_frame_size, framing)
        self._server = server
        self.connection_id = connection_id
        # Placeholders until the hello is accepted: requests are refused before that.
        self._me = _NOBODY
        self._token = _NO_GRANTS
        self._room = _NO_ROOM
        self._joined = False
        self._member: Member | None = None
        self._heard = self._pinged = now
        self._deadline = now + server.config.handshake_timeout
        self._timer_at = math.inf
        self._slow = False
        self._snapshot_bytes = 0
        self._left = server.config.outbound_limit
        """What may still be queued before the reader counts as slow (the bound minus what
        waits, snapshot pages aside): one counter, so fan-out updates one field."""
        self._tokens = server._burst  # one shared float until the first request
        self._strikes = 0.0
        self._bucket_at = now

    @property
    def participant(self) -> RemoteParticipant | None:
        """The authenticated participant (None until the handshake completes)."""
        return self._me if self._joined else None

    @property
    def token(self) -> ParticipantToken | None:
        """The verified token, with the participant's grants."""
        return self._token if self._joined else None

    @property
    def room(self) -> str | None:
        """The room's name, once the handshake completes."""
        return self._room.name if self._joined else None

    def next_event(self, now: float) -> NextEvent:
        """Process one frame from this client; ``NEED_DATA`` when none is complete.

        Raises ``RemoteProtocolError`` on invalid input, after queuing a close frame and
        removing the participant. Other connections are unaffected.
        """
        server = self._server
        while True:
            try:
                # Inside the try: the length prefix itself can break the protocol.
                payload = self._next_payload()
                if type(payload) is not bytes:
                    server._flush_batch()
                    server._reap()
                    return payload  # type: ignore[return-value]
                self._heard = now
                frame = decode_payload(payload)
                kind = CLIENT_KINDS.get(frame["t"])
                if kind is None:
                    raise bad_frame(f"unknown frame kind {frame['t'][:40]!r}")
                kind.check(frame)
                if kind.verb is not None:
                    event = self._request(kind, frame, len(payload), now)
                elif kind.input is None or not self._allowed(kind.input):
                    raise RemoteProtocolError(kind.unexpected.format(kind=frame["t"]))
                else:
                    self._move(kind.input)
                    event = kind.handle(self, frame, len(payload), now)
            except RemoteProtocolError as exc:
                self._fail(exc)
                server._reap()
                raise
            if event is not None:
                server._reap()
                return event

    # --- frame handlers -------------------------------------------------------------------

    # --- frame handlers: the registry (CLIENT_KINDS, below) checks and moves first ------
    # WARNING: inputs chosen outside the registry and _state.py, for frames this side sends:
    # WELCOME (after a hello), SNAPSHOT_END (after an enable), DISABLE_ACK (after a
    # disable), ABORT (every close from this side: _abort, EOF, timers).

    def _heartbeat(self, frame: Frame, size: int, now: float) -> None:
        if frame["t"] == "ping":
            self._send({"t": "pong"})

    def _peer_close(self, frame: Frame, size: int, now: float) -> Event:
        self._send({"t": "close", "code": frame["code"], "reason": frame["reason"]})
        return self._settle(Code(frame["code"]), frame["reason"], True)

    def _hello(self, frame: Frame, size: int, now: float) -> Event:
        server = self._server
        config = server.config
        if frame["v"] != PROTOCOL_VERSION:
            return self._abort(
                Code.UNSUPPORTED_VERSION, f"version {frame['v']} is not {PROTOCOL_VERSION}"
            )
        try:
            token = server._authenticator(frame["token"], now)
        except TokenError as exc:
            return self._abort(exc.code, exc.reason)
        # Every connection of a room (and role) holds the same strings, not a copy each.
        token = attrs.evolve(token, room=sys.intern(token.room), role=sys.intern(token.role))
        room_name = frame.get("room")
        if room_name is not None and room_name != token.room:
            return self._abort(
                Code.ROOM_MISMATCH, f"the token is for another room, not {room_name!r}"
            )
        participant = RemoteParticipant(
            id=config.id_factory(), name=token.name, role=token.role, attributes={}
        )
        self._me, self._token, self._joined = participant, token, True
        self._room = server._room(token.room)
        server._sync(self._room)
        self._send(
            {
                "t": "welcome",
                "v": PROTOCOL_VERSION,
                "room": token.room,
                "participant": to_record(participant),
                "limits": server._limits,
                "hb": config.heartbeat_interval,
                "hbt": config.heartbeat_timeout,
            }
        )
        self._move(Input.WELCOME)
        self._pinged = now
        server._arm(self, self._next_timer())
        return ParticipantJoined(participant=participant, room=token.room)

    def _request(self, kind: _Kind, frame: Frame, size: int, now: float) -> Event | None:
        if self._state is State.HANDSHAKE:
            raise RemoteProtocolError(kind.unexpected.format(kind=frame["t"]))
        rid = frame["rid"]
        try:
            rate = self._server.config.rate_limit
            if rate is not None and not self._spend(now, rate):
                if self._strikes > self._server.config.rate_burst:
                    return self._abort(
                        Code.RATE_LIMIT_EXCEEDED, "requests kept coming over the rate limit"
                    )
                raise _Refusal(Code.RATE_LIMITED, "over the request rate limit: slow down")
            event = cast(Input, kind.input)
            if not self._allowed(event):
                raise _Refusal(Code.INVALID_STATE, f"cannot {kind.verb} while {self._state.name}")
            self._move(event)
            return kind.handle(self, frame, size, now)
        except _Refusal as refusal:
            refused = ON_REFUSAL.get(self._state)
            if refused is not None:
                self._move(refused)
            self._send(
                {"t": "error", "rid": rid, "code": int(refusal.code), "reason": refusal.reason}
            )
            return RequestRefused(request_id=rid, code=refusal.code, reason=refusal.reason)

    def _spend(self, now: float, rate: float) -> bool:
        """Take a token for one request. Refusals count as strikes, which drain at the same
        rate as tokens refill: a client slightly over the rate is refused now and then, one
        far over it piles up strikes until it is closed."""
        refill = max(now - self._bucket_at, 0.0) * rate
        self._bucket_at = now
        self._tokens = min(self._server._burst, self._tokens + refill)
        self._strikes = max(0.0, self._strikes - refill)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self._strikes += 1.0
        return False

    def _check_size(self, size: int) -> None:
        most = self._server.config.max_send_size
        if size > most:
            raise _Refusal(Code.TOO_LARGE, f"{size}-byte frame is over the {most}-byte limit")

    def _enable(self, frame: Frame, size: int, now: float) -> Event:
        presence = frame.get("presence", True)
        if presence and not self._token.can_list:
            raise _Refusal(Code.FORBIDDEN_LIST, "the token does not grant listing participants")
        room, server = self._room, self._server
        others = list(room.members.values()) if presence else []
        self._member = Member(participant=self._me, connection=self, node=None)
        server._add_member(room, self._member)
        if presence:
            room.listeners[self._me.id] = self
        records = [member.encoded for member in others]
        for data in snapshot_frames(frame["rid"], records, server.config.max_frame_size):
            # A large room's snapshot is not a sign of a slow reader: it does not count
            # against the outbound bound until the driver has taken it.
            self._queue(data)
            self._snapshot_bytes += len(data)
            self._left += len(data)
        self._move(Input.SNAPSHOT_END)
        return ParticipantEnabled(participant=self._me)

    def _disable(self, frame: Frame, size: int, now: float) -> Event:
        self._leave()
        self._send({"t": "ack", "rid": frame["rid"]})
        self._move(Input.DISABLE_ACK)
        return ParticipantDisabled(participant=self._me)

    def _attributes(self, frame: Frame, size: int, now: float) -> Event:
        self._check_size(size)
        update = frame["attributes"]
        if not is_json_object(update):
            raise _Refusal(Code.INVALID_REQUEST, "attributes must be a JSON object")
        merged = merge_attributes(self._me.attributes, update)
        config = self._server.config
        most = config.max_attributes_size
        if attributes_size(merged) > most:
            raise _Refusal(Code.TOO_LARGE, f"attributes would be over the {most}-byte limit")
        me = attrs.evolve(self._me, attributes=merged)
        # max_attributes_size may be set above what a frame holds: presence frames and
        # snapshot pages must still fit the max_frame_size every client was promised.
        if len(cbor2.dumps(to_record(me))) > config.max_frame_size - PAGE_OVERHEAD:
            raise _Refusal(
                Code.TOO_LARGE,
                f"attributes would not fit a {config.max_frame_size}-byte presence frame",
            )
        self._me = me
        self._send({"t": "ack", "rid": frame["rid"]})
        if self._member is not None:
            self._member = Member(participant=self._me, connection=self, node=None)
            self._server._update_member(self._room, self._member)
        return AttributesChanged(participant=self._me)

    def _message(self, frame: Frame, size: int, now: float) -> Event:
        broadcast = frame["t"] == "broadcast"
        server, config, room = self._server, self._server.config, self._room
        if broadcast and not self._token.can_broadcast:
            raise _Refusal(Code.FORBIDDEN_BROADCAST, "the token does not grant broadcasting")
        if not broadcast and not self._token.can_send:
            raise _Refusal(Code.FORBIDDEN_SEND, "the token does not grant sending")
        self._check_size(size)
        type_ = frame["type"]
        if not 0 < len(type_) <= config.max_type_length:
            raise _Refusal(
                Code.INVALID_REQUEST, f"type must have 1 to {config.max_type_length} characters"
            )
        if not is_json_object(frame["message"]):
            raise _Refusal(Code.INVALID_REQUEST, "message must be a JSON object")
        to: tuple[str, ...] | None = None
        if not broadcast:
            to = tuple(dict.fromkeys(frame["to"]))
            if not 0 < len(to) <= config.max_recipients:
                raise _Refusal(
                    Code.INVALID_REQUEST, f"a send names 1 to {config.max_recipients} recipients"
                )
            missing = [r for r in to if r not in room.members]
            if missing:
                shown = ", ".join(repr(r[:64]) for r in missing[:5])
                raise _Refusal(Code.NOT_FOUND, f"not present with messaging enabled: {shown}")
        message_id = config.id_factory()
        ordered = server._ordered
        sender, body, attachment = self._me, frame["message"], frame.get("att")
        routed: InterceptedMessage | None = None
        delivered = True
        if config.interceptor is not None or ordered:
            # Only these paths need the message as an object: the common one stays lean.
            routed = server._intercept(
                InterceptedMessage(
                    room=room.name,
                    sender=sender,
                    to=to,
                    type=type_,
                    message=body,
                    attachment=attachment,
                )
            )
            delivered = routed is not None
            if routed is not None:
                sender, to, type_ = routed.sender, routed.to, routed.type
                body, attachment = routed.message, routed.attachment
        data = b""
        if delivered:
            # Through the backplane the seq is stamped when the message comes back: check
            # the size with the largest seq there can be.
            seq = _LARGEST_SEQ if ordered else room.next_seq()
            data = delivery_frame(message_id, seq, now, sender.id, to, type_, body, attachment)
            if len(data) - PREFIX_SIZE > config.max_frame_size:
                # Compact CBOR (half-precision floats, say) can grow when re-encoded: the
                # delivery must still fit every recipient's frame limit.
                raise _Refusal(
                    Code.TOO_LARGE,
                    f"the delivery would be {len(data) - PREFIX_SIZE} bytes, over the"
                    f" {config.max_frame_size}-byte frame limit",
                )
        self._queue(encode_ack(frame["rid"], message_id))
        if delivered and routed is None and to is None:
            recipients = server._broadcast(self, data)
        else:
            targets = server._targets(room, sender.id, to) if delivered else []
            recipients = len(targets)
            if routed is not None and ordered:
                server._publish_message(room, routed, message_id, now)
            else:
                server._queue_to(targets, data)
        return MessageRouted(
            message_id=message_id,
            from_participant_id=self._me.id,
            broadcast=broadcast,
            recipients=recipients,
        )

    # --- lifecycle ------------------------------------------------------------------------

    def _leave(self) -> None:
        """Remove this participant from presence; a no-op when it is not there."""
        member, self._member = self._member, None
        if member is not None:
            self._server._remove_member(self._room, member)

    def _on_closed(self) -> None:
        self._timer_at = math.inf
        self._leave()
        self._server._forget(self)

    def _queue(self, data: bytes) -> None:
        server = self._server
        if server._batch_from is self:
            # Its own broadcasts never come back to it: its replies may pass them.
            server._append((self,), data)
        else:
            server._queue_to((self,), data)

    @property
    def outbound_size(self) -> int:
        """Bytes queued and not yet taken by ``data_to_send``."""
        self._server._flush_batch()
        return self._server.config.outbound_limit - self._left + self._snapshot_bytes

    def data_to_send(self) -> bytes:
        server = self._server
        server._flush_batch()
        server._reap()
        self._snapshot_bytes = 0
        self._left = server.config.outbound_limit
        return super().data_to_send()

    def _close_slow(self) -> None:
        # What is queued would never be read: drop it and keep only the close frame.
        self._server._flush_batch()
        self._out.clear()
        self._snapshot_bytes = 0
        self._left = limit = self._server.config.outbound_limit
        self._abort(Code.SLOW_CONSUMER, f"over {limit} bytes queued: the client reads too slowly")

    def _next_timer(self) -> float:
        """Once welcomed: the next ping, or the dead-peer deadline if that comes first."""
        config = self._server.config
        return min(
            self._pinged + config.heartbeat_interval,
            self._heard + config.heartbeat_interval + config.heartbeat_timeout,
        )

    def _on_timer(self, now: float) -> None:
        config = self._server.config
        if self._state is State.HANDSHAKE:
            # The only timer armed during the handshake is its deadline (see accept), and
            # handle_timer runs a timer only once it is due.
            self._abort(Code.HANDSHAKE_TIMEOUT, "no valid hello within the handshake timeout")
            return
        if now >= self._heard + config.heartbeat_interval + config.heartbeat_timeout:
            self._abort(Code.HEARTBEAT_TIMEOUT, "nothing heard within the heartbeat timeout")
            return
        if now >= self._pinged + config.heartbeat_interval:
            self._send({"t": "ping"})
            self._pinged = now
        self._server._arm(self, self._next_timer())


def _jwt_authenticator(secret: str | bytes) -> Callable[[str, float], ParticipantToken]:
    def authenticate(token: str, now: float) -> ParticipantToken:
        return ParticipantToken.from_jwt(token, secret, now=now)

    return authenticate


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


_NOBODY = RemoteParticipant(id="", name="", role="")
_NO_GRANTS = ParticipantToken(
    room="-", name="-", can_send=False, can_broadcast=False, can_list=False
)
_NO_ROOM = Room("")
_LARGEST_SEQ = 2**64 - 1

_Kind = FrameKind[Callable[[ServerConnection, Frame, int, float], Event | None]]
CLIENT_KINDS: dict[str, _Kind] = {
    "hello": FrameKind(check_hello, Input.HELLO, ServerConnection._hello, None, "a second hello"),
    "enable": FrameKind(check_enable, Input.ENABLE, ServerConnection._enable, "enable"),
    "disable": FrameKind(check_request, Input.DISABLE, ServerConnection._disable, "disable"),
    "send": FrameKind(check_send, Input.SEND, ServerConnection._message, "send"),
    "broadcast": FrameKind(check_broadcast, Input.SEND, ServerConnection._message, "broadcast"),
    "attrs": FrameKind(
        check_attrs, Input.ATTRIBUTES, ServerConnection._attributes, "set attributes"
    ),
    "ping": FrameKind(check_bare, Input.HEARTBEAT, ServerConnection._heartbeat),
    "pong": FrameKind(check_bare, Input.HEARTBEAT, ServerConnection._heartbeat),
    "close": FrameKind(check_close, Input.PEER_CLOSE, ServerConnection._peer_close),
}
"""Every frame kind a client sends: the server's one registry. Requests (with a verb) are
refused with INVALID_STATE where the state does not allow them; other frames out of place
break the protocol."""


class RoomServer:
    """The room server's state machine for any number of rooms and connections.

    The driver calls ``accept(connection_id, now)`` per transport, feeds each
    ``ServerConnection``, and after each batch of work writes out
    ``connections_with_output()`` and closes those that are CLOSED. Timers: ``next_deadline``
    and ``handle_timer``. Backplane (with ``config.node_id``): publish
    ``backplane_records()`` in order, feed every record the backplane carries (this node's
    own included: local messages are delivered when they come back) to
    ``receive_backplane``, and report outages with ``backplane_lost`` /
    ``backplane_restored`` (docs/PROTOCOL.md §17).
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._connections: dict[object, ServerConnection] = {}
        self._rooms: dict[str, Room] = {}
        self._dirty: dict[ServerConnection, None] = {}
        self._slow: list[ServerConnection] = []
        self._batch: list[bytes] = []
        """Deliveries of consecutive broadcasts from ``_batch_from``, not yet queued."""
        self._batch_from: ServerConnection | None = None
        self._batch_to: list[ServerConnection] = []
        self._batch_left = 0
        """The least headroom among ``_batch_to``, less the batch."""
        self._timers: list[tuple[float, int, ServerConnection]] = []
        self._timer_ids = itertools.count()
        self._backplane: list[tuple[str | None, bytes]] = []
        self._burst = float(config.rate_burst)
        self._ordered = config.node_id is not None
        """Messages go through the backplane and are delivered when they come back."""
        self._nodes: dict[str, float] = {}
        """When each other node was last heard from."""
        self._beat_at = math.inf if config.node_id is None else 0.0
        self._authenticator = config.authenticator or _jwt_authenticator(
            cast(str | bytes, config.secret)
        )
        self._limits = attrs.asdict(config.limits)

    # --- connections ----------------------------------------------------------------------

    def accept(
        self, connection_id: object, now: float, framing: Framing = Framing.STREAM
    ) -> ServerConnection:
        """Start serving a new transport under an id the driver chooses (any hashable); a
        message transport (WebSocket) takes ``framing=Framing.MESSAGE``."""
        if connection_id in self._connections:
            raise LocalProtocolError(f"connection id {connection_id!r} is already in use")
        connection = ServerConnection(self, connection_id, now, framing)
        self._connections[connection_id] = connection
        self._arm(connection, connection._deadline)
        return connection

    def connection(self, connection_id: object) -> ServerConnection | None:
        """The open connection with this id, or None (never accepted, or closed)."""
        return self._connections.get(connection_id)

    def connections_with_output(self) -> list[ServerConnection]:
        """Connections that have bytes queued or were closed since the last call: write their
        ``data_to_send()``, then close the transport of those whose state is CLOSED."""
        self._flush_batch()
        self._reap()
        dirty = list(self._dirty)
        self._dirty.clear()
        return dirty

    def participants(self, room: str) -> list[RemoteParticipant]:
        """Everyone in ``room`` with messaging enabled, on this node or others."""
        found = self._rooms.get(room)
        return [] if found is None else [m.participant for m in found.members.values()]

    def close(self, code: Code = Code.GOING_AWAY, reason: str = "server shutting down") -> None:
        """Close every connection (graceful shutdown): flush their output, then hang up."""
        for connection in list(self._connections.values()):
            connection._abort(code, reason)
        self._reap()

    # --- time -----------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` must next run (pings, timeouts, backplane heartbeats), or
        None."""
        timers = self._timers
        while timers and timers[0][0] != timers[0][2]._timer_at:
            heapq.heappop(timers)  # superseded entry
        when = min(timers[0][0] if timers else math.inf, self._beat_at)
        return None if when == math.inf else when

    def handle_timer(self, now: float) -> None:
        """Send due pings, close connections that timed out; with a backplane, publish this
        node's heartbeat and remove the participants of nodes not heard within the TTL."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            when, _, connection = heapq.heappop(timers)
            if when == connection._timer_at:
                connection._timer_at = math.inf
                connection._on_timer(now)
        if now >= self._beat_at:
            self._beat(now)
        self._reap()

    def _arm(self, connection: ServerConnection, when: float) -> None:
        if when < connection._timer_at and connection.state is not State.CLOSED:
            connection._timer_at = when
            heapq.heappush(self._timers, (when, next(self._timer_ids), connection))

    # --- backplane ------------------------------------------------------------------------

    @property
    def backplane_up(self) -> bool:
        """False between ``backplane_lost`` and ``backplane_restored``."""
        return self._ordered or self.config.node_id is None

    def backplane_records(self) -> list[tuple[str | None, bytes]]:
        """Records to publish, each with its topic: a room's name, or None for node-wide
        records (heartbeats). Publish them in this order; records of one topic must reach
        every node, this one included, in one order (one channel per topic does that)."""
        records, self._backplane = self._backplane, []
        return records

    def backplane_data_to_send(self) -> list[bytes]:
        """``backplane_records()`` without the topics, for a backplane with one channel."""
        return [data for _, data in self.backplane_records()]

    def receive_backplane(self, data: bytes, now: float) -> None:
        """Apply one record from the backplane, including this node's own (a local message is
        delivered when it comes back). Raises ``RemoteProtocolError`` (and changes nothing)
        when the record is malformed. Ignored while the backplane is lost."""
        record = decode_payload(data)
        check_frame(record, BACKPLANE_RECORDS)
        if not self._ordered:
            return
        node = record["n"]
        kind = record["t"]
        if node == self.config.node_id:
            if kind == "msg":
                self._own_message_back(record["r"], record["id"])
                self._reap()
            return
        self._nodes[node] = now
        if kind == "hb":
            return
        room = self._room(record["r"])
        if kind == "msg":
            outgoing = InterceptedMessage(
                room=room.name,
                sender=RemoteParticipant(id=record["from"], name="", role=""),
                to=None if record["to"] is None else tuple(record["to"]),
                type=record["type"],
                message=record["message"],
                attachment=record.get("att"),
            )
            self._deliver(room, outgoing, record["id"], record["ts"])
        elif kind == "left":
            member = room.members.get(record["id"])
            if member is not None and member.node == node:
                self._remove_member(room, member, publish=False)
        elif kind == "sync":
            # That node (re)starts its view of the room: forget what it had announced (its
            # participants are announced again after this record) and announce ours.
            self._drop_node(node, [room])
            self._publish_presence(room)
        else:  # "join": insert or update a participant of that node
            member = record_member(record, node)
            existing = room.members.get(member.participant.id)
            if existing is None:
                self._add_member(room, member, publish=False)
            elif existing.node == node and existing.encoded != member.encoded:
                self._update_member(room, member, publish=False)
        self._reap()

    def backplane_lost(self, now: float) -> None:
        """The driver lost the backplane (publishing failed, the subscription broke or went
        deaf): local messages not yet back are delivered locally now, participants of other
        nodes are removed (local listeners get ``left``), and until ``backplane_restored``
        the node runs alone (messages are delivered locally at once, nothing is published).
        """
        if not self._ordered:
            return
        self._ordered = False
        self._backplane.clear()
        self._nodes.clear()
        for room in self._rooms.values():
            room.synced = False
            self._flush_pending(room)
            self._drop_node(None, [room])
        self._reap()

    def backplane_restored(self, now: float) -> None:
        """The backplane works again (resubscribed and heard back): for every room with local
        connections, ask the others to announce their participants again (a sync record) and
        announce the local ones."""
        if self._ordered or self.config.node_id is None:
            return
        self._ordered = True
        self._beat_at = now
        for connection in self._connections.values():
            if connection._joined:
                self._sync(connection._room)

    def _sync(self, room: Room) -> None:
        if self._ordered and not room.synced:
            room.synced = True
            self._publish(room, {"t": "sync"})
            self._publish_presence(room)

    def _publish_presence(self, room: Room) -> None:
        for member in room.members.values():
            if member.connection is not None:
                self._publish(room, {"t": "join", "p": to_record(member.participant)})

    def _beat(self, now: float) -> None:
        config = self.config
        self._beat_at = now + config.backplane_heartbeat
        if not self._ordered:
            return
        self._backplane.append((None, encode_payload({"t": "hb", "n": config.node_id, "r": ""})))
        for node, heard in list(self._nodes.items()):
            if now - heard > config.backplane_ttl:
                del self._nodes[node]
                self._drop_node(node, self._rooms.values())

    def _drop_node(self, node: str | None, rooms: Iterable[Room]) -> None:
        """Remove the participants of ``node`` (of every other node if None) from ``rooms``."""
        for room in rooms:
            for member in list(room.members.values()):
                if member.node is not None and node in (None, member.node):
                    self._remove_member(room, member, publish=False)

    def _own_message_back(self, room_name: str, message_id: str) -> None:
        """Deliver a local message that came back from the backplane, and any sent before it
        that did not (none should be missing: they are not held back)."""
        room = self._rooms.get(room_name)
        if room is None or message_id not in room.pending:
            return  # flushed when the backplane was lost
        pending = room.pending
        while True:
            first = next(iter(pending))
            message, timestamp = pending.pop(first)
            self._deliver(room, message, first, timestamp)
            if first == message_id:
                return

    def _flush_pending(self, room: Room) -> None:
        for message_id, (message, timestamp) in room.pending.items():
            self._deliver(room, message, message_id, timestamp)
        room.pending.clear()

    # --- routing --------------------------------------------------------------------------

    def _room(self, name: str) -> Room:
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = Room(name)
        return room

    def _intercept(self, message: InterceptedMessage) -> InterceptedMessage | None:
        interceptor = self.config.interceptor
        return message if interceptor is None else interceptor(message)

    def _targets(
        self, room: Room, sender_id: str, to: tuple[str, ...] | None
    ) -> list[ServerConnection]:
        """The local connections a message is for."""
        local = room.local
        if to is None:
            return [c for pid, c in local.items() if pid != sender_id]
        return [c for r in to if (c := local.get(r)) is not None]

    def _deliver(
        self, room: Room, message: InterceptedMessage, message_id: str, timestamp: float
    ) -> None:
        """Stamp a message that went through the backplane with this node's room seq, and
        queue it for every local recipient."""
        data = delivery_frame(
            message_id,
            room.next_seq(),
            timestamp,
            message.sender.id,
            message.to,
            message.type,
            message.message,
            message.attachment,
        )
        self._queue_to(self._targets(room, message.sender.id, message.to), data)

    def _publish_message(
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
        self._publish(room, record)

    def _presence(self, room: Room, frame: Frame, skip: str) -> None:
        """Queue one presence change, encoded once, for every listener but ``skip``."""
        frame["seq"] = room.next_seq()
        listeners = room.listeners
        self._queue_to([c for pid, c in listeners.items() if pid != skip], encode_frame(frame))

    def _broadcast(self, sender: ServerConnection, data: bytes) -> int:
        """Queue a local participant's broadcast; returns how many connections it is for.

        Consecutive broadcasts of one sender go to the same connections (any change of
        membership queues presence first), so their deliveries are joined and queued once per
        recipient instead of once per message. Anything else queued for another connection, and
        any look at the output, queues the batch first: each connection's frames keep their
        order."""
        if sender is not self._batch_from:
            self._flush_batch()
            self._batch_from = sender
            targets = self._batch_to = self._targets(sender._room, sender._me.id, None)
            self._batch_left = min((c._left for c in targets), default=self.config.outbound_limit)
        self._batch.append(data)
        self._batch_left -= len(data)
        recipients = len(self._batch_to)
        if self._batch_left < 0:
            # A recipient now waits on more than the bound: queue what it has, so that its
            # next frame finds it over the bound and closes it, exactly as one by one.
            self._flush_batch()
        return recipients

    def _flush_batch(self) -> None:
        batch = self._batch
        if batch:
            data = batch[0] if len(batch) == 1 else b"".join(batch)
            batch.clear()
            self._batch_from = None
            targets, self._batch_to = self._batch_to, []  # holds no connection once queued
            self._append(targets, data)

    def _queue_to(self, connections: Iterable[ServerConnection], data: bytes) -> None:
        """Queue the same bytes for each connection, after any pending broadcasts."""
        self._flush_batch()
        self._append(connections, data)

    def _append(self, connections: Iterable[ServerConnection], data: bytes) -> None:
        """Append the same bytes to each connection's output: the one place output is
        queued, written as one loop because fan-out runs it once per recipient.

        The bound is checked on what already waits, so one frame may take a queue past it: a
        frame larger than the bound never closes a reader that keeps up."""
        size, dirty, slow = len(data), self._dirty, self._slow
        for connection in connections:
            left = connection._left
            connection._left = left - size
            connection._out.append(data)
            dirty[connection] = None
            if left < 0 and not connection._slow:
                connection._slow = True
                slow.append(connection)

    def _add_member(self, room: Room, member: Member, *, publish: bool = True) -> None:
        pid = member.participant.id
        room.members[pid] = member
        if member.connection is not None:
            room.local[pid] = member.connection
        self._presence(room, {"t": "joined", "p": to_record(member.participant)}, pid)
        if publish:
            self._publish(room, {"t": "join", "p": to_record(member.participant)})

    def _update_member(self, room: Room, member: Member, *, publish: bool = True) -> None:
        pid = member.participant.id
        room.members[pid] = member
        self._presence(room, {"t": "updated", "p": to_record(member.participant)}, pid)
        if publish:
            self._publish(room, {"t": "join", "p": to_record(member.participant)})

    def _remove_member(self, room: Room, member: Member, *, publish: bool = True) -> None:
        pid = member.participant.id
        del room.members[pid]
        room.local.pop(pid, None)
        room.listeners.pop(pid, None)
        self._presence(room, {"t": "left", "id": pid}, pid)
        if publish:
            self._publish(room, {"t": "left", "id": pid})

    def _publish(self, room: Room, record: dict[str, Any]) -> None:
        if self._ordered:
            record.update(n=self.config.node_id, r=room.name)
            self._backplane.append((room.name, encode_payload(record)))

    def _forget(self, connection: ServerConnection) -> None:
        self._connections.pop(connection.connection_id, None)
        self._dirty[connection] = None

    def _reap(self) -> None:
        """Close slow consumers. Closing one announces a departure, which can overflow
        another, so loop until none is left."""
        while self._slow:
            connection = self._slow.pop()
            if connection.state is not State.CLOSED:
                connection._close_slow()
