"""The servers the loopback benchmarks start, one per process: ``_servers.py KIND PORT [ARG]``.

Each listens on 127.0.0.1:PORT, prints ``READY`` once it does, and runs until its pid gets
SIGTERM (``_common.stop``). Kinds (``-asyncio`` / ``-uvloop`` / ``-trio`` name the runtime):

- ``rw-*``: a roomwire server (``serve()``), ``outbound_limit`` raised (see ``_common``).
- ``sink-*``: counts end markers in what it reads; answers one byte per marker.
- ``echo-*``: writes back what it reads (raw ping-pong).
- ``relay-*``: a busy room without a protocol: splits length-prefixed frames, appends each read's
  whole frames to every other connection's buffer, flushes every buffer once per loop turn.
- ``hold-*``: accepts and holds connections (asyncio Protocol), the memory floor.
- ``ws``: websockets ``broadcast()`` of every message to the other connections (uvloop).
- ``sio``: python-socketio on aiohttp, ``emit(room=)`` of every ``pub`` event (uvloop).
"""

from __future__ import annotations

import asyncio
import gc
import struct
import sys
from typing import ClassVar

from _common import BIG_OUTBOUND, END, SECRET


def ready() -> None:
    gc.collect()
    print("READY", flush=True)


async def forever() -> None:
    ready()
    await asyncio.Event().wait()


def loop_run(runtime: str, coro: object) -> None:
    if runtime == "uvloop":
        import uvloop  # noqa: PLC0415

        uvloop.run(coro)  # type: ignore[arg-type]
    else:
        asyncio.run(coro)  # type: ignore[arg-type]


# --- roomwire --------------------------------------------------------------------------------


def roomwire_server(runtime: str, port: int, scheme: str = "tcp") -> None:
    """A roomwire server on ``port``: one tcp listener, or one ``ws`` listener."""
    listen = [f"{scheme}://127.0.0.1:{port}/" if scheme == "ws" else f"tcp://127.0.0.1:{port}"]
    if runtime == "trio":
        import roomwire_trio  # noqa: PLC0415
        import trio  # noqa: PLC0415

        async def main_trio() -> None:
            async with roomwire_trio.serve(
                listen=listen, secret=SECRET, outbound_limit=BIG_OUTBOUND
            ):
                ready()
                await trio.sleep_forever()

        trio.run(main_trio)
        return
    import roomwire_asyncio  # noqa: PLC0415

    async def main() -> None:
        async with roomwire_asyncio.serve(
            listen=listen, secret=SECRET, outbound_limit=BIG_OUTBOUND
        ):
            await forever()

    loop_run(runtime, main())


# --- raw references --------------------------------------------------------------------------


class Sink(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.tail = b""

    def data_received(self, data: bytes) -> None:
        n = data.count(END) + (self.tail + data[:6]).count(END)
        self.tail = data[-6:]
        if n:
            self.transport.write(b"K" * n)  # type: ignore[attr-defined]


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


class Hold(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        pass


class Relay(asyncio.Protocol):
    """One participant of the raw busy room."""

    members: ClassVar[list[Relay]] = []
    dirty: ClassVar[set[Relay]] = set()
    scheduled = False
    unpack_from = struct.Struct(">I").unpack_from

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buf = b""
        self.out: list[bytes] = []
        Relay.members.append(self)
        transport.write(b"+")  # type: ignore[attr-defined]  # tells the harness it is in

    def connection_lost(self, exc: Exception | None) -> None:
        Relay.members.remove(self)
        Relay.dirty.discard(self)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos, size, unpack_from = 0, len(buf), Relay.unpack_from
        while size - pos >= 4:
            end = pos + 4 + unpack_from(buf, pos)[0]
            if end > size:
                break
            pos = end
        self.buf = buf[pos:]
        if pos:
            whole = buf[:pos]
            for member in Relay.members:
                if member is not self:
                    member.out.append(whole)
                    Relay.dirty.add(member)
            if not Relay.scheduled:
                Relay.scheduled = True
                asyncio.get_running_loop().call_soon(Relay.flush)

    @staticmethod
    def flush() -> None:
        Relay.scheduled = False
        for member in Relay.dirty:
            member.transport.write(b"".join(member.out))  # type: ignore[attr-defined]
            member.out.clear()
        Relay.dirty.clear()


def protocol_server(runtime: str, port: int, factory: type[asyncio.Protocol]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, "127.0.0.1", port, backlog=4096)
        async with server:
            await forever()

    loop_run(runtime, main())


def trio_echo(port: int) -> None:
    import trio  # noqa: PLC0415

    async def handler(stream: trio.SocketStream) -> None:
        try:
            while data := await stream.receive_some(65536):
                await stream.send_all(data)
        except trio.BrokenResourceError:
            pass

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_tcp, handler, port)
            ready()

    trio.run(main)


# --- peers -----------------------------------------------------------------------------------


def websockets_server(port: int) -> None:
    from websockets.asyncio.server import broadcast, serve  # noqa: PLC0415

    members: set[object] = set()

    async def handler(ws: object) -> None:
        members.add(ws)
        try:
            async for message in ws:  # type: ignore[attr-defined]
                broadcast([m for m in members if m is not ws], message)  # type: ignore[misc]
        finally:
            members.discard(ws)

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port, compression=None, max_queue=None):
            await forever()

    loop_run("uvloop", main())


def socketio_server(port: int) -> None:
    import socketio  # noqa: PLC0415
    from aiohttp import web  # noqa: PLC0415

    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    sio.attach(app)

    @sio.event
    async def connect(sid: str, environ: dict[str, object], auth: object = None) -> None:
        if auth != {"role": "publisher"}:
            await sio.enter_room(sid, "bench")

    @sio.on("pub")
    async def pub(sid: str, data: object) -> None:
        await sio.emit("msg", data, room="bench", skip_sid=sid)

    async def main() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        await forever()

    loop_run("uvloop", main())


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    family, _, runtime = kind.partition("-")
    if family == "rw":
        roomwire_server(runtime, port)
    elif family == "rwws":  # roomwire over ws://
        roomwire_server(runtime, port, "ws")
    elif family == "echo" and runtime == "trio":
        trio_echo(port)
    elif family in ("sink", "echo", "relay", "hold"):
        factory = {"sink": Sink, "echo": Echo, "relay": Relay, "hold": Hold}[family]
        protocol_server(runtime, port, factory)
    elif kind == "ws":
        websockets_server(port)
    elif kind == "sio":
        socketio_server(port)
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
