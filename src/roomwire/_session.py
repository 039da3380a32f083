"""The per-connection session of the server: handshake, requests, heartbeats, and its own
outbound queue (``Outbound``) and rate budget. Its registry, ``CLIENT_KINDS``, names every
frame kind a client sends."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import attrs

from ._codec import ATTRIBUTES_DEPTH, Frame, encode_frame, is_json_object
from ._config import PROTOCOL_VERSION, InterceptedMessage
from ._connection import BaseConnection, NextEvent
from ._errors import Refusal as _Refusal
from ._errors import RemoteProtocolError, TokenError
from ._fast import PAGE_OVERHEAD, encode_ack
from ._framing import HEADER, PREFIX_SIZE, Framing
from ._history import Entry, HistoryRead, StoredAnswer, history_frames
from ._idempotency import Sent, key_error
from ._outbound import Outbound
from ._participant import attributes_size, encode, merge_attributes, to_record
from ._registry import FrameKind, receive
from ._resume import proves, resume_secret
from ._room import Member, Room
from ._routing import delivery_frame, known_recipients
from ._rpc import Call
from ._shapes import (
    check_abort,
    check_accept,
    check_answer,
    check_attrs,
    check_bare,
    check_broadcast,
    check_call,
    check_chunk,
    check_close,
    check_credit,
    check_enable,
    check_hello,
    check_history,
    check_open,
    check_refresh,
    check_request,
    check_send,
    check_stream_end,
    check_svc_decide,
    check_svc_puppet,
    check_svc_send,
    check_svc_unpuppet,
)
from ._state import ON_REFUSAL, Input, State
from ._streams import Stream
from ._token import ParticipantToken
from .codes import Code
from .events import (
    AttributesChanged,
    Event,
    MessageRouted,
    ParticipantDisabled,
    ParticipantEnabled,
    ParticipantJoined,
    RemoteParticipant,
    RequestRefused,
)

if TYPE_CHECKING:
    from ._server import RoomServer

log = logging.getLogger("roomwire.server")


class ServerConnection(BaseConnection):
    """The server's side of one client connection, made by ``RoomServer.accept``.

    Feed it with ``receive_data`` and drain ``next_event(now)`` as for a client. Its output
    (including fan-out from other connections) is found through
    ``RoomServer.connections_with_output()``; once ``state`` is CLOSED and its data is sent,
    close the transport.
    """

    __slots__ = (
        "_allowance",
        "_bucket_at",
        "_enabled",
        "_expires_at",
        "_grants",
        "_handed_over",
        "_heard_at",
        "_joined",
        "_me",
        "_member",
        "_now",
        "_payload",
        "_pinged_at",
        "_queues",
        "_room",
        "_server",
        "_strikes",
        "connection_id",
        "outbound",
    )

    def __init__(
        self, server: RoomServer, connection_id: object, now: float, framing: Framing
    ) -> None:
        # Until the hello is accepted, input is held to the small pre-authentication bound.
        super().__init__(min(server.config.max_hello_size, server.config.max_frame_size), framing)
        self._server = server
        self.connection_id = connection_id
        # Placeholders until the hello is accepted: requests are refused before that.
        self._me = _NOBODY
        self._grants = _NO_GRANTS
        self._room = _NO_ROOM
        self._joined = False
        self._member: Member | None = None
        self._payload = b""
        """The body of the frame being handled, when it is not a request."""
        self._enabled: bool | None = None
        """Messaging enabled: with presence (True) or without (False); None: not enabled.
        What a resume gives back (PROTOCOL.md §22)."""
        self._handed_over = False
        """A resume took this connection's participant: closing it leaves presence alone."""
        self._heard_at = self._pinged_at = self._now = now
        self._expires_at = math.inf
        """The token's ``exp``: the connection is closed then unless a refresh moved it."""
        self.outbound = Outbound(self, server.config.outbound_limit)
        """Internal: this connection's queue, which fan-out appends to."""
        self._queues = server.router.queues
        self._allowance = server.burst  # requests the rate limit allows now
        self._strikes = 0.0
        self._bucket_at = now
        server.timers.arm(self, now + server.config.handshake_timeout)

    @property
    def participant(self) -> RemoteParticipant | None:
        """The authenticated participant (None until the handshake completes)."""
        return self._me if self._joined else None

    @property
    def token(self) -> ParticipantToken | None:
        """The verified token, with the participant's grants."""
        return self._grants if self._joined else None

    @property
    def room(self) -> str | None:
        """The room's name, once the handshake completes."""
        return self._room.name if self._joined else None

    def next_event(self, now: float) -> NextEvent:
        """Process one frame from this client; ``NEED_DATA`` when none is complete.

        Raises ``RemoteProtocolError`` on invalid input, after queuing a close frame and
        removing the participant. Other connections are unaffected.
        """
        router = self._server.router
        self._now = now  # when a loss found here suspends the participant
        while True:
            try:
                # Inside the try: the length prefix itself can break the protocol.
                payload = self._next_payload()
                if type(payload) is not bytes:
                    router.reap()
                    return payload  # type: ignore[return-value]
                self._heard_at = now
                frame, kind = receive(payload, CLIENT_KINDS)
                if kind.verb is not None:
                    event = self._request(kind, frame, len(payload), now)
                elif kind.input is None or not self._allowed(kind.input):
                    raise RemoteProtocolError(kind.unexpected.format(kind=frame["t"]))
                else:
                    self._move(kind.input)
                    self._payload = payload  # a chunk is forwarded as these bytes
                    event = kind.handle(self, frame, len(payload), now)
            except RemoteProtocolError as exc:
                self._fail(exc)
                router.reap()
                raise
            if event is not None:
                router.reap()
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

    def _hello(self, frame: Frame, size: int, now: float) -> Event | None:
        server = self._server
        if self._grants is not _NO_GRANTS:  # waiting for the store to answer the first
            raise RemoteProtocolError("a second hello")
        if frame["v"] != PROTOCOL_VERSION:
            return self._abort(
                Code.UNSUPPORTED_VERSION, f"version {frame['v']} is not {PROTOCOL_VERSION}"
            )
        try:
            token = server.authenticate(frame["token"], now)
        except TokenError as exc:
            return self._abort(exc.code, exc.reason)
        # Every connection of a room (and role) holds the same strings, not a copy each.
        token = attrs.evolve(token, room=sys.intern(token.room), role=sys.intern(token.role))
        room_name = frame.get("room")
        if room_name is not None and room_name != token.room:
            return self._abort(
                Code.ROOM_MISMATCH, f"the token is for another room, not {room_name!r}"
            )
        resume = frame.get("resume")
        old = None if resume is None else self._resumable(token, resume)
        if old is None and resume is not None and self._ask_store(token, resume, now):
            return None  # the welcome waits for the store (``resumed_from_store``)
        return self._join(token, resume, old, None, now)

    def _ask_store(self, token: ParticipantToken, resume: Frame, now: float) -> bool:
        """Whether a resume's replay needs the driver's store: the memory does not hold
        every message after a proven position (the server restarted, or made the room
        after it; the store's answer says the room's epoch, which this node may not know
        yet). The read goes to the store; ``resumed_from_store`` finishes the handshake
        with its answer."""
        server = self._server
        router, pid = server.router, resume["id"]
        history = router.history
        if not (
            history.external
            and history.replay(token.room, resume["seq"], pid, now) is None
            and self._proves(token, resume)
        ):
            return False
        self._grants = token
        history.reads.append(
            HistoryRead(
                room=token.room,
                since=resume["seq"],
                connection_id=self.connection_id,
                request_id=0,
                name=token.name,
                limit=server.config.history_size,
                reverse=False,
                epoch=resume["epoch"],
                resume=resume,
            )
        )
        return True

    def resumed_from_store(self, answer: StoredAnswer, now: float) -> None:
        """Internal: the store answered a resume's read: the handshake goes on."""
        self._join(self._grants, answer[0].resume, None, answer, now)

    def _join(
        self,
        token: ParticipantToken,
        resume: Frame | None,
        old: ServerConnection | None,
        stored: StoredAnswer | None,
        now: float,
    ) -> Event:
        """Welcome the participant (a new one, or ``old``'s taken back), enable it if the
        resume asks, and replay what it missed (from memory, or ``stored``)."""
        server = self._server
        config = server.config
        if old is None:
            participant = RemoteParticipant(
                id=config.id_factory(), name=token.name, role=token.role, attributes={}
            )
        else:  # the same record, attributes included: nobody sees a change
            participant = old._me
        self._me, self._grants, self._joined = participant, token, True
        self._expires_at = _expiry(token)
        room = self._room = server.router.room(token.room, now)
        room.connections += 1
        server.by_participant[participant.id] = self
        server.cluster.sync(room)
        server.services.watch(room)
        welcome = {
            "t": "welcome",
            "v": PROTOCOL_VERSION,
            "room": token.room,
            "epoch": room.epoch,
            "participant": to_record(participant),
            "limits": server.advertised_limits,
            "hb": config.heartbeat_interval,
            "hbt": config.heartbeat_timeout,
            "seq": room.seq,
            "resume": resume_secret(
                config.resume_key_bytes, token.room, token.name, participant.id
            ),
            "resume_window": config.resume_window,
        }
        presence = None
        if old is not None:
            presence = old._enabled
            old._give_up(self)
        elif resume is not None and resume.get("enable", False):
            presence = resume.get("presence", True) and token.can_list
        replay = self._replay(resume, old is not None, presence, stored, now)
        if resume is not None:
            welcome.update(resumed=old is not None, recovered=replay is not None)
            welcome["missed"] = 0 if replay is None else len(replay)
        if presence is not None:
            welcome["enabled"] = True
        self._send(welcome)
        self._move(Input.WELCOME)
        if presence is not None:
            self._move(Input.ENABLE)
            self._enter(0, presence, announce=old is None)
        for data in replay or ():
            self._queue(data)
            # Asked for, like a snapshot: not a sign of a slow reader (§14).
            self.outbound.exempt(len(data))
        self._buffer.max_frame_size = config.max_frame_size
        self._pinged_at = now
        server.timers.arm(self, self._next_timer())
        return ParticipantJoined(participant=participant, room=token.room)

    def _resumable(self, token: ParticipantToken, resume: Frame) -> ServerConnection | None:
        """The connection whose participant a hello's ``resume`` may take back: suspended,
        or still open (its loss not noticed yet), and the secret proves the id is the
        token's identity's in its room; None otherwise."""
        server, pid = self._server, resume["id"]
        if not self._proves(token, resume):
            return None
        old = server.suspended.take(pid)
        return server.by_participant.get(pid) if old is None else old

    def _replay(
        self,
        resume: Frame | None,
        resumed: bool,
        presence: bool | None,
        stored: StoredAnswer | None,
        now: float,
    ) -> list[bytes] | None:
        """The messages a resume missed, for the welcome to say ``recovered`` (a list) or
        not (None): the position must be the room's (its epoch, not past its seq), proven
        the resumer's, never removed by a lapsed window, and the memory must hold every
        message after it (PROTOCOL.md §22)."""
        if resume is None:
            return None
        server, room, pid, seq = self._server, self._room, resume["id"], resume["seq"]
        if (
            resume["epoch"] != room.epoch
            or seq > room.seq
            or pid in room.lapsed
            or not (resumed or self._proves(self._grants, resume))
        ):
            return None
        history = server.router.history
        frames = (
            history.replay(room.name, seq, pid, now)
            if stored is None
            else history.replay_stored(room, stored, pid, now)
        )
        if frames is not None and (presence is None or self._grants.hidden):
            return []  # not enabled (or hidden): nothing was for it
        return frames

    def _proves(self, token: ParticipantToken, resume: Frame) -> bool:
        """Whether ``resume``'s secret proves its id is the token's identity's."""
        key = self._server.config.resume_key_bytes
        return proves(key, token.room, token.name, resume["id"], resume["secret"])

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
            self.refuse(rid, refusal.code, refusal.reason)
            return RequestRefused(request_id=rid, code=refusal.code, reason=refusal.reason)

    def _spend(self, now: float, rate: float) -> bool:
        """Take a token for one request. Refusals count as strikes, which drain at the same
        rate as tokens refill: a client slightly over the rate is refused now and then, one
        far over it piles up strikes until it is closed."""
        refill = max(now - self._bucket_at, 0.0) * rate
        self._bucket_at = now
        self._allowance = min(self._server.burst, self._allowance + refill)
        self._strikes = max(0.0, self._strikes - refill)
        if self._allowance >= 1.0:
            self._allowance -= 1.0
            return True
        self._strikes += 1.0
        return False

    def _check_size(self, size: int) -> None:
        most = self._server.config.max_send_size
        if size > most:
            raise _Refusal(Code.TOO_LARGE, f"{size}-byte frame is over the {most}-byte limit")

    def _enable(self, frame: Frame, size: int, now: float) -> Event:
        presence = frame.get("presence", True)
        if presence and not self._grants.can_list:
            raise _Refusal(Code.FORBIDDEN_LIST, "the token does not grant listing participants")
        self._enter(frame["rid"], presence, announce=True)
        return ParticipantEnabled(participant=self._me)

    def _enter(self, rid: int, presence: bool, *, announce: bool) -> None:
        """Enable messaging: the snapshot pages answering ``rid``, then join the room's
        members (``announce``: as a new member; else as the resumed one, silently)."""
        room, server, outbound = self._room, self._server, self.outbound
        pages = server.presence.snapshot(room, rid, server.config.max_frame_size, listed=presence)
        if not self._grants.hidden:
            self._member = Member(participant=self._me, outbound=outbound, node=None)
            if announce:
                server.presence.add(room, self._member)
            else:  # the same record as before: nothing to tell anyone
                server.router.seal()
                room.members[self._me.id] = self._member
                room.local[self._me.id] = outbound
        if presence:
            room.listeners[self._me.id] = outbound
        for data in pages:
            self._queue(data)
            # A large room's snapshot is not a sign of a slow reader: it does not count
            # against the outbound bound until the driver has taken it.
            outbound.exempt(len(data))
        self._enabled = presence
        self._move(Input.SNAPSHOT_END)

    def _disable(self, frame: Frame, size: int, now: float) -> Event:
        self._leave()
        self._enabled = None
        self._send({"t": "ack", "rid": frame["rid"]})
        self._move(Input.DISABLE_ACK)
        return ParticipantDisabled(participant=self._me)

    def _attributes(self, frame: Frame, size: int, now: float) -> Event:
        self._check_size(size)
        update = frame["attributes"]
        if not is_json_object(update, ATTRIBUTES_DEPTH):
            raise _Refusal(
                Code.INVALID_REQUEST,
                f"attributes must be a JSON object at most {ATTRIBUTES_DEPTH} levels deep",
            )
        merged = merge_attributes(self._me.attributes, update)
        config = self._server.config
        most = config.max_attributes_size
        if attributes_size(merged) > most:
            raise _Refusal(Code.TOO_LARGE, f"attributes would be over the {most}-byte limit")
        me = attrs.evolve(self._me, attributes=merged)
        # max_attributes_size may be set above what a frame holds: presence frames and
        # snapshot pages must still fit the max_frame_size every client was promised.
        if len(encode(me)) > config.max_frame_size - PAGE_OVERHEAD:
            raise _Refusal(
                Code.TOO_LARGE,
                f"attributes would not fit a {config.max_frame_size}-byte presence frame",
            )
        self._me = me
        self._send({"t": "ack", "rid": frame["rid"]})
        if self._member is not None:
            self._member = Member(participant=self._me, outbound=self.outbound, node=None)
            self._server.presence.update(self._room, self._member)
        return AttributesChanged(participant=self._me)

    def _message(self, frame: Frame, size: int, now: float) -> Event | None:
        broadcast = frame["t"] == "broadcast"
        server, config, room = self._server, self._server.config, self._room
        if broadcast and not self._grants.can_broadcast:
            raise _Refusal(Code.FORBIDDEN_BROADCAST, "the token does not grant broadcasting")
        if not broadcast and not self._grants.can_send:
            raise _Refusal(Code.FORBIDDEN_SEND, "the token does not grant sending")
        self._check_size(size)
        key = frame.get("key")
        if key is not None:
            problem = key_error(key)
            if problem is not None:
                raise _Refusal(Code.INVALID_REQUEST, problem)
            # Before the content checks: a re-sent message was accepted once, and its
            # recipients may have left since (PROTOCOL.md §26).
            sent = server.sent_keys.seen(room.name, self._me.name, key, now)
            if sent is not None:
                self._duplicate(frame["rid"], sent)
                return None
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
            # [] is "to the service only" (§23): for rooms with a service slot.
            if not 0 < len(to) <= config.max_recipients and (to or room.service is None):
                raise _Refusal(
                    Code.INVALID_REQUEST, f"a send names 1 to {config.max_recipients} recipients"
                )
            missing = [r for r in to if r not in room.members]
            if missing:
                shown = ", ".join(repr(r[:64]) for r in missing[:5])
                raise _Refusal(Code.NOT_FOUND, f"not present with messaging enabled: {shown}")
        if room.service is not None:
            routed_up = server.services.intercept(
                self, room.service, frame["rid"], to, type_, frame["message"], frame.get("att"), now
            )
            if key is not None:  # the service decides later: no count (§26)
                self._remember(key, Sent(routed_up.message_id, None, now))
            return routed_up
        message_id = config.id_factory()
        router, relaying = server.router, server.cluster.relaying
        sender, body, attachment = self._me, frame["message"], frame.get("att")
        routed: InterceptedMessage | None = None
        delivered = True
        if config.interceptor is not None or relaying:
            # Only these paths need the message as an object: the common one stays lean.
            routed = InterceptedMessage(
                room=room.name,
                sender=sender,
                to=to,
                type=type_,
                message=body,
                attachment=attachment,
            )
            if config.interceptor is not None:
                try:
                    decided = config.interceptor(routed)
                except Exception:
                    log.exception("the interceptor failed on a message from %s", sender.id)
                    raise _Refusal(
                        Code.INTERCEPTOR_FAILED, "the server's interceptor failed on this message"
                    ) from None
                if not isinstance(decided, InterceptedMessage | None):
                    # An async interceptor: the driver awaits it (RoomServer.interceptions),
                    # and the message goes on, acked or refused, once it has decided.
                    server.services.defer(self, frame["rid"], message_id, decided, key)
                    return None
                routed = decided
            delivered = routed is not None
            if routed is not None:
                sender, to, type_ = routed.sender, routed.to, routed.type
                body, attachment = routed.message, routed.attachment
        data = b""
        if delivered:
            # Through the backplane the seq is stamped when the message comes back: check
            # the size with the largest seq there can be.
            seq = _LARGEST_SEQ if relaying else room.next_seq()
            data = delivery_frame(message_id, seq, now, sender.id, to, type_, body, attachment)
            if len(data) - PREFIX_SIZE > config.max_frame_size:
                # Compact CBOR (half-precision floats, say) can grow when re-encoded: the
                # delivery must still fit every recipient's frame limit.
                raise _Refusal(
                    Code.TOO_LARGE,
                    f"the delivery would be {len(data) - PREFIX_SIZE} bytes, over the"
                    f" {config.max_frame_size}-byte frame limit",
                )
        history = router.history
        if delivered and routed is None and to is None:
            # The sender is no target of its broadcast: its ack may follow the fan-out.
            recipients = deliveries = router.broadcast(self.outbound, room, sender.id, data)
            self._ack(frame["rid"], message_id, recipients, delivered)
        else:
            targets = router.targets(room, sender.id, to) if delivered else []
            deliveries = len(targets)
            if relaying:  # delivered when it comes back: counted from presence
                recipients = known_recipients(room, self._me.id, to) if delivered else 0
            else:
                recipients = deliveries - (self.outbound in targets)
            self._ack(frame["rid"], message_id, recipients, delivered)
            if routed is not None and relaying:
                server.cluster.publish_message(room, routed, message_id, now)
            else:
                router.queue_to(targets, data)
        if delivered and not relaying:
            history.keep(room, seq, message_id, now, sender, to, type_, body, attachment, data)
        if key is not None:
            self._remember(key, Sent(message_id, recipients, now))
        stats = server.stats
        stats.messages_routed += 1
        stats.deliveries += deliveries
        return MessageRouted(
            message_id=message_id,
            from_participant_id=self._me.id,
            broadcast=broadcast,
            recipients=deliveries,
        )

    def _ack(self, rid: int, message_id: str, recipients: int, delivered: bool) -> None:
        """Queue a message's ack, or hold it for its record (PROTOCOL.md §21.3)."""
        ack = encode_ack(rid, message_id, recipients)
        history = self._server.router.history
        if delivered and history.holds_acks:
            history.hold(message_id, self, ack)
        else:
            self._queue(ack)

    def _duplicate(self, rid: int, sent: Sent) -> None:
        """Ack a send repeating a key: the first send's id and count, not delivered again."""
        ack = encode_ack(rid, sent.message_id, sent.recipients, duplicate=True)
        # While the first send's ack waits for its record, this one waits too.
        if not self._server.router.history.hold_duplicate(sent.message_id, self, ack):
            self._queue(ack)

    def _remember(self, key: str, sent: Sent) -> None:
        self._server.sent_keys.remember(self._room.name, self._me.name, key, sent)

    def _history(self, frame: Frame, size: int, now: float) -> None:
        if not self._grants.can_history:
            raise _Refusal(Code.FORBIDDEN_HISTORY, "the token does not grant reading history")
        limit, since = frame.get("limit", 100), frame.get("since")
        most = self._server.config.max_history_limit
        if not 0 < limit <= most:
            raise _Refusal(Code.INVALID_REQUEST, f"limit must be 1 to {most}, not {limit}")
        room, epoch = self._room, frame.get("epoch")
        history = self._server.router.history
        # A position from another epoch is not checked: it is not used (§21.2).
        trusted = epoch is None or epoch == room.epoch
        if since is not None and trusted and not 0 <= since <= room.seq:
            raise _Refusal(
                Code.INVALID_REQUEST,
                f"since must be a seq from 0 to the room's last, {room.seq}, not {since}",
            )
        read = HistoryRead(
            room=room.name,
            since=since,
            connection_id=self.connection_id,
            request_id=frame["rid"],
            name=self._me.name,
            limit=limit,
            reverse=frame.get("reverse", False),
            epoch=epoch,
        )
        entries = history.ask(read, room.epoch, now)
        if entries is not None:
            # In memory, expired entries are gone already: only the drops count.
            reset = history.reset(read, room.epoch, 0, [], now)
            self.queue_history(read.request_id, entries, room.epoch, reset)

    def _refresh(self, frame: Frame, size: int, now: float) -> None:
        try:
            token = self._server.authenticate(frame["token"], now)
        except TokenError as exc:
            raise _Refusal(Code.TOKEN_REFUSED, exc.reason) from None
        if attrs.evolve(token, expires_at=None) != attrs.evolve(self._grants, expires_at=None):
            raise _Refusal(
                Code.TOKEN_REFUSED,
                "a refresh token must name the same room, name, role and grants",
            )
        self._grants = attrs.evolve(self._grants, expires_at=token.expires_at)
        self._expires_at = _expiry(token)
        self._send({"t": "ack", "rid": frame["rid"]})
        # A later exp needs no re-arming: the timer at the old one finds nothing due.

    # --- participant RPC (PROTOCOL.md §24; the calls waiting are ``_rpc.Calls``) ---------

    def _call(self, frame: Frame, size: int, now: float) -> None:
        if not self._grants.can_send:
            raise _Refusal(Code.FORBIDDEN_SEND, "the token does not grant sending")
        self._check_size(size)
        config, calls, rid = self._server.config, self._server.calls, frame["rid"]
        type_, body = frame["type"], frame["message"]
        if not 0 < len(type_) <= config.max_type_length:
            raise _Refusal(
                Code.INVALID_REQUEST, f"type must have 1 to {config.max_type_length} characters"
            )
        if not is_json_object(body):
            raise _Refusal(Code.INVALID_REQUEST, "message must be a JSON object")
        made = calls.made(self)
        if rid in made:
            raise _Refusal(Code.INVALID_REQUEST, f"request id {rid} is a call still waiting")
        if len(made) >= config.max_pending_calls:
            raise _Refusal(
                Code.TOO_MANY_CALLS, f"{len(made)} calls are waiting for answers already"
            )
        to, room = frame["to"], self._room
        callee = room.local.get(to)
        member = room.members.get(to)
        if member is None or (callee is None and member.node is None):
            # A participant suspended for a resume (§22) has no connection to answer.
            raise _Refusal(Code.NOT_FOUND, f"not present with messaging enabled: {to[:64]!r}")
        forward: Frame = {
            "t": "call",
            "id": config.id_factory(),
            "from": self._me.id,
            "ts": now,
            "type": type_,
            "message": body,
        }
        if "att" in frame:
            forward["att"] = frame["att"]
        data = self._stamped(forward)
        if callee is not None:
            calls.open(Call(forward["id"], self, rid, callee.connection, type_), data)
        else:  # on another node: the call goes through the backplane
            call = Call(forward["id"], self, rid, None, type_, to, member.node, room)
            calls.open(call, data, {**forward, "to": to})

    def _answer(self, frame: Frame, size: int, now: float) -> None:
        self._check_size(size)
        calls = self._server.calls
        call = calls.asked(self, frame["id"])
        if call is None:
            raise _Refusal(
                Code.CALL_NOT_FOUND,
                f"no call {frame['id'][:64]!r} waits for this participant's answer",
            )
        result: Frame = {"t": "result", "rid": call.rid, "id": call.id, "from": self._me.id}
        result.update(ts=now, type=call.type)
        if "code" in frame:
            result.update(code=frame["code"], reason=frame["reason"])
        elif is_json_object(frame["message"]):
            result["message"] = frame["message"]
            if "att" in frame:
                result["att"] = frame["att"]
        else:
            raise _Refusal(Code.INVALID_REQUEST, "message must be a JSON object")
        calls.answered(call, self._stamped(result), result)
        self._send({"t": "ack", "rid": frame["rid"]})

    def _cancel(self, frame: Frame, size: int, now: float) -> None:
        self._server.calls.cancel(self, frame["rid"])

    # --- streams (PROTOCOL.md §24.4; the open streams are ``_streams.Streams``) ---------

    def _open_stream(self, frame: Frame, size: int, now: float) -> None:
        if not self._grants.can_send:
            raise _Refusal(Code.FORBIDDEN_SEND, "the token does not grant sending")
        self._check_size(size)
        if not is_json_object(frame["header"]):
            raise _Refusal(Code.INVALID_REQUEST, "header must be a JSON object")
        config, streams = self._server.config, self._server.streams
        reader = self._room.local.get(frame["to"])
        if reader is None:
            raise _Refusal(
                Code.NOT_FOUND,
                f"not present with messaging enabled on this node: {frame['to'][:64]!r}",
            )
        if reader is self.outbound:
            raise _Refusal(Code.INVALID_REQUEST, "a stream needs another participant")
        most = config.max_open_streams
        for end, who in ((self, "this connection"), (reader.connection, "the reader")):
            if streams.count(end) >= most:
                raise _Refusal(Code.TOO_MANY_STREAMS, f"{who} has {most} streams open")
        offer: Frame = {
            "t": "open",
            "sid": config.id_factory(),
            "from": self._me.id,
            "ts": now,
            "header": frame["header"],
        }
        data = self._stamped(offer)
        streams.open(Stream(offer["sid"], self, reader.connection, frame["rid"]), data)

    def _accept_stream(self, frame: Frame, size: int, now: float) -> None:
        streams = self._server.streams
        stream = streams.of(self, frame["sid"])
        if stream is None or stream.reader is not self or stream.accepted:
            raise _Refusal(
                Code.STREAM_NOT_FOUND, f"no stream {frame['sid'][:64]!r} waits for this reader"
            )
        streams.accept(stream)
        self._send({"t": "ack", "rid": frame["rid"]})

    def _stream_frame(self, frame: Frame, size: int, now: float) -> None:
        """``chunk``, ``credit``, ``end`` or ``abort``: not requests, so a bad one fails its
        stream (or is answered with an ``abort`` naming it) rather than being refused."""
        streams, kind, sid = self._server.streams, frame["t"], frame["sid"]
        stream = streams.of(self, sid)
        if kind == "abort":
            if stream is not None:  # else it crossed the stream's end or abort: nothing to do
                streams.abort(stream, self, Code.STREAM_ABORTED, frame["reason"])
        elif kind == "credit":
            # A stale grant (the stream ended meanwhile) is ignored like a stale abort.
            if stream is not None and stream.reader is self and stream.accepted:
                if stream.credit + frame["n"] > streams.window:
                    streams.abort(stream, None, Code.OVER_CREDIT, "credit past stream_window")
                else:
                    streams.credit(stream, frame)
        elif stream is None or stream.writer is not self:
            if kind == "chunk":
                self._send(
                    {
                        "t": "abort",
                        "sid": sid,
                        "code": int(Code.STREAM_NOT_FOUND),
                        "reason": "no open stream of this writer has that id",
                    }
                )
        elif kind == "end":
            if stream.accepted:
                streams.end(stream)
            else:
                streams.abort(stream, None, Code.STREAM_ABORTED, "ended before it was accepted")
        else:
            self._chunk(stream, frame)

    def _chunk(self, stream: Stream, frame: Frame) -> None:
        streams, data = self._server.streams, frame["data"]
        if len(data) > stream.credit:
            reason = f"a {len(data)}-byte chunk over the {stream.credit} bytes of credit"
            streams.abort(stream, None, Code.OVER_CREDIT, reason)
            return
        forward: Frame = {"t": "chunk", "sid": stream.id, "data": data}
        header = frame.get("header")
        if header is not None:
            if not is_json_object(header):
                streams.abort(stream, None, Code.INVALID_REQUEST, "chunk header not JSON")
                return
            forward["header"] = header
        if len(frame) == len(forward):
            # No other keys: the frame is the forward already (``sid`` named this stream),
            # so its bytes go on as they came, not decoded data encoded again.
            payload = self._payload
            streams.chunk(stream, HEADER.pack(len(payload)) + payload, len(data))
            return
        encoded = encode_frame(forward)
        if len(encoded) - PREFIX_SIZE > self._server.config.max_frame_size:
            streams.abort(stream, None, Code.TOO_LARGE, "a chunk over the frame limit")
            return
        streams.chunk(stream, encoded, len(data))

    def _stamped(self, frame: Frame) -> bytes:
        """A frame stamped by the server, refused if the stamps took it over the frame limit
        (compact CBOR can grow when re-encoded)."""
        data = encode_frame(frame)
        most = self._server.config.max_frame_size
        if len(data) - PREFIX_SIZE > most:
            raise _Refusal(
                Code.TOO_LARGE,
                f"the stamped {frame['t']!r} would be {len(data) - PREFIX_SIZE} bytes, over"
                f" the {most}-byte frame limit",
            )
        return data

    def _service(self, frame: Frame, size: int, now: float) -> Event | None:
        return self._server.services.request(self, self._room, frame, size, now)

    # --- lifecycle ------------------------------------------------------------------------

    def _leave(self) -> None:
        """Remove this participant from presence; a no-op when it is not there."""
        member, self._member = self._member, None
        self._server.calls.left(self)
        self._server.streams.left(self)
        if member is not None:
            self._server.presence.remove(self._room, member)
        elif self._grants.hidden:
            # Not a member, so presence.remove would not drop its presence feed.
            self._room.listeners.pop(self._me.id, None)

    def _on_closed(self, code: Code) -> None:
        server = self._server
        closes = server.stats.closes
        closes[code] = closes.get(code, 0) + 1
        server.timers.cancel(self)
        server.services.closed(self)
        if self._joined and server.by_participant.get(self._me.id) is self:
            del server.by_participant[self._me.id]
        if self._handed_over:
            self._detach()  # the resumed connection holds the participant now
            server.router.leave(self._room)
        elif self._joined and code in _LOST and server.config.resume_window:
            # Lost, not closed: present, suspended, until it resumes or its window ends
            # (the room stays: this connection still counts in it).
            self._detach()
            server.suspended.hold(self._me.id, self, self._now)
        else:
            self._leave()
            if self._joined:
                server.router.leave(self._room)
        server.calls.closed(self)
        server.forget(self)

    def _detach(self) -> None:
        """Stop this connection's traffic (fan-out, presence, calls, streams) but leave its
        participant present: a resume takes it back (PROTOCOL.md §22). Messages sent to
        it meanwhile are kept in history and replayed."""
        server, room, pid = self._server, self._room, self._me.id
        server.router.seal()
        server.calls.left(self)
        server.streams.left(self)
        if room.local.get(pid) is self.outbound:
            del room.local[pid]
        if room.listeners.get(pid) is self.outbound:
            del room.listeners[pid]

    def _give_up(self, successor: ServerConnection) -> None:
        """A resume took this participant: a suspended connection's place in the room goes
        to ``successor``; a still open one (a half-open connection whose loss the server
        has not noticed) is closed, leaving presence alone."""
        if self._state is State.CLOSED:
            self._server.router.leave(self._room)
        else:
            self._handed_over = True
            self._abort(Code.RESUMED_ELSEWHERE, "another connection resumed this participant")

    def lapsed(self) -> None:
        """Internal: this suspended participant's resume window ended: it leaves now."""
        self._leave()
        self._room.lapse(self._me.id)
        self._server.router.leave(self._room)

    def _queue(self, data: bytes) -> None:
        self._queues.push_one(self.outbound, data)

    def _take_output(self) -> list[bytes]:
        return self.outbound.take()

    @property
    def outbound_size(self) -> int:
        """Bytes queued and not yet taken by ``data_to_send``."""
        return self.outbound.size

    # --- internal: called by the server's other parts -------------------------------------

    def close_slow(self) -> None:
        """Internal: close a slow consumer. What is queued would never be read: drop it and
        keep only the close frame."""
        self.outbound.drop()
        limit = self.outbound.limit
        self._abort(Code.SLOW_CONSUMER, f"over {limit} bytes queued: the client reads too slowly")

    def queue_ack(self, ack: bytes) -> None:
        """Internal: the ack of a message whose record is now stored; dropped once closed."""
        if self.state is not State.CLOSED:
            self._queue(ack)

    def queue_history(self, rid: int, entries: list[Entry], epoch: str, reset: bool) -> None:
        """Internal: queue the pages answering history request ``rid`` in ``epoch`` (the
        room's) (``reset``: its position was not honoured)."""
        size = self._server.config.max_frame_size
        for data in history_frames(rid, entries, size, epoch, reset):
            self._queue(data)
            # Like a snapshot, an asked-for reply is not a sign of a slow reader.
            self.outbound.exempt(len(data))

    def refuse(self, rid: int, code: Code, reason: str) -> None:
        """Internal: answer request ``rid`` with an error frame (and count it)."""
        self._send({"t": "error", "rid": rid, "code": int(code), "reason": reason})
        refusals = self._server.stats.refusals
        refusals[code] = refusals.get(code, 0) + 1

    def close_now(self, code: Code, reason: str) -> None:
        """Internal: close from the server's side (shutdown)."""
        self._abort(code, reason)

    def _next_timer(self) -> float:
        """Once welcomed: the next ping, or the dead-peer deadline if that comes first."""
        config = self._server.config
        return min(
            self._pinged_at + config.heartbeat_interval,
            self._heard_at + config.heartbeat_interval + config.heartbeat_timeout,
            self._expires_at,
        )

    def on_timer(self, now: float) -> None:
        """Internal: the timer armed with ``RoomServer.timers`` is due."""
        config = self._server.config
        self._now = now
        if self._state is State.HANDSHAKE:
            # The only timer armed during the handshake is its deadline (see __init__), and
            # handle_timer runs a timer only once it is due.
            self._abort(Code.HANDSHAKE_TIMEOUT, "no valid hello within the handshake timeout")
            return
        if now >= self._expires_at:
            self._abort(Code.TOKEN_EXPIRED, "the token expired: refresh it before its exp")
            return
        if now >= self._heard_at + config.heartbeat_interval + config.heartbeat_timeout:
            self._abort(Code.HEARTBEAT_TIMEOUT, "nothing heard within the heartbeat timeout")
            return
        if now >= self._pinged_at + config.heartbeat_interval:
            self._send({"t": "ping"})
            self._pinged_at = now
        self._server.timers.arm(self, self._next_timer())


def _expiry(token: ParticipantToken) -> float:
    return math.inf if token.expires_at is None else token.expires_at


_NOBODY = RemoteParticipant(id="", name="", role="")
_NO_GRANTS = ParticipantToken(
    room="-", name="-", can_send=False, can_broadcast=False, can_list=False
)
_NO_ROOM = Room("")
_LARGEST_SEQ = 2**64 - 1
_LOST = frozenset({Code.CONNECTION_LOST, Code.HEARTBEAT_TIMEOUT})
"""Closes that mean the connection was lost, not ended: its participant may resume."""

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
    "history": FrameKind(check_history, Input.HISTORY, ServerConnection._history, "read history"),
    "refresh": FrameKind(
        check_refresh, Input.REFRESH, ServerConnection._refresh, "refresh the token"
    ),
    "ping": FrameKind(check_bare, Input.HEARTBEAT, ServerConnection._heartbeat),
    "pong": FrameKind(check_bare, Input.HEARTBEAT, ServerConnection._heartbeat),
    "close": FrameKind(check_close, Input.PEER_CLOSE, ServerConnection._peer_close),
    "call": FrameKind(check_call, Input.CALL, ServerConnection._call, "call"),
    "answer": FrameKind(check_answer, Input.ANSWER, ServerConnection._answer, "answer a call"),
    "cancel": FrameKind(check_request, Input.CANCEL, ServerConnection._cancel),
    "open": FrameKind(check_open, Input.STREAM, ServerConnection._open_stream, "open a stream"),
    "accept": FrameKind(
        check_accept, Input.STREAM, ServerConnection._accept_stream, "accept a stream"
    ),
    "chunk": FrameKind(check_chunk, Input.STREAM_DATA, ServerConnection._stream_frame),
    "credit": FrameKind(check_credit, Input.STREAM_DATA, ServerConnection._stream_frame),
    "end": FrameKind(check_stream_end, Input.STREAM_DATA, ServerConnection._stream_frame),
    "abort": FrameKind(check_abort, Input.STREAM_DATA, ServerConnection._stream_frame),
    "svc_attach": FrameKind(check_request, Input.SERVICE, ServerConnection._service, "attach"),
    "svc_decide": FrameKind(check_svc_decide, Input.SERVICE, ServerConnection._service, "decide"),
    "svc_send": FrameKind(check_svc_send, Input.SERVICE, ServerConnection._service, "send as"),
    "svc_puppet": FrameKind(
        check_svc_puppet, Input.SERVICE, ServerConnection._service, "create a puppet"
    ),
    "svc_unpuppet": FrameKind(
        check_svc_unpuppet, Input.SERVICE, ServerConnection._service, "remove a puppet"
    ),
}
"""Every frame kind a client sends: the server's one registry. Requests (with a verb) are
refused with INVALID_STATE where the state does not allow them; other frames out of place
break the protocol."""
