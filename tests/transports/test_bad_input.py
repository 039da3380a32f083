"""Bad input on WebSocket and TLS listeners, over real sockets on both runtimes: each gets an
HTTP error or a close code, or is closed and logged once; never a traceback or a hang."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any

import anyio
import anyio.abc
import pytest
from roomwire_anyio import ConnectionClosedError, parse_url
from wsproto import ConnectionType, WSConnection
from wsproto import events as ws

from tests.bindings import SECRET, WAIT
from tests.transports.test_schemes import url_of

pytestmark = pytest.mark.anyio


async def read_to_eof(stream: anyio.abc.ByteStream) -> bytes:
    """Everything the server sends until it closes (bounded in time)."""
    data = bytearray()
    with anyio.fail_after(WAIT):
        while True:
            try:
                data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return bytes(data)


async def open_tcp(url: str) -> anyio.abc.SocketStream:
    return await anyio.connect_tcp(*parse_url(url))


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert [r for r in caplog.records if r.exc_info] == []


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # plain HTTP
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"\x00\x01 not http at all\r\n\r\n",
    ],
    ids=["plain-http", "upgrade-without-key", "garbage"],
)
async def test_a_bad_upgrade_gets_http_400_and_a_close(
    server: Any, request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async with await open_tcp(url_of(server, "ws")) as stream:
        await stream.send(request_bytes)
        answer = await read_to_eof(stream)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"bad WebSocket upgrade" in answer
    no_tracebacks(caplog)


class RawWebSocket:
    """A bare wsproto client over a TCP stream: it sends whatever the test says."""

    def __init__(self, stream: anyio.abc.SocketStream, origin: str | None = None) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        headers = [] if origin is None else [(b"origin", origin.encode())]
        self.first = self.ws.send(ws.Request(host="127.0.0.1", target="/", extra_headers=headers))

    async def next_event(self) -> ws.Event:
        """The next event; EOF is a ``CloseConnection`` with 1006 from wsproto."""
        with anyio.fail_after(WAIT):
            while True:
                for event in self.ws.events():
                    return event
                try:
                    data: bytes | None = await self.stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    data = None
                self.ws.receive_data(data)

    async def send(self, event: ws.Event) -> None:
        await self.stream.send(self.ws.send(event))


@pytest.fixture
async def upgraded(server: Any) -> AsyncIterator[RawWebSocket]:
    async with await open_tcp(url_of(server, "ws")) as stream:
        raw = RawWebSocket(stream)
        await stream.send(raw.first)
        assert isinstance(await raw.next_event(), ws.AcceptConnection)
        yield raw


async def test_a_text_message_closes_with_1003(upgraded: RawWebSocket) -> None:
    await upgraded.send(ws.TextMessage(data="hello"))
    closed = await upgraded.next_event()
    assert isinstance(closed, ws.CloseConnection)
    assert closed.code == 1003


@pytest.mark.server(max_frame_size=4096)
async def test_a_message_over_the_limit_closes_with_1009_before_it_is_whole(
    upgraded: RawWebSocket,
) -> None:
    # Only the first part of a message goes out; the close must come without the rest.
    await upgraded.send(ws.BytesMessage(data=b"\xa1" * 5000, message_finished=False))
    closed = await upgraded.next_event()
    assert isinstance(closed, ws.CloseConnection)
    assert closed.code == 1009


@pytest.mark.parametrize("payload", [b"\x16\x03\x01garbage" * 10, b"\x00\x00\x00\x05hello"])
async def test_garbage_on_a_tls_port_is_closed_and_logged_once(
    server: Any, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with await open_tcp(url_of(server, "tls")) as stream:
        await stream.send(payload)
        await read_to_eof(stream)
    await wait_for_records(caplog, "TLS failed")
    tls_lines = [r for r in caplog.records if "TLS failed" in r.getMessage()]
    assert len(tls_lines) == 1
    assert tls_lines[0].levelno == logging.WARNING
    assert "\n" not in tls_lines[0].getMessage()
    no_tracebacks(caplog)


async def test_a_plain_tcp_client_on_a_tls_port_is_refused_and_logged_once(
    rw: ModuleType, server: Any, make_token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    plain = "tcp://" + url_of(server, "tls").split("://", 1)[1]
    with pytest.raises(ConnectionClosedError):
        async with rw.connect(plain, token=make_token("alice"), reconnect=False):
            pass  # pragma: no cover - the connection must not come up
    await wait_for_records(caplog, "TLS failed")
    assert len([r for r in caplog.records if "TLS failed" in r.getMessage()]) == 1
    no_tracebacks(caplog)


async def test_a_client_refuses_a_certificate_it_does_not_trust(
    rw: ModuleType, server: Any, make_token: Callable[..., str]
) -> None:
    # No ssl=: the system's roots, which do not hold the test CA.
    with pytest.raises(ConnectionClosedError):
        async with rw.connect(url_of(server, "wss"), token=make_token("a"), reconnect=False):
            pass  # pragma: no cover


async def wait_for_records(caplog: pytest.LogCaptureFixture, text: str) -> None:
    with anyio.fail_after(WAIT):
        while not any(text in r.getMessage() for r in caplog.records):
            await anyio.sleep(0.01)


@pytest.fixture
async def guarded(rw: ModuleType, server_ssl: ssl.SSLContext) -> AsyncIterator[Any]:
    async with rw.serve(
        listen=["ws://127.0.0.1:0/"], allowed_origins=["https://good.example"], secret=SECRET
    ) as running:
        yield running


@pytest.mark.parametrize(
    ("origin", "status"), [("https://evil.example", b"403"), ("https://good.example", b"101")]
)
async def test_an_origin_not_allowed_gets_403(guarded: Any, origin: str, status: bytes) -> None:
    async with await open_tcp(guarded.url) as stream:
        raw = RawWebSocket(stream, origin=origin)
        await stream.send(raw.first)
        if status == b"403":
            answer = await read_to_eof(stream)
            assert answer.startswith(b"HTTP/1.1 403 ")
            assert b"not allowed" in answer
        else:
            assert isinstance(await raw.next_event(), ws.AcceptConnection)
