"""``roomwire messaging request`` against a real server and a participant answering in
another process: the answer printed, the callee's error, no handler, a timeout, nobody to
call, each with its exit code."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .conftest import (
    EXIT_ANSWERED_ERROR,
    EXIT_NO_ANSWER,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    SECRET,
    Server,
    Spawner,
    assert_exit,
    assert_one_line_error,
    cli_env,
    run_cli,
    via,
)

CALLEE = [sys.executable, str(Path(__file__).with_name("callee.py"))]


@pytest.fixture
def callee(server: Server, room: str, spawn: Spawner) -> str:
    """A participant named "agent" in ``room``, answering tool.add / tool.refuse / tool.hang."""
    process = spawn.process([server.url, room, "agent", SECRET], cli_env(), command=CALLEE)
    process.wait_ready("ready")
    return "agent"


def request(server: Server, room: str, *args: str) -> list[str]:
    return ["messaging", "request", *via(server), "--room", room, *args]


def test_the_answer_is_printed(server: Server, room: str, callee: str, tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"\x00\x01")
    args = ["--to", callee, "--type", "tool.add", "--data", '{"a": 2, "b": 3}']
    result = run_cli(*request(server, room, *args, "--attachment", str(blob), "--json"))
    assert_exit(result, EXIT_OK)
    record = json.loads(result.stdout)
    assert (record["message"], record["from_name"], record["type"]) == (
        {"sum": 5},
        "agent",
        "tool.add",
    )
    assert record["attachment"] == "AAE="
    human = run_cli(*request(server, room, *args))
    assert_exit(human, EXIT_OK)
    assert human.stdout == f'[tool.add] agent ({record["from"]}): {{"sum": 5}}\n'


def test_an_error_answer_exits_10(server: Server, room: str, callee: str) -> None:
    result = run_cli(
        *request(server, room, "--to", callee, "--type", "tool.refuse", "--data", "{}")
    )
    assert_one_line_error(result, EXIT_ANSWERED_ERROR, "answered 42", "the application says no")
    result = run_cli(*request(server, room, "--to", callee, "--type", "tool.none", "--data", "{}"))
    assert_one_line_error(result, EXIT_ANSWERED_ERROR, "answered 4043", "no handler")


def test_no_answer_within_the_timeout_exits_11(server: Server, room: str, callee: str) -> None:
    args = ["--to", callee, "--type", "tool.hang", "--data", "{}", "--timeout", "0.5"]
    result = run_cli(*request(server, room, *args))
    assert_one_line_error(result, EXIT_NO_ANSWER, "no answer within 0.5 s")


def test_nobody_to_call_and_bad_flags(server: Server, room: str) -> None:
    result = run_cli(*request(server, room, "--to", "ghost", "--type", "t", "--data", "{}"))
    assert_one_line_error(result, EXIT_NOT_FOUND, "no participant named 'ghost'")
    result = run_cli(
        *request(server, room, "--to-participant-id", "x", "--type", "t", "--data", "{}")
    )
    assert_one_line_error(result, EXIT_NOT_FOUND, "NOT_FOUND")
    result = run_cli(*request(server, room, "--type", "t", "--data", "{}"))
    assert_one_line_error(result, EXIT_USAGE, "exactly one of --to")
