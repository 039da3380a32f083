"""P7: server RSS per idle connection, roomwire against a raw asyncio Protocol server.

Run: ``python benchmarks/memory.py [--quick] [--connections 5000]``.

The server runs in its own process (``_servers.py``: ``rw-*``, a roomwire ``serve()``, or
``hold-*``, a Protocol that only keeps its transport); a second process (this script with
``--client``) opens the connections. For roomwire every connection completes the handshake
and enables messaging (without presence), then stays idle. RSS is read from
``/proc/<pid>/status`` before and after (``VmRSS``; kernel socket buffers are not in it);
per connection = difference / connections. Both processes are stopped by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Sequence

from _common import (
    HERE,
    Result,
    free_port,
    raise_nofile,
    report,
    rss_kib,
    rw_join,
    start,
    start_server,
    stop,
)


async def open_all(port: int, n: int, roomwire: bool) -> list[object]:
    keep: list[object] = []
    for first in range(0, n, 100):
        batch = range(first, min(n, first + 100))
        if roomwire:
            joined = await asyncio.gather(*(rw_join(port, "m") for _ in batch))
            keep.extend(joined)
        else:
            opened = await asyncio.gather(
                *(asyncio.open_connection("127.0.0.1", port) for _ in batch)
            )
            keep.extend(opened)
    return keep


def client(port: int, n: int, roomwire: bool) -> None:
    """The client process: open ``n`` connections, say OPEN, hold them until stopped."""
    raise_nofile()

    async def main() -> None:
        keep = await open_all(port, n, roomwire)
        print(f"OPEN {len(keep)}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def measure(kind: str, n: int, settle: float) -> float:
    """KiB of server RSS per connection."""
    port = free_port()
    server = start_server(kind, port)
    clients = None
    try:
        time.sleep(settle / 2)
        before = rss_kib(server.pid)
        roomwire = kind.startswith("rw-")
        args = [sys.executable, str(HERE / "memory.py"), "--client", str(port), str(n)]
        clients = start([*args, "rw" if roomwire else "raw"], ready=b"OPEN", timeout=120)
        time.sleep(settle)  # let the server settle (last enables, allocator)
        after = rss_kib(server.pid)
    finally:
        if clients is not None:
            stop(clients)
        stop(server)
    return (after - before) / n


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--client":
        client(int(argv[1]), int(argv[2]), argv[3] == "rw")
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 connections (CI)")
    parser.add_argument("--connections", type=int, help="default 5000, quick 200")
    parser.add_argument("--json", help="append the results to this file (JSON lines)")
    args = parser.parse_args(argv)
    n = args.connections or (200 if args.quick else 5000)
    hard = raise_nofile()
    if hard < n + 100:
        print(f"P7: RLIMIT_NOFILE hard limit {hard} is below {n} connections", file=sys.stderr)
        return 2
    results = []
    for runtime in ("asyncio", "uvloop"):
        settle = 0.2 if args.quick else 1.0
        raw = measure(f"hold-{runtime}", n, settle)
        rw = measure(f"rw-{runtime}", n, settle)
        results.append(
            Result(
                "P7",
                f"RSS per idle connection at {n}, {runtime}",
                "KiB",
                rw,
                raw,
                f"raw {runtime} Protocol",
                2.0,
                "<=",
                note=f"roomwire {rw:.1f} KiB/conn (absolute goal <= 4 KiB:"
                f" {'met' if rw <= 4 else 'MISSED'})",
            )
        )
    report(results, args.json)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.SubprocessError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
