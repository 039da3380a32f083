"""The client session, sans-IO: ``ClientSession`` over real ``ClientConnection``s and an
in-memory ``RoomServer``, with the bytes copied by hand and time moved by hand (no sockets,
no event loop). What a driver in another runtime or language must reproduce.

``World`` is the room server; ``Client`` is one user's session and whichever connection
currently carries it (``connect()`` again after ``lose()`` is a reconnect).
"""

from __future__ import annotations

import itertools
from typing import Any

from roomwire_anyio import ClientSession, Reply
from roomwire_anyio.events import MessagingEvent

from roomwire import (
    NEED_DATA,
    ClientConnection,
    ParticipantToken,
    RemoteParticipant,
    RoomServer,
    ServerConfig,
    ServerConnection,
    State,
)
from roomwire.events import Connected, ConnectionClosed

SECRET = "session-suite-secret-long-enough-for-hs256"


class World:
    """One room server; ``pump`` moves bytes until every side is quiet."""

    def __init__(self, **config: Any) -> None:
        self.now = 1000.0
        self.server = RoomServer(ServerConfig(secret=SECRET, **config))
        self._ids = itertools.count(1)
        self.clients: dict[object, Client] = {}

    def accept(self, client: Client) -> ServerConnection:
        cid = next(self._ids)
        self.clients[cid] = client
        return self.server.accept(cid, self.now)

    def pump(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            moved = False
            for client in list(self.clients.values()):
                moved |= client.push()
            for conn in self.server.connections_with_output():
                moved |= self.clients[conn.connection_id].pull(conn.data_to_send())
            if not moved:
                return
        raise AssertionError("the world did not go quiet")


class Client:
    """One user: a ``ClientSession`` and its current connection."""

    def __init__(self, world: World, name: str, **grants: Any) -> None:
        self.world = world
        self.token = ParticipantToken(room="main", name=name, **grants).to_jwt(SECRET)
        self.events: list[MessagingEvent] = []
        self.spawned: list[tuple[str, Any]] = []
        self.session = ClientSession(
            emit=self.events.append, spawn=lambda name, aw: self.spawned.append((name, aw))
        )
        self.closed: ConnectionClosed | None = None
        self.reenable: Reply | None = None
        self.connects = 0
        self.connect()

    def connect(self) -> None:
        """Open a connection and hand the welcome to the session (as a pump does)."""
        # As the driver does: a reconnect presents the last connection's resume info.
        resume = self.session.resume if self.connects else None
        self.conn = ClientConnection(token=self.token, now=self.world.now, resume=resume)
        self.server_conn = self.world.accept(self)
        self.closed = None
        self._welcome: Connected | None = None
        self._live = False
        self.world.pump()
        assert self._welcome is not None, "no welcome"
        self.reenable = self.session.connected(self.conn, self._welcome, again=self.connects > 0)
        self._live = True
        self.closed = self.session.drain(self.conn, self.world.now)
        self.connects += 1
        self.world.pump()

    @property
    def id(self) -> str:
        participant = self.session.local_participant
        assert participant is not None
        return participant.id

    def push(self) -> bool:
        """Client -> server: True if bytes moved."""
        data = self.conn.data_to_send()
        if not data or self.server_conn.state is State.CLOSED:
            return False
        self.server_conn.receive_data(data)
        self._serve()
        return True

    def _serve(self) -> None:
        """Let the server apply what it got (up to the close, as a driver does)."""
        while (event := self.server_conn.next_event(self.world.now)) is not NEED_DATA:
            if isinstance(event, ConnectionClosed):
                return

    def pull(self, data: bytes) -> bool:
        """Server -> client, applied by the session once welcomed: True if bytes moved."""
        if not data or self.conn.state is State.CLOSED:
            return False
        self.conn.receive_data(data)
        if self._welcome is None:
            event = self.conn.next_event(self.world.now)
            assert isinstance(event, Connected), event
            self._welcome = event
        if not self._live:
            return True  # what follows the welcome waits for the session (as a pump does)
        self.closed = self.session.drain(self.conn, self.world.now) or self.closed
        return True

    def lose(self) -> ConnectionClosed:
        """The transport ends under both sides (no close frame)."""
        self.conn.receive_data(b"")
        self.server_conn.receive_data(b"")
        self._serve()
        closed = self.session.drain(self.conn, self.world.now)
        assert closed is not None
        self.world.pump()
        return closed

    def of(self, kind: type) -> list[Any]:
        """The emitted events of ``kind``, in order."""
        return [e for e in self.events if isinstance(e, kind)]


def names(participants: list[RemoteParticipant]) -> set[str]:
    return {p.name for p in participants}
