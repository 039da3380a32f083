"""Item 5: a dead peer (it stops sending and never hangs up: no FIN) is removed from presence
exactly once, within heartbeat interval + timeout (+ a margin).

Timings are scaled from the defaults (25 s + 10 s) keeping their ratio: 0.5 s + 0.2 s (not
less: the live watchers, in a test process that may stall under load, must not be mistaken
for dead themselves). The
time to removal is measured from the last byte the dead peer sent to the ``left`` the
watchers receive. The server cannot declare it dead before interval + timeout after hearing
it last, so that is the lower bound; the margin above it is the upper one.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from roomwire import Code

from . import Inbox, close_codes, raw_peer, wait_until
from .conftest import Figures

pytestmark = pytest.mark.anyio

INTERVAL, TIMEOUT = 0.5, 0.2
DEAD_AFTER = INTERVAL + TIMEOUT
MARGIN = 0.3
"""Seconds the removal may come after ``DEAD_AFTER`` (timer and scheduling slack)."""
PEERS = 3
STAGGER = 0.1
"""Seconds between the dead peers' last frames, so their deadlines differ."""


# No resume window (PROTOCOL.md §22): a timed-out peer is removed at the timeout itself.
@pytest.mark.server(heartbeat_interval=INTERVAL, heartbeat_timeout=TIMEOUT, resume_window=0)
async def test_a_silent_peer_is_removed_once_within_interval_plus_timeout(
    join: Any, server: Any, make_token: Any, figures: Figures
) -> None:
    watchers = [Inbox(await join(f"w{i}")) for i in range(2)]
    removed_at: dict[tuple[str, str], list[float]] = {}
    for inbox in watchers:

        def on_removed(participant: Any, me: str = inbox.id) -> None:
            removed_at.setdefault((me, participant.id), []).append(anyio.current_time())

        inbox.room.messaging.on("participant_removed", on_removed)

    last_sent: dict[str, float] = {}
    closes: dict[str, list[int]] = {}
    pings: dict[str, int] = {}

    async def die(n: int) -> None:
        await anyio.sleep(n * STAGGER)
        async with raw_peer(server.url, make_token(f"dead{n}")) as peer:
            await peer.send_frame("enable", rid=1)
            last_sent[peer.participant["id"]] = anyio.current_time()  # type: ignore[index]
            # From here on it sends nothing and keeps the socket open; it only reads.
            frames = await peer.rest(timeout=DEAD_AFTER + MARGIN + 2)
            pings[peer.id] = sum(f["t"] == "ping" for f in frames)
            closes[peer.id] = close_codes(frames)

    async with anyio.create_task_group() as tg:
        for n in range(PEERS):
            tg.start_soon(die, n)
    # Everyone gone; wait two more deadlines for a duplicate `left` that must not come.
    await anyio.sleep(2 * DEAD_AFTER)

    delays = []
    for dead, sent in last_sent.items():
        assert closes[dead] == [Code.HEARTBEAT_TIMEOUT]
        assert pings[dead] >= 1  # the server kept pinging it until the end
        for inbox in watchers:
            times = removed_at[(inbox.id, dead)]
            assert len(times) == 1  # exactly once
            assert inbox.room.messaging.get_participant(dead) is None
            delays.append(times[0] - sent)
    assert len(delays) == PEERS * len(watchers)
    assert all(DEAD_AFTER - 0.005 <= d <= DEAD_AFTER + MARGIN for d in delays), delays
    assert all(inbox.room.connected for inbox in watchers)
    await wait_until(lambda: server.connection_count == len(watchers))
    figures(
        bound_s=DEAD_AFTER,
        removal_min_s=round(min(delays), 3),
        removal_max_s=round(max(delays), 3),
        lefts_per_dead_peer_per_watcher=sorted({len(t) for t in removed_at.values()}),
    )
