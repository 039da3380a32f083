"""Smoke runs of the benchmark scripts: they must run, never be timed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_quick(script: str, *args: str) -> str:
    """Run ``benchmarks/<script> --quick [args]`` from its folder; its standard output, once
    it exited 0."""
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=BENCHMARKS,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout
