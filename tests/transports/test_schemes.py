"""The happy paths: presence, a direct message with an attachment and a broadcast over each
of tcp://, tls://, ws:// and wss://, and rooms mixing the schemes."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from types import ModuleType
from typing import Any

import anyio
import pytest

from roomwire.events import MessageReceived
from tests.bindings import WAIT, next_event, participant

pytestmark = pytest.mark.anyio

SCHEMES = ["tcp", "tls", "ws", "wss"]


def url_of(server: Any, scheme: str) -> str:
    (url,) = [u for u in server.urls if u.startswith(f"{scheme}://")]
    return url


@pytest.fixture
async def join_over(
    rw: ModuleType, server: Any, make_token: Callable[..., str], client_ssl: ssl.SSLContext
) -> AsyncIterator[Callable[..., Any]]:
    """``await join_over("ws", "alice")``: a client on that scheme's listener, enabled."""
    async with AsyncExitStack() as stack:

        async def join(scheme: str, name: str) -> Any:
            client = await stack.enter_async_context(
                rw.connect(
                    url_of(server, scheme),
                    token=make_token(name),
                    ssl=client_ssl,
                    reconnect=False,
                )
            )
            with anyio.fail_after(WAIT):
                await client.messaging.enable()
            return client

        yield join


async def test_server_urls_resolve_every_port(server: Any) -> None:
    assert [u.split("://")[0] for u in server.urls] == SCHEMES
    ports = [int(u.rsplit(":", 1)[1].rstrip("/")) for u in server.urls]
    assert 0 not in ports
    assert len(set(ports)) == 4
    assert server.url == server.urls[0]
    assert (server.host, server.port) == ("127.0.0.1", ports[0])
    assert server.urls[2].endswith("/")


async def exchange(alice: Any, bob: Any) -> None:
    """Presence both ways, a DM with a binary attachment both ways, a broadcast."""
    seen_bob = await participant(alice, "bob")
    assert seen_bob == bob.local_participant
    assert alice.messaging.get_participant_by_name("bob") == bob.local_participant
    assert bob.messaging.get_participant_by_name("alice") == alice.local_participant
    blob = bytes(range(256)) * 40
    for sender, receiver in ((alice, bob), (bob, alice)):
        mid = await sender.messaging.send_message(
            to=receiver.local_participant, type="dm", message={"n": 1}, attachment=blob
        )
        got = await next_event(receiver, MessageReceived)
        assert (got.message.id, got.message.attachment, got.message.broadcast) == (mid, blob, False)
        assert got.message.from_participant_id == sender.local_participant.id
    mid = await alice.messaging.broadcast_message(type="all", message={"hi": "room"})
    got = await next_event(bob, MessageReceived)
    assert (got.message.id, got.message.message, got.message.broadcast) == (
        mid,
        {"hi": "room"},
        True,
    )


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_presence_dm_and_broadcast(join_over: Callable[..., Any], scheme: str) -> None:
    alice = await join_over(scheme, "alice")
    bob = await join_over(scheme, "bob")
    await exchange(alice, bob)


@pytest.mark.parametrize("other", ["ws", "wss", "tls"])
async def test_mixed_room_with_a_tcp_client(join_over: Callable[..., Any], other: str) -> None:
    alice = await join_over("tcp", "alice")
    bob = await join_over(other, "bob")
    await exchange(alice, bob)
