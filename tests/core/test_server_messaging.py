"""RoomServer: enable / disable, direct and broadcast messages, refusals, stamps, order,
attributes and the interceptor seam."""

from __future__ import annotations

import math
from typing import Any

import attrs
import cbor2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from roomwire import NEED_DATA, ClientConfig, Code, InterceptedMessage, State
from roomwire.events import (
    AttributesChanged,
    ConnectionClosed,
    MessageReceived,
    MessageRouted,
    MessagingEnabled,
    ParticipantAdded,
    ParticipantEnabled,
    ParticipantUpdated,
    RemoteParticipant,
    RequestAcked,
    RequestRefused,
    RoomMessage,
)
from roomwire.frames import encode_frame

from .helpers import Peer, RawPeer, Room, drain, feed, raw_peer, token


def raw_enabled(room: Room, name: str, **grants: Any) -> RawPeer:
    """A hand-driven peer with messaging enabled (its enable used rid 0); everyone's events so
    far are consumed."""
    peer = raw_peer(room, name, tok=token("demo", name, **grants))
    peer.client.send({"t": "enable", "rid": 0})
    room.pump()
    assert [f["t"] for f in peer.client.take()] == ["welcome", "snapshot"]
    for other in room.peers.values():
        other.take()
    return peer


def ask(room: Room, peer: RawPeer, frame: dict[str, Any]) -> list[dict[str, Any]]:
    """Send one hand-built frame and return what the server sent back."""
    peer.client.send(frame)
    room.pump()
    return peer.client.take()


def received(peer: Peer) -> list[RoomMessage]:
    return [e.message for e in peer.of(MessageReceived)]


def routed(peer: Peer) -> list[MessageRouted]:
    return [e for e in peer.server_events if isinstance(e, MessageRouted)]


def quiet_room(*names: str, **config: Any) -> tuple[Room, list[Peer]]:
    """A room where ``names`` have messaging enabled and every event so far is consumed."""
    room = Room(**config)
    peers = [room.enabled(name) for name in names]
    for peer in peers:
        peer.take()
    return room, peers


# --- enable and disable ------------------------------------------------------------------


def test_enable_returns_a_snapshot_of_the_others() -> None:
    room, [alice, bob] = quiet_room("alice", "bob")
    carol = room.enabled("carol")
    enabled = carol.of(MessagingEnabled)
    assert enabled == [
        MessagingEnabled(
            request_id=1, participants=(alice.server.participant, bob.server.participant)
        )
    ]
    assert ParticipantEnabled(participant=carol.server.participant) in carol.server_events
    assert carol.server.state is State.ENABLED


def test_enable_without_presence_gets_no_snapshot_and_no_diffs() -> None:
    room, [alice] = quiet_room("alice")
    dave = room.join("dave", can_list=False)
    dave.client.enable(presence=False)
    room.pump()
    assert dave.of(MessagingEnabled) == [MessagingEnabled(request_id=1, participants=())]
    # Others see dave and can reach him, but he hears of nobody.
    assert [e.participant.name for e in alice.of(ParticipantAdded)] == ["dave"]
    erin = room.enabled("erin")
    assert [p.name for p in erin.of(MessagingEnabled)[0].participants] == ["alice", "dave"]
    erin.client.broadcast_message("hi", {})
    room.pump()
    [only] = dave.take()  # the message, and no word of erin's arrival
    assert isinstance(only, MessageReceived)
    assert only.message.from_participant_id == "id3"


def test_enable_with_presence_needs_the_list_grant() -> None:
    room, [alice] = quiet_room("alice")
    dave = room.join("dave", can_list=False)
    dave.take()
    dave.client.enable()
    room.pump()
    [refused] = dave.take()
    assert (refused.request_id, refused.code) == (1, Code.FORBIDDEN_LIST)
    assert dave.server.state is State.OPEN
    assert dave.client.state is State.OPEN
    assert room.server.participants("demo") == [alice.server.participant]
    assert alice.take() == []
    dave.client.enable(presence=False)  # still allowed, without presence
    room.pump()
    assert dave.of(MessagingEnabled) == [MessagingEnabled(request_id=2, participants=())]


@pytest.mark.parametrize(
    ("enabled", "frame", "what"),
    [
        (True, {"t": "enable", "rid": 5}, "enable while ENABLED"),
        (False, {"t": "disable", "rid": 5}, "disable while OPEN"),
        (False, {"t": "send", "rid": 5, "to": ["id1"], "type": "x", "message": {}}, "send"),
        (False, {"t": "broadcast", "rid": 5, "type": "x", "message": {}}, "broadcast"),
    ],
)
def test_requests_in_the_wrong_state_are_invalid_state(
    enabled: bool, frame: dict[str, Any], what: str
) -> None:
    room, [alice] = quiet_room("alice")
    peer = raw_enabled(room, "raw") if enabled else raw_peer(room, "raw")
    peer.client.take()
    [error] = ask(room, peer, frame)
    assert (error["t"], error["rid"], error["code"]) == ("error", 5, Code.INVALID_STATE)
    assert what in error["reason"]
    assert peer.server.state is (State.ENABLED if enabled else State.OPEN)
    assert received(alice) == []


def test_disable_acks_and_announces_the_departure() -> None:
    room, [alice, bob] = quiet_room("alice", "bob")
    bob.client.disable()
    room.pump()
    assert [type(e).__name__ for e in bob.take()] == ["MessagingDisabled"]
    assert [e.participant.id for e in alice.take()] == ["id2"]
    assert bob.server.state is State.OPEN
    assert room.server.participants("demo") == [alice.server.participant]
    bob.client.enable()  # and back again
    room.pump()
    assert [p.id for p in bob.of(MessagingEnabled)[0].participants] == ["id1"]


# --- sends ----------------------------------------------------------------------------


def test_send_to_one_delivers_a_stamped_message() -> None:
    room, [alice, bob, carol] = quiet_room("alice", "bob", "carol")
    room.now = 1234.5
    rid = alice.client.send_message("id2", "chat", {"text": "hi"}, attachment=b"\x01\x02")
    room.pump()
    assert alice.take() == [RequestAcked(request_id=rid, message_id="id4", recipients=1)]
    assert received(bob) == [
        RoomMessage(
            id="id4",
            seq=4,  # three joins came first
            timestamp=1234.5,
            from_participant_id="id1",
            type="chat",
            message={"text": "hi"},
            attachment=b"\x01\x02",
            broadcast=False,
        )
    ]
    assert carol.take() == []
    assert routed(alice) == [
        MessageRouted(message_id="id4", from_participant_id="id1", broadcast=False, recipients=1)
    ]


def test_send_to_many_and_to_duplicates_delivers_once_each() -> None:
    room, [alice, bob, carol, dave] = quiet_room("alice", "bob", "carol", "dave")
    alice.client.send_message(["id2", "id3", "id2"], "chat", {})
    room.pump()
    [bob_copy], [carol_copy] = received(bob), received(carol)
    assert bob_copy == carol_copy
    assert dave.take() == []
    assert routed(alice)[0].recipients == 2


def test_recipients_are_counted_after_removing_duplicates() -> None:
    room, [bob, carol] = quiet_room("bob", "carol", max_recipients=2)
    raw = raw_enabled(room, "raw")
    frame = {"t": "send", "rid": 1, "to": ["id1", "id2", "id1", "id1"], "type": "x", "message": {}}
    assert [f["t"] for f in ask(room, raw, frame)] == ["ack"]
    assert len(received(bob)) == len(received(carol)) == 1


def test_a_sender_cannot_spoof_its_stamps() -> None:
    room, [bob] = quiet_room("bob")
    mallory = raw_enabled(room, "mallory")
    frame = {"t": "send", "rid": 1, "to": ["id1"], "type": "chat", "message": {}}
    forged = {"from": "id1", "id": "forged", "seq": 999, "ts": 1.0, "bc": True}
    ack = {"t": "ack", "rid": 1, "id": "id3", "recipients": 1}
    assert ask(room, mallory, {**frame, **forged}) == [ack]
    [message] = received(bob)
    assert (message.from_participant_id, message.id, message.seq) == ("id2", "id3", 3)
    assert (message.timestamp, message.broadcast) == (1000.0, False)


def test_messages_from_one_sender_arrive_in_order() -> None:
    room, [alice, bob] = quiet_room("alice", "bob")
    rids = [alice.client.send_message("id2", "n", {"n": n}) for n in range(5)]
    room.pump()
    acks = alice.of(RequestAcked)
    assert [a.request_id for a in acks] == rids
    messages = received(bob)
    assert [m.message["n"] for m in messages] == list(range(5))
    assert [m.id for m in messages] == [a.message_id for a in acks]
    assert [m.seq for m in messages] == sorted({m.seq for m in messages})


def test_broadcasts_have_one_room_order_for_everyone() -> None:
    room, [alice, bob, carol, dave] = quiet_room("alice", "bob", "carol", "dave")
    for n in range(3):
        alice.client.broadcast_message("a", {"n": n})
        carol.client.broadcast_message("c", {"n": n})
    room.pump()
    seen_by_bob, seen_by_dave = received(bob), received(dave)
    assert len(seen_by_bob) == 6
    assert seen_by_bob == seen_by_dave
    assert all(m.broadcast for m in seen_by_bob)
    assert [m.seq for m in seen_by_bob] == sorted({m.seq for m in seen_by_bob})
    # Senders do not hear themselves, and hear the other in the room's order.
    assert received(alice) == [m for m in seen_by_bob if m.type == "c"]
    assert received(carol) == [m for m in seen_by_bob if m.type == "a"]
    assert [r.recipients for r in routed(alice)] == [3, 3, 3]


@pytest.mark.parametrize("how", ["unknown", "never-enabled", "disabled", "closed"])
def test_a_send_naming_anyone_absent_is_not_found_and_delivers_nothing(how: str) -> None:
    room, [alice, bob, carol] = quiet_room("alice", "bob", "carol")
    absent = "ghost"
    if how == "never-enabled":
        absent = room.join("dave").server.participant.id  # type: ignore[union-attr]
    elif how == "disabled":
        carol.client.disable()
        absent = "id3"
    elif how == "closed":
        carol.client.close()
        absent = "id3"
    room.pump()
    bob.take()
    rid = alice.client.send_message(["id2", absent], "chat", {})
    room.pump()
    refusals = alice.of(RequestRefused)
    assert [(r.request_id, r.code) for r in refusals] == [(rid, Code.NOT_FOUND)]
    assert repr(absent) in refusals[0].reason
    assert received(bob) == []
    assert routed(alice) == []


@pytest.mark.parametrize(
    ("grant", "verb", "code"),
    [
        ("can_send", "send", Code.FORBIDDEN_SEND),
        ("can_broadcast", "broadcast", Code.FORBIDDEN_BROADCAST),
    ],
)
def test_grants_gate_send_and_broadcast(grant: str, verb: str, code: Code) -> None:
    room, [bob] = quiet_room("bob")
    muted = room.enabled("muted", **{grant: False})
    muted.take()
    rids = {
        "send": muted.client.send_message("id1", "x", {"via": "send"}),
        "broadcast": muted.client.broadcast_message("x", {"via": "broadcast"}),
    }
    room.pump()
    events = muted.take()
    refusals = [e for e in events if isinstance(e, RequestRefused)]
    assert [(r.request_id, r.code) for r in refusals] == [(rids[verb], code)]
    assert [m.message["via"] for m in received(bob)] == [v for v in rids if v != verb]


# --- refusals of hand-built requests (the client would pre-check these) ---------------

LIMITS = {"max_frame_size": 4096, "max_type_length": 8, "max_recipients": 3}
SEND = {"t": "send", "rid": 7, "to": ["id1"], "type": "chat", "message": {}}
BROADCAST = {"t": "broadcast", "rid": 7, "type": "chat", "message": {}}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param({**SEND, "type": ""}, Code.INVALID_REQUEST, id="empty-type"),
        pytest.param({**BROADCAST, "type": "x" * 9}, Code.INVALID_REQUEST, id="long-type"),
        pytest.param({**SEND, "message": {"b": b"\x00"}}, Code.INVALID_REQUEST, id="bytes"),
        pytest.param({**SEND, "message": {"n": [1.0, math.nan]}}, Code.INVALID_REQUEST, id="nan"),
        pytest.param(
            {**BROADCAST, "message": {"x": {b"k": "bytes key"}}},
            Code.INVALID_REQUEST,
            id="bytes-key",
        ),
        pytest.param({**SEND, "to": []}, Code.INVALID_REQUEST, id="no-recipient"),
        pytest.param({**SEND, "to": ["a", "b", "c", "d"]}, Code.INVALID_REQUEST, id="too-many"),
        pytest.param({**SEND, "to": ["id1", "ghost"]}, Code.NOT_FOUND, id="absent"),
        pytest.param(
            {"t": "attrs", "rid": 7, "attributes": {"b": b"x"}}, Code.INVALID_REQUEST, id="attrs"
        ),
        pytest.param(
            {"t": "attrs", "rid": 7, "attributes": {"k": "x" * 80}},
            Code.TOO_LARGE,
            id="attrs-too-large",
        ),
    ],
)
def test_bad_requests_are_refused_and_the_connection_stays(
    frame: dict[str, Any], code: Code
) -> None:
    room, [bob] = quiet_room("bob", max_attributes_size=64, **LIMITS)
    raw = raw_enabled(room, "raw")
    [error] = ask(room, raw, frame)
    assert (error["t"], error["rid"], error["code"]) == ("error", 7, code)
    assert raw.server_events[-1] == RequestRefused(request_id=7, code=code, reason=error["reason"])
    assert raw.server.state is State.ENABLED
    assert bob.take() == []
    assert raw.server.participant is not None
    assert raw.server.participant.attributes == {}
    # The connection still works.
    assert ask(room, raw, BROADCAST)[0]["t"] == "ack"
    assert len(received(bob)) == 1


def sized(frame: dict[str, Any], size: int) -> dict[str, Any]:
    """``frame`` with a ``pad`` text in its message so that its CBOR is ``size`` bytes."""
    base = {**frame, "message": {"pad": "x" * 300}}
    padded = {**frame, "message": {"pad": "x" * (300 + size - len(cbor2.dumps(base)))}}
    assert len(cbor2.dumps(padded)) == size
    return padded


@pytest.mark.parametrize("frame", [SEND, BROADCAST], ids=["send", "broadcast"])
def test_frames_over_max_send_size_are_too_large(frame: dict[str, Any]) -> None:
    # Bob's client accepts no frame over 4096 bytes: a delivery must fit after stamping.
    room, [bob] = quiet_room("bob", client_config=ClientConfig(max_frame_size=4096), **LIMITS)
    raw = raw_enabled(room, "raw")
    limit = room.server.config.max_send_size
    assert limit == 3072
    [error] = ask(room, raw, sized(frame, limit + 1))
    assert (error["code"], error["reason"]) == (
        Code.TOO_LARGE,
        "3073-byte frame is over the 3072-byte limit",
    )
    assert bob.take() == []
    [ack] = ask(room, raw, sized(frame, limit))
    assert ack["t"] == "ack"
    [message] = received(bob)
    assert len(message.message["pad"]) > 2900


def test_type_of_max_length_is_accepted() -> None:
    room, [bob] = quiet_room("bob", **LIMITS)
    raw = raw_enabled(room, "raw")
    assert ask(room, raw, {**SEND, "type": "x" * 8})[0]["t"] == "ack"
    assert [m.type for m in received(bob)] == ["x" * 8]


# --- attributes ---------------------------------------------------------------------------


def test_attribute_updates_merge_and_reach_the_room() -> None:
    room, [alice, bob] = quiet_room("alice", "bob")
    first = alice.client.set_attributes({"mood": "ok", "x": 1})
    room.pump()
    assert alice.take() == [RequestAcked(request_id=first, message_id=None)]
    [updated] = bob.take()
    assert isinstance(updated, ParticipantUpdated)
    assert updated.participant.attributes == {"mood": "ok", "x": 1}
    alice.client.set_attributes({"x": None, "absent": None, "y": [1, 2]})
    room.pump()
    [updated] = bob.of(ParticipantUpdated)
    assert updated.participant.attributes == {"mood": "ok", "y": [1, 2]}
    assert alice.server_events[-1] == AttributesChanged(participant=updated.participant)
    assert room.server.participants("demo")[0] == updated.participant


def test_attributes_set_before_enable_show_up_on_enable() -> None:
    room, [alice] = quiet_room("alice")
    carol = room.join("carol")
    carol.client.set_attributes({"title": "host"})
    room.pump()
    assert alice.take() == []  # carol is not present yet
    assert room.server.participants("demo") == [alice.server.participant]
    carol.client.enable()
    room.pump()
    [added] = alice.of(ParticipantAdded)
    assert added.participant == RemoteParticipant(
        id="id2", name="carol", role="user", attributes={"title": "host"}
    )


def test_attributes_up_to_the_limit_are_accepted() -> None:
    room, [bob] = quiet_room("bob", max_attributes_size=64)
    raw = raw_enabled(room, "raw")
    attributes = {"k": "x" * 59}
    assert len(cbor2.dumps(attributes)) == 64
    assert ask(room, raw, {"t": "attrs", "rid": 3, "attributes": attributes}) == [
        {"t": "ack", "rid": 3}
    ]
    assert bob.of(ParticipantUpdated)[0].participant.attributes == attributes


def test_attributes_must_fit_a_presence_frame_whatever_max_attributes_size_says() -> None:
    # 64 KiB of attributes are allowed, but a frame holds 4096 bytes: every presence frame
    # and snapshot page must still fit what bob's client accepts.
    small = ClientConfig(max_frame_size=4096)
    room, [alice, bob] = quiet_room("alice", "bob", client_config=small, max_frame_size=4096)
    attributes = {"a": "x" * 2000, "b": ""}
    record = {"id": "id1", "name": "alice", "role": "user", "attributes": attributes}
    fitting = 4096 - 64 - len(cbor2.dumps(record)) - 2  # b's length header grows by 2
    alice.client.set_attributes({"a": "x" * 2000})  # one request is at most 3072 bytes
    alice.client.set_attributes({"b": "x" * fitting})
    room.pump()
    assert [type(e) for e in alice.take()] == [RequestAcked, RequestAcked]
    updated = bob.of(ParticipantUpdated)
    assert len(updated[-1].participant.attributes["b"]) == fitting
    alice.client.set_attributes({"c": 1})
    room.pump()
    [refused] = alice.of(RequestRefused)
    assert (refused.code, refused.reason) == (
        Code.TOO_LARGE,
        "attributes would not fit a 4096-byte presence frame",
    )
    assert bob.take() == []
    assert room.server.participants("demo")[0] == updated[-1].participant
    late = room.enabled("late")  # the snapshot page with alice's record fits too
    assert [p.name for p in late.of(MessagingEnabled)[0].participants] == ["alice", "bob"]


# --- the interceptor seam -------------------------------------------------------------


def evolve(**changes: Any) -> Any:
    return lambda message: attrs.evolve(message, **changes)


@pytest.mark.parametrize(
    ("interceptor", "bob_gets", "carol_gets", "recipients"),
    [
        pytest.param(lambda m: m, [("chat", {"text": "hi"})], [], 1, id="pass"),
        pytest.param(
            evolve(type="censored", message={"text": "***"}),
            [("censored", {"text": "***"})],
            [],
            1,
            id="rewrite",
        ),
        pytest.param(evolve(to=("id3", "ghost")), [], [("chat", {"text": "hi"})], 1, id="redirect"),
        pytest.param(
            evolve(to=None),
            [("chat", {"text": "hi"})],
            [("chat", {"text": "hi"})],
            2,
            id="to-everyone",
        ),
        pytest.param(lambda m: None, [], [], 0, id="drop"),
    ],
)
def test_interceptor_may_pass_rewrite_redirect_or_drop(
    interceptor: Any, bob_gets: list[Any], carol_gets: list[Any], recipients: int
) -> None:
    seen: list[InterceptedMessage] = []

    def spy(message: InterceptedMessage) -> InterceptedMessage | None:
        seen.append(message)
        return interceptor(message)  # type: ignore[no-any-return]

    room, [alice, bob, carol] = quiet_room("alice", "bob", "carol", interceptor=spy)
    rid = alice.client.send_message("id2", "chat", {"text": "hi"})
    room.pump()
    assert seen == [
        InterceptedMessage(
            room="demo",
            sender=alice.server.participant,  # type: ignore[arg-type]
            to=("id2",),
            type="chat",
            message={"text": "hi"},
            attachment=None,
        )
    ]
    # Acked even when dropped; the count is of the participants it was queued for.
    assert alice.take() == [RequestAcked(request_id=rid, message_id="id4", recipients=recipients)]
    assert [(m.type, m.message) for m in received(bob)] == bob_gets
    assert [(m.type, m.message) for m in received(carol)] == carol_gets
    assert routed(alice) == [
        MessageRouted(
            message_id="id4", from_participant_id="id1", broadcast=False, recipients=recipients
        )
    ]


STEPS = st.lists(st.sampled_from(["alice", "carol", "take-bob", "flush", "dave"]), max_size=40)


@settings(max_examples=150, deadline=None)
@given(steps=STEPS, sends=st.integers(1, 6))
def test_however_the_server_interleaves_connections_everyone_gets_the_room_order(
    steps: list[str], sends: int
) -> None:
    # The server joins a sender's consecutive broadcasts before queuing them: frames from
    # other connections, presence changes and direct reads of the output must still see
    # every frame in the room's order.
    room, [alice, bob, carol, dave] = quiet_room("alice", "bob", "carol", "dave")
    for n in range(sends):
        alice.client.broadcast_message("a", {"n": n})
        carol.client.broadcast_message("c", {"n": n})
        carol.client.send_message("id2", "c-to-bob", {"n": n})
    for sender in (alice, carol):
        sender.server.receive_data(sender.client.data_to_send())

    def step(peer: Peer) -> None:
        event = peer.server.next_event(room.now)
        if event is not NEED_DATA:
            peer.server_events.append(event)  # type: ignore[arg-type]

    def deliver(peer: Peer, data: bytes) -> None:
        if data:
            peer.client.receive_data(data)
            peer.events.extend(drain(peer.client, room.now))

    for name in steps:
        if name in ("alice", "carol"):
            step(alice if name == "alice" else carol)
        elif name == "take-bob":
            size = bob.server.outbound_size
            data = bob.server.data_to_send()
            assert len(data) == size
            deliver(bob, data)
        elif name == "flush":
            for conn in room.server.connections_with_output():
                deliver(room.peers[conn.connection_id], conn.data_to_send())  # type: ignore[index]
        else:  # dave leaves or comes back: presence changes in the middle of a batch
            if dave.client.state is State.ENABLED:
                dave.client.disable()
            elif dave.client.state is State.OPEN:
                dave.client.enable()
            if data := dave.client.data_to_send():
                dave.server.receive_data(data)
            step(dave)
    room.pump()
    seen = {peer: received(peer) for peer in (alice, bob, carol, dave)}
    for messages in seen.values():
        assert [m.seq for m in messages] == sorted({m.seq for m in messages})
    assert len(seen[bob]) == 3 * sends
    assert [m.message["n"] for m in seen[alice]] == list(range(sends))
    assert [m.message["n"] for m in seen[carol]] == list(range(sends))


def test_a_broadcast_the_interceptor_drops_reaches_nobody() -> None:
    room, [alice, bob, carol] = quiet_room("alice", "bob", "carol", interceptor=lambda m: None)
    alice.client.broadcast_message("chat", {"text": "hi"})
    room.pump()
    assert (received(bob), received(carol)) == ([], [])
    [event] = routed(alice)
    assert (event.broadcast, event.recipients) == (True, 0)


def test_closing_a_client_mid_room_is_seen_once() -> None:
    room, [alice, bob] = quiet_room("alice", "bob")
    bob.client.close()
    room.pump()
    assert set(bob.take()) == {ConnectionClosed(code=Code.NORMAL, reason="", by_peer=False)}
    assert [e.participant.id for e in alice.take()] == ["id2"]


def test_a_send_whose_delivery_would_outgrow_the_frame_limit_is_refused() -> None:
    # 1000 half-precision floats are 3 bytes each on the way in but 9 once the server
    # re-encodes them: the request fits max_send_size, its delivery would not fit a frame.
    room = Room(max_frame_size=4096)
    alice = raw_peer(room, "alice")  # a hand-written client: it sends what the test says
    alice.client.send({"t": "enable", "rid": 0})
    bob = room.enabled("bob")
    alice.client.take()
    floats = b"\xa1\x61f\x99" + (1000).to_bytes(2) + b"\xf9\x3e\x00" * 1000
    body = b"\xa4" + b"".join(
        cbor2.dumps(item) for item in ("t", "broadcast", "rid", 7, "type", "t", "message")
    )
    body += floats
    assert len(body) <= room.server.config.max_send_size
    alice.server.receive_data(len(body).to_bytes(4) + body)
    room.pump()
    [refused] = alice.client.take()
    assert (refused["t"], refused["rid"], refused["code"]) == ("error", 7, Code.TOO_LARGE)
    assert "the delivery would be 90" in refused["reason"]
    assert bob.of(MessageReceived) == []
    assert alice.server.state is State.ENABLED


class _FixedIds:
    """An id factory whose next id the test sets (message ids of any length and script)."""

    def __init__(self) -> None:
        self.next = "id"

    def __call__(self) -> str:
        return self.next


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rid=st.integers(0, 2**63 - 1),
    message_id=st.text(min_size=1, max_size=300),
)
@example(rid=23, message_id="a" * 23)
@example(rid=24, message_id="a" * 24)
@example(rid=255, message_id="é" * 128)
@example(rid=256, message_id="a" * 255)
@example(rid=65535, message_id="a" * 256)
@example(rid=65536, message_id="a")
@example(rid=2**32 - 1, message_id="a")
@example(rid=2**32, message_id="a")
@example(rid=2**63 - 1, message_id="a")
def test_the_ack_of_a_message_is_the_canonical_cbor_of_its_map(rid: int, message_id: str) -> None:
    # Acks of routed messages are written without cbor2: they must be the same bytes.
    ids = _FixedIds()
    room = Room(id_factory=ids)
    alice = raw_enabled(room, "alice")
    ids.next = message_id
    alice.client.send({"t": "broadcast", "rid": rid, "type": "t", "message": {}})
    feed(room, alice)
    ack = {"t": "ack", "rid": rid, "id": message_id, "recipients": 0}
    assert alice.server.data_to_send() == encode_frame(ack)
