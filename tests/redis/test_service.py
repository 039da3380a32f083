"""Services across Redis nodes (docs/PROTOCOL.md §23.6): a service attached on one node serves
the users of every node (rewrites, service-only sends, puppets, greetings on a join); one
service per room holds cluster-wide; with ``hold`` nothing is lost when the service leaves,
whichever node the next one attaches on, its node is killed, or the backplane is lost."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
import roomwire_asyncio
from roomwire_anyio import demo_service
from roomwire_asyncio import InterceptedMessage, RoomClient, ServiceError

from roomwire import Code, ParticipantToken, RemoteParticipant
from roomwire.events import MessageReceived, ParticipantAdded, ParticipantRemoved

from ..bindings import next_event, participant, wait_until
from . import SECRET, WAIT, NodeProcess, RedisServer
from .conftest import Join, Node

pytestmark = pytest.mark.anyio

SERVICE = {"intercept": True, "hidden": True}


async def next_up(service: RoomClient) -> InterceptedMessage:
    with anyio.fail_after(WAIT):
        async for up in service.service.intercepted():
            return up
    raise AssertionError("intercepted() ended")


async def text_of(room: RoomClient) -> str:
    text: str = (await next_event(room, MessageReceived)).message.message["text"]
    return text


async def known_everywhere(service: RoomClient, *watchers: RoomClient) -> RemoteParticipant:
    """A puppet of ``service``, once every watcher's node lists it: its ``join`` record came
    after the service's claim, so those nodes know where the service is."""
    puppet = await service.service.create_puppet(name="Meow", attributes={"kind": "cat"})
    for watcher in watchers:
        await participant(watcher, "Meow")
    return puppet


async def test_a_service_on_one_node_serves_the_users_of_both(node: Node, join: Join) -> None:
    n1, n2 = await node("n1"), await node("n2")
    svc = await join(n1.url, "svc", **SERVICE)
    await svc.service.attach()
    alice = await join(n1.url, "alice")
    bob, carol = await join(n2.url, "bob"), await join(n2.url, "carol")
    meow = await known_everywhere(svc, alice, bob, carol)
    seen = await participant(bob, "Meow")
    assert (seen.id, seen.role) == (meow.id, "puppet")

    # The " lol~" rewrite of a broadcast from n2 reaches everyone else, once.
    sent = await bob.messaging.broadcast_message(type="chat", message={"text": "hi"})
    up = await next_up(svc)
    assert (up.id, up.from_participant_id, up.recipients) == (sent, bob.local_participant.id, None)
    await svc.service.forward(up, message={"text": up.message["text"] + " lol~"})
    for room in (alice, carol):
        assert await text_of(room) == "hi lol~"

    # To the service only, from n2: the service gets it; the puppet answers bob alone.
    await bob.messaging.send_message(to=[], type="chat", message={"text": "my cat"})
    only = await next_up(svc)
    assert (only.recipients, only.message) == ([], {"text": "my cat"})
    await svc.service.drop(only)
    await svc.service.send(
        type="chat", message={"text": "meow"}, sender=meow, recipients=[bob.local_participant]
    )
    got = (await next_event(bob, MessageReceived)).message
    assert (got.from_participant_id, got.message) == (meow.id, {"text": "meow"})

    # A join on n2 is seen by the service on n1, which greets the newcomer there.
    dave = await join(n2.url, "dave")
    joined = await next_event(svc, ParticipantAdded, lambda e: e.participant.name == "dave")
    await svc.service.send(
        type="chat",
        message={"text": "welcome dave"},
        sender=meow,
        recipients=[joined.participant.id],
    )
    assert await text_of(dave) == "welcome dave"
    # Everyone got each message once: the next one each reads is the next one sent.
    await alice.messaging.broadcast_message(type="chat", message={"text": "last"})
    last = await next_up(svc)
    await svc.service.forward(last)
    for room in (bob, carol, dave):
        assert await text_of(room) == "last"


async def test_a_second_service_on_another_node_is_refused(node: Node, join: Join) -> None:
    n1, n2 = await node("n1"), await node("n2")
    first = await join(n1.url, "svc", **SERVICE)
    await first.service.attach()
    second = await join(n2.url, "svc2", **SERVICE)
    watcher = await join(n2.url, "bob")
    await known_everywhere(first, watcher)
    with pytest.raises(ServiceError) as caught:
        await second.service.attach()
    assert caught.value.code is Code.SERVICE_TAKEN


@pytest.mark.parametrize("again_on", ["n1", "n2"])
async def test_with_hold_a_departed_service_loses_nothing(
    node: Node, join: Join, again_on: str
) -> None:
    nodes = {"n1": await node("n1", service_policy="hold")}
    nodes["n2"] = await node("n2", service_policy="hold")
    first = await join(nodes["n1"].url, "svc", **SERVICE)
    await first.service.attach()
    alice = await join(nodes["n1"].url, "alice")
    bob = await join(nodes["n2"].url, "bob")
    await known_everywhere(first, bob)
    await bob.messaging.broadcast_message(type="chat", message={"text": "one"})
    assert (await next_up(first)).message == {"text": "one"}
    await first.aclose()  # "one" undecided: back to n2, held there
    await bob.messaging.broadcast_message(type="chat", message={"text": "two"})
    await alice.messaging.broadcast_message(type="chat", message={"text": "three"})
    again = await join(nodes[again_on].url, "svc2", **SERVICE)
    await again.service.attach()
    ups: list[Any] = []
    for _ in range(3):
        up = await next_up(again)
        ups.append(up.message["text"])
        await again.service.forward(up)
    # Each node's held messages come in their order (which node's first depends on where
    # the service attached: its own node hands over first).
    assert ups.index("one") < ups.index("two")
    assert sorted(ups) == ["one", "three", "two"]
    assert [await text_of(alice) for _ in range(2)] == ["one", "two"]
    assert await text_of(bob) == "three"


async def test_the_service_node_killed_leaves_the_messages_to_hold(
    node: Node, join: Join, spawn: Callable[..., NodeProcess]
) -> None:
    n1 = spawn("n1", service_policy="hold")
    n2 = await node("n2", service_policy="hold")
    svc = await join(n1.url, "svc", **SERVICE)
    await svc.service.attach()
    bob, carol = await join(n2.url, "bob"), await join(n2.url, "carol")
    await known_everywhere(svc, bob)
    await bob.messaging.broadcast_message(type="chat", message={"text": "one"})
    assert (await next_up(svc)).message == {"text": "one"}
    n1.kill()  # undecided, its node gone without a word
    await next_event(bob, ParticipantRemoved, lambda e: e.participant.name == "Meow")
    again = await join(n2.url, "svc2", **SERVICE)  # n2 heard n1 go silent: no holder
    await again.service.attach()
    up = await next_up(again)
    assert up.message == {"text": "one"}
    await again.service.forward(up)
    assert await text_of(carol) == "one"


async def test_a_lost_backplane_holds_messages_until_it_is_back(
    node: Node, join: Join, redis: RedisServer
) -> None:
    n1 = await node("n1", service_policy="hold")
    n2 = await node("n2", service_policy="hold")
    svc = await join(n1.url, "svc", **SERVICE)
    await svc.service.attach()
    alice, bob = await join(n1.url, "alice"), await join(n2.url, "bob")
    await known_everywhere(svc, bob)
    redis.stop()
    await wait_until(lambda: not n1.backplane_healthy and not n2.backplane_healthy)
    # Alone, each node serves its own: alice's message reaches the service at once, bob's
    # is held on n2 (its node cannot reach the service).
    await alice.messaging.broadcast_message(type="chat", message={"text": "from n1"})
    assert (await next_up(svc)).message == {"text": "from n1"}
    await bob.messaging.broadcast_message(type="chat", message={"text": "from n2"})
    redis.start()
    # Restored, n2 syncs the room, n1 claims it again, and n2 hands over what it held.
    up = await next_up(svc)
    assert up.message == {"text": "from n2"}
    await svc.service.forward(up)
    assert await text_of(alice) == "from n2"


async def test_the_moobius_tutorial_with_its_service_on_another_node(
    node: Node, join: Join
) -> None:
    """The tutorial's service (examples/moobius_service.py) on n1; bob on n2, alice on n1."""
    n1, n2 = await node("n1"), await node("n2")
    token = ParticipantToken(room="channel", name="svc", intercept=True, hidden=True)
    # Connected (not enabled) before the task group: their contexts outlive it.
    bob_room = await join(n2.url, "bob", room="channel", enable=False)
    alice_room = await join(n1.url, "alice", room="channel", enable=False)
    bob, alice = demo_service.User("bob", bob_room), demo_service.User("alice", alice_room)
    async with anyio.create_task_group() as tg:
        ready = anyio.Event()
        tg.start_soon(demo_service.service, roomwire_asyncio, n1.url, token.to_jwt(SECRET), ready)
        with anyio.fail_after(WAIT):
            await ready.wait()
            await bob_room.messaging.enable()
            await bob.heard("Welcome, bob!")  # greeted from n1 on a join at n2
            await alice_room.messaging.enable()
            await bob.heard("Welcome, alice!")
            await bob_room.messaging.broadcast_message(
                type="chat", message={"text": "my cat says hi"}
            )
            await alice.heard("my cat says hi lol~")
            await alice.heard("meow? I heard cat!")
            await bob.heard("meow? I heard cat!")
            await bob_room.messaging.send_message(
                to=[], type="chat", message={"text": "create Tom"}
            )
            await participant(alice_room, "Tom")  # a puppet made for a user of n2, seen on n1
        tg.cancel_scope.cancel()
    assert "my cat says hi" not in alice._seen  # only the rewrite reached alice
