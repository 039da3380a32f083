"""``room.service``: a client with the ``intercept`` grant as its room's service
(docs/PROTOCOL.md §23). It holds no state but the intercepted messages waiting to be read:
the requests go through the client like any other."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from types import EllipsisType
from typing import Any, cast

import anyio

from roomwire import RemoteParticipant
from roomwire.events import (
    ConnectionClosed,
    Event,
    InterceptTimedOut,
    MessageIntercepted,
    UpwardMessage,
)

from ._messaging import Messaging, Recipient
from ._session import ClientSession, Verb

InterceptedMessage = UpwardMessage
"""A message waiting for the service's decision: ``id``, ``from_participant_id``, ``type``,
``message``, ``attachment``, ``recipients`` (``[]`` for the service only, None for a
broadcast) and ``timestamp``."""


class Service:
    """``room.service``: attach, read what users send, decide it, speak as anyone, puppets."""

    def __init__(
        self,
        messaging: Messaging,
        session: ClientSession,
        *,
        request: Callable[[Verb], Awaitable[object]],
        post: Callable[[Verb], Awaitable[int]],
    ) -> None:
        self._messaging = messaging
        self._session = session
        self._request = request
        self._post = post
        self._inbox: deque[UpwardMessage] = deque()
        self._ready = anyio.Event()
        self._ended = False
        self.timed_out = 0
        """Messages the server handled without this service's decision (too late)."""

    # --- what the session hands over ------------------------------------------------------

    def arrived(self, event: Event) -> None:
        """Internal: an intercepted message, the news that one timed out, or that the
        connection closed."""
        if isinstance(event, MessageIntercepted):
            self._inbox.append(event.message)
            self._ready.set()
        elif isinstance(event, InterceptTimedOut):
            self.timed_out += 1
        elif isinstance(event, ConnectionClosed):
            # The server handles what was undecided by its policy (a held message comes back
            # after the re-attach): deciding it on the next connection could only be refused.
            self._inbox.clear()

    @property
    def pending(self) -> int:
        """Intercepted messages waiting to be read from ``intercepted()``."""
        return len(self._inbox)

    def end(self) -> None:
        """Internal: the client is closed; ``intercepted()`` ends once its queue is empty."""
        self._ended = True
        self._ready.set()

    # --- requests -------------------------------------------------------------------------

    async def attach(self) -> None:
        """Become the room's service (enabling messaging first if needed), again after
        every reconnect. Raises ``ForbiddenError`` without the ``intercept`` grant and
        ``ServiceError`` when the room already has one."""
        if not self._messaging.enabled:
            await self._messaging.enable()
        await self._request(lambda conn: conn.attach_service())
        self._session.service_attached = True

    def intercepted(self) -> Intercepted:
        """The messages users send, in order, each waiting for ``forward`` or ``drop``."""
        return Intercepted(self)

    async def forward(
        self,
        up: UpwardMessage,
        *,
        type: str | None = None,
        message: dict[str, Any] | None = None,
        attachment: bytes | EllipsisType | None = ...,
        recipients: Sequence[Recipient] | EllipsisType | None = ...,
        wait: bool = True,
    ) -> None:
        """Deliver ``up``, stamped with its true sender: as sent, or with a new ``type``,
        ``message``, ``attachment`` (None removes it) or ``recipients`` (None: everyone;
        absent ones are skipped). ``wait=False`` returns once the decision is queued (a
        refusal then arrives as a ``SendFailed`` event), so decisions can be pipelined."""
        to = recipients if recipients is ... else _ids(recipients)
        await self._decide(
            lambda conn: conn.decide(
                up.id, type=type, message=message, attachment=attachment, to=to
            ),
            wait,
        )

    async def drop(self, up: UpwardMessage, *, wait: bool = True) -> None:
        """Deliver ``up`` to nobody (``wait`` as for ``forward``)."""
        await self._decide(lambda conn: conn.decide(up.id, drop=True), wait)

    async def _decide(self, verb: Verb, wait: bool) -> None:
        await (self._request(verb) if wait else self._post(verb))

    async def send(
        self,
        *,
        type: str,
        message: dict[str, Any],
        sender: Recipient,
        attachment: bytes | None = None,
        recipients: Sequence[Recipient] | None = None,
    ) -> str:
        """Send as ``sender`` (any member, or a puppet of this service) to ``recipients``
        (None: everyone; absent ones are skipped). Returns the message id; ``NotFoundError``
        when ``sender`` is nobody here."""
        sender_id, to = _id(sender), _ids(recipients)
        found = await self._request(
            lambda conn: conn.send_as(sender_id, type, message, attachment, to)
        )
        return cast(str, found)

    async def create_puppet(
        self, *, name: str, attributes: dict[str, Any] | None = None
    ) -> RemoteParticipant:
        """A participant with no connection, role ``"puppet"``, shown in everyone's presence
        until ``remove_puppet`` or until this service leaves. Its id is the server's."""
        attributes = dict(attributes or {})
        puppet_id = cast(
            str, await self._request(lambda conn: conn.create_puppet(name, attributes))
        )
        known = self._messaging.get_participant(puppet_id)
        return known or RemoteParticipant(
            id=puppet_id, name=name, role="puppet", attributes=attributes
        )

    async def remove_puppet(self, puppet: Recipient) -> None:
        """Remove one of this service's puppets (``NotFoundError`` for any other id)."""
        puppet_id = _id(puppet)
        await self._request(lambda conn: conn.remove_puppet(puppet_id))

    async def take(self) -> UpwardMessage | None:
        """Internal: the next intercepted message, waiting for one; None once ended."""
        while not self._inbox:
            if self._ended:
                return None
            self._ready = anyio.Event()
            await self._ready.wait()
        return self._inbox.popleft()


class Intercepted:
    """What ``room.service.intercepted()`` returns: an async iterator (not a generator, so
    that leaving it early leaves nothing to finalize), ending when the client closes."""

    def __init__(self, service: Service) -> None:
        self._service = service

    def __aiter__(self) -> Intercepted:
        return self

    async def __anext__(self) -> UpwardMessage:
        up = await self._service.take()
        if up is None:
            raise StopAsyncIteration
        return up


def _id(recipient: Recipient) -> str:
    return recipient.id if isinstance(recipient, RemoteParticipant) else recipient


def _ids(recipients: Sequence[Recipient] | None) -> list[str] | None:
    return None if recipients is None else [_id(r) for r in recipients]
