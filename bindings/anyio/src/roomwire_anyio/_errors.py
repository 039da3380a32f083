"""Typed errors for refused requests and closed connections, keyed by the core's codes."""

from __future__ import annotations

from roomwire import Code, InvalidRequest, LocalProtocolError, MessageTooLarge, ProtocolError


class RoomError(ProtocolError):
    """A request was refused or could not complete; ``code`` and ``reason`` say why."""

    def __init__(self, reason: str, code: Code) -> None:
        super().__init__(reason, code)


class NotFoundError(RoomError):
    """A recipient is unknown, has left, or does not have messaging enabled."""


class ForbiddenError(RoomError):
    """The token does not grant this (send, broadcast or list)."""


class TooLargeError(RoomError):
    """The message is over the server's advertised limit (checked locally first)."""


class InvalidRequestError(RoomError):
    """The request's content breaks a rule (type, message, attributes, recipients)."""


class NotEnabledError(RoomError):
    """The request is not allowed in the current state, e.g. a send before ``enable()``."""


class RateLimitedError(RoomError):
    """Over the connection's request rate (the connection stays open): retry later, more
    slowly. Requests kept coming this fast close the connection (RATE_LIMIT_EXCEEDED)."""


class ServiceError(RoomError):
    """The room's service could not take this: none is attached and the room refuses
    messages without one, another service is attached, the message no longer awaits a
    decision, or the server's in-process interceptor failed on it."""


class ConnectionClosedError(RoomError):
    """The connection closed (or could not be opened) before the request completed."""


class StreamError(RoomError):
    """A stream failed: the other side aborted or refused it (STREAM_ABORTED) or left
    (STREAM_PEER_LEFT), the credit was broken (OVER_CREDIT), or the connection closed."""


_BY_CODE: dict[Code, type[RoomError]] = {
    Code.NOT_FOUND: NotFoundError,
    Code.FORBIDDEN_SEND: ForbiddenError,
    Code.FORBIDDEN_BROADCAST: ForbiddenError,
    Code.FORBIDDEN_LIST: ForbiddenError,
    Code.FORBIDDEN_HISTORY: ForbiddenError,
    Code.TOO_LARGE: TooLargeError,
    Code.INVALID_REQUEST: InvalidRequestError,
    Code.INVALID_STATE: NotEnabledError,
    Code.RATE_LIMITED: RateLimitedError,
    Code.TOKEN_REFUSED: ForbiddenError,
    Code.CALL_NOT_FOUND: NotFoundError,
    Code.CALLEE_LEFT: NotFoundError,
    Code.TOO_MANY_CALLS: RateLimitedError,
    Code.TOO_MANY_STREAMS: RateLimitedError,
    Code.STREAM_NOT_FOUND: StreamError,
    Code.STREAM_ABORTED: StreamError,
    Code.STREAM_PEER_LEFT: StreamError,
    Code.OVER_CREDIT: StreamError,
    Code.FORBIDDEN_INTERCEPT: ForbiddenError,
    Code.SERVICE_UNAVAILABLE: ServiceError,
    Code.SERVICE_TAKEN: ServiceError,
    Code.NOT_INTERCEPTED: ServiceError,
    Code.INTERCEPTOR_FAILED: ServiceError,
}


def error_for(code: Code, reason: str) -> RoomError:
    """The typed error for a refusal or close code."""
    return _BY_CODE.get(code, ConnectionClosedError)(reason, code)


def from_local(exc: LocalProtocolError) -> RoomError:
    """Translate the core's pre-check errors into the binding's typed errors."""
    if isinstance(exc, MessageTooLarge):
        return TooLargeError(exc.reason, exc.code)
    if isinstance(exc, InvalidRequest):
        return InvalidRequestError(exc.reason, exc.code)
    return NotEnabledError(exc.reason, Code.INVALID_STATE)
