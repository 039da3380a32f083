"""Issue 13, finding 5 over TCP on both runtimes, with tokens that live 2 seconds: without a
provider the server closes the connection at ``exp`` (TOKEN_EXPIRED); with
``connect(token_provider=...)`` the same connection outlives several tokens (refreshed at
80 % of their lifetime), and every reconnect takes a fresh token from the provider."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import anyio
import pytest
from roomwire_anyio._token_refresh import token_expiry

from roomwire import Code

from . import WAIT, ServerTask, next_event

pytestmark = pytest.mark.anyio

LIFETIME = 2.0
"""Seconds each token lives."""


class Provider:
    """Fresh 2-second tokens for one name; counts the calls."""

    def __init__(self, make_token: Callable[..., str], name: str = "alice") -> None:
        self.make_token, self.name = make_token, name
        self.calls: list[float] = []

    async def __call__(self) -> str:
        self.calls.append(time.time())
        return self.make_token(self.name, expires_at=time.time() + LIFETIME)


async def test_without_a_provider_the_connection_closes_at_exp(
    rw: ModuleType, server: Any, make_token: Callable[..., str]
) -> None:
    token = make_token("alice", expires_at=time.time() + LIFETIME)
    start = time.time()
    async with rw.connect(server.url, token=token, reconnect=False) as alice:
        await alice.messaging.enable()
        lost = await next_event(alice, rw.Disconnected, timeout=LIFETIME + WAIT)
        took = time.time() - start
        assert (lost.code, lost.reconnecting) == (Code.TOKEN_EXPIRED, False)
        assert LIFETIME - 0.5 < took < LIFETIME + 1.5, took
        with anyio.fail_after(1), pytest.raises(rw.ConnectionClosedError):
            await alice.messaging.broadcast_message(type="t", message={})


async def test_a_provider_keeps_one_connection_past_several_tokens(
    rw: ModuleType, server: Any, make_token: Callable[..., str], join: Any
) -> None:
    bob = await join("bob")
    provider = Provider(make_token)
    async with rw.connect(server.url, token_provider=provider, reconnect=False) as alice:
        await alice.messaging.enable()
        me = alice.local_participant
        await anyio.sleep(2.5 * LIFETIME)  # the first token and the next two would have expired
        assert alice.connected
        assert alice.local_participant == me  # the same connection: never reconnected
        assert len(provider.calls) >= 3  # the first connect, then a refresh per lifetime
        gaps = [b - a for a, b in zip(provider.calls, provider.calls[1:], strict=False)]
        assert all(0.7 * LIFETIME < gap < LIFETIME for gap in gaps), gaps  # at ~80 %
        mid = await alice.messaging.broadcast_message(type="t", message={"still": "here"})
        got = await next_event(bob, rw.MessageReceived, lambda e: e.message.id == mid)
        assert got.message.from_participant_id == me.id
    assert server.core.stats.closes.get(Code.TOKEN_EXPIRED, 0) == 0


async def test_a_refused_refresh_is_tried_again_and_the_connection_stays_until_exp(
    rw: ModuleType, server: Any, make_token: Callable[..., str]
) -> None:
    good = Provider(make_token)
    calls = 0

    async def wrong_name_first() -> str:
        nonlocal calls
        calls += 1
        return await good() if calls != 2 else make_token("mallory", expires_at=time.time() + 9)

    async with rw.connect(server.url, token_provider=wrong_name_first, reconnect=False) as alice:
        await alice.messaging.enable()
        await anyio.sleep(1.5 * LIFETIME)
        assert alice.connected
        assert calls >= 3  # refused once (TOKEN_REFUSED), then accepted
    assert server.core.stats.refusals.get(Code.TOKEN_REFUSED) == 1


async def test_every_reconnect_takes_a_fresh_token(
    rw: ModuleType, server_task: ServerTask, make_token: Callable[..., str]
) -> None:
    first = await server_task.start()
    provider = Provider(make_token)
    policy = rw.ReconnectPolicy(first_delay=0.02, max_delay=0.1, give_up_after=WAIT)
    async with rw.connect(first.url, token_provider=provider, reconnect=policy) as alice:
        await alice.messaging.enable()
        assert len(provider.calls) == 1
        await server_task.stop()
        await next_event(alice, rw.Disconnected)
        await anyio.sleep(LIFETIME)  # the first token is expired by now
        await server_task.start(port=first.port)
        await next_event(alice, rw.Reconnected)
        assert len(provider.calls) >= 2
        await alice.messaging.broadcast_message(type="t", message={})


async def test_a_token_or_a_provider_is_needed(rw: ModuleType, server: Any) -> None:
    with pytest.raises(TypeError, match="token or a token_provider"):
        async with rw.connect(server.url):
            pass


@pytest.mark.parametrize(
    ("token", "exp"),
    [
        ("not-a-jwt", None),
        ("a.!!!.c", None),
        ("a.bnVsbA.c", None),  # the claims are JSON null
        ("a.eyJleHAiOiAic29vbiJ9.c", None),  # {"exp": "soon"}
        ("a.eyJleHAiOiAxMjN9.c", 123.0),  # {"exp": 123}
    ],
)
def test_token_expiry_reads_exp_or_nothing(token: str, exp: float | None) -> None:
    assert token_expiry(token) == exp
