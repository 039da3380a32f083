"""Issue 17: a stream's reader that does not read costs the server at most ``stream_window``
(1 MiB by default), against a server in its own process, measured from /proc.

Two writers push 64 MiB at a reader whose socket is never read after it accepted: a raw one
that ignores the credit (the server forwards the window, aborts the stream at the first
chunk past it, and answers every later chunk with a small ``abort``), and the bindings' own
writer (it stops at the window by itself). Either way the server's resident memory stays
within ``RSS_BOUND`` of where it started, and nothing of the rest is queued for the reader.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from roomwire import Code

from . import MiB, RawPeer, raw_peer
from .conftest import Figures, StartServer

pytestmark = pytest.mark.anyio

PUSHED = 64 * MiB
CHUNK = 64 * 1024
WINDOW = MiB
"""The server's stream_window (its default)."""
RSS_BOUND = 8 * MiB


async def offer_accepted(reader: RawPeer) -> str:
    """The reader accepts the stream offered to it; its id."""
    offer = await reader.until("open")
    await reader.send_frame("accept", rid=2, sid=offer["sid"])
    await reader.until("ack")
    return str(offer["sid"])


async def test_a_writer_ignoring_the_credit_cannot_fill_the_server(
    server_proc: StartServer, make_token: Any, figures: Figures
) -> None:
    server = await server_proc()
    async with (
        raw_peer(server.url, make_token("reader"), enable=True) as reader,
        raw_peer(server.url, make_token("writer"), enable=True) as writer,
    ):
        await writer.send_frame("open", rid=2, to=reader.id, header={})
        sid = await offer_accepted(reader)
        assert (await writer.until("ack"))["id"] == sid
        baseline = server.rss()
        aborts: list[dict[str, Any]] = []

        async def drain_writer() -> None:
            while (found := await writer.recv(timeout=60)) is not None:
                if found["t"] == "abort":
                    aborts.append(found)

        chunk = {"sid": sid, "data": b"\x5a" * CHUNK}
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(drain_writer)
                for _ in range(PUSHED // CHUNK):
                    await writer.send_frame("chunk", **chunk)
                await writer.send_frame("ping")
                while len(aborts) < PUSHED // CHUNK - WINDOW // CHUNK:
                    await anyio.sleep(0.05)
                tg.cancel_scope.cancel()
        peak, after = server.hwm(), server.rss()
        assert aborts[0]["code"] == Code.OVER_CREDIT
        assert {a["code"] for a in aborts[1:]} == {Code.STREAM_NOT_FOUND}
        # Only now does the reader read: the window's worth of chunks, then the abort.
        received = 0
        while (found := await reader.recv(timeout=10)) is not None and found["t"] == "chunk":
            received += len(found["data"])
        assert received == WINDOW
        assert found is not None
        assert (found["t"], found["code"]) == ("abort", Code.OVER_CREDIT)
    assert peak - baseline <= RSS_BOUND
    figures(
        pushed_mib=PUSHED // MiB,
        forwarded_kib=received // 1024,
        rss_peak_delta_kib=(peak - baseline) // 1024,
        rss_after_delta_kib=(after - baseline) // 1024,
    )


async def test_the_bindings_writer_stops_at_the_window(
    server_proc: StartServer, make_token: Any, rw: Any, figures: Figures
) -> None:
    server = await server_proc()
    async with (
        raw_peer(server.url, make_token("reader"), enable=True) as reader,
        rw.connect(server.url, token=make_token("writer"), reconnect=False) as room,
    ):
        await room.messaging.enable()
        written = 0
        baseline = server.rss()
        async with anyio.create_task_group() as tg:
            tg.start_soon(offer_accepted, reader)
            writer = await room.messaging.create_stream(to=reader.id, header={"size": PUSHED})
        with anyio.move_on_after(3):  # the writer would take a fraction of this for 64 MiB
            for _ in range(PUSHED // CHUNK):
                await writer.write(rw.MessageStreamChunk(data=b"\x5a" * CHUNK))
                written += CHUNK
        peak = server.hwm()
        assert written == WINDOW  # then it waited for credit that never came
        await writer.abort("done")
    assert peak - baseline <= RSS_BOUND
    figures(written_kib=written // 1024, rss_peak_delta_kib=(peak - baseline) // 1024)
