"""The WebSocket layer without sockets: a client and a server layer wired by hand."""

from __future__ import annotations

import pytest
from roomwire_anyio._websocket import (
    ABNORMAL,
    MESSAGE_TOO_BIG,
    NORMAL,
    UNSUPPORTED_DATA,
    HandshakeRefused,
    WebSocketLayer,
)
from wsproto import ConnectionType, WSConnection
from wsproto import events as ws

from roomwire.frames import HEADER


def opened_pair(limit: int = 100) -> tuple[WebSocketLayer, WebSocketLayer]:
    s = WebSocketLayer.server(max_message_size=limit)
    c = WebSocketLayer.client("127.0.0.1:9", "/", max_message_size=limit)
    assert s.receive_data(c.data_to_send()) == []
    assert c.receive_data(s.data_to_send()) == []
    assert s.opened
    assert c.opened
    return s, c


def raw_opened(limit: int = 100) -> tuple[WebSocketLayer, WSConnection]:
    """A server layer upgraded by a bare wsproto client, which can send anything."""
    raw = WSConnection(ConnectionType.CLIENT)
    s = WebSocketLayer.server(max_message_size=limit)
    s.receive_data(raw.send(ws.Request(host="h", target="/")))
    raw.receive_data(s.data_to_send())
    assert isinstance(next(raw.events()), ws.AcceptConnection)
    return s, raw


def raw_client(target: str = "/", origin: str | None = None) -> tuple[WSConnection, bytes]:
    conn = WSConnection(ConnectionType.CLIENT)
    headers = [] if origin is None else [(b"origin", origin.encode())]
    return conn, conn.send(ws.Request(host="h", target=target, extra_headers=headers))


def test_binary_messages_both_ways_keep_their_boundaries() -> None:
    s, c = opened_pair()
    c.send_message(b"one")
    c.send_message(b"")
    c.send_message(b"x" * 100)  # exactly the limit
    assert s.receive_data(c.data_to_send()) == [b"one", b"", b"x" * 100]
    s.send_message(b"back")
    assert c.receive_data(s.data_to_send()) == [b"back"]


def test_messages_split_anywhere_arrive_whole() -> None:
    s, c = opened_pair()
    c.send_message(b"abcdefgh" * 10)
    data = c.data_to_send()
    got = []
    for i in range(len(data)):
        got += s.receive_data(data[i : i + 1])
    assert got == [b"abcdefgh" * 10]


def test_fragmented_message_is_joined() -> None:
    s, raw = raw_opened(100)
    data = raw.send(ws.BytesMessage(data=b"ab", message_finished=False))
    data += raw.send(ws.BytesMessage(data=b"cd", message_finished=True))
    assert s.receive_data(data) == [b"abcd"]


def test_over_the_limit_closes_with_1009_before_the_message_is_whole() -> None:
    s, raw = raw_opened(100)
    frame = raw.send(ws.BytesMessage(data=b"z" * 1000))
    # Only the header and the first 150 bytes arrive: already over, the close goes out.
    assert s.receive_data(frame[:160]) == []
    assert s.closed is not None
    assert s.closed[0] == MESSAGE_TOO_BIG
    raw.receive_data(s.data_to_send())
    closes = [e for e in raw.events() if isinstance(e, ws.CloseConnection)]
    assert [c.code for c in closes] == [MESSAGE_TOO_BIG]
    assert s.receive_data(frame[160:]) == []  # nothing more is read


def test_fragments_count_together_against_the_limit() -> None:
    s, raw = raw_opened(10)
    data = raw.send(ws.BytesMessage(data=b"123456", message_finished=False))
    data += raw.send(ws.BytesMessage(data=b"789012", message_finished=True))
    assert s.receive_data(data) == []
    assert s.closed == (MESSAGE_TOO_BIG, "a message is over the 10-byte limit")


def test_a_text_message_closes_with_1003() -> None:
    s, raw = raw_opened(100)
    assert s.receive_data(raw.send(ws.TextMessage(data="hello"))) == []
    assert s.closed is not None
    assert s.closed[0] == UNSUPPORTED_DATA
    raw.receive_data(s.data_to_send())
    assert [e.code for e in raw.events() if isinstance(e, ws.CloseConnection)] == [UNSUPPORTED_DATA]


def test_pings_are_answered() -> None:
    s, raw = raw_opened(100)
    s.receive_data(raw.send(ws.Ping(payload=b"p")))
    raw.receive_data(s.data_to_send())
    assert [e.payload for e in raw.events() if isinstance(e, ws.Pong)] == [b"p"]


def test_close_handshake_both_ways() -> None:
    s, c = opened_pair()
    c.close(NORMAL, "bye")
    assert c.closed == (NORMAL, "bye")
    assert s.receive_data(c.data_to_send()) == []
    assert s.closed == (NORMAL, "bye")
    c.send_message(b"after close")  # ignored
    assert c.data_to_send() == b""


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", b"400"),
        (b"\x16\x03\x01\x02\x00garbage\r\n\r\n", b"400"),
    ],
)
def test_plain_http_or_garbage_gets_an_http_error_and_a_close(
    request_bytes: bytes, status: bytes
) -> None:
    s = WebSocketLayer.server(max_message_size=100)
    assert s.receive_data(request_bytes) == []
    answer = s.data_to_send()
    assert answer.startswith(b"HTTP/1.1 " + status)
    assert s.closed is not None
    assert s.closed[0] == ABNORMAL
    assert s.refusal is not None
    assert "bad WebSocket upgrade" in s.refusal
    assert not s.opened


def test_allowed_origins_refuse_others_with_403() -> None:
    s = WebSocketLayer.server(max_message_size=100, allowed_origins=frozenset({"https://ok"}))
    _, request = raw_client(origin="https://evil.example")
    s.receive_data(request)
    assert s.data_to_send().startswith(b"HTTP/1.1 403")
    assert not s.opened

    s = WebSocketLayer.server(max_message_size=100, allowed_origins=frozenset({"https://ok"}))
    _, request = raw_client(origin="https://ok")
    s.receive_data(request)
    assert s.data_to_send().startswith(b"HTTP/1.1 101")
    assert s.opened


def test_no_allowed_origins_means_any_origin_and_any_path() -> None:
    allowed: frozenset[str] | None
    for allowed in (None, frozenset()):
        s = WebSocketLayer.server(max_message_size=100, allowed_origins=allowed)
        _, request = raw_client(target="/any/path?x=1", origin="https://anywhere")
        s.receive_data(request)
        assert s.opened


def test_a_configured_path_refuses_others_with_404() -> None:
    s = WebSocketLayer.server(max_message_size=100, path="/rw")
    _, request = raw_client(target="/other")
    s.receive_data(request)
    assert s.data_to_send().startswith(b"HTTP/1.1 404")
    s = WebSocketLayer.server(max_message_size=100, path="/rw")
    _, request = raw_client(target="/rw?v=1")
    s.receive_data(request)
    assert s.opened


def test_the_client_raises_a_typed_error_on_a_refused_upgrade() -> None:
    s = WebSocketLayer.server(max_message_size=100, allowed_origins=frozenset({"https://ok"}))
    c = WebSocketLayer.client("h", "/", max_message_size=100, origin="https://evil")
    s.receive_data(c.data_to_send())
    with pytest.raises(HandshakeRefused) as info:
        c.receive_data(s.data_to_send())
    assert info.value.status == 403
    assert b"not allowed" in info.value.body
    assert c.closed is not None


def test_eof_closes_before_and_after_the_upgrade() -> None:
    s = WebSocketLayer.server(max_message_size=100)
    assert s.receive_data(b"") == []
    assert s.closed == (ABNORMAL, "the transport closed")
    s, _ = opened_pair()
    assert s.receive_data(b"") == []
    assert s.closed == (ABNORMAL, "the transport closed")
    assert s.receive_data(b"more") == []


def test_a_broken_frame_after_the_upgrade_closes() -> None:
    s, _ = opened_pair()
    # A frame with the reserved bits set and no extension negotiated: a protocol error.
    s.receive_data(b"\xf2\x80\x00\x00\x00\x00")
    assert s.closed is not None
    assert s.closed[0] != NORMAL


def test_allowed_origins_let_a_client_without_origin_in() -> None:
    # Only browsers send Origin, and a page can't leave it out: a program is gated by its token.
    s = WebSocketLayer.server(max_message_size=100, allowed_origins=frozenset({"https://ok"}))
    _, request = raw_client()
    s.receive_data(request)
    assert s.data_to_send().startswith(b"HTTP/1.1 101")
    assert s.opened


@pytest.mark.parametrize("size", [150, 5_000_000], ids=["shared", "over-the-shared-size"])
def test_servers_frame_a_shared_chunk_alike_and_clients_read_each_frame(size: int) -> None:
    payloads = [bytes(range(256)) * (size // 256) + b"!", b"\xa0"]
    chunk = b"".join(HEADER.pack(len(p)) + p for p in payloads)
    pairs = [opened_pair(limit=1 << 23) for _ in range(3)]
    framed = []
    for s, _ in pairs:
        s.send_frames([chunk])
        framed.append(s.data_to_send())
    raw = WSConnection(ConnectionType.SERVER)
    raw.receive_data(WSConnection(ConnectionType.CLIENT).send(ws.Request(host="h", target="/")))
    raw.send(ws.AcceptConnection())
    expected = b"".join(raw.send(ws.BytesMessage(data=p)) for p in payloads)
    assert framed == [expected] * 3  # what wsproto makes, message by message
    for (_, c), data in zip(pairs, framed, strict=True):
        assert c.receive_data(data) == payloads


def test_a_client_sends_frames_masked_and_nothing_once_closed() -> None:
    s, c = opened_pair()
    c.send_frames([HEADER.pack(2) + b"hi"])
    assert s.receive_data(c.data_to_send()) == [b"hi"]
    c.close()
    c.data_to_send()
    c.send_frames([HEADER.pack(2) + b"hi"])
    assert c.data_to_send() == b""


def test_hardening_the_first_message_has_the_hello_bound_and_later_ones_the_frame_bound() -> None:
    # Issue 13: before the hello nobody is authenticated, so a WebSocket's first message is
    # held to max_hello_size (here 10 bytes), not to max_frame_size (100).
    raw = WSConnection(ConnectionType.CLIENT)
    s = WebSocketLayer.server(max_message_size=100, first_message_size=10)
    s.receive_data(raw.send(ws.Request(host="h", target="/")))
    raw.receive_data(s.data_to_send())
    assert s.receive_data(raw.send(ws.BytesMessage(data=b"h" * 10))) == [b"h" * 10]
    assert s.receive_data(raw.send(ws.BytesMessage(data=b"x" * 100))) == [b"x" * 100]
    big_first = WebSocketLayer.server(max_message_size=100, first_message_size=10)
    other = WSConnection(ConnectionType.CLIENT)
    big_first.receive_data(other.send(ws.Request(host="h", target="/")))
    other.receive_data(big_first.data_to_send())
    frame = other.send(ws.BytesMessage(data=b"z" * 100, message_finished=False))
    assert big_first.receive_data(frame[:20]) == []  # closed before the 100 bytes are in
    assert big_first.closed == (MESSAGE_TOO_BIG, "a message is over the 10-byte limit")


def test_hardening_a_fragmented_first_message_counts_against_the_hello_bound() -> None:
    s = WebSocketLayer.server(max_message_size=100, first_message_size=10)
    raw = WSConnection(ConnectionType.CLIENT)
    s.receive_data(raw.send(ws.Request(host="h", target="/")))
    raw.receive_data(s.data_to_send())
    data = raw.send(ws.BytesMessage(data=b"12345", message_finished=False))
    data += raw.send(ws.BytesMessage(data=b"678", message_finished=True))
    assert s.receive_data(data) == [b"12345678"]
    data = raw.send(ws.BytesMessage(data=b"a" * 60, message_finished=False))
    data += raw.send(ws.BytesMessage(data=b"b" * 40, message_finished=True))
    assert s.receive_data(data) == [b"a" * 60 + b"b" * 40]  # later: the frame bound
