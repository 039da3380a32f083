"""The roomwire driver shared by ``roomwire_asyncio`` and ``roomwire_trio``.

Written once on anyio so both runtimes behave the same: ``connect()`` yields a ``RoomClient``,
``serve()`` a ``Server``. Import it through a runtime binding.
"""

from roomwire import ParticipantToken, RemoteParticipant, RoomMessage

from ._client import Messaging, ReconnectPolicy, RoomClient, connect
from ._errors import (
    ConnectionClosedError,
    ForbiddenError,
    InvalidRequestError,
    NotEnabledError,
    NotFoundError,
    RateLimitedError,
    RoomError,
    TooLargeError,
)
from ._server import Server, serve
from ._url import parse_url
from .events import Disconnected, EventsDropped, MessagingEvent, Reconnected, SendFailed

__all__ = [
    "ConnectionClosedError",
    "Disconnected",
    "EventsDropped",
    "ForbiddenError",
    "InvalidRequestError",
    "Messaging",
    "MessagingEvent",
    "NotEnabledError",
    "NotFoundError",
    "ParticipantToken",
    "RateLimitedError",
    "ReconnectPolicy",
    "Reconnected",
    "RemoteParticipant",
    "RoomClient",
    "RoomError",
    "RoomMessage",
    "SendFailed",
    "Server",
    "TooLargeError",
    "connect",
    "parse_url",
    "serve",
]
