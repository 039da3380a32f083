"""The fuzz invariant for backplane records (the frame fuzz's oracle, applied to what a node
reads from Redis).

A record, whatever its bytes, is applied or refused with ``RemoteProtocolError`` (BAD_FRAME)
and nothing else; a refused record changes nothing; and whatever the node queues for its
clients afterwards is made of frames within ``max_frame_size`` that real clients accept: no
record read from the backplane can crash a node or make it send a frame its clients refuse.
"""

from __future__ import annotations

from typing import Any

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roomwire import Code, RemoteProtocolError
from roomwire.frames import HEADER, SERVER_FRAMES, check_frame, decode_payload

from ..core.helpers import Room, drain
from . import watchdog
from .test_fuzz import CBOR_VALUES, ENCODINGS, RAW_CBOR, dumps, mangled

MAX_FRAME = 4096
WATCHDOG_SECONDS = 2.0
ALICE_ID, BOB_ID = "n1-1", "n1-2"
SINCE = 1000.0
"""When node n1's service attached (the test room's clock)."""


def _participant(pid: str, **attributes: Any) -> dict[str, Any]:
    return {"id": pid, "name": pid, "role": "user", "attributes": attributes}


def _record_pool() -> list[dict[str, Any]]:
    """Valid records of every kind, from another node, and some from this one."""
    pool: list[dict[str, Any]] = [
        {"t": "hb", "n": "n2", "r": ""},
        {"t": "sync", "n": "n2", "r": "demo"},
        {"t": "sync", "n": "n1", "r": "demo"},
    ]
    for i, pid in enumerate(["n2-1", "n2-2", ALICE_ID]):
        base = {"n": "n2", "r": "demo"}
        pool += [
            {**base, "t": "join", "p": _participant(pid)},
            {**base, "t": "join", "p": _participant(pid, mood="x" * (i * 1500))},
            {**base, "t": "left", "id": pid},
            {
                **base,
                "t": "msg",
                "id": f"m{i}",
                "ts": 1000.5,
                "from": pid,
                "to": [[ALICE_ID], None, [BOB_ID, "ghost"]][i],
                "type": "chat",
                "message": {"text": "y" * (i * 1800)},
            },
        ]
    # Over the limits: a record over a frame, attributes too big for a presence frame, and
    # half floats that grow threefold when the delivery re-encodes them.
    msg = {"t": "msg", "n": "n2", "r": "demo", "id": "m9", "ts": 1.0, "from": "n2-1"}
    pool += [
        {**msg, "to": None, "type": "big", "message": {"text": "z" * MAX_FRAME}},
        {**msg, "to": None, "type": "halves", "message": {"f": [1.5] * 1200}},
        {"t": "join", "n": "n2", "r": "demo", "p": _participant("n2-3", a="x" * MAX_FRAME)},
    ]
    # Participant RPC (§24.5): calls to this node's participants, results and cancels of
    # calls that may or may not wait here, one over a frame.
    call = {"t": "call", "n": "n2", "r": "demo", "ts": 2.0, "from": "n2-1", "type": "f"}
    result = {"t": "result", "n": "n2", "r": "demo", "ts": 3, "from": "n2-1", "type": "f"}
    for i, pid in enumerate([ALICE_ID, BOB_ID, "ghost"]):
        pool += [
            {**call, "id": f"c{i}", "to": pid, "message": {"i": i}, "att": bytes(i)},
            {**result, "id": f"c{i}", "message": {}},
            {**result, "id": f"n1-{i + 3}", "code": -i, "reason": "no"},
            {"t": "cancel", "n": "n2", "r": "demo", "id": f"c{i}"},
        ]
    pool.append({**call, "id": "c9", "to": ALICE_ID, "message": {"text": "z" * MAX_FRAME}})
    # Services (§23.6): messages for this node's service (attached at SINCE), claims that
    # lose to it and one that wins, answers about messages of this node's.
    up = {"t": "svc_up", "n": "n2", "r": "demo", "since": SINCE, "ts": 4.0, "from": "n2-1"}
    for i, to in enumerate([None, [], [ALICE_ID, "ghost"]]):
        pool.append({**up, "id": f"u{i}", "to": to, "type": "chat", "message": {"i": i}})
    pool += [
        {**up, "id": "u8", "to": None, "type": "big", "message": {"text": "z" * MAX_FRAME}},
        {**up, "id": "u9", "since": 1.0, "to": None, "type": "t", "message": {}},
        {"t": "svc_on", "n": "n2", "r": "demo", "since": SINCE + 1},
        {"t": "svc_on", "n": "n2", "r": "demo", "since": SINCE - 1},
        {"t": "svc_off", "n": "n2", "r": "demo"},
        {"t": "svc_done", "n": "n2", "r": "demo", "id": "n1-5"},
        {"t": "svc_back", "n": "n2", "r": "demo", "id": "n1-6"},
    ]
    return pool


RECORDS = st.sampled_from(_record_pool())
GARBAGE = st.one_of(
    st.builds(dumps, RECORDS, ENCODINGS),
    st.builds(dumps, mangled(RECORDS), ENCODINGS),
    st.builds(dumps, CBOR_VALUES, ENCODINGS),
    RAW_CBOR,
    st.binary(max_size=64),
)


class Node:
    """Node n1 with alice and bob enabled and its room's service attached, whose clients
    read everything it sends them."""

    def __init__(self) -> None:
        self.room = Room(node_id="n1", max_frame_size=MAX_FRAME, id_factory=_ids())
        self.peers = [self.room.enabled("alice"), self.room.enabled("bob")]
        service = self.room.enabled("svc", intercept=True, hidden=True)
        service.client.attach_service()
        self.room.pump()
        self.peers.append(service)
        self.room.server.backplane_data_to_send()
        self.room.server.receive_backplane(cbor2.dumps({"t": "hb", "n": "n2", "r": ""}), 0.0)

    def feed(self, data: bytes) -> None:
        server = self.room.server
        before = server.participants("demo")
        refused: RemoteProtocolError | None = None
        try:
            server.receive_backplane(data, self.room.now)
        except RemoteProtocolError as exc:
            refused = exc
        if refused is not None:
            assert refused.code is Code.BAD_FRAME
            assert server.participants("demo") == before
            assert server.connections_with_output() == []
        for conn in server.connections_with_output():
            data = conn.data_to_send()
            for body in _bodies(data):
                assert len(body) <= MAX_FRAME
                check_frame(decode_payload(body), SERVER_FRAMES)
            peer = next(p for p in self.peers if p.server is conn)
            peer.client.receive_data(data)
            list(drain(peer.client, self.room.now))  # raises if a client refuses a frame


def _ids() -> Any:
    counter = iter(range(1, 1000))
    return lambda: f"n1-{next(counter)}"


def _bodies(data: bytes) -> list[bytes]:
    bodies, offset = [], 0
    while offset < len(data):
        (size,) = HEADER.unpack_from(data, offset)
        bodies.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return bodies


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(records=st.lists(GARBAGE | st.builds(dumps, RECORDS, ENCODINGS), max_size=6))
def test_garbage_records_into_a_node(records: list[bytes]) -> None:
    node = Node()
    with watchdog(WATCHDOG_SECONDS):
        for data in records:
            node.feed(data)
