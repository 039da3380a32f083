"""Room history's cost on the busy-room fan-out (issue 15): N participants each broadcast K
messages over loopback (``loopback.py``'s P5 harness), the server keeping history

- ``off``: no history at all (``History.keep`` replaced by a no-op in the server process:
  the floor, not a setting);
- ``memory``: the default, in the server's memory;
- ``sqlite``: ``serve(history="sqlite:///...")`` in a temporary file (acks after the commit);
- ``redis``: ``serve(history="redis://...")`` on a redis-server of its own (no persistence).

Each server runs in its own process on uvloop; the rates are deliveries per second (best of
``--repeat`` rounds) and the ratio is to ``off`` (goal: memory >= 0.90).

    python benchmarks/history.py            # N=100, K=200
    python benchmarks/history.py --quick    # N=10, K=20, seconds
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _common import (
    BIG_OUTBOUND,
    HERE,
    SECRET,
    Result,
    free_port,
    raise_nofile,
    report,
    run,
    start,
    stop,
)
from loopback import p5_run

MODES = ("off", "memory", "sqlite", "redis")


def serve(mode: str, port: int, store: str) -> None:
    """The server of one mode (``history.py --serve MODE PORT STORE``), until SIGTERM."""
    import asyncio  # noqa: PLC0415

    import roomwire_asyncio  # noqa: PLC0415
    import uvloop  # noqa: PLC0415

    from roomwire._history import History  # noqa: PLC0415

    if mode == "off":
        History.keep = lambda *args, **kwargs: None  # type: ignore[method-assign]
    history = {"sqlite": store, "redis": store}.get(mode)

    async def main() -> None:
        async with roomwire_asyncio.serve(
            port=port, secret=SECRET, outbound_limit=BIG_OUTBOUND, history=history
        ):
            print("READY", flush=True)
            await asyncio.Event().wait()

    uvloop.run(main())


def redis_server(folder: Path) -> tuple[subprocess.Popen[bytes] | None, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        return None, ""
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = start([binary, *args, "--dir", str(folder)], ready=b"Ready to accept connections")
    return proc, f"redis://127.0.0.1:{port}/0"


def bench(n: int, k: int, repeat: int) -> list[Result]:
    raise_nofile()
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        redis_proc, redis_url = redis_server(Path(folder))
        stores = {"sqlite": f"sqlite:///{folder}/history.db", "redis": redis_url, "off": "-"}
        try:
            for mode in MODES:
                if mode == "redis" and redis_proc is None:
                    continue  # no redis-server on this machine
                port = free_port()
                store = stores.get(mode, "-")
                script = [sys.executable, str(HERE / "history.py")]
                proc = start([*script, "--serve", mode, str(port), store])
                try:
                    rate = run(p5_run(port, n, k, repeat, roomwire=True))
                    rates[mode] = float(rate)  # type: ignore[arg-type]
                finally:
                    stop(proc)
        finally:
            if redis_proc is not None:
                stop(redis_proc)
    return [
        Result(
            "H1",
            f"busy room N={n}, {k} msgs each, history {mode}",
            "deliveries/s",
            rates[mode],
            rates["off"],
            "history off",
            0.90 if mode == "memory" else None,
        )
        for mode in MODES
        if mode in rates and mode != "off"
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds (CI)")
    parser.add_argument("--repeat", type=int, help="rounds, best kept (default 3, quick 1)")
    parser.add_argument("--json", help="append the results to this file (JSON lines)")
    parser.add_argument("--serve", nargs=3, metavar=("MODE", "PORT", "STORE"), help="internal")
    args = parser.parse_args(argv)
    if args.serve:
        mode, port, store = args.serve
        serve(mode, int(port), store)
        return 0
    repeat = args.repeat or (1 if args.quick else 3)
    n, k = (10, 20) if args.quick else (100, 200)
    started = time.perf_counter()
    report(bench(n, k, repeat), args.json)
    print(f"  (took {time.perf_counter() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
