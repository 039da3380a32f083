"""The connection state machine: every transition of either side lives in TRANSITIONS.

Rule 1: everything that changes a connection's state is in this table.
Rule 2: the table does not know which side it runs on. Each side feeds it every frame it sends
*and* every frame it receives, so the client's ``enable`` (sent) and the server's ``enable``
(received) are the same input and move both sides to ENABLING.

Which input a received frame drives is chosen by its kind in each side's registry, or for a
reply here, in ``REPLIES`` (the request it answers decides).

A missing ``(state, input)`` key means the input is not allowed in that state: a
``LocalProtocolError`` when the caller tried it, a ``RemoteProtocolError`` when the peer did.
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    """Where a connection is."""

    # Members are singletons: identity hashing makes every table lookup ~40% cheaper than
    # Enum's Python-level __hash__, on the path of every frame.
    __hash__ = object.__hash__

    HANDSHAKE = "HANDSHAKE"
    """Waiting for the hello / welcome exchange."""
    OPEN = "OPEN"
    """Authenticated; messaging is disabled."""
    ENABLING = "ENABLING"
    """Enable sent; waiting for the presence snapshot."""
    ENABLED = "ENABLED"
    """Messaging enabled: messages and presence flow."""
    DISABLING = "DISABLING"
    """Disable sent; waiting for its ack (deliveries in flight still arrive)."""
    CLOSING = "CLOSING"
    """This side sent a clean close and waits for the peer's close."""
    CLOSED = "CLOSED"
    """Done; nothing more is sent or accepted."""


class Input(enum.Enum):
    """What can happen to a connection, whichever side it is."""

    __hash__ = object.__hash__

    HELLO = "HELLO"
    WELCOME = "WELCOME"
    ENABLE = "ENABLE"
    SNAPSHOT_PAGE = "SNAPSHOT_PAGE"
    SNAPSHOT_END = "SNAPSHOT_END"
    ENABLE_REFUSED = "ENABLE_REFUSED"
    DISABLE = "DISABLE"
    DISABLE_ACK = "DISABLE_ACK"
    SEND = "SEND"
    ATTRIBUTES = "ATTRIBUTES"
    HISTORY = "HISTORY"
    REFRESH = "REFRESH"
    SERVICE = "SERVICE"
    REPLY = "REPLY"
    DELIVERY = "DELIVERY"
    HEARTBEAT = "HEARTBEAT"
    LOCAL_CLOSE = "LOCAL_CLOSE"
    PEER_CLOSE = "PEER_CLOSE"
    ABORT = "ABORT"
    CALL = "CALL"
    ANSWER = "ANSWER"
    CANCEL = "CANCEL"
    STREAM = "STREAM"
    STREAM_DATA = "STREAM_DATA"
    STREAM_EVENT = "STREAM_EVENT"


_S, _I = State, Input
_LIVE = (_S.OPEN, _S.ENABLING, _S.ENABLED, _S.DISABLING)

TRANSITIONS: dict[tuple[State, Input], State] = {
    (_S.HANDSHAKE, _I.HELLO): _S.HANDSHAKE,
    (_S.HANDSHAKE, _I.WELCOME): _S.OPEN,
    (_S.OPEN, _I.ENABLE): _S.ENABLING,
    (_S.ENABLING, _I.SNAPSHOT_PAGE): _S.ENABLING,
    (_S.ENABLING, _I.SNAPSHOT_END): _S.ENABLED,
    (_S.ENABLING, _I.ENABLE_REFUSED): _S.OPEN,
    (_S.ENABLED, _I.DISABLE): _S.DISABLING,
    (_S.DISABLING, _I.DISABLE_ACK): _S.OPEN,
    (_S.ENABLING, _I.SEND): _S.ENABLING,
    (_S.ENABLED, _I.SEND): _S.ENABLED,
    (_S.ENABLED, _I.DELIVERY): _S.ENABLED,
    (_S.DISABLING, _I.DELIVERY): _S.DISABLING,
    **{(state, _I.ATTRIBUTES): state for state in _LIVE},
    **{(state, _I.REPLY): state for state in _LIVE},
    **{(state, _I.HISTORY): state for state in _LIVE},
    **{(state, _I.REFRESH): state for state in _LIVE},
    **{(state, _I.HEARTBEAT): state for state in _LIVE},
    **{(state, _I.LOCAL_CLOSE): _S.CLOSING for state in (_S.HANDSHAKE, *_LIVE)},
    **{(state, _I.PEER_CLOSE): _S.CLOSED for state in (_S.HANDSHAKE, *_LIVE, _S.CLOSING)},
    **{(state, _I.ABORT): _S.CLOSED for state in (_S.HANDSHAKE, *_LIVE, _S.CLOSING)},
    # After our clean close, what the peer sent before seeing it still arrives and counts.
    **{
        (_S.CLOSING, i): _S.CLOSING
        for i in (
            _I.WELCOME,
            _I.SNAPSHOT_PAGE,
            _I.SNAPSHOT_END,
            _I.ENABLE_REFUSED,
            _I.DISABLE_ACK,
            _I.REPLY,
        )
    },
    (_S.CLOSING, _I.DELIVERY): _S.CLOSING,
    # Services (§23): every service request is made with messaging enabled; a reconnecting
    # service attaches again right after its re-enable (the server enables it first).
    (_S.ENABLED, _I.SERVICE): _S.ENABLED,
    (_S.ENABLING, _I.SERVICE): _S.ENABLING,
    (_S.CLOSING, _I.HEARTBEAT): _S.CLOSING,
    # Participant RPC (PROTOCOL.md §24): a call needs messaging enabled, as a send does; an
    # answer or a cancel is allowed while live (the server refuses or ignores a stale one).
    (_S.ENABLING, _I.CALL): _S.ENABLING,
    (_S.ENABLED, _I.CALL): _S.ENABLED,
    **{(state, _I.ANSWER): state for state in _LIVE},
    **{(state, _I.CANCEL): state for state in _LIVE},
    # Streams (§24.4): opened and accepted while enabled; a client's stream frames flow while
    # live (the server answers or ignores a stale one), the server's still arrive after the
    # client's close.
    (_S.ENABLED, _I.STREAM): _S.ENABLED,
    **{(state, _I.STREAM_DATA): state for state in _LIVE},
    **{(state, _I.STREAM_EVENT): state for state in (*_LIVE, _S.CLOSING)},
}

REPLIES: dict[tuple[Input, str], Input] = {
    (_I.ENABLE, "snapshot"): _I.SNAPSHOT_PAGE,
    (_I.ENABLE, "last snapshot"): _I.SNAPSHOT_END,
    (_I.ENABLE, "error"): _I.ENABLE_REFUSED,
    (_I.DISABLE, "ack"): _I.DISABLE_ACK,
    (_I.SEND, "ack"): _I.REPLY,
    (_I.SEND, "error"): _I.REPLY,
    (_I.ATTRIBUTES, "ack"): _I.REPLY,
    (_I.ATTRIBUTES, "error"): _I.REPLY,
    (_I.HISTORY, "history"): _I.REPLY,
    (_I.HISTORY, "error"): _I.REPLY,
    (_I.REFRESH, "ack"): _I.REPLY,
    (_I.REFRESH, "error"): _I.REPLY,
    (_I.CALL, "result"): _I.REPLY,
    (_I.CALL, "error"): _I.REPLY,
    (_I.ANSWER, "ack"): _I.REPLY,
    (_I.ANSWER, "error"): _I.REPLY,
    (_I.STREAM, "ack"): _I.REPLY,
    (_I.STREAM, "error"): _I.REPLY,
    (_I.SERVICE, "ack"): _I.REPLY,
    (_I.SERVICE, "error"): _I.REPLY,
}
"""The input a reply drives, by the request it answers and its kind ("last snapshot" is the
page with ``more`` false). A missing key is a reply that cannot answer that request."""

ON_REFUSAL: dict[State, Input] = {_S.ENABLING: _I.ENABLE_REFUSED}
"""The input a refused request drives, by the state it had moved the connection to."""
del _S, _I
