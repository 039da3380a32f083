"""Keep ``benchmarks/history.py`` (history's cost on the busy-room fan-out) from rotting: run
``--quick``. Never asserts on speed: only that every store's line is printed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "history.py"


def test_quick_history_benchmark_prints_every_store() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stores = ["memory", "sqlite"] + (["redis"] if shutil.which("redis-server") else [])
    for store in stores:
        assert f"history {store}" in proc.stdout, proc.stdout
    assert "(history off)" in proc.stdout
