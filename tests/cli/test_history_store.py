"""``roomwire serve --history URL`` and ``roomwire messaging listen --since SEQ`` as a user
runs them: history in a SQLite file survives a restart of the server process, a corrupt file
or an unknown URL is one line and exit 2, and a listener started with --since prints what it
missed, then what comes live, each once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import (
    EXIT_OK,
    EXIT_USAGE,
    TRIO_CLI,
    Server,
    Spawner,
    assert_exit,
    assert_one_line_error,
    free_port,
    run_cli,
    via,
)


def broadcast(server: Server, room: str, n: int) -> dict[str, object]:
    result = run_cli(
        "messaging", "broadcast", *via(server), "--room", room, "--json",
        "--type", "chat", "--data", json.dumps({"n": n}),
    )  # fmt: skip
    assert_exit(result, EXIT_OK)
    return dict(json.loads(result.stdout))


def history(server: Server, room: str) -> list[dict[str, object]]:
    result = run_cli("messaging", "history", *via(server), "--room", room, "--json")
    assert_exit(result, EXIT_OK)
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("command", [None, TRIO_CLI], ids=["asyncio", "trio"])
def test_sqlite_history_survives_a_server_restart(
    spawn: Spawner, tmp_path: Path, command: list[str] | None
) -> None:
    store = f"sqlite:///{tmp_path / 'history.db'}"
    port = free_port()
    first = spawn.server("--history", store, port=port, command=command)
    ids = [broadcast(first, "r", n)["id"] for n in range(3)]
    assert first.stop()[0] == EXIT_OK
    second = spawn.server("--history", store, port=port, command=command)
    assert [r["id"] for r in history(second, "r")] == ids


@pytest.mark.parametrize(
    ("content", "url", "message"),
    [
        (b"not a database" * 100, "sqlite:///{path}", "not a usable SQLite database"),
        (None, "ftp://{path}", "expected memory://, sqlite:///path or redis://"),
        (None, "sqlite:{path}", "a SQLite history URL is sqlite:///relative.db"),
    ],
)
def test_an_unusable_history_store_is_one_line_and_exit_2(
    tmp_path: Path, content: bytes | None, url: str, message: str
) -> None:
    path = tmp_path / "history.db"
    if content is not None:
        path.write_bytes(content)
    result = run_cli(
        "serve", "--port", str(free_port()), "--secret", "x" * 40,
        "--history", url.format(path=path),
    )  # fmt: skip
    assert_one_line_error(result, EXIT_USAGE, message)


def test_listen_since_prints_the_missed_messages_then_the_live_ones(
    spawn: Spawner, tmp_path: Path
) -> None:
    server = spawn.server("--history", f"sqlite:///{tmp_path / 'h.db'}")
    for n in range(5):
        broadcast(server, "r", n)
    after = history(server, "r")[1]["seq"]
    listener = spawn.listener(server.url, "r", "late", "--json", "--since", str(after))
    live = broadcast(server, "r", 5)
    listener.wait_record(lambda r: r.get("id") == live["id"])
    printed = [r["message"]["n"] for r in listener.records() if r["event"] == "message"]
    assert printed == [2, 3, 4, 5]  # after seq ``after``, each once, in order


def test_listen_since_pages_through_a_long_history(spawn: Spawner) -> None:
    server = spawn.server()
    for n in range(12):
        broadcast(server, "r", n)
    listener = spawn.listener(server.url, "r", "late", "--json", "--since", "0")
    listener.wait_record(lambda r: r.get("message", {}).get("n") == 11)
    printed = [r["message"]["n"] for r in listener.records() if r["event"] == "message"]
    assert printed == list(range(12))


def test_print_config_hides_a_redis_history_password() -> None:
    result = run_cli("serve", "--history", "redis://:hunter2@127.0.0.1:6379/0", "--print-config")
    assert_exit(result, EXIT_OK)
    assert 'history = "redis://:***@127.0.0.1:6379/0"' in result.stdout
    assert "hunter2" not in result.stdout
