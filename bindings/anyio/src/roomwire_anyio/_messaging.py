"""``room.messaging``: the user's face of the client session (presence, sends, callbacks,
events). It holds no state of its own: the session keeps it, the client carries requests."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Literal, cast, overload

from roomwire import RemoteParticipant, RoomMessage

from ._queue import EventQueue, Events
from ._rpc import Handler, Responder
from ._session import Callback, ClientSession, Verb
from ._streams import AcceptCallback, MessageStreamWriter, Streams
from .events import SendReceipt

Recipient = RemoteParticipant | str
MessageEventName = Literal["message"]
"""The callback event that passes a ``RoomMessage``."""
ParticipantEventName = Literal["participant_added", "participant_removed", "participant_updated"]
"""The callback events that pass a ``RemoteParticipant``."""


class Messaging:
    """``room.messaging``: enable, presence, send, broadcast, callbacks and events."""

    def __init__(
        self,
        session: ClientSession,
        queue: EventQueue,
        *,
        request: Callable[[Verb], Awaitable[object]],
        send: Callable[[Verb, bool], Awaitable[SendReceipt | int]],
        call: Callable[[Verb, float | None], Awaitable[RoomMessage]],
        responder: Responder,
        open_stream: Callable[[str, dict[str, Any]], Awaitable[MessageStreamWriter]],
        streams: Streams,
    ) -> None:
        self._session = session
        self._queue = queue
        self._request = request
        self._send = send
        self._call = call
        self._responder = responder
        self._open_stream = open_stream
        self._streams = streams

    # --- presence -------------------------------------------------------------------------

    @property
    def remote_participants(self) -> list[RemoteParticipant]:
        """Participants with messaging enabled, kept current as events arrive."""
        return self._session.remote_participants

    def get_participant(self, participant_id: str) -> RemoteParticipant | None:
        return self._session.get_participant(participant_id)

    def get_participant_by_name(self, name: str) -> RemoteParticipant | None:
        """The one present participant with this name; None when none, or several, carry it
        (names are not unique: a newcomer cannot capture messages sent by name)."""
        return self._session.get_participant_by_name(name)

    @property
    def enabled(self) -> bool:
        return self._session.enabled

    # --- requests -------------------------------------------------------------------------

    async def enable(
        self, *, presence: bool = True, on_stream_accept: AcceptCallback | None = None
    ) -> None:
        """Enable messaging; returns once the presence snapshot is in.

        ``on_stream_accept`` accepts the streams others open to this participant: it is
        called (sync, or async as its own task) with a ``MessageStreamReader`` for each.
        Without it, streams offered are refused. It is kept across reconnects."""
        if on_stream_accept is not None:
            self._streams.on_accept = on_stream_accept
        await self._request(partial(self._session.enable, presence=presence))

    async def disable(self) -> None:
        """Disable messaging; presence is cleared (``participant_removed`` for each)."""
        await self._request(lambda conn: conn.disable())

    @overload
    async def send_message(
        self,
        *,
        to: Recipient | Sequence[Recipient],
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: Literal[True] = True,
        receipt: Literal[False] = False,
        idempotency_key: str | None = None,
    ) -> str: ...

    @overload
    async def send_message(
        self,
        *,
        to: Recipient | Sequence[Recipient],
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: Literal[True] = True,
        receipt: Literal[True],
        idempotency_key: str | None = None,
    ) -> SendReceipt: ...

    @overload
    async def send_message(
        self,
        *,
        to: Recipient | Sequence[Recipient],
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: Literal[False],
        receipt: bool = False,
        idempotency_key: str | None = None,
    ) -> int: ...

    async def send_message(
        self,
        *,
        to: Recipient | Sequence[Recipient],
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: bool = True,
        receipt: bool = False,
        idempotency_key: str | None = None,
    ) -> str | int | SendReceipt:
        """Send to a participant, an id, or a list of them.

        With ``wait=True`` (default) returns the server's message id once accepted, or raises a
        typed error; ``receipt=True`` returns a ``SendReceipt`` instead (the id, how many
        participants it was queued for, and whether it was a duplicate). With ``wait=False``
        returns the request id once the frame is queued; a refusal then arrives as a
        ``SendFailed`` event.

        Every send carries an idempotency key (``idempotency_key``, 1 to 64 characters, or
        a random one): if the connection is lost before the server answers and the client
        reconnects, the send is re-sent with it, the server delivers it at most once, and
        this call returns the answer to the re-send. It fails only if the reconnect gives
        up or the send is refused (docs/PROTOCOL.md §26).
        """
        ids = (
            [_participant_id(to)]
            if isinstance(to, RemoteParticipant | str)
            else [_participant_id(r) for r in to]
        )
        key = idempotency_key or uuid.uuid4().hex
        if not ids:  # to=[]: the room's service only (docs/PROTOCOL.md §23)
            return await self._send_keyed(
                lambda conn: conn.send_to_service(type, message, attachment, key), wait, receipt
            )
        return await self._send_keyed(
            lambda conn: conn.send_message(ids, type, message, attachment, key), wait, receipt
        )

    @overload
    async def broadcast_message(
        self,
        *,
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: Literal[True] = True,
        receipt: Literal[False] = False,
        idempotency_key: str | None = None,
    ) -> str: ...

    @overload
    async def broadcast_message(
        self,
        *,
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: Literal[True] = True,
        receipt: Literal[True],
        idempotency_key: str | None = None,
    ) -> SendReceipt: ...

    @overload
    async def broadcast_message(
        self,
        *,
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: Literal[False],
        receipt: bool = False,
        idempotency_key: str | None = None,
    ) -> int: ...

    async def broadcast_message(
        self,
        *,
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: bool = True,
        receipt: bool = False,
        idempotency_key: str | None = None,
    ) -> str | int | SendReceipt:
        """Send to every other participant with messaging enabled (see ``send_message``)."""
        key = idempotency_key or uuid.uuid4().hex
        return await self._send_keyed(
            lambda conn: conn.broadcast_message(type, message, attachment, key), wait, receipt
        )

    async def history(
        self, limit: int = 100, since: int | None = None, reverse: bool = False
    ) -> list[RoomMessage]:
        """The room's messages this participant may read: its broadcasts (from before this
        client joined too, its own included) and the direct messages to or from this
        token's name, oldest first (``reverse=True``: newest first). ``since`` is a ``seq``,
        exclusive; ``limit`` is capped by the server's ``limits.max_history_limit``. Needs
        the token's ``can_history`` grant (``ForbiddenError``); messaging need not be
        enabled."""
        found = await self._request(
            lambda conn: conn.history(limit=limit, since=since, reverse=reverse)
        )
        return cast(list[RoomMessage], found)

    # --- requests between participants (PROTOCOL.md §24) ---------------------------------

    async def request(
        self,
        *,
        to: Recipient,
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        timeout: float | None = 10.0,
    ) -> RoomMessage:
        """Call one participant's ``on_request`` handler for ``type`` and return its answer
        (a ``RoomMessage`` from the callee; ``seq`` is 0: calls are outside the room's order
        and history).

        Raises ``RequestError`` with the handler's code and reason unchanged (a handler that
        failed unexpectedly: code ``HANDLER_FAILED``), ``NoHandlerError`` when the callee has
        no handler for ``type``, ``RequestTimeoutError`` after ``timeout`` seconds (None:
        no limit), ``NotFoundError`` when the callee is not present or leaves before
        answering (at once, not at the timeout). Cancelling the caller, or the timeout,
        cancels the callee's handler."""
        to_id = _participant_id(to)
        return await self._call(lambda conn: conn.call(to_id, type, message, attachment), timeout)

    def on_request(self, type: str, handler: Handler) -> None:
        """Answer requests of ``type`` with ``handler``, an async function of the request
        (a ``RoomMessage``) that returns the answer's message, a dict, or a
        ``(dict, attachment)`` tuple, or raises ``RequestError(code, reason)`` (passed to
        the caller unchanged). Any other exception answers ``HANDLER_FAILED`` (logged; the
        connection stays). Registers at once, replacing an earlier handler of ``type``;
        requests of a type with no handler are answered ``NO_HANDLER``. A handler runs as
        its own task, cancelled if the caller cancels or leaves."""
        self._responder.on_request(type, handler)

    def off_request(self, type: str) -> None:
        """Stop answering requests of ``type`` (they get ``NO_HANDLER``)."""
        self._responder.off_request(type)

    async def create_stream(
        self, *, to: Recipient, header: dict[str, Any] | None = None
    ) -> MessageStreamWriter:
        """Open a stream to one participant; returns its writer once the reader accepted it
        (``enable(on_stream_accept=...)`` on its side). Raises ``StreamError``
        (STREAM_ABORTED) if the reader refuses it, ``NotFoundError`` if it is not present,
        ``RateLimitedError`` over ``limits.max_open_streams``."""
        return await self._open_stream(_participant_id(to), header or {})

    async def _send_keyed(self, verb: Verb, wait: bool, receipt: bool) -> str | int | SendReceipt:
        answer = await self._send(verb, wait)
        if isinstance(answer, int) or receipt:
            return answer
        return answer.message_id

    # --- delivery -------------------------------------------------------------------------

    @overload
    def on(self, event: MessageEventName, callback: Callable[[RoomMessage], object]) -> None: ...

    @overload
    def on(
        self, event: ParticipantEventName, callback: Callable[[RemoteParticipant], object]
    ) -> None: ...

    def on(self, event: str, callback: Callback) -> None:
        """Call ``callback`` for ``message`` (a RoomMessage) or ``participant_added`` /
        ``participant_removed`` / ``participant_updated`` (a RemoteParticipant). Async
        callbacks run as their own tasks; neither kind can stall the read loop for long.
        The overloads let a type checker catch a misspelt event or a mismatched callback."""
        self._session.on(event, callback)

    @overload
    def off(self, event: MessageEventName, callback: Callable[[RoomMessage], object]) -> None: ...

    @overload
    def off(
        self, event: ParticipantEventName, callback: Callable[[RemoteParticipant], object]
    ) -> None: ...

    def off(self, event: str, callback: Callback) -> None:
        """Stop calling a callback given to ``on``."""
        self._session.off(event, callback)

    def events(self) -> Events:
        """Typed events in order, through a bounded queue: when it is full, events are
        dropped and an ``EventsDropped`` with their count comes next. Ends on close."""
        return Events(self._queue)


def _participant_id(recipient: Recipient) -> str:
    return recipient.id if isinstance(recipient, RemoteParticipant) else recipient
