"""Resume after a cut (issue 15, PROTOCOL.md §22), over loopback on asyncio:

- **replay**: a receiver's connection is cut (the socket closed, no close frame: the server
  suspends it), a sender broadcasts ``--missed`` messages (default 10,000), and the receiver
  reconnects with its resume info. Timed: from opening the new socket to the last replayed
  message processed by the client core (goal: under 1 s for 10,000).
- **first message**: from opening the new socket to the first replayed message, beside
  the same client's plain handshake (hello to welcome) and the reconnect this replaces (a
  plain handshake, then an enable, then the first live message): the baseline, measured in
  the same run. Round trips before the first message are counted from the client's own
  sends (a resume sends only its hello: the replay comes in the welcome's flight).

The server runs in this process (one asyncio loop, uvloop when installed); the receiver is
the sans-IO ``ClientConnection`` on a raw anyio socket, so the client side costs only the
core. Prints one line per figure; never fails on speed.

    python benchmarks/resume.py               # 10,000 missed, best of 3
    python benchmarks/resume.py --quick       # 500 missed, one round
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field

import anyio
import anyio.abc
import roomwire_asyncio
from _common import SECRET, token

from roomwire import NEED_DATA, ClientConnection, ResumeInfo
from roomwire.events import Connected, MessageReceived, MessagingEnabled, RequestAcked

ROOM = "bench"


@dataclass
class Raw:
    """A ``ClientConnection`` on an anyio socket, driven by hand."""

    stream: anyio.abc.SocketStream
    conn: ClientConnection
    sends: int = 0
    """Writes this client made (each flight of frames it sent)."""
    received: list[object] = field(default_factory=list)

    @classmethod
    async def open(cls, port: int, name: str, resume: ResumeInfo | None = None) -> Raw:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        raw = cls(stream, ClientConnection(token=token(name), now=time.time(), resume=resume))
        await raw.flush()
        return raw

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sends += 1
            await self.stream.send(data)

    first: dict[type, float] = field(default_factory=dict)
    """When the client core produced its first event of each type."""

    def count(self, kind: type) -> int:
        return sum(isinstance(e, kind) for e in self.received)

    async def until(self, kind: type, count: int = 1) -> float:
        """Read until ``count`` events of ``kind`` were processed on this connection; the
        time of the first."""
        while self.count(kind) < count:
            self.conn.receive_data(await self.stream.receive(1 << 20))
            while (event := self.conn.next_event(time.time())) is not NEED_DATA:
                self.first.setdefault(type(event), time.perf_counter())
                self.received.append(event)
            await self.flush()  # pongs
        return self.first[kind]


async def one_round(port: int, missed: int) -> dict[str, float]:
    sender = await Raw.open(port, "sender")
    await sender.until(Connected)
    sender.conn.enable()
    await sender.flush()
    await sender.until(MessagingEnabled)
    async with sender.stream:
        warm = await Raw.open(port, "warm-up")  # a first handshake pays for imports, caches
        await warm.until(Connected)
        await warm.stream.aclose()
        # The baseline: a plain handshake, then the reconnect this replaces.
        start = time.perf_counter()
        plain = await Raw.open(port, "plain")
        await plain.until(Connected)
        handshake = time.perf_counter() - start
        plain.conn.enable()
        await plain.flush()
        await plain.until(MessagingEnabled)
        sender.conn.broadcast_message("n", {"n": -1})
        await sender.flush()
        first_live = await plain.until(MessageReceived) - start
        plain_sends = plain.sends
        await plain.stream.aclose()

        receiver = await Raw.open(port, "receiver")
        await receiver.until(Connected)
        receiver.conn.enable()
        await receiver.flush()
        await receiver.until(MessagingEnabled)
        resume = receiver.conn.resume_info
        assert resume is not None
        await receiver.stream.aclose()  # the cut: no close frame
        for n in range(missed + 1):
            sender.conn.broadcast_message("n", {"n": n})
        await sender.flush()
        await sender.until(RequestAcked, missed + 2)  # all routed (and the baseline's)

        start = time.perf_counter()
        back = await Raw.open(port, "receiver", resume)
        await back.until(Connected)
        welcome = next(e for e in back.received if isinstance(e, Connected))
        assert welcome.resumed, welcome
        assert welcome.recovered, welcome
        first = await back.until(MessageReceived) - start
        await back.until(MessageReceived, welcome.missed)
        replay = time.perf_counter() - start
        got = [e.message.message["n"] for e in back.received if isinstance(e, MessageReceived)]
        assert got == list(range(missed + 1)), "the replay lost or reordered messages"
        sends = back.sends
        await back.stream.aclose()
    return {
        "replay": replay,
        "first": first,
        "handshake": handshake,
        "first_live": first_live,
        "sends": sends,
        "plain_sends": plain_sends,
    }


async def main(missed: int, rounds: int) -> None:
    best: dict[str, float] = {}
    async with roomwire_asyncio.serve(
        "127.0.0.1", 0, secret=SECRET, history_size=missed + 10, max_frame_size=1 << 20
    ) as server:
        for _ in range(rounds):
            figures = await one_round(server.port, missed)
            best = {k: min(v, best.get(k, v)) for k, v in figures.items()}
    ms = 1000
    print(
        f"replay of {missed + 1} missed messages: {best['replay'] * ms:.1f} ms "
        f"({(missed + 1) / best['replay']:,.0f} messages/s; goal < 1000 ms for 10,000)"
    )
    print(
        f"reconnect to first replayed message: {best['first'] * ms:.2f} ms, "
        f"client flights before it: {best['sends']:.0f} (the hello)"
    )
    print(f"baseline, plain handshake (hello to welcome): {best['handshake'] * ms:.2f} ms")
    print(
        f"baseline, handshake + enable + first live message: {best['first_live'] * ms:.2f} ms, "
        f"client flights: {best['plain_sends']:.0f} (hello, enable)"
    )
    ratio = best["first"] / best["handshake"]
    print(f"ratio, first replayed message / plain handshake: {ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--missed", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="500 missed, one round")
    args = parser.parse_args()
    if args.quick:
        args.missed, args.rounds = 500, 1
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(main(args.missed, args.rounds))
