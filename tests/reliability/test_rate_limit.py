"""Item 8: the per-connection request rate (``ServerConfig.rate_limit`` / ``rate_burst``).

Two participants exchange direct messages at 40 % of the rate, first alone (the baseline)
and then while abusers send at ten times the rate, one connection after another. Each abuser
gets RATE_LIMITED refusals (the binding raises RateLimitedError) and then, as it keeps going,
the RATE_LIMIT_EXCEEDED close. The others lose nothing and are never refused; their delivery
latency in both phases is reported (not asserted: timing is not the promise here).
"""

from __future__ import annotations

import statistics
import time
from contextlib import aclosing
from typing import Any

import anyio
import pytest
from roomwire_anyio import ConnectionClosedError, Disconnected, RateLimitedError, SendFailed

from roomwire import Code

from . import Inbox, wait_until
from .conftest import Figures

pytestmark = pytest.mark.anyio

RATE = 10.0
"""Requests a second per connection: low, so that ten times it is a rate the test process
really reaches on either runtime, even traced for coverage."""
BURST = 5
ABUSE = 10 * RATE
POLITE = 0.4 * RATE
BASELINE_S = 1.0
ABUSE_S = 1.5
ABUSERS = 2
FIRST_REFUSAL_BOUND = 1.0
"""Seconds within which an abuser is first refused (R15: within 1 s)."""


@pytest.mark.server(rate_limit=RATE, rate_burst=BURST)
async def test_abuse_is_refused_then_closed_and_others_are_unaffected(
    rw: Any, server: Any, make_token: Any, join: Any, figures: Figures
) -> None:
    alice, bob = Inbox(await join("alice")), Inbox(await join("bob"))
    await wait_until(lambda: len(alice.room.messaging.remote_participants) == 1)
    phase = {"abuse": False}
    sent = {alice.id: 0, bob.id: 0}
    stop = anyio.Event()

    async def polite(me: Inbox, to: str) -> None:
        start = anyio.current_time()
        n = 0
        while not stop.is_set() and n < 10_000:
            await anyio.sleep_until(start + n / POLITE)
            message = {"n": n, "at": time.time(), "abuse": phase["abuse"]}
            await me.room.messaging.send_message(to=to, type="chat", message=message)
            n += 1
        sent[me.id] = n

    abuses: list[dict[str, Any]] = []

    async def abuse(name: str) -> None:
        """One connection sending at ten times the rate (pipelined, so the rate is real on
        either runtime) until the server closes it; refusals arrive as SendFailed events."""
        async with rw.connect(server.url, token=make_token(name), reconnect=False) as room:
            await room.messaging.enable()
            record: dict[str, Any] = {"sent": 0, "refused": 0}
            start = anyio.current_time()

            async def watch() -> None:
                async with aclosing(room.messaging.events()) as events:
                    async for event in events:
                        if isinstance(event, SendFailed):
                            assert event.code is Code.RATE_LIMITED
                            record.setdefault("first_refusal_s", anyio.current_time() - start)
                            record["refused"] += 1
                        elif isinstance(event, Disconnected):
                            record["close"] = event.code
                            record["closed_after_s"] = anyio.current_time() - start
                            return

            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                for n in range(int(ABUSE * 5)):  # 5 s at most: the close comes long before
                    await anyio.sleep_until(start + n / ABUSE)
                    try:
                        await room.messaging.broadcast_message(
                            type="spam", message={"n": n}, wait=False
                        )
                    except ConnectionClosedError:
                        break
                    record["sent"] += 1
            abuses.append(record)

    async def abusers(worker: int) -> None:
        end = anyio.current_time() + ABUSE_S
        n = 0
        while anyio.current_time() < end and n < 100:
            await abuse(f"abuser-{worker}-{n}")
            n += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(polite, alice, bob.id)
        tg.start_soon(polite, bob, alice.id)
        await anyio.sleep(BASELINE_S)
        phase["abuse"] = True
        async with anyio.create_task_group() as abuse_tg:
            for worker in range(ABUSERS):
                abuse_tg.start_soon(abusers, worker)
        stop.set()

    # Every abuser: refused first, then closed for sustained abuse.
    assert abuses
    for record in abuses:
        assert record["close"] is Code.RATE_LIMIT_EXCEEDED, record
        assert record["refused"] >= 1
        assert record["first_refusal_s"] <= FIRST_REFUSAL_BOUND
        assert record["sent"] / record["closed_after_s"] >= ABUSE / 2  # really abusive
    # The others: every message, in order, none refused (a refusal would have raised).
    for me, other in ((alice, bob), (bob, alice)):
        await me.wait_for(sent[other.id])
        assert me.numbers_from(other.id) == list(range(sent[other.id]))
    latency: dict[bool, list[float]] = {False: [], True: []}
    for inbox in (alice, bob):
        for m, at in zip(inbox.messages, inbox.received_at, strict=True):
            if m.type == "chat":  # the abusers' accepted broadcasts reach them too
                latency[m.message["abuse"]].append(at - m.message["at"])
    assert latency[False]
    assert latency[True]

    def ms(values: list[float], q: int) -> float:
        return round(statistics.quantiles(values, n=100)[q - 1] * 1000, 2)

    figures(
        abuse_connections=len(abuses),
        refused_before_close=f"{min(r['refused'] for r in abuses)}-"
        f"{max(r['refused'] for r in abuses)}",
        first_refusal_max_ms=round(max(r["first_refusal_s"] for r in abuses) * 1000, 1),
        closed_after_max_ms=round(max(r["closed_after_s"] for r in abuses) * 1000, 1),
        abuse_rate_min=round(min(r["sent"] / r["closed_after_s"] for r in abuses)),
        polite_sent=sum(sent.values()),
        polite_lost=sum(sent.values()) - len(latency[False]) - len(latency[True]),
        polite_p50_ms_baseline=ms(latency[False], 50),
        polite_p99_ms_baseline=ms(latency[False], 99),
        polite_p50_ms_abuse=ms(latency[True], 50),
        polite_p99_ms_abuse=ms(latency[True], 99),
    )


@pytest.mark.server(rate_limit=RATE, rate_burst=BURST)
async def test_a_refusal_raises_rate_limited_error_and_the_connection_stays(join: Any) -> None:
    room = await join("eager")
    refused = None
    for n in range(10 * BURST):  # the burst is spent long before this
        try:
            await room.messaging.broadcast_message(type="t", message={"n": n})
        except RateLimitedError as exc:
            refused = exc
            break
    assert refused is not None
    assert refused.code is Code.RATE_LIMITED
    assert room.connected
    await anyio.sleep(2 / RATE)  # a token comes back
    await room.messaging.broadcast_message(type="t", message={"n": -1})
