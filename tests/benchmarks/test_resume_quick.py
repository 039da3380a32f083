"""Keep ``benchmarks/resume.py`` (replay after a cut, round trips of a resume) from rotting:
run ``--quick``. Never asserts on speed: only that it ran (it checks that the replay lost
and reordered nothing) and printed every figure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "resume.py"


def test_quick_resume_benchmark_prints_every_figure() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=SCRIPT.parent,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for line in ("replay of 501 missed messages", "client flights before it: 1", "baseline"):
        assert line in proc.stdout, proc.stdout
