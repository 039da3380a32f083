"""Participant RPC between two nodes on one real Redis: a request, an application error, a
cancel by timeout (the callee's handler is cancelled) and a callee that leaves (the caller
fails at once). Streams stay on one node in this version: across nodes, NOT_FOUND."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import roomwire_asyncio as rw

from roomwire import Code, RoomMessage

from ..bindings import participant
from .conftest import Join, Node

pytestmark = pytest.mark.anyio


async def test_requests_cross_nodes(node: Node, join: Join) -> None:
    n1, n2 = await node("n1"), await node("n2")
    alice, bob = await join(n1.url, "alice"), await join(n2.url, "bob")
    cancelled = anyio.Event()

    async def add(request: RoomMessage) -> tuple[dict[str, Any], bytes | None]:
        return {"sum": request.message["a"] + request.message["b"]}, request.attachment

    async def refuse(request: RoomMessage) -> dict[str, Any]:
        raise rw.RequestError(42, "no")

    async def hang(request: RoomMessage) -> dict[str, Any]:
        try:
            await anyio.sleep(60)
        finally:
            cancelled.set()
        return {}

    for type_, handler in (("add", add), ("refuse", refuse), ("hang", hang)):
        bob.messaging.on_request(type_, handler)
    bob_p = await participant(alice, "bob")
    with anyio.fail_after(10):
        reply = await alice.messaging.request(
            to=bob_p, type="add", message={"a": 2, "b": 3}, attachment=b"\x07"
        )
        assert (reply.message, reply.attachment) == ({"sum": 5}, b"\x07")
        assert reply.from_participant_id == bob_p.id
        with pytest.raises(rw.RequestError) as caught:
            await alice.messaging.request(to=bob_p, type="refuse", message={})
        assert (caught.value.code, caught.value.reason) == (42, "no")
        with pytest.raises(rw.NoHandlerError):
            await alice.messaging.request(to=bob_p, type="none", message={})
        with pytest.raises(rw.RequestTimeoutError):
            await alice.messaging.request(to=bob_p, type="hang", message={}, timeout=0.3)
        await cancelled.wait()  # the cancel crossed the backplane
        with pytest.raises(rw.NotFoundError):  # streams do not cross nodes
            await alice.messaging.create_stream(to=bob_p)


async def test_a_callee_on_another_node_that_leaves_fails_the_call_at_once(
    node: Node, join: Join
) -> None:
    n1, n2 = await node("n1"), await node("n2")
    alice, bob = await join(n1.url, "alice"), await join(n2.url, "bob")
    started = anyio.Event()

    async def hang(request: RoomMessage) -> dict[str, Any]:
        started.set()
        await anyio.sleep(60)
        return {}

    bob.messaging.on_request("hang", hang)
    bob_p = await participant(alice, "bob")
    failed: list[rw.RoomError] = []

    async def call() -> None:
        try:
            await alice.messaging.request(to=bob_p, type="hang", message={}, timeout=30)
        except rw.RoomError as exc:
            failed.append(exc)

    with anyio.fail_after(10):  # far under the call's 30 s timeout
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await started.wait()
            await bob.messaging.disable()
    (error,) = failed
    assert isinstance(error, rw.NotFoundError)
    assert error.code is Code.CALLEE_LEFT
