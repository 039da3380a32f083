"""``roomwire messaging history`` against a real server: what was said before it ran,
oldest first, plain or JSON, and its exit codes."""

from __future__ import annotations

import json

from .conftest import (
    EXIT_FORBIDDEN,
    EXIT_INVALID,
    EXIT_OK,
    Server,
    assert_exit,
    assert_one_line_error,
    mint,
    run_cli,
    via,
)


def _broadcast(server: Server, room: str, text: str) -> str:
    result = run_cli(
        "messaging", "broadcast", *via(server), "--room", room, "--json",
        "--type", "chat", "--data", json.dumps({"text": text}),
    )  # fmt: skip
    assert_exit(result, EXIT_OK)
    return str(json.loads(result.stdout)["id"])


def test_history_json_prints_what_was_said_before(server: Server, room: str) -> None:
    ids = [_broadcast(server, room, text) for text in ("one", "two", "three")]
    result = run_cli("messaging", "history", *via(server), "--room", room, "--json")
    assert_exit(result, EXIT_OK)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in records] == ids
    assert [r["message"]["text"] for r in records] == ["one", "two", "three"]
    assert all(r["event"] == "message" and r["broadcast"] for r in records)

    newest = run_cli(
        "messaging", "history", *via(server), "--room", room, "--json", "--limit", "1",
        "--reverse",
    )  # fmt: skip
    assert [json.loads(line)["id"] for line in newest.stdout.splitlines()] == ids[-1:]
    since = run_cli(
        "messaging", "history", *via(server), "--room", room, "--json",
        "--since", str(records[0]["seq"]),
    )  # fmt: skip
    assert [json.loads(line)["id"] for line in since.stdout.splitlines()] == ids[1:]


def test_history_plain_prints_one_line_per_message(server: Server, room: str) -> None:
    _broadcast(server, room, "hello")
    result = run_cli("messaging", "history", *via(server), "--room", room)
    assert_exit(result, EXIT_OK)
    assert result.stdout.endswith(': {"text": "hello"}\n')
    assert result.stdout.startswith("[chat] ")


def test_history_of_an_empty_room_prints_nothing(server: Server, room: str) -> None:
    result = run_cli("messaging", "history", *via(server), "--room", room)
    assert_exit(result, EXIT_OK)
    assert result.stdout == ""


def test_history_over_the_servers_cap_is_an_invalid_request(server: Server, room: str) -> None:
    result = run_cli("messaging", "history", *via(server), "--room", room, "--limit", "5000")
    assert_one_line_error(result, EXIT_INVALID, "limit must be an integer from 1 to 1000")


def test_history_without_the_grant_is_forbidden(server: Server, room: str) -> None:
    token = mint(room, "x", "--no-history")
    result = run_cli("messaging", "history", "--url", server.url, "--room", room, "--token", token)
    assert_one_line_error(result, EXIT_FORBIDDEN, "history")
