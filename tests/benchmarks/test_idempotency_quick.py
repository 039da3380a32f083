"""Keep ``benchmarks/idempotency.py`` (an idempotency key's cost on the send path) from
rotting: run ``--quick``. Never asserts on speed: only that both lines are printed."""

from __future__ import annotations

from . import run_quick


def test_quick_idempotency_benchmark_prints_both_lines() -> None:
    out = run_quick("idempotency.py", "--repeat", "1")
    for line in ("fan-out N=100: keyed vs unkeyed", "send 1:1: keyed vs unkeyed"):
        assert line in out, out
