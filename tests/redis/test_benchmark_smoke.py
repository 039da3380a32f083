"""The Redis benchmarks keep working (at a tiny size; their figures are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"
SCRIPT = BENCHMARKS / "redis_backplane.py"


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


def test_the_cross_node_service_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "service_nodes.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| msg/s, service on the other node |" in result.stdout, result.stdout
