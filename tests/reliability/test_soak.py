"""Item 10: the soak. Out of the default run (``slow``); run it with

    pytest -m slow tests/reliability -k soak

for ``ROOMWIRE_SOAK_SECONDS`` per runtime (default 600: ten minutes each on asyncio and trio;
add ``-k "soak and trio"`` for one runtime).

A server in its own process (heartbeat scaled to 1 s + 0.4 s, handshake timeout 1 s) carries
mixed traffic: five steady participants broadcast and send sequence-numbered messages all
along, while three churn workers connect and leave in every way there is — clean closes
through the binding, abrupt hang-ups, garbage (BAD_FRAME), silence before the hello
(HANDSHAKE_TIMEOUT), silence after enabling (HEARTBEAT_TIMEOUT). The run is cut into
``CHECKPOINTS`` phases; after each, churn pauses until only the steady participants are
connected and the server's open descriptors (/proc/<pid>/fd), event-loop tasks and resident
memory are sampled. The first checkpoint is the baseline, taken once everything has been
exercised. Bounds: descriptors and tasks back to the baseline (``FD_SLACK`` / ``TASK_SLACK``
spare), resident memory within ``RSS_BOUND`` of it; the steady participants lose nothing.
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest

from roomwire import RoomMessage

from . import MiB, frame, raw_peer, wait_until
from .conftest import Figures, StartServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

DURATION = float(os.environ.get("ROOMWIRE_SOAK_SECONDS", "600"))
CHECKPOINTS = 12
STEADY = 5
CHURN_WORKERS = 3
PACE = 0.05
"""Seconds between one steady participant's messages."""
FD_SLACK = 2
TASK_SLACK = 2
RSS_BOUND = 16 * MiB
HEARTBEAT, HEARTBEAT_TIMEOUT, HANDSHAKE_TIMEOUT = 1.0, 0.4, 1.0
SETTLE = 10.0
"""Seconds for leftover connections to close after churn pauses (they end within the
heartbeat interval plus timeout at most)."""


class Counter:
    """Per-sender order check for one steady participant, message by message."""

    def __init__(self, room: Any) -> None:
        self.room = room
        self.next_n: dict[str, int] = {}
        self.count = 0
        self.out_of_order = 0
        room.messaging.on("message", self.on_message)

    def on_message(self, message: RoomMessage) -> None:
        if message.type != "steady":
            return
        sender = message.from_participant_id
        n = message.message["n"]
        if n != self.next_n.get(sender, 0):
            self.out_of_order += 1
        self.next_n[sender] = n + 1
        self.count += 1


async def test_soak(server_proc: StartServer, make_token: Any, rw: Any, figures: Figures) -> None:
    server = await server_proc(
        heartbeat_interval=HEARTBEAT,
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
        handshake_timeout=HANDSHAKE_TIMEOUT,
    )
    phase = DURATION / CHECKPOINTS
    churned: dict[str, int] = {}

    async def churn_once(kind: int, name: str) -> None:
        token = make_token(name)
        if kind == 0:  # a polite participant through the binding
            async with rw.connect(server.url, token=token, reconnect=False) as room:
                await room.messaging.enable()
                steady = room.messaging.get_participant_by_name("steady0")
                for n in range(3):
                    await room.messaging.send_message(to=steady, type="hi", message={"n": n})
                await room.set_attributes({"mood": "churning", "n": kind})
                await room.messaging.broadcast_message(type="bye", message={})
        elif kind == 1:  # hangs up without a close frame
            async with raw_peer(server.url, token, enable=True) as peer:
                await peer.send_frame("broadcast", type="x", message={"a": 1}, rid=2)
                await peer.until("ack")
        elif kind == 2:  # garbage: closed with BAD_FRAME
            async with raw_peer(server.url, token) as peer:
                await peer.send(frame("enable", rid=1)[:-1] + b"\xff" + os.urandom(64))
                await peer.rest(timeout=SETTLE)
        elif kind == 3:  # silent before the hello: HANDSHAKE_TIMEOUT
            async with raw_peer(server.url) as peer:
                await peer.rest(timeout=SETTLE)
        else:  # silent after enabling: HEARTBEAT_TIMEOUT
            async with raw_peer(server.url, token, enable=True) as peer:
                await peer.rest(timeout=SETTLE)
        churned[str(kind)] = churned.get(str(kind), 0) + 1

    async def churn(worker: int) -> None:
        n = 0
        while n < 10**6:
            await churn_once((n + worker) % 5, f"churn-{worker}-{n}")
            n += 1

    samples: list[dict[str, Any]] = []
    async with AsyncExitStack() as stack:
        rooms = [
            await stack.enter_async_context(
                rw.connect(server.url, token=make_token(f"steady{i}"), reconnect=False)
            )
            for i in range(STEADY)
        ]
        counters = [Counter(room) for room in rooms]
        for room in rooms:
            await room.messaging.enable()
        for room in rooms:
            await wait_until(lambda room=room: len(room.messaging.remote_participants) >= 4)
        sent: dict[str, int] = {}

        async def steady(room: Any, stop: anyio.Event) -> None:
            n = 0
            others = [r.local_participant.id for r in rooms if r is not room]
            while not stop.is_set() and n < 10**7:
                if n % 2:
                    await room.messaging.broadcast_message(
                        type="steady", message={"n": n}, wait=False
                    )
                else:
                    await room.messaging.send_message(
                        to=others, type="steady", message={"n": n}, wait=False
                    )
                n += 1
                await anyio.sleep(PACE)
            await room.messaging.broadcast_message(type="steady", message={"n": n})
            sent[room.local_participant.id] = n + 1

        stop = anyio.Event()
        start = anyio.current_time()
        async with anyio.create_task_group() as traffic:
            for room in rooms:
                traffic.start_soon(steady, room, stop)
            for _ in range(CHECKPOINTS):
                with anyio.move_on_after(phase):
                    async with anyio.create_task_group() as tg:
                        for worker in range(CHURN_WORKERS):
                            tg.start_soon(churn, worker)
                # Churn paused: wait for its leftovers to close, then sample.
                with anyio.fail_after(SETTLE):
                    while (stats := await server.stats())["connections"] != STEADY:
                        await anyio.sleep(0.1)
                stats["t"] = round(anyio.current_time() - start)
                samples.append(stats)
            stop.set()
        for counter in counters:
            mine = counter.room.local_participant.id
            expected = sum(n for sender, n in sent.items() if sender != mine)
            await wait_until(lambda counter=counter, e=expected: counter.count >= e)
            assert counter.count == expected
            assert counter.out_of_order == 0

    baseline, last = samples[0], samples[-1]
    for sample in samples[1:]:
        assert sample["fds"] <= baseline["fds"] + FD_SLACK, samples
        assert sample["tasks"] <= baseline["tasks"] + TASK_SLACK, samples
        assert sample["rss"] - baseline["rss"] <= RSS_BOUND, samples
    figures(
        seconds=round(anyio.current_time() - start),
        connections_churned=sum(churned.values()),
        by_kind=churned,
        steady_messages=sum(sent.values()),
        steady_lost=sum(
            sum(n for s, n in sent.items() if s != c.room.local_participant.id) - c.count
            for c in counters
        ),
        fds=[s["fds"] for s in samples],
        tasks=[s["tasks"] for s in samples],
        rss_mib=[round(s["rss"] / MiB, 1) for s in samples],
        rss_growth_kib=(last["rss"] - baseline["rss"]) // 1024,
    )
