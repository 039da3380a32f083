"""Issue 13's findings over real sockets, on asyncio and trio: each test failed before its fix."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import anyio
import cbor2
import pytest

from roomwire import Code
from roomwire._framing import HEADER

from . import WAIT

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
