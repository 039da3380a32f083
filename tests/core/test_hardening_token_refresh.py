"""Issue 13, finding 5 (the core): a token's ``exp`` holds while connected. The server
closes with TOKEN_EXPIRED at ``exp`` unless a ``refresh`` with a token for the same room,
name, role and grants moved it; a refused refresh is a TOKEN_REFUSED error and changes
nothing."""

from __future__ import annotations

import pytest

from roomwire import Code, InvalidRequest, State
from roomwire.events import ConnectionClosed, RequestAcked, RequestRefused

from .helpers import Room, token


def refresh(room: Room, name: str, new: str) -> RequestAcked | RequestRefused:
    peer = room.peers[name]
    rid = peer.client.refresh_token(new)
    room.pump()
    (reply,) = [e for e in peer.take() if getattr(e, "request_id", None) == rid]
    assert isinstance(reply, RequestAcked | RequestRefused)
    return reply


def expiring_room(exp: float) -> Room:
    room = Room()
    room.join("alice", tok=token(name="alice", expires_at=exp))
    return room


def closed_with(room: Room, name: str) -> Code | None:
    closes = [e for e in room.peers[name].take() if isinstance(e, ConnectionClosed)]
    return closes[0].code if closes else None


def test_the_connection_closes_at_exp_without_a_refresh() -> None:
    room = expiring_room(1020.0)
    room.peers["alice"].client.enable()
    room.pump()
    room.advance(19.5)
    assert room.peers["alice"].server.state is State.ENABLED
    room.advance(0.5)
    assert closed_with(room, "alice") is Code.TOKEN_EXPIRED
    assert Code.TOKEN_EXPIRED in room.server.stats.closes


def test_a_refresh_moves_the_deadline_to_the_new_exp() -> None:
    room = expiring_room(1020.0)
    reply = refresh(room, "alice", token(name="alice", expires_at=1030.0))
    assert isinstance(reply, RequestAcked)
    assert room.peers["alice"].server.token.expires_at == 1030.0  # type: ignore[union-attr]
    room.advance(20)
    assert room.peers["alice"].server.state is State.OPEN
    room.advance(10)
    assert closed_with(room, "alice") is Code.TOKEN_EXPIRED


def test_a_refresh_without_exp_removes_the_deadline() -> None:
    room = expiring_room(1020.0)
    assert isinstance(refresh(room, "alice", token(name="alice")), RequestAcked)
    for _ in range(40):
        room.advance(5)  # pings answered, never expired
    assert closed_with(room, "alice") is None
    assert room.peers["alice"].server.state is State.OPEN


@pytest.mark.parametrize(
    ("new", "reason"),
    [
        (token(name="mallory", expires_at=1100.0), "same room, name, role and grants"),
        (token(room="elsewhere", name="alice", expires_at=1100.0), "same room"),
        (token(name="alice", role="admin", expires_at=1100.0), "same room"),
        (token(name="alice", can_send=False, expires_at=1100.0), "same room"),
        (token(name="alice", expires_at=900.0), "expired"),
        ("not-a-jwt", "not valid"),
    ],
)
def test_a_refused_refresh_keeps_the_old_deadline(new: str, reason: str) -> None:
    room = expiring_room(1020.0)
    reply = refresh(room, "alice", new)
    assert isinstance(reply, RequestRefused)
    assert reply.code is Code.TOKEN_REFUSED
    assert reason in reply.reason
    assert room.peers["alice"].server.state is State.OPEN
    room.advance(20)
    assert closed_with(room, "alice") is Code.TOKEN_EXPIRED


def test_refresh_is_a_request_after_the_welcome_only() -> None:
    room = Room()
    peer = room.join("alice")
    with pytest.raises(InvalidRequest):
        peer.client.refresh_token(b"bytes")  # type: ignore[arg-type]
    peer.client.close()
    with pytest.raises(Exception, match="cannot refresh the token"):
        peer.client.refresh_token(token(name="alice"))
