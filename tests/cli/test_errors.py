"""Every error path of the messaging commands: one ``error:`` line on stderr, no traceback,
and the documented exit code."""

from __future__ import annotations

import jwt
import pytest

from roomwire import ParticipantToken

from .conftest import (
    EXIT_CONNECT,
    EXIT_RATE_LIMITED,
    EXIT_TOKEN,
    EXIT_USAGE,
    SECRET,
    Server,
    Spawner,
    assert_exit,
    assert_one_line_error,
    free_port,
    run_cli,
    via,
)

COMMANDS = {
    "list": ["messaging", "list"],
    "send": ["messaging", "send", "--to", "bob", "--type", "t", "--data", "{}"],
    "broadcast": ["messaging", "broadcast", "--type", "t", "--data", "{}"],
    "listen": ["messaging", "listen"],
}
command_names = pytest.mark.parametrize("command", COMMANDS)


# --- the server's address -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["127.0.0.1:7890", "tcp://127.0.0.1", "tcp://127.0.0.1:notaport"],
)  # fmt: skip
def test_bad_url(url: str) -> None:
    result = run_cli(*COMMANDS["list"], "--url", url, "--room", "r", "--secret", SECRET)
    assert_one_line_error(result, EXIT_CONNECT, "URL")


@command_names
def test_bad_url_for_every_command(command: str) -> None:
    # ws:// is a transport now (tests/cli/test_transports.py); http:// is not.
    result = run_cli(*COMMANDS[command], "--url", "http://127.0.0.1:1", "--token", "x")
    assert_one_line_error(result, EXIT_CONNECT, "unsupported URL 'http://127.0.0.1:1'")


@command_names
def test_unreachable_server(command: str) -> None:
    url = f"tcp://127.0.0.1:{free_port()}"
    result = run_cli(*COMMANDS[command], "--url", url, "--room", "r", "--secret", SECRET)
    assert_one_line_error(result, EXIT_CONNECT, f"cannot reach {url}")


# --- refused tokens -------------------------------------------------------------------------


def _no_algorithm_token(room: str) -> str:
    return jwt.encode({"room": room, "name": "mallory"}, "", algorithm="none")


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda room: "garbage", "TOKEN_INVALID"),
        (lambda room: "a.b.c", "TOKEN_INVALID"),
        (
            lambda room: ParticipantToken(room=room, name="eve").to_jwt(
                "a-different-secret-0123456789abcdef-0123"
            ),
            "TOKEN_BAD_SIGNATURE",
        ),
        (_no_algorithm_token, "TOKEN_BAD_ALGORITHM"),
        (
            lambda room: ParticipantToken(room=room, name="old", expires_at=1.0).to_jwt(SECRET),
            "TOKEN_EXPIRED",
        ),
    ],
    ids=["garbage", "three-dots", "wrong-secret", "alg-none", "expired"],
)
def test_refused_token(server: Server, room: str, make_token: object, code: str) -> None:
    assert callable(make_token)
    token = make_token(room)
    result = run_cli(*COMMANDS["list"], "--url", server.url, "--token", token)
    line = assert_one_line_error(result, EXIT_TOKEN, f"token refused ({code})")
    assert token not in line


@pytest.mark.parametrize("command", ["send", "broadcast", "listen"])  # list: above
def test_refused_token_for_every_command(server: Server, command: str) -> None:
    result = run_cli(*COMMANDS[command], "--url", server.url, "--token", "garbage")
    assert_one_line_error(result, EXIT_TOKEN, "token refused (TOKEN_INVALID)")


def test_wrong_short_secret_warns_in_one_line(server: Server, room: str) -> None:
    result = run_cli(*COMMANDS["list"], *via(server, secret="short"), "--room", room)
    assert_one_line_error(result, EXIT_TOKEN, "TOKEN_BAD_SIGNATURE")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1
    assert "HMAC key" in warnings[0]


def test_token_for_another_room(server: Server, room: str) -> None:
    token = ParticipantToken(room=f"{room}-a", name="alice").to_jwt(SECRET)
    result = run_cli(*COMMANDS["list"], "--url", server.url, "--token", token, "--room", room)
    assert_one_line_error(result, EXIT_TOKEN, "token refused (ROOM_MISMATCH)")


# --- malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "data", "why"),
    [("send", "{text: hi}", "not valid JSON"), ("broadcast", "", "not valid JSON"),
     ("send", '["a"]', "JSON object"), ("broadcast", "null", "JSON object")],
    ids=["unquoted", "empty", "array", "null"],
)  # fmt: skip
def test_malformed_data(server: Server, room: str, command: str, data: str, why: str) -> None:
    args = [*COMMANDS[command]]
    args[args.index("--data") + 1] = data
    result = run_cli(*args, *via(server), "--room", room)
    assert_one_line_error(result, EXIT_USAGE, "--data", why)


@command_names
def test_missing_credentials(server: Server, command: str) -> None:
    result = run_cli(*COMMANDS[command], "--url", server.url, "--room", "r")
    assert_one_line_error(result, EXIT_USAGE, "no credentials")


@pytest.mark.parametrize("command", ["list", "send"])
def test_secret_without_room(server: Server, command: str) -> None:
    result = run_cli(*COMMANDS[command], *via(server))
    assert_one_line_error(result, EXIT_USAGE, "--room")


@pytest.mark.parametrize(
    "recipient",
    [["--to", "bob", "--to-participant-id", "x-1"], []],
    ids=["both", "neither"],
)
def test_send_needs_exactly_one_recipient(server: Server, room: str, recipient: list[str]) -> None:
    result = run_cli(
        "messaging", "send", *via(server), "--room", room,
        "--type", "t", "--data", "{}", *recipient,
    )  # fmt: skip
    assert_one_line_error(result, EXIT_USAGE, "exactly one of --to NAME or --to-participant-id")


def test_missing_attachment_file_is_a_usage_error(server: Server, room: str) -> None:
    result = run_cli(*COMMANDS["broadcast"], *via(server), "--room", room,
                     "--attachment", "/no/such/file")  # fmt: skip
    assert_exit(result, EXIT_USAGE)
    assert "/no/such/file" in result.stderr


@pytest.mark.parametrize(
    "args",
    [["messaging", "list", "--bogus"], ["messaging", "send", "--to", "bob"]],
    ids=["unknown-flag", "missing-option"],
)
def test_bad_usage(args: list[str]) -> None:
    result = run_cli(*args)
    assert_exit(result, EXIT_USAGE)
    assert result.stdout == ""


def test_rate_limited_send_exits_with_its_own_code(spawn: Spawner, room: str) -> None:
    # One token a connection, one at a time: the enable spends it, so the send is refused.
    server = spawn.server("--rate-limit", "0.001", "--rate-burst", "1")
    result = run_cli("messaging", "broadcast", *via(server), "--room", room,
                     "--type", "t", "--data", "{}")  # fmt: skip
    assert_one_line_error(result, EXIT_RATE_LIMITED, "RATE_LIMITED")
