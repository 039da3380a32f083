"""``roomwire demo``: the README's "run it" command (and ``python -m roomwire_trio demo``)."""

from __future__ import annotations

import re

import pytest

from .conftest import CLI, EXIT_OK, TRIO_CLI, assert_exit, run_cli


@pytest.mark.parametrize("command", [CLI, TRIO_CLI], ids=["asyncio", "trio"])
def test_demo_runs_the_alice_and_bob_exchange(command: list[str]) -> None:
    result = run_cli("demo", timeout=30, command=command)
    assert_exit(result, EXIT_OK)
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"room server on tcp://127\.0\.0\.1:\d+", lines[0]), lines
    expected = [
        r"alice sees bob \(\S+\)",
        r"alice -> chat to bob, accepted as message \S+",
        r"bob   <- chat \{'text': 'hi Bob'\} \(6-byte attachment\)",
        r"alice <- chat \{'text': 'hi Alice!'\}",
        r"alice -> broadcast announcement",
        r"bob   <- announcement \{'text': 'bye all'\} \(0-byte attachment\)",
    ]
    for pattern in expected:
        assert any(re.fullmatch(pattern, line) for line in lines), (pattern, lines)
    # Presence first, then the exchange in order; "done" last.
    order = [next(i for i, line in enumerate(lines) if re.fullmatch(p, line)) for p in expected]
    assert order[:4] == sorted(order[:4])
    assert order[4] < order[5]
    assert lines[-1] == "done"
