"""Keep the loopback benchmark suite (benchmarks/run_all.py) from rotting: run ``--quick``.

Never asserts on speed: only that every part runs to the end and writes its table. Peers whose
Python package or server binary (redis-server, nats-server) is missing are skipped by the
suite itself, which says so in its output and notes.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[2] / "benchmarks" / "run_all.py"


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for P7 memory")
def test_quick_suite_runs_every_part(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SUITE), "--quick", "--out", str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = (tmp_path / "RESULTS.md").read_text()
    for bench in ("P1", "P2", "P3", "P4", "P5", "P7"):
        assert f"| {bench} |" in results, bench
    assert "P6 roomwire:" in proc.stdout
    assert "Machine:" in results
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "chart.png").stat().st_size > 0
