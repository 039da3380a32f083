"""The command's front door (issue 18): ``--version``, ``-h``, the exit-code table one code per
line, the ``serve --secret`` help, and ``python -m roomwire_trio`` running the same commands
on trio."""

from __future__ import annotations

import re
import signal
from importlib.metadata import version

import pytest
from roomwire_asyncio.cli import EXIT_CODES

from .conftest import (
    CLI,
    EXIT_OK,
    EXIT_USAGE,
    TRIO_CLI,
    Spawner,
    assert_exit,
    assert_one_line_error,
    cli_env,
    run_cli,
    via,
)


@pytest.mark.parametrize(("command", "runtime"), [(CLI, "asyncio"), (TRIO_CLI, "trio")])
def test_version_names_the_release_and_the_runtime(command: list[str], runtime: str) -> None:
    result = run_cli("--version", command=command)
    assert_exit(result, EXIT_OK)
    expected = f"roomwire {version('roomwire-asyncio')} (core {version('roomwire')}, "
    assert result.stdout == f"{expected}runtime {runtime})\n"


@pytest.mark.parametrize("where", [[], ["serve"], ["messaging"], ["messaging", "send"]])
def test_short_help_is_the_same_as_long_help(where: list[str]) -> None:
    short = run_cli(*where, "-h")
    long = run_cli(*where, "--help")
    assert_exit(short, EXIT_OK)
    assert short.stdout == long.stdout
    assert "Usage" in short.stdout


def test_exit_codes_are_a_table_one_code_per_line() -> None:
    result = run_cli("--help", env=cli_env(COLUMNS="200"))
    assert_exit(result, EXIT_OK)
    lines = [line.strip() for line in result.stdout.splitlines()]
    for code, meaning in EXIT_CODES.items():
        assert any(re.fullmatch(rf"{code}\s+{re.escape(meaning)}", line) for line in lines), (
            code,
            result.stdout,
        )


def test_serve_secret_help_says_what_the_secret_is_for() -> None:
    result = run_cli("serve", "--help", env=cli_env(COLUMNS="200"))
    assert_exit(result, EXIT_OK)
    text = " ".join(result.stdout.split())
    assert "signs participant tokens" in text
    assert "to mint a token for --name" not in text  # that is the client commands' secret


def test_trio_cli_serves_and_runs_every_messaging_command(spawn: Spawner) -> None:
    server = spawn.server(command=TRIO_CLI)
    bob = spawn.listener(server.url, "trio-room", "bob", "--json", command=TRIO_CLI)
    result = run_cli(
        "messaging", "send", *via(server), "--room", "trio-room", "--to", "bob",
        "--type", "chat", "--data", '{"text": "on trio"}', "--json", command=TRIO_CLI,
    )  # fmt: skip
    assert_exit(result, EXIT_OK)
    bob.wait_record(lambda r: r["event"] == "message" and r["message"] == {"text": "on trio"})
    result = run_cli(
        "messaging", "broadcast", *via(server), "--room", "trio-room",
        "--type", "news", "--data", "{}", command=TRIO_CLI,
    )  # fmt: skip
    assert_exit(result, EXIT_OK)
    bob.wait_record(lambda r: r["event"] == "message" and r["type"] == "news")
    result = run_cli(
        "messaging", "list", *via(server), "--room", "trio-room", "--json", command=TRIO_CLI
    )
    assert_exit(result, EXIT_OK)
    assert "bob" in result.stdout
    # A signal stops the trio server as it does the asyncio one: clients told, exit 0.
    code, _ = server.stop(signal.SIGINT)
    assert code == EXIT_OK, server.stderr
    record = bob.wait_record(lambda r: r["event"] == "disconnected")
    assert record["code"] == "GOING_AWAY"


def test_trio_serve_refuses_redis_in_one_line() -> None:
    result = run_cli(
        "serve", "--port", "0", "--secret", "s" * 32, "--redis", "redis://127.0.0.1:1/0",
        command=TRIO_CLI,
    )  # fmt: skip
    assert_one_line_error(result, EXIT_USAGE, "--redis needs asyncio")
