"""P6 over ws://: broadcast from one publisher to N subscribers, roomwire on its WebSocket
listener against the ``websockets`` library's ``broadcast()``, in the same run and harness
as ``peers.py`` (each server in its own process on uvloop, the same raw counting subscribers).

Run: ``python benchmarks/websocket.py [--quick] [--n 100] [--repeat 3]``.

roomwire's subscribers upgrade with wsproto and do the roomwire handshake with the sans-IO
client on the message framing; the publisher is ``roomwire_asyncio.connect("ws://...")`` with
``broadcast_message(wait=False)``. The websockets side is ``peers.py``'s (its server calls
``websockets.broadcast`` for every message). Rate = N x messages / time; ratio = roomwire /
websockets (goal >= 10). A report, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from functools import partial

import peers
import wsproto
from _common import (
    ROOM,
    Result,
    free_port,
    pkg,
    raise_nofile,
    report,
    run,
    start_server,
    stop,
    token,
)
from wsproto import events as ws

from roomwire import NEED_DATA, ClientConnection, Framing
from roomwire.events import Connected, ConnectionClosed, MessagingEnabled


async def sub_roomwire_ws(port: int, i: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw subscriber: WebSocket upgrade, then the roomwire handshake and enable, one frame
    per binary message; afterwards ``peers.measure`` only counts its bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    socket = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    conn = ClientConnection(
        token=token(f"s{i}"), now=time.time(), room=ROOM, framing=Framing.MESSAGE
    )
    writer.write(socket.send(ws.Request(host="127.0.0.1", target="/")))
    opened = False

    def flush() -> None:
        if opened:
            for message in conn.messages_to_send():
                writer.write(socket.send(ws.Message(data=message)))

    async def until(kind: type) -> None:
        nonlocal opened
        while True:
            event = conn.next_event(time.time())
            if isinstance(event, ConnectionClosed):
                raise ConnectionError(f"refused: {event}")
            if isinstance(event, kind):
                return
            if event is NEED_DATA:
                flush()
                data = await asyncio.wait_for(reader.read(65536), 10)
                if not data:
                    raise ConnectionError("server closed during the handshake")
                socket.receive_data(data)
                for got in socket.events():
                    if isinstance(got, ws.AcceptConnection):
                        opened = True
                    elif isinstance(got, ws.BytesMessage):
                        conn.receive_message(bytes(got.data))

    await until(Connected)
    conn.enable(presence=False)
    flush()
    await until(MessagingEnabled)
    return reader, writer


pub_roomwire_ws = partial(peers.pub_roomwire, url="ws://127.0.0.1:{port}/")


peers.SYSTEMS["roomwire-ws"] = (sub_roomwire_ws, pub_roomwire_ws)  # for peers.measure
SERVERS = {"roomwire-ws": "rwws-uvloop", "websockets": "ws"}
MESSAGES = {"roomwire-ws": 20000, "websockets": 4000}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds (CI)")
    parser.add_argument("--n", type=int, help="subscribers (default 100, quick 10)")
    parser.add_argument("--repeat", type=int, help="rounds, best kept (default 3, quick 1)")
    parser.add_argument("--json", help="append the results to this file (JSON lines)")
    args = parser.parse_args(argv)
    n = args.n or (10 if args.quick else 100)
    repeat = args.repeat or (1 if args.quick else 3)
    why = peers.available("websockets")
    if why:
        print(f"P6 ws: skipped: {why}", flush=True)
        return 0
    raise_nofile()
    rates: dict[str, float] = {}
    for name, kind in SERVERS.items():
        count = 200 if args.quick else MESSAGES[name]
        port = free_port()
        proc = start_server(kind, port)
        try:
            rates[name] = float(run(peers.measure(name, port, n, count, repeat)))  # type: ignore[arg-type]
        finally:
            stop(proc)
        print(f"P6 {name}: {rates[name] / 1e3:.1f} k deliveries/s ({count} msgs x {n})", flush=True)
    result = Result(
        "P6",
        f"broadcast to N={n} over ws://: roomwire vs websockets {pkg('websockets')}",
        "deliveries/s",
        rates["roomwire-ws"],
        rates["websockets"],
        "websockets",
        10.0,
    )
    report([result], args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
