"""``connect`` and ``serve`` over a transport with no socket (``memory.py``): the client and
server pumps and the session run unchanged over a new transport, on asyncio and trio."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import anyio
import pytest
import roomwire_anyio as rw
from roomwire_anyio import ConnectionClosedError, Disconnected, Reconnected, ReconnectPolicy

from roomwire import Code, ParticipantToken
from roomwire.events import MessageReceived, ParticipantAdded

from . import SECRET
from .memory import MemoryNetwork

pytestmark = pytest.mark.anyio
WAIT = 5.0


def token(name: str) -> str:
    return ParticipantToken(room="main", name=name).to_jwt(SECRET)


async def next_of(room: Any, kind: type, where: Any = lambda _: True) -> Any:
    with anyio.fail_after(WAIT):
        async with aclosing(room.messaging.events()) as events:
            async for event in events:
                if isinstance(event, kind) and where(event):
                    return event
    raise AssertionError(f"no {kind.__name__}")


async def test_messages_and_presence_cross_a_socketless_transport() -> None:
    network = MemoryNetwork()
    async with rw.serve("memory", 0, network=network, secret=SECRET) as server:
        async with (
            rw.connect(server.url, network=network, token=token("alice")) as alice,
            rw.connect(server.url, network=network, token=token("bob")) as bob,
        ):
            with anyio.fail_after(WAIT):
                await alice.messaging.enable()
                await bob.messaging.enable()
            added = await next_of(alice, ParticipantAdded)
            assert added.participant.name == "bob"
            assert server.connection_count == 2
            message_id = await alice.messaging.send_message(
                to=added.participant, type="chat", message={"text": "hi"}, attachment=b"\x01"
            )
            received = await next_of(bob, MessageReceived)
            assert received.message.id == message_id
            assert received.message.attachment == b"\x01"
        with anyio.fail_after(WAIT):
            while server.connection_count:
                await anyio.sleep(0.01)


async def test_a_lost_transport_is_reconnected_and_messaging_restored() -> None:
    network = MemoryNetwork()
    async with rw.serve("memory", 0, network=network, secret=SECRET) as server:
        policy = ReconnectPolicy(first_delay=0.01, max_delay=0.05, give_up_after=WAIT)
        async with (
            rw.connect(
                server.url, network=network, token=token("alice"), reconnect=policy
            ) as alice,
            rw.connect(server.url, network=network, token=token("bob"), reconnect=False) as bob,
        ):
            with anyio.fail_after(WAIT):
                await alice.messaging.enable()
                await alice.set_attributes({"mood": "calm"})
                await bob.messaging.enable()
            assert alice.local_participant is not None
            first_id = alice.local_participant.id
            flicker: list[str] = []
            bob.messaging.on("participant_removed", lambda p: flicker.append(p.id))
            bob.messaging.on("participant_added", lambda p: flicker.append(p.id))
            alice_served = network.listeners[server.port].transports[0]  # the first to dial
            alice_served.abort()  # the server side drops alice
            lost = await next_of(alice, Disconnected)
            assert lost.code is Code.CONNECTION_LOST
            assert lost.reconnecting
            # Resumed (PROTOCOL.md §22): the same participant, attributes and all, enabled
            # again by the server; bob saw it neither leave nor come back.
            back = await next_of(alice, Reconnected)
            assert back.participant.id == first_id
            assert back.participant.attributes == {"mood": "calm"}
            assert back.recovered
            assert alice.messaging.enabled
            mid = await bob.messaging.send_message(to=first_id, type="t", message={})
            got = await next_of(alice, MessageReceived, lambda e: e.message.id == mid)
            assert got.message.from_participant_id == bob.local_participant.id
            assert flicker == []


async def test_a_server_nobody_listens_on_is_a_typed_error() -> None:
    with pytest.raises(ConnectionClosedError) as raised:
        async with rw.connect("tcp://memory:9", network=MemoryNetwork(), token=token("a")):
            pass
    assert raised.value.code is Code.CONNECTION_LOST
