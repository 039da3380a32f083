"""Issue 13's findings over real sockets, on asyncio and trio: each test failed before its fix."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import anyio
import cbor2
import pytest

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
