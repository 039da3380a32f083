"""Per-connection request rate: a token bucket refuses the excess with RATE_LIMITED, and only
sustained abuse (refusals piling up faster than the rate drains them) closes the connection."""

from __future__ import annotations

import pytest

from roomwire import Code, State
from roomwire.events import ConnectionClosed, MessageReceived, RequestAcked, RequestRefused

from .helpers import Room


def rate_room(rate: float = 10.0, burst: int = 5) -> Room:
    return Room(rate_limit=rate, rate_burst=burst)


def test_a_burst_is_allowed_then_the_excess_is_refused_and_the_connection_stays() -> None:
    room = rate_room(burst=5)
    alice, bob = room.enabled("alice"), room.enabled("bob")  # enable spent one token each
    alice.take()
    for n in range(6):
        alice.client.broadcast_message("t", {"n": n})
    room.pump()
    replies = alice.take()
    assert [type(e) for e in replies] == [RequestAcked] * 4 + [RequestRefused] * 2
    refused = replies[-1]
    assert isinstance(refused, RequestRefused)
    assert refused.code is Code.RATE_LIMITED
    assert alice.client.state is State.ENABLED
    assert [e.message.message["n"] for e in bob.of(MessageReceived)] == [0, 1, 2, 3]


def test_tokens_refill_with_time() -> None:
    room = rate_room(rate=10.0, burst=2)
    alice = room.enabled("alice")
    alice.client.broadcast_message("t", {})
    alice.client.broadcast_message("t", {})  # the bucket (2) is now empty
    room.pump()
    room.now += 0.1  # one token back at 10/s
    alice.client.broadcast_message("t", {})
    room.pump()
    assert [type(e) for e in alice.take()][-3:] == [RequestAcked, RequestRefused, RequestAcked]


def test_slightly_over_the_rate_is_refused_now_and_then_but_never_closed() -> None:
    room = rate_room(rate=10.0, burst=3)
    alice = room.enabled("alice")
    for _ in range(300):  # 30 s at 15 requests/s: 1.5x the rate
        room.now += 1 / 15
        alice.client.broadcast_message("t", {})
        room.pump()
    events = alice.take()
    refused = sum(isinstance(e, RequestRefused) for e in events)
    assert 80 <= refused <= 120  # about a third of them
    assert alice.client.state is State.ENABLED


@pytest.mark.parametrize("times_the_rate", [10, 100])
def test_sustained_abuse_closes_the_connection(times_the_rate: int) -> None:
    room = rate_room(rate=10.0, burst=5)
    alice, bob = room.enabled("alice"), room.enabled("bob")
    for _ in range(200):
        room.now += 1 / (10.0 * times_the_rate)
        alice.client.broadcast_message("t", {})
        room.pump()
        if alice.client.state is State.CLOSED:
            break
    closed = alice.of(ConnectionClosed)[0]
    assert closed.code is Code.RATE_LIMIT_EXCEEDED
    assert bob.client.state is State.ENABLED  # others are unaffected
    assert [p.name for p in room.server.participants("demo")] == ["bob"]


def test_rate_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate_limit must be positive"):
        rate_room(rate=0)
