"""Participant RPC in the bindings (docs/PROTOCOL.md §24): the errors a call raises, and the
``Responder`` that runs ``on_request`` handlers, one task per call, cancelled when the caller
cancels. The caller's side (``request``) is ``RoomClient.call``; matching answers to calls is
the session's."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from roomwire import ClientConnection, Code, RoomMessage

from ._errors import RoomError

log = logging.getLogger("roomwire.client")

Handler = Callable[[RoomMessage], Awaitable[Any]]
"""An ``on_request`` handler: an async function of the request, returning the answer's
message (a dict), or a ``(dict, attachment)`` tuple, or raising ``RequestError``."""


class RequestError(Exception):
    """A request was answered with an error. Raise it in a handler to answer with
    ``code`` (any integer) and ``reason``; the caller's ``request`` raises it with both
    unchanged."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason} (code {self.code})"


class NoHandlerError(RequestError):
    """The participant called has no handler for the request's type (code NO_HANDLER)."""


class RequestTimeoutError(RoomError, TimeoutError):
    """No answer came within the request's timeout; the call was cancelled (the callee's
    handler is cancelled too)."""


def request_error(code: int, reason: str) -> RequestError:
    """The error a caller raises for a callee's error answer."""
    return (NoHandlerError if code == Code.NO_HANDLER else RequestError)(code, reason)


Answer = Callable[[ClientConnection], int]
"""A core verb answering one call (``conn.answer`` or ``conn.fail_call``)."""


class Responder:
    """The callee's side: handlers by request type, and the handler tasks running now (by
    call id) so that a cancel can stop them. ``spawn`` runs an awaitable as a task;
    ``send(conn, verb)`` queues an answer on ``conn`` if it is still the live connection."""

    def __init__(
        self,
        spawn: Callable[[str, Awaitable[object]], None],
        send: Callable[[ClientConnection, Answer], None],
    ) -> None:
        self._spawn = spawn
        self._send = send
        self._handlers: dict[str, Handler] = {}
        self._running: dict[str, anyio.CancelScope | None] = {}
        """The handlers of calls not yet answered, by call id: None until the task started
        (frames can arrive in a transport callback, where no cancel scope can be made)."""

    def on_request(self, type: str, handler: Handler) -> None:
        self._handlers[type] = handler

    def off_request(self, type: str) -> None:
        self._handlers.pop(type, None)

    def received(self, conn: ClientConnection, call: RoomMessage) -> None:
        """A call arrived on ``conn``: run its handler, or answer NO_HANDLER at once."""
        handler = self._handlers.get(call.type)
        if handler is None:
            conn.fail_call(call.id, Code.NO_HANDLER, f"no handler for request type {call.type!r}")
            return
        self._running[call.id] = None
        self._spawn("request handler", self._serve(conn, call, handler))

    def cancelled(self, call_id: str) -> None:
        """The caller cancelled (or left): stop the handler; its answer is not wanted."""
        scope = self._running.pop(call_id, None)
        if scope is not None:
            scope.cancel()

    def lost(self) -> None:
        """The connection ended: its calls are gone (the server failed them), so are their
        handlers."""
        running, self._running = self._running, {}
        for scope in running.values():
            if scope is not None:
                scope.cancel()

    async def _serve(self, conn: ClientConnection, call: RoomMessage, handler: Handler) -> None:
        if call.id not in self._running:
            return  # cancelled before the task started
        answer: Answer
        with anyio.CancelScope() as scope:
            self._running[call.id] = scope
            try:
                outcome = await handler(call)
            except RequestError as exc:
                code, reason = exc.code, exc.reason
                answer = lambda c: c.fail_call(call.id, code, reason)  # noqa: E731
            except Exception as exc:
                log.exception("the handler of request type %r failed", call.type)
                answer = _failed(call.id, f"the handler failed ({type(exc).__name__})")
            else:
                answer = _answer(call.id, outcome)
        if self._running.pop(call.id, None) is None:
            return  # cancelled: the caller gave up, or the call is gone
        try:
            self._send(conn, answer)
        except RoomError as exc:  # the answer broke a rule the core checks (size, JSON)
            log.warning("the answer to request type %r was refused: %s", call.type, exc.reason)
            self._send(conn, _failed(call.id, f"the handler's answer was refused: {exc.reason}"))


def _answer(call_id: str, outcome: object) -> Answer:
    """The verb answering with a handler's return value: a dict, or (dict, attachment)."""
    if isinstance(outcome, tuple) and len(outcome) == 2:
        message, attachment = outcome
    else:
        message, attachment = outcome, None
    if not isinstance(message, dict):
        return _failed(call_id, f"the handler returned {type(message).__name__}, not a dict")
    return lambda conn: conn.answer(call_id, message, attachment)


def _failed(call_id: str, reason: str) -> Answer:
    return lambda conn: conn.fail_call(call_id, Code.HANDLER_FAILED, reason)
