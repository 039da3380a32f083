"""The error hierarchy: API misuse is local, peer garbage is remote (h11's split)."""

from __future__ import annotations

from .codes import Code


class ProtocolError(Exception):
    """Base of every error roomwire raises; never raised itself.

    ``code`` is the wire code that goes with the failure and ``reason`` a specific sentence.
    """

    def __init__(self, reason: str, code: Code) -> None:
        if type(self) is ProtocolError:
            raise TypeError("ProtocolError is abstract; raise a subclass")
        super().__init__(reason)
        self.reason = reason
        self.code = code


class LocalProtocolError(ProtocolError):
    """The caller broke a rule; raised at the call, before anything is queued."""

    def __init__(self, reason: str, code: Code = Code.PROTOCOL_ERROR) -> None:
        super().__init__(reason, code)


class InvalidRequest(LocalProtocolError):
    """A verb's arguments break a content rule (type, message, attributes, recipients)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, Code.INVALID_REQUEST)


class MessageTooLarge(LocalProtocolError):
    """The encoded request is larger than the limit the server advertised."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, Code.TOO_LARGE)


class RemoteProtocolError(ProtocolError):
    """The peer sent something invalid. Raised only from ``next_event``; by then a close
    frame with ``code`` and ``reason`` is queued, so the driver flushes, then closes."""

    def __init__(self, reason: str, code: Code = Code.PROTOCOL_ERROR) -> None:
        super().__init__(reason, code)


class TokenError(ProtocolError):
    """A participant token could not be made or was refused; ``code`` says why."""


def bad_frame(reason: str) -> RemoteProtocolError:
    """The peer sent bytes that are not a well-formed frame."""
    return RemoteProtocolError(reason, Code.BAD_FRAME)


class Refusal(Exception):
    """Server side: a request is refused; the connection answers with an error frame and
    stays open (raised by a request's handler, wherever the concern's module is)."""

    def __init__(self, code: Code, reason: str) -> None:
        self.code, self.reason = code, reason
