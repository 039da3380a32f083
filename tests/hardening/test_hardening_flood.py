"""Issue 13, finding 1: a flood of connections on a server with few file descriptors.

A server in a subprocess runs with RLIMIT_NOFILE at 64 and is flooded from 127.0.0.2 by
many more connections than that (each says nothing; the flooder opens a new one for each
the server drops). Meanwhile, and after the flood, legitimate clients from 127.0.0.1 say
hello and must get their welcome. On each runtime (asyncio, uvloop, trio):

- without a cap the accept loop runs out of descriptors (EMFILE): it backs off and logs one
  line per episode, the process stays up, and the handshake timeout frees descriptors;
- with ``max_connections_per_address`` the flood is refused with 3005 TOO_MANY_CONNECTIONS
  and never takes the descriptors: the legitimate clients are served at once.
"""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from roomwire import PROTOCOL_VERSION, ParticipantToken
from roomwire.frames import FrameBuffer, decode_payload, encode_frame

from ..bindings import SECRET

SCRIPT = Path(__file__).with_name("flood_server.py")
NOFILE = 64
FLOOD = 300
"""Connections the flooder keeps open: several times the server's descriptors."""
FLOOD_S = 4.0
LEGIT_EVERY_S = 0.25
LEGIT_TIMEOUT_S = 3.0


class Flooder(threading.Thread):
    """Keeps ``FLOOD`` silent connections open from 127.0.0.2; counts the 3005 refusals."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.opened = self.refused = 0

    def _open(self) -> socket.socket | None:
        try:
            return socket.create_connection(
                ("127.0.0.1", self.port), timeout=0.5, source_address=("127.0.0.2", 0)
            )
        except OSError:
            return None  # the backlog is full: try again on the next round

    def run(self) -> None:
        sockets: list[socket.socket] = []
        try:
            while not self.stop.is_set():
                while len(sockets) < FLOOD and not self.stop.is_set():
                    s = self._open()
                    if s is None:
                        break
                    sockets.append(s)
                    self.opened += 1
                ready, _, _ = select.select(sockets, [], [], 0.05)
                for s in ready:
                    try:
                        data = s.recv(4096)
                    except OSError:
                        data = b""
                    self.refused += b"TOO_MANY" in data or b"maximum of" in data
                    s.close()
                    sockets.remove(s)
        finally:
            for s in sockets:
                s.close()


def legit_client(port: int, token: str) -> bool:
    """Say hello from 127.0.0.1; True once the welcome arrives within the timeout."""
    deadline = time.monotonic() + LEGIT_TIMEOUT_S
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=LEGIT_TIMEOUT_S) as s:
            s.sendall(encode_frame({"t": "hello", "v": PROTOCOL_VERSION, "token": token}))
            buffer = FrameBuffer(1 << 20)
            while (left := deadline - time.monotonic()) > 0:
                s.settimeout(left)
                data = s.recv(65536)
                if not data:
                    return False
                buffer.feed(data)
                while (payload := buffer.next_payload()) is not None:
                    return bool(decode_payload(payload)["t"] == "welcome")
    except OSError:
        return False
    return False


def run_flood(runtime: str, tmp_path: Path, **settings: Any) -> dict[str, Any]:
    settings = {"secret": SECRET, "handshake_timeout": 1.0, **settings}
    log_path = tmp_path / "server.log"
    token = ParticipantToken(room="main", name="legit").to_jwt(SECRET)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), runtime, json.dumps(settings), str(NOFILE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        assert process.stdout is not None
        assert process.stdin is not None
        port = json.loads(process.stdout.readline())["port"]
        flooder = Flooder(port)
        flooder.start()
        during: list[bool] = []
        end = time.monotonic() + FLOOD_S
        while time.monotonic() < end:
            during.append(legit_client(port, token))
            time.sleep(LEGIT_EVERY_S)
        flooder.stop.set()
        flooder.join(10)
        alive_after_flood = process.poll() is None
        time.sleep(1.5)  # the flood's last connections reach their handshake timeout
        after = [legit_client(port, token) for _ in range(10)]
        process.stdin.close()
        code = process.wait(15)
    finally:
        process.stdout.close()
        if process.poll() is None:
            process.kill()  # only the process this test started
            process.wait()
    text = log_path.read_text()
    return {
        "served_during": sum(during),
        "tried_during": len(during),
        "served_after": sum(after),
        "tried_after": len(after),
        "flood_opened": flooder.opened,
        "flood_refused_3005": flooder.refused,
        "alive": alive_after_flood,
        "exit": code,
        "log_lines": len(text.splitlines()),
        "log": text,
    }


RUNTIMES = ["asyncio", "uvloop", "trio"]


def _report(name: str, runtime: str, found: dict[str, Any]) -> None:
    shown = {k: v for k, v in found.items() if k != "log"}
    print(f"\n{name}[{runtime}]: {shown}")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_hardening_flood_without_a_cap_backs_off_and_stays_up(runtime: str, tmp_path: Path) -> None:
    found = run_flood(runtime, tmp_path)
    _report("no cap", runtime, found)
    assert found["alive"], found["log"][-3000:]
    assert found["exit"] == 0, found["log"][-3000:]
    assert found["flood_opened"] > NOFILE
    assert "Traceback" not in found["log"]
    # Out of descriptors at least once; one line when an episode starts, one when it ends.
    assert "cannot accept connections (Too many open files)" in found["log"]
    assert found["log_lines"] <= 40, found["log"][-3000:]
    # Without a cap nothing can promise a client a descriptor while the flood holds them
    # all: whether one gets through during it is luck (reported, not asserted); the caps
    # test below is the one that promises service during a flood.
    assert found["served_after"] == found["tried_after"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_hardening_flood_over_the_per_address_cap_is_refused_and_others_are_served(
    runtime: str, tmp_path: Path
) -> None:
    found = run_flood(runtime, tmp_path, max_connections=40, max_connections_per_address=20)
    _report("capped", runtime, found)
    assert found["alive"]
    assert found["exit"] == 0, found["log"][-3000:]
    assert found["flood_refused_3005"] > NOFILE
    assert "Too many open files" not in found["log"]
    assert found["log_lines"] <= 40, found["log"][-3000:]
    assert found["served_during"] == found["tried_during"]
    assert found["served_after"] == found["tried_after"]
