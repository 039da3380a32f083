"""The client side of a roomwire connection."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from types import EllipsisType

import attrs

from ._codec import ATTRIBUTES_DEPTH, Frame, encode_frame, is_json_object
from ._config import PROTOCOL_VERSION, ClientConfig
from ._connection import BaseConnection, NextEvent
from ._errors import (
    InvalidRequest,
    LocalProtocolError,
    MessageTooLarge,
    RemoteProtocolError,
)
from ._fast import encode_chunk
from ._framing import PREFIX_SIZE, Framing
from ._idempotency import key_error
from ._participant import attributes_size, from_record, merge_attributes, participant_named
from ._registry import FrameKind, receive
from ._resume import ResumeInfo
from ._shapes import (
    LIMIT_FIELDS,
    check_aborted,
    check_ack,
    check_bare,
    check_call_cancelled,
    check_chunk,
    check_close,
    check_credit,
    check_error,
    check_history_page,
    check_incoming_call,
    check_left,
    check_msg,
    check_offer,
    check_presence,
    check_result,
    check_snapshot,
    check_stream_end,
    check_svc_msg,
    check_svc_timeout,
    check_welcome,
)
from ._state import REPLIES, Input, State
from .codes import Code
from .events import (
    CallAnswered,
    CallCancelled,
    CallFailed,
    CallReceived,
    ChunkReceived,
    Connected,
    ConnectionClosed,
    CreditGranted,
    Event,
    HistoryReceived,
    InterceptTimedOut,
    JSONObject,
    Limits,
    MessageIntercepted,
    MessageReceived,
    MessagingDisabled,
    MessagingEnabled,
    ParticipantAdded,
    ParticipantRemoved,
    ParticipantUpdated,
    RemoteParticipant,
    RequestAcked,
    RequestRefused,
    RoomMessage,
    StreamAborted,
    StreamEnded,
    StreamOffered,
    UpwardMessage,
)


class ClientConnection(BaseConnection):
    """The client's state machine. Construct it when the transport is up: it queues the hello.

    Feed it with ``receive_data``, read events with ``next_event(now)``, call the verbs, and
    after every call write ``data_to_send()`` to the transport. Re-arm a timer for
    ``next_deadline()`` and call ``handle_timer(now)`` when it fires. On a message transport
    (``framing=Framing.MESSAGE``) use ``receive_message`` and ``messages_to_send`` instead.
    """

    __slots__ = (
        "_asked",
        "_close_sent",
        "_connected",
        "_deadline",
        "_enabled",
        "_epoch",
        "_history",
        "_interval",
        "_limits",
        "_me",
        "_pending",
        "_presence",
        "_resume",
        "_rids",
        "_room",
        "_secret",
        "_seq",
        "_snapshot",
        "_timeout",
        "config",
    )

    def __init__(
        self,
        *,
        token: str,
        now: float,
        room: str | None = None,
        config: ClientConfig | None = None,
        framing: Framing = Framing.STREAM,
        resume: ResumeInfo | None = None,
    ) -> None:
        """``resume``: the last connection's ``resume_info``, to take its participant back
        and get what it missed (PROTOCOL.md §22)."""
        self.config = config or ClientConfig()
        super().__init__(self.config.max_frame_size, framing)
        self._rids = itertools.count(1)
        self._pending: dict[int, tuple[Input, JSONObject | None]] = {}
        self._presence: dict[str, RemoteParticipant] = {}
        self._snapshot: list[RemoteParticipant] = []
        self._history: list[RoomMessage] = []
        """The pages of the history reply being received (the server sends them together)."""
        # Placeholders until the welcome: verbs that read them are not allowed before it.
        self._me = RemoteParticipant(id="", name="", role="")
        self._connected = False
        self._room = room
        self._limits = Limits(**dict.fromkeys(LIMIT_FIELDS, 0))
        self._interval = self._timeout = 0.0
        self._deadline = now + self.config.handshake_timeout
        self._close_sent: ConnectionClosed | None = None
        """Set by ``close``: this side's clean close, reported once the server answers."""
        self._resume = resume
        self._secret: str | None = None
        self._epoch, self._seq = "", 0
        """The room's epoch and the last room seq processed: the position a resume names."""
        self._enabled: bool | None = None
        """Messaging enabled with presence (True) or without (False); None: not enabled."""
        self._asked = True
        """The presence the last enable asked for."""
        hello: Frame = {"t": "hello", "v": PROTOCOL_VERSION, "token": token}
        if room is not None:
            hello["room"] = room
        if resume is not None:
            hello["resume"] = resume.frame()
        self._send(hello)
        self._move(Input.HELLO)

    # --- what the client knows ------------------------------------------------------------

    @property
    def local_participant(self) -> RemoteParticipant | None:
        """This connection's participant, once the welcome arrived."""
        return self._me if self._connected else None

    @property
    def room(self) -> str | None:
        """The room: as asked for until the welcome, then as the server confirmed."""
        return self._room

    @property
    def limits(self) -> Limits | None:
        """The server's advertised limits, once the welcome arrived."""
        return self._limits if self._connected else None

    @property
    def resume_info(self) -> ResumeInfo | None:
        """What the next connection presents to resume this one (``ClientConnection(...,
        resume=...)``), up to the last message or presence change processed; None before
        the welcome, or when the server does not resume (PROTOCOL.md §22)."""
        if self._secret is None:
            return None
        return ResumeInfo(
            participant_id=self._me.id,
            secret=self._secret,
            epoch=self._epoch,
            seq=self._seq,
            enabled=self._enabled is not None,
            presence=self._enabled is not False,
        )

    @property
    def remote_participants(self) -> list[RemoteParticipant]:
        """Participants with messaging enabled, as of the last event returned."""
        return list(self._presence.values())

    def get_participant(self, participant_id: str) -> RemoteParticipant | None:
        return self._presence.get(participant_id)

    def get_participant_by_name(self, name: str) -> RemoteParticipant | None:
        """The one present participant with this name; None if none or several carry it
        (names are not unique: see ``participant_named``)."""
        return participant_named(self._presence.values(), name)

    # --- verbs: each queues one frame and returns its request id ------------------------

    def enable(self, *, presence: bool = True) -> int:
        """Ask to enable messaging. ``MessagingEnabled`` (with the snapshot) or
        ``RequestRefused`` answers it. ``presence=False`` asks for no presence at all."""
        self._check_allowed(Input.ENABLE, "enable")
        rid = self._request(Input.ENABLE, {"t": "enable", "presence": presence})
        self._asked = presence
        return rid

    def disable(self) -> int:
        """Ask to disable messaging; ``MessagingDisabled`` answers it."""
        self._check_allowed(Input.DISABLE, "disable")
        return self._request(Input.DISABLE, {"t": "disable"})

    def send_message(
        self,
        to: str | Sequence[str],
        type: str,
        message: JSONObject,
        attachment: bytes | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Send to one participant id or a list of them. Allowed once ``enable`` was called.
        ``RequestAcked`` (with the message id) or ``RequestRefused`` answers it.

        ``idempotency_key`` (1 to 64 characters): the server delivers a key at most once
        within its ``limits.idempotency_window``; a repeat is acked with the first send's id
        (``RequestAcked.duplicate``). Re-send with the same key after a reconnect."""
        self._check_allowed(Input.SEND, "send a message")
        if isinstance(to, str):
            recipients = [to]  # the common case, with nothing to check
        else:
            recipients = list(to)
            if not all(isinstance(r, str) for r in recipients):
                raise InvalidRequest("recipients must be participant ids (strings)")
            recipients = list(dict.fromkeys(recipients))  # as the server counts them
            most = self._limits.max_recipients
            if not recipients or len(recipients) > most:
                raise InvalidRequest(f"a send names 1 to {most} recipients")
        frame = self._message_frame("send", type, message, attachment, idempotency_key)
        frame["to"] = recipients
        return self._request(Input.SEND, frame)

    def broadcast_message(
        self,
        type: str,
        message: JSONObject,
        attachment: bytes | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Send to every other participant with messaging enabled (``idempotency_key``: as
        for ``send_message``)."""
        self._check_allowed(Input.SEND, "broadcast a message")
        return self._request(
            Input.SEND,
            self._message_frame("broadcast", type, message, attachment, idempotency_key),
        )

    def set_attributes(self, attributes: JSONObject) -> int:
        """Merge ``attributes`` into this participant's own (a None value removes a key)."""
        self._check_allowed(Input.ATTRIBUTES, "set attributes")
        if not is_json_object(attributes, ATTRIBUTES_DEPTH):
            raise InvalidRequest(
                f"attributes must be a JSON object at most {ATTRIBUTES_DEPTH} levels deep"
            )
        merged = merge_attributes(self._me.attributes, attributes)
        most = self._limits.max_attributes_size
        if attributes_size(merged) > most:
            raise MessageTooLarge(f"attributes would be over the {most}-byte limit")
        return self._request(Input.ATTRIBUTES, {"t": "attrs", "attributes": attributes}, merged)

    def history(
        self,
        *,
        limit: int = 100,
        since: int | None = None,
        reverse: bool = False,
        epoch: str | None = None,
    ) -> int:
        """Ask for the room's messages this participant may read (broadcasts, and direct
        messages to or from its name): after seq ``since`` (exclusive), oldest first, or
        newest first with ``reverse``; at most ``limit``, up to the advertised
        ``max_history_limit``. ``HistoryReceived`` or ``RequestRefused`` answers it.
        ``epoch``: the epoch ``since`` was seen in (``HistoryReceived.epoch``); if the
        room's is another, ``since`` is ignored (PROTOCOL.md §21.2)."""
        self._check_allowed(Input.HISTORY, "read history")
        most = self._limits.max_history_limit
        if type(limit) is not int or not 0 < limit <= most:
            raise InvalidRequest(f"limit must be an integer from 1 to {most}")
        if since is not None and (type(since) is not int or since < 0):
            raise InvalidRequest("since must be None or a seq (an integer of 0 or more)")
        frame: Frame = {"t": "history", "limit": limit, "reverse": bool(reverse)}
        if since is not None:
            frame["since"] = since
        if epoch is not None:
            frame["epoch"] = epoch
        return self._request(Input.HISTORY, frame)

    def refresh_token(self, token: str) -> int:
        """Hand the server a new token before this one's ``exp`` (same room, name, role and
        grants; a later ``exp``): it closes the connection with TOKEN_EXPIRED at the ``exp``
        it holds. ``RequestAcked`` or ``RequestRefused`` (TOKEN_REFUSED) answers it."""
        self._check_allowed(Input.REFRESH, "refresh the token")
        if type(token) is not str:
            raise InvalidRequest("a token is a string")
        return self._request(Input.REFRESH, {"t": "refresh", "token": token})

    # --- participant RPC (PROTOCOL.md §24) -------------------------------------------------

    def call(self, to: str, type: str, message: JSONObject, attachment: bytes | None = None) -> int:
        """Call one participant (by id). Allowed once ``enable`` was called. The one answer
        is ``CallAnswered``, ``CallFailed`` (the callee's error) or ``RequestRefused`` (the
        server's: not found, callee left, cancelled...)."""
        self._check_allowed(Input.CALL, "call a participant")
        if not isinstance(to, str):
            raise InvalidRequest("a call names one participant id (a string)")
        frame = self._message_frame("call", type, message, attachment)
        frame["to"] = to
        return self._request(Input.CALL, frame)

    def answer(self, call_id: str, message: JSONObject, attachment: bytes | None = None) -> int:
        """Answer call ``call_id`` (from ``CallReceived``); ``RequestAcked`` or
        ``RequestRefused`` (CALL_NOT_FOUND: not asked, already answered or cancelled)."""
        self._check_allowed(Input.ANSWER, "answer a call")
        if not is_json_object(message):
            raise InvalidRequest("message must be a JSON object (str keys, JSON values)")
        frame: Frame = {"t": "answer", "id": call_id, "message": message}
        if attachment is not None:
            frame["att"] = _as_bytes(attachment)
        return self._answer(frame)

    def fail_call(self, call_id: str, code: int, reason: str) -> int:
        """Answer call ``call_id`` with an error: ``code`` (any integer) and ``reason`` reach
        the caller unchanged, as ``CallFailed``."""
        self._check_allowed(Input.ANSWER, "answer a call")
        # An int subclass (a ``Code``) is fine; a bool is not a code.
        if (
            isinstance(code, bool)
            or not isinstance(code, int)
            or not -(2**63) <= code < 2**63
            or type(reason) is not str
        ):
            raise InvalidRequest("a call's error is an integer code and a str reason")
        return self._answer({"t": "answer", "id": call_id, "code": int(code), "reason": reason})

    def cancel_call(self, request_id: int) -> None:
        """Give up on call ``request_id``: the callee is told (``CallCancelled``). The call
        still gets its one answer (``RequestRefused`` with CALL_CANCELLED, or the result if
        it crossed the cancel). The server ignores a cancel that names no waiting call."""
        self._check_allowed(Input.CANCEL, "cancel a call")
        self._send({"t": "cancel", "rid": request_id})
        self._move(Input.CANCEL)

    # --- streams (PROTOCOL.md §24.4) --------------------------------------------------------

    def open_stream(self, to: str, header: JSONObject) -> int:
        """Open a stream to one participant (by id). ``RequestAcked`` (its ``message_id`` is
        the stream id) once the reader accepted; then send at most ``limits.stream_window``
        bytes of chunk data ahead of its ``CreditGranted``. ``RequestRefused`` otherwise."""
        self._check_allowed(Input.STREAM, "open a stream")
        if not isinstance(to, str):
            raise InvalidRequest("a stream goes to one participant id (a string)")
        if not is_json_object(header):
            raise InvalidRequest("header must be a JSON object (str keys, JSON values)")
        return self._request(Input.STREAM, {"t": "open", "to": to, "header": header})

    def accept_stream(self, stream_id: str) -> int:
        """Accept a stream offered by ``StreamOffered``: the writer may start."""
        self._check_allowed(Input.STREAM, "accept a stream")
        return self._request(Input.STREAM, {"t": "accept", "sid": _stream_id(stream_id)})

    def send_chunk(self, stream_id: str, data: bytes, header: JSONObject | None = None) -> None:
        """Queue a chunk of a stream this participant writes (within the reader's credit:
        the server aborts the stream with OVER_CREDIT otherwise)."""
        sid, data = _stream_id(stream_id), _as_bytes(data, "data")
        if header is None:
            self._check_allowed(Input.STREAM_DATA, "use a stream")
            self._queue_stream_frame("chunk", encode_chunk(sid, data))
            return
        if not is_json_object(header):
            raise InvalidRequest("a chunk's header must be a JSON object")
        self._stream_frame({"t": "chunk", "sid": sid, "data": data, "header": header})

    def grant_credit(self, stream_id: str, n: int) -> None:
        """Let the writer of a stream this participant reads send ``n`` more bytes (the
        total never past ``limits.stream_window``)."""
        if type(n) is not int or not 0 < n < 2**63:
            raise InvalidRequest("credit is a positive integer of bytes")
        self._stream_frame({"t": "credit", "sid": _stream_id(stream_id), "n": n})

    def end_stream(self, stream_id: str) -> None:
        """End a stream this participant writes: the reader gets ``StreamEnded`` after the
        chunks."""
        self._stream_frame({"t": "end", "sid": _stream_id(stream_id)})

    def abort_stream(self, stream_id: str, reason: str = "") -> None:
        """Fail a stream this participant writes or reads (or refuse one offered): the
        other side gets ``StreamAborted`` (STREAM_ABORTED) with ``reason``."""
        if type(reason) is not str:
            raise InvalidRequest("reason must be a str")
        self._stream_frame({"t": "abort", "sid": _stream_id(stream_id), "reason": reason})

    def _stream_frame(self, frame: Frame) -> None:
        self._check_allowed(Input.STREAM_DATA, "use a stream")
        self._queue_stream_frame(frame["t"], encode_frame(frame))

    def _queue_stream_frame(self, kind: str, data: bytes) -> None:
        # The size check of _request, written again there: a send must not pay for a call.
        most = self._limits.max_send_size
        if len(data) - PREFIX_SIZE > most:
            raise MessageTooLarge(
                f"{kind} frame of {len(data) - PREFIX_SIZE} bytes is over the server's"
                f" {most}-byte limit"
            )
        self._queue(data)
        self._move(Input.STREAM_DATA)

    def _answer(self, frame: Frame) -> int:
        if type(frame["id"]) is not str:
            raise InvalidRequest("a call id is a string")
        return self._request(Input.ANSWER, frame)

    # --- services (docs/PROTOCOL.md §23) -------------------------------------------------

    def send_to_service(
        self,
        type: str,
        message: JSONObject,
        attachment: bytes | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Send to the room's service only (a ``send`` with no recipients)."""
        self._check_allowed(Input.SEND, "send a message")
        frame = self._message_frame("send", type, message, attachment, idempotency_key)
        frame["to"] = []
        return self._request(Input.SEND, frame)

    def attach_service(self) -> int:
        """Attach as the room's service (the token needs the ``intercept`` grant); from the
        ``ack`` on, ``MessageIntercepted`` events bring the room's messages to decide."""
        self._check_allowed(Input.SERVICE, "attach as the room's service")
        return self._request(Input.SERVICE, {"t": "svc_attach"})

    def decide(
        self,
        message_id: str,
        *,
        drop: bool = False,
        type: str | None = None,
        message: JSONObject | None = None,
        attachment: bytes | EllipsisType | None = ...,
        to: Sequence[str] | EllipsisType | None = ...,
    ) -> int:
        """Decide an intercepted message: deliver it (``type``, ``message``, ``attachment``
        and ``to`` replace what was sent; ``...`` and None keep it, ``to=None`` makes it a
        broadcast), or ``drop`` it."""
        self._check_allowed(Input.SERVICE, "decide")
        frame: Frame = {"t": "svc_decide", "id": message_id}
        if drop:
            frame["drop"] = True
        # What replaces the sender's is checked as a send's would be.
        if type is not None:
            frame["type"] = self._message_frame("send", type, {}, None)["type"]
        if message is not None:
            frame["message"] = self._message_frame("send", "-", message, None)["message"]
        if attachment is not ...:
            frame["att"] = None if attachment is None else bytes(attachment)
        if to is not ...:
            frame["to"] = self._recipients(to)
        return self._request(Input.SERVICE, frame)

    def send_as(
        self,
        sender: str,
        type: str,
        message: JSONObject,
        attachment: bytes | None = None,
        to: Sequence[str] | None = None,
    ) -> int:
        """As the room's service: send as ``sender`` (any present participant or one of its
        puppets) to ``to`` (None: everyone; absent ids are skipped)."""
        self._check_allowed(Input.SERVICE, "send as another participant")
        frame = self._message_frame("svc_send", type, message, attachment)
        frame["from"] = sender
        frame["to"] = self._recipients(to)
        return self._request(Input.SERVICE, frame)

    def create_puppet(self, puppet_name: str, attributes: JSONObject) -> int:
        """As the room's service: create a puppet; its ``ack`` carries the puppet's id."""
        self._check_allowed(Input.SERVICE, "create a puppet")
        if type(puppet_name) is not str or not 0 < len(puppet_name) <= _MAX_NAME:
            raise InvalidRequest(f"a name must be a string of 1 to {_MAX_NAME} characters")
        if not is_json_object(attributes, ATTRIBUTES_DEPTH):
            raise InvalidRequest(
                f"attributes must be a JSON object at most {ATTRIBUTES_DEPTH} levels deep"
            )
        most = self._limits.max_attributes_size
        if attributes_size(attributes) > most:
            raise MessageTooLarge(f"attributes would be over the {most}-byte limit")
        return self._request(
            Input.SERVICE, {"t": "svc_puppet", "name": puppet_name, "attributes": attributes}
        )

    def remove_puppet(self, puppet_id: str) -> int:
        """As the room's service: remove one of its puppets."""
        self._check_allowed(Input.SERVICE, "remove a puppet")
        return self._request(Input.SERVICE, {"t": "svc_unpuppet", "id": puppet_id})

    def _recipients(self, to: Sequence[str] | None) -> list[str] | None:
        if to is None:
            return None
        recipients = list(dict.fromkeys(to))
        if not all(isinstance(r, str) for r in recipients):
            raise InvalidRequest("recipients must be participant ids (strings)")
        most = self._limits.max_recipients
        if len(recipients) > most:
            raise InvalidRequest(f"a send names at most {most} recipients")
        return recipients

    def close(self, code: Code = Code.NORMAL, reason: str = "") -> None:
        """Start a clean close; ``ConnectionClosed`` follows when the server answers."""
        self._check_allowed(Input.LOCAL_CLOSE, "close")
        self._send({"t": "close", "code": int(code), "reason": reason})
        self._move(Input.LOCAL_CLOSE)
        self._close_sent = ConnectionClosed(code=code, reason=reason, by_peer=False)

    # --- time -----------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` must next run, or None when no timer is needed."""
        return None if self._state is State.CLOSED else self._deadline

    def handle_timer(self, now: float) -> None:
        """Apply timeouts; a close it causes comes out of ``next_event``."""
        if now < self._deadline or self._state is State.CLOSED:
            return
        if self._state is State.HANDSHAKE:
            self._abort(Code.HANDSHAKE_TIMEOUT, "no welcome within the handshake timeout")
        elif self._close_sent is not None:  # CLOSING: the server never answered
            self._finish(Input.ABORT, self._close_sent.code, self._close_sent.reason, False)
        else:
            self._abort(Code.HEARTBEAT_TIMEOUT, "nothing heard from the server in time")

    # --- events ---------------------------------------------------------------------------

    def next_event(self, now: float) -> NextEvent:
        """Decode one frame and apply it; ``NEED_DATA`` when none is complete.

        Raises ``RemoteProtocolError`` on invalid input, after queuing a close frame.
        """
        while True:
            try:
                # The buffer itself raises for a bad length prefix: that must close too.
                payload = self._next_payload()
                if type(payload) is not bytes:
                    return payload  # type: ignore[return-value]
                frame, kind = receive(payload, SERVER_KINDS)
                if kind.input is not None:
                    self._expect(kind.input, frame["t"])
                event = kind.handle(self, frame, now)
            except RemoteProtocolError as exc:
                raise self._fail(exc) from None
            if event is not None:
                return event

    # --- frame handlers: the registry (SERVER_KINDS, below) checks and moves first ------

    def _delivery(self, frame: Frame, now: float) -> Event:
        self._seq = max(self._seq, frame["seq"])
        self._alive(now)
        return MessageReceived(message=_room_message(frame))

    def _history_page(self, frame: Frame, now: float) -> Event | None:
        rid = frame["rid"]
        pending = self._pending.get(rid)
        if pending is None or pending[0] is not Input.HISTORY:
            raise RemoteProtocolError(f"a history page answers {rid}, not a history request")
        self._expect(Input.REPLY, "history")
        self._alive(now)
        self._history.extend(_room_message(m) for m in frame["messages"])
        if frame["more"]:
            return None
        del self._pending[rid]
        messages, self._history = tuple(self._history), []
        return HistoryReceived(
            request_id=rid,
            messages=messages,
            epoch=frame.get("epoch"),
            reset=frame.get("reset", False),
        )

    def _incoming_call(self, frame: Frame, now: float) -> Event:
        self._alive(now)
        return CallReceived(call=_call_message(frame))

    def _call_cancelled(self, frame: Frame, now: float) -> Event:
        self._alive(now)
        return CallCancelled(call_id=frame["id"])

    def _stream_offer(self, frame: Frame, now: float) -> Event:
        self._alive(now)
        return StreamOffered(
            stream_id=frame["sid"],
            from_participant_id=frame["from"],
            header=frame["header"],
            timestamp=float(frame["ts"]),
        )

    def _stream_event(self, frame: Frame, now: float) -> Event:
        self._alive(now)
        kind, sid = frame["t"], frame["sid"]
        if kind == "chunk":
            return ChunkReceived(stream_id=sid, data=frame["data"], header=frame.get("header"))
        if kind == "credit":
            return CreditGranted(stream_id=sid, n=frame["n"])
        if kind == "end":
            return StreamEnded(stream_id=sid)
        return StreamAborted(stream_id=sid, code=Code(frame["code"]), reason=frame["reason"])

    def _result(self, frame: Frame, now: float) -> Event:
        rid = frame["rid"]
        pending = self._pending.get(rid)
        if pending is None or pending[0] is not Input.CALL:
            raise RemoteProtocolError(f"a result answers {rid}, not a call")
        self._expect(Input.REPLY, "result")
        self._alive(now)
        del self._pending[rid]
        if "code" in frame:
            return CallFailed(request_id=rid, code=frame["code"], reason=frame["reason"])
        return CallAnswered(request_id=rid, reply=_call_message(frame))

    def _intercepted(self, frame: Frame, now: float) -> Event:
        self._alive(now)
        to = frame["to"]
        return MessageIntercepted(
            message=UpwardMessage(
                id=frame["id"],
                timestamp=float(frame["ts"]),
                from_participant_id=frame["from"],
                type=frame["type"],
                message=frame["message"],
                attachment=frame.get("att"),
                recipients=None if to is None else list(to),
            )
        )

    def _intercept_timeout(self, frame: Frame, now: float) -> Event:
        self._alive(now)
        return InterceptTimedOut(message_id=frame["id"])

    def _heartbeat(self, frame: Frame, now: float) -> None:
        """Proof of life; a ping is answered."""
        self._alive(now)
        if frame["t"] == "ping" and self._state is not State.CLOSING:  # nothing follows our close
            self._send({"t": "pong"})

    def _welcome(self, frame: Frame, now: float) -> Event | None:
        if frame["v"] != PROTOCOL_VERSION:
            raise RemoteProtocolError(
                f"the server speaks version {frame['v']}, not {PROTOCOL_VERSION}",
                Code.UNSUPPORTED_VERSION,
            )
        participant = from_record(frame["participant"])
        limits = Limits(**{k: frame["limits"][k] for k in LIMIT_FIELDS if k in frame["limits"]})
        ceiling = self.config.max_frame_size
        if limits.max_frame_size > ceiling:
            raise RemoteProtocolError(
                f"the server sends frames of up to {limits.max_frame_size} bytes, over this"
                f" client's {ceiling}-byte ceiling",
                Code.FRAME_TOO_LARGE,
            )
        # From now on the server's promise bounds what it sends (deliveries included).
        self._buffer.max_frame_size = limits.max_frame_size
        self._interval = float(frame["hb"])
        self._timeout = float(frame["hbt"])
        if self._state is State.CLOSING:
            return None
        self._me, self._room, self._limits = participant, frame["room"], limits
        self._connected = True
        self._alive(now)
        resume, recovered = self._resume, frame.get("recovered", False)
        self._secret = frame.get("resume")
        self._epoch = frame.get("epoch", "")
        # Recovered: the replay that follows starts after the old position.
        self._seq = resume.seq if recovered and resume is not None else frame.get("seq", 0)
        if frame.get("enabled", False):
            # The server enabled it (a resume): a snapshot answers "request 0" (§22).
            self._move(Input.ENABLE)
            self._pending[0] = (Input.ENABLE, None)
            self._asked = getattr(resume, "presence", True)
        return Connected(
            participant=participant,
            room=frame["room"],
            limits=limits,
            heartbeat_interval=self._interval,
            heartbeat_timeout=self._timeout,
            resumed=frame.get("resumed", False),
            recovered=recovered,
            missed=frame.get("missed", 0),
        )

    def _reply(self, frame: Frame, now: float) -> Event | None:
        rid = frame["rid"]
        pending = self._pending.get(rid)
        if pending is None:
            raise RemoteProtocolError(f"reply to unknown request {rid}", Code.PROTOCOL_ERROR)
        request, merged = pending
        kind = frame["t"]
        last = kind != "snapshot" or not frame["more"]
        event = REPLIES.get((request, "last snapshot" if kind == "snapshot" and last else kind))
        if event is None:
            raise RemoteProtocolError(_WRONG_REPLY[kind].format(rid=rid))
        self._expect(event, kind)
        self._alive(now)
        if kind == "snapshot":
            self._snapshot.extend(from_record(p) for p in frame["participants"])
        if not last:
            return None
        del self._pending[rid]
        if kind == "snapshot":
            participants, self._snapshot = tuple(self._snapshot), []
            self._presence = {p.id: p for p in participants}
            self._enabled = self._asked
            return MessagingEnabled(request_id=rid, participants=participants)
        if kind == "error":
            self._snapshot = []  # pages received before a refused enable are void
            return RequestRefused(request_id=rid, code=Code(frame["code"]), reason=frame["reason"])
        if request is Input.DISABLE:
            self._enabled = None
            self._presence.clear()
            return MessagingDisabled(request_id=rid)
        if merged is not None:
            self._me = attrs.evolve(self._me, attributes=merged)
        return RequestAcked(
            request_id=rid,
            message_id=frame.get("id"),
            recipients=frame.get("recipients"),
            duplicate=frame.get("dup", False),
        )

    def _presence_change(self, frame: Frame, now: float) -> Event:
        kind = frame["t"]
        self._alive(now)
        seq = frame["seq"]
        self._seq = max(self._seq, seq)
        if kind == "left":
            gone = self._presence.pop(frame["id"], None)
            if gone is None:
                raise RemoteProtocolError(f"'left' for absent participant {frame['id']!r}")
            return ParticipantRemoved(participant=gone, seq=seq)
        participant = from_record(frame["p"])
        if (participant.id in self._presence) != (kind == "updated"):
            raise RemoteProtocolError(f"{kind!r} does not match presence for {participant.id!r}")
        self._presence[participant.id] = participant
        if kind == "joined":
            return ParticipantAdded(participant=participant, seq=seq)
        return ParticipantUpdated(participant=participant, seq=seq)

    def _peer_close(self, frame: Frame, now: float) -> ConnectionClosed:
        sent = self._close_sent
        if sent is not None:  # the server's answer to our own close
            return self._settle(sent.code, sent.reason, by_peer=False)
        self._send({"t": "close", "code": frame["code"], "reason": frame["reason"]})
        return self._settle(Code(frame["code"]), frame["reason"], by_peer=True)

    # --- helpers --------------------------------------------------------------------------

    def _expect(self, event: Input, kind: str) -> None:
        if not self._allowed(event):
            raise RemoteProtocolError(
                f"{kind!r} frame not allowed in state {self._state.name}", Code.PROTOCOL_ERROR
            )
        self._move(event)

    def _check_allowed(self, event: Input, what: str) -> None:
        if not self._allowed(event):
            raise LocalProtocolError(f"cannot {what} in state {self._state.name}")

    def _message_frame(
        self,
        kind: str,
        type_: str,
        message: JSONObject,
        attachment: bytes | None,
        key: str | None = None,
    ) -> Frame:
        most = self._limits.max_type_length
        if type(type_) is not str or not 0 < len(type_) <= most:
            raise InvalidRequest(f"type must be a string of 1 to {most} characters")
        if not is_json_object(message):
            raise InvalidRequest("message must be a JSON object (str keys, JSON values)")
        frame: Frame = {"t": kind, "type": type_, "message": message}
        if attachment is not None:
            if not isinstance(attachment, bytes | bytearray | memoryview):
                raise InvalidRequest("attachment must be bytes or None")
            frame["att"] = bytes(attachment)
        if key is not None:
            problem = key_error(key)
            if problem is not None:
                raise InvalidRequest(f"idempotency_{problem}")
            frame["key"] = key
        return frame

    def _request(self, event: Input, frame: Frame, merged: JSONObject | None = None) -> int:
        rid = next(self._rids)
        frame["rid"] = rid
        data = encode_frame(frame)
        if len(data) - PREFIX_SIZE > self._limits.max_send_size:
            raise MessageTooLarge(
                f"{frame['t']} frame of {len(data) - PREFIX_SIZE} bytes is over the server's"
                f" {self._limits.max_send_size}-byte limit"
            )
        self._queue(data)
        self._move(event)
        self._pending[rid] = (event, merged)
        return rid

    def _alive(self, now: float) -> None:
        """The server showed a sign of life: move the dead-peer deadline."""
        if self._state is State.CLOSING:
            return
        self._deadline = now + self._interval + self._timeout


def _room_message(frame: Frame) -> RoomMessage:
    """A ``msg`` frame, or one message of a history page, as the user sees it."""
    return RoomMessage(
        id=frame["id"],
        seq=frame["seq"],
        timestamp=float(frame["ts"]),
        from_participant_id=frame["from"],
        type=frame["type"],
        message=frame["message"],
        attachment=frame.get("att"),
        broadcast=frame["bc"],
    )


def _call_message(frame: Frame) -> RoomMessage:
    """A call, or its answer, as the user sees it: outside the room's order (seq 0)."""
    return RoomMessage(
        id=frame["id"],
        seq=0,
        timestamp=float(frame["ts"]),
        from_participant_id=frame["from"],
        type=frame["type"],
        message=frame["message"],
        attachment=frame.get("att"),
        broadcast=False,
    )


def _stream_id(stream_id: object) -> str:
    if type(stream_id) is not str:
        raise InvalidRequest("a stream id is a string")
    return stream_id


def _as_bytes(value: object, what: str = "attachment") -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidRequest(f"{what} must be bytes")
    return bytes(value)


_MAX_NAME = 256
"""Longest participant name (as a token's)."""

_WRONG_REPLY = {
    "snapshot": "snapshot answers request {rid}, not an enable",
    # The server accepts every disable it is sent (only an enabled client sends one); a
    # refusal would leave this side stuck in DISABLING.
    "error": "the server refused disable {rid}",
    "ack": "an enable ({rid}) is answered by a snapshot, not an ack",
}
"""Why a reply of each kind cannot answer the request it names (``REPLIES`` has no key)."""

_Handler = Callable[[ClientConnection, Frame, float], Event | None]
SERVER_KINDS: dict[str, FrameKind[_Handler]] = {
    "welcome": FrameKind(check_welcome, Input.WELCOME, ClientConnection._welcome),
    "snapshot": FrameKind(check_snapshot, None, ClientConnection._reply),
    "ack": FrameKind(check_ack, None, ClientConnection._reply),
    "error": FrameKind(check_error, None, ClientConnection._reply),
    "msg": FrameKind(check_msg, Input.DELIVERY, ClientConnection._delivery),
    "history": FrameKind(check_history_page, None, ClientConnection._history_page),
    "joined": FrameKind(check_presence, Input.DELIVERY, ClientConnection._presence_change),
    "updated": FrameKind(check_presence, Input.DELIVERY, ClientConnection._presence_change),
    "left": FrameKind(check_left, Input.DELIVERY, ClientConnection._presence_change),
    "ping": FrameKind(check_bare, Input.HEARTBEAT, ClientConnection._heartbeat),
    "pong": FrameKind(check_bare, Input.HEARTBEAT, ClientConnection._heartbeat),
    "close": FrameKind(check_close, Input.PEER_CLOSE, ClientConnection._peer_close),
    "call": FrameKind(check_incoming_call, Input.DELIVERY, ClientConnection._incoming_call),
    "result": FrameKind(check_result, None, ClientConnection._result),
    "cancel": FrameKind(check_call_cancelled, Input.DELIVERY, ClientConnection._call_cancelled),
    "open": FrameKind(check_offer, Input.DELIVERY, ClientConnection._stream_offer),
    "chunk": FrameKind(check_chunk, Input.STREAM_EVENT, ClientConnection._stream_event),
    "credit": FrameKind(check_credit, Input.STREAM_EVENT, ClientConnection._stream_event),
    "end": FrameKind(check_stream_end, Input.STREAM_EVENT, ClientConnection._stream_event),
    "abort": FrameKind(check_aborted, Input.STREAM_EVENT, ClientConnection._stream_event),
    "svc_msg": FrameKind(check_svc_msg, Input.DELIVERY, ClientConnection._intercepted),
    "svc_timeout": FrameKind(
        check_svc_timeout, Input.DELIVERY, ClientConnection._intercept_timeout
    ),
}
"""Every frame kind a server sends: the client's one registry."""
