"""roomwire: a sans-IO room-messaging protocol (presence, direct and broadcast messages).

The core never touches a socket, a clock or an event loop: feed it bytes and ``now``, read
events, and write what ``data_to_send()`` returns. See docs/PROTOCOL.md for the wire format.
"""

from . import events
from ._client import ClientConnection
from ._config import PROTOCOL_VERSION, ClientConfig, InterceptedMessage, Interceptor, ServerConfig
from ._errors import (
    InvalidRequest,
    LocalProtocolError,
    MessageTooLarge,
    ProtocolError,
    RemoteProtocolError,
    TokenError,
)
from ._framing import Framing
from ._history import HistoryRead
from ._participant import participant_named
from ._resume import ResumeInfo
from ._server import RoomServer
from ._service import Interception
from ._session import ServerConnection
from ._state import Input, State
from ._stats import ServerStats
from ._token import ParticipantToken
from .codes import Code
from .events import NEED_DATA, Limits, RemoteParticipant, RoomMessage

__all__ = [
    "NEED_DATA",
    "PROTOCOL_VERSION",
    "ClientConfig",
    "ClientConnection",
    "Code",
    "Framing",
    "HistoryRead",
    "Input",
    "InterceptedMessage",
    "Interception",
    "Interceptor",
    "InvalidRequest",
    "Limits",
    "LocalProtocolError",
    "MessageTooLarge",
    "ParticipantToken",
    "ProtocolError",
    "RemoteParticipant",
    "RemoteProtocolError",
    "ResumeInfo",
    "RoomMessage",
    "RoomServer",
    "ServerConfig",
    "ServerConnection",
    "ServerStats",
    "State",
    "TokenError",
    "events",
    "participant_named",
]
__version__ = "0.1.0"
