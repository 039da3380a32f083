"""Keep ``benchmarks/resume.py`` (replay after a cut, round trips of a resume) from rotting:
run ``--quick``. Never asserts on speed: only that it ran (it checks that the replay lost
and reordered nothing) and printed every figure."""

from __future__ import annotations

from . import run_quick


def test_quick_resume_benchmark_prints_every_figure() -> None:
    out = run_quick("resume.py")
    for line in ("replay of 501 missed messages", "client flights before it: 1", "baseline"):
        assert line in out, out
