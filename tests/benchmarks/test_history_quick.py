"""Keep ``benchmarks/history.py`` (history's cost on the busy-room fan-out) from rotting: run
``--quick``. Never asserts on speed: only that every store's line is printed."""

from __future__ import annotations

import shutil

from . import run_quick


def test_quick_history_benchmark_prints_every_store() -> None:
    out = run_quick("history.py")
    stores = ["memory", "sqlite"] + (["redis"] if shutil.which("redis-server") else [])
    for store in stores:
        assert f"history {store}" in out, out
    assert "(history off)" in out
