"""Two and three nodes on one Redis: every message kind, presence and ordering across nodes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from roomwire_asyncio import serve
from roomwire_asyncio._redis import _split

from roomwire.events import (
    MessageReceived,
    ParticipantAdded,
    ParticipantRemoved,
    ParticipantUpdated,
)

from ..bindings import collect, next_event, participant, wait_until
from ..cli.conftest import cli_env
from . import SECRET, WAIT, RedisServer
from .conftest import Join, Node

pytestmark = pytest.mark.anyio


async def names(room: Any, expected: set[str]) -> None:
    """Wait until ``room``'s presence view is exactly ``expected`` (by name)."""

    def view() -> set[str]:
        return {p.name for p in room.messaging.remote_participants}

    await wait_until(lambda: view() == expected, timeout=WAIT)


async def test_every_message_kind_and_presence_cross_two_nodes(node: Node, join: Join) -> None:
    n1, n2 = await node("n1"), await node("n2")
    assert n1.backplane_healthy is n2.backplane_healthy is True
    alice = await join(n1.url, "alice")
    bob = await join(n2.url, "bob")
    carol = await join(n2.url, "carol")
    await names(alice, {"bob", "carol"})
    await names(bob, {"alice", "carol"})
    bob_p, carol_p = await participant(alice, "bob"), await participant(alice, "carol")

    # Direct, with an attachment.
    await alice.messaging.send_message(
        to=bob_p, type="chat", message={"text": "hi"}, attachment=b"\x00\x01"
    )
    got = await next_event(bob, MessageReceived)
    assert (got.message.type, got.message.message, got.message.attachment) == (
        "chat",
        {"text": "hi"},
        b"\x00\x01",
    )
    assert got.message.from_participant_id == alice.local_participant.id  # type: ignore[union-attr]
    assert got.message.broadcast is False
    # Multi-recipient.
    await alice.messaging.send_message(to=[bob_p, carol_p], type="multi", message={"n": 2})
    for room in (bob, carol):
        got = await next_event(room, MessageReceived)
        assert (got.message.type, got.message.broadcast) == ("multi", False)
    # Broadcast, from the other side, to a local and a remote recipient.
    await bob.messaging.broadcast_message(type="news", message={"n": 3})
    for room in (alice, carol):
        got = await next_event(room, MessageReceived)
        assert (got.message.type, got.message.broadcast) == ("news", True)

    # Attributes and departures cross too.
    await bob.set_attributes({"mood": "busy"})
    updated = await next_event(alice, ParticipantUpdated)
    assert (updated.participant.name, updated.participant.attributes) == ("bob", {"mood": "busy"})
    await carol.messaging.disable()
    removed = await next_event(alice, ParticipantRemoved)
    assert removed.participant.name == "carol"
    await names(alice, {"bob"})
    await names(bob, {"alice"})


async def test_a_late_node_gets_the_full_snapshot(node: Node, join: Join) -> None:
    n1 = await node("n1")
    alice = await join(n1.url, "alice")
    await alice.set_attributes({"k": 1})
    n2 = await node("n2")  # started after alice enabled: it asks for presence
    bob = await join(n2.url, "bob")
    await names(bob, {"alice"})
    assert (await participant(bob, "alice")).attributes == {"k": 1}
    added = await next_event(alice, ParticipantAdded)
    assert added.participant.name == "bob"


async def test_rooms_are_kept_apart(node: Node, join: Join) -> None:
    n1, n2 = await node("n1"), await node("n2")
    alice = await join(n1.url, "alice", room="a")
    bob = await join(n2.url, "bob", room="b")
    dave = await join(n2.url, "dave", room="a")
    await names(alice, {"dave"})
    await names(bob, set())
    await alice.messaging.broadcast_message(type="only-a", message={})
    assert (await next_event(dave, MessageReceived)).message.type == "only-a"
    with anyio.move_on_after(0.3):
        await next_event(bob, MessageReceived)
        raise AssertionError("a message crossed rooms")


async def test_one_order_for_every_participant_on_three_nodes(node: Node, join: Join) -> None:
    nodes = [await node(f"n{i}") for i in (1, 2, 3)]
    rooms = [await join(n.url, f"p{i}") for i, n in enumerate(nodes)]
    for room in rooms:
        await names(room, {f"p{i}" for i in range(3)} - {room.local_participant.name})  # type: ignore[union-attr]
    count = 200

    async def blast(index: int) -> None:
        for k in range(count):
            await rooms[index].messaging.broadcast_message(
                type="seq", message={"s": index, "k": k}, wait=False
            )

    async with anyio.create_task_group() as tg:
        for index in range(3):
            tg.start_soon(blast, index)
    seen = [[e.message for e in await collect(room, 2 * count, MessageReceived)] for room in rooms]
    for index, messages in enumerate(seen):
        # Per-sender order, nothing lost.
        for sender in set(range(3)) - {index}:
            ks = [m.message["k"] for m in messages if m.message["s"] == sender]
            assert ks == list(range(count))
        # Increasing seq on each connection.
        seqs = [m.seq for m in messages]
        assert seqs == sorted(seqs)
    # One room order: any two participants see the messages they share in the same order.
    ids = [[m.id for m in messages] for messages in seen]
    for a in range(3):
        for b in range(a + 1, 3):
            shared = set(ids[a]) & set(ids[b])
            assert [i for i in ids[a] if i in shared] == [i for i in ids[b] if i in shared]


async def test_a_node_publishes_in_pipelines_on_one_subscription_per_room(
    node: Node, join: Join, redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    n1, n2 = await node("n1"), await node("n2")
    alice = await join(n1.url, "alice")
    bob = await join(n2.url, "bob")
    await join(n2.url, "carol")
    await names(alice, {"bob", "carol"})
    pipelines: list[int] = []
    execute = Pipeline.execute

    async def counted(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        # Records in this pipeline: each PUBLISH carries a channel's records of the turn.
        pipelines.append(sum(len(_split(command[0][2])) for command in self.command_stack))
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", counted)
    async with Redis.from_url(redis.url) as client:
        numsub = await client.pubsub_numsub("roomwire:room:main")
        assert numsub == [(b"roomwire:room:main", 2)]  # one per node, not per participant
    for k in range(300):
        await alice.messaging.broadcast_message(type="x", message={"k": k}, wait=False)
    await collect(bob, 300, MessageReceived)
    # Records of a loop turn go out together: far fewer pipelines than messages.
    assert sum(pipelines) >= 300
    assert len(pipelines) < 100, pipelines


def test_serve_with_redis_needs_asyncio() -> None:
    import roomwire_trio  # noqa: PLC0415 - only this test needs trio's binding
    import trio  # noqa: PLC0415

    async def main() -> None:
        async with roomwire_trio.serve(port=0, secret="s" * 32, redis="redis://127.0.0.1:1/0"):
            raise AssertionError("served")

    with pytest.raises(RuntimeError, match="asyncio"):
        trio.run(main)


async def test_the_cli_serves_a_node(node: Node, join: Join, redis: RedisServer) -> None:
    command = [sys.executable, "-m", "roomwire_asyncio", "serve", "--port", "0"]
    command += ["--secret", SECRET, "--redis", redis.url, "--node-id", "cli-node"]
    command += ["--backplane-ttl", "1", "--probe-interval", "0.5"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=cli_env()
    )
    try:
        assert process.stdout is not None
        with anyio.fail_after(WAIT):
            line = await anyio.to_thread.run_sync(process.stdout.readline)
        url = line.decode().split()[-1]
        n2 = await node("n2")
        alice = await join(url, "alice")
        bob = await join(n2.url, "bob")
        await names(alice, {"bob"})
        await bob.messaging.broadcast_message(type="hi", message={})
        assert (await next_event(alice, MessageReceived)).message.type == "hi"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=WAIT)
        if process.stdout is not None:
            process.stdout.close()


async def test_a_node_id_without_redis_is_refused() -> None:
    with pytest.raises(TypeError, match="redis"):
        async with serve(port=0, secret=SECRET, node_id="alone"):
            raise AssertionError("served")
