"""A server with SQLite history killed with SIGKILL right after acknowledging messages, then
restarted on the same file, both runtimes: every acknowledged message is in its history, the
room's seq goes on after the stored ones, and the epoch is new (a crash may have handed out
seqs it never stored: no position from before is trusted, PROTOCOL.md §21.2)."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

from ..bindings import WAIT
from .conftest import StartServer

pytestmark = pytest.mark.anyio

SENDERS = 4


def epoch(path: Path) -> str:
    with sqlite3.connect(path) as db:
        (value,) = db.execute("SELECT value FROM roomwire_meta WHERE key = 'epoch'").fetchone()
        return str(value)


async def test_every_acknowledged_message_survives_kill_9(
    rw: ModuleType,
    server_proc: StartServer,
    make_token: Any,
    tmp_path: Path,
    figures: Any,
) -> None:
    path = tmp_path / "history.db"
    history = f"sqlite:///{path}"
    server = await server_proc(history=history)
    acked: list[str] = []
    killed = anyio.Event()

    async def send(name: str) -> None:
        token = make_token(name)
        try:
            async with rw.connect(server.url, token=token, reconnect=False) as client:
                await client.messaging.enable()
                for n in range(10_000):
                    message_id = await client.messaging.broadcast_message(
                        type="chat", message={"from": name, "n": n}
                    )
                    acked.append(message_id)
                    if len(acked) == 200 and not killed.is_set():
                        # Right after an ack, with the other senders' messages in flight.
                        os.kill(server.pid, signal.SIGKILL)
                        killed.set()
        except (rw.ConnectionClosedError, OSError):
            pass  # the server is gone: what was acked before is what counts

    with anyio.fail_after(WAIT * 4):
        async with anyio.create_task_group() as tg:
            for index in range(SENDERS):
                tg.start_soon(send, f"sender{index}")
    assert killed.is_set()
    before = epoch(path)
    await server.stop()

    again = await server_proc(history=history)
    async with rw.connect(again.url, token=make_token("reader"), reconnect=False) as reader:
        with anyio.fail_after(WAIT):
            await reader.messaging.enable()
            kept = await reader.messaging.history(limit=1000)
            stored = {m.id for m in kept}
            assert set(acked) <= stored, f"{len(set(acked) - stored)} acked messages lost"
            after = await reader.messaging.broadcast_message(type="chat", message={})
            (mine,) = await reader.messaging.history(since=kept[-1].seq)
    assert mine.id == after
    assert mine.seq > kept[-1].seq  # the seq goes on after what was stored
    assert epoch(path) != before  # a crash starts a new epoch
    figures(acked=len(acked), stored=len(stored), lost=len(set(acked) - stored))
