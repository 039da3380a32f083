"""The Redis backplane under load: cross-node broadcast deliveries/s and a node's publish rate,
each next to a pipelined redis-py baseline measured in the same run on the same Redis.

Run: ``python benchmarks/redis_backplane.py`` (full, well under a minute) or ``--quick`` (a few
seconds). Needs ``redis-server`` on the PATH and redis-py (``roomwire-asyncio[redis]``): the
script starts its own redis-server on a free loopback port (no persistence) and two
``roomwire serve --redis`` nodes as subprocesses, and stops them all by pid.

Lines:
(a) baseline: redis-py publishing the same number of records of the same size in pipelines of
    100 (no subscriber), the ceiling perf-anchors G8 measures against.
(b) baseline: the same pipelined publishing with one redis-py subscriber reading every record
    back in the same process (a node must also hear its own records: that is the design).
(c) node A's publish rate: senders on A broadcast as fast as they can (frames written in bulk);
    Redis's ``cmdstat_publish`` counter gives when A had published them all.
(d) cross-node deliveries/s: every broadcast reaches the receivers on node B (counted by frame).
It prints rates and ratios; it never fails on speed (goal: (c) / (a) >= 0.8).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis
from roomwire_asyncio._redis import _send

from roomwire import NEED_DATA, ClientConnection, ParticipantToken
from roomwire.events import Connected, MessagingEnabled

SECRET = "benchmark-secret-that-is-long-enough-for-hs256"
ROOM = "bench"
PAYLOAD = {"text": "x" * 60}
BUDGET = 120.0
"""Seconds after which the run is abandoned (every wait below is bounded by it)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(directory)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("redis-server did not start")
            time.sleep(0.02)
    return process, f"redis://127.0.0.1:{port}/0"


def start_node(redis_url: str, node_id: str) -> tuple[subprocess.Popen[bytes], str]:
    command = [sys.executable, "-m", "roomwire_asyncio", "serve", "--port", "0"]
    command += ["--secret", SECRET, "--redis", redis_url, "--node-id", node_id]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if "listening on" not in line:
        sys.exit(f"node {node_id} did not start")
    return process, line.split()[-1]


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class Client:
    """A participant driven by the core's ClientConnection for the handshake, then raw."""

    def __init__(self, name: str) -> None:
        token = ParticipantToken(room=ROOM, name=name).to_jwt(SECRET)
        self.conn = ClientConnection(token=token, now=time.time())

    async def open(self, url: str) -> None:
        host, port = url.removeprefix("tcp://").rsplit(":", 1)
        self.reader, self.writer = await asyncio.open_connection(host, int(port))
        self.writer.write(self.conn.data_to_send())
        await self._until(Connected)
        self.conn.enable()
        self.writer.write(self.conn.data_to_send())
        await self._until(MessagingEnabled)

    async def _until(self, kind: type) -> None:
        while True:
            data = await self.reader.read(65536)
            assert data, "the server hung up"
            self.conn.receive_data(data)
            while (event := self.conn.next_event(time.time())) is not NEED_DATA:
                if isinstance(event, kind):
                    return

    def broadcasts(self, count: int) -> bytes:
        for _ in range(count):
            self.conn.broadcast_message("b", PAYLOAD)
        return self.conn.data_to_send()

    async def discard(self) -> None:
        while await self.reader.read(1 << 20):
            pass

    async def count_frames(self, expected: int) -> float:
        """Read until ``expected`` frames came; returns when the last one did."""
        buffer, count = b"", 0
        while count < expected:
            data = await self.reader.read(1 << 20)
            assert data, "the server hung up"
            buffer += data
            offset = 0
            while len(buffer) - offset >= 4:
                (size,) = struct.unpack_from(">I", buffer, offset)
                if len(buffer) - offset - 4 < size:
                    break
                offset += 4 + size
                count += 1
            buffer = buffer[offset:]
        return time.perf_counter()

    def close(self) -> None:
        self.writer.close()


async def publish_calls(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_publish", {}).get("calls", 0))


async def baseline(url: str, count: int, size: int, *, echo: bool) -> float:
    data = b"x" * size
    async with aioredis.Redis.from_url(url) as client:
        channel = f"baseline-{echo}"
        received = 0
        done = asyncio.Event()
        reader = None
        pubsub = client.pubsub()
        if echo:
            await pubsub.subscribe(channel)
            while (await pubsub.get_message(timeout=1.0)) is None:
                pass  # the subscribe confirmation

            async def read() -> None:
                nonlocal received
                while received < count:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message["type"] == "message":
                        received += 1
                done.set()

            reader = asyncio.create_task(read())
        start = time.perf_counter()
        for first in range(0, count, 100):
            pipe = client.pipeline(transaction=False)
            for _ in range(min(100, count - first)):
                pipe.publish(channel, data)
            await pipe.execute()
        if reader is not None:
            await done.wait()
        elapsed = time.perf_counter() - start
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        return count / elapsed


async def driver_publish(url: str, count: int, size: int, turn: int) -> float:
    """The driver's publish path alone: ``turn`` records per loop turn, as the core hands
    them out, through the same function the node uses (one pipeline per turn)."""
    records: list[tuple[str | None, bytes]] = [(ROOM, b"x" * size)] * turn
    async with aioredis.Redis.from_url(url) as client:
        start = time.perf_counter()
        for _ in range(count // turn):
            await _send(client, records)
        return (count // turn) * turn / (time.perf_counter() - start)


async def node_run(
    redis_url: str, url_a: str, url_b: str, count: int, senders: int
) -> tuple[float, float, int, int]:
    receivers = [Client(f"r{i}") for i in range(2)]
    for receiver in receivers:
        await receiver.open(url_b)
    clients = [Client(f"s{i}") for i in range(senders)]
    for client in clients:
        await client.open(url_a)
    per_sender = count // senders
    await asyncio.sleep(0.3)  # presence settles before the clock starts
    payloads = [c.broadcasts(per_sender) for c in clients]
    # Everyone else's broadcasts reach each sender too: count them on the receivers only.
    expected = per_sender * senders
    async with aioredis.Redis.from_url(redis_url) as stats:
        base = await publish_calls(stats)
        pubsub = stats.pubsub()
        await pubsub.subscribe(f"roomwire:room:{ROOM}")
        while (await pubsub.get_message(timeout=1.0)) is None:
            pass  # the subscribe confirmation

        async def heard() -> float:
            """Counts the records node A published (4-byte prefixed, batched per turn)."""
            records = 0
            while records < expected:
                message = await pubsub.get_message(timeout=None)
                if message is not None and message["type"] == "message":
                    data, offset = message["data"], 0
                    while offset < len(data):
                        (size,) = struct.unpack_from(">I", data, offset)
                        offset += 4 + size
                        # msg records are 9-key CBOR maps (0xa9); heartbeats are not
                        records += data[offset - size : offset].startswith(b"\xa9")
            return time.perf_counter()

        published = asyncio.create_task(heard())
        discards = [asyncio.create_task(c.discard()) for c in clients]
        counters = [asyncio.create_task(r.count_frames(expected)) for r in receivers]
        start = time.perf_counter()
        for client, data in zip(clients, payloads, strict=True):
            client.writer.write(data)
        published_at = await published
        last = max(await asyncio.gather(*counters))
        commands = await publish_calls(stats) - base
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    for task in discards:
        task.cancel()
    for client in [*clients, *receivers]:
        client.close()
    publish_rate = expected / (published_at - start)
    deliveries = expected * len(receivers) / (last - start)
    return publish_rate, deliveries, expected, commands


def record_size() -> int:
    import cbor2  # noqa: PLC0415 - only for this estimate

    record = {
        "t": "msg",
        "id": "0123abcd-100000",
        "ts": time.time(),
        "to": None,
        "from": "0123abcd-1",
        "type": "b",
        "message": PAYLOAD,
        "n": "bench-a",
        "r": ROOM,
    }
    return len(cbor2.dumps(record))


async def main(args: argparse.Namespace) -> None:
    count = args.count or (20_000 if args.quick else 200_000)
    with tempfile.TemporaryDirectory() as directory:
        redis_process, redis_url = start_redis(Path(directory))
        nodes = []
        try:
            nodes.append(start_node(redis_url, "bench-a"))
            nodes.append(start_node(redis_url, "bench-b"))
            size = record_size()
            piped = await baseline(redis_url, count, size, echo=False)
            echoed = await baseline(redis_url, count, size, echo=True)
            driver = {turn: await driver_publish(redis_url, count, size, turn) for turn in (1, 100)}
            publish, deliveries, sent, commands = await node_run(
                redis_url, nodes[0][1], nodes[1][1], count, args.senders
            )
        finally:
            for process, _ in nodes:
                stop(process)
            stop(redis_process)
    print(f"records: {sent} broadcasts of a {size}-byte record, {args.senders} sender(s) on A")
    print(f"(a) redis-py pipelined publish (x100)      {piped:10,.0f} msg/s")
    print(f"(b) redis-py pipelined publish + read back {echoed:10,.0f} msg/s")
    for turn, rate in driver.items():
        print(
            f"(e) driver publish path, {turn:>3} record(s)/turn {rate:10,.0f} records/s"
            f"  ratio to (a) {rate / piped:.2f} (goal >= 0.8)"
        )
    print(f"(c) node A publish rate                    {publish:10,.0f} records/s")
    print(f"    in {commands:,} PUBLISH commands (one per channel and loop turn)")
    print(f"    ratio (c)/(a) {publish / piped:.2f}; (c)/(b) {publish / echoed:.2f}")
    print(f"(d) cross-node deliveries (2 receivers on B) {deliveries:8,.0f} deliveries/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds (CI)")
    parser.add_argument("--count", type=int, default=0, help="broadcasts per run")
    parser.add_argument("--senders", type=int, default=2, help="sender connections on node A")
    arguments = parser.parse_args()
    try:
        asyncio.run(asyncio.wait_for(main(arguments), BUDGET))
    except TimeoutError:
        sys.exit(f"abandoned after {BUDGET:g} s")
