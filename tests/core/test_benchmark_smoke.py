"""Keep benchmarks/core.py from rotting: run it at a tiny size. Never asserts on speed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "core.py"
TINY = ["--quick", "--repeat", "1", "--ops", "50", "--size", "4096"]
TINY += ["--fanout", "3", "--deliveries", "60"]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("roomwire_benchmark_core", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_quick_run_prints_every_line(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(TINY) == 0
    out = capsys.readouterr().out
    for name in ("a1 ", "a2 ", "a3 ", "a4 ", "b  ", "b2 ", "c  fan-out N=3"):
        assert f"\n{name}" in out
    assert "compiled: True" in out


def test_refuses_pure_python_cbor2(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench, "cbor2_is_compiled", lambda: False)
    assert bench.main(TINY) == 2
    assert "pure-Python" in capsys.readouterr().err


def test_quick_run_prints_the_join_line(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main([*TINY, "--members", "5"]) == 0
    assert "\nd  presence join, room of 5 " in capsys.readouterr().out
