"""Resume across a server restart with SQLite history (PROTOCOL.md §22), both runtimes: a
client cut off before the restart comes back through a proxy with a new participant id.
After a clean stop the epoch goes on: it gets every message it missed, in order
(recovered). After kill -9 the epoch is new (§21.2): it learns recovered=False. Never
silence: either everything acknowledged arrives, or the client is told."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

from ..bindings import WAIT, next_event
from ..bindings.proxy import proxy
from .conftest import StartServer

pytestmark = pytest.mark.anyio

BEFORE, DURING = 10, 10
"""Broadcasts the receiver gets live, then those sent while it is away."""


@pytest.mark.parametrize("stop", ["clean", "kill -9"])
async def test_a_resume_after_a_restart_recovers_everything_or_says_so(
    rw: ModuleType, server_proc: StartServer, make_token: Any, tmp_path: Path, stop: str
) -> None:
    history = f"sqlite:///{tmp_path / 'history.db'}"
    first = await server_proc(history=history)
    port = int(first.url.rpartition(":")[2])
    policy = rw.ReconnectPolicy(first_delay=0.01, max_delay=0.05, give_up_after=WAIT * 4)
    got: list[int] = []
    async with (
        proxy(port) as cutter,
        rw.connect(cutter.url(), token=make_token("receiver"), reconnect=policy) as receiver,
    ):
        receiver.messaging.on("message", lambda m: got.append(m.message["n"]))
        with anyio.fail_after(WAIT):
            await receiver.messaging.enable()
        old_id = receiver.local_participant.id
        acked: list[int] = []
        async with rw.connect(first.url, token=make_token("sender"), reconnect=False) as sender:
            with anyio.fail_after(WAIT):
                await sender.messaging.enable()
                for n in range(BEFORE):
                    await sender.messaging.broadcast_message(type="n", message={"n": n})
                    acked.append(n)
                while len(got) < BEFORE:
                    await anyio.sleep(0.005)
                cutter.paused = True
                cutter.sever()
                for n in range(BEFORE, BEFORE + DURING):
                    await sender.messaging.broadcast_message(type="n", message={"n": n})
                    acked.append(n)  # acknowledged: stored (PROTOCOL.md §21.3)
            if stop == "kill -9":
                os.kill(first.pid, signal.SIGKILL)
        await first.stop()  # clean: end of stdin; killed already: reaps it
        second = await server_proc(history=history)
        cutter.target = int(second.url.rpartition(":")[2])
        cutter.paused = False
        back = await next_event(receiver, rw.Reconnected, timeout=WAIT * 4)
        assert back.participant.id != old_id  # a new server holds no suspended participant
        if stop == "clean":
            assert back.recovered is True
            assert back.missed == DURING
            with anyio.fail_after(WAIT):
                while len(got) < len(acked):
                    await anyio.sleep(0.005)
            assert got == acked  # every acknowledged message, in order, once
        else:
            assert back.recovered is False  # the view is stale, and the client is told
            assert got == acked[:BEFORE]
