"""Conformance vectors of participant RPC (docs/PROTOCOL.md §24), registered by
``tools/make_vectors.py`` (``register``): a recorded server routing calls, answers, cancels
and departures, and a recorded client as caller and as callee."""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

from roomwire import Code

JSON = Any


def _last_id(mv: ModuleType, h: Any) -> str:
    """The id the recorded exchange's server stamped last (its ids count up: id1, id2...)."""
    return f"id{h.server.config.id_factory.n}"


def server_calls(mv: ModuleType) -> JSON:
    h = mv._enabled_server("alice", "bob", server={"max_pending_calls": 2})
    bob = h.participant_id("bob")
    h.call(
        "alice",
        "call",
        "alice calls bob with an attachment: bob gets the call stamped with its id and caller",
        to=bob,
        type="tool.add",
        message={"a": 2, "b": 3},
        attachment="0102",
    )
    call_id = h.steps[-1]["output_frames"]["bob"][0]["id"]
    h.call(
        "bob",
        "answer",
        "bob answers: acked, alice gets the result",
        call_id=call_id,
        message={"sum": 5},
    )
    h.call(
        "bob",
        "answer",
        "bob answers again: 4041 CALL_NOT_FOUND for bob alone",
        call_id=call_id,
        message={"sum": 6},
    )
    h.expect("RequestRefused", connection="bob")
    first = h.call("alice", "call", "alice calls bob", to=bob, type="slow", message={})
    h.call("alice", "call", "alice calls bob again", to=bob, type="slow", message={})
    h.call(
        "alice",
        "call",
        "a third waiting call: 4091 TOO_MANY_CALLS",
        to=bob,
        type="slow",
        message={},
    )
    h.expect("RequestRefused", connection="alice")
    h.call(
        "alice",
        "cancel_call",
        "alice cancels her first waiting call: bob gets a cancel,"
        " alice the call's one answer, 4080 CALL_CANCELLED",
        request_id=first,
    )
    h.call("bob", "disable", "bob disables: alice's other call fails at once, 4042 CALLEE_LEFT")
    return h.vector(
        "A call is routed to its callee stamped with a call id, the caller and the time; the"
        " callee's answer is acked and reaches the caller as a result (the reply to the call's"
        " rid). A second answer is refused for the replier alone. A caller has at most"
        " max_pending_calls calls waiting. A cancel is answered with 4080 and tells the"
        " callee; a callee that leaves fails its calls with 4042."
    )


def client_calls(mv: ModuleType) -> JSON:
    h = mv._client({"bob": {}})
    h.call("alice", "enable", "alice enables")
    h.call("bob", "enable", "bob enables")
    alice, bob = h.participant_id("alice"), h.participant_id("bob")
    h.call("bob", "call", "bob calls alice", to=alice, type="tool.add", message={"a": 2})
    h.expect("CallReceived")
    asked = _last_id(mv, h)
    h.call("alice", "answer", "alice answers", call_id=asked, message={"sum": 2}, attachment="ff")
    h.call("alice", "answer", "alice answers again: refused, 4041", call_id=asked, message={})
    h.expect("RequestRefused")
    rid = h.call("bob", "call", "bob calls alice again", to=alice, type="slow", message={})
    h.call("bob", "cancel_call", "bob cancels: alice is told", request_id=rid)
    h.expect("CallCancelled")
    for code, reason in ((Code.NO_HANDLER, "no handler for 'x'"), (Code.HANDLER_FAILED, "boom")):
        h.call("alice", "call", "alice calls bob", to=bob, type="x", message={})
        h.call(
            "bob",
            "fail_call",
            f"bob's client answers {int(code)}",
            call_id=_last_id(mv, h),
            code=int(code),
            reason=reason,
        )
        h.expect("CallFailed")
    h.call("alice", "call", "alice calls bob", to=bob, type="tool.add", message={"a": 1})
    h.call(
        "bob",
        "answer",
        "bob answers with an attachment",
        call_id=_last_id(mv, h),
        message={"sum": 1},
        attachment="0a0b",
    )
    h.expect("CallAnswered")
    mine = h.call("alice", "call", "alice calls bob", to=bob, type="slow", message={})
    h.call("alice", "cancel_call", "alice gives up: the call's one answer is 4080", request_id=mine)
    h.expect("RequestRefused")
    h.call("alice", "call", "alice calls bob once more", to=bob, type="slow", message={})
    h.call("bob", "disable", "bob disables before answering: 4042 CALLEE_LEFT at once")
    h.expect("RequestRefused", "ParticipantRemoved")
    return h.vector(
        "As callee, a call produces CallReceived (seq 0: calls are not in the room's order),"
        " an answer is acked, a second one refused (4041), and a cancel produces"
        " CallCancelled. As caller, the one answer is CallAnswered, CallFailed with the"
        " callee's code (4043 NO_HANDLER, 4550 HANDLER_FAILED), or RequestRefused (4080 after"
        " a cancel, 4042 when the callee leaves)."
    )


def register(vector: Callable[[Callable[[], JSON]], object], mv: ModuleType) -> None:
    """Register this module's vectors with make_vectors' ``vector`` (``mv`` is that module)."""
    for make in (server_calls, client_calls):
        vector(functools.update_wrapper(functools.partial(make, mv), make))
