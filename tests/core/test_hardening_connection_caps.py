"""Issue 13, finding 1 (the core's part): connection caps. A connection over
``max_connections`` or ``max_connections_per_address`` is closed at once with 3005
TOO_MANY_CONNECTIONS (a retryable close); the ones already open are unaffected, and a closed
connection frees its place."""

from __future__ import annotations

import pytest

from roomwire import Code, RoomServer, ServerConnection, State

from .helpers import decode_frames, server_config, token


def refused(connection: ServerConnection) -> str | None:
    """The reason of a TOO_MANY_CONNECTIONS refusal, its only output; None if not refused."""
    frames = decode_frames(connection.data_to_send())
    if connection.state is not State.CLOSED or len(frames) != 1:
        return None
    close = frames[0]
    return close["reason"] if close["t"] == "close" and close["code"] == 3005 else None


def test_over_max_connections_is_closed_at_once_and_a_closed_one_frees_its_place() -> None:
    server = RoomServer(server_config(max_connections=2))
    a, b = server.accept("a", 0.0), server.accept("b", 0.0)
    c = server.accept("c", 0.0)
    assert refused(c) == "the server holds its maximum of 2 connections"
    assert a.state is State.HANDSHAKE
    assert b.state is State.HANDSHAKE
    assert server.connection_count == 2
    assert server.stats.closes == {Code.TOO_MANY_CONNECTIONS: 1}
    assert Code.TOO_MANY_CONNECTIONS.info.retry
    a.receive_data(b"")  # a's peer hangs up
    a.next_event(0.0)
    assert server.accept("d", 0.0).state is State.HANDSHAKE
    assert refused(server.accept("e", 0.0))


def test_per_address_cap_counts_each_address_apart() -> None:
    server = RoomServer(server_config(max_connections_per_address=2))
    first = [server.accept(("x", n), 0.0, address="10.0.0.1") for n in range(2)]
    assert refused(server.accept(("x", 2), 0.0, address="10.0.0.1")) == (
        "10.0.0.1 holds its maximum of 2 connections"
    )
    assert server.accept("y", 0.0, address="10.0.0.2").state is State.HANDSHAKE
    assert server.accept("unknown", 0.0).state is State.HANDSHAKE  # no address: no per-address cap
    first[0].receive_data(b"")
    first[0].next_event(0.0)
    again = server.accept(("x", 3), 0.0, address="10.0.0.1")
    assert again.state is State.HANDSHAKE
    assert refused(server.accept(("x", 4), 0.0, address="10.0.0.1"))
    for connection in (first[1], again):
        connection.receive_data(b"")
        connection.next_event(0.0)
    assert all(server.accept(("x", n), 0.0, address="10.0.0.1").state is State.HANDSHAKE
               for n in (5, 6))  # fmt: skip


def test_a_refused_connection_never_authenticates() -> None:
    server = RoomServer(server_config(max_connections=1))
    server.accept("a", 0.0)
    c = server.accept("c", 0.0)
    c.receive_data(b"\x00\x00\x00\x05" + token().encode()[:5])
    assert c.next_event(0.0).code is Code.TOO_MANY_CONNECTIONS  # type: ignore[union-attr]


@pytest.mark.parametrize("field", ["max_connections", "max_connections_per_address"])
@pytest.mark.parametrize("value", [0, -1])
def test_caps_must_be_positive(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        server_config(**{field: value})
