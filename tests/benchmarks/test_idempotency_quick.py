"""Keep ``benchmarks/idempotency.py`` (an idempotency key's cost on the send path) from
rotting: run ``--quick``. Never asserts on speed: only that both lines are printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "idempotency.py"


def test_quick_idempotency_benchmark_prints_both_lines() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--repeat", "1"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=SCRIPT.parent,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for line in ("fan-out N=100: keyed vs unkeyed", "send 1:1: keyed vs unkeyed"):
        assert line in proc.stdout, proc.stdout
