"""The roomwire driver shared by ``roomwire_asyncio`` and ``roomwire_trio``.

Written once on anyio so both runtimes behave the same: ``connect()`` yields a ``RoomClient``,
``serve()`` a ``Server``. Both take the ``network`` (``transport.Network``) that carries the
connections; the runtime packages pass theirs, so import them rather than this one.
"""

from roomwire import ParticipantToken, RemoteParticipant, RoomMessage
from roomwire.events import (
    MessageReceived,
    MessagingDisabled,
    MessagingEnabled,
    ParticipantAdded,
    ParticipantRemoved,
    ParticipantUpdated,
)

from ._accept import TcpListener as TcpListener
from ._client import ReconnectPolicy, RoomClient
from ._client import connect as connect
from ._errors import (
    ConnectionClosedError,
    ForbiddenError,
    InvalidRequestError,
    NotEnabledError,
    NotFoundError,
    RateLimitedError,
    RoomError,
    ServiceError,
    StreamError,
    TooLargeError,
)
from ._history_store import HistoryStore as HistoryStore
from ._history_store import HistoryStoreError
from ._history_store import HistoryStoreFactory as HistoryStoreFactory
from ._messaging import Messaging
from ._queue import Events
from ._rpc import NoHandlerError, RequestError, RequestTimeoutError
from ._server import Backplane as Backplane
from ._server import BackplaneFactory as BackplaneFactory
from ._server import Server
from ._server import ServerPump as ServerPump
from ._server import serve as serve
from ._service import InterceptedMessage, Service
from ._session import ClientSession as ClientSession
from ._session import Reply as Reply
from ._stream_transport import StreamNetwork as StreamNetwork
from ._streams import MessageStreamChunk, MessageStreamReader, MessageStreamWriter
from ._url import parse_url
from ._url import redact_url as redact_url
from ._version import __version__ as __version__
from .events import (
    Disconnected,
    EventsDropped,
    MessagingEvent,
    Reconnected,
    SendFailed,
    SendReceipt,
)

# Not in __all__: the building blocks of the runtime packages, which pick a network and
# define ``connect`` and ``serve`` with it (``Backplane(Factory)``, ``ClientSession``,
# ``Reply``, ``ServerPump``, ``StreamNetwork``, ``TcpListener``, the ``transport`` module).
__all__ = [
    "ConnectionClosedError",
    "Disconnected",
    "Events",
    "EventsDropped",
    "ForbiddenError",
    "HistoryStoreError",
    "InterceptedMessage",
    "InvalidRequestError",
    "MessageReceived",
    "MessageStreamChunk",
    "MessageStreamReader",
    "MessageStreamWriter",
    "Messaging",
    "MessagingDisabled",
    "MessagingEnabled",
    "MessagingEvent",
    "NoHandlerError",
    "NotEnabledError",
    "NotFoundError",
    "ParticipantAdded",
    "ParticipantRemoved",
    "ParticipantToken",
    "ParticipantUpdated",
    "RateLimitedError",
    "ReconnectPolicy",
    "Reconnected",
    "RemoteParticipant",
    "RequestError",
    "RequestTimeoutError",
    "RoomClient",
    "RoomError",
    "RoomMessage",
    "SendFailed",
    "SendReceipt",
    "Server",
    "Service",
    "ServiceError",
    "StreamError",
    "TooLargeError",
    "parse_url",
]
