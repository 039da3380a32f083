"""CPU time per operation for a base revision and this tree, side by side in one run.

Wall-clock rates on a shared 2-core machine swing by 2x when other jobs run; the CPU time a
process spends per message swings far less. This measures the two driver paths that
``compare.py`` can only time by the wall clock:

- P4's client: CPU microseconds per ``send_message(wait=False)`` and per awaited send, in
  the benchmark process (a uvloop client of the asyncio binding);
- P5's server: CPU nanoseconds per delivery of a busy room (N=100, 200 broadcasts each,
  three rounds), read from the server process's ``/proc/<pid>/stat``.

Run: ``python benchmarks/cpu_compare.py --base de42418 [--rounds 2]``. Each side runs in its
own process with its own sources first on ``PYTHONPATH`` (see ``compare.py``). Linux only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from compare import HERE, ROOT, SOURCES, base_worktree


def _server_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _client_sends(port: int) -> dict[str, float]:
    import loopback  # noqa: PLC0415 - from the tree under test
    import roomwire_asyncio  # noqa: PLC0415
    from _common import token  # noqa: PLC0415

    rng = random.Random(4)
    rx_r, rx_w, rx = await loopback.rw_join(port, "rx")
    assert rx.local_participant is not None
    to = rx.local_participant.id
    counter = await loopback.detach(rx_r, rx_w)
    cpu: dict[str, float] = {}
    url = f"tcp://127.0.0.1:{port}"
    async with roomwire_asyncio.connect(url, token=token("tx"), reconnect=False) as room:
        await room.messaging.enable(presence=False)
        for kind, count in (("stream", 20000), ("awaited", 3000)):
            msgs = loopback.messages(rng, count)
            counter.rearm(1)
            gc.collect()
            started = time.process_time()
            for msg in msgs:
                await room.messaging.send_message(
                    to=to, type="chat", message=msg, wait=kind == "awaited"
                )
            if kind == "stream":
                await asyncio.wait_for(counter.done, 120)
            cpu[kind] = 1e6 * (time.process_time() - started) / count
    rx_w.close()
    return cpu


def measure() -> dict[str, float]:
    """Both figures for the tree this process imports (child side)."""
    import loopback  # noqa: PLC0415
    import uvloop  # noqa: PLC0415
    from _common import free_port, raise_nofile, start_server, stop  # noqa: PLC0415

    raise_nofile()
    port = free_port()
    proc = start_server("rw-uvloop", port)
    try:
        results = uvloop.run(_client_sends(port))
    finally:
        stop(proc)
    n, k, rounds = 100, 200, 3
    port = free_port()
    proc = start_server("rw-uvloop", port)
    try:
        before = _server_cpu(proc.pid)
        asyncio.run(loopback.p5_run(port, n, k, rounds, roomwire=True))
        results["p5"] = 1e9 * (_server_cpu(proc.pid) - before) / (n * (n - 1) * k * rounds)
    finally:
        stop(proc)
    return results


def run_side(tree: Path) -> dict[str, float]:
    """Both figures for ``tree``, measured in a child process that imports that tree (its
    own ``benchmarks/`` first, then this script's folder for ``measure``)."""
    path = [*(str(tree / s) for s in SOURCES), str(tree / "benchmarks"), str(HERE)]
    code = "import cpu_compare, json; print(json.dumps(cpu_compare.measure()))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ":".join(path)},
        cwd=tree,
        timeout=600,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=2, help="runs per side; least is kept")
    args = parser.parse_args(argv)
    sides: dict[str, dict[str, float]] = {"base": {}, "this tree": {}}
    with base_worktree(args.base) as base:
        for round_ in range(args.rounds):
            order = [("base", base), ("this tree", ROOT)]
            for name, tree in order if round_ % 2 == 0 else order[::-1]:
                for key, value in run_side(tree).items():
                    sides[name][key] = min(value, sides[name].get(key, value))
    labels = {
        "stream": "P4 client CPU per send(wait=False), us",
        "awaited": "P4 client CPU per awaited send, us",
        "p5": "P5 server CPU per delivery (N=100), ns",
    }
    print(f"| figure (least of {args.rounds} rounds; lower is better) | base | this | change |")
    print("|---|---|---|---|")
    for key, label in labels.items():
        old, new = sides["base"][key], sides["this tree"][key]
        print(f"| {label} | {old:.1f} | {new:.1f} | {new / old:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
