"""``room.messaging``: the user's face of the client session (presence, sends, callbacks,
events). It holds no state of its own: the session keeps it, the client carries requests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Literal, cast, overload

from roomwire import RemoteParticipant, RoomMessage

from ._queue import EventQueue, Events
from ._session import Callback, ClientSession, Verb

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
        post: Callable[[Verb], Awaitable[int]],
    ) -> None:
        self._session = session
        self._queue = queue
        self._request = request
        self._post = post

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

    async def enable(self, *, presence: bool = True) -> None:
        """Enable messaging; returns once the presence snapshot is in."""
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
    ) -> str: ...

    @overload
    async def send_message(
        self,
        *,
        to: Recipient | Sequence[Recipient],
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: Literal[False],
    ) -> int: ...

    async def send_message(
        self,
        *,
        to: Recipient | Sequence[Recipient],
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: bool = True,
    ) -> str | int:
        """Send to a participant, an id, or a list of them.

        With ``wait=True`` (default) returns the server's message id once accepted, or raises a
        typed error. With ``wait=False`` returns the request id once the frame is queued; a
        refusal then arrives as a ``SendFailed`` event.
        """
        ids = (
            [_participant_id(to)]
            if isinstance(to, RemoteParticipant | str)
            else [_participant_id(r) for r in to]
        )
        if not ids:  # to=[]: the room's service only (docs/PROTOCOL.md §23)
            return await self._send(
                lambda conn: conn.send_to_service(type, message, attachment), wait
            )
        return await self._send(
            lambda conn: conn.send_message(ids, type, message, attachment), wait
        )

    @overload
    async def broadcast_message(
        self,
        *,
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: Literal[True] = True,
    ) -> str: ...

    @overload
    async def broadcast_message(
        self,
        *,
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: Literal[False],
    ) -> int: ...

    async def broadcast_message(
        self,
        *,
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: bool = True,
    ) -> str | int:
        """Send to every other participant with messaging enabled (see ``send_message``)."""
        return await self._send(
            lambda conn: conn.broadcast_message(type, message, attachment), wait
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

    async def _send(self, verb: Verb, wait: bool) -> str | int:
        if not wait:
            return await self._post(verb)
        # The server acks every send with its message id.
        return cast(str, await self._request(verb))

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
