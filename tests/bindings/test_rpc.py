"""room.messaging.request / on_request over TCP on both runtimes: answers with attachments,
application errors passed through unchanged, no handler, a handler that fails unexpectedly
(the callee stays connected), timeouts and cancels that cancel the callee's handler, and a
callee that leaves failing the call at once."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import anyio
import pytest

from roomwire import Code, RoomMessage

from . import Join

pytestmark = pytest.mark.anyio


async def test_a_request_gets_its_answer(join: Join) -> None:
    alice, bob = await join("alice"), await join("bob")
    seen: list[RoomMessage] = []

    async def add(request: RoomMessage) -> tuple[dict[str, Any], bytes]:
        seen.append(request)
        return {"sum": request.message["a"] + request.message["b"]}, request.attachment or b""

    bob.messaging.on_request("tool.add", add)
    with anyio.fail_after(5):
        reply = await alice.messaging.request(
            to=bob.local_participant, type="tool.add", message={"a": 2, "b": 3}, attachment=b"\x07"
        )
    assert (reply.message, reply.attachment, reply.type) == ({"sum": 5}, b"\x07", "tool.add")
    assert reply.from_participant_id == bob.local_participant.id
    (request,) = seen
    assert request.from_participant_id == alice.local_participant.id
    assert (request.id, request.seq) == (reply.id, 0)


async def test_a_plain_dict_answer_has_no_attachment(join: Join) -> None:
    alice, bob = await join("alice"), await join("bob")

    async def echo(request: RoomMessage) -> dict[str, Any]:
        return dict(request.message)

    bob.messaging.on_request("echo", echo)
    with anyio.fail_after(5):
        reply = await alice.messaging.request(
            to=bob.local_participant.id, type="echo", message={"x": [1]}
        )
    assert (reply.message, reply.attachment) == ({"x": [1]}, None)


async def test_an_application_error_passes_through_unchanged(join: Join, rw: ModuleType) -> None:
    alice, bob = await join("alice"), await join("bob")

    async def refuse(request: RoomMessage) -> dict[str, Any]:
        raise rw.RequestError(12345, "quota exceeded")

    bob.messaging.on_request("tool.x", refuse)
    with anyio.fail_after(5), pytest.raises(rw.RequestError) as caught:
        await alice.messaging.request(to=bob.local_participant, type="tool.x", message={})
    assert type(caught.value) is rw.RequestError
    assert (caught.value.code, caught.value.reason) == (12345, "quota exceeded")


async def test_a_type_without_a_handler_is_no_handler(join: Join, rw: ModuleType) -> None:
    alice, bob = await join("alice"), await join("bob")

    async def echo(request: RoomMessage) -> dict[str, Any]:
        return {}

    bob.messaging.on_request("echo", echo)
    bob.messaging.off_request("echo")
    with anyio.fail_after(5), pytest.raises(rw.NoHandlerError) as caught:
        await alice.messaging.request(to=bob.local_participant, type="echo", message={})
    assert caught.value.code == Code.NO_HANDLER
    assert isinstance(caught.value, rw.RequestError)


async def test_an_unexpected_failure_is_refused_and_the_callee_stays(
    join: Join, rw: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    alice, bob = await join("alice"), await join("bob")

    async def broken(request: RoomMessage) -> dict[str, Any]:
        raise KeyError("secret detail")

    async def wrong(request: RoomMessage) -> Any:
        return ["not", "a", "dict"]

    async def huge(request: RoomMessage) -> dict[str, Any]:
        return {"x": "y" * 2_000_000}

    for name, handler in (("broken", broken), ("wrong", wrong), ("huge", huge)):
        bob.messaging.on_request(name, handler)
    reasons = []
    for name in ("broken", "wrong", "huge"):
        with anyio.fail_after(5), pytest.raises(rw.RequestError) as caught:
            await alice.messaging.request(to=bob.local_participant, type=name, message={})
        assert caught.value.code == Code.HANDLER_FAILED
        reasons.append(caught.value.reason)
    assert "KeyError" in reasons[0]
    assert "secret detail" not in reasons[0]  # the caller learns the kind, not the content
    assert "list, not a dict" in reasons[1]
    assert "refused" in reasons[2]
    assert "the handler of request type 'broken' failed" in caplog.text
    await bob.messaging.broadcast_message(type="still", message={})  # still connected


def slow_handler(callee: Any) -> tuple[anyio.Event, anyio.Event]:
    """Answer "slow" requests after a minute; the events say it started, and was cancelled."""
    started, cancelled = anyio.Event(), anyio.Event()

    async def slow(request: RoomMessage) -> dict[str, Any]:
        started.set()
        try:
            await anyio.sleep(60)
        finally:
            cancelled.set()
        return {}

    callee.messaging.on_request("slow", slow)
    return started, cancelled


async def test_a_timeout_cancels_the_callee_handler(join: Join, rw: ModuleType) -> None:
    alice, bob = await join("alice"), await join("bob")
    started, cancelled = slow_handler(bob)
    with anyio.fail_after(5):
        with pytest.raises(rw.RequestTimeoutError) as caught:
            await alice.messaging.request(
                to=bob.local_participant, type="slow", message={}, timeout=0.3
            )
        assert started.is_set()
        await cancelled.wait()
    assert caught.value.code is Code.CALL_CANCELLED
    assert isinstance(caught.value, TimeoutError)


async def test_cancelling_the_caller_cancels_the_handler(join: Join) -> None:
    alice, bob = await join("alice"), await join("bob")
    started, cancelled = slow_handler(bob)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def caller() -> None:
                await alice.messaging.request(to=bob.local_participant, type="slow", message={})

            tg.start_soon(caller)
            await started.wait()
            tg.cancel_scope.cancel()
        await cancelled.wait()
    # The connection is fine afterwards: the next call works.

    async def quick(request: RoomMessage) -> dict[str, Any]:
        return {"ok": True}

    bob.messaging.on_request("quick", quick)
    with anyio.fail_after(5):
        reply = await alice.messaging.request(to=bob.local_participant, type="quick", message={})
    assert reply.message == {"ok": True}


async def test_a_callee_that_leaves_fails_the_call_at_once(join: Join, rw: ModuleType) -> None:
    alice, bob = await join("alice"), await join("bob", events_queue_size=10)
    started = anyio.Event()

    async def hang(request: RoomMessage) -> dict[str, Any]:
        started.set()
        await anyio.sleep(60)
        return {}

    bob.messaging.on_request("hang", hang)
    failed: list[BaseException] = []

    async def caller() -> None:
        try:
            await alice.messaging.request(
                to=bob.local_participant, type="hang", message={}, timeout=30
            )
        except rw.RoomError as exc:
            failed.append(exc)

    with anyio.fail_after(5):  # far under the 30 s timeout
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
            await started.wait()
            await bob.messaging.disable()
    (error,) = failed
    assert isinstance(error, rw.NotFoundError)
    assert error.code is Code.CALLEE_LEFT


async def test_requests_to_nobody_and_without_the_grant_are_typed(
    join: Join, rw: ModuleType
) -> None:
    alice = await join("alice")
    mute = await join("mute", can_send=False)
    with anyio.fail_after(5):
        with pytest.raises(rw.NotFoundError):
            await alice.messaging.request(to="nobody", type="t", message={})
        with pytest.raises(rw.ForbiddenError):
            await mute.messaging.request(to=alice.local_participant, type="t", message={})
        with pytest.raises(rw.InvalidRequestError):
            await alice.messaging.request(to="nobody", type="", message={})


async def test_many_calls_in_flight_each_get_their_own_answer(join: Join) -> None:
    alice, bob = await join("alice"), await join("bob")

    async def double(request: RoomMessage) -> dict[str, Any]:
        await anyio.sleep(0.01 * (request.message["n"] % 3))
        return {"n": request.message["n"] * 2}

    bob.messaging.on_request("double", double)
    answers: dict[int, int] = {}

    async def one(n: int) -> None:
        reply = await alice.messaging.request(
            to=bob.local_participant, type="double", message={"n": n}
        )
        answers[n] = reply.message["n"]

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(one, n)
    assert answers == {n: 2 * n for n in range(50)}


async def test_closing_the_callee_cancels_its_running_handlers(join: Join, rw: ModuleType) -> None:
    alice, bob = await join("alice"), await join("bob")
    started, ended = anyio.Event(), anyio.Event()
    cancelled: list[bool] = []

    async def hang(request: RoomMessage) -> dict[str, Any]:
        started.set()
        try:
            await anyio.sleep(60)
        except anyio.get_cancelled_exc_class():
            cancelled.append(True)
            raise
        finally:
            ended.set()
        return {}

    bob.messaging.on_request("hang", hang)
    failed: list[BaseException] = []

    async def caller() -> None:
        try:
            await alice.messaging.request(
                to=bob.local_participant, type="hang", message={}, timeout=30
            )
        except rw.RoomError as exc:
            failed.append(exc)

    with anyio.fail_after(5):  # far under the handler's 60 s and the call's 30 s
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
            await started.wait()
            await bob.aclose()
            await ended.wait()
    assert cancelled == [True]
    (error,) = failed
    assert isinstance(error, rw.NotFoundError)
