"""Idempotent sends over real sockets, both runtimes (docs/PROTOCOL.md §26): a loopback TCP
proxy between the sender and the server cuts the sender's connection before or after the
server got a send; the binding reconnects, re-sends with the same key, and the receiver gets
exactly one copy. Recipient counts reach the caller through ``receipt=True``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.abc import SocketAttribute

from roomwire import Code
from roomwire.events import MessageReceived

from . import WAIT, Join, next_event, participant, wait_until


class CuttingProxy:
    """A loopback TCP proxy to the server that can drop either direction's bytes and sever
    every connection it carries (the client sees the connection end)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.drop_to_client = False
        self.drop_to_server = False
        self.refuse = False
        self.port = 0
        self.connections = 0
        self.dropped = 0
        """Bytes dropped so far."""
        self._scopes: list[anyio.CancelScope] = []

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            if self.refuse:
                return
            self.connections += 1
            async with await anyio.connect_tcp("127.0.0.1", self.target_port) as server:
                with anyio.CancelScope() as scope:
                    self._scopes.append(scope)
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._pipe, client, server, False, tg.cancel_scope)
                        tg.start_soon(self._pipe, server, client, True, tg.cancel_scope)

    async def _pipe(
        self,
        source: anyio.abc.SocketStream,
        sink: anyio.abc.SocketStream,
        to_client: bool,
        both: anyio.CancelScope,
    ) -> None:
        try:
            async for chunk in source:
                if self.drop_to_client if to_client else self.drop_to_server:
                    self.dropped += len(chunk)
                else:
                    await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        both.cancel()  # one side ended: end the other

    def sever(self) -> None:
        """End every connection carried so far."""
        scopes, self._scopes = self._scopes, []
        for scope in scopes:
            scope.cancel()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, self._handle)
            yield f"tcp://127.0.0.1:{self.port}"
            tg.cancel_scope.cancel()


@asynccontextmanager
async def through_proxy(
    rw: ModuleType, server: Any, make_token: Callable[..., str], name: str, **policy: float
) -> AsyncIterator[tuple[CuttingProxy, Any]]:
    """A reconnecting, enabled client ``name`` connected through a ``CuttingProxy``."""
    proxy = CuttingProxy(int(server.url.rsplit(":", 1)[1]))
    reconnect = rw.ReconnectPolicy(first_delay=0.01, max_delay=0.05, **policy)
    async with (
        proxy.running() as url,
        rw.connect(url, token=make_token(name), reconnect=reconnect) as client,
    ):
        with anyio.fail_after(WAIT):
            await client.messaging.enable()
        yield proxy, client


async def only_copy(receiver: Any, sender: Any, first: MessageReceived) -> None:
    """Nothing but a marker sent afterwards follows ``first``: one copy was delivered."""
    await sender.messaging.broadcast_message(type="marker", message={})
    after = await next_event(receiver, MessageReceived)
    assert after.message.type == "marker", (first, after)


async def test_a_send_acked_into_a_cut_is_resent_and_delivered_once(
    rw: ModuleType, server: Any, join: Join, make_token: Callable[..., str]
) -> None:
    bob = await join("bob")
    async with through_proxy(rw, server, make_token, "alice") as (proxy, alice):
        to = (await participant(alice, "bob")).id
        proxy.drop_to_client = True  # the server gets the send; its ack never arrives
        outcome: list[Any] = []

        async def send() -> None:
            outcome.append(
                await alice.messaging.send_message(
                    to=to, type="chat", message={"n": 1}, receipt=True
                )
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(send)
            delivered = await next_event(bob, MessageReceived)
            assert outcome == []  # the ack was swallowed by the proxy
            proxy.drop_to_client = False
            proxy.sever()
        [receipt] = outcome
        assert (receipt.message_id, receipt.recipients) == (delivered.message.id, 1)
        assert receipt.duplicate  # the server had it: the re-send was acked, not delivered
        assert proxy.connections == 2
        await only_copy(bob, alice, delivered)


async def test_a_send_cut_before_the_server_got_it_is_delivered_once_after_the_reconnect(
    rw: ModuleType, server: Any, join: Join, make_token: Callable[..., str]
) -> None:
    bob = await join("bob")
    async with through_proxy(rw, server, make_token, "alice") as (proxy, alice):
        proxy.drop_to_server = True  # the send never reaches the server
        outcome: list[Any] = []

        async def send() -> None:
            outcome.append(
                await alice.messaging.broadcast_message(type="chat", message={}, receipt=True)
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(send)
            await wait_until(lambda: proxy.dropped > 0)  # the send went into the proxy
            assert outcome == []
            assert server.core.stats.messages_routed == 0
            proxy.drop_to_server = False
            proxy.sever()
        [receipt] = outcome
        assert (receipt.recipients, receipt.duplicate) == (1, False)
        delivered = await next_event(bob, MessageReceived)
        assert delivered.message.id == receipt.message_id
        await only_copy(bob, alice, delivered)


async def test_a_send_fails_when_the_reconnect_gives_up(
    rw: ModuleType, server: Any, join: Join, make_token: Callable[..., str]
) -> None:
    await join("bob")
    async with through_proxy(rw, server, make_token, "alice", give_up_after=0.3) as (
        proxy,
        alice,
    ):
        proxy.drop_to_client = proxy.refuse = True  # the ack is lost, no reconnect gets in
        failures: list[Exception] = []

        async def send() -> None:
            try:
                await alice.messaging.broadcast_message(type="chat", message={})
            except rw.ConnectionClosedError as exc:
                failures.append(exc)

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(send)
                await wait_until(lambda: proxy.dropped > 0)
                proxy.sever()
        [failure] = failures
        assert "could not reconnect" in failure.reason


async def test_a_caller_chosen_key_is_delivered_once(rw: ModuleType, join: Join) -> None:
    bob, alice = await join("bob"), await join("alice")
    await participant(alice, "bob")
    first = await alice.messaging.broadcast_message(
        type="chat", message={}, idempotency_key="order-17", receipt=True
    )
    again = await alice.messaging.broadcast_message(
        type="chat", message={}, idempotency_key="order-17", receipt=True
    )
    assert (again.message_id, again.recipients, again.duplicate) == (first.message_id, 1, True)
    assert not first.duplicate
    delivered = await next_event(bob, MessageReceived)
    assert delivered.message.id == first.message_id
    await only_copy(bob, alice, delivered)
    with pytest.raises(rw.InvalidRequestError):
        await alice.messaging.broadcast_message(type="chat", message={}, idempotency_key="k" * 65)


async def test_receipts_count_recipients_the_sender_not_counted(rw: ModuleType, join: Join) -> None:
    alice = await join("alice")
    alone = await alice.messaging.broadcast_message(type="chat", message={}, receipt=True)
    assert alone.recipients == 0
    others = [await join(name) for name in ("bob", "carol", "dave")]
    ids = [(await participant(alice, name)).id for name in ("bob", "carol", "dave")]
    me = alice.local_participant.id
    counts = [
        (await alice.messaging.send_message(to=ids[0], type="t", message={}, receipt=True)),
        (await alice.messaging.send_message(to=[ids[0], me], type="t", message={}, receipt=True)),
        (await alice.messaging.send_message(to=ids, type="t", message={}, receipt=True)),
        (await alice.messaging.broadcast_message(type="t", message={}, receipt=True)),
    ]
    assert [c.recipients for c in counts] == [1, 1, 3, 3]
    # Without receipt=True the answer is still the message id, as before.
    mid = await alice.messaging.broadcast_message(type="t", message={})
    assert isinstance(mid, str)
    assert len(others) == 3


async def test_a_wait_false_send_refused_after_a_resend_names_its_first_request_id(
    rw: ModuleType, server: Any, join: Join, make_token: Callable[..., str]
) -> None:
    bob = await join("bob")
    async with through_proxy(rw, server, make_token, "alice") as (proxy, alice):
        to = (await participant(alice, "bob")).id
        proxy.drop_to_server = True
        rid = await alice.messaging.send_message(to=to, type="chat", message={}, wait=False)
        await wait_until(lambda: proxy.dropped > 0)
        await bob.aclose()  # the recipient leaves before the re-send: NOT_FOUND
        await wait_until(lambda: not server.core.participants("main")[1:])
        proxy.drop_to_server = False
        proxy.sever()
        failed = await next_event(alice, rw.SendFailed)
        assert (failed.request_id, failed.code) == (rid, Code.NOT_FOUND)
