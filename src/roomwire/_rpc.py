"""Participant RPC on the server (docs/PROTOCOL.md §24): the calls waiting for answers, and
what happens to them when an answer, a cancel or a departure comes first.

A call is routed like a direct message (the server stamps the caller) but is not stored in
history and has no room seq. Each call is answered exactly once to its caller: the callee's
``result``, or an ``error`` (cancelled, callee left). The server's state per call is one
small ``Call`` record, bounded by ``max_pending_calls`` per caller.

With a backplane, either end may be on another node: the call, its result and its cancel
travel as room records (``call``, ``result``, ``cancel``); the caller's node fails its calls
when the callee's ``left`` arrives, or when the callee's node goes silent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._codec import Frame, encode_frame
from .codes import Code

if TYPE_CHECKING:
    from ._cluster import Cluster
    from ._room import Room
    from ._routing import Router
    from ._session import ServerConnection


@attrs.define(eq=False)
class Call:
    id: str
    caller: ServerConnection | None
    """None: the caller is on the node ``node``."""
    rid: int
    """The caller's request id: its answer is the reply to that request."""
    callee: ServerConnection | None
    """None: the callee, ``callee_id``, is on the node ``node``."""
    type: str
    """The request's type, which its answer carries back."""
    callee_id: str = ""
    node: str | None = None
    """The node of the end that is not on this one."""
    room: Room | None = None
    """The room whose records carry the call, when an end is on another node."""


class Calls:
    """Every call waiting for its answer, by id and by each local end."""

    __slots__ = ("_by_id", "_cluster", "_made", "_remote", "_router", "_taken")

    def __init__(self, router: Router, cluster: Cluster) -> None:
        self._router = router
        self._cluster = cluster
        self._by_id: dict[str, Call] = {}
        self._made: dict[ServerConnection, dict[int, Call]] = {}
        """Calls waiting, by local caller, then by the caller's request id."""
        self._taken: dict[ServerConnection, dict[str, Call]] = {}
        """Calls waiting, by local callee, then by call id."""
        self._remote: dict[str, dict[str, Call]] = {}
        """Calls of local callers to participants on other nodes, by callee id."""

    def made(self, caller: ServerConnection) -> Mapping[int, Call]:
        """The calls ``caller`` has waiting for answers, by its request ids."""
        return self._made.get(caller, _NONE)

    def open(self, call: Call, data: bytes, record: Frame | None = None) -> None:
        """Record ``call``; queue its ``call`` frame (``data``) for a local callee, or
        publish ``record`` for a callee on another node."""
        self._add(call)
        if call.callee is not None:
            self._router.queue_to([call.callee.outbound], data)
        else:
            # Both are given for a callee on another node.
            assert call.room is not None
            assert record is not None
            self._cluster.publish(call.room, record)

    def asked(self, callee: ServerConnection, call_id: str) -> Call | None:
        """The call ``callee`` was asked and has not answered; None if there is none (never
        made, already answered, cancelled or failed)."""
        call = self._by_id.get(call_id)
        return call if call is not None and call.callee is callee else None

    def answered(self, call: Call, data: bytes, result: Frame) -> None:
        """Close ``call``: queue its ``result`` frame (``data``) for a local caller, or
        publish the result for a caller on another node."""
        self._close(call)
        if call.caller is not None:
            self._router.queue_to([call.caller.outbound], data)
        else:
            assert call.room is not None  # set for a remote caller
            record = {k: v for k, v in result.items() if k != "rid"}
            self._cluster.publish(call.room, record)

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
        at once for local callers (CALLEE_LEFT); a remote caller's node learns it from the
        ``left`` record."""
        for call in list(self._taken.get(connection, {}).values()):
            self._close(call)
            if call.caller is not None:
                self._fail(call, Code.CALLEE_LEFT, "the participant called left before answering")

    def closed(self, connection: ServerConnection) -> None:
        """``connection`` closed (after ``left``): its own calls are cancelled for their
        callees."""
        for call in list(self._made.get(connection, {}).values()):
            self._close(call)
            self._tell_callee(call)

    # --- records from other nodes --------------------------------------------------------

    def remote_call(self, room: Room, record: Frame) -> None:
        """A call from another node: queue it for its callee if the callee is here."""
        callee = room.local.get(record["to"])
        if callee is None:
            return  # for another node, or gone (the caller's node learns it from ``left``)
        call = Call(
            record["id"],
            None,
            0,
            callee.connection,
            record["type"],
            node=record["n"],
            room=room,
        )
        self._add(call)
        self._router.queue_to([callee], call_frame(record))

    def remote_result(self, record: Frame) -> None:
        """The answer to a local caller's call, from the callee's node."""
        call = self._by_id.get(record["id"])
        if call is None or call.caller is None or call.callee is not None:
            return  # not a call of this node's, or it already has its answer
        self._close(call)
        self._router.queue_to([call.caller.outbound], result_frame(record, call.rid))

    def remote_cancel(self, record: Frame) -> None:
        """A remote caller gave up: tell the local callee."""
        call = self._by_id.get(record["id"])
        if call is not None and call.caller is None and call.callee is not None:
            self._close(call)
            self._tell_callee(call)

    def gone(self, participant_id: str) -> None:
        """A participant of another node left: local callers' calls to it fail at once."""
        for call in list(self._remote.get(participant_id, {}).values()):
            self._close(call)
            self._fail(call, Code.CALLEE_LEFT, "the participant called left before answering")

    def node_gone(self, node: str | None) -> None:
        """Node ``node`` (every other node if None) went silent or the backplane was lost:
        calls with an end there fail (local callers) or are cancelled (local callees)."""
        ended = [c for c in self._by_id.values() if c.node is not None and node in (None, c.node)]
        for call in ended:
            self._close(call)
            if call.caller is None:
                self._tell_callee(call)
            else:
                self._fail(call, Code.CALLEE_LEFT, "the participant called is out of reach")

    # --- helpers ---------------------------------------------------------------------------

    def _add(self, call: Call) -> None:
        self._by_id[call.id] = call
        if call.caller is not None:
            self._made.setdefault(call.caller, {})[call.rid] = call
        if call.callee is not None:
            self._taken.setdefault(call.callee, {})[call.id] = call
        else:
            self._remote.setdefault(call.callee_id, {})[call.id] = call

    def _close(self, call: Call) -> None:
        del self._by_id[call.id]
        # Drop emptied maps: an entry lives only while its end has calls waiting.
        if call.caller is not None:
            _drop(self._made, call.caller, call.rid)
        if call.callee is not None:
            _drop(self._taken, call.callee, call.id)
        else:
            _drop(self._remote, call.callee_id, call.id)

    def _tell_callee(self, call: Call) -> None:
        if call.callee is None:
            assert call.room is not None  # set for a remote callee
            self._cluster.publish(call.room, {"t": "cancel", "id": call.id})
            return
        self._router.queue_to([call.callee.outbound], encode_frame({"t": "cancel", "id": call.id}))

    def _fail(self, call: Call, code: Code, reason: str) -> None:
        assert call.caller is not None  # only a local caller is failed here
        frame = {"t": "error", "rid": call.rid, "code": int(code), "reason": reason}
        self._router.queue_to([call.caller.outbound], encode_frame(frame))


def call_frame(record: Frame) -> bytes:
    """The ``call`` frame a callee gets for a call record."""
    frame: Frame = {
        "t": "call",
        "id": record["id"],
        "from": record["from"],
        "ts": record["ts"],
        "type": record["type"],
        "message": record["message"],
    }
    if record.get("att") is not None:
        frame["att"] = record["att"]
    return encode_frame(frame)


def result_frame(record: Frame, rid: int) -> bytes:
    """The ``result`` frame a caller gets for a result record."""
    frame: Frame = {
        "t": "result",
        "rid": rid,
        "id": record["id"],
        "from": record["from"],
        "ts": record["ts"],
        "type": record["type"],
    }
    frame.update(_outcome(record))
    return encode_frame(frame)


def _outcome(record: Frame) -> dict[str, Any]:
    if "code" in record:
        return {"code": record["code"], "reason": record["reason"]}
    outcome = {"message": record["message"]}
    if record.get("att") is not None:
        outcome["att"] = record["att"]
    return outcome


def _drop(index: dict[Any, dict[Any, Call]], key: object, item: object) -> None:
    entries = index[key]
    del entries[item]
    if not entries:
        del index[key]


_NONE: Mapping[int, Call] = {}
