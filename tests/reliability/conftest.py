"""Fixtures of the reliability suite.

The bindings suite's fixtures are reused as they are (imported below, so pytest finds them
here too): ``anyio_backend`` (asyncio with debug on, and trio), ``rw``, ``server`` with
``@pytest.mark.server(**ServerConfig fields)``, ``join``, ``make_token``, ``server_task`` and
the leak check ``no_leaked_tasks``. Added here: ``server_proc`` (a server in a subprocess on
the test's runtime, for /proc measurements), ``figures`` (what a test measured, printed in
a "reliability figures" section at the end of the run) and ``no_errors_logged``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..bindings.conftest import (
    anyio_backend,
    join,
    make_token,
    no_leaked_tasks,
    pytest_configure,
    rw,
    server,
    server_task,
)
from . import ServerProcess

__all__ = [
    "anyio_backend",
    "join",
    "make_token",
    "no_leaked_tasks",
    "pytest_configure",
    "rw",
    "server",
    "server_task",
]

StartServer = Callable[..., Awaitable[ServerProcess]]
Figures = Callable[..., None]

FIGURES: list[tuple[str, dict[str, Any]]] = []
"""What each test measured, printed at the end of the run (the figures of issue 5)."""


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """``figures(lost=0, removal_s=0.41)``: record what this test measured."""

    def record(**values: Any) -> None:
        FIGURES.append((request.node.nodeid, values))

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for nodeid, values in FIGURES:
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
        )
        terminalreporter.write_line(f"{nodeid.rpartition('/')[2]}: {shown}")


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No ERROR record from any logger during a test: an unhandled exception in a task (the
    asyncio loop logs those), a failed callback or a driver crash fails the test."""
    caplog.set_level(logging.WARNING)
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, [f"{r.name}: {r.getMessage()}" for r in errors]


@pytest.fixture
async def server_proc(anyio_backend_name: str, tmp_path: Path) -> AsyncIterator[StartServer]:
    """``await server_proc(**ServerConfig fields)`` -> a started ServerProcess on the test's
    runtime. Every one is stopped (by pid) at teardown, and its log must hold no error."""
    started: list[ServerProcess] = []

    async def start(**settings: Any) -> ServerProcess:
        log = tmp_path / f"server-{len(started)}.log"
        process = ServerProcess(anyio_backend_name, log)
        started.append(process)
        return await process.start(**settings)

    try:
        yield start
    finally:
        for process in started:
            await process.stop()
    for process in started:
        text = process.log()
        assert "Traceback" not in text, text[-4000:]
        assert "ERROR" not in text, text[-4000:]
