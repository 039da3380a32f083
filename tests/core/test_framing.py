"""Message framing (``Framing.MESSAGE``, for WebSocket): each frame is one CBOR item in one
transport message, with no length prefix; stream and message connections share one room."""

from __future__ import annotations

import cbor2
import pytest

from roomwire import (
    NEED_DATA,
    ClientConnection,
    Code,
    Framing,
    LocalProtocolError,
    RemoteProtocolError,
    RoomServer,
    ServerConnection,
    State,
)
from roomwire.events import (
    Connected,
    ConnectionClosed,
    Event,
    MessageReceived,
    MessagingEnabled,
    ParticipantAdded,
    RequestAcked,
)
from roomwire.frames import HEADER, split_frames

from .helpers import server_config, token

NOW = 1000.0


class Link:
    """A client and its server connection on one framing, wired by hand."""

    def __init__(self, server: RoomServer, name: str, framing: Framing) -> None:
        self.framing = framing
        self.client = ClientConnection(token=token(name=name), now=NOW, framing=framing)
        self.conn = server.accept(name, NOW, framing=framing)
        self.events: list[Event] = []
        self.to_client: list[bytes] = []
        """What the server sent, frame by frame, as this link's transport carried it."""

    def up(self) -> bool:
        """Carry the client's output to the server; True when anything moved."""
        if self.framing is Framing.MESSAGE:
            messages = self.client.messages_to_send()
            for message in messages:
                self.conn.receive_message(message)
            return bool(messages)
        data = self.client.data_to_send()
        if data:
            self.conn.receive_data(data)
        return bool(data)

    def down(self) -> None:
        if self.framing is Framing.MESSAGE:
            messages = self.conn.messages_to_send()
            self.to_client.extend(messages)
            for message in messages:
                self.client.receive_message(message)
        else:
            data = self.conn.data_to_send()
            self.to_client.append(data)
            self.client.receive_data(data)


def drain(conn: ClientConnection | ServerConnection) -> list[Event]:
    events = []
    for _ in range(1000):
        event = conn.next_event(NOW)
        if event is NEED_DATA or isinstance(event, ConnectionClosed):
            return events
        events.append(event)  # type: ignore[arg-type]
    raise AssertionError("next_event never returned NEED_DATA")


def pump(server: RoomServer, links: dict[str, Link]) -> None:
    for _ in range(20):
        moved = False
        for link in links.values():
            moved |= link.up()
            drain(link.conn)
        for conn in server.connections_with_output():
            links[conn.connection_id].down()  # type: ignore[index]
            moved = True
        for link in links.values():
            link.events.extend(drain(link.client))
        if not moved:
            return
    raise AssertionError("the room did not go quiet")


@pytest.fixture
def room() -> tuple[RoomServer, dict[str, Link]]:
    server = RoomServer(server_config())
    links = {
        "alice": Link(server, "alice", Framing.MESSAGE),
        "bob": Link(server, "bob", Framing.STREAM),
        "carol": Link(server, "carol", Framing.MESSAGE),
    }
    pump(server, links)
    for link in links.values():
        link.client.enable()
        pump(server, links)
    return server, links


def test_a_hello_is_one_message_holding_one_cbor_item() -> None:
    client = ClientConnection(token="t", now=NOW, framing=Framing.MESSAGE)
    assert client.framing is Framing.MESSAGE
    assert client.messages_to_send() == [cbor2.dumps({"t": "hello", "v": 1, "token": "t"})]
    assert client.messages_to_send() == []


def test_message_and_stream_links_share_a_room(room: tuple[RoomServer, dict[str, Link]]) -> None:
    server, links = room
    alice, bob, carol = links["alice"], links["bob"], links["carol"]
    expected = [Connected, MessagingEnabled, ParticipantAdded, ParticipantAdded]
    assert [type(e) for e in alice.events] == expected
    for link in (bob, carol):
        link.to_client.clear()
    alice.client.broadcast_message("chat", {"text": "hi"})
    alice.client.send_message(carol.client.local_participant.id, "dm", {"n": 1})  # type: ignore[union-attr]
    pump(server, links)
    assert [type(e) for e in alice.events[-2:]] == [RequestAcked, RequestAcked]
    (received,) = [e for e in bob.events if isinstance(e, MessageReceived)]
    assert received.message.message == {"text": "hi"}
    got = [e.message.type for e in carol.events if isinstance(e, MessageReceived)]
    assert got == ["chat", "dm"]
    # The delivery is encoded once: the stream peer's bytes are the message peer's frame,
    # with its length prefix.
    (stream_bytes,) = bob.to_client
    assert stream_bytes == HEADER.pack(len(carol.to_client[0])) + carol.to_client[0]


def test_consecutive_broadcasts_reach_a_message_link_one_message_each(
    room: tuple[RoomServer, dict[str, Link]],
) -> None:
    _server, links = room
    alice, carol = links["alice"], links["carol"]
    for n in range(3):
        alice.client.broadcast_message("chat", {"n": n})
    alice.up()
    drain(alice.conn)
    carol.to_client.clear()
    carol.down()
    assert [cbor2.loads(m)["message"] for m in carol.to_client] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_a_clean_close_over_messages(room: tuple[RoomServer, dict[str, Link]]) -> None:
    server, links = room
    alice = links["alice"]
    alice.client.close()
    pump(server, links)
    assert alice.client.state is State.CLOSED
    assert alice.conn.state is State.CLOSED
    alice.conn.receive_message(b"\xa0")  # after the close: discarded
    assert alice.conn.next_event(NOW) == ConnectionClosed(code=Code.NORMAL, reason="", by_peer=True)


def server_conn(framing: Framing) -> ServerConnection:
    return RoomServer(server_config()).accept("c", NOW, framing=framing)


def test_each_framing_has_its_own_doors() -> None:
    stream, message = server_conn(Framing.STREAM), server_conn(Framing.MESSAGE)
    with pytest.raises(LocalProtocolError, match="takes receive_data"):
        stream.receive_message(b"\xa0")
    with pytest.raises(LocalProtocolError, match="gives data_to_send"):
        stream.messages_to_send()
    with pytest.raises(LocalProtocolError, match="takes receive_message"):
        message.receive_data(b"\xa0")
    with pytest.raises(LocalProtocolError, match="gives messages_to_send"):
        message.data_to_send()
    client = ClientConnection(token="t", now=NOW)
    with pytest.raises(LocalProtocolError, match="takes receive_data"):
        client.receive_message(b"\xa0")


def test_framing_must_be_a_framing() -> None:
    with pytest.raises(LocalProtocolError, match="must be a Framing"):
        ClientConnection(token="t", now=NOW, framing="MESSAGE")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("message", "code", "reason"),
    [
        (b"", Code.BAD_FRAME, "empty frame"),
        (b"\xa0" * 2_000_000, Code.FRAME_TOO_LARGE, "frame of 2000000 bytes is over"),
    ],
)
def test_an_empty_or_oversized_message_closes_the_connection(
    message: bytes, code: Code, reason: str
) -> None:
    conn = server_conn(Framing.MESSAGE)
    conn.receive_message(message)
    conn.receive_message(cbor2.dumps({"t": "ping"}))  # nothing after a bad frame is read
    with pytest.raises(RemoteProtocolError, match=reason) as caught:
        conn.next_event(NOW)
    assert caught.value.code is code
    (close,) = [cbor2.loads(m) for m in conn.messages_to_send()]
    assert (close["t"], close["code"]) == ("close", code)
    closed = ConnectionClosed(code=code, reason=close["reason"], by_peer=False)
    assert conn.next_event(NOW) == closed


def test_eof_on_a_message_connection() -> None:
    conn = server_conn(Framing.MESSAGE)
    assert conn.next_event(NOW) is NEED_DATA
    conn.receive_data(b"")
    closed = conn.next_event(NOW)
    assert isinstance(closed, ConnectionClosed)
    assert closed.code is Code.CONNECTION_LOST
    with pytest.raises(LocalProtocolError, match="after EOF"):
        conn.receive_message(b"\xa0")


def test_a_broadcast_batch_is_one_chunk_shared_by_its_recipients(
    room: tuple[RoomServer, dict[str, Link]],
) -> None:
    _server, links = room
    alice, bob, carol = links["alice"], links["bob"], links["carol"]
    for n in range(3):
        alice.client.broadcast_message("chat", {"n": n})
    alice.up()
    drain(alice.conn)
    bob_chunks, carol_chunks = bob.conn.chunks_to_send(), carol.conn.chunks_to_send()
    assert bob_chunks == carol_chunks
    assert all(a is b for a, b in zip(bob_chunks, carol_chunks, strict=True))
    payloads = split_frames(carol_chunks)
    assert [cbor2.loads(p)["message"] for p in payloads] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert carol.conn.chunks_to_send() == []
    assert carol.conn.messages_to_send() == []  # taken: the two doors share one queue
