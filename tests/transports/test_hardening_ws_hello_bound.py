"""Issue 13: over ws:// the first message (the hello, before anyone is authenticated) is
held to ``max_hello_size``, not ``max_frame_size``; both runtimes, real sockets."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from wsproto import events as ws

from tests.transports.test_bad_input import RawWebSocket, open_tcp
from tests.transports.test_schemes import url_of

pytestmark = pytest.mark.anyio


@pytest.mark.server(max_hello_size=1024)
async def test_hardening_a_first_message_over_the_hello_bound_closes_with_1009(
    server: Any,
) -> None:
    async with await open_tcp(url_of(server, "ws")) as stream:
        raw = RawWebSocket(stream)
        await stream.send(raw.first)
        assert isinstance(await raw.next_event(), ws.AcceptConnection)
        # 2000 bytes of a 100 KiB first message: already over 1024, the close comes now.
        await raw.send(ws.BytesMessage(data=b"\xa1" * 2000, message_finished=False))
        closed = await raw.next_event()
    assert isinstance(closed, ws.CloseConnection)
    assert (closed.code, closed.reason) == (1009, "a message is over the 1024-byte limit")


@pytest.mark.server(max_hello_size=1024)
async def test_hardening_after_the_hello_the_frame_bound_applies(
    rw: ModuleType, server: Any, make_token: Callable[..., str]
) -> None:
    async with rw.connect(url_of(server, "ws"), token=make_token("alice")) as alice:
        await alice.messaging.enable()
        big = {"text": "x" * 50_000}  # far over max_hello_size, under max_frame_size
        await alice.messaging.broadcast_message(type="t", message=big)
