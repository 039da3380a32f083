"""``roomwire messaging stream FILE`` and ``listen --save-streams DIR`` against a real server:
the file arrives whole, the progress bar is on stderr, and a reader that refuses streams is
a typed failure with its own exit code."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .conftest import (
    EXIT_OK,
    EXIT_STREAM_FAILED,
    EXIT_USAGE,
    Server,
    Spawner,
    assert_exit,
    assert_one_line_error,
    run_cli,
    via,
)


def test_a_file_streams_to_a_saving_listener(
    server: Server, room: str, spawn: Spawner, tmp_path: Path
) -> None:
    folder = tmp_path / "incoming"
    listener = spawn.listener(server.url, room, "bob", "--save-streams", str(folder), "--json")
    blob = hashlib.sha256(b"x").digest() * 40_000  # 1.28 MB: many chunks and credit grants
    source = tmp_path / "video.bin"
    source.write_bytes(blob)
    result = run_cli(
        "messaging",
        "stream",
        *via(server),
        "--room",
        room,
        "--to",
        "bob",
        str(source),
        "--chunk-size",
        "50000",
    )
    assert_exit(result, EXIT_OK)
    assert result.stdout.startswith(f"streamed {len(blob)} bytes, stream id ")
    assert "video.bin" in result.stderr  # the progress bar's label
    record = listener.wait_record(lambda r: r["event"] == "stream")
    assert (record["bytes"], record["header"]) == (
        len(blob),
        {"name": "video.bin", "size": len(blob)},
    )
    saved = Path(record["file"])
    assert saved.parent == folder
    assert saved.name.endswith("-video.bin")
    assert saved.read_bytes() == blob


def test_a_listener_without_save_streams_refuses(
    server: Server, room: str, spawn: Spawner, tmp_path: Path
) -> None:
    spawn.listener(server.url, room, "carol")
    source = tmp_path / "a.txt"
    source.write_text("hello")
    args = ["messaging", "stream", *via(server), "--room", room, "--to", "carol", str(source)]
    result = run_cli(*args, "--json")
    assert_one_line_error(result, EXIT_STREAM_FAILED, "STREAM_ABORTED", "not accepting streams")
    result = run_cli("messaging", "stream", *via(server), "--room", room, str(source))
    assert_one_line_error(result, EXIT_USAGE, "exactly one of --to")
    result = run_cli(*args[:-1], str(tmp_path / "missing"))
    assert_exit(result, EXIT_USAGE)
