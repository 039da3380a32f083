"""Issue 13 through the ``roomwire`` command: names several participants share, on asyncio
and trio."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roomwire import ParticipantToken

from .conftest import (
    CLI,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_TOO_LARGE,
    SECRET,
    TRIO_CLI,
    Server,
    Spawner,
    assert_exit,
    assert_one_line_error,
    cli_env,
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


def test_an_attachment_over_the_limit_is_refused_before_it_is_read(
    server: Server, room: str, spawn: Spawner, tmp_path: Path
) -> None:
    """Finding 9: a 200 MB attachment is refused from its size (stat), not read into memory
    first (that took 631 MB of RSS)."""
    spawn.listener(server.url, room, "bob")
    file = tmp_path / "huge.bin"
    with file.open("wb") as out:
        out.truncate(200 * 1024 * 1024)  # sparse: costs no disk
    result = run_cli(
        "messaging", "send", *via(server), "--room", room, "--to", "bob",
        "--type", "t", "--data", "{}", "--attachment", str(file),
    )  # fmt: skip
    assert_one_line_error(result, EXIT_TOO_LARGE, "TOO_LARGE", "209715200 bytes")
    # The same command again under a fresh parent that reports its children's peak RSS
    # (KiB on Linux): this process's other children do not count.
    args = ["messaging", "send", *via(server), "--room", room, "--to", "bob"]
    args += ["--type", "t", "--data", "{}", "--attachment", str(file)]
    peak = subprocess.run(
        [sys.executable, "-c", MEASURE, *CLI, *args],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert int(peak.stdout) < 150 * 1024, peak.stdout


MEASURE = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], capture_output=True);"
    " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)
"""Run a command; print its peak RSS."""
