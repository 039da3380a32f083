"""connect / enable / disable, the participant lookups, and every way connect() is refused."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import anyio
import pytest

from roomwire import ClientConfig, Code
from roomwire.events import MessagingDisabled, MessagingEnabled, ParticipantRemoved

from . import SECRET, Join, next_event, wait_until

pytestmark = pytest.mark.anyio


async def test_server_url_names_the_bound_port(server: Any, rw: ModuleType) -> None:
    assert server.port > 0
    assert server.url == f"tcp://127.0.0.1:{server.port}"
    assert rw.parse_url(server.url) == ("127.0.0.1", server.port)


async def test_connect_enable_lookups_disable(join: Join) -> None:
    alice = await join("alice", role="agent")
    me = alice.local_participant
    assert (me.name, me.role, me.attributes) == ("alice", "agent", {})
    assert me.id
    assert alice.room == "main"
    assert alice.messaging.enabled
    assert alice.messaging.remote_participants == []

    bob = await join("bob", enable=False)
    assert bob.local_participant.id != me.id
    assert not bob.messaging.enabled
    # Nothing is visible before enable; enable() returns once the snapshot is in.
    assert bob.messaging.get_participant(me.id) is None
    await bob.messaging.enable()
    assert bob.messaging.remote_participants == [me]
    assert bob.messaging.get_participant(me.id) == me
    assert bob.messaging.get_participant_by_name("alice") == me
    assert bob.messaging.get_participant("no-such-id") is None
    assert bob.messaging.get_participant_by_name("nobody") is None

    await bob.messaging.disable()
    assert not bob.messaging.enabled
    assert bob.messaging.remote_participants == []
    assert bob.messaging.get_participant_by_name("alice") is None
    gone = await next_event(alice, ParticipantRemoved)
    assert gone.participant.id == bob.local_participant.id
    assert alice.messaging.remote_participants == []

    # Enable / disable events arrive in order on events(); enable again works.
    enabled = await next_event(bob, MessagingEnabled)
    assert enabled.participants == (me,)
    await next_event(bob, MessagingDisabled)
    await bob.messaging.enable()
    assert bob.messaging.remote_participants == [me]


async def test_enable_twice_is_refused_and_harmless(rw: ModuleType, join: Join) -> None:
    alice = await join("alice")
    with pytest.raises(rw.NotEnabledError) as caught:
        await alice.messaging.enable()
    assert caught.value.code is Code.INVALID_STATE
    assert alice.messaging.enabled


async def test_send_before_enable_raises_not_enabled(rw: ModuleType, join: Join) -> None:
    alice = await join("alice")
    bob = await join("bob", enable=False)
    with pytest.raises(rw.NotEnabledError):
        await bob.messaging.send_message(to=alice.local_participant, type="chat", message={})


def _expired(make: Callable[..., str]) -> dict[str, Any]:
    return {"token": make("eve", expires_at=time.time() - 60)}


def _wrong_secret(make: Callable[..., str]) -> dict[str, Any]:
    return {"token": make("eve", secret="another-secret-that-is-also-long-enough")}


def _other_room(make: Callable[..., str]) -> dict[str, Any]:
    return {"token": make("eve", room="main"), "room": "elsewhere"}


def _garbage(make: Callable[..., str]) -> dict[str, Any]:
    return {"token": "not.a.jwt"}


BAD_TOKENS = {
    "expired": (_expired, Code.TOKEN_EXPIRED),
    "wrong-secret": (_wrong_secret, Code.TOKEN_BAD_SIGNATURE),
    "other-room": (_other_room, Code.ROOM_MISMATCH),
    "garbage": (_garbage, Code.TOKEN_INVALID),
}


@pytest.mark.parametrize("case", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_bad_token_refused_with_its_code(
    rw: ModuleType,
    server: Any,
    join: Join,
    make_token: Callable[..., str],
    case: tuple[Callable[[Callable[..., str]], dict[str, Any]], Code],
) -> None:
    connect_args, code = case
    with anyio.fail_after(5), pytest.raises(rw.RoomError) as caught:
        async with rw.connect(server.url, **connect_args(make_token)):
            pytest.fail("connect() should have been refused")
    assert caught.value.code is code
    assert caught.value.reason
    # The server is unaffected and drops the refused connection.
    alice = await join("alice")
    assert alice.local_participant.name == "alice"
    await wait_until(lambda: server.connection_count == 1)


async def test_unreachable_server_raises_connection_closed(
    rw: ModuleType, make_token: Callable[..., str]
) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # nothing listens there now
    with anyio.fail_after(5), pytest.raises(rw.ConnectionClosedError) as caught:
        async with rw.connect(f"tcp://127.0.0.1:{port}", token=make_token("alice")):
            pytest.fail("connect() should have failed")
    assert caught.value.code is Code.CONNECTION_LOST


async def test_silent_server_fails_the_handshake_in_time(
    rw: ModuleType, make_token: Callable[..., str]
) -> None:
    """A server that accepts and never answers: connect() gives up after handshake_timeout."""
    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as listener,
        anyio.create_task_group() as tg,
    ):
        done = anyio.Event()

        async def mute(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                await done.wait()

        tg.start_soon(listener.serve, mute)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        start = anyio.current_time()
        with anyio.fail_after(5), pytest.raises(rw.ConnectionClosedError) as caught:
            async with rw.connect(
                f"tcp://127.0.0.1:{port}",
                token=make_token("alice"),
                config=ClientConfig(handshake_timeout=0.2),
            ):
                pytest.fail("connect() should have timed out")
        assert caught.value.code is Code.HANDSHAKE_TIMEOUT
        assert 0.2 <= anyio.current_time() - start < 1.5
        done.set()
        tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:80", "127.0.0.1:80", "tcp://127.0.0.1", "tcp://:80", "tcp://h:port"],
)
async def test_bad_url_raises_value_error(rw: ModuleType, url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        async with rw.connect(url, token="irrelevant"):
            pytest.fail("connect() should have rejected the URL")


async def test_errors_in_the_body_propagate_unwrapped(
    rw: ModuleType, server: Any, make_token: Callable[..., str]
) -> None:
    """connect() and serve() run task groups, but a body's error is not an ExceptionGroup."""

    async def client_body() -> None:
        async with rw.connect(server.url, token=make_token("alice")) as alice:
            await alice.messaging.enable()
            await alice.messaging.send_message(to="no-such-id", type="chat", message={})

    async def server_body() -> None:
        async with rw.serve("127.0.0.1", 0, secret=SECRET):
            raise KeyError("from the body")

    with pytest.raises(rw.NotFoundError):
        await client_body()
    with pytest.raises(KeyError):
        await server_body()
