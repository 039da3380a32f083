"""The reliability suite (issue 5): the running server keeps its promises over real sockets on
127.0.0.1 when peers misbehave. Every test runs on asyncio (debug on) and on trio, with the
fixtures of the bindings suite (see conftest.py).

This module holds what the tests share: a raw peer that writes whatever bytes a test says
(forged, malformed, split) and reads frames with plain cbor2, a room server in a subprocess
whose memory, descriptors and tasks can be measured, and readers for /proc.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import cbor2
from anyio.streams.buffered import BufferedByteReceiveStream

from roomwire import PROTOCOL_VERSION, RemoteParticipant, RoomMessage
from roomwire.frames import HEADER, encode_frame

from ..bindings import SECRET, WAIT, wait_until

__all__ = [
    "SECRET",
    "WAIT",
    "Inbox",
    "RawPeer",
    "ServerProcess",
    "close_codes",
    "frame",
    "raw_peer",
    "wait_until",
]

Frame = dict[str, Any]


def frame(t: str, **fields: Any) -> bytes:
    """One well-formed frame of kind ``t``, length prefix included."""
    return encode_frame({"t": t, **fields})


class RawPeer:
    """One TCP connection driven byte by byte: it sends exactly what the test gives it and
    decodes what the server sends with plain cbor2 (no state machine, no checks)."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self._sending = anyio.Lock()
        self._buffer = bytearray()
        self.eof = False
        self.received = 0
        """Bytes read from the server so far."""
        self.participant: Frame | None = None
        """The participant record of the welcome, once there is one."""

    async def send(self, data: bytes) -> None:
        # A test may write from two tasks (a reader answering pings, a sender): a stream
        # takes one send at a time.
        async with self._sending:
            await self.stream.send(data)

    async def send_frame(self, t: str, **fields: Any) -> None:
        await self.send(frame(t, **fields))

    def _pop(self) -> Frame | None:
        buffer = self._buffer
        if len(buffer) < HEADER.size:
            return None
        (size,) = HEADER.unpack_from(buffer)
        if len(buffer) < HEADER.size + size:
            return None
        body = bytes(buffer[HEADER.size : HEADER.size + size])
        del buffer[: HEADER.size + size]
        decoded: Frame = cbor2.loads(body)
        return decoded

    async def _fill(self) -> bool:
        """Read once; False at EOF (or a reset, which is an EOF for these tests)."""
        if self.eof:
            return False
        try:
            data = await self.stream.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
            self.eof = True
            return False
        self.received += len(data)
        self._buffer += data
        return True

    async def recv(self, *, timeout: float = WAIT) -> Frame | None:
        """The next frame from the server, or None at EOF."""
        with anyio.fail_after(timeout):
            while (found := self._pop()) is None:
                if not await self._fill():
                    return None
            return found

    async def until(self, kind: str, *, timeout: float = WAIT) -> Frame:
        """Read (and drop) frames until one of ``kind`` arrives; fails at EOF."""
        with anyio.fail_after(timeout):
            while True:
                found = await self.recv(timeout=timeout)
                if found is None:
                    raise AssertionError(f"EOF before a {kind!r} frame")
                if found["t"] == kind:
                    return found
                if found["t"] == "ping":
                    await self.send_frame("pong")

    async def rest(self, *, timeout: float = WAIT) -> list[Frame]:
        """Every frame until the server closes the socket (pings are not answered)."""
        frames: list[Frame] = []
        with anyio.fail_after(timeout):
            while (found := await self.recv(timeout=timeout)) is not None:
                frames.append(found)
        return frames

    async def hello(self, token: str, **fields: Any) -> Frame:
        await self.send_frame("hello", v=PROTOCOL_VERSION, token=token, **fields)
        welcome = await self.until("welcome")
        self.participant = welcome["participant"]
        return welcome

    async def enable(self, rid: int = 1) -> list[Frame]:
        """Enable messaging; returns the snapshot's participants."""
        await self.send_frame("enable", rid=rid)
        participants: list[Frame] = []
        while True:
            page = await self.until("snapshot")
            participants += page["participants"]
            if not page["more"]:
                return participants

    @property
    def id(self) -> str:
        assert self.participant is not None
        return str(self.participant["id"])


@asynccontextmanager
async def raw_peer(
    url: str, token: str | None = None, *, enable: bool = False
) -> AsyncIterator[RawPeer]:
    """A raw connection to ``url``: after the handshake if ``token`` is given, enabled if
    asked. The socket is closed (without a close frame) when the block ends."""
    host, _, port = url.removeprefix("tcp://").rpartition(":")
    with anyio.fail_after(WAIT):
        stream = await anyio.connect_tcp(host, int(port))
    async with stream:
        peer = RawPeer(stream)
        if token is not None:
            await peer.hello(token)
            if enable:
                await peer.enable()
        yield peer


def close_codes(frames: list[Frame]) -> list[int]:
    """The codes of the close frames among ``frames``."""
    return [f["code"] for f in frames if f["t"] == "close"]


class Inbox:
    """What one binding client is delivered, recorded by its callbacks: they run in the read
    loop, so unlike ``events()`` nothing can be dropped for a slow test."""

    def __init__(self, room: Any) -> None:
        self.room = room
        self.messages: list[RoomMessage] = []
        self.removed: list[str] = []
        """Ids of the participants announced as gone, in order (one per ``left``)."""
        self.messages_before: dict[str, int] = {}
        """For each id in ``removed``: how many messages had arrived before its ``left``
        (deliveries come in room order, so these are the ones routed while it was there)."""
        self.received_at: list[float] = []
        """``time.time()`` at each message's arrival (parallel to ``messages``)."""
        room.messaging.on("message", self._message)
        room.messaging.on("participant_removed", self._removed)

    def _message(self, message: RoomMessage) -> None:
        self.messages.append(message)
        self.received_at.append(time.time())

    def _removed(self, participant: RemoteParticipant) -> None:
        self.removed.append(participant.id)
        self.messages_before.setdefault(participant.id, len(self.messages))

    @property
    def id(self) -> str:
        return str(self.room.local_participant.id)

    def numbers_from(self, sender: str) -> list[int]:
        """The ``n`` of every message from ``sender``, in the order they arrived."""
        return [m.message["n"] for m in self.messages if m.from_participant_id == sender]

    async def wait_for(self, count: int, *, timeout: float = WAIT) -> None:
        """Until at least ``count`` messages are in (fails after ``timeout``)."""
        await wait_until(lambda: len(self.messages) >= count, timeout=timeout)


# --- a server in its own process ---------------------------------------------------------

SERVER_PROC = Path(__file__).with_name("server_proc.py")
MiB = 1024 * 1024


def proc_status(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM...), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class ServerProcess:
    """``server_proc.py`` running on one runtime; see ``start`` and ``stop``."""

    def __init__(self, runtime: str, log_path: Path) -> None:
        self.runtime = runtime
        self.log_path = log_path
        self.process: anyio.abc.Process | None = None
        self._stdout: BufferedByteReceiveStream | None = None
        self.pid = 0
        self.url = ""

    async def start(self, **settings: Any) -> ServerProcess:
        settings.setdefault("secret", SECRET)
        with self.log_path.open("ab") as log:
            self.process = await anyio.open_process(
                [sys.executable, str(SERVER_PROC), self.runtime, json.dumps(settings)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        assert self.process.stdout is not None
        self._stdout = BufferedByteReceiveStream(self.process.stdout)
        ready = await self._line(timeout=20)
        self.pid, self.url = ready["pid"], f"tcp://127.0.0.1:{ready['port']}"
        assert self.pid == self.process.pid
        return self

    async def _line(self, *, timeout: float = WAIT) -> Frame:
        assert self._stdout is not None
        with anyio.fail_after(timeout):
            line = await self._stdout.receive_until(b"\n", 65536)
        decoded: Frame = json.loads(line)
        return decoded

    async def stats(self) -> Frame:
        """``tasks`` and ``connections`` from inside, ``rss``, ``hwm`` and ``fds`` from /proc."""
        assert self.process is not None
        assert self.process.stdin is not None
        await self.process.stdin.send(b"stats\n")
        found = await self._line()
        found.update(rss=self.rss(), hwm=self.hwm(), fds=open_fds(self.pid))
        return found

    def rss(self) -> int:
        return proc_status(self.pid, "VmRSS")

    def hwm(self) -> int:
        """Peak RSS so far."""
        return proc_status(self.pid, "VmHWM")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def stop(self) -> int | None:
        """End of stdin first (a clean stop), then SIGTERM, then SIGKILL, all by pid."""
        process = self.process
        if process is None:
            return None
        self.process = None
        with anyio.CancelScope(shield=True):
            try:
                if process.stdin is not None:
                    await process.stdin.aclose()
                for stop in (None, process.terminate, process.kill):
                    if stop is not None:
                        stop()
                    with anyio.move_on_after(5):
                        return await process.wait()
            finally:
                await process.aclose()
        return None  # the process did not end even when killed (or the wait was cancelled)
