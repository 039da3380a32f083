"""A pass-through service against direct delivery, side by side in one run (issue 16's goals).

Run: ``python benchmarks/service.py [--quick]``.

One roomwire server (asyncio, uvloop) on 127.0.0.1 in a child process; the clients run here.
Three rooms on it: in ``direct`` messages go straight to their recipients; in the two others
a service (``room.service``) attaches and forwards every message as sent, its decisions
pipelined (``forward(up, wait=False)``): once running in the clients' process, once in a
process of its own (as a deployed one would be).

- echo latency: a participant sends to itself and waits for the delivery, one message at a
  time, the three rooms taking turns message by message; p50 and p99 (goal: serviced p50
  <= 2x direct);
- throughput: a sender queues N messages to a receiver (``wait=False``); messages/s until the
  last one arrives, best of three rounds with the rooms in turn (goal: serviced >= 0.5x
  direct).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import roomwire_asyncio as rw
from _service_server import pass_through

from roomwire import ParticipantToken, RoomMessage

HERE = Path(__file__).resolve().parent
ROUNDS = 3
"""Throughput rounds per room; each room's best is kept."""
BLOCK = 50
"""Echoes per room per turn (echo latency)."""
SECRET = "benchmark-secret-that-is-long-enough-for-hs256"


def token(room: str, name: str, **grants: Any) -> str:
    return ParticipantToken(room=room, name=name, **grants).to_jwt(SECRET)


class Echo:
    """A participant that sends to itself: ``once`` times one message until its delivery."""

    def __init__(self, client: rw.RoomClient) -> None:
        self.client = client
        self.got = anyio.Event()
        client.messaging.on("message", lambda message: self.got.set())

    async def once(self, n: int) -> float:
        me = self.client.local_participant
        assert me is not None
        self.got = anyio.Event()
        start = time.perf_counter()
        await self.client.messaging.send_message(to=me, type="echo", message={"n": n}, wait=False)
        with anyio.fail_after(10):
            await self.got.wait()
        return time.perf_counter() - start


async def echo_latency(url: str, rooms: list[str], count: int) -> dict[str, list[float]]:
    """Echo round trips in every room, taking turns block by block, so that a change of load
    on the machine falls on every room alike. Blocks, not single messages: what one room
    leaves in flight (a service's trailing acks) would otherwise fall on the next room's
    echo, and no room would run warm; a block's first echo is not counted."""
    async with AsyncExitStack() as stack:
        echoes = {}
        for room in rooms:
            client = await stack.enter_async_context(rw.connect(url, token=token(room, "echo")))
            echoes[room] = Echo(client)
            await client.messaging.enable()
        times: dict[str, list[float]] = {room: [] for room in rooms}
        for start in range(0, count + count // 10, BLOCK):  # the first tenth warms up
            for room, echo in echoes.items():
                for n in range(start, start + BLOCK + 1):
                    took = await echo.once(n)
                    if n > start >= count // 10:
                        times[room].append(took)
        return times


async def throughput(url: str, room: str, count: int) -> float:
    async with (
        rw.connect(url, token=token(room, "rx")) as rx,
        rw.connect(url, token=token(room, "tx")) as tx,
    ):
        done = anyio.Event()
        seen = 0

        def arrived(message: RoomMessage) -> None:
            nonlocal seen
            seen += 1
            if seen == count:
                done.set()

        rx.messaging.on("message", arrived)
        await rx.messaging.enable()
        await tx.messaging.enable()
        to = rx.local_participant
        assert to is not None
        start = time.perf_counter()
        for n in range(count):
            await tx.messaging.send_message(to=to, type="t", message={"n": n}, wait=False)
        with anyio.fail_after(120):
            await done.wait()
        return count / (time.perf_counter() - start)


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "_service_server.py"), *args], stdout=subprocess.PIPE, text=True
    )


def first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


async def main(args: argparse.Namespace) -> None:
    server = start("serve")
    service = None
    rooms = ["direct", "beside", "apart"]
    try:
        url = first_line(server)
        service = start("pass", url, "apart")
        assert first_line(service) == "READY"
        async with anyio.create_task_group() as tg:
            ready = anyio.Event()
            tg.start_soon(pass_through, url, "beside", ready.set)
            await ready.wait()
            times = await echo_latency(url, rooms, args.echoes)
            rates = dict.fromkeys(rooms, 0.0)
            for turn in range(ROUNDS):  # best of the rounds, rooms in turn (order rotated)
                for room in rooms[turn % 3 :] + rooms[: turn % 3]:
                    rates[room] = max(rates[room], await throughput(url, room, args.messages))
            tg.cancel_scope.cancel()
    finally:
        for process in (service, server):
            if process is not None:
                process.terminate()
                process.wait(10)
    direct = (times["direct"], rates["direct"])
    serviced = {
        "in the clients' process": (times["beside"], rates["beside"]),
        "in its own process": (times["apart"], rates["apart"]),
    }
    print(f"{args.echoes} echoes, {args.messages} messages; the server on uvloop in its own")
    print("process, the clients here; the pass-through service here, then in its own process")
    report(direct, serviced)


def report(
    direct: tuple[list[float], float], serviced: dict[str, tuple[list[float], float]]
) -> None:
    """One table: each serviced run's latency and throughput next to direct delivery's."""

    def p50(times: list[float]) -> float:
        return statistics.median(times) * 1e6

    def p99(times: list[float]) -> float:
        return statistics.quantiles(times, n=100)[98] * 1e6

    print("| | direct | service | ratio | goal |")
    print("|---|---|---|---|---|")
    (d_times, d_rate) = direct
    for where, (s_times, s_rate) in serviced.items():
        d50, s50 = p50(d_times), p50(s_times)
        print(
            f"| echo p50 (us), service {where} | {d50:.0f} | {s50:.0f} | {s50 / d50:.2f}x | <= 2x |"
        )
        d99, s99 = p99(d_times), p99(s_times)
        print(f"| echo p99 (us), service {where} | {d99:.0f} | {s99:.0f} | {s99 / d99:.2f}x | |")
        ratio = s_rate / d_rate
        print(f"| msg/s, service {where} | {d_rate:.0f} | {s_rate:.0f} | {ratio:.2f}x | >= 0.5x |")


def options(description: str) -> argparse.Namespace:
    """The command line both service benchmarks take: ``--quick`` for a smoke run."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    parsed = parser.parse_args()
    parsed.echoes, parsed.messages = (100, 1000) if parsed.quick else (2000, 20000)
    return parsed


if __name__ == "__main__":
    rw.run(main(options(__doc__.split("\n\n")[0])))
