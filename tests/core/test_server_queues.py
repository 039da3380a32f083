"""Each server connection owns its queue: taking one connection's output changes nothing for
another, and broadcasts coalesced in a shared batch still reach every recipient once each,
in room order, however the drains interleave."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from roomwire import State

from . import test_server_slow as slow
from .helpers import Peer, Room, decode_frames, feed

SENDERS = ("alice", "bob")
READERS = ("carol", "dave")


def room_of(*names: str) -> tuple[Room, dict[str, Peer]]:
    room = Room()
    peers = {name: room.enabled(name) for name in names}
    room.pump()
    return room, peers


def broadcast(room: Room, peer: Peer, n: int) -> None:
    peer.client.broadcast_message("chat", {"n": n})
    feed(room, peer)


def test_taking_one_connections_output_leaves_the_others_alone() -> None:
    room, peers = room_of("alice", *READERS)
    alice, carol, dave = peers["alice"], peers["carol"], peers["dave"]
    for n in range(3):
        broadcast(room, alice, n)
    waiting = dave.server.outbound_size
    assert waiting > 0
    first = carol.server.data_to_send()
    assert dave.server.outbound_size == waiting
    for n in range(3, 5):
        broadcast(room, alice, n)
    assert [f["message"]["n"] for f in decode_frames(first)] == [0, 1, 2]
    assert [f["message"]["n"] for f in decode_frames(carol.server.data_to_send())] == [3, 4]
    both = decode_frames(dave.server.data_to_send())
    assert [f["message"]["n"] for f in both] == [0, 1, 2, 3, 4]
    assert dave.server.outbound_size == carol.server.outbound_size == 0


def test_output_waits_until_the_driver_takes_it() -> None:
    room, peers = room_of("alice", *READERS)
    broadcast(room, peers["alice"], 0)
    with_output = room.server.connections_with_output()
    assert {c.connection_id for c in with_output} >= {"carol", "dave"}
    assert room.server.connections_with_output() == []
    # Listing connections takes nothing from them.
    assert decode_frames(peers["dave"].server.data_to_send())[0]["message"] == {"n": 0}


NAMES = ("alice", "bob", "carol", "dave")

op = st.one_of(
    st.tuples(st.just("broadcast"), st.sampled_from(NAMES)),
    st.tuples(st.just("send"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("refused"), st.sampled_from(NAMES)),
    st.tuples(st.just("attrs"), st.sampled_from(NAMES)),
    st.tuples(st.just("drain"), st.sampled_from(NAMES)),
)


def seen(frame: dict[str, Any], requests: dict[int, int]) -> tuple[Any, ...] | None:
    """What a peer's received frame stands for in the expected sequence (None: not tracked)."""
    if frame["t"] == "msg":
        return ("msg", frame["from"], frame["message"]["n"])
    if frame["t"] in ("ack", "error"):
        return (frame["t"], requests[frame["rid"]])
    return None


@settings(max_examples=80, deadline=None)
@given(ops=st.lists(op, max_size=40))
# A reply to a batch's recipient comes after the broadcasts before it, not after later ones.
@example(ops=[("broadcast", "alice"), ("refused", "bob"), ("broadcast", "alice")])
def test_every_queue_keeps_its_order_however_drains_interleave(
    ops: list[tuple[str, ...]],
) -> None:
    room, peers = room_of(*NAMES)
    ids = {name: peer.client.local_participant.id for name, peer in peers.items()}  # type: ignore[union-attr]
    got: dict[str, list[dict[str, Any]]] = {name: [] for name in NAMES}
    expected: dict[str, list[tuple[Any, ...]]] = {name: [] for name in NAMES}
    requests: dict[str, dict[int, int]] = {name: {} for name in NAMES}
    for n, (kind, who, *rest) in enumerate(ops):
        if kind == "drain":
            got[who].extend(decode_frames(peers[who].server.data_to_send()))
            continue
        client = peers[who].client
        # The sender's answer is queued before the message is routed (even to itself).
        expected[who].append(("error" if kind == "refused" else "ack", n))
        if kind == "broadcast":
            rid = client.broadcast_message("chat", {"n": n})
            for other in NAMES:
                if other != who:
                    expected[other].append(("msg", ids[who], n))
        elif kind == "send":
            rid = client.send_message(ids[rest[0]], "dm", {"n": n})
            expected[rest[0]].append(("msg", ids[who], n))
        elif kind == "refused":
            rid = client.send_message("nobody", "dm", {"n": n})
        else:
            rid = client.set_attributes({"n": n})
        requests[who][rid] = n
        feed(room, peers[who])
    for name in NAMES:
        got[name].extend(decode_frames(peers[name].server.data_to_send()))
        seqs = [frame["seq"] for frame in got[name] if "seq" in frame]
        assert seqs == sorted(set(seqs)), "frames out of room order, or twice"
        tracked = [seen(frame, requests[name]) for frame in got[name]]
        assert [t for t in tracked if t is not None] == expected[name]


def test_a_broadcast_closes_only_the_recipient_already_over_its_bound() -> None:
    room, [alice, bob, carol] = slow.room_of("alice", "bob", "carol")
    slow.fill_to(room, alice, carol, slow.LIMIT + 1)
    broadcast(room, alice, 0)
    assert carol.server.state is State.CLOSED
    assert bob.server.state is State.ENABLED
    frames = decode_frames(bob.server.data_to_send())
    assert [(f["t"], f.get("message")) for f in frames] == [("msg", {"n": 0}), ("left", None)]
