"""Item 2: oversize frames.

A length prefix over the server's ``max_frame_size`` is refused as soon as its four bytes are
in: the peer sends the prefix and a few bytes, never the body, and the FRAME_TOO_LARGE close
still arrives. A request over ``max_send_size`` (but within the frame limit) is refused with
TOO_LARGE and the connection stays open. The client binding refuses an oversize message
before anything is written (TooLargeError), and its connection stays usable.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from roomwire_anyio import TooLargeError

from roomwire import Code
from roomwire.frames import HEADER

from . import Inbox, close_codes, frame, raw_peer, wait_until
from .conftest import Figures

pytestmark = pytest.mark.anyio

LIMIT = 64 * 1024
"""The server's max_frame_size in these tests (max_send_size is 1 KiB less)."""
CLOSE_BOUND = 1.0
"""Seconds within which the close must follow the prefix (it takes milliseconds; a server
waiting for the body would never send it, as the body never comes)."""


@pytest.mark.server(max_frame_size=LIMIT)
async def test_an_oversize_prefix_is_refused_before_its_body(
    join: Any, server: Any, make_token: Any, figures: Figures
) -> None:
    watcher = Inbox(await join("watcher"))
    timings: list[float] = []
    for declared, handshake in [
        (LIMIT + 1, True),
        (2**32 - 1, True),
        (LIMIT + 1, False),  # before the hello
        (2**31, False),
    ]:
        async with raw_peer(server.url, make_token("big") if handshake else None) as peer:
            if handshake:
                await peer.enable()
                await wait_until(lambda: len(watcher.room.messaging.remote_participants) == 1)
            start = anyio.current_time()
            await peer.send(HEADER.pack(declared) + b"\x00" * 16)  # 20 bytes, no body
            frames = await peer.rest(timeout=CLOSE_BOUND)
            timings.append(anyio.current_time() - start)
            assert close_codes(frames) == [Code.FRAME_TOO_LARGE]
            assert peer.eof
            if handshake:
                await wait_until(lambda peer=peer: peer.id in watcher.removed)
                assert watcher.removed.count(peer.id) == 1
    await wait_until(lambda: server.connection_count == 1)
    figures(bytes_sent=20, close_after_ms=[round(t * 1000, 1) for t in timings])


@pytest.mark.server(max_frame_size=LIMIT)
async def test_a_request_over_max_send_size_is_refused_and_the_connection_stays(
    join: Any, server: Any, make_token: Any
) -> None:
    bob = Inbox(await join("bob"))
    async with raw_peer(server.url, make_token("raw"), enable=True) as peer:
        # Within the frame limit, over max_send_size (= LIMIT - 1024): a refusal, not a close.
        big = frame("send", type="big", message={"pad": "x" * (LIMIT - 600)}, to=[bob.id], rid=2)
        assert LIMIT - 1024 < len(big) - 4 <= LIMIT
        await peer.send(big)
        refusal = await peer.until("error")
        assert (refusal["rid"], refusal["code"]) == (2, Code.TOO_LARGE)
        await peer.send_frame("send", type="ok", message={"n": 0}, to=[bob.id], rid=3)
        assert (await peer.until("ack"))["rid"] == 3
        await bob.wait_for(1)
        assert [m.type for m in bob.messages] == ["ok"]


@pytest.mark.server(max_frame_size=LIMIT)
async def test_the_client_refuses_an_oversize_message_locally_and_stays_usable(
    join: Any, server: Any
) -> None:
    alice = await join("alice")
    bob = Inbox(await join("bob"))
    to = await _participant(alice, "bob")
    limits = alice.limits
    assert limits.max_frame_size == LIMIT
    assert limits.max_send_size == LIMIT - 1024
    messaging = alice.messaging
    # Four times the frame limit: had it been written, the server would have closed the
    # connection with FRAME_TOO_LARGE instead of refusing it.
    huge = {"pad": "x" * (4 * LIMIT)}
    just_over = {"pad": "x" * (LIMIT - 1000)}
    for call in (
        lambda: messaging.send_message(to=to, type="big", message=huge),
        lambda: messaging.send_message(to=to, type="big", message=huge, wait=False),
        lambda: messaging.broadcast_message(type="big", message=just_over),
        lambda: messaging.send_message(
            to=to, type="big", message={}, attachment=b"\x00" * LIMIT, wait=False
        ),
    ):
        with pytest.raises(TooLargeError) as caught:
            await call()
        assert caught.value.code is Code.TOO_LARGE
        assert alice.connected
    # Nothing was written: the next message is the first bob sees, and the server never
    # refused or closed anything.
    await messaging.send_message(to=to, type="small", message={"n": 1})
    await messaging.broadcast_message(type="small", message={"n": 2})
    await bob.wait_for(2)
    assert [(m.type, m.message["n"]) for m in bob.messages] == [("small", 1), ("small", 2)]
    assert alice.connected
    assert server.connection_count == 2


async def _participant(room: Any, name: str) -> Any:
    await wait_until(lambda: room.messaging.get_participant_by_name(name) is not None)
    return room.messaging.get_participant_by_name(name)
