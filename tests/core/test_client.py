"""The client against a real RoomServer in memory: every verb and the events that answer it."""

from __future__ import annotations

import pytest

from roomwire import (
    NEED_DATA,
    PROTOCOL_VERSION,
    ClientConnection,
    Code,
    Limits,
    RemoteParticipant,
    RoomMessage,
    State,
)
from roomwire.events import (
    Connected,
    ConnectionClosed,
    MessageReceived,
    MessagingDisabled,
    MessagingEnabled,
    ParticipantAdded,
    ParticipantRemoved,
    ParticipantUpdated,
    RequestAcked,
    RequestRefused,
)

from .helpers import Room, decode_frames, token


def participant(pid: str, name: str, **attributes: object) -> RemoteParticipant:
    return RemoteParticipant(id=pid, name=name, role="user", attributes=attributes)


ALICE = participant("id1", "alice")
BOB = participant("id2", "bob")


@pytest.fixture
def room() -> Room:
    return Room(max_recipients=5, max_type_length=16, max_attributes_size=256)


LIMITS = Limits(
    max_frame_size=1024 * 1024,
    max_send_size=1024 * 1024 - 1024,
    max_recipients=5,
    max_type_length=16,
    max_attributes_size=256,
)


def test_before_the_welcome_only_the_asked_room_is_known(room: Room) -> None:
    tok = token()
    client = ClientConnection(token=tok, now=room.now, room="demo")
    assert decode_frames(client.data_to_send()) == [
        {"t": "hello", "v": PROTOCOL_VERSION, "token": tok, "room": "demo"}
    ]
    assert client.state is State.HANDSHAKE
    assert (client.room, client.local_participant, client.limits) == ("demo", None, None)
    assert client.remote_participants == []
    assert client.next_event(room.now) is NEED_DATA


def test_hello_without_a_room_leaves_the_room_to_the_token(room: Room) -> None:
    client = ClientConnection(token="t", now=0.0)
    assert client.room is None
    assert decode_frames(client.data_to_send()) == [
        {"t": "hello", "v": PROTOCOL_VERSION, "token": "t"}
    ]
    peer = room.join("alice")  # its hello names no room either
    assert peer.client.room == "demo"


def test_handshake_gives_connected_with_identity_limits_and_heartbeat(room: Room) -> None:
    peer = room.join("alice", room_name="demo")
    assert peer.take() == [
        Connected(
            participant=ALICE,
            room="demo",
            limits=LIMITS,
            heartbeat_interval=25.0,
            heartbeat_timeout=10.0,
        )
    ]
    client = peer.client
    assert client.state is State.OPEN
    assert client.local_participant == ALICE
    assert client.room == "demo"
    assert client.limits == LIMITS
    assert client.next_deadline() == room.now + 35.0


def test_enable_returns_the_snapshot_of_those_already_enabled(room: Room) -> None:
    room.enabled("alice")
    room.join("bob")  # connected, not enabled: not in anyone's presence
    carol = room.join("carol")
    carol.take()
    rid = carol.client.enable()
    assert carol.client.state is State.ENABLING
    room.pump()
    assert carol.take() == [MessagingEnabled(request_id=rid, participants=(ALICE,))]
    assert carol.client.state is State.ENABLED
    assert carol.client.remote_participants == [ALICE]
    assert carol.client.get_participant("id1") == ALICE
    assert carol.client.get_participant("id2") is None
    assert carol.client.get_participant_by_name("alice") == ALICE
    assert carol.client.get_participant_by_name("bob") is None


def test_presence_diffs_follow_enable_attributes_and_disable(room: Room) -> None:
    alice = room.enabled("alice")
    alice.take()
    bob = room.enabled("bob")
    assert alice.take() == [ParticipantAdded(participant=BOB, seq=2)]
    bob.client.set_attributes({"mood": "happy"})
    room.pump()
    updated = participant("id2", "bob", mood="happy")
    assert alice.take() == [ParticipantUpdated(participant=updated, seq=3)]
    assert alice.client.get_participant("id2") == updated
    bob.client.disable()
    room.pump()
    assert alice.take() == [ParticipantRemoved(participant=updated, seq=4)]
    assert alice.client.remote_participants == []


def test_enable_without_presence_sees_nobody_and_is_not_told_of_changes(room: Room) -> None:
    room.enabled("alice")
    bob = room.join("bob")
    bob.take()
    rid = bob.client.enable(presence=False)
    room.pump()
    assert bob.take() == [MessagingEnabled(request_id=rid, participants=())]
    room.enabled("carol")
    assert bob.take() == []
    assert bob.client.remote_participants == []
    # Still reachable: alice sees bob and can message him.
    alice = room.peers["alice"]
    alice.take()
    alice.client.send_message("id2", "chat", {"n": 1})
    room.pump()
    assert [type(e) for e in bob.take()] == [MessageReceived]


def test_send_to_one_id_is_acked_and_delivered_with_server_stamps(room: Room) -> None:
    alice, bob = room.enabled("alice"), room.enabled("bob")
    alice.take(), bob.take()
    room.now = 1234.5
    rid = alice.client.send_message("id2", "chat", {"text": "hi"}, attachment=b"\x00\x01")
    room.pump()
    assert alice.take() == [RequestAcked(request_id=rid, message_id="id3", recipients=1)]
    assert bob.take() == [
        MessageReceived(
            message=RoomMessage(
                id="id3",
                seq=3,
                timestamp=1234.5,
                from_participant_id="id1",
                type="chat",
                message={"text": "hi"},
                attachment=b"\x00\x01",
                broadcast=False,
            )
        )
    ]


@pytest.mark.parametrize("attachment", [bytearray(b"ab"), memoryview(b"ab")])
def test_send_to_a_list_reaches_each_named_recipient_only(
    room: Room, attachment: bytearray | memoryview
) -> None:
    alice, bob, carol = room.enabled("alice"), room.enabled("bob"), room.enabled("carol")
    dave = room.enabled("dave")
    for peer in (alice, bob, carol, dave):
        peer.take()
    rid = alice.client.send_message(["id2", "id3"], "chat", {}, attachment)
    room.pump()
    assert alice.of(RequestAcked) == [RequestAcked(request_id=rid, message_id="id5", recipients=2)]
    for peer in (bob, carol):
        (got,) = peer.of(MessageReceived)
        assert (got.message.id, got.message.attachment) == ("id5", b"ab")
        assert got.message.broadcast is False
    assert dave.take() == []


def test_broadcast_reaches_every_other_enabled_participant(room: Room) -> None:
    alice, bob, carol = room.enabled("alice"), room.enabled("bob"), room.enabled("carol")
    for peer in (alice, bob, carol):
        peer.take()
    rid = alice.client.broadcast_message("note", {"x": [1, 2.5, None, True]})
    room.pump()
    assert alice.take() == [RequestAcked(request_id=rid, message_id="id4", recipients=2)]
    for peer in (bob, carol):
        (got,) = peer.of(MessageReceived)
        assert got.message.broadcast is True
        assert got.message.message == {"x": [1, 2.5, None, True]}
        assert got.message.attachment is None
        assert got.message.from_participant_id == "id1"


def test_set_attributes_merges_and_none_deletes_once_acked(room: Room) -> None:
    alice = room.enabled("alice")
    alice.take()
    rid = alice.client.set_attributes({"a": 1, "b": {"c": "d"}})
    assert alice.client.local_participant.attributes == {}  # type: ignore[union-attr]
    room.pump()
    assert alice.take() == [RequestAcked(request_id=rid, message_id=None)]
    assert alice.client.local_participant == participant("id1", "alice", a=1, b={"c": "d"})
    alice.client.set_attributes({"a": None, "gone": None, "e": 2})
    room.pump()
    assert alice.client.local_participant == participant("id1", "alice", b={"c": "d"}, e=2)


def test_set_attributes_works_before_enable(room: Room) -> None:
    alice = room.join("alice")
    alice.take()
    rid = alice.client.set_attributes({"k": "v"})
    room.pump()
    assert alice.take() == [RequestAcked(request_id=rid, message_id=None)]
    assert alice.client.state is State.OPEN


def test_refusal_keeps_the_connection_open(room: Room) -> None:
    alice = room.enabled("alice")
    alice.take()
    rid = alice.client.send_message(["id9"], "chat", {})
    room.pump()
    (refused,) = alice.take()
    assert isinstance(refused, RequestRefused)
    assert (refused.request_id, refused.code) == (rid, Code.NOT_FOUND)
    assert "'id9'" in refused.reason
    assert alice.client.state is State.ENABLED


def test_refused_enable_returns_to_open_and_can_be_retried(room: Room) -> None:
    alice = room.join("alice", can_list=False)
    alice.take()
    rid = alice.client.enable()
    room.pump()
    (refused,) = alice.take()
    assert isinstance(refused, RequestRefused)
    assert (refused.request_id, refused.code) == (rid, Code.FORBIDDEN_LIST)
    assert alice.client.state is State.OPEN
    rid = alice.client.enable(presence=False)
    room.pump()
    assert alice.take() == [MessagingEnabled(request_id=rid, participants=())]


def test_disable_clears_presence_and_allows_enable_again(room: Room) -> None:
    room.enabled("alice")
    bob = room.enabled("bob")
    bob.take()
    rid = bob.client.disable()
    assert bob.client.state is State.DISABLING
    room.pump()
    assert bob.take() == [MessagingDisabled(request_id=rid)]
    assert bob.client.state is State.OPEN
    assert bob.client.remote_participants == []
    bob.client.enable()
    room.pump()
    assert bob.client.remote_participants == [ALICE]


def test_deliveries_in_flight_during_disable_still_arrive(room: Room) -> None:
    alice, bob = room.enabled("alice"), room.enabled("bob")
    alice.take(), bob.take()
    alice.client.send_message("id2", "chat", {})
    bob.client.disable()  # the server routes alice's send before it reads bob's disable
    room.pump()
    assert [type(e) for e in bob.take()] == [MessageReceived, MessagingDisabled]


def test_pings_are_answered_and_keep_both_sides_alive(room: Room) -> None:
    alice = room.enabled("alice")
    alice.take()
    for _ in range(4):
        room.advance(25.0)
        assert alice.client.next_deadline() == room.now + 35.0
    assert alice.take() == []
    assert alice.client.state is State.ENABLED
    assert room.server.participants("demo") == [ALICE]


def test_clean_close_from_the_client(room: Room) -> None:
    alice = room.enabled("alice")
    alice.take()
    alice.client.close(Code.GOING_AWAY, "bye")
    assert alice.client.state is State.CLOSING
    room.pump()
    # The harness drains a closed client every round: the same event comes back each time.
    assert set(alice.take()) == {
        ConnectionClosed(code=Code.GOING_AWAY, reason="bye", by_peer=False)
    }
    assert alice.client.state is State.CLOSED
    assert alice.client.next_deadline() is None
    assert alice.client.data_to_send() == b""
    assert alice.server_events[-1] == ConnectionClosed(
        code=Code.GOING_AWAY, reason="bye", by_peer=True
    )
    assert room.server.participants("demo") == []


def test_clean_close_from_the_server_is_echoed(room: Room) -> None:
    alice = room.enabled("alice")
    alice.take()
    room.server.close(Code.GOING_AWAY, "maintenance")
    (conn,) = room.server.connections_with_output()
    alice.client.receive_data(conn.data_to_send())
    closed = ConnectionClosed(code=Code.GOING_AWAY, reason="maintenance", by_peer=True)
    assert alice.client.next_event(room.now) == closed
    assert decode_frames(alice.client.data_to_send()) == [
        {"t": "close", "code": 1001, "reason": "maintenance"}
    ]
    assert alice.client.next_event(room.now) == closed


def test_duplicate_recipients_count_once_and_receive_once() -> None:
    room = Room(max_recipients=2)
    alice, bob = room.enabled("alice"), room.enabled("bob")
    assert bob.client.local_participant is not None
    bob_id = bob.client.local_participant.id
    alice.client.send_message([bob_id] * 5, "chat", {"n": 1})
    room.pump()
    assert [e.message.message for e in bob.of(MessageReceived)] == [{"n": 1}]
