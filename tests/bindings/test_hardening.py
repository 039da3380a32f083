"""Issue 13's findings over real sockets, on asyncio and trio: each test failed before its fix."""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

import anyio
import cbor2
import pytest
from roomwire_anyio import redact_url

from roomwire import Code
from roomwire.frames import ATTRIBUTES_DEPTH, HEADER

from . import WAIT, Join, wait_until

pytestmark = pytest.mark.anyio


async def _read_close(stream: Any) -> dict[str, Any]:
    """Read frames until the server's close frame (then EOF)."""
    data = b""
    with anyio.fail_after(WAIT):
        while True:
            try:
                data += await stream.receive()
            except anyio.EndOfStream:
                break
    frames = []
    while data:
        (size,) = HEADER.unpack_from(data)
        frames.append(cbor2.loads(data[4 : 4 + size]))
        data = data[4 + size :]
    assert frames, "no frame before EOF"
    assert frames[-1]["t"] == "close", frames
    return frames[-1]


async def test_a_large_frame_before_the_hello_is_refused_unbuffered(
    rw: ModuleType, server: Any
) -> None:
    """Finding 2: a connection that never says hello cannot make the server hold a 1 MiB
    partial frame until the handshake timeout; it is closed as soon as the prefix arrives."""
    async with await anyio.connect_tcp(server.host, server.port) as stream:
        await stream.send(HEADER.pack(1024 * 1024) + b"\xa1" * 4096)
        close = await _read_close(stream)
    assert close["code"] == Code.FRAME_TOO_LARGE
    assert "8192-byte limit" in close["reason"]


async def test_the_deepest_attributes_reach_a_newcomer(rw: ModuleType, join: Join) -> None:
    """Finding 6: attributes at the deepest accepted level still fit a newcomer's snapshot
    (they travel 3 levels down there); one level more is refused when set."""
    alice = await join("alice")
    deepest: dict[str, Any] = {"a": []}
    inner = deepest["a"]
    for _ in range(ATTRIBUTES_DEPTH - 2):
        inner.append([])
        inner = inner[0]
    with anyio.fail_after(WAIT):
        await alice.set_attributes(deepest)
    carol = await join("carol")  # its enable() takes the snapshot
    assert carol.messaging.get_participant_by_name("alice").attributes == deepest
    with pytest.raises(rw.InvalidRequestError, match="at most 29 levels deep"):
        await alice.set_attributes({"a": deepest})


async def test_a_newcomer_taking_a_name_cannot_capture_it(join: Join) -> None:
    """Finding 7: after the real alice re-enables, carol's lookup by name does not return
    the newcomer who took the same name: a shared name names nobody."""
    carol = await join("carol")
    alice = await join("alice")
    mallory = await join("alice")
    await wait_until(lambda: len(carol.messaging.remote_participants) == 2)
    with anyio.fail_after(WAIT):
        await alice.messaging.disable()
        await alice.messaging.enable()
    await wait_until(lambda: len(carol.messaging.remote_participants) == 2)
    assert carol.messaging.get_participant_by_name("alice") is None
    assert mallory.messaging.get_participant_by_name("carol") is not None


async def test_each_close_is_logged_once(
    rw: ModuleType, server: Any, join: Join, caplog: pytest.LogCaptureFixture
) -> None:
    """Finding 9: a client's close and a protocol breach each give one log line, not two."""
    caplog.set_level(logging.INFO, logger="roomwire.server")
    alice = await join("alice")
    await alice.aclose()
    async with await anyio.connect_tcp(server.host, server.port) as stream:
        await stream.send(HEADER.pack(3) + b"abc")
        await _read_close(stream)
    await wait_until(lambda: server.connection_count == 0)
    closes = [r.getMessage() for r in caplog.records if ": closed" in r.getMessage()]
    assert len(closes) == 2, closes
    assert "NORMAL" in closes[0]
    assert "BAD_FRAME" in closes[1]


async def test_a_weak_secret_is_refused_when_serving_starts(rw: ModuleType) -> None:
    with pytest.raises(ValueError, match="secret has 5 bytes"):
        async with rw.serve("127.0.0.1", 0, secret="short"):
            pass
    async with rw.serve("127.0.0.1", 0, secret="short", allow_weak_secret=True) as running:
        assert running.core.config.allow_weak_secret


def test_urls_are_redacted_for_logs() -> None:
    assert redact_url("redis://:hunter2@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("redis://user:p%40ss@h/0") == "redis://user:***@h/0"
    assert redact_url("redis://h/0?db=1&password=x&a=b") == "redis://h/0?db=1&password=***&a=b"
    assert redact_url("redis://user@h:6379") == "redis://user@h:6379"
