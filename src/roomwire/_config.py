"""Configuration objects: every limit and timing in one place, with documented defaults."""

from __future__ import annotations

import itertools
import math
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from ._resume import derive_key
from ._token import ParticipantToken
from .events import JSONObject, Limits, RemoteParticipant

PROTOCOL_VERSION = 1
MiB = 1024 * 1024

STRONG_KEY = 32
"""Fewest bytes a token secret or a cluster key may have (HS256's hash size, RFC 7518 §3.2)."""

# Bytes of every send frame's budget kept back for the server's stamps (sender, id, timestamp,
# seq), so that a delivery is never larger than the frame the recipient accepts.
STAMP_RESERVE = 1024


def _positive_or_none(_: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be positive or None, got {value!r}")


def _not_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0 or value == math.inf:
        raise ValueError(f"{attribute.name} must be 0 or more and finite, got {value!r}")


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


class CountingIds:
    """Default id factory: a random prefix drawn once, then a counter (cheap and unique)."""

    def __init__(self, prefix: str | None = None) -> None:
        self._prefix = secrets.token_hex(4) if prefix is None else prefix
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"


@attrs.frozen(kw_only=True)
class ClientConfig:
    """Settings of a :class:`ClientConnection`."""

    max_frame_size: int = attrs.field(default=16 * MiB, validator=_positive)
    """Ceiling on inbound frames. After the welcome, frames are held to the server's advertised
    ``max_frame_size``; a server advertising more than this ceiling is refused."""
    handshake_timeout: float = attrs.field(default=10.0, validator=_positive)
    """Seconds to wait for the server's welcome."""


@attrs.frozen(kw_only=True)
class InterceptedMessage:
    """A message on its way through the server, as an interceptor sees it."""

    room: str
    """The room it is routed in."""
    sender: RemoteParticipant
    """The true sender."""
    to: tuple[str, ...] | None
    """Recipient ids, or None for a broadcast."""
    type: str
    """The message type."""
    message: JSONObject
    """The JSON payload."""
    attachment: bytes | None
    """The attachment, if any."""


Interceptor = Callable[
    [InterceptedMessage],
    InterceptedMessage | Awaitable[InterceptedMessage | None] | None,
]
"""Pass a message (return it), rewrite or redirect it (return ``attrs.evolve(m, ...)``), or
drop it (return None). Redirected recipients that are not present are skipped. It may be
``async``: the driver awaits it (``RoomServer.interceptions``). If it raises, the message is
refused with INTERCEPTOR_FAILED."""


@attrs.frozen(kw_only=True)
class ServerConfig:
    """Settings of a :class:`RoomServer`. ``secret`` or ``authenticator`` is required."""

    secret: str | bytes | None = attrs.field(default=None, repr=False)
    """HS256 key for the default authenticator (``ParticipantToken.from_jwt``)."""
    authenticator: Callable[[str, float], ParticipantToken] | None = None
    """Custom ``(token, now) -> ParticipantToken``; raise ``TokenError`` to refuse."""
    max_frame_size: int = attrs.field(default=MiB, validator=_positive)
    """Largest frame either side sends (1 MiB, as Socket.IO, NATS and websockets)."""
    outbound_limit: int = attrs.field(default=MiB, validator=_positive)
    """Unsent bytes a connection may have waiting: a frame that arrives while more than this
    waits closes it as a slow consumer (so a queue holds at most this plus one frame)."""
    heartbeat_interval: float = attrs.field(default=25.0, validator=_positive)
    """Seconds between pings: under the 30 s idle timeout of common load balancers."""
    heartbeat_timeout: float = attrs.field(default=10.0, validator=_positive)
    """Extra seconds of silence after the interval before a peer is declared dead."""
    handshake_timeout: float = attrs.field(default=10.0, validator=_positive)
    """Seconds a new connection has to send a valid hello."""
    max_hello_size: int = attrs.field(default=8 * 1024, validator=_positive)
    """Largest frame accepted before the hello is accepted (a hello is about 300 bytes plus
    its token): an unauthenticated connection cannot make the server buffer a whole
    ``max_frame_size`` frame. Capped at ``max_frame_size``."""
    max_recipients: int = attrs.field(default=1000, validator=_positive)
    """Most recipients in one send."""
    max_type_length: int = attrs.field(default=256, validator=_positive)
    """Longest message type."""
    max_attributes_size: int = attrs.field(default=64 * 1024, validator=_positive)
    """Largest encoded attributes object per participant (LiveKit's cap)."""
    id_factory: Callable[[], str] = attrs.field(factory=CountingIds)
    """Source of participant and message ids; inject a deterministic one in tests."""
    interceptor: Interceptor | None = None
    """Optional seam that may pass, rewrite, redirect or drop every message."""
    node_id: str | None = None
    """This node's name on the backplane; None keeps the server single-node. Unique per
    running node: a restarted node should take a new one (the drivers draw a random one)."""
    backplane_key: str | bytes | None = attrs.field(default=None, repr=False)
    """The cluster key: every backplane record is signed with it (HMAC-SHA256) and a record
    without a valid signature is dropped, so that access to the backplane alone cannot forge
    a sender, a participant or a departure. Every node of a cluster needs the same key."""
    backplane_heartbeat: float = attrs.field(default=5.0, validator=_positive)
    """Seconds between this node's heartbeat records (with a ``node_id``)."""
    backplane_ttl: float = attrs.field(default=15.0, validator=_positive)
    """Seconds without any record from a node before its participants are removed; checked
    at every heartbeat, so they go within ``backplane_ttl + backplane_heartbeat``."""
    rate_limit: float | None = attrs.field(default=None)
    """Requests per second each connection may make (a token bucket); None for no limit.
    Past it requests are refused with RATE_LIMITED; refusals arriving faster than the rate
    itself, for more than ``rate_burst`` of them, close the connection."""
    rate_burst: int = attrs.field(default=10, validator=_positive)
    """Requests a connection may make at once above the rate (the bucket's size)."""
    allow_weak_secret: bool = False
    """Development only: accept a ``secret`` or ``backplane_key`` under 32 bytes (refused by
    default, when the server is made, rather than warned about at the first token)."""
    history_size: int = attrs.field(default=1000, validator=_positive)
    """Messages each room's history keeps (the oldest go first). In memory, a room holds at
    most this many deliveries, each at most ``max_frame_size`` bytes."""
    history_ttl: float = attrs.field(default=3600.0, validator=_positive)
    """Seconds a message stays in its room's history."""
    max_history_limit: int = attrs.field(default=1000, validator=_positive)
    """Most messages one ``history`` request may ask for (advertised in the welcome)."""
    external_history: bool = False
    """The driver keeps history in its own store (``RoomServer.history_to_store``,
    ``history_reads``, ``answer_history``) instead of the server's memory."""
    shared_history: bool = False
    """With ``external_history``: every node of the cluster reads and writes the same store
    (Redis Streams), so each message is stored by the node it was sent on only."""
    history_epoch: str | None = None
    """The history's epoch at start (PROTOCOL.md §21.2): named, every room made without an
    epoch of its own takes it and keeps it when freed; None: rooms follow the rooms-freed
    rule (§25.3). A driver's store names its own (``RoomServer.restore_history``)."""
    max_pending_calls: int = attrs.field(default=256, validator=_positive)
    """Most calls one connection may have waiting for answers (advertised in the welcome);
    the server holds one small record per call until it is answered, cancelled or failed."""
    stream_window: int = attrs.field(default=MiB, validator=_positive)
    """Bytes of one stream the writer may send ahead of the reader's credit (advertised):
    the most of a stream the server ever holds."""
    max_open_streams: int = attrs.field(default=8, validator=_positive)
    """Most streams one connection may write or read at once (advertised)."""

    idempotency_window: int = attrs.field(default=120, validator=_positive)
    """Seconds a send's idempotency key is remembered (advertised): a send repeating it
    within them is acked again, not delivered again (docs/PROTOCOL.md §26). Cover the
    clients' reconnect time."""
    max_idempotency_keys: int = attrs.field(default=1000, validator=_positive)
    """Most keys remembered per sender identity, room and token name (advertised); the
    oldest go first. More sends than this unacknowledged when a connection is cut may be
    delivered twice when re-sent."""

    max_connections: int | None = attrs.field(default=None, validator=_positive_or_none)
    """Most connections open at once (None: no cap). Set it under the process's file
    descriptor limit: a connection over it is closed at once with TOO_MANY_CONNECTIONS."""
    max_connections_per_address: int | None = attrs.field(default=None, validator=_positive_or_none)
    """Most connections open at once from one peer address (None: no cap); the driver
    passes the address to ``RoomServer.accept``."""

    service_policy: str = attrs.field(
        default="bypass", validator=attrs.validators.in_(("bypass", "hold", "refuse"))
    )
    """What happens to a message in a room with no service attached (docs/PROTOCOL.md §23):
    ``bypass`` delivers it as asked, ``hold`` keeps it (up to ``history_size`` per room) and
    hands it to the next service that attaches, ``refuse`` refuses it (SERVICE_UNAVAILABLE)."""
    service_timeout: float = attrs.field(default=10.0, validator=_positive)
    """Seconds a service has to decide a message; past it the message is handled as if no
    service were attached, and the service is told (``svc_timeout``)."""
    resume_window: float = attrs.field(default=30.0, validator=_not_negative)
    """Seconds a participant whose connection was lost (not closed cleanly) stays present,
    suspended, for its client to take it back (PROTOCOL.md §22); 0: removed at once."""
    resume_key: bytes | None = attrs.field(default=None, repr=False)
    """The key resume secrets are made with (HMAC); None: derived from ``secret``, or drawn
    at random when there is none (then a restart cannot check an old secret). Nodes of a
    cluster that resume each other's clients share it."""
    _drawn_key: bytes = attrs.field(
        init=False, repr=False, eq=False, factory=lambda: secrets.token_bytes(32)
    )

    def __attrs_post_init__(self) -> None:
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise ValueError(f"rate_limit must be positive or None, got {self.rate_limit!r}")
        if self.secret is None and self.authenticator is None:
            raise ValueError("ServerConfig needs a secret or an authenticator")
        if not self.backplane_heartbeat < self.backplane_ttl:
            raise ValueError("backplane_heartbeat must be shorter than backplane_ttl")
        for name in ("secret", "backplane_key"):
            key = getattr(self, name)
            if key is None or self.allow_weak_secret:
                continue
            size = len(key.encode() if isinstance(key, str) else key)
            if size < STRONG_KEY:
                raise ValueError(
                    f"{name} has {size} bytes: use at least {STRONG_KEY} random bytes"
                    " (allow_weak_secret=True accepts it, for development only)"
                )
        if self.max_frame_size <= 2 * STAMP_RESERVE:
            raise ValueError(f"max_frame_size must be over {2 * STAMP_RESERVE} bytes")

    @property
    def resume_key_bytes(self) -> bytes:
        """The key resume secrets are made with: ``resume_key``, else derived from
        ``secret``, else drawn once for this config."""
        if self.resume_key is not None:
            return self.resume_key
        if self.secret is not None:
            return derive_key(self.secret)
        return self._drawn_key

    @property
    def limits(self) -> Limits:
        """The limits the welcome advertises: every ``Limits`` field, read from here."""
        return Limits(**{field.name: getattr(self, field.name) for field in attrs.fields(Limits)})

    @property
    def max_send_size(self) -> int:
        """Largest client request frame: the frame size less the reserve for stamps."""
        return self.max_frame_size - STAMP_RESERVE
