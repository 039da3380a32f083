"""``roomwire token``: plain and ``--json`` output, roles, expiry and grants, each checked
against a real server."""

from __future__ import annotations

import json
import time

import pytest

from roomwire import ParticipantToken

from .conftest import (
    EXIT_FORBIDDEN,
    EXIT_OK,
    EXIT_TOKEN,
    EXIT_USAGE,
    SECRET,
    Server,
    Spawner,
    assert_exit,
    assert_one_line_error,
    cli_env,
    mint,
    run_cli,
)


def _as(server: Server, token: str) -> list[str]:
    return ["--url", server.url, "--token", token]


def test_token_prints_a_jwt_signed_with_the_secret() -> None:
    result = run_cli("token", "--room", "r1", "--name", "alice", "--secret", SECRET)
    assert_exit(result, EXIT_OK)
    assert result.stdout.count("\n") == 1
    grant = ParticipantToken.from_jwt(result.stdout.strip(), SECRET)
    assert grant == ParticipantToken(room="r1", name="alice", role="user")


def test_token_json_role_and_ttl() -> None:
    before = time.time()
    result = run_cli(
        "token", "--room", "r1", "--name", "bot", "--role", "agent", "--ttl", "60",
        "--secret", SECRET, "--json",
    )  # fmt: skip
    assert_exit(result, EXIT_OK)
    data = json.loads(result.stdout)
    assert data.keys() == {"token", "room", "name", "role", "expires_at"}
    assert (data["room"], data["name"], data["role"]) == ("r1", "bot", "agent")
    assert before + 60 <= data["expires_at"] <= time.time() + 60
    grant = ParticipantToken.from_jwt(data["token"], SECRET)
    assert (grant.room, grant.name, grant.role) == ("r1", "bot", "agent")
    assert grant.expires_at == data["expires_at"]


def test_token_json_without_ttl_does_not_expire() -> None:
    result = run_cli("token", "--room", "r1", "--name", "a", "--secret", SECRET, "--json")
    assert_exit(result, EXIT_OK)
    data = json.loads(result.stdout)
    assert data["expires_at"] is None
    assert ParticipantToken.from_jwt(data["token"], SECRET).expires_at is None


def test_expired_token_is_refused_with_the_token_exit_code(server: Server, room: str) -> None:
    # Long enough for the first command's interpreter to start on a loaded machine.
    result = run_cli(
        "token", "--room", room, "--name", "a", "--ttl", "4", "--secret", SECRET, "--json"
    )
    assert_exit(result, EXIT_OK)
    data = json.loads(result.stdout)
    assert_exit(run_cli("messaging", "list", *_as(server, data["token"])), EXIT_OK)
    time.sleep(max(0.0, data["expires_at"] - time.time()) + 0.1)
    result = run_cli("messaging", "list", *_as(server, data["token"]))
    assert_one_line_error(result, EXIT_TOKEN, "TOKEN_EXPIRED")


@pytest.mark.parametrize("ttl", ["0", "-5"])
def test_token_ttl_must_be_positive(ttl: str) -> None:
    result = run_cli("token", "--room", "r", "--name", "a", "--secret", SECRET, f"--ttl={ttl}")
    assert_one_line_error(result, EXIT_USAGE, "--ttl")


def test_token_needs_a_secret() -> None:
    result = run_cli("token", "--room", "r", "--name", "a")
    assert_one_line_error(result, EXIT_USAGE, "no secret")


def test_token_secret_from_environment() -> None:
    result = run_cli("token", "--room", "r", "--name", "a", env=cli_env(ROOMWIRE_SECRET=SECRET))
    assert_exit(result, EXIT_OK)
    assert ParticipantToken.from_jwt(result.stdout.strip(), SECRET).name == "a"


def test_token_with_an_invalid_field_is_a_usage_error() -> None:
    result = run_cli("token", "--room", "r", "--name", "", "--secret", SECRET)
    assert_one_line_error(result, EXIT_USAGE, "name")


def test_no_send_grant_refuses_direct_messages(server: Server, room: str, spawn: Spawner) -> None:
    spawn.listener(server.url, room, "bob", "--json")
    muted = mint(room, "mute", "--no-send")
    send = ["messaging", "send", *_as(server, muted), "--type", "chat", "--data", "{}"]
    result = run_cli(*send, "--to", "bob")
    assert_one_line_error(result, EXIT_FORBIDDEN, "FORBIDDEN_SEND")
    # Broadcasting is a separate grant.
    result = run_cli("messaging", "broadcast", *_as(server, muted), "--type", "t", "--data", "{}")
    assert_exit(result, EXIT_OK)


def test_no_broadcast_grant_refuses_broadcasts(server: Server, room: str, spawn: Spawner) -> None:
    spawn.listener(server.url, room, "bob", "--json")
    quiet = mint(room, "quiet", "--no-broadcast")
    result = run_cli("messaging", "broadcast", *_as(server, quiet), "--type", "t", "--data", "{}")
    assert_one_line_error(result, EXIT_FORBIDDEN, "FORBIDDEN_BROADCAST")
    result = run_cli(
        "messaging", "send", *_as(server, quiet), "--to", "bob", "--type", "t", "--data", "{}"
    )
    assert_exit(result, EXIT_OK)


def test_no_list_grant_refuses_presence(server: Server, room: str, spawn: Spawner) -> None:
    bob = spawn.listener(server.url, room, "bob", "--json")
    blind = mint(room, "blind", "--no-list")
    result = run_cli("messaging", "list", *_as(server, blind))
    assert_one_line_error(result, EXIT_FORBIDDEN, "FORBIDDEN_LIST")
    result = run_cli("messaging", "listen", *_as(server, blind))
    assert_one_line_error(result, EXIT_FORBIDDEN, "FORBIDDEN_LIST")
    # Sending by name needs the participant list; sending by id does not.
    send = ["messaging", "send", *_as(server, blind), "--type", "t", "--data", "{}"]
    assert_one_line_error(run_cli(*send, "--to", "bob"), EXIT_FORBIDDEN, "FORBIDDEN_LIST")
    assert_exit(run_cli(*send, "--to-participant-id", bob.id), EXIT_OK)
    bob.wait_record(lambda r: r["event"] == "message" and r["type"] == "t")


def test_hidden_token_sends_without_entering_presence(
    server: Server, room: str, spawn: Spawner
) -> None:
    hidden = mint(room, "ghost", "--hidden")
    assert ParticipantToken.from_jwt(hidden, SECRET).hidden is True
    bob = spawn.listener(server.url, room, "bob", "--json")
    result = run_cli(
        "messaging", "send", *_as(server, hidden), "--to", "bob", "--type", "t", "--data", "{}"
    )
    assert_exit(result, EXIT_OK)
    bob.wait_record(lambda r: r["event"] == "message")
    assert [r["event"] for r in bob.records()] == ["message"]  # no joined, no left before it
