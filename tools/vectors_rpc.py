"""Conformance vectors of participant RPC and streams (docs/PROTOCOL.md §24), registered by
``tools/make_vectors.py`` (``register``): a recorded server routing calls, answers, cancels,
streams and departures, and a recorded client as caller, callee, writer and reader."""

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


def server_streams(mv: ModuleType) -> JSON:
    h = mv._enabled_server("alice", "bob", server={"stream_window": 8, "max_open_streams": 1})
    bob = h.participant_id("bob")
    h.call("alice", "open_stream", "alice opens a stream to bob", to=bob, header={"n": "f"})
    sid = h.steps[-1]["output_frames"]["bob"][0]["sid"]
    h.call("alice", "open_stream", "a second stream: 4092 TOO_MANY_STREAMS", to=bob, header={})
    h.expect("RequestRefused", connection="alice")
    h.call("bob", "accept_stream", "bob accepts: alice's open is acked with the id", stream_id=sid)
    h.call(
        "alice",
        "send_chunk",
        "alice sends 5 bytes",
        stream_id=sid,
        data="0102030405",
        header={"part": 1},
    )
    h.call("bob", "grant_credit", "bob read them: 5 bytes of credit back", stream_id=sid, n=5)
    h.call(
        "alice",
        "send_chunk",
        "alice sends 8 more (the window)",
        stream_id=sid,
        data="0000000000000000",
    )
    h.call(
        "alice",
        "send_chunk",
        "one byte past the credit: 4093 OVER_CREDIT for both",
        stream_id=sid,
        data="ff",
    )
    h.call(
        "alice",
        "send_chunk",
        "a chunk for the aborted stream: 4044 STREAM_NOT_FOUND",
        stream_id=sid,
        data="ff",
    )
    h.call("alice", "open_stream", "alice opens another", to=bob, header={})
    sid = h.steps[-1]["output_frames"]["bob"][0]["sid"]
    h.call("bob", "accept_stream", "bob accepts", stream_id=sid)
    h.call("alice", "end_stream", "alice ends it: bob gets end", stream_id=sid)
    h.call("alice", "open_stream", "alice opens a third", to=bob, header={})
    sid = h.steps[-1]["output_frames"]["bob"][0]["sid"]
    h.call(
        "bob",
        "abort_stream",
        "bob refuses it: alice's open fails, 4045",
        stream_id=sid,
        reason="busy",
    )
    h.call("alice", "open_stream", "alice opens a fourth", to=bob, header={})
    sid = h.steps[-1]["output_frames"]["bob"][0]["sid"]
    h.call("bob", "accept_stream", "bob accepts", stream_id=sid)
    h.call("bob", "disable", "bob leaves: alice's stream fails, 4046 STREAM_PEER_LEFT")
    return h.vector(
        "A stream is offered to its reader, and the writer's open is acked with the stream id"
        " once the reader accepts. Chunks are forwarded within the reader's credit"
        " (stream_window, then each credit frame); a chunk past it aborts the stream for both"
        " (4093), a chunk for no open stream is answered with an abort (4044). A refused"
        " offer fails the open (4045); a side that leaves fails the stream (4046)."
    )


def client_streams(mv: ModuleType) -> JSON:
    h = mv._client({"bob": {}}, server={"stream_window": 16})
    h.call("alice", "enable", "alice enables")
    h.call("bob", "enable", "bob enables")
    alice, bob = h.participant_id("alice"), h.participant_id("bob")
    h.call("bob", "open_stream", "bob opens a stream to alice", to=alice, header={"name": "a"})
    h.expect("StreamOffered")
    sid = _last_id(mv, h)
    h.call("alice", "accept_stream", "alice accepts", stream_id=sid)
    h.call("bob", "send_chunk", "bob sends a chunk", stream_id=sid, data="cafe", header={"i": 0})
    h.expect("ChunkReceived")
    h.call("alice", "grant_credit", "alice grants its 2 bytes back", stream_id=sid, n=2)
    h.call("bob", "end_stream", "bob ends the stream", stream_id=sid)
    h.expect("StreamEnded")
    h.call("alice", "open_stream", "alice opens a stream to bob", to=bob, header={})
    sid = _last_id(mv, h)
    h.call("bob", "accept_stream", "bob accepts: alice's open is acked", stream_id=sid)
    h.expect("RequestAcked")
    h.call("alice", "send_chunk", "alice sends 16 bytes", stream_id=sid, data="00" * 16)
    h.call("bob", "grant_credit", "bob grants 10", stream_id=sid, n=10)
    h.expect("CreditGranted")
    h.call("bob", "abort_stream", "bob aborts", stream_id=sid, reason="enough")
    h.expect("StreamAborted")
    h.call(
        "alice", "send_chunk", "alice sends on the aborted stream: 4044", stream_id=sid, data="01"
    )
    h.expect("StreamAborted")
    for n, (note, step) in enumerate(
        (
            ("alice sends 17 bytes, one past the window: 4093 OVER_CREDIT", "chunk"),
            ("bob leaves: 4046 STREAM_PEER_LEFT", "disable"),
        )
    ):
        h.call("alice", "open_stream", "alice opens a stream to bob", to=bob, header={"n": n})
        h.call("bob", "accept_stream", "bob accepts", stream_id=_last_id(mv, h))
        if step == "chunk":
            h.call("alice", "send_chunk", note, stream_id=_last_id(mv, h), data="00" * 17)
        else:
            h.call("bob", "disable", note)
        h.expect("StreamAborted", *(("ParticipantRemoved",) if step == "disable" else ()))
    return h.vector(
        "As reader: StreamOffered, then ChunkReceived per chunk (with its header) and"
        " StreamEnded. As writer: the open's RequestAcked carries the stream id, the reader's"
        " grants arrive as CreditGranted, its abort as StreamAborted (4045); a chunk for a"
        " stream gone (4044), one past the credit (4093) and a reader that leaves (4046) are"
        " StreamAborted too."
    )


def register(vector: Callable[[Callable[[], JSON]], object], mv: ModuleType) -> None:
    """Register this module's vectors with make_vectors' ``vector`` (``mv`` is that module)."""
    for make in (server_calls, client_calls, server_streams, client_streams):
        vector(functools.update_wrapper(functools.partial(make, mv), make))
