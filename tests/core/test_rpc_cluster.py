"""Participant RPC across backplane nodes (PROTOCOL.md §24.5): the call, its result and its
cancel travel as room records; a remote callee's departure, or its node's silence, fails the
call at once; records that no node could have sent are refused."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from roomwire import Code, RemoteProtocolError, RoomServer
from roomwire.events import CallAnswered, CallCancelled, CallFailed, CallReceived, RequestRefused

from .helpers import server_config
from .test_backplane import Cluster, cluster, peers, record

__all__ = ["cluster"]  # the fixture, found by pytest here


def only(peer: Any, kind: type) -> Any:
    events = peer.take()
    found = [e for e in events if isinstance(e, kind)]
    assert len(found) == 1, events
    return found[0]


def called(cluster: Cluster) -> tuple[int, str]:
    """alice (n1) calls bob (n2); the rid and the call id bob got."""
    alice, bob, _, _ = peers(cluster)
    rid = alice.client.call("n2-1", "tool.add", {"a": 1}, b"\x01")
    cluster.settle()
    asked = only(bob, CallReceived).call
    assert (asked.from_participant_id, asked.type, asked.attachment) == (
        "n1-1",
        "tool.add",
        b"\x01",
    )
    return rid, asked.id


def test_a_call_to_another_node_is_answered(cluster: Cluster) -> None:
    alice, bob, carol, dave = peers(cluster)
    rid, call_id = called(cluster)
    bob.client.answer(call_id, {"sum": 2}, b"\x02")
    cluster.settle()
    answered = only(alice, CallAnswered)
    assert answered.request_id == rid
    assert (answered.reply.message, answered.reply.attachment) == ({"sum": 2}, b"\x02")
    assert answered.reply.from_participant_id == "n2-1"
    assert carol.take() == []
    assert dave.take() == []
    bob.client.answer(call_id, {})  # answered already: bob alone is refused
    cluster.settle()
    assert only(bob, RequestRefused).code is Code.CALL_NOT_FOUND
    assert alice.take() == []


def test_an_error_answer_crosses_nodes(cluster: Cluster) -> None:
    alice, bob, _, _ = peers(cluster)
    rid, call_id = called(cluster)
    bob.client.fail_call(call_id, -7, "no")
    cluster.settle()
    assert only(alice, CallFailed) == CallFailed(request_id=rid, code=-7, reason="no")


def test_a_cancel_crosses_nodes(cluster: Cluster) -> None:
    alice, bob, _, _ = peers(cluster)
    rid, call_id = called(cluster)
    alice.client.cancel_call(rid)
    cluster.settle()
    assert only(bob, CallCancelled).call_id == call_id
    assert only(alice, RequestRefused).code is Code.CALL_CANCELLED
    bob.client.answer(call_id, {})
    cluster.settle()
    assert only(bob, RequestRefused).code is Code.CALL_NOT_FOUND


@pytest.mark.parametrize("leave", ["close", "disable"])
def test_a_remote_callee_that_leaves_fails_the_call_at_once(cluster: Cluster, leave: str) -> None:
    alice, bob, _, _ = peers(cluster)
    rid, _ = called(cluster)
    getattr(bob.client, leave)()
    cluster.settle()
    refused = only(alice, RequestRefused)
    assert (refused.request_id, refused.code) == (rid, Code.CALLEE_LEFT)


def test_a_remote_caller_that_leaves_cancels_its_calls(cluster: Cluster) -> None:
    alice, bob, _, _ = peers(cluster)
    _, call_id = called(cluster)
    alice.client.close()
    cluster.settle()
    assert only(bob, CallCancelled).call_id == call_id


def test_a_silent_node_fails_and_cancels_the_calls_it_had_a_part_in(cluster: Cluster) -> None:
    alice, _bob, carol, dave = peers(cluster)
    rid, _ = called(cluster)
    dave.client.call("n1-2", "t", {})  # dave (n2) calls carol (n1)
    cluster.settle()
    from_dave = only(carol, CallReceived).call.id
    n1 = cluster.n1
    for node in cluster.nodes():
        node.server.handle_timer(node.now)  # first heartbeats
    cluster.settle()
    n1.now += 30.0
    n1.server.handle_timer(n1.now)  # n2 silent past the TTL
    n1.pump()
    refused = only(alice, RequestRefused)
    assert (refused.request_id, refused.code) == (rid, Code.CALLEE_LEFT)
    assert refused.reason == "the participant called is out of reach"
    assert only(carol, CallCancelled).call_id == from_dave


def test_losing_the_backplane_ends_calls_across_nodes(cluster: Cluster) -> None:
    alice, _bob, carol, _dave = peers(cluster)
    called(cluster)
    carol.client.call("n1-1", "local", {})  # carol calls alice, on the same node: untouched
    cluster.settle()
    local = only(alice, CallReceived).call.id
    cluster.n1.server.backplane_lost(cluster.n1.now)
    cluster.n1.pump()
    assert only(alice, RequestRefused).code is Code.CALLEE_LEFT
    alice.client.answer(local, {"ok": 1})
    cluster.n1.pump()
    assert only(carol, CallAnswered).reply.message == {"ok": 1}


GOOD_CALL = record("call", id="n2-9", to="n1-1", ts=1.0, type="t", message={}) | {"from": "n2-1"}
GOOD_RESULT = record("result", id="n2-9", ts=1.0, type="t", message={}) | {"from": "n2-1"}


@pytest.mark.parametrize(
    "bad",
    [
        {**GOOD_CALL, "to": 1},
        {**GOOD_CALL, "att": "text"},
        {**GOOD_CALL, "message": []},
        {**GOOD_CALL, "type": ""},
        {**GOOD_CALL, "ts": float("nan")},
        {**GOOD_CALL, "message": {"x": float("inf")}},
        {**GOOD_CALL, "message": {"x": "y" * 1_100_000}},
        {**GOOD_RESULT, "code": "x", "reason": "r"},
        {**GOOD_RESULT, "code": 2**70, "reason": "r"},
        {**GOOD_RESULT, "message": None},
        {**GOOD_RESULT, "from": None},
        record("cancel"),
    ],
)
def test_rpc_records_no_node_could_send_are_refused(cluster: Cluster, bad: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        cluster.n1.server.receive_backplane(cbor2.dumps(bad), 0.0)
    assert caught.value.code is Code.BAD_FRAME


def test_stray_rpc_records_change_nothing(cluster: Cluster) -> None:
    alice, _bob, carol, _dave = peers(cluster)
    server = cluster.n1.server
    rid, call_id = called(cluster)
    local_rid = carol.client.call("n1-1", "local", {})
    cluster.settle()
    local = only(alice, CallReceived).call.id
    for stray in (
        {**GOOD_CALL, "to": "n2-2"},  # for a participant of another node
        {**GOOD_RESULT, "id": "unknown"},
        {**GOOD_RESULT, "id": local},  # a call with both ends here is answered here only
        record("cancel", id="unknown"),
        record("cancel", id=call_id),  # alice's own call: its callee is not here
    ):
        server.receive_backplane(cbor2.dumps(stray), 0.0)
    assert server.connections_with_output() == []
    # A result for alice's call from bob's node is delivered once, a second one dropped.
    result = {**GOOD_RESULT, "id": call_id, "code": 5, "reason": "r"}
    server.receive_backplane(cbor2.dumps(result), 0.0)
    server.receive_backplane(cbor2.dumps(result), 0.0)
    cluster.n1.pump()
    assert only(alice, CallFailed) == CallFailed(request_id=rid, code=5, reason="r")
    alice.client.answer(local, {})
    cluster.n1.pump()
    assert only(carol, CallAnswered).request_id == local_rid


def test_a_record_whose_frame_would_outgrow_the_frame_limit_is_refused() -> None:
    # Half floats are 3 bytes in the record, 9 in the frame the callee would get.
    server = RoomServer(server_config(node_id="n1", max_frame_size=4096))
    grown = {**GOOD_CALL, "message": {"f": [1.5] * 1200}}
    data = cbor2.dumps(grown, canonical=True)  # the shortest floats: halves
    assert len(data) < 4096
    with pytest.raises(RemoteProtocolError, match="would make a frame over max_frame_size"):
        server.receive_backplane(data, 0.0)
