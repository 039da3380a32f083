"""An in-memory room: one RoomServer and any number of ClientConnections, wired by hand.

Everything goes through the public API; time only moves when a test moves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from roomwire import (
    NEED_DATA,
    ClientConfig,
    ClientConnection,
    ParticipantToken,
    RoomServer,
    ServerConfig,
    ServerConnection,
    State,
)
from roomwire.events import ConnectionClosed, Event

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def token(room: str = "demo", name: str = "alice", **grants: Any) -> str:
    return ParticipantToken(room=room, name=name, **grants).to_jwt(SECRET)


class Ids:
    """Deterministic ids: p1, p2... are readable in assertions."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"id{self.n}"


def server_config(**overrides: Any) -> ServerConfig:
    overrides.setdefault("secret", SECRET)
    overrides.setdefault("id_factory", Ids())
    return ServerConfig(**overrides)


class Peer:
    """A client and its server-side connection, with the events each side produced."""

    def __init__(self, room: Room, name: str, tok: str, room_name: str | None) -> None:
        self.room = room
        self.client = ClientConnection(
            token=tok, now=room.now, room=room_name, config=room.client_config
        )
        self.server: ServerConnection = room.server.accept(name, room.now)
        self.events: list[Event] = []
        self.server_events: list[Event] = []

    def take(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.take() if isinstance(e, kind)]


class Room:
    """One server plus peers; ``pump`` moves bytes until nobody has anything to say."""

    def __init__(self, client_config: ClientConfig | None = None, **config: Any) -> None:
        self.now = 1000.0
        self.server = RoomServer(server_config(**config))
        self.client_config = client_config
        self.peers: dict[str, Peer] = {}

    def join(
        self, name: str, room: str = "demo", tok: str | None = None, room_name: str | None = None,
        **grants: Any,
    ) -> Peer:
        peer = Peer(self, name, tok or token(room, name, **grants), room_name)
        self.peers[name] = peer
        self.pump()
        return peer

    def enabled(self, name: str, **grants: Any) -> Peer:
        peer = self.join(name, **grants)
        peer.client.enable()
        self.pump()
        return peer

    def pump(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            moved = False
            for peer in self.peers.values():
                data = peer.client.data_to_send()
                if data and peer.server.state is not State.CLOSED:
                    peer.server.receive_data(data)
                    moved = True
                for event in drain(peer.server, self.now):
                    peer.server_events.append(event)
            for conn in self.server.connections_with_output():
                data = conn.data_to_send()
                peer = self.peers[conn.connection_id]  # type: ignore[index]
                if data and peer.client.state is not State.CLOSED:
                    peer.client.receive_data(data)
                    moved = True
            for peer in self.peers.values():
                peer.events.extend(drain(peer.client, self.now))
            if not moved:
                return
        raise AssertionError("the room did not go quiet")

    def advance(self, seconds: float) -> None:
        """Move time and fire every timer that is due, as a driver would."""
        self.now += seconds
        self.server.handle_timer(self.now)
        for peer in self.peers.values():
            peer.client.handle_timer(self.now)
        self.pump()


def drain(conn: ClientConnection | ServerConnection, now: float) -> Iterator[Event]:
    """Every event the connection has, stopping at NEED_DATA or after the close."""
    while True:
        event = conn.next_event(now)
        if event is NEED_DATA:
            return
        assert isinstance(event, Event)
        yield event
        if isinstance(event, ConnectionClosed):
            return
