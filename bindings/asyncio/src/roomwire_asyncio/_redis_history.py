"""History in Redis Streams (``serve(history="redis://...")``, the default with
``serve(redis=...)``): one stream per room that every node reads and appends to.

Per room, three keys: the stream (``XADD ... MAXLEN ~ history_size``, read with ``XRANGE``),
its epoch, and the last seq dropped from it. Each call is one Lua script, so a check and the
writes it decides are atomic. The epoch changes (PROTOCOL.md §21.2) when:

- the stream or the epoch key is missing (deleted, evicted, Redis restarted empty);
- a record's seq is not above the stream's last (a node restarted and numbers from its own
  last seq again, or two nodes number the room differently, PROTOCOL.md §13): the driver
  then moves the node's room seq past the stream's, so the numbering converges.

A sender is acknowledged when its message is routed, as with history in memory (the core
holds acks only for a store of the node's own, PROTOCOL.md §21.3): the record follows in the
next batch, and while Redis is down the node keeps the records and writes them when it is back.

redis-py's client is asyncio-only: this store works under asyncio, not trio.
"""

from __future__ import annotations

import secrets
from typing import Any

import cbor2
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from roomwire_anyio import HistoryStoreError, redact_url

from roomwire import HistoryRead, ServerConfig

PREFIX = "roomwire:history:"
TIMEOUT = 2.0
"""Seconds a Redis call may take before the store counts as down."""

# KEYS: stream, epoch, dropped, top. ARGV: a new epoch, history_size, then (seq, record)
# pairs of one node, in order. Returns {epoch, the epoch's last seq}.
_APPEND = """
local epoch = redis.call('GET', KEYS[2])
local top = tonumber(redis.call('GET', KEYS[4]) or '0')
if not epoch or redis.call('EXISTS', KEYS[1]) == 0 or tonumber(ARGV[3]) <= top then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
  redis.call('SET', KEYS[3], 0)
  top = 0
end
local size = tonumber(ARGV[2])
local excess = redis.call('XLEN', KEYS[1]) + (#ARGV - 2) / 2 - size
if excess > 0 then
  -- MAXLEN ~ drops at most these: count them dropped (a reader before them is reset).
  local old = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', excess)
  local newest = old[#old]
  if newest and newest[2][4] == epoch then redis.call('SET', KEYS[3], newest[2][2]) end
end
for i = 3, #ARGV, 2 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', size, '*', 's', ARGV[i], 'e', epoch, 'r', ARGV[i + 1])
  top = tonumber(ARGV[i])
end
redis.call('SET', KEYS[4], top)
return {epoch, top}
"""

# KEYS: stream, epoch, dropped, top. ARGV: a new epoch. Returns {epoch, dropped, entries}.
_READ = """
local epoch = redis.call('GET', KEYS[2])
if not epoch or redis.call('EXISTS', KEYS[1]) == 0 then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
  redis.call('SET', KEYS[3], 0)
  redis.call('SET', KEYS[4], 0)
  -- An empty stream: a later loss of the stream is seen as one.
  redis.call('XADD', KEYS[1], 'MAXLEN', 0, '*', 's', 0, 'e', epoch, 'r', '')
end
return {epoch, redis.call('GET', KEYS[3]) or '0', redis.call('XRANGE', KEYS[1], '-', '+')}
"""


def keys(room: str) -> list[str]:
    """The room's stream, its epoch, the epoch's last seq dropped and last seq stored."""
    stream = PREFIX + room
    return [stream, f"{stream}:epoch", f"{stream}:dropped", f"{stream}:top"]


class RedisStore:
    """The history store of a cluster: Redis Streams (see the module's doc)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._size = 0
        self._client: aioredis.Redis | None = None
        self._append: Any = None
        self._read: Any = None

    async def open(self, config: ServerConfig) -> tuple[str, dict[str, int]]:
        self._size = config.history_size
        try:
            client = self._client = aioredis.Redis.from_url(
                self.url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
            )
        except ValueError as exc:
            raise HistoryStoreError(f"history store {redact_url(self.url)}: {exc}") from None
        self._append = client.register_script(_APPEND)
        self._read = client.register_script(_READ)
        # Every room's epoch comes from Redis, with its first read or write.
        return secrets.token_hex(8), {}

    async def append(
        self, records: list[tuple[str, bytes]], now: float
    ) -> dict[str, tuple[str, int]]:
        by_room: dict[str, list[bytes | int]] = {}
        for room, record in records:
            by_room.setdefault(room, []).extend((cbor2.loads(record)["seq"], record))
        epochs: dict[str, tuple[str, int]] = {}
        try:
            for room, pairs in by_room.items():
                epoch, top = await self._append(
                    keys(room), [secrets.token_hex(8), self._size, *pairs]
                )
                epochs[room] = (epoch.decode(), int(top))
        except RedisError as exc:
            raise HistoryStoreError(f"Redis history: {exc}") from None
        return epochs

    async def read(self, read: HistoryRead) -> tuple[str, list[bytes], int]:
        try:
            raw_epoch, dropped, entries = await self._read(keys(read.room), [secrets.token_hex(8)])
        except RedisError as exc:
            raise HistoryStoreError(f"Redis history: {exc}") from None
        epoch = raw_epoch.decode()
        since = read.after(epoch)
        # Each entry's fields as Lua hands them back: s, seq, e, epoch, r, record.
        fields = [f for _, f in entries]
        if since is None:
            return epoch, [f[5] for f in fields], int(dropped)
        # A position counts in its epoch only: older epochs' records are all before it.
        ours = epoch.encode()
        found = [f[5] for f in fields if f[3] == ours and int(f[1]) > since]
        return epoch, found, int(dropped)

    async def aclose(self, positions: dict[str, int]) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
