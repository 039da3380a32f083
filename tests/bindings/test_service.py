"""Services over real sockets, on both runtimes (docs/PROTOCOL.md §23): ``room.service``
attaches, decides what users send, speaks as anyone and makes puppets; the policies with no
service; the in-process interceptor, sync or async, that raises."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import attrs
import pytest
from roomwire_anyio import (
    ForbiddenError,
    InterceptedMessage,
    NotFoundError,
    RateLimitedError,
    ServiceError,
)

from roomwire import Code
from roomwire import InterceptedMessage as InProcess
from roomwire.events import MessageReceived, ParticipantAdded, ParticipantRemoved

from . import WAIT, Join, ServerTask, next_event, participant, wait_until

pytestmark = pytest.mark.anyio

SERVICE = {"intercept": True, "hidden": True}


async def next_up(service: Any) -> InterceptedMessage:
    with anyio.fail_after(WAIT):
        async for up in service.service.intercepted():
            return up  # type: ignore[no-any-return]
    raise AssertionError("intercepted() ended")


async def test_attaching_without_the_grant_is_forbidden(join: Join) -> None:
    mallory = await join("mallory")
    with pytest.raises(ForbiddenError) as caught:
        await mallory.service.attach()
    assert caught.value.code is Code.FORBIDDEN_INTERCEPT
    with pytest.raises(ForbiddenError):
        await mallory.service.send(type="chat", message={}, sender="someone")


async def test_the_service_decides_every_message_and_speaks_as_a_puppet(join: Join) -> None:
    svc = await join("svc", enable=False, **SERVICE)
    await svc.service.attach()
    alice, bob = await join("alice"), await join("bob")
    bob_p = await participant(alice, "bob")

    sent = await alice.messaging.send_message(to=bob_p, type="chat", message={"text": "hi"})
    up = await next_up(svc)
    assert (up.id, up.from_participant_id, up.message) == (
        sent,
        alice.local_participant.id,
        {"text": "hi"},
    )
    assert up.recipients == [bob_p.id]
    await svc.service.forward(up, message={"text": "hi lol~"})
    got = (await next_event(bob, MessageReceived)).message
    assert (got.id, got.from_participant_id, got.message) == (
        sent,
        alice.local_participant.id,
        {"text": "hi lol~"},
    )

    await alice.messaging.send_message(to=[], type="chat", message={"text": "create Meow"})
    only = await next_up(svc)
    assert only.recipients == []
    await svc.service.drop(only)

    meow = await svc.service.create_puppet(name="Meow", attributes={"kind": "cat"})
    assert (meow.name, meow.role, meow.attributes) == ("Meow", "puppet", {"kind": "cat"})
    seen = await next_event(bob, ParticipantAdded, lambda e: e.participant.id == meow.id)
    assert seen.participant.role == "puppet"
    said = await svc.service.send(type="chat", message={"text": "cat!"}, sender=meow)
    got = (await next_event(bob, MessageReceived)).message
    assert (got.id, got.from_participant_id, got.message) == (said, meow.id, {"text": "cat!"})
    await svc.service.remove_puppet(meow)
    await next_event(bob, ParticipantRemoved, lambda e: e.participant.id == meow.id)
    with pytest.raises(NotFoundError):
        await svc.service.remove_puppet(meow)


async def test_sending_as_nobody_is_refused_and_absent_recipients_are_skipped(
    join: Join,
) -> None:
    svc = await join("svc", **SERVICE)
    await svc.service.attach()
    bob = await join("bob")
    with pytest.raises(NotFoundError):
        await svc.service.send(type="chat", message={}, sender="nobody")
    me = svc.local_participant.id
    await svc.service.send(
        type="chat", message={"n": 1}, sender=me, recipients=["gone", bob.local_participant]
    )
    got = (await next_event(bob, MessageReceived)).message
    assert (got.from_participant_id, got.message) == (me, {"n": 1})


@pytest.mark.server(rate_limit=20.0, rate_burst=5)
async def test_a_flooding_service_is_rate_limited_like_anyone(join: Join) -> None:
    svc = await join("svc", **SERVICE)
    await svc.service.attach()
    me = svc.local_participant.id

    async def flood() -> None:
        for _ in range(50):
            await svc.service.send(type="chat", message={}, sender=me)

    with pytest.raises(RateLimitedError):
        await flood()


async def test_one_service_per_room_the_first_keeps_it(join: Join) -> None:
    first = await join("svc", **SERVICE)
    await first.service.attach()
    second = await join("svc2", **SERVICE)
    with pytest.raises(ServiceError) as caught:
        await second.service.attach()
    assert caught.value.code is Code.SERVICE_TAKEN


@pytest.mark.server(service_policy="hold")
async def test_with_hold_nothing_is_lost_when_the_service_leaves_mid_decision(
    join: Join,
) -> None:
    alice, bob = await join("alice"), await join("bob")
    await alice.messaging.broadcast_message(type="chat", message={"n": 0})  # held: no service
    first = await join("svc", **SERVICE)
    await first.service.attach()
    assert (await next_up(first)).message == {"n": 0}
    await alice.messaging.broadcast_message(type="chat", message={"n": 1})
    assert (await next_up(first)).message == {"n": 1}
    await first.aclose()  # leaves both undecided
    second = await join("svc2", **SERVICE)
    await second.service.attach()
    for n in (0, 1):
        up = await next_up(second)
        assert up.message == {"n": n}
        await second.service.forward(up)
        got = (await next_event(bob, MessageReceived)).message
        assert got.message == {"n": n}


@pytest.mark.server(service_policy="refuse")
async def test_with_refuse_no_message_passes_without_a_service(join: Join) -> None:
    alice = await join("alice")
    with pytest.raises(ServiceError) as caught:
        await alice.messaging.broadcast_message(type="chat", message={})
    assert caught.value.code is Code.SERVICE_UNAVAILABLE


def _explodes(message: InProcess) -> InProcess:
    if message.type == "boom":
        raise RuntimeError("the operator's bug")
    return message


async def _explodes_later(message: InProcess) -> InProcess:
    await anyio.sleep(0.001)
    return _explodes(message)


@pytest.mark.parametrize(
    "hook",
    [
        pytest.param(_explodes, marks=pytest.mark.server(interceptor=_explodes), id="sync"),
        pytest.param(
            _explodes_later, marks=pytest.mark.server(interceptor=_explodes_later), id="async"
        ),
    ],
)
async def test_an_interceptor_that_raises_refuses_and_keeps_the_connection(
    join: Join, hook: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "roomwire.server")
    alice, bob = await join("alice"), await join("bob")
    with pytest.raises(ServiceError) as caught:
        await alice.messaging.broadcast_message(type="boom", message={})
    assert caught.value.code is Code.INTERCEPTOR_FAILED
    await alice.messaging.broadcast_message(type="chat", message={"ok": True})
    got = (await next_event(bob, MessageReceived)).message
    assert (got.type, got.message) == ("chat", {"ok": True})
    failures = [r for r in caplog.records if "interceptor failed" in r.getMessage()]
    assert len(failures) == 1


async def _lol(message: InProcess) -> InProcess:
    await anyio.sleep(0.001)
    return attrs.evolve(message, message={"text": message.message["text"] + " lol~"})


@pytest.mark.server(interceptor=_lol)
async def test_an_async_interceptor_rewrites_in_order(join: Join) -> None:
    alice, bob = await join("alice"), await join("bob")
    for n in range(5):
        await alice.messaging.broadcast_message(type="chat", message={"text": str(n)}, wait=False)
    texts = [(await next_event(bob, MessageReceived)).message.message["text"] for _ in range(5)]
    assert texts == [f"{n} lol~" for n in range(5)]


async def test_pipelined_decisions_keep_their_order(join: Join) -> None:
    svc = await join("svc", **SERVICE)
    await svc.service.attach()
    alice, bob = await join("alice"), await join("bob")
    bob_p = await participant(alice, "bob")
    for n in range(20):
        await alice.messaging.send_message(to=bob_p, type="chat", message={"n": n}, wait=False)
    for _ in range(20):
        await svc.service.forward(await next_up(svc), wait=False)
    got = [(await next_event(bob, MessageReceived)).message.message["n"] for _ in range(20)]
    assert got == list(range(20))


@pytest.mark.server(service_timeout=0.05)
async def test_a_service_too_slow_to_decide_is_told(join: Join) -> None:
    svc = await join("svc", **SERVICE)
    await svc.service.attach()
    alice, bob = await join("alice"), await join("bob")
    await alice.messaging.broadcast_message(type="chat", message={"late": True})
    up = await next_up(svc)
    got = (await next_event(bob, MessageReceived)).message  # bypass: delivered as asked
    assert got.message == {"late": True}
    await wait_until(lambda: svc.service.timed_out == 1)
    with pytest.raises(ServiceError) as caught:
        await svc.service.forward(up)
    assert caught.value.code is Code.NOT_INTERCEPTED


async def test_a_reconnecting_service_attaches_again(
    rw: Any, server_task: ServerTask, make_token: Any
) -> None:
    first = await server_task.start()
    policy = rw.ReconnectPolicy(first_delay=0.02, max_delay=0.1, give_up_after=WAIT)
    token = make_token("svc", **SERVICE)
    async with rw.connect(first.url, token=token, reconnect=policy) as svc:
        await svc.service.attach()
        async with rw.connect(first.url, token=make_token("bob"), reconnect=False) as bob:
            await bob.messaging.enable()
            await bob.messaging.broadcast_message(type="chat", message={"undecided": True})
            await wait_until(lambda: svc.service.pending == 1)
        await server_task.stop()
        await next_event(svc, rw.Disconnected)
        second = await server_task.start(port=first.port)
        await next_event(svc, rw.Reconnected)
        async with rw.connect(second.url, token=make_token("alice"), reconnect=False) as alice:
            await alice.messaging.enable()
            # The re-attach went out with the re-enable, before alice connected; what the
            # last connection had not decided is gone with it.
            await alice.messaging.broadcast_message(type="chat", message={"back": True})
            up = await next_up(svc)
            assert up.message == {"back": True}
