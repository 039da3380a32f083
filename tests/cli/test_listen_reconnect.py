"""``roomwire messaging listen`` across a server restart: it reconnects and keeps printing,
and it exits non-zero, naming the reason, once reconnecting cannot succeed (here: its token
expired while the server was down, so the exit code is the token one)."""

from __future__ import annotations

import json
import time

from roomwire import ParticipantToken

from .conftest import (
    EXIT_OK,
    EXIT_TOKEN,
    SECRET,
    Spawner,
    assert_exit,
    free_port,
    run_cli,
)

GIVE_UP_WITHIN = 15.0
"""Seconds the expired listener may take to notice and exit (reconnect backoff included)."""


def test_listen_reconnects_after_a_restart_and_gives_up_on_an_expired_token(
    spawn: Spawner,
) -> None:
    port = free_port()
    first = spawn.server(port=port)
    expires_at = time.time() + 2.5
    short = ParticipantToken(room="r", name="brief", expires_at=expires_at).to_jwt(SECRET)
    brief, steady = spawn.listeners(
        first.url, "r", ("brief", "--json", "--token", short), ("steady", "--json")
    )

    assert first.stop()[0] == EXIT_OK
    for listener in (steady, brief):
        record = listener.wait_record(lambda r: r["event"] == "disconnected")
        assert (record["code"], record["reconnecting"]) == ("GOING_AWAY", True)
    time.sleep(max(0.0, expires_at - time.time()) + 0.1)

    second = spawn.server(port=port)
    # The steady listener is back and still printing what others send.
    steady.wait_record(lambda r: r["event"] == "reconnected", timeout=GIVE_UP_WITHIN)
    result = run_cli(
        "messaging", "send", "--url", second.url, "--secret", SECRET, "--room", "r",
        "--to", "steady", "--type", "after", "--data", '{"restart": true}', "--json",
    )  # fmt: skip
    assert_exit(result, EXIT_OK)
    message_id = json.loads(result.stdout)["id"]
    steady.wait_record(lambda r: r["event"] == "message" and r["id"] == message_id)

    # The brief one's token expired while the server was down: it says so and exits 4.
    code = brief.proc.wait(timeout=GIVE_UP_WITHIN)
    assert code == EXIT_TOKEN, brief.stderr
    last = brief.records()[-1]
    assert (last["event"], last["code"], last["reconnecting"]) == (
        "disconnected", "TOKEN_EXPIRED", False,
    )  # fmt: skip
    errors = [line for line in brief.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, brief.stderr
    assert errors[0].startswith("error: token refused (TOKEN_EXPIRED)")
    assert "Traceback" not in brief.stderr
