"""room.messaging.create_stream and enable(on_stream_accept=...) over TCP on both runtimes:
chunks in order with their headers, a writer that waits while the reader does not read,
refused offers, aborts from either side, departures, and the limits."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import anyio
import pytest

from roomwire import Code

from . import Join, ServerTask

pytestmark = pytest.mark.anyio

WINDOW = 4096


class Accepted:
    """An ``on_stream_accept`` callback that hands each reader to the test."""

    def __init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[Any](10)

    def __call__(self, reader: Any) -> None:
        self.send.send_nowait(reader)

    async def next(self) -> Any:
        with anyio.fail_after(5):
            return await self.receive.receive()

    def close(self) -> None:
        self.send.close()
        self.receive.close()


async def reader_and_writer(join: Join, **header: Any) -> tuple[Any, Any, Any, Any]:
    """alice writes to bob, who accepts; (alice, bob, writer, reader)."""
    alice, bob = await join("alice"), await join("bob", enable=False)
    accepted = Accepted()
    await bob.messaging.enable(on_stream_accept=accepted)
    with anyio.fail_after(5):
        writer = await alice.messaging.create_stream(to=bob.local_participant, header=header)
    reader = await accepted.next()
    accepted.close()
    return alice, bob, writer, reader


@pytest.mark.server(stream_window=WINDOW)
async def test_chunks_arrive_in_order_and_close_ends_the_stream(join: Join, rw: ModuleType) -> None:
    alice, _, writer, reader = await reader_and_writer(join, name="notes.txt")
    assert (reader.header, reader.from_participant_id) == (
        {"name": "notes.txt"},
        alice.local_participant.id,
    )
    assert writer.id == reader.id
    received: list[Any] = []

    async def read() -> None:
        async for chunk in reader:
            received.append(chunk)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            for n in range(20):  # 20 x 1000 bytes through a 4096-byte window
                await writer.write(rw.MessageStreamChunk(header={"n": n}, data=bytes([n]) * 1000))
            await writer.write(rw.MessageStreamChunk(data=b"last"))
            await writer.close()
    assert [c.header for c in received] == [{"n": n} for n in range(20)] + [{}]
    assert (
        b"".join(c.data for c in received)
        == b"".join(bytes([n]) * 1000 for n in range(20)) + b"last"
    )


@pytest.mark.server(stream_window=WINDOW)
async def test_a_writer_waits_while_the_reader_does_not_read(join: Join, rw: ModuleType) -> None:
    _, _, writer, reader = await reader_and_writer(join)
    with anyio.fail_after(5):
        for _ in range(4):
            await writer.write(rw.MessageStreamChunk(data=b"x" * 1024))  # the whole window
    with anyio.move_on_after(0.5) as waited:
        await writer.write(rw.MessageStreamChunk(data=b"y"))
    assert waited.cancel_called, "the write went out past the reader's credit"
    with anyio.fail_after(5):
        first = await reader.__anext__()  # consuming grants credit back
        assert first.data == b"x" * 1024
        await writer.write(rw.MessageStreamChunk(data=b"y"))


@pytest.mark.server(stream_window=WINDOW)
async def test_a_chunk_over_the_window_is_too_large(join: Join, rw: ModuleType) -> None:
    _, _, writer, _ = await reader_and_writer(join)
    with pytest.raises(rw.TooLargeError, match="stream_window"):
        await writer.write(rw.MessageStreamChunk(data=bytes(WINDOW + 1)))


async def test_a_participant_without_on_stream_accept_refuses(join: Join, rw: ModuleType) -> None:
    alice, bob = await join("alice"), await join("bob")
    with anyio.fail_after(5), pytest.raises(rw.StreamError) as caught:
        await alice.messaging.create_stream(to=bob.local_participant, header={})
    assert caught.value.code is Code.STREAM_ABORTED
    assert caught.value.reason == "not accepting streams"
    with anyio.fail_after(5), pytest.raises(rw.NotFoundError):
        await alice.messaging.create_stream(to="nobody")


async def test_the_writer_aborts(join: Join, rw: ModuleType) -> None:
    _, _, writer, reader = await reader_and_writer(join)
    await writer.write(rw.MessageStreamChunk(data=b"partial"))
    await writer.abort("changed my mind")
    with anyio.fail_after(5), pytest.raises(rw.StreamError) as caught:
        await read_all(reader)
    assert (caught.value.code, caught.value.reason) == (Code.STREAM_ABORTED, "changed my mind")
    with pytest.raises(rw.StreamError):
        await writer.write(rw.MessageStreamChunk(data=b"more"))


async def write_on(writer: Any, rw: ModuleType) -> None:
    """Write until the stream fails (it must, before the 100th chunk)."""
    for _ in range(100):
        await writer.write(rw.MessageStreamChunk(data=b"x" * 1024))


async def read_all(reader: Any) -> None:
    async for _chunk in reader:
        pass


@pytest.mark.server(stream_window=WINDOW)
async def test_the_reader_aborts(join: Join, rw: ModuleType) -> None:
    _, _, writer, reader = await reader_and_writer(join)
    await reader.abort("disk full")
    with anyio.fail_after(5), pytest.raises(rw.StreamError) as caught:
        await write_on(writer, rw)
    assert (caught.value.code, caught.value.reason) == (Code.STREAM_ABORTED, "disk full")


@pytest.mark.server(stream_window=WINDOW)
async def test_a_departed_reader_fails_the_writer(join: Join, rw: ModuleType) -> None:
    _, bob, writer, _ = await reader_and_writer(join)
    await bob.messaging.disable()
    with anyio.fail_after(5), pytest.raises(rw.StreamError) as caught:
        await write_on(writer, rw)
    assert caught.value.code is Code.STREAM_PEER_LEFT


async def test_a_departed_writer_fails_the_reader(join: Join, rw: ModuleType) -> None:
    alice, _, _, reader = await reader_and_writer(join)
    await alice.messaging.disable()
    with anyio.fail_after(5), pytest.raises(rw.StreamError) as caught:
        await read_all(reader)
    assert caught.value.code is Code.STREAM_PEER_LEFT


@pytest.mark.server(max_open_streams=1)
async def test_open_streams_are_limited(join: Join, rw: ModuleType) -> None:
    alice, bob, _, _ = await reader_and_writer(join)
    with anyio.fail_after(5), pytest.raises(rw.RateLimitedError) as caught:
        await alice.messaging.create_stream(to=bob.local_participant)
    assert caught.value.code is Code.TOO_MANY_STREAMS


@pytest.mark.server(stream_window=64 * 1024)
async def test_megabytes_arrive_intact(join: Join, rw: ModuleType) -> None:
    _, _, writer, reader = await reader_and_writer(join)
    blob = hashlib.sha256(b"seed").digest() * (4 * 1024 * 1024 // 32)
    digest = hashlib.sha256()

    async def read() -> None:
        async for chunk in reader:
            digest.update(chunk.data)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            for start in range(0, len(blob), 16 * 1024):
                await writer.write(rw.MessageStreamChunk(data=blob[start : start + 16 * 1024]))
            await writer.close()
    assert digest.digest() == hashlib.sha256(blob).digest()


async def test_a_lost_connection_fails_streams_and_cancels_handlers(
    rw: ModuleType, server_task: ServerTask, make_token: Callable[..., str]
) -> None:
    server = await server_task.start(stream_window=WINDOW)
    handler_cancelled = anyio.Event()

    async def hang(request: Any) -> dict[str, Any]:
        try:
            await anyio.sleep(60)
        finally:
            handler_cancelled.set()
        return {}

    accepted = Accepted()
    async with (
        rw.connect(server.url, token=make_token("alice"), reconnect=False) as alice,
        rw.connect(server.url, token=make_token("bob"), reconnect=False) as bob,
    ):
        bob.messaging.on_request("hang", hang)
        await alice.messaging.enable()
        await bob.messaging.enable(on_stream_accept=accepted)
        with anyio.fail_after(5):
            writer = await alice.messaging.create_stream(to=bob.local_participant)
            reader = await accepted.next()
        accepted.close()
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                _expect_failure,
                alice.messaging.request(to=bob.local_participant, type="hang", message={}),
                rw,
            )
            await anyio.sleep(0.2)
            await server_task.stop()
        # Each side learns it one way or the other: the other side left first (the server
        # closes one connection after the other), or its own connection closed.
        ended = {Code.STREAM_PEER_LEFT, Code.GOING_AWAY}
        with anyio.fail_after(5):
            await handler_cancelled.wait()
            with pytest.raises(rw.RoomError) as caught:
                await read_all(reader)
            assert caught.value.code in ended
            with pytest.raises(rw.RoomError) as caught:
                await write_on(writer, rw)
            assert caught.value.code in ended


async def _expect_failure(call: Any, rw: ModuleType) -> None:
    with anyio.fail_after(5), pytest.raises(rw.RoomError) as caught:
        await call
    assert caught.value.code in {Code.CALLEE_LEFT, Code.GOING_AWAY}
