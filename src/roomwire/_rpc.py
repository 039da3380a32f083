"""Participant RPC on the server (docs/PROTOCOL.md §24): the calls waiting for answers, and
what happens to them when an answer, a cancel or a departure comes first.

A call is routed like a direct message (the server stamps the caller) but is not stored in
history and has no room seq. Each call is answered exactly once to its caller: the callee's
``result``, or an ``error`` (cancelled, callee left). The server's state per call is one
small ``Call`` record, bounded by ``max_pending_calls`` per caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from ._codec import encode_frame
from .codes import Code

if TYPE_CHECKING:
    from ._routing import Router
    from ._session import ServerConnection


@attrs.define(eq=False)
class Call:
    id: str
    caller: ServerConnection
    rid: int
    """The caller's request id: its answer is the reply to that request."""
    callee: ServerConnection
    type: str
    """The request's type, which its answer carries back."""


class Calls:
    """Every call waiting for its answer, by id and by each end's connection."""

    __slots__ = ("_by_id", "_made", "_router", "_taken")

    def __init__(self, router: Router) -> None:
        self._router = router
        self._by_id: dict[str, Call] = {}
        self._made: dict[ServerConnection, dict[int, Call]] = {}
        """Calls waiting, by caller, then by the caller's request id."""
        self._taken: dict[ServerConnection, dict[str, Call]] = {}
        """Calls waiting, by callee, then by call id."""

    def made(self, caller: ServerConnection) -> Mapping[int, Call]:
        """The calls ``caller`` has waiting for answers, by its request ids."""
        return self._made.get(caller, _NONE)

    def open(self, call: Call, data: bytes) -> None:
        """Record ``call`` and queue its ``call`` frame (``data``) for the callee."""
        self._by_id[call.id] = call
        self._made.setdefault(call.caller, {})[call.rid] = call
        self._taken.setdefault(call.callee, {})[call.id] = call
        self._router.queue_to([call.callee.outbound], data)

    def asked(self, callee: ServerConnection, call_id: str) -> Call | None:
        """The call ``callee`` was asked and has not answered; None if there is none (never
        made, already answered, cancelled or failed)."""
        call = self._by_id.get(call_id)
        return call if call is not None and call.callee is callee else None

    def answered(self, call: Call, data: bytes) -> None:
        """Close ``call`` and queue its ``result`` frame (``data``) for the caller."""
        self._close(call)
        self._router.queue_to([call.caller.outbound], data)

    def cancel(self, caller: ServerConnection, rid: int) -> None:
        """The caller gave up on call ``rid``: the callee is told, the caller gets the call's
        one answer (CALL_CANCELLED). A no-op once the call has its answer (the cancel crossed
        it on the wire)."""
        call = self._made.get(caller, {}).get(rid)
        if call is not None:
            self._close(call)
            self._tell_callee(call)
            self._fail(call, Code.CALL_CANCELLED, "the caller cancelled the call")

    def left(self, connection: ServerConnection) -> None:
        """``connection`` left messaging (disabled or closed): the calls it was asked fail
        at once for their callers (CALLEE_LEFT)."""
        for call in list(self._taken.get(connection, {}).values()):
            self._close(call)
            self._fail(call, Code.CALLEE_LEFT, "the participant called left before answering")

    def closed(self, connection: ServerConnection) -> None:
        """``connection`` closed (after ``left``): its own calls are cancelled for their
        callees."""
        for call in list(self._made.get(connection, {}).values()):
            self._close(call)
            self._tell_callee(call)

    def _close(self, call: Call) -> None:
        del self._by_id[call.id]
        made, taken = self._made[call.caller], self._taken[call.callee]
        del made[call.rid], taken[call.id]
        # Drop emptied maps: a connection's entry lives only while it has calls waiting.
        if not made:
            del self._made[call.caller]
        if not taken:
            del self._taken[call.callee]

    def _tell_callee(self, call: Call) -> None:
        self._router.queue_to([call.callee.outbound], encode_frame({"t": "cancel", "id": call.id}))

    def _fail(self, call: Call, code: Code, reason: str) -> None:
        frame = {"t": "error", "rid": call.rid, "code": int(code), "reason": reason}
        self._router.queue_to([call.caller.outbound], encode_frame(frame))


_NONE: Mapping[int, Call] = {}
