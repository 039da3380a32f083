"""Finding 4: nothing read from the backplane is believed unchecked. Records over the limits a
client is held to are refused before they touch state, and with a cluster key only records
signed with it are applied."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import cbor2
import pytest

from roomwire import Code, RemoteProtocolError
from roomwire.events import MessageReceived

from .helpers import Room
from .test_backplane import GOOD_MSG, Cluster, participant, prefixed_ids, record

KEY = b"k" * 32


def nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


MIB = 1024 * 1024


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(cbor2.dumps({**GOOD_MSG, "type": ""}), id="type-empty"),
        pytest.param(cbor2.dumps({**GOOD_MSG, "type": "x" * 257}), id="type-too-long"),
        pytest.param(cbor2.dumps({**GOOD_MSG, "to": []}), id="to-empty"),
        pytest.param(cbor2.dumps({**GOOD_MSG, "to": ["a"] * 1001}), id="to-too-many"),
        pytest.param(cbor2.dumps({**GOOD_MSG, "ts": float("nan")}), id="ts-nan"),
        pytest.param(cbor2.dumps({**GOOD_MSG, "message": {"b": b"x"}}), id="message-bytes"),
        pytest.param(
            cbor2.dumps({**GOOD_MSG, "message": {"a": nested(31)}}), id="message-too-deep"
        ),
        pytest.param(
            cbor2.dumps({**GOOD_MSG, "message": {"a": "x" * (MIB + 1)}}), id="record-over-frame"
        ),
        pytest.param(
            # Half floats, 3 bytes each here, 9 each in the delivery: 600 KB becomes 1.8 MB.
            cbor2.dumps({**GOOD_MSG, "message": {"f": [1.5] * 200_000}}, canonical=True),
            id="delivery-over-frame",
        ),
        pytest.param(
            cbor2.dumps(record("join", p=participant("n2-9", a=nested(29)))), id="attrs-deep"
        ),
        pytest.param(
            cbor2.dumps(record("join", p=participant("n2-9", a="x" * 64 * 1024))),
            id="attrs-too-large",
        ),
    ],
)
def test_records_over_the_limits_raise_and_change_nothing(data: bytes) -> None:
    cluster = Cluster()
    for node, name in ((cluster.n1, "alice"), (cluster.n2, "bob"), (cluster.n1, "carol")):
        cluster.enabled(node, name)
    cluster.quiet()
    server = cluster.n1.server
    before = server.participants("demo")
    with pytest.raises(RemoteProtocolError) as caught:
        server.receive_backplane(data, 0.0)
    assert caught.value.code is Code.BAD_FRAME
    assert server.participants("demo") == before
    assert server.connections_with_output() == []


def test_a_large_message_that_fits_a_frame_is_delivered() -> None:
    cluster = Cluster()
    alice = cluster.enabled(cluster.n1, "alice")
    cluster.enabled(cluster.n2, "bob")
    cluster.quiet()
    big = {**GOOD_MSG, "message": {"text": "x" * 400_000}}  # over a third of the frame
    cluster.n1.server.receive_backplane(cbor2.dumps(big), 0.0)
    cluster.n1.pump()
    assert [len(e.message.message["text"]) for e in alice.of(MessageReceived)] == [400_000]


class KeyedCluster(Cluster):
    def __init__(self, key: bytes = KEY) -> None:
        super().__init__()
        self.n1 = Room(node_id="n1", id_factory=prefixed_ids("n1"), backplane_key=KEY)
        self.n2 = Room(node_id="n2", id_factory=prefixed_ids("n2"), backplane_key=key.decode())


def signed(data: bytes, key: bytes = KEY) -> bytes:
    return hmac.digest(key, data, hashlib.sha256) + data


def test_signed_records_cross_a_keyed_cluster() -> None:
    cluster = KeyedCluster()
    alice = cluster.enabled(cluster.n1, "alice")
    bob = cluster.enabled(cluster.n2, "bob")
    assert [p.name for p in cluster.n1.server.participants("demo")] == ["alice", "bob"]
    assert all(len(r) > 32 for r in cluster.published)
    alice.take()
    bob.client.broadcast_message(type="hi", message={})
    cluster.settle()
    assert [e.message.type for e in alice.of(MessageReceived)] == ["hi"]
    # A signed record from outside (someone holding the key) is applied too.
    cluster.n1.server.receive_backplane(signed(cbor2.dumps(GOOD_MSG)), 0.0)
    cluster.n1.pump()
    assert [e.message.from_participant_id for e in alice.of(MessageReceived)] == ["n2-1"]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(cbor2.dumps(GOOD_MSG), id="unsigned"),
        pytest.param(signed(cbor2.dumps(GOOD_MSG), b"x" * 32), id="another-key"),
        pytest.param(signed(cbor2.dumps(GOOD_MSG))[:-1] + b"\x00", id="tampered"),
        pytest.param(b"", id="empty"),
        pytest.param(
            signed(cbor2.dumps(record("left", id="n2-1")), b"x" * 32), id="left-another-key"
        ),
    ],
)
def test_a_keyed_cluster_refuses_what_its_key_did_not_sign(data: bytes) -> None:
    cluster = KeyedCluster()
    alice = cluster.enabled(cluster.n1, "alice")
    cluster.enabled(cluster.n2, "bob")
    cluster.quiet()
    before = cluster.n1.server.participants("demo")
    with pytest.raises(RemoteProtocolError, match="not signed with this cluster's key"):
        cluster.n1.server.receive_backplane(data, 0.0)
    cluster.n1.pump()
    assert alice.take() == []
    assert cluster.n1.server.participants("demo") == before


def test_nodes_with_different_keys_do_not_hear_each_other() -> None:
    cluster = KeyedCluster(b"y" * 32)
    cluster.n1.enabled("alice")
    cluster.n2.enabled("bob")
    for node in cluster.nodes():
        node.pump()
    n2_records = cluster.n2.server.backplane_data_to_send()
    assert n2_records
    for data in n2_records:
        with pytest.raises(RemoteProtocolError):
            cluster.n1.server.receive_backplane(data, 0.0)
    assert [p.name for p in cluster.n1.server.participants("demo")] == ["alice"]
