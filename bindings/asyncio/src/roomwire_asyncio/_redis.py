"""The Redis backplane: every Redis call of a multi-node server, none in the core.

One publishing connection (every record of a loop turn goes out in one pipeline) and one
pub/sub connection per node, subscribed to the node-wide channel, to this node's probe
channel and to one channel per room that has local connections. A liveness probe published
to the node's own channel every half ``probe_interval`` must come back within the interval:
a Redis restart, a hung Redis or a deaf subscription is noticed within 1.5 intervals, the core
is told (``backplane_lost``: its participants hear that the other nodes' participants left),
and the driver reconnects and resubscribes until a probe comes back
(``backplane_restored``: presence is synced again).

redis-py's client is asyncio-only: this module works under asyncio (this package), not trio.
"""

from __future__ import annotations

import logging
import secrets
import struct
import time
from typing import TYPE_CHECKING, Any

import anyio
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from roomwire_anyio import redact_url

from roomwire import RemoteProtocolError

if TYPE_CHECKING:
    from roomwire_anyio import ServerPump

log = logging.getLogger("roomwire.backplane")

PREFIX = "roomwire:"
NODES_CHANNEL = PREFIX + "nodes"
"""Node-wide records (heartbeats)."""


def room_channel(room: str) -> str:
    return f"{PREFIX}room:{room}"


class _Deaf(Exception):
    """The subscription stopped hearing: a probe did not come back in time."""


class RedisBackplane:
    """Carries a node's backplane records through Redis pub/sub (see the module's doc)."""

    def __init__(self, pump: ServerPump, url: str, *, probe_interval: float = 1.0) -> None:
        if not probe_interval > 0:
            raise ValueError(f"probe_interval must be positive, got {probe_interval!r}")
        self._pump = pump
        self._core = pump.core
        self.url = url
        self.probe_interval = probe_interval
        node = pump.core.config.node_id
        assert node is not None
        self._probe_channel = f"{PREFIX}probe:{node}"
        self.healthy = False
        """True while the last probe came back in time."""
        self.lost_count = 0
        """How many times the backplane was lost (for health checks and tests)."""
        self._rooms: set[str] = set()
        """Rooms this node subscribes to (kept across reconnections)."""
        self._wake = anyio.Event()
        self._ready = anyio.Event()
        self._confirmed: dict[bytes, anyio.Event] = {}
        self._probe_sent = self._probe_back = 0
        self._probe_tag = secrets.token_hex(8)
        """Marks this process's probes: anything else on the probe channel is not one."""
        self._lost_at: float | None = time.monotonic()
        self._client: aioredis.Redis | None = None

    def wake(self) -> None:
        """The core may have records to publish: the publisher takes them next turn."""
        self._wake.set()

    async def wait_healthy(self, timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            await self._ready.wait()
        return self.healthy

    async def run(self) -> None:
        """Connect, serve, and after any failure tell the core and reconnect, forever."""
        self._core.backplane_lost(time.time())  # alone until the first probe comes back
        while True:
            failure: BaseException = _Deaf("the session ended")
            try:
                await self._session()
            except* (RedisError, OSError, _Deaf) as group:
                failure = group
                while isinstance(failure, BaseExceptionGroup):
                    failure = failure.exceptions[0]
            self._lose(failure)
            await anyio.sleep(self.probe_interval / 4)

    def _lose(self, exc: BaseException) -> None:
        if self.healthy:
            self.healthy = False
            self.lost_count += 1
            self._lost_at = time.monotonic()
            log.warning("backplane lost (%s: %s): reconnecting", type(exc).__name__, exc)
            self._core.backplane_lost(time.time())
            self._pump.flush()
        else:
            log.debug("backplane still down (%s: %s)", type(exc).__name__, exc)

    async def _session(self) -> None:
        client = aioredis.Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=max(self.probe_interval, 1.0),
            health_check_interval=0,
        )
        pubsub = client.pubsub()
        self._confirmed = {}
        try:
            channels = [self._probe_channel, NODES_CHANNEL, *map(room_channel, self._rooms)]
            await self._subscribe(pubsub, channels)
            self._client = client
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._read, pubsub)
                await self._await_confirmed(channels)
                tg.start_soon(self._publish, pubsub)
                tg.start_soon(self._probe, client)
        finally:
            self._client = None
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()

    async def _subscribe(self, pubsub: Any, channels: list[str]) -> None:
        for channel in channels:
            self._confirmed[channel.encode()] = anyio.Event()
        await pubsub.subscribe(*channels)

    async def _await_confirmed(self, channels: list[str]) -> None:
        with anyio.move_on_after(self.probe_interval * 2) as scope:
            for channel in channels:
                await self._confirmed[channel.encode()].wait()
        if scope.cancelled_caught:
            raise _Deaf(f"no subscription confirmed within {self.probe_interval * 2:g} s")

    async def _read(self, pubsub: Any) -> None:
        core, pump = self._core, self._pump
        probe = self._probe_channel.encode()
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind, channel = message["type"], message["channel"]
            if kind == "subscribe":
                event = self._confirmed.get(channel)
                if event is not None:
                    event.set()
            elif kind != "message":
                pass
            elif channel == probe:
                if not self._probe_came_back(message["data"]):
                    continue
                if not self.healthy:
                    self._restore()
            else:
                now = time.time()
                for record in _split(message["data"]):
                    try:
                        core.receive_backplane(record, now)
                    except RemoteProtocolError as exc:
                        log.warning("backplane: dropped a malformed record: %s", exc.reason)
                pump.flush()

    def _probe_came_back(self, data: bytes) -> bool:
        """Count a probe back; False for anything this node did not send (a forged or
        garbled record must neither crash the node nor blind the probe)."""
        tag, _, number = data.partition(b":")
        if tag != self._probe_tag.encode() or not (number.isdigit() and len(number) < 20):
            return False
        back = int(number)
        if not self._probe_back < back <= self._probe_sent:
            return False
        self._probe_back = back
        return True

    def _restore(self) -> None:
        self.healthy = True
        down = time.monotonic() - (self._lost_at or time.monotonic())
        if self.lost_count:
            log.warning("backplane restored after %.2f s: presence re-synced", down)
        else:
            log.info("backplane connected (%s)", redact_url(self.url))
        self._core.backplane_restored(time.time())
        self._ready.set()
        self._pump.flush()

    async def _probe(self, client: aioredis.Redis) -> None:
        """A probe every half interval; each has a whole interval to come back. A fault is
        thus noticed within 1.5 intervals, and a Redis that answers slowly (but within an
        interval) is not taken for a dead one."""
        half = self.probe_interval / 2
        while True:
            self._probe_sent += 1
            sent = self._probe_sent
            # Bounded even when Redis hangs rather than hangs up.
            with anyio.move_on_after(half):
                await client.publish(self._probe_channel, f"{self._probe_tag}:{sent}")
                await anyio.sleep(half)
            if self._probe_back < sent - 1:
                raise _Deaf(f"probe {sent - 1} not back within {self.probe_interval:g} s")

    async def _publish(self, pubsub: Any) -> None:
        """Everything the core has is published in one pipeline; what the core adds while
        that pipeline is out goes in the next one."""
        core = self._core
        client = self._client
        assert client is not None
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            # Both asked at once: a room freed by now needs no channel, even if these records
            # are its first (its last departures are published all the same).
            records = core.backplane_records()
            freed = set(core.rooms_freed())
            gone = self._rooms & freed
            self._rooms -= gone
            if records:
                topics = {topic for topic, _ in records if topic is not None}
                new = topics - self._rooms - freed
                if new:
                    # Subscribe first, so that the answers to this node's sync are heard.
                    self._rooms |= new
                    channels = [room_channel(room) for room in new]
                    await self._subscribe(pubsub, channels)
                    await self._await_confirmed(channels)
                await _send(client, records)
            if gone:
                # Nobody here is in those rooms any more: stop hearing them.
                await pubsub.unsubscribe(*map(room_channel, gone))

    async def drain(self, timeout: float) -> None:
        """Publish what the core still has (a closing node's departures), if connected."""
        client = self._client
        records = self._core.backplane_records()
        if client is None or not records or not self.healthy:
            return
        with anyio.move_on_after(timeout):
            try:
                await _send(client, records)
            except (RedisError, OSError) as exc:
                log.warning("backplane: departures not published on close: %s", exc)


BATCH_BYTES = 256 * 1024
"""A channel's records of one turn go out in messages of about this size at most."""
_PREFIX = struct.Struct(">I")


async def _send(client: aioredis.Redis, records: list[tuple[str | None, bytes]]) -> None:
    """One pipeline per turn; in it, one PUBLISH per channel carrying that channel's records
    in order, each with a 4-byte length prefix (so the subscribers parse one pub/sub message
    per channel and turn, not one per record)."""
    batches: dict[str | None, list[bytes]] = {}
    for topic, data in records:
        batches.setdefault(topic, []).extend((_PREFIX.pack(len(data)), data))
    pipe = client.pipeline(transaction=False)
    for topic, parts in batches.items():
        channel = NODES_CHANNEL if topic is None else room_channel(topic)
        size, start = 0, 0
        for index in range(1, len(parts), 2):
            size += len(parts[index])
            if size > BATCH_BYTES:
                pipe.publish(channel, b"".join(parts[start : index + 1]))
                size, start = 0, index + 1
        if start < len(parts):
            pipe.publish(channel, b"".join(parts[start:]))
    await pipe.execute()


def _split(data: bytes) -> list[bytes]:
    """The records of one pub/sub message (a truncated tail is dropped with a warning)."""
    records, offset, end = [], 0, len(data)
    while offset + 4 <= end:
        (size,) = _PREFIX.unpack_from(data, offset)
        if offset + 4 + size > end:
            break
        records.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    if offset != end:
        log.warning("backplane: dropped %d bytes that are not a whole record", end - offset)
    return records
