"""The CLI's part of services (docs/PROTOCOL.md §23): ``roomwire token --intercept`` and
``roomwire demo --service`` (Moobius's tutorial, run to the end on both runtimes)."""

from __future__ import annotations

import pytest

from roomwire import ParticipantToken

from .conftest import CLI, EXIT_OK, SECRET, TRIO_CLI, assert_exit, mint, run_cli


def test_token_intercept_grants_attaching_as_the_service() -> None:
    assert ParticipantToken.from_jwt(mint("r", "svc", "--intercept"), SECRET).intercept is True
    assert ParticipantToken.from_jwt(mint("r", "user"), SECRET).intercept is False


@pytest.mark.parametrize("command", [CLI, TRIO_CLI], ids=["asyncio", "trio"])
def test_demo_service_runs_the_moobius_tutorial(command: list[str]) -> None:
    result = run_cli("demo", "--service", timeout=30, command=command)
    assert_exit(result, EXIT_OK)
    lines = result.stdout.splitlines()
    for expected in (
        "bob   <- Meow: Welcome, bob!",
        "bob   <- Meow: Welcome, alice!",
        "bob   <- alice: hi Bob lol~",
        "alice <- bob: my cat says hi lol~",
        "alice <- Meow: meow? I heard cat!",
        "svc   made the puppet Tom (puppet)",
        "bob   sees the puppet Tom",
        "bob   <- Meow: See you, alice!",
    ):
        assert expected in lines, (expected, lines)
    assert lines[-1] == "done"
