"""``room.messaging.on()`` is typed: ``mypy --strict`` rejects a misspelt event name and a
callback of the wrong type, and accepts the right ones (run on snippets, as a user would)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

GOOD = """
import roomwire_asyncio as rw
import roomwire_trio


def on_message(message: rw.RoomMessage) -> None: ...
async def on_added(participant: rw.RemoteParticipant) -> None: ...


def register(room: rw.RoomClient) -> None:
    room.messaging.on("message", on_message)
    room.messaging.on("participant_added", on_added)
    room.messaging.on("participant_removed", lambda p: print(p.name))
    room.messaging.on("participant_updated", lambda p: print(p.attributes))
    room.messaging.off("message", on_message)


async def drain(room: rw.RoomClient) -> None:
    events = room.messaging.events()
    async for event in events:
        if isinstance(event, rw.MessageReceived | roomwire_trio.MessageReceived):
            print(event.message.id)
        elif isinstance(event, rw.Disconnected | roomwire_trio.Reconnected):
            break
    await events.aclose()
"""

BAD = """
import roomwire_asyncio as rw


def on_message(message: rw.RoomMessage) -> None: ...
def on_added(participant: rw.RemoteParticipant) -> None: ...


def register(room: rw.RoomClient) -> None:
    room.messaging.on("mesage", on_message)  # line 10: misspelt
    room.messaging.on("message", on_added)  # line 11: a participant callback for messages
    room.messaging.on("participant_added", on_message)  # line 12: the other way round
    room.messaging.on("message", lambda m: m.name)  # line 13: RoomMessage has no name
"""


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
         "--cache-dir", str(tmp_path / "cache"), str(snippet)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_mypy_accepts_the_right_event_names_and_callbacks(tmp_path: Path) -> None:
    result = _mypy(tmp_path, GOOD)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_rejects_a_misspelt_event_and_a_wrong_callback(tmp_path: Path) -> None:
    result = _mypy(tmp_path, BAD)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = {int(m.group(1)) for m in re.finditer(r"snippet\.py:(\d+): error", result.stdout)}
    assert lines == {10, 11, 12, 13}, result.stdout
