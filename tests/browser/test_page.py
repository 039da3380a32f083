"""examples/browser/ in Debian's chromium (driven by drive.mjs through playwright-core)
against ``examples/browser/serve.py`` (a real server with a ws:// listener) and a Python peer:
presence both ways, a direct message with a binary attachment both ways, a broadcast both
ways, and a NOT_FOUND refusal shown with its code name.

The page loads the TypeScript client's bundle: the test builds it (``npm ci``, ``npm run
build`` in bindings/typescript) when it is missing. ``ROOMWIRE_SCREENSHOT=path`` keeps the
page's screenshot there (docs/browser-example.png was taken so).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
import roomwire_asyncio

from roomwire import ParticipantToken
from roomwire.events import MessageReceived, ParticipantAdded
from tests.bindings import next_event

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
TS = ROOT / "bindings" / "typescript"
SECRET = "browser-test-secret-0123456789abcdef-0123456789"
PEER_BLOB = bytes(range(256)) * 9 + b"\x00\xff"
TIMEOUT = 60.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def bundle() -> Path:
    """The client's bundle and playwright-core, built/installed if missing."""
    built = TS / "dist" / "index.js"
    if not (built.exists() and (TS / "node_modules" / "playwright-core").exists()):
        for step in (["npm", "ci", "--no-audit", "--no-fund"], ["npm", "run", "build"]):
            subprocess.run(step, cwd=TS, check=True, timeout=300, capture_output=True)
    return built


@pytest.fixture
async def page_server(bundle: Path) -> AsyncIterator[tuple[str, str]]:
    """(page link for "browser", ws URL) of a running examples/browser/serve.py."""
    command = [sys.executable, str(ROOT / "examples/browser/serve.py"), "--http-port", "0"]
    command += ["--ws-port", "0", "--secret", SECRET, "--room", "r", "--name", "browser"]
    process = await anyio.open_process(command, stderr=subprocess.STDOUT)
    try:
        assert process.stdout is not None
        lines: dict[str, str] = {}
        buffer = b""
        with anyio.fail_after(20):
            while "page for browser" not in lines:
                buffer += await process.stdout.receive()
                *done, rest = buffer.split(b"\n")
                buffer = rest
                for line in done:
                    key, _, value = line.decode().partition(": ")
                    lines[key] = value
                    if key.startswith("websocket "):
                        lines["websocket"] = key.split(" ", 1)[1]
        yield lines["page for browser"], lines["websocket"]
    finally:
        process.terminate()  # by its own handle, the process this fixture started
        with anyio.move_on_after(10):
            await process.wait()
        await process.aclose()


async def peer_side(room: Any, found: dict[str, Any]) -> None:
    """The Python peer: sees the page arrive, sends it a DM with an attachment, takes the
    page's DM and broadcast, then broadcasts."""
    added = await next_event(
        room, ParticipantAdded, lambda e: e.participant.name == "browser", timeout=TIMEOUT
    )
    found["presence"] = added.participant
    await room.messaging.send_message(
        to=added.participant, type="chat", message={"text": "from peer"}, attachment=PEER_BLOB
    )
    found["dm"] = (await next_event(room, MessageReceived, timeout=TIMEOUT)).message
    found["broadcast"] = (await next_event(room, MessageReceived, timeout=TIMEOUT)).message
    await room.messaging.broadcast_message(type="chat", message={"text": "from-peer"})


async def test_the_page_talks_with_a_python_peer(
    page_server: tuple[str, str], tmp_path: Path
) -> None:
    link, ws_url = page_server
    screenshot = os.environ.get("ROOMWIRE_SCREENSHOT") or str(tmp_path / "page.png")
    token = ParticipantToken(room="r", name="peer").to_jwt(SECRET)
    found: dict[str, Any] = {}
    async with roomwire_asyncio.connect(ws_url, token=token, reconnect=False) as peer:
        await peer.messaging.enable()
        async with anyio.create_task_group() as tg:
            tg.start_soon(peer_side, peer, found)
            driver = [
                "node",
                str(Path(__file__).with_name("drive.mjs")),
                link,
                PEER_BLOB.hex(),
                screenshot,
            ]
            with anyio.fail_after(TIMEOUT):
                result = await anyio.run_process(driver, check=False)
        assert result.returncode == 0, result.stderr.decode()
    seen = json.loads(result.stdout.decode().strip().splitlines()[-1])
    assert seen["errors"] == []
    # Presence both ways (the page listed "peer" before going on), the peer's attachment
    # arrived whole in the page, and the page's in the peer.
    assert found["presence"].name == "browser"
    assert seen["attachmentFromPeer"] is True
    assert seen["attachmentLength"] == len(PEER_BLOB)
    dm, broadcast = found["dm"], found["broadcast"]
    assert (dm.message, dm.broadcast) == ({"text": "hello peer", "file": "blob.bin"}, False)
    assert dm.attachment == bytes.fromhex(seen["pageBlob"])
    assert dm.from_participant_id == found["presence"].id
    assert (broadcast.message, broadcast.broadcast) == ({"text": "hello room"}, True)
    assert seen["refusal"].startswith("NOT_FOUND: ")
    assert Path(screenshot).stat().st_size > 10_000
