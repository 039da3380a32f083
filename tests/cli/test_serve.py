"""``roomwire serve``: ready line, generated development secret, signals, logging; and the
entry points (console script, ``python -m``, help with the exit codes)."""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path

import pytest
from roomwire_asyncio.cli import EXIT_CODES

from roomwire import ParticipantToken

from .conftest import (
    EXIT_ANSWERED_ERROR,
    EXIT_CONNECT,
    EXIT_FORBIDDEN,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_NO_ANSWER,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_RATE_LIMITED,
    EXIT_STREAM_FAILED,
    EXIT_TOKEN,
    EXIT_TOO_LARGE,
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

STOP_WITHIN = 5.0
"""Seconds a server may take to stop after SIGTERM / SIGINT."""


def test_serve_with_secret_prints_its_url_and_logs_at_info(server: Server) -> None:
    assert server.stdout == f"listening on {server.url}\n"
    assert f"INFO roomwire.server: serving on {server.url}" in server.stderr
    assert "development secret" not in server.stderr  # only when it made one up


def _banner(server: Server) -> dict[str, str]:
    """The generated secret, example token and next commands printed by a secret-less serve."""
    lines = server.stderr.splitlines()
    found: dict[str, str] = {}
    for i, line in enumerate(lines):
        if line.startswith("development secret (generated): "):
            found["secret"] = line.rsplit(" ", 1)[1]
        elif line.startswith("example token for alice in room demo:"):
            found["token"] = lines[i + 1].strip()
        elif line.strip().startswith("export "):
            found["export"] = line.strip()
        elif line.strip().startswith("roomwire messaging listen"):
            found["listen"] = line.strip()
        elif line.strip().startswith("roomwire messaging broadcast"):
            found["broadcast"] = line.strip()
    assert found.keys() == {"secret", "token", "export", "listen", "broadcast"}, server.stderr
    return found


def test_serve_without_secret_prints_a_working_secret_token_and_next_commands(
    spawn: Spawner,
) -> None:
    server = spawn.server(secret=None)
    banner = _banner(server)
    secret = banner["secret"]
    assert len(secret) >= 32

    # The example token is signed with the printed secret and the server takes it.
    grant = ParticipantToken.from_jwt(banner["token"], secret)
    assert (grant.room, grant.name) == ("demo", "alice")
    result = run_cli("messaging", "list", "--url", server.url, "--token", banner["token"], "--json")
    assert_exit(result, EXIT_OK)

    # The next commands, run as printed (``roomwire`` is this interpreter's CLI).
    export = shlex.split(banner["export"])[1:]
    settings = dict(item.split("=", 1) for item in export)
    assert settings == {"ROOMWIRE_URL": server.url, "ROOMWIRE_SECRET": secret}
    env = cli_env(**settings)
    listen = spawn.process(shlex.split(banner["listen"])[1:], env)
    listen.wait_output("listening in room demo", stream="stderr")
    result = run_cli(*shlex.split(banner["broadcast"])[1:], env=env)
    assert_exit(result, EXIT_OK)
    listen.wait_output("[chat] ")
    assert '{"text": "hi"}' in listen.stdout
    # The example token's alice sees the listener.
    result = run_cli("messaging", "list", "--url", server.url, "--token", banner["token"])
    assert_exit(result, EXIT_OK)
    assert "roomwire-cli" in result.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_cleanly_on_signal(spawn: Spawner, sig: signal.Signals) -> None:
    server = spawn.server()
    room = f"stop-{sig.name}"
    listener = spawn.listener(server.url, room, "lis", "--json")
    code, took = server.stop(sig)
    assert code == EXIT_OK, server.stderr
    assert took < STOP_WITHIN
    assert server.stderr.rstrip().endswith("stopped")
    assert "Traceback" not in server.stderr
    # Connected clients were told the server is going away (and try to reconnect).
    record = listener.wait_record(lambda r: r["event"] == "disconnected")
    assert record["code"] == "GOING_AWAY"
    assert record["reconnecting"] is True


def test_serve_never_logs_tokens_or_payloads(server: Server, room: str, spawn: Spawner) -> None:
    marker = f"PAYLOAD-{room}"
    bob_token = ParticipantToken(room=room, name="bob").to_jwt(SECRET)
    alice_token = ParticipantToken(room=room, name="alice").to_jwt(SECRET)
    mute_token = ParticipantToken(room=room, name="mute", can_send=False).to_jwt(SECRET)
    listener = spawn.listener(server.url, room, "bob", "--json", "--token", bob_token)
    payload = f'{{"text": "{marker}-direct"}}'
    result = run_cli(
        "messaging", "send", "--url", server.url, "--token", alice_token,
        "--to", "bob", "--type", "chat", "--data", payload,
    )  # fmt: skip
    assert_exit(result, EXIT_OK)
    result = run_cli(
        "messaging", "broadcast", "--url", server.url, "--token", alice_token,
        "--type", "chat", "--data", f'{{"text": "{marker}-broadcast"}}',
    )  # fmt: skip
    assert_exit(result, EXIT_OK)
    result = run_cli(
        "messaging", "send", "--url", server.url, "--token", mute_token,
        "--to", "bob", "--type", "chat", "--data", f'{{"text": "{marker}-refused"}}',
    )  # fmt: skip
    assert_exit(result, EXIT_FORBIDDEN)
    wrong = ParticipantToken(room=room, name="eve").to_jwt("another-secret-0123456789abcdef-01")
    result = run_cli("messaging", "list", "--url", server.url, "--token", wrong)
    assert_exit(result, EXIT_TOKEN)
    listener.wait_record(lambda r: r.get("message") == {"text": f"{marker}-broadcast"})

    # INFO lines for connections, joins, refusals and closes...
    server.wait_output("refused FORBIDDEN_SEND", stream="stderr")
    server.wait_output("closed (TOKEN_BAD_SIGNATURE)", stream="stderr")
    log = server.stderr
    assert f"joined room {room}" in log
    assert " INFO roomwire.server: connection " in log
    # ...and never a token or a message's content.
    for token in (bob_token, alice_token, mute_token, wrong):
        assert token not in log
        assert token.rsplit(".", 1)[1] not in log  # not even the signature
    assert marker not in log
    assert SECRET not in log


def test_serve_never_logs_attachments(
    server: Server, room: str, spawn: Spawner, tmp_path: Path
) -> None:
    marker = f"ATTACHMENT-{room}"
    file = tmp_path / "note.txt"
    file.write_text(marker)
    spawn.listener(server.url, room, "bob", "--json")
    result = run_cli(
        "messaging", "send", *via(server), "--room", room, "--to", "bob",
        "--type", "file", "--data", "{}", "--attachment", str(file),
    )  # fmt: skip
    assert_exit(result, EXIT_OK)
    assert marker not in server.stderr


def test_serve_on_a_taken_port_is_a_one_line_error(server: Server) -> None:
    result = run_cli("serve", "--host", "127.0.0.1", "--port", str(server.port), "--secret", SECRET)
    assert_one_line_error(result, EXIT_CONNECT, f"cannot listen on 127.0.0.1:{server.port}")


def test_console_script_next_to_the_interpreter(server: Server, room: str) -> None:
    script = Path(sys.executable).parent / "roomwire"
    assert script.exists(), f"no console script at {script}"
    result = run_cli("--help", command=[str(script)])
    assert_exit(result, EXIT_OK)
    for command in ("serve", "token", "demo", "messaging"):
        assert command in result.stdout
    result = run_cli(
        "messaging", "list", *via(server), "--room", room, "--json", command=[str(script)]
    )
    assert_exit(result, EXIT_OK)
    assert result.stdout.strip() == "[]"


def test_help_documents_every_exit_code() -> None:
    assert EXIT_CODES.keys() == {
        EXIT_OK, 1, EXIT_USAGE, EXIT_CONNECT, EXIT_TOKEN, EXIT_NOT_FOUND, EXIT_FORBIDDEN,
        EXIT_TOO_LARGE, EXIT_INVALID, EXIT_RATE_LIMITED, EXIT_INTERRUPTED,
        EXIT_ANSWERED_ERROR, EXIT_NO_ANSWER, EXIT_STREAM_FAILED,
    }  # fmt: skip
    result = run_cli("--help", env=cli_env(COLUMNS="1000"))
    assert_exit(result, EXIT_OK)
    text = " ".join(result.stdout.split())
    for code, meaning in EXIT_CODES.items():
        assert f"{code} {meaning}" in text


def test_no_arguments_shows_help() -> None:
    result = run_cli()
    assert result.returncode in (EXIT_OK, EXIT_USAGE)
    assert "Usage" in result.stdout + result.stderr
