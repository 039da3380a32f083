"""Item 4: a slow consumer, against a server in its own process (default ``outbound_limit``,
1 MiB).

One raw participant enables messaging and then stops reading. A sender broadcasts 4 KiB
messages as fast as two fast participants read them (it never runs more than ``WINDOW``
messages ahead of them). Once the kernel's socket buffers towards the slow one are full, the
server's queue for it grows; the frame that arrives while more than the bound waits closes it
with SLOW_CONSUMER. The test then lets it read: it gets a gap-free prefix of the messages, then
the close. The fast participants get every message, gap-free, and see the slow one leave
once; the server's memory stays within ``RSS_BOUND`` of where it started.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from roomwire import Code

from . import Inbox, MiB, close_codes, raw_peer, wait_until
from .conftest import Figures, StartServer

pytestmark = pytest.mark.anyio

LIMIT = MiB
"""The server's outbound_limit (its default)."""
ATTACHMENT = 4096
FRAME_OVERHEAD = 128
"""Bytes of a delivery frame besides its attachment (prefix, keys, id, seq, ts, from...):
about 100, rounded up."""
WINDOW = 64
"""Messages the sender may be ahead of the slowest fast reader (256 KiB, under the bound)."""
AFTER = 300
"""Messages sent after the slow one was seen to leave."""
MOST = 20_000
"""Messages after which the slow one must have been closed (80 MiB: far past any buffer)."""
RSS_BOUND = 8 * MiB
"""Bytes the server's peak resident memory may grow by (the slow queue holds at most the
bound plus one frame; the rest is write buffers and allocator slack)."""


async def test_a_reader_that_stops_is_closed_and_nobody_else_loses_anything(
    server_proc: StartServer, make_token: Any, rw: Any, figures: Figures
) -> None:
    server = await server_proc(outbound_limit=LIMIT)
    async with (
        raw_peer(server.url, make_token("slow"), enable=True) as slow,
        rw.connect(server.url, token=make_token("sender"), reconnect=False) as sender,
        rw.connect(server.url, token=make_token("fast1"), reconnect=False) as fast1,
        rw.connect(server.url, token=make_token("fast2"), reconnect=False) as fast2,
    ):
        fast = [Inbox(fast1), Inbox(fast2)]
        for room in (sender, fast1, fast2):
            await room.messaging.enable()
        for inbox in fast:
            await wait_until(lambda inbox=inbox: len(inbox.room.messaging.remote_participants) == 3)
        baseline = server.rss()
        me = sender.local_participant.id
        attachment = b"\xab" * ATTACHMENT
        sent = 0
        closed_at: int | None = None
        with anyio.fail_after(60):
            while closed_at is None or sent < closed_at + AFTER:
                if sent >= MOST:
                    raise AssertionError(f"the slow reader was not closed after {sent} messages")
                while min(len(i.messages) for i in fast) < sent - WINDOW:
                    await anyio.sleep(0.001)
                await sender.messaging.broadcast_message(
                    type="bulk", message={"n": sent}, attachment=attachment, wait=False
                )
                sent += 1
                if closed_at is None and all(slow.id in i.removed for i in fast):
                    closed_at = sent
            await sender.messaging.broadcast_message(type="bulk", message={"n": sent})
            sent += 1
        peak = server.hwm()
        # The slow reader reads at last: a gap-free prefix of the messages, then its close.
        frames = await slow.rest(timeout=10)
        got = [f["message"]["n"] for f in frames if f["t"] == "msg"]
        assert close_codes(frames) == [Code.SLOW_CONSUMER]
        assert frames[-1]["t"] == "close"
        assert got == list(range(len(got)))
        for inbox in fast:
            await inbox.wait_for(sent, timeout=10)
            assert inbox.numbers_from(me) == list(range(sent))  # every message, gap-free
            seqs = [m.seq for m in inbox.messages]
            assert seqs == sorted(set(seqs))
            assert inbox.removed == [slow.id]  # the slow one left, once
        # It was closed when its queue passed the bound, not before: every message routed
        # while it was present and not read by it was queued, then dropped with the queue.
        routed = fast[0].messages_before[slow.id]
        assert routed == fast[1].messages_before[slow.id]
        dropped = routed - len(got)
        assert dropped * (ATTACHMENT + FRAME_OVERHEAD) > LIMIT
        assert (dropped - 2) * ATTACHMENT <= LIMIT
        assert peak - baseline <= RSS_BOUND
        stats = await server.stats()
    figures(
        messages=sent,
        lost_by_fast=sum(sent - len(set(i.numbers_from(me))) for i in fast),
        slow_read_before_close=len(got),
        slow_dropped_messages=dropped,
        dropped_kib=dropped * (ATTACHMENT + 100) // 1024,
        server_rss_peak_delta_mib=round((peak - baseline) / MiB, 1),
        server_tasks_after=stats["tasks"],
    )
