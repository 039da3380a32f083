"""The Redis backplane benchmark keeps working (at a tiny size; its figures are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "redis_backplane.py"


def test_the_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--count", "2000"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for line in ("(a)", "(b)", "(c)", "(d)", "(e)", "ratio"):
        assert line in result.stdout, result.stdout
