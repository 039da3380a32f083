"""An in-memory room: one RoomServer and any number of ClientConnections, wired by hand.

Everything goes through the public API; time only moves when a test moves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from roomwire import (
    NEED_DATA,
    PROTOCOL_VERSION,
    ClientConfig,
    ClientConnection,
    ParticipantToken,
    ResumeInfo,
    RoomServer,
    ServerConfig,
    ServerConnection,
    State,
)
from roomwire.events import Connected, ConnectionClosed, Event, MessagingEnabled
from roomwire.frames import FrameBuffer, decode_payload, encode_frame

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

    def __init__(
        self,
        room: Room,
        name: str,
        tok: str,
        room_name: str | None,
        resume: ResumeInfo | None = None,
    ) -> None:
        self.room = room
        self.client = ClientConnection(
            token=tok, now=room.now, room=room_name, config=room.client_config, resume=resume
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
        self,
        name: str,
        room: str = "demo",
        tok: str | None = None,
        room_name: str | None = None,
        resume: ResumeInfo | None = None,
        **grants: Any,
    ) -> Peer:
        peer = Peer(self, name, tok or token(room, name, **grants), room_name, resume)
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
                peer = self.peers.get(conn.connection_id)  # type: ignore[call-overload]
                if peer is None:  # cut off (``cut``): what it was sent is lost
                    continue
                if data and peer.client.state is not State.CLOSED:
                    peer.client.receive_data(data)
                    moved = True
            for peer in self.peers.values():
                peer.events.extend(drain(peer.client, self.now))
            if not moved:
                return
        raise AssertionError("the room did not go quiet")

    def cut(self, name: str) -> ResumeInfo | None:
        """The transport of peer ``name`` breaks with no close frame: the server sees the
        end of its input, the client is dropped. Returns what a reconnect presents."""
        peer = self.peers.pop(name)
        peer.server.receive_data(b"")
        peer.server_events.extend(drain(peer.server, self.now))
        self.pump()
        return peer.client.resume_info

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


# --- a client alone: the test plays the server with hand-built frames ----------------------

WIRE_LIMITS = {
    "max_frame_size": 4096,
    "max_send_size": 3072,
    "max_recipients": 3,
    "max_type_length": 8,
    "max_attributes_size": 64,
}
"""Small limits, so each pre-check is easy to cross."""


def decode_frames(data: bytes) -> list[dict[str, Any]]:
    """Every frame in ``data`` (complete frames only), decoded with the public codec."""
    buffer = FrameBuffer(2**32 - 1)
    buffer.feed(data)
    found = []
    while (payload := buffer.next_payload()) is not None:
        found.append(decode_payload(payload))
    assert len(buffer) == 0, "a partial frame was left over"
    return found


def wire_participant(pid: str, name: str = "bob", **attributes: Any) -> dict[str, Any]:
    """A participant record as the server puts it on the wire."""
    return {"id": pid, "name": name, "role": "user", "attributes": attributes}


def welcome_frame(**overrides: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "t": "welcome",
        "v": PROTOCOL_VERSION,
        "room": "demo",
        "participant": wire_participant("me", "alice"),
        "limits": dict(WIRE_LIMITS),
        "hb": 25,
        "hbt": 10.0,
    }
    frame.update(overrides)
    return frame


class LoneClient:
    """A ClientConnection with no server behind it: ``feed`` hand-built server frames."""

    def __init__(self, config: ClientConfig | None = None, room: str | None = None) -> None:
        self.now = 1000.0
        self.client = ClientConnection(token="a-token", now=self.now, room=room, config=config)
        self.hello = self.sent()

    def feed(self, *frames: dict[str, Any]) -> None:
        self.client.receive_data(b"".join(encode_frame(f) for f in frames))

    def events(self) -> list[Event]:
        return list(drain(self.client, self.now))

    def sent(self) -> list[dict[str, Any]]:
        return decode_frames(self.client.data_to_send())

    def open(self) -> LoneClient:
        """Welcomed (state OPEN); the Connected event is consumed."""
        self.feed(welcome_frame())
        assert [type(e) for e in self.events()] == [Connected]
        return self

    def enable(self, *participants: dict[str, Any]) -> LoneClient:
        """Messaging enabled (state ENABLED) with ``participants`` present; rid 1 was used."""
        self.open()
        assert self.client.enable() == 1
        self.feed({"t": "snapshot", "rid": 1, "more": False, "participants": list(participants)})
        assert [type(e) for e in self.events()] == [MessagingEnabled]
        self.sent()
        return self


# --- a hand-driven peer: the test plays the client with hand-built frames ------------------


class RawClient:
    """Stands in for a ClientConnection inside a ``Room``: it sends hand-built frames and keeps
    every frame the server sent it, decoded. It never answers anything by itself (no pongs)."""

    state = State.OPEN  # never CLOSED: the room always delivers to it

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self._out = bytearray()

    def send(self, *frames: dict[str, Any]) -> None:
        for frame in frames:
            self._out += encode_frame(frame)

    def take(self) -> list[dict[str, Any]]:
        """The frames received since the last call."""
        frames, self.frames = self.frames, []
        return frames

    def data_to_send(self) -> bytes:
        data, self._out = bytes(self._out), bytearray()
        return data

    def receive_data(self, data: bytes) -> None:
        self.frames.extend(decode_frames(data))

    def next_event(self, now: float) -> Any:
        return NEED_DATA

    def handle_timer(self, now: float) -> None:
        pass


class RawPeer(Peer):
    """A ``Peer`` whose client is a ``RawClient``."""

    def __init__(self, room: Room, name: str) -> None:
        self.room = room
        self.client: RawClient = RawClient()  # type: ignore[assignment]
        self.server = room.server.accept(name, room.now)
        self.events = []
        self.server_events = []


def raw_peer(room: Room, name: str, tok: str | None = None, hello: bool = True) -> RawPeer:
    """Add a hand-driven peer to ``room``; by default it sends a valid hello and is welcomed."""
    peer = RawPeer(room, name)
    room.peers[name] = peer
    if hello:
        peer.client.send({"t": "hello", "v": PROTOCOL_VERSION, "token": tok or token("demo", name)})
    room.pump()
    return peer


def feed(room: Room, peer: Peer) -> list[Event]:
    """Hand the server what ``peer`` queued and process it, but write nothing back: the
    server's output stays queued, as if no client read it meanwhile."""
    data = peer.client.data_to_send()
    if data:
        peer.server.receive_data(data)
    events = list(drain(peer.server, room.now))
    peer.server_events.extend(events)
    return events
