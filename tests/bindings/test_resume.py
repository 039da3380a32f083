"""Resume after reconnect (PROTOCOL.md §22) over real sockets, on asyncio and trio: a
connection cut by a proxy (no close frame either way) comes back with the same participant
id, gets everything it missed in order before live traffic, and the others see no presence
flicker; past the window it is removed once and comes back as a new participant."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import anyio
import pytest

from roomwire.events import MessageReceived, ParticipantAdded, ParticipantRemoved

from . import WAIT, Join, next_event
from .proxy import proxy

pytestmark = pytest.mark.anyio

SENT = 200
"""Broadcasts sent around the cut."""


def fast(rw: ModuleType) -> Any:
    return rw.ReconnectPolicy(first_delay=0.01, max_delay=0.05, give_up_after=WAIT)


async def until(check: Callable[[], bool]) -> None:
    """Wait (bounded) for a condition the server reaches within milliseconds."""
    with anyio.fail_after(WAIT):
        while not check():
            await anyio.sleep(0.005)


def presence_log(room: Any) -> list[tuple[str, str]]:
    log: list[tuple[str, str]] = []
    room.messaging.on("participant_added", lambda p: log.append(("added", p.name)))
    room.messaging.on("participant_removed", lambda p: log.append(("removed", p.name)))
    return log


async def test_a_cut_connection_resumes_with_the_same_id_and_nothing_lost(
    rw: ModuleType, server: Any, join: Join, make_token: Callable[..., str]
) -> None:
    bob, carol = await join("bob"), await join("carol")
    async with (
        proxy(server.port) as cutter,
        rw.connect(cutter.url(), token=make_token("alice"), reconnect=fast(rw)) as alice,
    ):
        await alice.messaging.enable()
        alice_id = alice.local_participant.id
        seen = presence_log(carol)
        got: list[tuple[bool, int]] = []
        alice.messaging.on("message", lambda m: got.append((m.broadcast, m.message["n"])))
        for n in range(SENT // 2):
            await bob.messaging.broadcast_message(type="n", message={"n": n})
        await until(lambda: len(got) >= SENT // 4)  # cut while the stream flows
        cutter.paused = True  # the reconnect waits until the gap has been used
        cutter.sever()
        await until(lambda: server.core.suspended_count == 1)
        # Present meanwhile: a direct message to its id is accepted, broadcasts go on.
        await bob.messaging.send_message(to=alice_id, type="n", message={"n": -1})
        for n in range(SENT // 2, SENT):
            await bob.messaging.broadcast_message(type="n", message={"n": n})
        cutter.paused = False
        back = await next_event(alice, rw.Reconnected)
        assert back.participant.id == alice_id
        assert back.recovered is True
        assert back.missed >= SENT // 2 + 1
        await until(lambda: len(got) == SENT + 1)
        assert [n for broadcast, n in got if broadcast] == list(range(SENT))  # order, no loss
        assert [n for broadcast, n in got if not broadcast] == [-1]
        # Live traffic after the replay, on the same id.
        await bob.messaging.broadcast_message(type="n", message={"n": SENT})
        await until(lambda: len(got) == SENT + 2)
        assert got[-1] == (True, SENT)
        assert alice.local_participant.id == alice_id
        assert cutter.connections == 2
    assert ("removed", "alice") in seen  # its clean close at the end of the block
    assert seen == [("removed", "alice")]  # and never before: no flicker


@pytest.mark.server(resume_window=0.2)
async def test_past_the_window_it_is_removed_once_and_comes_back_new(
    rw: ModuleType, server: Any, join: Join, make_token: Callable[..., str]
) -> None:
    carol = await join("carol")
    async with (
        proxy(server.port) as cutter,
        rw.connect(cutter.url(), token=make_token("alice"), reconnect=fast(rw)) as alice,
    ):
        await alice.messaging.enable()
        alice_id = alice.local_participant.id
        cutter.paused = True
        cutter.sever()
        removed = await next_event(carol, ParticipantRemoved)
        assert removed.participant.id == alice_id
        cutter.paused = False
        back = await next_event(alice, rw.Reconnected)
        assert back.participant.id != alice_id
        assert back.recovered is False
        added = await next_event(carol, ParticipantAdded)
        assert added.participant.id == back.participant.id
        # Enabled again (by the server, at the welcome): messages flow.
        mid = await carol.messaging.send_message(to=back.participant, type="n", message={})
        got = await next_event(alice, MessageReceived, lambda e: e.message.id == mid)
        assert got.message.from_participant_id == carol.local_participant.id
