"""The one registry of roomwire's error and close codes.

Every refusal on the wire carries one of these codes and a human-readable reason. Codes below
4000 close the connection; codes from 4000 up refuse one request and leave the connection open.
``docs/CODES.md`` is generated from this module (``python tools/gen_docs.py``).
"""

from __future__ import annotations

import enum

import attrs


@attrs.frozen
class CodeInfo:
    """What a code means and what a client should do about it."""

    description: str
    """One sentence for the documentation table."""
    retry: bool
    """Whether reconnecting (for a close) or resending (for a refusal) may succeed unchanged."""


class Code(enum.IntEnum):
    """Wire codes. The numeric values are part of the protocol and never change meaning."""

    # Closes (the connection ends).
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    BAD_FRAME = 1003
    CONNECTION_LOST = 1006
    FRAME_TOO_LARGE = 1009
    HEARTBEAT_TIMEOUT = 3001
    HANDSHAKE_TIMEOUT = 3002
    SLOW_CONSUMER = 3003
    RATE_LIMIT_EXCEEDED = 3004
    TOO_MANY_CONNECTIONS = 3005
    RESUMED_ELSEWHERE = 3006
    UNSUPPORTED_VERSION = 3010
    TOKEN_INVALID = 3020
    TOKEN_EXPIRED = 3021
    TOKEN_BAD_SIGNATURE = 3022
    TOKEN_BAD_ALGORITHM = 3023
    ROOM_MISMATCH = 3024
    # Refusals of one request (the connection stays open).
    INVALID_REQUEST = 4000
    TOKEN_REFUSED = 4001
    FORBIDDEN_SEND = 4030
    FORBIDDEN_BROADCAST = 4031
    FORBIDDEN_LIST = 4032
    FORBIDDEN_HISTORY = 4033
    FORBIDDEN_INTERCEPT = 4035
    NOT_FOUND = 4040
    CALL_NOT_FOUND = 4041
    CALLEE_LEFT = 4042
    NO_HANDLER = 4043
    STREAM_NOT_FOUND = 4044
    STREAM_ABORTED = 4045
    STREAM_PEER_LEFT = 4046
    CALL_CANCELLED = 4080
    INVALID_STATE = 4090
    TOO_MANY_CALLS = 4091
    TOO_MANY_STREAMS = 4092
    OVER_CREDIT = 4093
    TOO_LARGE = 4130
    RATE_LIMITED = 4290
    HANDLER_FAILED = 4550
    SERVICE_UNAVAILABLE = 4500
    SERVICE_TAKEN = 4501
    NOT_INTERCEPTED = 4502
    INTERCEPTOR_FAILED = 4503

    @property
    def info(self) -> CodeInfo:
        return CODE_INFO[self]

    @property
    def closes_connection(self) -> bool:
        """True for close codes, False for codes that refuse a single request."""
        return self.value < 4000


CODE_INFO: dict[Code, CodeInfo] = {
    Code.NORMAL: CodeInfo("Clean close requested by either side.", retry=False),
    Code.GOING_AWAY: CodeInfo("The server is shutting down; connect again later.", retry=True),
    Code.PROTOCOL_ERROR: CodeInfo(
        "A well-formed frame arrived that the connection's state does not allow.", retry=False
    ),
    Code.BAD_FRAME: CodeInfo(
        "A frame was not valid CBOR, broke a decoding cap, or had the wrong shape.", retry=False
    ),
    Code.CONNECTION_LOST: CodeInfo(
        "The transport ended without a close frame (never sent on the wire).", retry=True
    ),
    Code.FRAME_TOO_LARGE: CodeInfo(
        "A length prefix declared more than the advertised maximum frame size.", retry=False
    ),
    Code.HEARTBEAT_TIMEOUT: CodeInfo(
        "Nothing was received for the heartbeat interval plus the timeout.", retry=True
    ),
    Code.HANDSHAKE_TIMEOUT: CodeInfo(
        "The handshake did not complete within the handshake timeout.", retry=True
    ),
    Code.SLOW_CONSUMER: CodeInfo(
        "The connection's outbound queue passed its bound: the peer reads too slowly.",
        retry=True,
    ),
    Code.RATE_LIMIT_EXCEEDED: CodeInfo(
        "Requests kept arriving faster than the rate limit after being refused.", retry=True
    ),
    Code.TOO_MANY_CONNECTIONS: CodeInfo(
        "The server (or the client's address) is at its connection cap: connect again later.",
        retry=True,
    ),
    Code.RESUMED_ELSEWHERE: CodeInfo(
        "Another connection resumed this participant (PROTOCOL.md §22): this one is stale.",
        retry=False,
    ),
    Code.UNSUPPORTED_VERSION: CodeInfo(
        "The hello asked for a protocol version the server does not speak.", retry=False
    ),
    Code.TOKEN_INVALID: CodeInfo("The token is not a well-formed participant JWT.", retry=False),
    Code.TOKEN_EXPIRED: CodeInfo("The token's `exp` is in the past.", retry=False),
    Code.TOKEN_BAD_SIGNATURE: CodeInfo(
        "The token's signature does not match the server's secret.", retry=False
    ),
    Code.TOKEN_BAD_ALGORITHM: CodeInfo(
        "The token is signed with an algorithm other than HS256 (including `none`).",
        retry=False,
    ),
    Code.ROOM_MISMATCH: CodeInfo(
        "The hello names a room other than the one the token grants.", retry=False
    ),
    Code.INVALID_REQUEST: CodeInfo(
        "The request is well-framed but its content breaks a rule (type, message, attributes,"
        " recipient count).",
        retry=False,
    ),
    Code.TOKEN_REFUSED: CodeInfo(
        "A `refresh` token was not accepted (invalid, expired, or another room, name, role or"
        " grants); the connection stays open until the current token's `exp`.",
        retry=False,
    ),
    Code.FORBIDDEN_SEND: CodeInfo("The token does not grant sending direct messages.", False),
    Code.FORBIDDEN_BROADCAST: CodeInfo("The token does not grant broadcasting.", retry=False),
    Code.FORBIDDEN_LIST: CodeInfo(
        "The token does not grant seeing the room's participants (presence).", retry=False
    ),
    Code.FORBIDDEN_HISTORY: CodeInfo(
        "The token does not grant reading the room's history.", retry=False
    ),
    Code.FORBIDDEN_INTERCEPT: CodeInfo(
        "The token does not grant acting as the room's service (the `intercept` grant).",
        retry=False,
    ),
    Code.NOT_FOUND: CodeInfo(
        "A recipient is unknown, left, or does not have messaging enabled.", retry=False
    ),
    Code.INVALID_STATE: CodeInfo(
        "The request is not allowed now, e.g. a send before enable or a second enable.",
        retry=False,
    ),
    Code.TOO_LARGE: CodeInfo(
        "The send frame is larger than the advertised `max_send_size`.", retry=False
    ),
    Code.RATE_LIMITED: CodeInfo(
        "Over the connection's request rate: retry later, more slowly.", retry=True
    ),
    Code.CALL_NOT_FOUND: CodeInfo(
        "An answer names a call this participant was not asked, or that is already answered,"
        " cancelled or failed.",
        retry=False,
    ),
    Code.CALLEE_LEFT: CodeInfo(
        "The participant called left (or disabled messaging) before answering.", retry=False
    ),
    Code.NO_HANDLER: CodeInfo(
        "The participant called has no handler for the request's type (sent by its client).",
        retry=False,
    ),
    Code.CALL_CANCELLED: CodeInfo(
        "The caller cancelled the call (or timed out) before it was answered.", retry=False
    ),
    Code.TOO_MANY_CALLS: CodeInfo(
        "The caller has the advertised `max_pending_calls` calls waiting for answers.",
        retry=True,
    ),
    Code.HANDLER_FAILED: CodeInfo(
        "The callee's handler raised an unexpected error (sent by its client; the callee's"
        " connection stays open).",
        retry=False,
    ),
    Code.STREAM_NOT_FOUND: CodeInfo(
        "A stream frame names no stream open on this side (never opened, ended or aborted).",
        retry=False,
    ),
    Code.STREAM_ABORTED: CodeInfo(
        "The other side aborted the stream (or refused it); the reason is theirs.", retry=False
    ),
    Code.STREAM_PEER_LEFT: CodeInfo(
        "The other side of the stream left (or disabled messaging) before its end.",
        retry=False,
    ),
    Code.TOO_MANY_STREAMS: CodeInfo(
        "The writer or the reader already has the advertised `max_open_streams` open.",
        retry=True,
    ),
    Code.OVER_CREDIT: CodeInfo(
        "A chunk over the credit the reader granted (or before it accepted), or a grant past"
        " `stream_window`: the stream is aborted.",
        retry=False,
    ),
    Code.SERVICE_UNAVAILABLE: CodeInfo(
        "No service is attached and the room's `service_policy` refuses messages (or its"
        " hold queue is full).",
        retry=True,
    ),
    Code.SERVICE_TAKEN: CodeInfo(
        "The room already has a service attached: the first keeps it until it leaves.",
        retry=True,
    ),
    Code.NOT_INTERCEPTED: CodeInfo(
        "No message with that id awaits this service's decision (decided, timed out, or"
        " never intercepted).",
        retry=False,
    ),
    Code.INTERCEPTOR_FAILED: CodeInfo(
        "The server's in-process interceptor raised on this message: it was not delivered.",
        retry=False,
    ),
}
