"""``roomwire messaging list / send / broadcast / listen`` against a real server, with
listeners in subprocesses seeing what other invocations send."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from roomwire import ParticipantToken

from .conftest import (
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_TOO_LARGE,
    SECRET,
    Listener,
    Server,
    Spawner,
    assert_exit,
    assert_one_line_error,
    run_cli,
    via,
)

STOP_WITHIN = 5.0
"""Seconds a listener may take to exit after SIGINT / SIGTERM."""


def _list(server: Server, room: str) -> list[dict[str, Any]]:
    result = run_cli("messaging", "list", *via(server), "--room", room, "--json")
    assert_exit(result, EXIT_OK)
    people: list[dict[str, Any]] = json.loads(result.stdout)
    return people


def _sent_id(stdout: str, recipients: int = 1) -> str:
    match = re.fullmatch(
        rf"sent, message id (\S+), queued for {recipients} recipient\(s\)\n", stdout
    )
    assert match, stdout
    return match.group(1)


def _visible(room: str, name: str) -> str:
    """A token that enters presence: a minted one would be hidden (one-shot commands)."""
    return ParticipantToken(room=room, name=name).to_jwt(SECRET)


def _send(server: Server, room: str, *args: str, sender: str = "alice") -> str:
    """Send as ``sender``, in presence; returns the acked message id from ``--json``."""
    result = run_cli(
        "messaging", "send", *via(server), "--room", room, "--token", _visible(room, sender),
        "--json", *args,
    )  # fmt: skip
    assert_exit(result, EXIT_OK)
    data = json.loads(result.stdout)
    assert data.keys() == {"id", "recipients", "duplicate"}
    assert data["duplicate"] is False
    return str(data["id"])


def _message(listener: Listener, message_id: str) -> dict[str, Any]:
    return listener.wait_record(lambda r: r["event"] == "message" and r["id"] == message_id)


# --- list ---------------------------------------------------------------------------------


def test_list_prints_a_table_of_participants(server: Server, room: str, spawn: Spawner) -> None:
    spawn.listeners(server.url, room, ("alice",), ("bob",))
    result = run_cli("messaging", "list", *via(server), "--room", room)
    assert_exit(result, EXIT_OK)
    assert f"room {room}: 2 participant(s)" in result.stdout
    header = next(line for line in result.stdout.splitlines() if "name" in line)
    for column in ("id", "name", "role", "attributes"):
        assert column in header
    rows = [line for line in result.stdout.splitlines() if "service" in line]
    assert len(rows) == 2
    assert any("alice" in row for row in rows)
    assert any("bob" in row for row in rows)


def test_list_json_gives_participants(server: Server, room: str, spawn: Spawner) -> None:
    agent = ParticipantToken(room=room, name="bot", role="agent").to_jwt(SECRET)
    spawn.listeners(server.url, room, ("bot", "--token", agent), ("bob",))
    people = _list(server, room)
    assert isinstance(people, list)
    for person in people:
        assert person.keys() == {"id", "name", "role", "attributes"}
        assert isinstance(person["id"], str)
        assert person["attributes"] == {}
    assert sorted((p["name"], p["role"]) for p in people) == [
        ("bob", "service"),
        ("bot", "agent"),
    ]
    assert len({p["id"] for p in people}) == 2


def test_list_of_an_empty_room(server: Server, room: str) -> None:
    assert _list(server, room) == []
    result = run_cli("messaging", "list", *via(server), "--room", room)
    assert_exit(result, EXIT_OK)
    assert f"room {room}: 0 participant(s)" in result.stdout


# --- send ---------------------------------------------------------------------------------


def test_send_to_name_exits_0_once_acked(server: Server, room: str, spawn: Spawner) -> None:
    bob = spawn.listener(server.url, room, "bob", "--json")
    result = run_cli(
        "messaging", "send", *via(server), "--room", room, "--token", _visible(room, "alice"),
        "--to", "bob", "--type", "chat", "--data", '{"text": "hi Bob", "n": [1, 2]}',
    )  # fmt: skip
    assert_exit(result, EXIT_OK)
    message_id = _sent_id(result.stdout)
    record = _message(bob, message_id)
    assert record["type"] == "chat"
    assert record["message"] == {"text": "hi Bob", "n": [1, 2]}
    assert record["broadcast"] is False
    assert "attachment" not in record
    assert isinstance(record["timestamp"], float)
    # The server stamped the true sender: the CLI's alice, who joined and left around it.
    joined = bob.wait_record(
        lambda r: r["event"] == "joined" and r["participant"]["name"] == "alice"
    )
    assert record["from"] == joined["participant"]["id"]
    bob.wait_record(lambda r: r["event"] == "left" and r["participant"]["id"] == record["from"])


def test_send_to_participant_id_json(server: Server, room: str, spawn: Spawner) -> None:
    bob = spawn.listener(server.url, room, "bob", "--json")
    message_id = _send(server, room, "--to-participant-id", bob.id, "--type", "t", "--data", "{}")
    assert _message(bob, message_id)["message"] == {}


def test_send_with_attachment_arrives_as_base64(
    server: Server, room: str, spawn: Spawner, tmp_path: Path
) -> None:
    bob = spawn.listener(server.url, room, "bob", "--json")
    file = tmp_path / "blob.bin"
    content = bytes(range(256)) + os.urandom(1000)
    file.write_bytes(content)
    message_id = _send(
        server, room, "--to", "bob", "--type", "file", "--data", '{"name": "blob.bin"}',
        "--attachment", str(file),
    )  # fmt: skip
    record = _message(bob, message_id)
    assert base64.b64decode(record["attachment"]) == content
    assert record["message"] == {"name": "blob.bin"}


def test_send_to_unknown_name_is_not_found(server: Server, room: str, spawn: Spawner) -> None:
    spawn.listener(server.url, room, "bob")
    result = run_cli(
        "messaging", "send", *via(server), "--room", room,
        "--to", "nobody", "--type", "t", "--data", "{}",
    )  # fmt: skip
    assert_one_line_error(result, EXIT_NOT_FOUND, "NOT_FOUND", "nobody")


def test_send_to_unknown_id_is_not_found(server: Server, room: str, spawn: Spawner) -> None:
    spawn.listener(server.url, room, "bob")
    result = run_cli(
        "messaging", "send", *via(server), "--room", room,
        "--to-participant-id", "no-such-id", "--type", "t", "--data", "{}",
    )  # fmt: skip
    assert_one_line_error(result, EXIT_NOT_FOUND, "NOT_FOUND")


def test_send_to_a_participant_of_another_room_is_not_found(
    server: Server, room: str, spawn: Spawner
) -> None:
    bob = spawn.listener(server.url, f"{room}-elsewhere", "bob")
    result = run_cli(
        "messaging", "send", *via(server), "--room", room,
        "--to-participant-id", bob.id, "--type", "t", "--data", "{}",
    )  # fmt: skip
    assert_one_line_error(result, EXIT_NOT_FOUND, "NOT_FOUND")


def test_send_over_the_size_limit_is_too_large(
    server: Server, room: str, spawn: Spawner, tmp_path: Path
) -> None:
    spawn.listener(server.url, room, "bob")
    file = tmp_path / "big.bin"
    file.write_bytes(b"\0" * (2 * 1024 * 1024))
    result = run_cli(
        "messaging", "send", *via(server), "--room", room, "--to", "bob",
        "--type", "t", "--data", "{}", "--attachment", str(file),
    )  # fmt: skip
    assert_one_line_error(result, EXIT_TOO_LARGE, "TOO_LARGE")


def test_send_with_an_empty_type_is_an_invalid_request(
    server: Server, room: str, spawn: Spawner
) -> None:
    spawn.listener(server.url, room, "bob")
    result = run_cli(
        "messaging", "send", *via(server), "--room", room, "--to", "bob",
        "--type", "", "--data", "{}",
    )  # fmt: skip
    assert_one_line_error(result, EXIT_INVALID, "INVALID_REQUEST")


# --- broadcast ----------------------------------------------------------------------------


def test_broadcast_reaches_everyone(server: Server, room: str, spawn: Spawner) -> None:
    bob, carol = spawn.listeners(server.url, room, ("bob", "--json"), ("carol", "--json"))
    result = run_cli(
        "messaging", "broadcast", *via(server), "--room", room,
        "--type", "announcement", "--data", '{"text": "hello all"}',
    )  # fmt: skip
    assert_exit(result, EXIT_OK)
    message_id = _sent_id(result.stdout, recipients=2)
    for listener in (bob, carol):
        record = _message(listener, message_id)
        assert record["broadcast"] is True
        assert record["type"] == "announcement"
        assert record["message"] == {"text": "hello all"}


def test_broadcast_json_with_attachment(
    server: Server, room: str, spawn: Spawner, tmp_path: Path
) -> None:
    bob = spawn.listener(server.url, room, "bob", "--json")
    file = tmp_path / "note.txt"
    file.write_bytes(b"for everyone\n")
    result = run_cli(
        "messaging", "broadcast", *via(server), "--room", room, "--json",
        "--type", "file", "--data", "{}", "--attachment", str(file),
    )  # fmt: skip
    assert_exit(result, EXIT_OK)
    message_id = json.loads(result.stdout)["id"]
    record = _message(bob, message_id)
    assert base64.b64decode(record["attachment"]) == b"for everyone\n"
    assert record["broadcast"] is True


def test_broadcast_to_an_empty_room_is_acked(server: Server, room: str) -> None:
    result = run_cli(
        "messaging", "broadcast", *via(server), "--room", room, "--type", "t", "--data", "{}"
    )
    assert_exit(result, EXIT_OK)
    _sent_id(result.stdout, recipients=0)


def test_a_repeated_idempotency_key_is_acked_not_delivered_again(
    server: Server, room: str, spawn: Spawner
) -> None:
    bob = spawn.listener(server.url, room, "bob", "--json")
    flags = ("--room", room, "--token", _visible(room, "alice"), "--idempotency-key", "order-17")
    sent = [
        run_cli(
            "messaging", "broadcast", *via(server), *flags, *more, "--type", "t", "--data", "{}"
        )
        for more in ((), ("--json",))
    ]
    for result in sent:
        assert_exit(result, EXIT_OK)
    message_id = _sent_id(sent[0].stdout)
    assert json.loads(sent[1].stdout) == {"id": message_id, "recipients": 1, "duplicate": True}
    _message(bob, message_id)
    marker = _send(server, room, "--to-participant-id", bob.id, "--type", "marker", "--data", "{}")
    _message(bob, marker)  # sent after both: by now every copy would have arrived
    assert [r["id"] for r in bob.records() if r["event"] == "message"] == [message_id, marker]
    plain = run_cli("messaging", "broadcast", *via(server), *flags, "--type", "t", "--data", "{}")
    assert plain.stdout == (
        f"sent, message id {message_id}, queued for 1 recipient(s)"
        " (a duplicate: not delivered again)\n"
    )


def test_an_idempotency_key_too_long_is_an_invalid_request(server: Server, room: str) -> None:
    result = run_cli(
        "messaging", "broadcast", *via(server), "--room", room,
        "--idempotency-key", "k" * 65, "--type", "t", "--data", "{}",
    )  # fmt: skip
    assert_one_line_error(result, EXIT_INVALID, "idempotency_key")


# --- listen -------------------------------------------------------------------------------


def test_listen_plain_prints_messages_and_presence(
    server: Server, room: str, spawn: Spawner, tmp_path: Path
) -> None:
    spawn.listener(server.url, room, "carol")
    bob = spawn.listener(server.url, room, "bob")
    file = tmp_path / "a.bin"
    file.write_bytes(b"\x01\x02")
    _send(
        server, room, "--to", "bob", "--type", "chat", "--data", '{"text": "plain"}',
        "--attachment", str(file),
    )  # fmt: skip
    line = bob.wait_line("[chat] ")
    # The sender by name, its id in brackets (issue 18: names, not only ids).
    alice_id = re.fullmatch(r'\[chat\] alice \((\S+)\): \{"text": "plain"\} \+attachment', line)
    assert alice_id, line
    bob.wait_line(f"* alice ({alice_id.group(1)}) left")
    lines = bob.lines()
    assert re.fullmatch(r"\* carol \(\S+\) present", lines[0]), lines
    assert f"* alice ({alice_id.group(1)}) joined" in lines
    assert lines.index(f"* alice ({alice_id.group(1)}) joined") < lines.index(line)


def test_listen_json_sees_other_invocations(server: Server, room: str, spawn: Spawner) -> None:
    carol = spawn.listener(server.url, room, "carol", "--json")
    bob = spawn.listener(server.url, room, "bob", "--json")
    assert bob.records()[0] == {
        "event": "present",
        "participant": {"id": carol.id, "name": "carol",
                        "role": "service", "attributes": {}},
    }  # fmt: skip
    carol.wait_record(lambda r: r["event"] == "joined" and r["participant"]["name"] == "bob")
    first = _send(server, room, "--to", "bob", "--type", "n", "--data", '{"n": 1}')
    second = _send(server, room, "--to", "bob", "--type", "n", "--data", '{"n": 2}', sender="dave")
    bob.wait_record(lambda r: r["event"] == "left" and r["participant"]["name"] == "dave")
    records = bob.records()
    events = [(r["event"], r["participant"]["name"] if "participant" in r else r["id"])
              for r in records]  # fmt: skip
    assert events == [
        ("present", "carol"),
        ("joined", "alice"), ("message", first), ("left", "alice"),
        ("joined", "dave"), ("message", second), ("left", "dave"),
    ]  # fmt: skip
    messages = [r for r in records if r["event"] == "message"]
    assert [m["message"] for m in messages] == [{"n": 1}, {"n": 2}]
    assert messages[0]["seq"] < messages[1]["seq"]
    # Carol got nothing addressed to bob, only presence.
    assert all(r["event"] != "message" for r in carol.records())


def test_listen_saves_attachments_to_a_folder(
    server: Server, room: str, spawn: Spawner, tmp_path: Path
) -> None:
    folder = tmp_path / "saved" / "here"
    bob = spawn.listener(server.url, room, "bob", "--json", "--save-attachments", str(folder))
    file = tmp_path / "photo.png"
    file.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    message_id = _send(
        server, room, "--to", "bob", "--type", "file", "--data", "{}", "--attachment", str(file)
    )
    record = _message(bob, message_id)
    assert "attachment" not in record
    saved = Path(record["attachment_file"])
    assert saved.parent == folder
    assert saved.read_bytes() == file.read_bytes()
    # Messages without an attachment carry neither key.
    plain = _send(server, room, "--to", "bob", "--type", "t", "--data", "{}")
    assert not {"attachment", "attachment_file"} & _message(bob, plain).keys()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_listen_stops_on_signal(
    server: Server, room: str, spawn: Spawner, sig: signal.Signals
) -> None:
    carol = spawn.listener(server.url, room, "carol", "--json")
    bob = spawn.listener(server.url, room, "bob", "--json")
    code, took = bob.stop(sig)
    assert code == EXIT_INTERRUPTED
    assert took < STOP_WITHIN
    assert "Traceback" not in bob.stderr
    carol.wait_record(lambda r: r["event"] == "left" and r["participant"]["id"] == bob.id)


# --- issue 18: several recipients, names and disconnect reasons in listen -----------------


def test_send_repeats_to_for_several_recipients(server: Server, room: str, spawn: Spawner) -> None:
    bob, carol, dave = spawn.listeners(server.url, room, ("bob", "--json"), ("carol", "--json"),
                                       ("dave", "--json"))  # fmt: skip
    both = _send(server, room, "--to", "bob", "--to", "carol", "--type", "t", "--data", "{}")
    for listener in (bob, carol):
        _message(listener, both)
    by_id = _send(
        server, room, "--to-participant-id", carol.id, "--to-participant-id", dave.id,
        "--type", "t", "--data", "{}",
    )  # fmt: skip
    for listener in (carol, dave):
        _message(listener, by_id)
    # The server queues a message before it acks it, and each connection's queue is FIFO:
    # had dave been sent the first message, it would have come before the second.
    assert all(r.get("id") != both for r in dave.records())
    assert all(r.get("id") != by_id for r in bob.records())


def test_send_to_several_names_fails_whole_if_one_is_unknown(
    server: Server, room: str, spawn: Spawner
) -> None:
    bob = spawn.listener(server.url, room, "bob", "--json")
    result = run_cli(
        "messaging", "send", *via(server), "--room", room, "--to", "bob", "--to", "nobody",
        "--type", "t", "--data", "{}",
    )  # fmt: skip
    assert_one_line_error(result, EXIT_NOT_FOUND, "nobody")
    after = _send(server, room, "--to", "bob", "--type", "t", "--data", "{}")
    _message(bob, after)
    assert [r["id"] for r in bob.records() if r["event"] == "message"] == [after]


def test_listen_json_names_the_sender(server: Server, room: str, spawn: Spawner) -> None:
    bob = spawn.listener(server.url, room, "bob", "--json")
    message_id = _send(server, room, "--to", "bob", "--type", "t", "--data", "{}")
    record = _message(bob, message_id)
    assert record["from_name"] == "alice"
    joined = next(r for r in bob.records() if r["event"] == "joined")
    assert (joined["participant"]["name"], joined["participant"]["id"]) == ("alice", record["from"])


def test_listen_plain_shows_why_it_was_disconnected_and_names_itself_again(
    spawn: Spawner,
) -> None:
    server = spawn.server()
    bob = spawn.listener(server.url, "going-away", "bob")
    code, _ = server.stop(signal.SIGTERM)
    assert code == EXIT_OK
    line = bob.wait_line("* disconnected")
    assert re.fullmatch(r"\* disconnected: GOING_AWAY \(.+\), reconnecting", line), line
    spawn.server(port=server.port)
    line = bob.wait_line("* reconnected")
    # A new server, a new epoch: what was sent meanwhile cannot be vouched for (§22).
    assert re.fullmatch(r"\* reconnected as bob \(\S+\), not recovered: .+", line), line


# --- one-shot commands are no presence churn (issue 18) -------------------------------------


@pytest.mark.parametrize("as_json", [True, False])
def test_one_shot_commands_are_no_presence_churn(
    server: Server, room: str, spawn: Spawner, as_json: bool
) -> None:
    carol, bob = spawn.listeners(server.url, room, ("carol", "--json"), ("bob",))
    flags = [*via(server), "--room", room, "--name", "cli"]
    json_flag = ["--json"] if as_json else []
    listed = run_cli("messaging", "list", *flags, "--json")
    assert_exit(listed, EXIT_OK)
    assert sorted(p["name"] for p in json.loads(listed.stdout)) == ["bob", "carol"]
    sent = run_cli("messaging", "send", *flags, *json_flag, "--to", "carol", "--to", "bob",
                   "--type", "t", "--data", '{"n": 1}')  # fmt: skip
    assert_exit(sent, EXIT_OK)
    for n in (2, 3):  # the last one marks the end: anything before it has arrived
        cast = run_cli("messaging", "broadcast", *flags, *json_flag, "--type", "t",
                       "--data", f'{{"n": {n}}}')  # fmt: skip
        assert_exit(cast, EXIT_OK)
    carol.wait_record(lambda r: r.get("message") == {"n": 3})
    records = carol.records()
    # Bob may be listed as present or as joined (the listeners started together); no one else.
    assert {r["participant"]["name"] for r in records if "participant" in r} == {"bob"}
    messages = [r for r in records if r["event"] == "message"]
    assert [(m["message"], m["from_name"]) for m in messages] == [
        ({"n": n}, None) for n in (1, 2, 3)
    ]
    # Each command was its own hidden participant: one no listener was told about.
    assert len({m["from"] for m in messages}) == 3
    bob.wait_line('{"n": 3}')
    churn = [line for line in bob.lines() if line.endswith((" joined", " left"))]
    assert all(line.startswith("* carol (") for line in churn), churn
