"""Lifecycle: server shutdown with clients attached, reconnects, and a dead server noticed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from types import ModuleType
from typing import Any

import anyio
import anyio.abc
import pytest

from roomwire import NEED_DATA, Code, RemoteParticipant, RoomServer, ServerConfig
from roomwire.events import (
    MessageReceived,
    MessagingEnabled,
    ParticipantEnabled,
    ParticipantJoined,
    ParticipantRemoved,
)

from . import SECRET, WAIT, ServerTask, drain, next_event, participant

pytestmark = pytest.mark.anyio


def fast_reconnect(rw: ModuleType, give_up_after: float = WAIT) -> Any:
    return rw.ReconnectPolicy(first_delay=0.02, max_delay=0.1, give_up_after=give_up_after)


@asynccontextmanager
async def clients(
    rw: ModuleType, url: str, make_token: Callable[..., str], names: list[str], **options: Any
) -> AsyncIterator[list[Any]]:
    """Connected and enabled clients, closed (in reverse) when the block ends."""
    async with AsyncExitStack() as stack:
        rooms = [
            await stack.enter_async_context(rw.connect(url, token=make_token(n), **options))
            for n in names
        ]
        for room in rooms:
            await room.messaging.enable()
        yield rooms


async def test_server_shutdown_with_clients_attached(
    rw: ModuleType,
    server_task: ServerTask,
    make_token: Callable[..., str],
    record_property: Any,
) -> None:
    server = await server_task.start()
    names = ["alice", "bob", "carol"]
    async with clients(rw, server.url, make_token, names, reconnect=False) as rooms:
        took = await server_task.stop()
        record_property("server_shutdown_took", round(took, 3))
        assert took < 1.0, f"shutdown took {took:.2f} s"
        for room in rooms:
            events = await drain(room)  # ends: nothing hangs
            last = events[-1]
            assert isinstance(last, rw.Disconnected)
            assert (last.code, last.reconnecting) == (Code.GOING_AWAY, False)
            assert last.reason
            assert not room.connected
        with anyio.fail_after(1), pytest.raises(rw.ConnectionClosedError) as caught:
            await rooms[0].messaging.send_message(to="anyone", type="t", message={})
        assert caught.value.code is Code.GOING_AWAY
    assert server.connection_count == 0


async def test_reconnect_to_a_new_server_on_the_same_port(
    rw: ModuleType, server_task: ServerTask, make_token: Callable[..., str]
) -> None:
    first = await server_task.start()
    names = ["alice", "bob"]
    async with clients(rw, first.url, make_token, names, reconnect=fast_reconnect(rw)) as (
        alice,
        bob,
    ):
        old_bob = await participant(alice, "bob")
        old_alice = alice.local_participant
        await bob.set_attributes({"mood": "steady"})  # restored on the new connection
        removed: list[RemoteParticipant] = []
        alice.messaging.on("participant_removed", removed.append)

        await server_task.stop()
        lost = await next_event(alice, rw.Disconnected)
        assert (lost.code, lost.reconnecting) == (Code.GOING_AWAY, True)
        sent_while_down: list[str] = []

        async with anyio.create_task_group() as tg:
            # A send made while the server is down waits for the reconnect, then goes out.
            async def send_while_down() -> None:
                mid = await bob.messaging.broadcast_message(type="t", message={"n": 0})
                sent_while_down.append(mid)

            tg.start_soon(send_while_down)
            second = await server_task.start(port=first.port)
        assert second.url == first.url
        assert len(sent_while_down) == 1

        back = await next_event(alice, object)
        assert isinstance(back, rw.Reconnected)
        assert back.participant == alice.local_participant
        assert back.participant.id != old_alice.id
        # Messaging is re-enabled: a send straight after Reconnected is accepted.
        await alice.messaging.broadcast_message(type="t", message={"hello": "again"})
        assert isinstance(await next_event(alice, object), MessagingEnabled)
        assert alice.messaging.enabled

        new_bob = await participant(alice, "bob")
        assert new_bob.id != old_bob.id
        assert new_bob.attributes == {"mood": "steady"}
        assert alice.messaging.get_participant(old_bob.id) is None
        assert old_bob.id in [p.id for p in removed]  # the presence change was reported
        mid = await alice.messaging.send_message(to=new_bob, type="t", message={"n": 1})
        got = await next_event(bob, MessageReceived, lambda e: e.message.id == mid)
        assert got.message.from_participant_id == alice.local_participant.id


async def test_reconnect_gives_up_when_no_server_comes_back(
    rw: ModuleType, server_task: ServerTask, make_token: Callable[..., str]
) -> None:
    server = await server_task.start()
    policy = fast_reconnect(rw, give_up_after=0.3)
    async with clients(rw, server.url, make_token, ["alice"], reconnect=policy) as (alice,):
        await server_task.stop()
        start = anyio.current_time()
        events = await drain(alice)  # ends once the client gives up
        assert anyio.current_time() - start < 0.3 + 1.0
        assert isinstance(events[0], MessagingEnabled)
        assert [(type(e), e.code, e.reconnecting) for e in events[1:]] == [
            (rw.Disconnected, Code.GOING_AWAY, True),
            (rw.Disconnected, Code.CONNECTION_LOST, False),  # the last attempt's failure
        ]
        with anyio.fail_after(1), pytest.raises(rw.ConnectionClosedError) as caught:
            await alice.messaging.broadcast_message(type="t", message={})
        assert caught.value.code is Code.CONNECTION_LOST


async def test_leaving_connect_while_reconnecting_does_not_hang(
    rw: ModuleType, server_task: ServerTask, make_token: Callable[..., str]
) -> None:
    server = await server_task.start()
    with anyio.fail_after(2):
        async with clients(rw, server.url, make_token, ["alice"], reconnect=fast_reconnect(rw)) as (
            alice,
        ):
            await server_task.stop()
            await next_event(alice, rw.Disconnected)


@asynccontextmanager
async def dead_server(heartbeat: float, *, answer_enable: bool) -> AsyncIterator[str]:
    """A server that runs the real core through the handshake (and the first enable, if
    ``answer_enable``), then goes silent: no pings, no reading, socket left open."""
    core = RoomServer(
        ServerConfig(secret=SECRET, heartbeat_interval=heartbeat, heartbeat_timeout=heartbeat)
    )
    last = ParticipantEnabled if answer_enable else ParticipantJoined
    release = anyio.Event()

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            conn = core.accept(object(), time.time())
            event = conn.next_event(time.time())
            while not isinstance(event, last):
                if event is NEED_DATA:
                    await stream.send(conn.data_to_send())
                    conn.receive_data(await stream.receive())
                event = conn.next_event(time.time())
            await stream.send(conn.data_to_send())  # the last answer, and then nothing, ever
            await release.wait()

    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as listener,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(listener.serve, handle)
        yield f"tcp://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}"
        release.set()
        tg.cancel_scope.cancel()


async def test_client_notices_a_dead_server(
    rw: ModuleType, make_token: Callable[..., str], record_property: Any
) -> None:
    heartbeat = 0.1
    async with (
        dead_server(heartbeat, answer_enable=False) as url,
        rw.connect(url, token=make_token("alice"), reconnect=False) as alice,
    ):
        start = anyio.current_time()
        # enable() is never answered: it fails when the heartbeat timeout closes the link.
        with anyio.fail_after(WAIT), pytest.raises(rw.ConnectionClosedError) as caught:
            await alice.messaging.enable()
        took = anyio.current_time() - start
        events = await drain(alice)
    assert caught.value.code is Code.HEARTBEAT_TIMEOUT
    assert len(events) == 1
    assert (events[0].code, events[0].reconnecting) == (Code.HEARTBEAT_TIMEOUT, False)
    record_property("dead_server_detected_after", round(took, 3))
    print(f"dead server noticed after {took:.3f} s")
    assert 2 * heartbeat - 0.05 <= took <= 2 * heartbeat + 0.3


async def test_send_held_back_by_backpressure_fails_when_the_server_dies(
    rw: ModuleType, make_token: Callable[..., str]
) -> None:
    """The server stops reading: the socket buffers fill, then max_pending_bytes holds the
    sender back; when the heartbeat timeout ends the link, that sender gets an error."""
    blob = bytes(500_000)
    async with (
        dead_server(0.1, answer_enable=True) as url,
        rw.connect(
            url, token=make_token("alice"), reconnect=False, max_pending_bytes=64 * 1024
        ) as alice,
    ):
        await alice.messaging.enable()

        async def flood() -> None:
            for _ in range(1000):  # far more than loopback socket buffers hold
                await alice.messaging.send_message(
                    to="anyone", type="t", message={}, attachment=blob, wait=False
                )

        with anyio.fail_after(WAIT), pytest.raises(rw.ConnectionClosedError):
            await flood()
        events = await drain(alice)
    assert [(type(e), e.code) for e in events[-1:]] == [(rw.Disconnected, Code.HEARTBEAT_TIMEOUT)]


async def test_a_cancelled_connect_block_still_closes_cleanly(
    rw: ModuleType, join: Any, make_token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="roomwire.server")
    watcher = await join("watcher")
    server_url = watcher.url
    with anyio.move_on_after(0.2):
        async with rw.connect(server_url, token=make_token("leaver")) as leaver:
            await leaver.messaging.enable()
            await anyio.sleep_forever()
    gone = await next_event(watcher, ParticipantRemoved)
    assert gone.participant.name == "leaver"
    closes = [r.getMessage() for r in caplog.records if "closed (" in r.getMessage()]
    assert any("closed (NORMAL) client closing" in line for line in closes), closes


async def test_a_cancelled_serve_block_still_says_going_away(
    rw: ModuleType, make_token: Callable[..., str]
) -> None:
    ready = anyio.Event()
    urls: list[str] = []

    async def run_server() -> None:
        with anyio.move_on_after(0.3):
            async with rw.serve("127.0.0.1", 0, secret=SECRET) as server:
                urls.append(server.url)
                ready.set()
                await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_server)
        await ready.wait()
        async with rw.connect(urls[0], token=make_token("alice"), reconnect=False) as alice:
            await alice.messaging.enable()
            lost = await next_event(alice, rw.Disconnected)
    assert (lost.code, lost.reconnecting) == (Code.GOING_AWAY, False)
