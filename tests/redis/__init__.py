"""The multi-node suite: roomwire servers sharing rooms through a real redis-server.

Each test starts its own ``redis-server`` on a free 127.0.0.1 port in a temporary directory
(no persistence) and stops it by pid; nodes are ``serve(redis=...)`` in the test's event loop
or ``node.py`` subprocesses (when a test must SIGKILL one). Timings are scaled down: a 1 s
presence TTL, a 0.5 s probe interval. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SECRET = "redis-suite-secret-0123456789abcdef-0123456789"
TTL = 1.0
"""Presence TTL of the nodes under test (heartbeat every TTL / 4)."""
HEARTBEAT = TTL / 4
PROBE = 0.5
"""Liveness probe interval of the nodes under test."""
WAIT = 10.0
"""Upper bound on any wait for something that should happen well within a second."""
NODE_SCRIPT = Path(__file__).with_name("node.py")

NODE_SETTINGS: dict[str, Any] = {
    "backplane_ttl": TTL,
    "backplane_heartbeat": HEARTBEAT,
    "probe_interval": PROBE,
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server of the test's own: loopback, a free port, no persistence."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (apt-get install redis-server)"
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + WAIT
        while not _accepts(self.port):
            assert self.process.poll() is None, (self.directory / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.01)

    def stop(self, sig: int = signal.SIGKILL) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, sig)
            process.wait(timeout=WAIT)


class NodeProcess:
    """``node.py`` in a subprocess: a ``serve(redis=...)`` node that prints its URL."""

    def __init__(self, redis_url: str, node_id: str, directory: Path, **extra: Any) -> None:
        self.node_id = node_id
        self.log_path = directory / f"{node_id}.log"
        settings = json.dumps(NODE_SETTINGS | {"node_id": node_id, "secret": SECRET} | extra)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(NODE_SCRIPT), redis_url, settings],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()  # node.py prints it once serving
        assert line.startswith("tcp://"), f"node {node_id} did not start: {self.log()}"
        self.url = line.strip()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
            self.process.wait(timeout=WAIT)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
