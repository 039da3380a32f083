"""RoomServer: the handshake, authentication, protocol errors and the server's own doors
(accept, connection, participants, close)."""

from __future__ import annotations

import tracemalloc
from typing import Any

import jwt
import pytest

from roomwire import (
    PROTOCOL_VERSION,
    Code,
    LocalProtocolError,
    ParticipantToken,
    RemoteProtocolError,
    RoomServer,
    State,
    TokenError,
)
from roomwire.events import (
    Connected,
    ConnectionClosed,
    Limits,
    ParticipantJoined,
    ParticipantRemoved,
    RemoteParticipant,
)

from .helpers import SECRET, RawPeer, Room, raw_peer, server_config, token


def hello(tok: str, **extra: Any) -> dict[str, Any]:
    return {"t": "hello", "v": PROTOCOL_VERSION, "token": tok, **extra}


def fail(peer: RawPeer, now: float) -> RemoteProtocolError:
    """Process the peer's queued frames; the server must raise, with a close frame queued."""
    data = peer.client.data_to_send()
    peer.server.receive_data(data)
    with pytest.raises(RemoteProtocolError) as caught:
        peer.server.next_event(now)
    assert peer.server.state is State.CLOSED
    return caught.value


def close_frame(peer: RawPeer) -> dict[str, Any]:
    frames = peer.client.take()
    assert frames[-1]["t"] == "close"
    return frames[-1]


def test_handshake_welcomes_with_identity_limits_and_heartbeat() -> None:
    room = Room(max_recipients=7, heartbeat_interval=20.0, heartbeat_timeout=5.0)
    alice = room.join("alice", role="agent")
    [connected] = alice.take()
    me = RemoteParticipant(id="id1", name="alice", role="agent", attributes={})
    assert connected == Connected(
        participant=me,
        room="demo",
        limits=Limits(
            max_frame_size=1024 * 1024,
            max_send_size=1024 * 1024 - 1024,
            max_recipients=7,
            max_type_length=256,
            max_attributes_size=64 * 1024,
        ),
        heartbeat_interval=20.0,
        heartbeat_timeout=5.0,
    )
    assert alice.server_events == [ParticipantJoined(participant=me, room="demo")]
    assert (alice.server.participant, alice.server.room) == (me, "demo")
    assert alice.server.token == ParticipantToken(room="demo", name="alice", role="agent")
    assert alice.server.state is State.OPEN
    assert room.server.connection("alice") is alice.server


def test_identity_is_unknown_before_the_handshake() -> None:
    room = Room()
    quiet = raw_peer(room, "quiet", hello=False)
    assert (quiet.server.participant, quiet.server.token, quiet.server.room) == (None,) * 3
    assert quiet.server.connection_id == "quiet"
    assert quiet.client.take() == []


def test_hello_naming_the_token_room_is_accepted() -> None:
    room = Room()
    peer = room.join("alice", room_name="demo")
    assert [type(e) for e in peer.take()] == [Connected]


def test_wrong_version_is_refused() -> None:
    room = Room()
    peer = raw_peer(room, "old", hello=False)
    peer.client.send({**hello(token()), "v": PROTOCOL_VERSION + 1})
    room.pump()
    frame = close_frame(peer)
    assert frame["code"] == Code.UNSUPPORTED_VERSION
    assert str(PROTOCOL_VERSION + 1) in frame["reason"]
    assert set(peer.server_events) == {
        ConnectionClosed(code=Code.UNSUPPORTED_VERSION, reason=frame["reason"], by_peer=False)
    }
    assert room.server.connection("old") is None


@pytest.mark.parametrize(
    ("tok", "room_name", "code"),
    [
        pytest.param(
            ParticipantToken(room="demo", name="x", expires_at=999.0).to_jwt(SECRET),
            None,
            Code.TOKEN_EXPIRED,
            id="expired",
        ),
        pytest.param(
            ParticipantToken(room="demo", name="x").to_jwt("a-different-secret-" * 3),
            None,
            Code.TOKEN_BAD_SIGNATURE,
            id="wrong-key",
        ),
        pytest.param(
            jwt.encode({"room": "demo", "name": "x"}, None, algorithm="none"),
            None,
            Code.TOKEN_BAD_ALGORITHM,
            id="alg-none",
        ),
        pytest.param("garbage", None, Code.TOKEN_INVALID, id="garbage"),
        pytest.param(token("demo", "x"), "other", Code.ROOM_MISMATCH, id="other-room"),
    ],
)
def test_bad_tokens_are_refused_with_their_own_code(
    tok: str, room_name: str | None, code: Code
) -> None:
    room = Room()
    peer = room.join("x", tok=tok, room_name=room_name)
    closed = peer.of(ConnectionClosed)[0]
    assert (closed.code, closed.by_peer) == (code, True)
    assert closed.reason
    assert peer.server.state is State.CLOSED
    assert peer.server.participant is None
    assert room.server.participants("demo") == []


def test_a_still_valid_token_is_accepted_at_the_servers_now() -> None:
    room = Room()
    tok = ParticipantToken(room="demo", name="x", expires_at=1000.5).to_jwt(SECRET)
    assert [type(e) for e in room.join("x", tok=tok).take()] == [Connected]


def test_custom_authenticator_sees_token_and_now() -> None:
    seen: list[tuple[str, float]] = []

    def authenticate(tok: str, now: float) -> ParticipantToken:
        seen.append((tok, now))
        if tok == "let-me-in":
            return ParticipantToken(room="lobby", name="guest", can_broadcast=False)
        raise TokenError("unknown ticket", Code.TOKEN_EXPIRED)

    room = Room(secret=None, authenticator=authenticate)
    guest = room.join("guest", tok="let-me-in")
    stranger = room.join("stranger", tok="who-knows")
    assert seen == [("let-me-in", 1000.0), ("who-knows", 1000.0)]
    [connected] = guest.take()
    assert (connected.room, connected.participant.name) == ("lobby", "guest")
    assert guest.server.token is not None
    assert guest.server.token.can_broadcast is False
    closed = stranger.of(ConnectionClosed)[0]
    assert (closed.code, closed.reason) == (Code.TOKEN_EXPIRED, "unknown ticket")


def test_handshake_timeout_closes_a_silent_connection() -> None:
    room = Room(handshake_timeout=4.0)
    quiet = raw_peer(room, "quiet", hello=False)
    assert room.server.next_deadline() == 1004.0
    room.advance(3.5)
    assert quiet.server.state is State.HANDSHAKE
    assert quiet.client.take() == []
    room.advance(0.5)
    assert close_frame(quiet)["code"] == Code.HANDSHAKE_TIMEOUT
    assert quiet.server_events[0].code is Code.HANDSHAKE_TIMEOUT
    assert room.server.next_deadline() is None


def test_a_second_hello_is_a_protocol_error() -> None:
    room = Room()
    peer = raw_peer(room, "twice")
    assert [f["t"] for f in peer.client.take()] == ["welcome"]
    peer.client.send(hello(token("demo", "twice")))
    error = fail(peer, room.now)
    assert (error.code, error.reason) == (Code.PROTOCOL_ERROR, "a second hello")
    room.pump()
    assert close_frame(peer) == {"t": "close", "code": Code.PROTOCOL_ERROR, "reason": error.reason}


@pytest.mark.parametrize(
    "frame",
    [
        {"t": "enable", "rid": 1},
        {"t": "disable", "rid": 1},
        {"t": "send", "rid": 1, "to": ["id1"], "type": "chat", "message": {}},
        {"t": "broadcast", "rid": 1, "type": "chat", "message": {}},
        {"t": "attrs", "rid": 1, "attributes": {}},
        {"t": "ping"},
        {"t": "pong"},
    ],
    ids=lambda frame: frame["t"],
)
def test_anything_but_hello_or_close_before_the_handshake_is_refused(
    frame: dict[str, Any],
) -> None:
    room = Room()
    peer = raw_peer(room, "eager", hello=False)
    peer.client.send(frame)
    error = fail(peer, room.now)
    assert error.code is Code.PROTOCOL_ERROR
    assert "before the handshake" in error.reason
    room.pump()
    assert close_frame(peer)["code"] == Code.PROTOCOL_ERROR


def test_a_close_during_the_handshake_is_answered() -> None:
    room = Room()
    peer = raw_peer(room, "shy", hello=False)
    peer.client.send({"t": "close", "code": Code.NORMAL, "reason": "changed my mind"})
    room.pump()
    assert peer.client.take() == [{"t": "close", "code": 1000, "reason": "changed my mind"}]
    assert peer.server_events[0] == ConnectionClosed(
        code=Code.NORMAL, reason="changed my mind", by_peer=True
    )


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(b"\x00\x00\x00\x02\xff\xff", Code.BAD_FRAME, id="not-cbor"),
        pytest.param(b"\x00\x00\x00\x01\x01", Code.BAD_FRAME, id="not-a-map"),
        pytest.param(b"\x00\x00\x00\x00", Code.BAD_FRAME, id="empty-frame"),
        pytest.param(b"\x00\x20\x00\x00", Code.FRAME_TOO_LARGE, id="too-large"),
    ],
)
def test_garbage_closes_with_a_code_and_leaves_others_alone(data: bytes, code: Code) -> None:
    room = Room(max_frame_size=4096)
    bob = room.enabled("bob")
    peer = raw_peer(room, "garbage")
    peer.client.send({"t": "enable", "rid": 1})
    room.pump()
    peer.client.take()
    peer.server.receive_data(data)
    with pytest.raises(RemoteProtocolError) as caught:
        peer.server.next_event(room.now)
    assert caught.value.code is code
    assert peer.server.state is State.CLOSED
    room.pump()
    assert close_frame(peer)["code"] == code
    assert [e.participant.id for e in bob.of(ParticipantRemoved)] == ["id2"]
    assert bob.client.state is State.ENABLED
    assert room.server.participants("demo") == [bob.server.participant]


def test_eof_before_the_hello_closes_quietly() -> None:
    room = Room()
    peer = raw_peer(room, "gone", hello=False)
    peer.server.receive_data(b"")
    room.pump()
    assert peer.server_events[0] == ConnectionClosed(
        code=Code.CONNECTION_LOST, reason="the transport closed", by_peer=True
    )
    assert peer.client.take() == []  # nobody to say goodbye to
    assert room.server.connection("gone") is None


def test_accept_refuses_an_id_in_use_until_it_is_closed() -> None:
    room = Room()
    room.join("alice")
    with pytest.raises(LocalProtocolError, match="already in use"):
        room.server.accept("alice", room.now)
    room.peers["alice"].client.close()
    room.pump()
    assert room.server.connection("alice") is None
    assert room.server.accept("alice", room.now).state is State.HANDSHAKE


def test_connection_and_participants_lookups() -> None:
    room = Room()
    alice = room.enabled("alice")
    room.join("bob")  # connected, messaging not enabled
    other = room.enabled("carol", room="other")
    assert room.server.connection("nobody") is None
    assert room.server.participants("demo") == [alice.server.participant]
    assert room.server.participants("other") == [other.server.participant]
    assert room.server.participants("empty") == []


def test_close_says_going_away_to_everyone() -> None:
    room = Room()
    alice, bob = room.enabled("alice"), room.enabled("bob")
    carol = room.join("carol")
    quiet = raw_peer(room, "quiet", hello=False)
    for peer in (alice, bob, carol):
        peer.take()
    room.server.close()
    room.pump()
    for peer in (alice, bob, carol):
        closed = peer.of(ConnectionClosed)[0]
        assert (closed.code, closed.by_peer) == (Code.GOING_AWAY, True)
        assert closed.reason == "server shutting down"
    assert close_frame(quiet)["code"] == Code.GOING_AWAY
    assert [room.server.connection(n) for n in ("alice", "bob", "carol", "quiet")] == [None] * 4
    assert room.server.participants("demo") == []
    assert room.server.next_deadline() is None


def test_close_with_a_custom_code_and_reason() -> None:
    room = Room()
    alice = room.join("alice")
    room.server.close(Code.NORMAL, "maintenance")
    room.pump()
    closed = alice.of(ConnectionClosed)[0]
    assert (closed.code, closed.reason) == (Code.NORMAL, "maintenance")


def test_a_closed_connection_releases_its_receive_buffer_at_once() -> None:
    server = RoomServer(server_config())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for cid in range(10):
            conn = server.accept(cid, 0.0)
            # A 1 MiB frame of nested arrays: refused, with its bytes still buffered.
            conn.receive_data(b"\x00\x10\x00\x00" + b"\x81" * 0x100000)
            with pytest.raises(RemoteProtocolError):
                conn.next_event(0.0)
            conn.data_to_send()
        server.connections_with_output()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # Their stale timer entries still reference them, but they hold none of their 10 MiB.
    assert held < 1024 * 1024
