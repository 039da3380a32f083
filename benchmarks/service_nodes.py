"""A pass-through service on another Redis node against delivery without a service, side by
side in one run (docs/PROTOCOL.md §23.6).

Run: ``python benchmarks/service_nodes.py [--quick]``. Needs ``redis-server`` on the PATH: the
script starts its own (loopback, a free port, no persistence) and two ``roomwire serve
--redis`` nodes, A and B, as subprocesses, and stops them all by pid.

The clients connect to node B. In room ``direct`` no service is attached: each message goes
B -> Redis -> B. In room ``served`` the pass-through service (``forward(up, wait=False)``,
in this process) is attached on node A: each message goes B -> Redis -> A -> service -> A ->
Redis -> B, so twice the hops of the baseline is its floor. Lines: echo latency p50 and p99,
one message at a time; messages/s to one receiver. It prints ratios; it never fails on speed.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import anyio
import roomwire_asyncio as rw
from _service_server import pass_through
from redis_backplane import start_node, start_redis, stop
from service import echo_latency, options, report, throughput

SETTLE = 0.5
"""Seconds for node B to hear the service's claim before the measured room gets traffic."""


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as directory:
        redis, redis_url = start_redis(Path(directory))
        processes = [redis]
        try:
            node_a, url_a = start_node(redis_url, "a")
            processes.append(node_a)
            node_b, url_b = start_node(redis_url, "b")
            processes.append(node_b)
            async with anyio.create_task_group() as tg:
                ready = anyio.Event()
                tg.start_soon(pass_through, url_a, "served", ready.set)
                await ready.wait()
                await anyio.sleep(SETTLE)
                # Both rooms in turn, as benchmarks/service.py measures them.
                times = await echo_latency(url_b, ["direct", "served"], args.echoes)
                rates = {room: await throughput(url_b, room, args.messages) for room in times}
                tg.cancel_scope.cancel()
        finally:
            for process in reversed(processes):
                stop(process)
    print(f"{args.echoes} echoes, {args.messages} messages; the clients on node B, the")
    print("pass-through service on node A (in this process), the nodes and Redis in their own")
    served = (times["served"], rates["served"])
    report((times["direct"], rates["direct"]), {"on the other node": served})


if __name__ == "__main__":
    rw.run(main(options(__doc__.split("\n\n")[0])))
