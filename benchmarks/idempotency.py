"""What an idempotency key costs on the send path (issue 15, PROTOCOL.md §26), in memory
through the sans-IO core, as ``core.py`` measures it: the same sends with a key each (32 hex
digits, as the bindings draw them) against the same sends without one, in one run.

- ``fan-out N=100``: one sender broadcasts to 100 enabled participants (``core.py``'s (c));
  the unit is a delivery.
- ``send 1:1``: one sender's direct messages to one receiver (``core.py``'s (b)); the unit
  is a frame.

The keyed pass moves the server's clock past ``idempotency_window`` first, so every key is new
(delivered, not acked as a duplicate) and the expired ones are dropped on the way, as on a
long-running server; a sender sending more than ``max_idempotency_keys`` per window evicts
one key per send. ``ratio`` = keyed rate / unkeyed rate (1.0: the key costs nothing).

    python benchmarks/idempotency.py            # 300,000 deliveries, 1 MiB of sends
    python benchmarks/idempotency.py --quick    # seconds
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence

from core import (
    Case,
    Hub,
    Row,
    _chunks,
    _load,
    _stream,
    cbor2_is_compiled,
    print_table,
    run_cases,
    server_ingest,
)

from roomwire import ClientConnection, ServerConnection

Verb = Callable[[ClientConnection, dict[str, object], str | None], object]


def _keyed_pair(
    rng: random.Random,
    hub: Hub,
    sender: ClientConnection,
    conn: ServerConnection,
    *,
    verb: Verb,
    count: int,
) -> tuple[Callable[[], float], Callable[[], float], int]:
    """The timed passes of the same ``count`` sends with and without keys."""

    def stream(keyed: bool) -> list[bytes]:
        def send(message: dict[str, object]) -> object:
            return verb(sender, message, f"{rng.getrandbits(128):032x}" if keyed else None)

        data, frames = _stream(sender, send, count=count, rng=rng)
        assert frames == count
        return _chunks(data)

    keyed, plain = stream(keyed=True), stream(keyed=False)
    window = hub.server.config.idempotency_window

    def timed(chunks: list[bytes], expire: bool) -> Callable[[], float]:
        def run() -> float:
            if expire:
                hub.now += window + 1  # every key of the last pass is forgotten
            t0 = time.perf_counter()
            n = server_ingest(hub, conn, chunks)
            elapsed = time.perf_counter() - t0
            if n != count:
                raise RuntimeError(f"routed {n} of {count} sends (keys not new?)")
            return elapsed

        return run

    return timed(keyed, expire=True), timed(plain, expire=False), count


def bench_fanout(rng: random.Random, recipients: int, deliveries: int) -> Case:
    hub = Hub(rng)
    sender, conn = hub.join()
    for _ in range(recipients):
        hub.join()
    count = max(deliveries // recipients, 20)
    subject, baseline, count = _keyed_pair(
        rng,
        hub,
        sender,
        conn,
        verb=lambda c, m, k: c.broadcast_message("chat", m, None, k),
        count=count,
    )
    name = f"fan-out N={recipients}: keyed vs unkeyed"
    return Case(
        (subject, baseline),
        lambda best: [Row(name, "deliveries", count * recipients, best[0], best[1], None)],
    )


def bench_send(rng: random.Random, count: int) -> Case:
    hub = Hub(rng)
    sender, conn = hub.join()
    receiver, _ = hub.join()
    assert receiver.local_participant is not None
    to = receiver.local_participant.id
    subject, baseline, count = _keyed_pair(
        rng,
        hub,
        sender,
        conn,
        verb=lambda c, m, k: c.send_message(to, "chat", m, None, k),
        count=count,
    )
    name = "send 1:1: keyed vs unkeyed"
    return Case(
        (subject, baseline), lambda best: [Row(name, "frames", count, best[0], best[1], None)]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, help="timed rounds; each pass's best is kept")
    args = parser.parse_args(argv)
    if not cbor2_is_compiled():
        print("benchmarks/idempotency.py: needs the compiled cbor2", file=sys.stderr)
        return 2
    repeat = args.repeat or (3 if args.quick else 7)
    deliveries, sends = (40_000, 2_000) if args.quick else (300_000, 10_000)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    print(f"idempotency keys on the send path: best of up to {repeat} rounds after 1 warm-up")
    print(f"load average before: {_load()}")
    cases = [bench_fanout(rng, 100, deliveries), bench_send(rng, sends)]
    rows, rounds = run_cases(cases, repeat, started + (10.0 if args.quick else 60.0))
    print()
    print_table(rows)
    print()
    print("roomwire = with a key per send, baseline = the same sends without: ratio = keyed /")
    print(f"unkeyed rate (1.0: free). {rounds} rounds; load average after: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
