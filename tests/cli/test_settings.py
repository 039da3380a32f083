"""Settings: flags, then ``ROOMWIRE_URL`` / ``ROOMWIRE_SECRET`` / ``ROOMWIRE_TOKEN``."""

from __future__ import annotations

import json

from roomwire import ParticipantToken

from .conftest import (
    EXIT_CONNECT,
    EXIT_OK,
    EXIT_TOKEN,
    SECRET,
    Server,
    Spawner,
    assert_exit,
    assert_one_line_error,
    cli_env,
    free_port,
    run_cli,
)

WRONG_SECRET = "not-the-server-secret-0123456789abcdef-0123"
LIST = ("messaging", "list", "--json")


def _token(room: str, name: str = "alice") -> str:
    return ParticipantToken(room=room, name=name).to_jwt(SECRET)


def _unreachable() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def test_environment_alone_url_and_secret(server: Server, room: str) -> None:
    env = cli_env(ROOMWIRE_URL=server.url, ROOMWIRE_SECRET=SECRET)
    result = run_cli(*LIST, "--room", room, env=env)
    assert_exit(result, EXIT_OK)
    assert json.loads(result.stdout) == []


def test_environment_alone_url_and_token(server: Server, room: str, spawn: Spawner) -> None:
    bob = spawn.listener(server.url, room, "bob", "--json")
    env = cli_env(ROOMWIRE_URL=server.url, ROOMWIRE_TOKEN=_token(room, "alice"))
    result = run_cli("messaging", "send", "--to", "bob", "--type", "t", "--data", "{}", env=env)
    assert_exit(result, EXIT_OK)
    joined = bob.wait_record(lambda r: r["event"] == "joined")
    assert joined["participant"]["name"] == "alice"  # the token's identity, not a minted one


def test_url_flag_beats_environment(server: Server, room: str) -> None:
    env = cli_env(ROOMWIRE_URL=_unreachable(), ROOMWIRE_SECRET=SECRET)
    assert_exit(run_cli(*LIST, "--room", room, "--url", server.url, env=env), EXIT_OK)
    env = cli_env(ROOMWIRE_URL=server.url, ROOMWIRE_SECRET=SECRET)
    result = run_cli(*LIST, "--room", room, "--url", _unreachable(), env=env)
    assert_one_line_error(result, EXIT_CONNECT, "cannot reach")


def test_secret_flag_beats_environment(server: Server, room: str) -> None:
    env = cli_env(ROOMWIRE_URL=server.url, ROOMWIRE_SECRET=WRONG_SECRET)
    assert_exit(run_cli(*LIST, "--room", room, "--secret", SECRET, env=env), EXIT_OK)
    env = cli_env(ROOMWIRE_URL=server.url, ROOMWIRE_SECRET=SECRET)
    result = run_cli(*LIST, "--room", room, "--secret", WRONG_SECRET, env=env)
    assert_one_line_error(result, EXIT_TOKEN, "TOKEN_BAD_SIGNATURE")


def test_token_flag_beats_environment(server: Server, room: str) -> None:
    env = cli_env(ROOMWIRE_URL=server.url, ROOMWIRE_TOKEN="garbage")
    assert_exit(run_cli(*LIST, "--token", _token(room), env=env), EXIT_OK)
    env = cli_env(ROOMWIRE_URL=server.url, ROOMWIRE_TOKEN=_token(room))
    result = run_cli(*LIST, "--token", "garbage", env=env)
    assert_one_line_error(result, EXIT_TOKEN, "TOKEN_INVALID")


def test_token_beats_secret_from_the_same_place(server: Server, room: str) -> None:
    # Both from the environment: the token is used as given.
    env = cli_env(ROOMWIRE_URL=server.url, ROOMWIRE_TOKEN="garbage", ROOMWIRE_SECRET=SECRET)
    assert_one_line_error(run_cli(*LIST, "--room", room, env=env), EXIT_TOKEN, "TOKEN_INVALID")
    # Both as flags: likewise.
    result = run_cli(
        *LIST, "--url", server.url, "--room", room, "--token", "garbage", "--secret", SECRET
    )
    assert_one_line_error(result, EXIT_TOKEN, "TOKEN_INVALID")


def test_secret_flag_beats_token_from_environment(
    server: Server, room: str, spawn: Spawner
) -> None:
    bob = spawn.listener(server.url, room, "bob", "--json")
    env = cli_env(ROOMWIRE_URL=server.url, ROOMWIRE_TOKEN=_token(room, "from-env"))
    result = run_cli(
        "messaging", "send", "--room", room, "--secret", SECRET, "--name", "from-flag",
        "--to", "bob", "--type", "t", "--data", "{}", env=env,
    )  # fmt: skip
    assert_exit(result, EXIT_OK)
    # Minted from the flag, so hidden (one-shot commands are no presence churn): the
    # environment's token would have entered presence, before its message.
    bob.wait_record(lambda r: r["event"] == "message")
    assert [r["event"] for r in bob.records()] == ["message"]


def test_token_command_secret_flag_beats_environment() -> None:
    env = cli_env(ROOMWIRE_SECRET=WRONG_SECRET)
    result = run_cli("token", "--room", "r", "--name", "a", "--secret", SECRET, env=env)
    assert_exit(result, EXIT_OK)
    assert ParticipantToken.from_jwt(result.stdout.strip(), SECRET).name == "a"


def test_room_from_environment(server: Server, room: str, spawn: Spawner) -> None:
    spawn.listener(server.url, room, "bob")
    env = cli_env(ROOMWIRE_URL=server.url, ROOMWIRE_SECRET=SECRET, ROOMWIRE_ROOM=room)
    result = run_cli(*LIST, env=env)
    assert_exit(result, EXIT_OK)
    assert [p["name"] for p in json.loads(result.stdout)] == ["bob"]
