"""Participant RPC and streams (issue 17), each against its reference in the same run.

Run: ``python benchmarks/rpc_streams.py [--quick] [--json FILE]``.

S1 stream throughput: one participant streams N MiB (64 KiB chunks, the default 1 MiB
   window) to another through a roomwire server (uvloop, its own process); bytes/s from the
   first write until the reader has consumed the last byte. Reference: a raw loopback socket
   copy of the same bytes into a sink process (one write per chunk), until the sink has them
   all. Goal >= 0.5x.
R1 RPC round trip: ``request`` to a participant whose handler returns at once, one at a time;
   p50 latency. Reference: an awaited ``send_message`` (returns once the server acked it) on
   the same connection. Goal <= 1.5x (``request p50 / send p50``). A request crosses the
   server twice (caller to callee, and back), a send once.
R0 (diagnostic, no goal) the same two shapes with no protocol anywhere: a raw 104-byte frame
   through a raw relay process to a peer that writes it straight back, against the same
   frame from one end to the other (one at a time, alternating, p50): the ratio a second
   hop alone costs.

Clients run here on uvloop with ``roomwire_asyncio``; the servers run in their own processes
and are stopped by pid. Best of ``--repeat`` rounds; nothing fails on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any

import roomwire_asyncio as rw
from _common import END, ROOM, Result, free_port, percentile, report, run, start_server, stop, token

from roomwire import RoomMessage

MiB = 1 << 20
CHUNK = 64 * 1024


async def stream_once(url: str, total: int) -> float:
    """Seconds to stream ``total`` bytes from alice to bob, until bob consumed them."""
    done = asyncio.get_running_loop().create_future()

    async def consume(reader: rw.MessageStreamReader) -> None:
        received = 0
        async for chunk in reader:
            received += len(chunk.data)
        done.set_result((time.perf_counter(), received))

    async with (
        rw.connect(url, token=token("alice"), room=ROOM, reconnect=False) as alice,
        rw.connect(url, token=token("bob"), room=ROOM, reconnect=False) as bob,
    ):
        await alice.messaging.enable(presence=False)
        await bob.messaging.enable(presence=False, on_stream_accept=consume)
        assert bob.local_participant is not None
        writer = await alice.messaging.create_stream(to=bob.local_participant.id)
        data = bytes(CHUNK)
        start = time.perf_counter()
        for _ in range(total // CHUNK):
            await writer.write(rw.MessageStreamChunk(data=data))
        await writer.close()
        end, received = await done
    assert received == total
    return end - start


async def raw_copy_once(port: int, total: int) -> float:
    """Seconds to copy ``total`` bytes into the sink over one socket, chunk by chunk."""
    loop = asyncio.get_running_loop()
    got = loop.create_future()

    class Ack(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            if not got.done():
                got.set_result(time.perf_counter())

    transport, _ = await loop.create_connection(Ack, "127.0.0.1", port)
    data = bytes(CHUNK)
    start = time.perf_counter()
    for _ in range(total // CHUNK):
        transport.write(data)
        if transport.get_write_buffer_size() > 4 * CHUNK:
            await asyncio.sleep(0)  # as a writer honouring backpressure would
    transport.write(END)
    end = await got
    transport.close()
    return end - start


async def rpc_and_send(url: str, n: int) -> tuple[list[float], list[float]]:
    """Round trips of ``n`` requests, and of ``n`` awaited sends, one at a time."""

    async def echo(request: RoomMessage) -> dict[str, Any]:
        return request.message

    async with (
        rw.connect(url, token=token("caller"), room=ROOM, reconnect=False) as caller,
        rw.connect(url, token=token("callee"), room=ROOM, reconnect=False) as callee,
    ):
        callee.messaging.on_request("echo", echo)
        await caller.messaging.enable(presence=False)
        await callee.messaging.enable(presence=False)
        assert callee.local_participant is not None
        to = callee.local_participant.id
        rpc, send = [], []
        for i in range(n):
            start = time.perf_counter()
            await caller.messaging.request(to=to, type="echo", message={"i": i})
            rpc.append(time.perf_counter() - start)
            start = time.perf_counter()
            await caller.messaging.send_message(to=to, type="note", message={"i": i})
            send.append(time.perf_counter() - start)
    return rpc, send


PING = (100).to_bytes(4, "big") + bytes(100)
"""One raw frame: a length prefix (what the relay splits on) and 100 bytes."""


class RawEnd(asyncio.Protocol):
    """A raw member of the relay: with ``answer`` it writes back what it gets, otherwise what
    it gets ends the wait in ``got``. The relay first greets each member with one ``+``."""

    def __init__(self) -> None:
        self.answer = False
        self.greeted = False
        self.transport: asyncio.Transport | None = None
        self.got: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.greeted:
            data, self.greeted = data[1:], True
            self.got.set_result(None)  # in the room
        if not data:
            return
        assert self.transport is not None
        if self.answer:
            self.transport.write(data)
            return
        self.pending -= len(data)
        if self.pending <= 0 and not self.got.done():
            self.got.set_result(None)


async def raw_round_trips(relay_port: int, n: int) -> tuple[list[float], list[float]]:
    """Raw frames with no protocol work anywhere, through one raw relay process: from one end
    to the other and straight back (two hops, as a request's), and from one end to the other
    (one hop, as a send's). One relay for both, alternating, so that both wake it alike."""
    loop = asyncio.get_running_loop()
    ends = []
    for _ in range(2):
        _, end = await loop.create_connection(RawEnd, "127.0.0.1", relay_port)
        await end.got  # in the room
        ends.append(end)
    caller, callee = ends
    assert caller.transport is not None
    two_hops: list[float] = []
    one_hop: list[float] = []
    for _ in range(n):
        for answer, waiter, times in ((True, caller, two_hops), (False, callee, one_hop)):
            callee.answer = answer
            waiter.got, waiter.pending = loop.create_future(), len(PING)
            start = time.perf_counter()
            caller.transport.write(PING)
            await waiter.got
            times.append(time.perf_counter() - start)
    for end in ends:
        assert end.transport is not None
        end.transport.close()
    return two_hops, one_hop


def bench(args: argparse.Namespace) -> list[Result]:
    total = (8 if args.quick else args.mib) * MiB
    repeat = args.repeat or (1 if args.quick else 3)
    calls = 200 if args.quick else 3000
    port, sink_port, relay_port = free_port(), free_port(), free_port()
    server = start_server("rw-uvloop", port)
    sink = start_server("sink-uvloop", sink_port)
    relay = start_server("relay-uvloop", relay_port)
    url = f"tcp://127.0.0.1:{port}"
    try:
        stream_s = min(run(stream_once(url, total)) for _ in range(repeat))  # type: ignore[type-var]
        raw_s = min(run(raw_copy_once(sink_port, total)) for _ in range(repeat))  # type: ignore[type-var]
        rpc, send = run(rpc_and_send(url, calls))  # type: ignore[misc]
        two_hops, one_hop = run(raw_round_trips(relay_port, calls))  # type: ignore[misc]
    finally:
        for proc in (server, sink, relay):
            stop(proc)
    rpc_p50, send_p50 = percentile(rpc, 50) * 1e6, percentile(send, 50) * 1e6
    return [
        Result(
            "S1",
            f"stream {total // MiB} MiB, 64 KiB chunks",
            "B/s",
            total / stream_s,
            total / raw_s,
            "raw socket copy into a sink",
            goal=0.5,
        ),
        Result(
            "R1",
            f"request round trip p50 ({calls} calls)",
            "us",
            rpc_p50,
            send_p50,
            "awaited send_message p50",
            goal=1.5,
            goal_op="<=",
            extra={
                "rpc_p99_us": percentile(rpc, 99) * 1e6,
                "send_p99_us": percentile(send, 99) * 1e6,
            },
        ),
        Result(
            "R0",
            "raw two hops p50, no protocol (floor of R1)",
            "us",
            percentile(two_hops, 50) * 1e6,
            percentile(one_hop, 50) * 1e6,
            "raw one hop p50",
            note="diagnostic: what a second hop costs with no protocol work at all",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds (CI)")
    parser.add_argument("--mib", type=int, default=256, help="MiB to stream (default 256)")
    parser.add_argument("--repeat", type=int, help="rounds, best kept (default 3, quick 1)")
    parser.add_argument("--json", help="append the results to this file (JSON lines)")
    args = parser.parse_args(argv)
    report(bench(args), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
