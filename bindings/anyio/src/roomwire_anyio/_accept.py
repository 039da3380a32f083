"""Accept loops that survive running out of file descriptors (or kernel memory): on EMFILE,
ENFILE, ENOBUFS or ENOMEM the loop backs off and tries again, and says so in ONE log line per
episode (not one per failed accept), never crashing the server. While it waits, new peers
wait in the listen backlog; existing connections are untouched."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import anyio.abc

log = logging.getLogger("roomwire.server")

CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""Accept failures that go away once something is released."""
FIRST_PAUSE = 0.01
LONGEST_PAUSE = 0.5
"""Seconds between accept attempts while out of capacity: doubled from the first up to this."""


def capacity_errno(exc: BaseException) -> int | None:
    """The errno of an out-of-capacity failure (bare, or the cause of anyio's
    ``BrokenResourceError`` on trio), else None."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in CAPACITY_ERRNOS:
            return cause.errno
        cause = cause.__cause__
    return None


async def accept_forever(accept: Callable[[], Awaitable[None]], where: str) -> None:
    """Call ``accept`` (take one connection and start serving it) until cancelled."""
    failed = 0
    pause = 0.0
    while True:
        try:
            await accept()
        except (OSError, anyio.BrokenResourceError) as exc:
            if isinstance(exc, ConnectionError):
                continue  # that one peer gave up before it was accepted: not our problem
            code = capacity_errno(exc)
            if code is None:
                raise
            if not failed:
                log.error(
                    "%s: cannot accept connections (%s): backing off until one is released",
                    where,
                    os.strerror(code),
                )
            failed += 1
            pause = min(LONGEST_PAUSE, pause * 2 or FIRST_PAUSE)
            await anyio.sleep(pause)
            continue
        if failed:
            log.warning("%s: accepting again after %d failed attempts", where, failed)
            failed, pause = 0, 0.0


class TcpListener:
    """A bound anyio TCP listener (one socket per address, any runtime): one backing-off
    accept loop per socket, each accepted connection handed to ``accept_one``."""

    def __init__(
        self,
        listener: anyio.abc.Listener[anyio.abc.SocketStream],
        accept_one: Callable[[anyio.abc.SocketListener, anyio.abc.TaskGroup], Awaitable[None]],
    ) -> None:
        self._listener = listener
        self._sockets: list[anyio.abc.SocketListener] = list(
            getattr(listener, "listeners", [listener])
        )
        self._accept_one = accept_one
        self._scope = anyio.CancelScope()
        self.port: int = self._sockets[0].extra(anyio.abc.SocketAttribute.local_port)

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        tg.start_soon(self._run, tg)

    async def _run(self, tg: anyio.abc.TaskGroup) -> None:
        with self._scope:
            async with self._listener, anyio.create_task_group() as loops:
                for socket in self._sockets:
                    address = socket.extra(anyio.abc.SocketAttribute.local_address)
                    where = f"listener {address[0]}:{address[1]}"
                    loops.start_soon(accept_forever, partial(self._accept_one, socket, tg), where)

    def stop(self) -> None:
        self._scope.cancel()
