"""Issue 13 through the ``roomwire`` command: names several participants share, on asyncio
and trio."""

from __future__ import annotations

import json
import time

import pytest

from roomwire import ParticipantToken

from .conftest import (
    CLI,
    EXIT_NOT_FOUND,
    EXIT_OK,
    SECRET,
    TRIO_CLI,
    Server,
    Spawner,
    assert_exit,
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


def test_a_token_expires_after_an_hour_by_default() -> None:
    """Finding 5: ``roomwire token`` without --ttl mints a token valid for one hour, and says
    so in its help."""
    before = time.time()
    result = run_cli("token", "--room", "r1", "--name", "a", "--secret", SECRET, "--json")
    assert_exit(result, EXIT_OK)
    expires_at = ParticipantToken.from_jwt(json.loads(result.stdout)["token"], SECRET).expires_at
    assert expires_at is not None
    assert before + 3600 - 1 <= expires_at <= time.time() + 3600 + 1
    help_text = run_cli("token", "--help")
    assert "default: one hour" in " ".join(help_text.stdout.split())
