"""P6: broadcast from one publisher to N subscribers, roomwire against its peers, same harness.

Run: ``python benchmarks/peers.py [--quick] [--n 100] [--only roomwire,websockets,...]``.

Each system's server runs in its own process on 127.0.0.1 (roomwire and the Python peers on
uvloop via ``_servers.py``; ``redis-server`` and ``nats-server`` from their Debian packages,
started here on free ports and stopped by pid). The publisher uses each system's own Python
client library the way its docs suggest (roomwire ``broadcast_message(wait=False)``;
websockets ``send``; python-socketio ``emit`` to a server handler doing ``emit(room=)``;
redis-py ``publish`` pipelined 100 at a time; nats-py ``publish`` + ``flush``). The N
subscribers are the same cheap raw sockets for every system: after each protocol's handshake
they only count bytes and look for the end marker in the last message, so the subscriber
side costs the same everywhere. Rate = N x messages / (first publish .. last subscriber done).
A peer whose library or server binary is missing is skipped, with the reason printed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

from _common import (
    END,
    Counter,
    Result,
    detach,
    free_port,
    pkg,
    raise_nofile,
    report,
    run,
    rw_join,
    start,
    start_server,
    stop,
    token,
)

Publisher = Callable[[list[str]], Awaitable[None]]


def texts(count: int, round_: int) -> list[str]:
    """``count`` messages of 100 characters; the last carries the end marker."""
    out = [f"r{round_}m{i:07d} ".ljust(100, "x") for i in range(count)]
    out[-1] = END.decode() + "-last".ljust(93, "x")
    return out


async def reader_until(reader: asyncio.StreamReader, needle: bytes, limit: float = 10) -> bytes:
    buf = b""
    async with asyncio.timeout(limit):
        while needle not in buf:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError(f"closed before {needle!r}: {buf[:200]!r}")
            buf += data
    return buf


def ws_upgrade(path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def ws_text_masked(text: bytes) -> bytes:
    """A client text frame (masked with a zero key, which leaves the payload as is)."""
    assert len(text) < 126
    return bytes([0x81, 0x80 | len(text)]) + b"\0\0\0\0" + text


# --- subscribers: (reader, writer) after the handshake -------------------------------------


async def sub_roomwire(port: int, i: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer, _ = await rw_join(port, f"s{i}")
    return reader, writer


async def sub_websockets(port: int, i: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(ws_upgrade("/"))
    await reader_until(reader, b"\r\n\r\n")
    return reader, writer


async def sub_socketio(port: int, i: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(ws_upgrade("/socket.io/?EIO=4&transport=websocket"))
    await reader_until(reader, b'0{"sid"')
    writer.write(ws_text_masked(b"40"))  # connect to the default namespace (joins the room)
    await reader_until(reader, b'40{"sid"')
    return reader, writer


async def sub_redis(port: int, i: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"SUBSCRIBE bench\r\n")
    await reader_until(reader, b":1\r\n")
    return reader, writer


async def sub_nats(port: int, i: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader_until(reader, b"\r\n")  # INFO
    writer.write(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB bench 1\r\nPING\r\n')
    await reader_until(reader, b"PONG\r\n")
    return reader, writer


# --- publishers ------------------------------------------------------------------------------


async def pub_roomwire(
    port: int, url: str = "tcp://127.0.0.1:{port}"
) -> tuple[Publisher, Callable[[], Awaitable[None]]]:
    import roomwire_asyncio  # noqa: PLC0415

    cm = roomwire_asyncio.connect(url.format(port=port), token=token("pub"), reconnect=False)
    room = await cm.__aenter__()
    await room.messaging.enable(presence=False)
    broadcast = room.messaging.broadcast_message

    async def publish(msgs: list[str]) -> None:
        for text in msgs:
            await broadcast(type="chat", message={"text": text}, wait=False)

    async def close() -> None:
        await cm.__aexit__(None, None, None)

    return publish, close


async def pub_websockets(port: int) -> tuple[Publisher, Callable[[], Awaitable[None]]]:
    from websockets.asyncio.client import connect  # noqa: PLC0415

    ws = await connect(f"ws://127.0.0.1:{port}/", compression=None)

    async def publish(msgs: list[str]) -> None:
        for text in msgs:
            await ws.send(text)

    return publish, ws.close


async def pub_socketio(port: int) -> tuple[Publisher, Callable[[], Awaitable[None]]]:
    import socketio  # noqa: PLC0415

    sio = socketio.AsyncClient()
    await sio.connect(
        f"http://127.0.0.1:{port}", transports=["websocket"], auth={"role": "publisher"}
    )

    async def publish(msgs: list[str]) -> None:
        for text in msgs:
            await sio.emit("pub", text)

    return publish, sio.disconnect


async def pub_redis(port: int) -> tuple[Publisher, Callable[[], Awaitable[None]]]:
    import redis.asyncio  # noqa: PLC0415

    client = redis.asyncio.Redis(host="127.0.0.1", port=port)
    await client.ping()

    async def publish(msgs: list[str]) -> None:
        for i in range(0, len(msgs), 100):
            pipe = client.pipeline(transaction=False)
            for text in msgs[i : i + 100]:
                pipe.publish("bench", text)
            await pipe.execute()

    return publish, client.aclose


async def pub_nats(port: int) -> tuple[Publisher, Callable[[], Awaitable[None]]]:
    import nats  # noqa: PLC0415

    nc = await nats.connect(f"nats://127.0.0.1:{port}")

    async def publish(msgs: list[str]) -> None:
        for text in msgs:
            await nc.publish("bench", text.encode())
        await nc.flush()

    return publish, nc.close


SYSTEMS = {
    "roomwire": (sub_roomwire, pub_roomwire),
    "websockets": (sub_websockets, pub_websockets),
    "python-socketio": (sub_socketio, pub_socketio),
    "redis-py": (sub_redis, pub_redis),
    "nats-py": (sub_nats, pub_nats),
}
PACKAGES = {"redis-py": "redis"}
MESSAGES = {  # per round, full run: sized so that each system runs for ~1-2 s
    "roomwire": 20000,
    "websockets": 4000,
    "python-socketio": 1000,
    "redis-py": 4000,
    "nats-py": 6000,
}


async def measure(name: str, port: int, n: int, count: int, repeat: int) -> float:
    sub, pub = SYSTEMS[name]
    counters: list[Counter] = []
    writers = []
    for start_i in range(0, n, 50):
        pairs = await asyncio.gather(*(sub(port, i) for i in range(start_i, min(n, start_i + 50))))
        for reader, writer in pairs:
            counters.append(await detach(reader, writer))
            writers.append(writer)
    await asyncio.sleep(0.3)  # let the server finish registering the last subscribers
    publish, close = await pub(port)
    await publish(texts(10, -1))  # warm-up round
    await asyncio.wait_for(asyncio.gather(*(c.done for c in counters)), 30)
    best = float("inf")
    try:
        for round_ in range(repeat):
            msgs = texts(count, round_)
            for c in counters:
                c.rearm(1)
            gc.collect()
            t0 = time.perf_counter()
            await publish(msgs)
            done = await asyncio.wait_for(asyncio.gather(*(c.done for c in counters)), 120)
            best = min(best, max(done) - t0)
    finally:
        await close()
        for w in writers:
            w.close()
    return n * count / best


def available(name: str) -> str | None:
    """Why this peer cannot run here, or None."""
    need = {
        "websockets": ("websockets", None),
        "python-socketio": ("python-socketio", None),
        "redis-py": ("redis", "redis-server"),
        "nats-py": ("nats-py", "nats-server"),
    }.get(name)
    if need is None:
        return None
    package, binary = need
    if pkg(package) == "absent":
        return f"Python package {package} is not installed (pip install {package})"
    if binary and shutil.which(binary) is None:
        return f"{binary} is not on PATH (apt-get install {binary})"
    return None


def server_for(name: str, port: int):  # type: ignore[no-untyped-def]
    if name == "roomwire":
        return start_server("rw-uvloop", port)
    if name == "websockets":
        return start_server("ws", port)
    if name == "python-socketio":
        return start_server("sio", port)
    if name == "redis-py":
        return start(
            [
                "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--client-output-buffer-limit", "pubsub 0 0 0",
            ],
            ready=b"Ready to accept connections",
        )  # fmt: skip
    if name == "nats-py":
        return start(["nats-server", "-a", "127.0.0.1", "-p", str(port)], ready=b"Server is ready")
    raise ValueError(name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds (CI)")
    parser.add_argument("--n", type=int, help="subscribers (default 100, quick 10)")
    parser.add_argument("--only", help="comma-separated systems (default: all)")
    parser.add_argument("--repeat", type=int, help="rounds, best kept (default 3, quick 1)")
    parser.add_argument("--json", help="append the results to this file (JSON lines)")
    args = parser.parse_args(argv)
    n = args.n or (10 if args.quick else 100)
    repeat = args.repeat or (1 if args.quick else 3)
    names = args.only.split(",") if args.only else list(SYSTEMS)
    raise_nofile()
    rates: dict[str, float] = {}
    for name in ["roomwire"] + [x for x in names if x != "roomwire"]:
        why = available(name)
        if why:
            print(f"P6 {name}: skipped: {why}", flush=True)
            continue
        count = 200 if args.quick else MESSAGES[name]
        port = free_port()
        proc = server_for(name, port)
        try:
            rates[name] = float(run(measure(name, port, n, count, repeat)))  # type: ignore[arg-type]
        finally:
            stop(proc)
        print(f"P6 {name}: {rates[name] / 1e3:.1f} k deliveries/s ({count} msgs x {n})", flush=True)
    goals = {"websockets": 10.0, "python-socketio": 30.0, "redis-py": 10.0, "nats-py": 5.0}
    results = [
        Result(
            "P6",
            f"broadcast to N={n}: roomwire vs {peer} {pkg(PACKAGES.get(peer, peer))}",
            "deliveries/s",
            rates["roomwire"],
            rate,
            peer,
            goals[peer],
        )
        for peer, rate in rates.items()
        if peer != "roomwire"
    ]
    report(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
