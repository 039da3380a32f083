"""Issue 13 through the ``roomwire`` command: names several participants share, on asyncio
and trio."""

from __future__ import annotations

import pytest

from .conftest import (
    CLI,
    EXIT_NOT_FOUND,
    TRIO_CLI,
    Server,
    Spawner,
    assert_one_line_error,
    run_cli,
    via,
)


@pytest.mark.parametrize("command", [CLI, TRIO_CLI], ids=["asyncio", "trio"])
def test_send_to_a_name_two_participants_share_is_refused(
    server: Server, room: str, spawn: Spawner, command: list[str]
) -> None:
    """Finding 7: a newcomer taking bob's name makes ``--to bob`` ambiguous; the message goes
    to neither, and the CLI says to address by id."""
    spawn.listeners(server.url, room, ("bob",), ("bob",), command=command)
    result = run_cli(
        "messaging", "send", *via(server), "--room", room,
        "--to", "bob", "--type", "t", "--data", "{}", command=command,
    )  # fmt: skip
    assert_one_line_error(
        result, EXIT_NOT_FOUND, "several participants are named 'bob'", "--to-participant-id"
    )
