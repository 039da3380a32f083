"""History in a store of the driver's (``serve(history=...)``): the pump that moves records
between the core's door and the store, and the SQLite store.

The core decides what is stored and what a reader sees; this module only moves records:
``RoomServer.history_to_store`` -> ``store.append`` -> ``history_stored`` (which releases the
senders' acks), and ``history_reads`` -> ``store.read`` -> ``answer_history``. One task does
it, in order, so a read sees every record stored before it was asked."""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

import anyio
import cbor2

from roomwire import HistoryRead, LocalProtocolError, RoomServer, ServerConfig

if TYPE_CHECKING:
    from ._server import ServerPump

log = logging.getLogger("roomwire.history")
_T = TypeVar("_T")

RETRY_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0)
"""Seconds before a failed store call is tried again, then again... (the last repeats);
the senders' acks wait meanwhile (with a store of this node's own)."""


class HistoryStoreError(Exception):
    """The history store cannot be used: a file that is not a SQLite database (or a
    damaged one), a URL of no known scheme, a store that cannot be opened."""


class HistoryStore(Protocol):
    """What the history pump needs of a store."""

    async def open(self, config: ServerConfig) -> tuple[str, dict[str, int]]:
        """Open it; return its epoch and each room's last seq (``RoomServer.restore_history``).
        Raise ``HistoryStoreError`` when it cannot be used."""

    async def append(
        self, records: list[tuple[str, bytes]], now: float
    ) -> dict[str, tuple[str, int]]:
        """Store the records (room name, record) in order, trimmed to the history's bounds;
        a store with an epoch per room returns each room's (epoch, last seq)."""

    async def read(self, read: HistoryRead) -> tuple[str, list[bytes], int]:
        """The room's epoch, its records after ``read.after(epoch)`` in that epoch, oldest
        first, and the last seq of the epoch it dropped (by size or age; 0: none)."""

    async def aclose(self, positions: dict[str, int]) -> None:
        """Close it after a clean stop: ``positions`` are the rooms' last seqs."""


HistoryStoreFactory = Callable[[str], HistoryStore]
"""A history URL -> a store (the runtime packages add ``redis://``)."""


class HistoryPump:
    """Carries records and reads between the core and the store, one batch at a time."""

    def __init__(self, pump: ServerPump, store: HistoryStore) -> None:
        self._pump = pump
        self._core: RoomServer = pump.core
        self.store = store
        self._wake = anyio.Event()
        self._records: list[tuple[str, bytes]] = []
        self._reads: list[HistoryRead] = []
        """Taken from the core and not yet done (kept across a store failure)."""

    def wake(self) -> None:
        """The core may have records to store or reads to answer."""
        self._wake.set()

    async def run(self) -> None:
        failures = 0
        while True:
            if failures:
                # The store failed: what comes meanwhile waits for the next try.
                await anyio.sleep(RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1])
            else:
                await self._wake.wait()
                self._wake = anyio.Event()
            failures = 0 if await self._step() else failures + 1

    async def aclose(self, timeout: float) -> None:
        """Store what is left (for ``timeout`` seconds at most), then close the store with
        the rooms' seqs (a clean stop)."""
        with anyio.move_on_after(timeout):
            while not await self._step():
                await anyio.sleep(RETRY_DELAYS[0])
        await self.store.aclose(self._core.history_positions())

    async def _step(self) -> bool:
        """Store what the core gave, answer its reads; False when the store failed."""
        core = self._core
        self._records += core.history_to_store()
        self._reads += core.history_reads()
        if not self._records and not self._reads:
            return True
        try:
            if self._records:
                epochs = await self.store.append(self._records, time.time())
                for room, (epoch, last_seq) in epochs.items():
                    core.set_history_epoch(room, epoch, last_seq)
                core.history_stored(len(self._records))
                self._records = []
            while self._reads:
                read = self._reads[0]
                epoch, records, dropped = await self.store.read(read)
                del self._reads[0]
                self._answer(read, records, epoch, dropped)
        except (HistoryStoreError, OSError, sqlite3.Error) as exc:
            log.warning("history store failed, retrying: %s", exc)
            return False
        finally:
            self._pump.flush()
        return True

    def _answer(self, read: HistoryRead, records: list[bytes], epoch: str, dropped: int) -> None:
        try:
            self._core.answer_history(read, records, time.time(), epoch, dropped)
        except LocalProtocolError as exc:
            # A damaged record: the reader gets an empty page rather than no answer.
            log.error("history store of room %r: %s", read.room, exc)
            self._core.answer_history(read, [], time.time(), epoch, dropped)


async def open_store(
    pump: ServerPump, url: str, redis_store: HistoryStoreFactory | None
) -> HistoryPump:
    """Open the store ``url`` names (``sqlite:///...``, or ``redis://`` with
    ``redis_store``), tell the core its epoch and seqs, and return its pump."""
    if url.startswith("sqlite:"):
        store: HistoryStore = SqliteStore(url)
    elif url.startswith(("redis://", "rediss://", "unix://")):
        if redis_store is None:
            raise RuntimeError(
                "history in Redis needs asyncio: redis-py's client is asyncio-only"
                " (use roomwire_asyncio)"
            )
        store = redis_store(url)
    else:
        raise HistoryStoreError(
            f"history store URL {url!r}: expected memory://, sqlite:///path or redis://..."
        )
    epoch, seqs = await store.open(pump.core.config)
    pump.core.restore_history(epoch, seqs)
    return HistoryPump(pump, store)


# --- SQLite ----------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS roomwire_history (
    room TEXT NOT NULL, seq INTEGER NOT NULL, ts REAL NOT NULL, record BLOB NOT NULL,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS roomwire_rooms (room TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS roomwire_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS roomwire_dropped (room TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""
_TOO_OLD = (
    "FROM roomwire_history WHERE room = ? AND (ts < ? OR seq <= COALESCE((SELECT seq FROM"
    " roomwire_history WHERE room = ? ORDER BY seq DESC LIMIT 1 OFFSET ?), -1))"
)
"""A room's records past ``history_ttl`` or older than its ``history_size`` newest."""
_SET_DROPPED = "INSERT OR REPLACE INTO roomwire_dropped VALUES (?, ?)"


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db`` -> ``relative.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    path = url.removeprefix("sqlite:///")
    if path == url or not path or path.endswith("/"):
        raise HistoryStoreError(
            f"a SQLite history URL is sqlite:///relative.db or sqlite:////absolute.db, not {url!r}"
        )
    return path


class SqliteStore:
    """History in a SQLite file (WAL, every commit synced): one node that must survive a
    restart. Every call runs in a worker thread, one at a time, never on the event loop.

    The file keeps an epoch and whether the last server stopped cleanly. After a clean stop
    each room's seq continues where it was, in the same epoch; after a crash (``kill -9``)
    the seqs continue after the last stored message but the epoch is new: a seq handed out
    after the last commit (a presence change, a message never acknowledged) may be handed
    out again, so no position from before is trusted (PROTOCOL.md §21.2)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._db: sqlite3.Connection | None = None
        self._limiter = anyio.CapacityLimiter(1)
        self._size = 0
        self._ttl = 0.0
        self.epoch = ""

    async def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        db = self._db
        assert db is not None, "the store is not open"
        return await anyio.to_thread.run_sync(fn, db, limiter=self._limiter)

    async def open(self, config: ServerConfig) -> tuple[str, dict[str, int]]:
        self._size, self._ttl = config.history_size, config.history_ttl
        try:
            return await anyio.to_thread.run_sync(self._open, limiter=self._limiter)
        except sqlite3.Error as exc:
            if self._db is not None:
                self._db.close()
                self._db = None
            raise HistoryStoreError(
                f"history store {self.path}: not a usable SQLite database ({exc})"
            ) from None

    def _open(self) -> tuple[str, dict[str, int]]:
        if os.path.isdir(self.path):
            raise HistoryStoreError(f"history store {self.path}: is a directory")
        db = self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        (check,) = db.execute("PRAGMA quick_check").fetchone()
        if check != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {check}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        with db:
            db.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
            meta = dict(db.execute("SELECT key, value FROM roomwire_meta").fetchall())
            epoch = meta.get("epoch")
            if epoch is None or meta.get("clean") != "1":
                epoch = secrets.token_hex(8)  # a new file, or the last server crashed
                db.execute("DELETE FROM roomwire_rooms")
            seqs = dict(db.execute("SELECT room, MAX(seq) FROM roomwire_history GROUP BY room"))
            for room, seq in db.execute("SELECT room, seq FROM roomwire_rooms"):
                seqs[room] = max(seq, seqs.get(room, 0))
            db.executemany(
                "INSERT OR REPLACE INTO roomwire_meta VALUES (?, ?)",
                [("epoch", epoch), ("clean", "0")],
            )
        self.epoch = epoch
        return epoch, seqs

    async def append(
        self, records: list[tuple[str, bytes]], now: float
    ) -> dict[str, tuple[str, int]]:
        await self._call(lambda db: self._append(db, records, now))
        return {}  # one epoch for the file, and this node its only writer

    def _append(self, db: sqlite3.Connection, records: list[tuple[str, bytes]], now: float) -> None:
        rows = [(room, _seq_of(record), now, record) for room, record in records]
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO roomwire_history VALUES (?, ?, ?, ?)", rows)
            for room in {row[0] for row in rows}:
                args = (room, now - self._ttl, room, self._size)
                (dropped,) = db.execute(f"SELECT MAX(seq) {_TOO_OLD}", args).fetchone()
                if dropped is not None:
                    db.execute(_SET_DROPPED, (room, dropped))
                    db.execute(f"DELETE {_TOO_OLD}", args)

    async def read(self, read: HistoryRead) -> tuple[str, list[bytes], int]:
        since = read.after(self.epoch)
        after = -1 if since is None else since
        return await self._call(lambda db: self._read(db, read.room, after))

    def _read(self, db: sqlite3.Connection, room: str, after: int) -> tuple[str, list[bytes], int]:
        rows = db.execute(
            "SELECT record FROM roomwire_history WHERE room = ? AND seq > ? ORDER BY seq",
            (room, after),
        ).fetchall()
        found = db.execute("SELECT seq FROM roomwire_dropped WHERE room = ?", (room,)).fetchone()
        return self.epoch, [bytes(row[0]) for row in rows], 0 if found is None else found[0]

    async def aclose(self, positions: dict[str, int]) -> None:
        if self._db is None:
            return
        await self._call(lambda db: self._close(db, positions))
        self._db = None

    def _close(self, db: sqlite3.Connection, positions: dict[str, int]) -> None:
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO roomwire_rooms VALUES (?, ?)", positions.items())
            db.execute("INSERT OR REPLACE INTO roomwire_meta VALUES ('clean', '1')")
        db.close()


def _seq_of(record: bytes) -> int:
    seq: int = cbor2.loads(record)["seq"]
    return seq
