"""Loopback TCP benchmarks of the roomwire drivers, each against a raw reference in the same run.

Run: ``python benchmarks/loopback.py [--quick] [--only p3,p4,p5] [--json FILE]``.

P3 driver ingest: a raw client streams 1 MiB batches of pre-encoded ``send`` frames to a real
   roomwire server (asyncio, uvloop, trio) addressed to a second participant; frames/s until the
   last delivery arrives, against P2's reference (split + cbor2.loads + event, in this process).
P4 one-to-one (server on uvloop and on asyncio, harness on uvloop): ``send_message(wait=False)``
   per message against one write per message into a raw sink; awaited sends in a loop against
   a raw ping-pong; echo latency (a send to oneself, until its delivery arrives) against the
   raw ping-pong's round trip.
P5 busy room: N participants each send K broadcasts at once; deliveries/s against a raw relay
   that flushes per-participant buffers once per loop turn (same input bytes, no protocol).

Servers run in their own processes (``_servers.py``) and are stopped by pid; clients run here
on uvloop. Best of ``--repeat`` rounds; nothing fails on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import string
import struct
import sys
import time
from collections.abc import Sequence

from _common import (
    END,
    Counter,
    Result,
    detach,
    free_port,
    open_counter,
    percentile,
    raise_nofile,
    report,
    run,
    rw_join,
    start_server,
    stop,
    token,
)
from core import CHUNK, Hub, reference_ingest

from roomwire import ClientConnection

TEXT = string.ascii_letters + string.digits + " "
MiB = 1 << 20


def messages(rng: random.Random, n: int) -> list[dict[str, object]]:
    """``n`` small messages (8-120 characters); the last one carries the end marker."""
    out: list[dict[str, object]] = [
        {"text": "".join(rng.choices(TEXT, k=rng.randint(8, 120)))} for _ in range(n)
    ]
    out[-1] = {"text": END.decode() + "-last"}
    return out


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


# --- P3 --------------------------------------------------------------------------------------


def send_stream(conn: ClientConnection, to: str, msgs: list[dict[str, object]]) -> bytes:
    for msg in msgs:
        conn.send_message(to, "chat", msg)
    return conn.data_to_send()


async def p3_roomwire(port: int, msgs_per_round: list[list[dict[str, object]]]) -> float:
    rx_r, rx_w, rx = await rw_join(port, "rx")
    tx_r, tx_w, tx = await rw_join(port, "tx")
    assert rx.local_participant is not None
    to = rx.local_participant.id
    counter = await detach(rx_r, rx_w)
    await detach(tx_r, tx_w)  # acks: read and dropped
    transport = tx_w.transport
    best = float("inf")
    for msgs in msgs_per_round:
        stream = send_stream(tx, to, msgs)
        counter.rearm(1)
        gc.collect()
        t0 = time.perf_counter()
        for i in range(0, len(stream), MiB):
            transport.write(stream[i : i + MiB])
        await asyncio.wait_for(counter.done, 120)
        best = min(best, counter.done.result() - t0)
    rx_w.close()
    tx_w.close()
    return len(msgs_per_round[0]) / best


def p3_reference(stream: bytes, frames: int, repeat: int) -> float:
    chunks = [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]
    best = float("inf")
    for _ in range(repeat + 1):
        gc.collect()
        t0 = time.perf_counter()
        n = reference_ingest(chunks)
        best = min(best, time.perf_counter() - t0)
        assert n == frames
    return frames / best


def bench_p3(args: argparse.Namespace, rng: random.Random) -> list[Result]:
    size = 256 * 1024 if args.quick else 8 * MiB
    probe = messages(rng, 1000)
    avg = sum(len(str(m["text"])) for m in probe) / len(probe) + 60
    count = max(100, int(size / avg))
    rounds = [messages(rng, count) for _ in range(args.repeat)]
    # The reference ingests the same kind of frames (a send from a client connection).
    ref_conn = _enabled_client()
    ref_stream = send_stream(ref_conn, "someone", rounds[0])
    reference = p3_reference(ref_stream, count, args.repeat)
    results = []
    for runtime in ("asyncio", "uvloop", "trio"):
        port = free_port()
        proc = start_server(f"rw-{runtime}", port)
        try:
            rate = run(p3_roomwire(port, rounds))
        finally:
            stop(proc)
        results.append(
            Result(
                "P3",
                f"driver ingest over TCP, {runtime} server",
                "frames/s",
                float(rate),  # type: ignore[arg-type]
                reference,
                "P2 ref: split+cbor2.loads+event",
                0.70,
                note=f"{count} frames ({len(ref_stream) / MiB:.1f} MiB) per round",
            )
        )
    return results


def _enabled_client() -> ClientConnection:
    """A client connection in the messaging-enabled state, through core.py's in-memory hub."""
    client, _ = Hub(random.Random(0)).join()
    return client


# --- P4 --------------------------------------------------------------------------------------


async def p4_roomwire(
    port: int, n_stream: int, n_wait: int, n_lat: int, repeat: int
) -> dict[str, object]:
    import roomwire_asyncio  # noqa: PLC0415

    rng = random.Random(4)
    rx_r, rx_w, rx = await rw_join(port, "rx")
    assert rx.local_participant is not None
    to = rx.local_participant.id
    counter = await detach(rx_r, rx_w)
    out: dict[str, object] = {}
    async with roomwire_asyncio.connect(
        f"tcp://127.0.0.1:{port}", token=token("tx"), reconnect=False
    ) as room:
        m = room.messaging
        await m.enable(presence=False)
        best = float("inf")
        for _ in range(repeat):
            msgs = messages(rng, n_stream)
            counter.rearm(1)
            gc.collect()
            t0 = time.perf_counter()
            for msg in msgs:
                await m.send_message(to=to, type="chat", message=msg, wait=False)
            await asyncio.wait_for(counter.done, 120)
            best = min(best, counter.done.result() - t0)
        out["stream"] = n_stream / best
        best = float("inf")
        for _ in range(repeat):
            msgs = messages(rng, n_wait)
            gc.collect()
            t0 = time.perf_counter()
            for msg in msgs:
                await m.send_message(to=to, type="chat", message=msg)
            best = min(best, time.perf_counter() - t0)
        out["awaited"] = n_wait / best
        # Echo latency: a message to oneself, until its delivery comes back.
        me = room.local_participant
        assert me is not None
        loop = asyncio.get_running_loop()
        box: list[asyncio.Future[float]] = []
        m.on("message", lambda _msg: box[0].set_result(time.perf_counter()))
        lat: list[float] = []
        msg = {"text": "x" * 64}
        for i in range(n_lat):
            box[:] = [loop.create_future()]
            t0 = time.perf_counter()
            await m.send_message(to=me.id, type="chat", message=msg, wait=False)
            done = await box[0]
            if i >= n_lat // 10:  # the first tenth warms up
                lat.append((done - t0) * 1e6)
        out["lat"] = lat
    rx_w.close()
    return out


async def p4_reference(  # noqa: PLR0917 - one count per measurement
    port_sink: int, port_echo: int, n_stream: int, n_wait: int, n_lat: int, repeat: int
) -> dict[str, object]:
    out: dict[str, object] = {}
    rng = random.Random(4)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_sink)
    best = float("inf")
    for _ in range(repeat):
        frames = [frame(str(m["text"]).encode().ljust(60, b" ")) for m in messages(rng, n_stream)]
        gc.collect()
        t0 = time.perf_counter()
        for f in frames:
            writer.write(f)
            await writer.drain()
        await reader.readexactly(1)
        best = min(best, time.perf_counter() - t0)
    out["stream"] = n_stream / best
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", port_echo)
    ping = frame(b"x" * 100)
    best = float("inf")
    lat: list[float] = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(n_wait):
            writer.write(ping)
            await reader.readexactly(len(ping))
        best = min(best, time.perf_counter() - t0)
    out["awaited"] = n_wait / best
    for i in range(n_lat):
        t0 = time.perf_counter()
        writer.write(ping)
        await reader.readexactly(len(ping))
        if i >= n_lat // 10:
            lat.append((time.perf_counter() - t0) * 1e6)
    out["lat"] = lat
    writer.close()
    return out


def bench_p4(args: argparse.Namespace) -> list[Result]:
    n_stream, n_wait, n_lat = (2000, 200, 200) if args.quick else (30_000, 2000, 3000)
    results = []
    for runtime in ("uvloop", "asyncio"):
        ports = [free_port() for _ in range(3)]
        procs = []
        try:
            procs.append(start_server(f"sink-{runtime}", ports[1]))
            procs.append(start_server(f"echo-{runtime}", ports[2]))
            ref = run(p4_reference(ports[1], ports[2], n_stream, n_wait, n_lat, args.repeat))
            procs.append(start_server(f"rw-{runtime}", ports[0]))
            rw = run(p4_roomwire(ports[0], n_stream, n_wait, n_lat, args.repeat))
        finally:
            for proc in procs:
                stop(proc)
        assert isinstance(ref, dict)
        assert isinstance(rw, dict)
        rl, fl = rw["lat"], ref["lat"]
        tag = f"{runtime} server, uvloop client"
        results += [
            Result(
                "P4",
                f"send(wait=False) stream, {tag}",
                "msg/s",
                rw["stream"],
                ref["stream"],
                "raw one write per message",
                2.0,
            ),
            Result(
                "P4",
                f"awaited sends in a loop, {tag}",
                "msg/s",
                rw["awaited"],
                ref["awaited"],
                "raw ping-pong round trips",
                0.75,
            ),
            Result(
                "P4",
                f"echo latency p50, {tag}",
                "us",
                percentile(rl, 50),
                percentile(fl, 50),
                "raw ping-pong p50",
                1.3,
                "<=",
            ),
            Result(
                "P4",
                f"echo latency p99, {tag}",
                "us",
                percentile(rl, 99),
                percentile(fl, 99),
                "raw ping-pong p99",
                1.5,
                "<=",
            ),
        ]
    return results


# --- P5 --------------------------------------------------------------------------------------


async def p5_run(port: int, n: int, k: int, repeat: int, *, roomwire: bool) -> float:
    rng = random.Random(5)
    counters: list[Counter] = []
    conns: list[ClientConnection | None] = []
    transports: list[asyncio.Transport] = []
    writers: list[asyncio.StreamWriter] = []  # a collected StreamWriter closes its transport
    batch = 50
    for start in range(0, n, batch):
        if roomwire:
            joined = await asyncio.gather(
                *(rw_join(port, f"p{i}") for i in range(start, min(n, start + batch)))
            )
            for r, w, c in joined:
                counters.append(await detach(r, w, n - 1))
                conns.append(c)
                writers.append(w)
                transports.append(w.transport)  # type: ignore[arg-type]
        else:
            opened = await asyncio.gather(
                *(open_counter(port, want=n - 1) for _ in range(start, min(n, start + batch)))
            )
            for t, c in opened:
                counters.append(c)
                conns.append(None)
                transports.append(t)
    if not roomwire:
        while any(c.bytes < 1 for c in counters):  # the relay greets each member with one byte
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    # Same input bytes for both: the broadcast frames a roomwire client queues.
    proto = _enabled_client()
    best = float("inf")
    for _ in range(repeat):
        msgs = messages(rng, k)
        streams = []
        for conn in conns:
            c = conn if conn is not None else proto
            for msg in msgs:
                c.broadcast_message("chat", msg)
            streams.append(c.data_to_send())
        for c in counters:
            c.rearm(n - 1)
        gc.collect()
        t0 = time.perf_counter()
        for t, s, c in zip(transports, streams, counters, strict=True):
            if t.is_closing():
                raise ConnectionError(f"closed by the server; last bytes: {c.last!r}")
            t.write(s)
        done = await asyncio.wait_for(asyncio.gather(*(c.done for c in counters)), 300)
        best = min(best, max(done) - t0)
    for t in transports:
        t.close()
    return n * (n - 1) * k / best


def bench_p5(args: argparse.Namespace) -> list[Result]:
    raise_nofile()
    plan = [(5, 20), (20, 20)] if args.quick else [(10, 4000), (100, 200), (1000, 4)]
    results = []
    for n, k in plan:
        reps = 1 if n >= 1000 else args.repeat
        port_rw, port_raw = free_port(), free_port()
        procs = []
        try:
            procs.append(start_server("relay-uvloop", port_raw))
            ref = run(p5_run(port_raw, n, k, reps, roomwire=False))
            stop(procs.pop())
            procs.append(start_server("rw-uvloop", port_rw))
            rw = run(p5_run(port_rw, n, k, reps, roomwire=True))
        finally:
            for proc in procs:
                stop(proc)
        results.append(
            Result(
                "P5",
                f"busy room N={n}, {k} msgs each, uvloop",
                "deliveries/s",
                float(rw),  # type: ignore[arg-type]
                float(ref),
                "raw per-turn-flush relay",
                0.25 if n == 100 else None,
            )  # type: ignore[arg-type]
        )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds (CI)")
    parser.add_argument("--only", default="p3,p4,p5", help="comma-separated subset")
    parser.add_argument("--repeat", type=int, help="rounds, best kept (default 3, quick 1)")
    parser.add_argument("--json", help="append the results to this file (JSON lines)")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    only = set(args.only.lower().split(","))
    rng = random.Random(3)
    for name, bench in (
        ("p3", lambda: bench_p3(args, rng)),
        ("p4", lambda: bench_p4(args)),
        ("p5", lambda: bench_p5(args)),
    ):
        if name in only:
            started = time.perf_counter()
            report(bench(), args.json)
            print(f"  ({name} took {time.perf_counter() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
