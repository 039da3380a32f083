"""serve(history="sqlite:///...") on both runtimes: an ack means the record is in the file,
history and seqs survive a clean restart in the same epoch, trimming applies, and a file
that is not a SQLite database is a typed error at start."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import attrs
import cbor2
import pytest
from roomwire_anyio import HistoryStoreError
from roomwire_anyio._history_store import SqliteStore

from roomwire import HistoryRead, ServerConfig
from roomwire.events import MessageReceived

from . import SECRET, WAIT, next_event

pytestmark = pytest.mark.anyio


def url(path: Path) -> str:
    return f"sqlite:///{path}"  # path is absolute: sqlite:////tmp/...


def stored(path: Path, room: str = "main") -> list[int]:
    """The seqs in the file, read by another connection (as after a crash)."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT seq FROM roomwire_history WHERE room = ? ORDER BY seq", (room,))
        return [seq for (seq,) in rows]


def epoch(path: Path) -> str:
    with sqlite3.connect(path) as db:
        (value,) = db.execute("SELECT value FROM roomwire_meta WHERE key = 'epoch'").fetchone()
        return str(value)


async def test_an_ack_means_the_message_is_in_the_file(
    rw: ModuleType, tmp_path: Path, make_token: Any
) -> None:
    path = tmp_path / "history.db"
    async with (
        rw.serve(secret=SECRET, history=url(path)) as server,
        rw.connect(server.url, token=make_token("alice"), reconnect=False) as alice,
        rw.connect(server.url, token=make_token("bob"), reconnect=False) as bob,
    ):
        with anyio.fail_after(WAIT):
            await alice.messaging.enable()
            await bob.messaging.enable()
            for n in range(20):
                await alice.messaging.broadcast_message(type="chat", message={"n": n})
                assert len(stored(path)) == n + 1  # acked: already in the file
            await next_event(bob, MessageReceived)
            found = await bob.messaging.history()
        assert [m.message["n"] for m in found] == list(range(20))
        assert [m.seq for m in found] == stored(path)


async def test_history_and_seqs_survive_a_clean_restart(
    rw: ModuleType, tmp_path: Path, make_token: Any
) -> None:
    path = tmp_path / "history.db"
    seqs = []
    for run in range(2):
        async with rw.serve(secret=SECRET, history=url(path)) as server:
            token = make_token("alice")
            async with rw.connect(server.url, token=token, reconnect=False) as alice:
                with anyio.fail_after(WAIT):
                    await alice.messaging.enable()
                    await alice.messaging.broadcast_message(type="chat", message={"run": run})
                    found = await alice.messaging.history()
        assert [m.message["run"] for m in found] == list(range(run + 1))
        seqs.append(found[-1].seq)
        if run == 0:
            first_epoch = epoch(path)
    assert seqs[1] > seqs[0]  # the room's seq went on where it stopped
    assert epoch(path) == first_epoch  # a clean stop keeps the epoch


@pytest.mark.parametrize("size", [3])
async def test_the_file_keeps_history_size_messages(
    rw: ModuleType, tmp_path: Path, make_token: Any, size: int
) -> None:
    path = tmp_path / "history.db"
    async with (
        rw.serve(secret=SECRET, history=url(path), history_size=size) as server,
        rw.connect(server.url, token=make_token("alice"), reconnect=False) as alice,
    ):
        with anyio.fail_after(WAIT):
            await alice.messaging.enable()
            for n in range(size + 2):
                await alice.messaging.broadcast_message(type="chat", message={"n": n})
            found = await alice.messaging.history()
    assert [m.message["n"] for m in found] == [2, 3, 4]
    assert len(stored(path)) == size


@pytest.mark.parametrize(
    "content", [b"this is not a database, just text" * 100, b"SQLite format 3\x00" + b"\xff" * 200]
)
async def test_a_corrupt_file_is_a_typed_error_at_start(
    rw: ModuleType, tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "history.db"
    path.write_bytes(content)
    with pytest.raises(rw.HistoryStoreError, match="not a usable SQLite database"):
        async with rw.serve(secret=SECRET, history=url(path)):
            pytest.fail("served from a corrupt history file")


@pytest.mark.parametrize("bad", ["sqlite://relative.db", "sqlite:///", "ftp://x", "sqlite:///d/"])
async def test_a_bad_history_url_is_a_typed_error(rw: ModuleType, bad: str) -> None:
    with pytest.raises(rw.HistoryStoreError, match="history"):
        async with rw.serve(secret=SECRET, history=bad):
            pytest.fail("served with a bad history URL")


async def test_a_directory_is_not_a_history_file(rw: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(rw.HistoryStoreError, match="is a directory"):
        async with rw.serve(secret=SECRET, history=url(tmp_path)):
            pytest.fail("served with a directory as history")


async def test_memory_is_the_default_and_can_be_named(rw: ModuleType) -> None:
    async with rw.serve(secret=SECRET, history="memory://") as server:
        assert not server.core.config.external_history


async def test_redis_history_needs_asyncio(rw: ModuleType, anyio_backend_name: str) -> None:
    if anyio_backend_name == "asyncio":
        assert rw.serve.keywords["history_store"] is not None
        return
    with pytest.raises(RuntimeError, match="needs asyncio"):
        async with rw.serve(secret=SECRET, history="redis://127.0.0.1:1/0"):
            pytest.fail("served Redis history on trio")


async def test_a_relative_url_names_a_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = SqliteStore("sqlite:///rel.db")
    await store.open(ServerConfig(secret=SECRET))
    await store.aclose({"main": 7})
    assert (tmp_path / "rel.db").exists()
    reopened = SqliteStore("sqlite:///rel.db")
    assert (await reopened.open(ServerConfig(secret=SECRET)))[1] == {"main": 7}
    await reopened.aclose({})
    with pytest.raises(HistoryStoreError):
        SqliteStore("sqlite:rel.db")


async def test_a_damaged_record_is_an_empty_answer_not_a_hang(
    rw: ModuleType, tmp_path: Path, make_token: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "history.db"
    async with (
        rw.serve(secret=SECRET, history=url(path)) as server,
        rw.connect(server.url, token=make_token("alice"), reconnect=False) as alice,
    ):
        with anyio.fail_after(WAIT):
            await alice.messaging.enable()
            await alice.messaging.broadcast_message(type="chat", message={"n": 0})
            with sqlite3.connect(path) as db:
                db.execute("UPDATE roomwire_history SET record = x'ff'")
            assert await alice.messaging.history() == []
            await alice.messaging.broadcast_message(type="chat", message={"n": 1})  # still up
    assert "stored history record is malformed" in caplog.text


def record(seq: int) -> bytes:
    return cbor2.dumps({"seq": seq})  # the store reads only the seq of what it keeps


async def test_the_file_drops_what_is_past_history_ttl_and_says_so(tmp_path: Path) -> None:
    store = SqliteStore(url(tmp_path / "history.db"))
    epoch, _ = await store.open(ServerConfig(secret=SECRET, history_ttl=10.0))
    await store.append([("main", record(1)), ("main", record(2))], now=1000.0)
    await store.append([("main", record(3))], now=1011.0)  # 1 and 2 are past the ttl
    read = HistoryRead(
        room="main", since=0, connection_id=1, request_id=1, name="a", limit=10, reverse=False
    )
    assert await store.read(read) == (epoch, [record(3)], 2)
    # A position from another epoch is not used: everything kept comes back.
    other = attrs.evolve(read, since=5, epoch="another")
    assert await store.read(other) == (epoch, [record(3)], 2)
    await store.aclose({})


async def test_a_failed_write_is_retried_and_the_ack_waits_for_it(
    rw: ModuleType,
    tmp_path: Path,
    make_token: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "history.db"
    failed: list[int] = []
    append = SqliteStore._append

    def flaky(self: SqliteStore, db: sqlite3.Connection, *args: Any) -> None:
        if not failed:
            failed.append(1)
            raise sqlite3.OperationalError("disk I/O error")  # once, as a full disk would
        append(self, db, *args)

    monkeypatch.setattr(SqliteStore, "_append", flaky)
    async with (
        rw.serve(secret=SECRET, history=url(path)) as server,
        rw.connect(server.url, token=make_token("alice"), reconnect=False) as alice,
    ):
        with anyio.fail_after(WAIT):
            await alice.messaging.enable()
            await alice.messaging.broadcast_message(type="chat", message={"n": 0})
            assert len(stored(path)) == 1  # acked only once the retry stored it
    assert failed == [1]
    assert "history store failed" in caplog.text
