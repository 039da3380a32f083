"""The client's state across connections, sans-IO: what a driver in any runtime (or
language) mirrors.

``ClientSession`` matches replies to requests, keeps the presence view (the client's one
copy), remembers what a reconnect must restore (attributes, whether messaging was enabled and
with presence) and decides which callbacks to call and which events to queue. It never
touches a socket, a clock or an event loop: the driver feeds it core events and the current
time, and hands it two functions, ``emit`` (queue an event for ``events()``) and ``spawn``
(run an async callback's awaitable).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs

from roomwire import (
    NEED_DATA,
    ClientConnection,
    Code,
    Limits,
    LocalProtocolError,
    RemoteParticipant,
    RemoteProtocolError,
    ResumeInfo,
    RoomMessage,
    State,
    participant_named,
)
from roomwire.events import (
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
    MessageIntercepted,
    MessageReceived,
    MessagingDisabled,
    MessagingEnabled,
    ParticipantAdded,
    ParticipantRemoved,
    ParticipantUpdated,
    RequestAcked,
    RequestRefused,
    StreamAborted,
    StreamEnded,
    StreamOffered,
)

from ._errors import ConnectionClosedError, RoomError, error_for, from_local
from ._rpc import Responder, request_error
from .events import Disconnected, MessagingEvent, Reconnected, SendFailed, SendReceipt

if TYPE_CHECKING:
    from ._streams import Streams

log = logging.getLogger("roomwire.client")

Callback = Callable[[Any], object]
Verb = Callable[[ClientConnection], int]
"""A core verb (``conn.send_message(...)`` ...) that queues a request and returns its id."""
CALLBACK_EVENTS = ("message", "participant_added", "participant_removed", "participant_updated")


class Reply:
    """The outcome of one request: its value (the server's message id for a send, the
    messages for a history request, None for requests with neither), or the error it was
    refused or lost with. ``on_settle`` is called once it is in."""

    __slots__ = ("error", "on_settle", "settled", "value")

    def __init__(self) -> None:
        self.settled = False
        self.value: object = None
        self.error: Exception | None = None
        """A ``RoomError``, or a call's ``RequestError``."""
        self.on_settle: Callable[[], object] | None = None

    def settle(self, value: object = None, error: Exception | None = None) -> None:
        self.settled = True
        self.value, self.error = value, error
        if self.on_settle is not None:
            self.on_settle()

    def result(self) -> object:
        """The value, or raise the error."""
        if self.error is not None:
            raise self.error
        return self.value


def retryable(code: Code) -> bool:
    """Whether a connection closed with ``code`` is worth reconnecting."""
    return code.info.retry or code is Code.CONNECTION_LOST


class ClientSession:
    """One client's requests, presence view, reconnect state and callbacks (see the module)."""

    def __init__(
        self,
        *,
        emit: Callable[[MessagingEvent], None],
        spawn: Callable[[str, Awaitable[object]], None],
    ) -> None:
        self._emit = emit
        self._spawn = spawn
        self._view: dict[str, RemoteParticipant] = {}
        self._callbacks: dict[str, list[Callback]] = {name: [] for name in CALLBACK_EVENTS}
        self._pending: dict[int, Reply | None] = {}
        """Requests of the current connection waiting for an answer; None: nobody waits
        (a refusal becomes a ``SendFailed`` event)."""
        self._sends: dict[int, _Send] = {}
        """Message sends of the current connection not yet answered, by request id: each
        is re-sent on the next connection if this one is lost (docs/PROTOCOL.md §26)."""
        self._unsent: list[_Send] = []
        """Sends the lost connection left unanswered, in order, for the next one."""
        self._attribute_updates: dict[int, dict[str, Any]] = {}
        self._attributes: dict[str, Any] = {}
        self._conn: ClientConnection | None = None
        self._me: RemoteParticipant | None = None
        self._presence = True
        self.resume: ResumeInfo | None = None
        """What the next connection presents to take the last one's place back (§22)."""
        self.enabled = False
        """Whether messaging is enabled (and is enabled again on every reconnect)."""
        self.service_attached = False
        """Whether this client attached as its room's service (again on every reconnect)."""
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            RequestAcked: self._acked,
            RequestRefused: self._refused,
            HistoryReceived: self._history,
            MessagingEnabled: self._enabled,
            MessagingDisabled: self._disabled,
            MessageReceived: self._message,
            ParticipantAdded: self._added,
            ParticipantUpdated: self._updated,
            ParticipantRemoved: self._removed,
            CallAnswered: self._call_answered,
            CallFailed: self._call_failed,
            CallReceived: self._call_received,
            CallCancelled: self._call_cancelled,
            StreamOffered: self._stream_offered,
            ChunkReceived: self._stream_event,
            CreditGranted: self._stream_event,
            StreamEnded: self._stream_event,
            StreamAborted: self._stream_event,
            MessageIntercepted: self._to_service,
            InterceptTimedOut: self._to_service,
        }
        self.streams: Streams | None = None
        """Routes stream events to their readers and writers (set by the driver); without
        it, every stream offered is refused."""
        self.responder: Responder | None = None
        """Runs ``on_request`` handlers (set by the driver); without one, every call is
        answered NO_HANDLER."""
        self.on_service: Callable[[Event], None] | None = None
        """Where a service's events go (``room.service``), set by the client."""

    # --- connections ----------------------------------------------------------------------

    @property
    def local_participant(self) -> RemoteParticipant | None:
        """This client's participant, live while connected, else as last seen."""
        return self._me if self._conn is None else self._conn.local_participant

    @property
    def limits(self) -> Limits | None:
        """The limits the server advertised on the current connection (None while none)."""
        return None if self._conn is None else self._conn.limits

    def connected(self, conn: ClientConnection, welcome: Connected, *, again: bool) -> Reply | None:
        """``conn`` got its ``welcome``: restore what the last connection had on it, unless
        the server did (a resume: PROTOCOL.md §22). Attributes first, so that a re-enable
        announces them. Returns the re-enable's reply, if one is awaited. ``again``: this
        is a reconnect (emits ``Reconnected``)."""
        self._conn, self._me = conn, welcome.participant
        if self._attributes and not welcome.resumed:
            self._pending[conn.set_attributes(self._attributes)] = None
        reenable = None
        if self.enabled:
            if conn.state is State.ENABLING:  # the server enabled it: its snapshot is "0"
                reenable = self._pending[0] = Reply()
            else:
                reenable = self._pending[conn.enable(presence=self._presence)] = Reply()
            if self.service_attached:  # refused (another took the room): a SendFailed
                self._pending[conn.attach_service()] = None
        unsent, self._unsent = self._unsent, []
        for send in unsent:  # after the re-enable, with their keys: in order, before new sends
            self._resend(conn, send)
        if again:
            self._emit(
                Reconnected(
                    participant=welcome.participant,
                    recovered=welcome.recovered,
                    missed=welcome.missed,
                )
            )
        return reenable

    def _resend(self, conn: ClientConnection, send: _Send) -> None:
        try:
            rid = _issue(conn, send.verb)
        except RoomError as exc:  # e.g. the new server's limits are smaller
            self._send_failed(send, exc.code, exc.reason)
            return
        self._pending[rid] = send.reply
        self._sends[rid] = send

    def lost(self, closed: ConnectionClosed, *, may_retry: bool) -> bool:
        """The connection ended: its requests fail, ``Disconnected`` is emitted. Returns
        whether to reconnect (``may_retry``, and the close code is worth it)."""
        error = ConnectionClosedError(closed.reason, closed.code)
        retry = may_retry and retryable(closed.code)
        if retry:  # unanswered sends wait for the next connection instead of failing
            for rid, send in self._sends.items():
                del self._pending[rid]
                self._unsent.append(send)
        else:
            self._fail_unsent(error)
        self._sends.clear()
        for reply in self._pending.values():
            if reply is not None:
                reply.settle(error=error)
        self._pending.clear()
        self._attribute_updates.clear()
        if self.streams is not None:
            self.streams.lost(error)
        if self.responder is not None:
            self.responder.lost()
        self._to_service(closed)  # what it had not decided is no longer its to decide
        if self._conn is not None:
            self._me = self._conn.local_participant  # as last seen, attributes included
            self.resume = self._conn.resume_info
            self._conn = None
        self._emit(Disconnected(code=closed.code, reason=closed.reason, reconnecting=retry))
        return retry

    def gave_up(self, error: RoomError) -> None:
        """Reconnecting failed for good: the sends waiting for it fail, and say why
        ``events()`` ends (the last ``Disconnected`` said a reconnect would follow)."""
        self._fail_unsent(error)
        self._emit(Disconnected(code=error.code, reason=error.reason, reconnecting=False))

    def _fail_unsent(self, error: RoomError) -> None:
        unsent, self._unsent = self._unsent, []
        for send in unsent:
            self._send_failed(send, error.code, error.reason)

    def _send_failed(self, send: _Send, code: Code, reason: str) -> None:
        if send.reply is not None:
            send.reply.settle(error=error_for(code, reason))
        else:
            self._emit(SendFailed(request_id=send.request_id, code=code, reason=reason))

    # --- requests -------------------------------------------------------------------------

    def request(self, conn: ClientConnection, verb: Verb, reply: Reply | None = None) -> Reply:
        """Queue a request whose answer someone waits for (in ``reply``, if given)."""
        reply = self._pending[_issue(conn, verb)] = reply or Reply()
        return reply

    def post(self, conn: ClientConnection, verb: Verb) -> int:
        """Queue a request nobody waits for; a refusal is emitted as ``SendFailed``."""
        rid = _issue(conn, verb)
        self._pending[rid] = None
        return rid

    def send(self, conn: ClientConnection, verb: Verb, reply: Reply | None) -> int:
        """Queue a message send (its verb carries an idempotency key): answered in
        ``reply`` with a ``SendReceipt``, or, with none, refusals emitted as
        ``SendFailed``. Unanswered when the connection is lost and a reconnect follows, it
        is re-sent on the next connection, answering the same ``reply``."""
        rid = _issue(conn, verb)
        self._pending[rid] = reply
        self._sends[rid] = _Send(verb, reply, rid)
        return rid

    def call(self, conn: ClientConnection, verb: Verb) -> tuple[int, Reply]:
        """Queue a call; its request id (to cancel it) and its reply (the answer)."""
        rid = _issue(conn, verb)
        reply = self._pending[rid] = Reply()
        return rid, reply

    def enable(self, conn: ClientConnection, *, presence: bool) -> int:
        """The enable verb; the presence choice is kept for reconnects."""
        self._presence = presence
        return conn.enable(presence=presence)

    def set_attributes(self, conn: ClientConnection, attributes: dict[str, Any]) -> int:
        """The set-attributes verb; once accepted, the attributes are kept for reconnects."""
        rid = conn.set_attributes(attributes)
        self._attribute_updates[rid] = attributes
        return rid

    # --- what arrives ---------------------------------------------------------------------

    def drain(self, conn: ClientConnection, now: float) -> ConnectionClosed | None:
        """Apply every buffered frame; returns the close event once the connection ends."""
        handlers = self._handlers
        try:
            while (event := conn.next_event(now)) is not NEED_DATA:
                handler = handlers.get(type(event))
                if handler is not None:
                    handler(event)
                elif isinstance(event, ConnectionClosed):
                    return event
        except RemoteProtocolError as exc:
            log.warning("closing: the server broke the protocol: %s", exc.reason)
            return ConnectionClosed(code=exc.code, reason=exc.reason, by_peer=False)
        return None

    def _acked(self, event: RequestAcked) -> None:
        rid = event.request_id
        if self._attribute_updates:
            _merge(self._attributes, self._attribute_updates.pop(rid, {}))
        reply = self._pending.pop(rid, None)
        if self._sends.pop(rid, None) is not None and reply is not None:
            receipt = SendReceipt(
                message_id=cast(str, event.message_id),
                recipients=event.recipients,
                duplicate=event.duplicate,
            )
            reply.settle(receipt)
        elif reply is not None:
            reply.settle(event.message_id)

    def _refused(self, event: RequestRefused) -> None:
        rid = event.request_id
        self._attribute_updates.pop(rid, None)
        send = self._sends.pop(rid, None)
        reply = self._pending.pop(rid, None)
        if send is not None:
            self._send_failed(send, event.code, event.reason)
        elif reply is not None:
            reply.settle(error=error_for(event.code, event.reason))
        else:
            self._emit(SendFailed(request_id=rid, code=event.code, reason=event.reason))

    def _history(self, event: HistoryReceived) -> None:
        reply = self._pending.pop(event.request_id, None)
        if reply is not None:
            reply.settle(list(event.messages))

    def _settle(self, request_id: int) -> None:
        reply = self._pending.pop(request_id, None)
        if reply is not None:
            reply.settle()

    def _call_answered(self, event: CallAnswered) -> None:
        reply = self._pending.pop(event.request_id, None)
        if reply is not None:
            reply.settle(event.reply)

    def _call_failed(self, event: CallFailed) -> None:
        reply = self._pending.pop(event.request_id, None)
        if reply is not None:
            reply.settle(error=request_error(event.code, event.reason))

    def _call_received(self, event: CallReceived) -> None:
        conn = self._conn
        assert conn is not None  # calls arrive on the live connection only
        if self.responder is None:
            conn.fail_call(event.call.id, Code.NO_HANDLER, "no request handlers")
        else:
            self.responder.received(conn, event.call)

    def _call_cancelled(self, event: CallCancelled) -> None:
        if self.responder is not None:
            self.responder.cancelled(event.call_id)

    def _stream_offered(self, event: StreamOffered) -> None:
        conn = self._conn
        assert conn is not None  # offers arrive on the live connection only
        if self.streams is None:
            conn.abort_stream(event.stream_id, "not accepting streams")
        else:
            self.streams.offered(conn, event)

    def _stream_event(
        self, event: ChunkReceived | CreditGranted | StreamEnded | StreamAborted
    ) -> None:
        if self.streams is not None:
            self.streams.event(event)

    def _enabled(self, event: MessagingEnabled) -> None:
        self.enabled = True
        self._settle(event.request_id)
        self._apply_snapshot(event.participants)
        self._emit(event)

    def _disabled(self, event: MessagingDisabled) -> None:
        self.enabled = False
        self._settle(event.request_id)
        self._apply_snapshot(())
        self._emit(event)

    def _message(self, event: MessageReceived) -> None:
        self._emit(event)
        self._call("message", event.message)

    def _added(self, event: ParticipantAdded) -> None:
        self._view[event.participant.id] = event.participant
        self._emit(event)
        self._call("participant_added", event.participant)

    def _updated(self, event: ParticipantUpdated) -> None:
        self._view[event.participant.id] = event.participant
        self._emit(event)
        self._call("participant_updated", event.participant)

    def _removed(self, event: ParticipantRemoved) -> None:
        self._view.pop(event.participant.id, None)
        self._emit(event)
        self._call("participant_removed", event.participant)

    def _to_service(self, event: Event) -> None:
        if self.on_service is not None:
            self.on_service(event)

    def _apply_snapshot(self, participants: Sequence[RemoteParticipant]) -> None:
        """Replace the view, telling callbacks what changed (all new on first enable)."""
        fresh = {p.id: p for p in participants}
        old, self._view = self._view, fresh
        for participant in old.values():
            if participant.id not in fresh:
                self._call("participant_removed", participant)
        for participant in participants:
            if participant.id not in old:
                self._call("participant_added", participant)

    # --- presence -------------------------------------------------------------------------

    @property
    def remote_participants(self) -> list[RemoteParticipant]:
        return list(self._view.values())

    def get_participant(self, participant_id: str) -> RemoteParticipant | None:
        return self._view.get(participant_id)

    def get_participant_by_name(self, name: str) -> RemoteParticipant | None:
        return participant_named(self._view.values(), name)

    # --- callbacks ------------------------------------------------------------------------

    def on(self, event: str, callback: Callback) -> None:
        if event not in self._callbacks:
            raise ValueError(f"unknown event {event!r}; expected one of {CALLBACK_EVENTS}")
        self._callbacks[event].append(callback)

    def off(self, event: str, callback: Callback) -> None:
        self._callbacks[event].remove(callback)

    def _call(self, name: str, value: RoomMessage | RemoteParticipant) -> None:
        for callback in self._callbacks[name]:
            try:
                result = callback(value)
            except Exception:
                log.exception("%s callback failed", name)
                continue
            if result is not None and hasattr(result, "__await__"):
                self._spawn(name, result)


@attrs.frozen
class _Send:
    """A message send: its verb (with its key), who waits for its answer, and the request
    id it was first made with (what ``wait=False`` returned, for ``SendFailed``)."""

    verb: Verb
    reply: Reply | None
    request_id: int


def _issue(conn: ClientConnection, verb: Verb) -> int:
    """Run a verb, turning the core's pre-checks into the binding's typed errors."""
    try:
        return verb(conn)
    except LocalProtocolError as exc:
        if conn.state in (State.CLOSING, State.CLOSED):
            raise ConnectionClosedError("the connection is closing", Code.CONNECTION_LOST) from None
        raise from_local(exc) from None


def _merge(attributes: dict[str, Any], update: dict[str, Any]) -> None:
    """Merge an accepted update (a None value removes the key)."""
    for key, value in update.items():
        if value is None:
            attributes.pop(key, None)
        else:
            attributes[key] = value
