"""Fixtures for the CLI suite: the real ``roomwire`` command in subprocesses.

Every command runs as ``python -m roomwire_asyncio ...`` with a timeout, against a real
``roomwire serve`` subprocess on 127.0.0.1 and a free port. ``server`` is shared by a module
(tests keep to their own rooms); ``spawn`` starts extra servers and listeners. Every
process started here is stopped by its pid at teardown.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CLI = [sys.executable, "-m", "roomwire_asyncio"]
TRIO_CLI = [sys.executable, "-m", "roomwire_trio"]
"""The same commands on trio."""
SECRET = "cli-tests-secret-0123456789abcdef-0123456789"
TIMEOUT = 20.0
"""Seconds any one CLI invocation may take."""
START_TIMEOUT = 10.0
"""Seconds a server or listener may take to be ready."""

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CONNECT = 3
EXIT_TOKEN = 4
EXIT_NOT_FOUND = 5
EXIT_FORBIDDEN = 6
EXIT_TOO_LARGE = 7
EXIT_INVALID = 8
EXIT_RATE_LIMITED = 9
EXIT_ANSWERED_ERROR = 10
"""messaging request: the participant called answered with an error."""
EXIT_NO_ANSWER = 11
"""messaging request: no answer within --timeout."""
EXIT_STREAM_FAILED = 12
"""messaging stream: the reader refused or aborted the stream, or left."""
EXIT_INTERRUPTED = 130


def free_port() -> int:
    """A port nothing listens on right now (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cli_env(**overrides: str | None) -> dict[str, str]:
    """The test process's environment without ROOMWIRE_* settings, plus ``overrides``
    (None removes a variable). Wide columns keep Rich tables from folding names."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMWIRE_")}
    env.update(COLUMNS="200", PYTHONUNBUFFERED="1")
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
    command: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one CLI command to completion; stderr never holds a traceback."""
    result = subprocess.run(
        [*(command or CLI), *args],
        capture_output=True,
        text=True,
        env=env if env is not None else cli_env(),
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert "ExceptionGroup" not in result.stderr, result.stderr
    return result


def assert_exit(result: subprocess.CompletedProcess[str], code: int) -> None:
    assert result.returncode == code, (
        f"exit {result.returncode}, expected {code}\n"
        f"stdout: {result.stdout}\nstderr: {result.stderr}"
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], code: int, *fragments: str
) -> str:
    """The command failed with ``code`` and exactly one ``error:`` line holding
    ``fragments``; nothing else but warnings on stderr, nothing on stdout."""
    assert_exit(result, code)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert result.stdout == ""
    return lines[0]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class Process:
    """A long-running CLI subprocess (server or listener) with stdout and stderr in files,
    so it never blocks on a full pipe and its output can be read at any time."""

    def __init__(
        self,
        args: list[str],
        folder: Path,
        env: dict[str, str] | None,
        command: list[str] | None = None,
    ) -> None:
        self.args = args
        folder.mkdir(parents=True, exist_ok=True)
        self._out_path = folder / "stdout"
        self._err_path = folder / "stderr"
        with self._out_path.open("wb") as out, self._err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [*(command or CLI), *args],
                stdout=out,
                stderr=err,
                env=env if env is not None else cli_env(),
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stdout(self) -> str:
        return self._out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self._err_path.read_text(errors="replace")

    def wait_output(
        self, text: str, *, stream: str = "stdout", timeout: float = START_TIMEOUT
    ) -> None:
        """Wait until ``text`` is on ``stream``; fail early if the process exits."""

        def seen() -> bool:
            if text in getattr(self, stream):
                return True
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.args[0]} exited {self.proc.returncode} before printing {text!r}\n"
                    f"stdout: {self.stdout}\nstderr: {self.stderr}"
                )
            return False

        wait_for(seen, timeout, f"{text!r} from {self.args}")

    def wait_ready(self, text: str, *, stream: str = "stdout") -> None:
        """``wait_output`` for a constructor: a process that never gets ready is killed."""
        try:
            self.wait_output(text, stream=stream)
        except BaseException:
            self.kill()
            raise

    def stop(
        self, sig: signal.Signals = signal.SIGTERM, timeout: float = 10.0
    ) -> tuple[int, float]:
        """Send ``sig``; return the exit code and the seconds the process took to exit."""
        start = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - start

    def kill(self) -> None:
        """Teardown: end this process (by its own pid) if it is still running."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class Server(Process):
    """``roomwire serve`` on 127.0.0.1 and a free port; ready once it prints its URL."""

    def __init__(
        self,
        folder: Path,
        *extra: str,
        secret: str | None = SECRET,
        port: int | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.secret = secret
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if secret is not None:
            args += ["--secret", secret]
        super().__init__([*args, *extra], folder, cli_env(), command)
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.wait_ready(f"listening on {self.url}")


class Listener(Process):
    """``roomwire messaging listen``; ready once messaging is enabled in the room."""

    def __init__(
        self,
        url: str,
        room: str,
        name: str,
        folder: Path,
        *extra: str,
        command: list[str] | None = None,
    ) -> None:
        args = ["messaging", "listen", "--url", url, "--room", room, "--name", name]
        args += ["--secret", SECRET, *extra]
        super().__init__(args, folder, cli_env(), command)
        self.room, self.name = room, name

    def ready(self) -> Listener:
        """Wait until it is in the room with messaging enabled."""
        self.wait_ready(f"listening in room {self.room} as {self.name}", stream="stderr")
        return self

    @property
    def id(self) -> str:
        """The participant id from the ready line."""
        match = re.search(rf"listening in room .* as {re.escape(self.name)} \((\S+)\)", self.stderr)
        assert match, self.stderr
        return match.group(1)

    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def records(self) -> list[dict[str, Any]]:
        """The ``--json`` output: one object per line (a partial last line is skipped)."""
        text = self.stdout
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines()]

    def wait_record(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = START_TIMEOUT
    ) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = [r for r in self.records() if match(r)]
            return bool(found)

        wait_for(seen, timeout, f"a matching record from listener {self.name}")
        return found[0]

    def wait_line(self, text: str, timeout: float = START_TIMEOUT) -> str:
        self.wait_output(text, timeout=timeout)
        return next(line for line in self.lines() if text in line)


class Spawner:
    """Starts servers and listeners for one test or module; ``close`` kills what is left."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._started: list[Process] = []
        self._count = itertools.count()

    def _next_folder(self, kind: str) -> Path:
        return self._folder / f"{kind}-{next(self._count)}"

    def server(self, *extra: str, **kwargs: Any) -> Server:
        server = Server(self._next_folder("server"), *extra, **kwargs)
        self._started.append(server)
        return server

    def listener(
        self, url: str, room: str, name: str, *extra: str, command: list[str] | None = None
    ) -> Listener:
        """A listener in ``room``, ready; ``extra`` flags as for ``messaging listen``."""
        return self.listeners(url, room, (name, *extra), command=command)[0]

    def listeners(
        self, url: str, room: str, *specs: tuple[str, ...], command: list[str] | None = None
    ) -> list[Listener]:
        """Several listeners started at once: ``specs`` are ``(name, *extra flags)``."""
        started = [
            Listener(url, room, name, self._next_folder("listener"), *extra, command=command)
            for name, *extra in specs
        ]
        self._started.extend(started)
        return [listener.ready() for listener in started]

    def process(
        self, args: list[str], env: dict[str, str], command: list[str] | None = None
    ) -> Process:
        """Any other long-running command (the caller waits for its output)."""
        process = Process(args, self._next_folder("process"), env, command)
        self._started.append(process)
        return process

    def close(self) -> None:
        for process in reversed(self._started):
            process.kill()


@pytest.fixture(scope="module")
def module_spawner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spawner]:
    spawner = Spawner(tmp_path_factory.mktemp("cli-module"))
    yield spawner
    spawner.close()


@pytest.fixture(scope="module")
def server(module_spawner: Spawner) -> Server:
    """One ``roomwire serve --secret SECRET`` per test module."""
    return module_spawner.server()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawner]:
    """Servers and listeners for one test, killed at teardown if still running."""
    spawner = Spawner(tmp_path / "processes")
    yield spawner
    spawner.close()


@pytest.fixture
def room(request: pytest.FixtureRequest) -> str:
    """A room of this test's own on the shared server."""
    return f"{request.node.name}-{uuid.uuid4().hex[:8]}"


def via(server: Server, *, secret: str = SECRET) -> list[str]:
    """Flags to reach ``server`` and mint tokens with ``secret``."""
    return ["--url", server.url, "--secret", secret]


def mint(room: str, name: str, *flags: str, secret: str = SECRET) -> str:
    """A token from ``roomwire token``."""
    result = run_cli("token", "--room", room, "--name", name, "--secret", secret, *flags)
    assert_exit(result, EXIT_OK)
    return result.stdout.strip()
