"""Shared helpers of the loopback benchmarks: results, subprocess servers, raw room clients.

Every server a benchmark starts runs in its own process, is told its port on the command line
(a free 127.0.0.1 port picked here), prints ``READY`` when it listens, and is stopped by pid
(``stop``). The client side of every benchmark runs in the calling process on uvloop, with
cheap clients: after the handshake they only count bytes and look for an end marker, so the
same harness measures roomwire and its reference.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from roomwire import NEED_DATA, ClientConnection, ParticipantToken
from roomwire.events import Connected, ConnectionClosed, MessagingEnabled

HERE = Path(__file__).resolve().parent
SECRET = "benchmark-secret-that-is-long-enough-for-hs256"
ROOM = "bench"
END = b"ENDMARK"
"""Put in the last message's text: a receiver is done once it has seen it (bytes.count)."""
BIG_OUTBOUND = 1 << 30
"""``outbound_limit`` of the benchmark's roomwire servers: the harness floods on purpose, and
the default 1 MiB would close a receiver that lags behind a burst as a slow consumer."""


@dataclass
class Result:
    bench: str
    name: str
    unit: str
    roomwire: float
    reference: float
    reference_name: str
    goal: float | None = None
    goal_op: str = ">="
    """``>=``: ratio roomwire/reference must reach goal; ``<=``: ratio must stay under it."""
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.roomwire / self.reference if self.reference else float("nan")

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        return self.ratio >= self.goal if self.goal_op == ">=" else self.ratio <= self.goal


def fmt(value: float, unit: str) -> str:
    if unit in ("us", "KiB"):
        return f"{value:.1f} {unit}"
    if value >= 1e6:
        return f"{value / 1e6:.2f} M{unit}"
    if value >= 1e3:
        return f"{value / 1e3:.1f} k{unit}"
    return f"{value:.1f} {unit}"


def report(results: Sequence[Result], json_path: str | None) -> None:
    """Print the rows and, with ``--json``, append them to that file (one object a line)."""
    for r in results:
        goal = "-" if r.goal is None else f"{r.goal_op}{r.goal:g}"
        met = {None: "", True: "met", False: "MISSED"}[r.met]
        print(
            f"{r.bench:<4} {r.name:<44} {fmt(r.roomwire, r.unit):>14}"
            f" {fmt(r.reference, r.unit):>14}"
            f"  ({r.reference_name}) ratio {r.ratio:6.2f} goal {goal:<6} {met} {r.note}",
            flush=True,
        )
    if json_path:
        with open(json_path, "a", encoding="utf-8") as f:
            for r in results:
                f.write(json.dumps(asdict(r) | {"ratio": r.ratio, "met": r.met}) + "\n")


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token(name: str) -> str:
    return ParticipantToken(room=ROOM, name=name).to_jwt(SECRET)


# --- subprocess servers ----------------------------------------------------------------------


def start(
    args: Sequence[str], *, ready: bytes = b"READY", timeout: float = 20.0
) -> subprocess.Popen[bytes]:
    """Start ``args`` and wait until it prints a line containing ``ready`` (stdout or stderr)."""
    proc = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            err = proc.stdout.read().decode(errors="replace")
            stop(proc)
            raise RuntimeError(f"{args[:4]} exited before it was ready: {err[-2000:]}")
        if ready in line:
            _drain_in_background(proc)
            return proc
    stop(proc)
    raise RuntimeError(f"{args[:4]} not ready after {timeout} s")


def _drain_in_background(proc: subprocess.Popen[bytes]) -> None:
    """Keep reading the server's output so that a chatty server never blocks on its pipe."""
    import threading  # noqa: PLC0415

    def drain() -> None:
        assert proc.stdout is not None
        try:
            for _ in proc.stdout:
                pass
        except ValueError:  # closed by stop()
            pass

    threading.Thread(target=drain, daemon=True).start()


def start_server(kind: str, port: int, *extra: str) -> subprocess.Popen[bytes]:
    """One of the servers of ``benchmarks/_servers.py`` in its own process."""
    return start([sys.executable, str(HERE / "_servers.py"), kind, str(port), *extra])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one process we started, by its pid: SIGTERM, then SIGKILL after 5 s."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# --- cheap clients ---------------------------------------------------------------------------


class Counter(asyncio.Protocol):
    """Counts bytes and end markers (across chunk boundaries); sets ``done`` at ``want``."""

    def __init__(self, want: int = 1) -> None:
        self.want = want
        self.seen = 0
        self.bytes = 0
        self.tail = b""
        self.done = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.first = 0.0
        self.last = b""

    def rearm(self, want: int) -> None:
        """Count again from zero, for another timed round on the same connection."""
        self.want, self.seen, self.tail = want, 0, b""
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.bytes += len(data)
        joined = self.tail + data[: len(END) - 1] if self.tail else b""
        self.seen += data.count(END) + (joined.count(END) if joined else 0)
        self.tail = data[-(len(END) - 1) :]
        self.last = data[-300:]
        if self.seen >= self.want and not self.done.done():
            self.done.set_result(time.perf_counter())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"closed after {self.seen} markers"))
            self.done.exception()  # nobody may be waiting any more: no "never retrieved" log


async def open_counter(
    port: int, hello: bytes = b"", want: int = 1
) -> tuple[asyncio.Transport, Counter]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_connection(lambda: Counter(want), "127.0.0.1", port)
    if hello:
        transport.write(hello)
    return transport, proto


async def rw_join(
    port: int, name: str, *, enable: bool = True
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, ClientConnection]:
    """A raw roomwire participant: the sans-IO client does the handshake (and the enable)
    over asyncio streams; afterwards the caller uses the socket directly."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = ClientConnection(token=token(name), now=time.time(), room=ROOM)
    writer.write(conn.data_to_send())

    async def until(kind: type) -> object:
        while True:
            event = conn.next_event(time.time())
            if event is NEED_DATA:
                writer.write(conn.data_to_send())
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("server closed during the handshake")
                conn.receive_data(data)
            elif isinstance(event, ConnectionClosed):
                raise ConnectionError(f"refused: {event}")
            elif isinstance(event, kind):
                return event

    await until(Connected)
    if enable:
        conn.enable(presence=False)
        writer.write(conn.data_to_send())
        await until(MessagingEnabled)
    return reader, writer, conn


async def detach(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, want: int = 1
) -> Counter:
    """Swap a stream's protocol for a Counter (keeping bytes already buffered)."""
    transport = writer.transport
    counter = Counter(want)
    counter.transport = transport
    buffered = bytes(reader._buffer)
    transport.set_protocol(counter)
    if buffered:
        counter.data_received(buffered)
    return counter


def new_loop() -> asyncio.AbstractEventLoop:
    import uvloop  # noqa: PLC0415

    return uvloop.new_event_loop()


def run(coro: object) -> object:
    """Run the harness coroutine on uvloop."""
    import uvloop  # noqa: PLC0415

    return uvloop.run(coro)  # type: ignore[arg-type]


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


# --- machine description ---------------------------------------------------------------------


def pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def binary_version(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), check=False, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "absent"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    packages = [
        "roomwire",
        "cbor2",
        "anyio",
        "uvloop",
        "trio",
        "websockets",
        "python-socketio",
        "python-engineio",
        "aiohttp",
        "redis",
        "hiredis",
        "nats-py",
        "matplotlib",
    ]
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": ", ".join(f"{p} {pkg(p)}" for p in packages),
        "redis-server": binary_version(["redis-server", "--version"]),
        "nats-server": binary_version(["nats-server", "--version"]),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
