"""CBOR bombs: small frames that are expensive (or endless) to decode, or that declare far
more than they hold. Each must be refused with ``RemoteProtocolError(BAD_FRAME)``, quickly and
without a large allocation, whether it arrives before the hello or inside a request.

The bounds (50 ms of CPU, 2 MiB) are generous correctness bounds against hangs and blow-ups, not
benchmarks: a refusal normally takes well under a millisecond.
"""

from __future__ import annotations

import itertools
import struct
import time
import tracemalloc
from collections.abc import Callable

import cbor2
import pytest

from roomwire import (
    NEED_DATA,
    ClientConnection,
    Code,
    RemoteProtocolError,
    ServerConnection,
    State,
)
from roomwire.events import MessageReceived, RequestRefused
from roomwire.frames import HEADER

from ..core.helpers import RawPeer, Room, decode_frames, raw_peer, token
from . import watchdog

TIME_BOUND = 0.050
"""Seconds a refusal may take."""
PEAK_BOUND = 2 * 1024 * 1024
"""Bytes a refusal may allocate at its peak (tracemalloc), over four times the frame's size
(a frame body is copied out of the buffer and decoded: a large one costs its size a few
times over, and that is not a bomb)."""
HANG = 1.0
"""Seconds after which the watchdog calls it a hang."""
K = 1024


def head(major: int, length: int) -> bytes:
    """A CBOR head declaring ``length`` with the 4-byte (``< 2**32``) or 8-byte argument."""
    if length < 2**32:
        return bytes([major << 5 | 26]) + struct.pack(">I", length)
    return bytes([major << 5 | 27]) + struct.pack(">Q", length)


def bignum(size: int) -> bytes:
    """Tag 2 (positive bignum) around ``size`` bytes of 0xff."""
    return b"\xc2" + head(2, size) + b"\xff" * size


def text(value: bytes) -> bytes:
    return head(3, len(value)) + value


def doubling(times: int) -> list[object]:
    """``[v, v]`` nested ``times`` deep: 2**times leaves, but one shared value per level."""
    value: list[object] = [1]
    for _ in range(times):
        value = [value, value]
    return value


HUGE_POSITIVE = b"\x1b\x7f\xff\xff\xff\xff\xff\xff\xff"  # 2**63 - 1
HUGE_NEGATIVE = b"\x3b\x7f\xff\xff\xff\xff\xff\xff\xff"  # -2**63

FRESH = itertools.count()


def regular_expression() -> bytes:
    """Tag 35 around a 64 KiB pattern, different each time (``re`` caches what it compiled,
    so a repeated pattern would cost nothing the second time)."""
    return b"\xd8\x23" + text(b"(a|b)*" * (64 * K // 6) + str(next(FRESH)).encode())


BOMBS: dict[str, bytes | Callable[[], bytes]] = {
    # Nesting far past any depth cap.
    "10000 nested arrays": b"\x81" * 10_000 + b"\x00",
    "10000 nested maps": b"\xa1\x61a" * 10_000 + b"\x00",
    "10000 arrays and maps": b"\x81\xa1\x61a" * 5_000 + b"\x00",
    "10000 open indefinite arrays": b"\x9f" * 10_000,
    # Declared lengths of 2**32 and 2**64 in a frame of a few bytes.
    "bytes of 2**32 - 1": head(2, 2**32 - 1) + b"\x00" * 16,
    "bytes of 2**64 - 1": head(2, 2**64 - 1) + b"\x00" * 16,
    "text of 2**32 - 1": head(3, 2**32 - 1) + b"a" * 16,
    "text of 2**64 - 1": head(3, 2**64 - 1) + b"a" * 16,
    "array of 2**32 - 1": head(4, 2**32 - 1) + b"\x00" * 16,
    "array of 2**64 - 1": head(4, 2**64 - 1) + b"\x00" * 16,
    "map of 2**32 - 1": head(5, 2**32 - 1) + b"\x61a\x00" * 8,
    "map of 2**64 - 1": head(5, 2**64 - 1) + b"\x61a\x00" * 8,
    "array of 2**32 - 1 empty maps": head(4, 2**32 - 1) + b"\xa0" * 1000,
    # Tag chains.
    "10000 tags 0xffff": b"\xd9\xff\xff" * 10_000 + b"\x00",
    "10000 self-describe tags": b"\xd9\xd9\xf7" * 10_000 + b"\x00",
    "10000 shareable tags": b"\xd8\x1c" * 10_000 + b"\x00",
    "10000 8-byte tags": b"\xdb" + b"\xff" * 8 * 10_000 + b"\x00",
    # Indefinite lengths (not allowed in frames at all).
    "indefinite array": b"\x9f\x00\x01\xff",
    "indefinite map": b"\xbf\x61t\x61x\xff",
    "indefinite bytes": b"\x5f\x41\x00\x41\x01\xff",
    "indefinite text": b"\x7f\x61a\x61b\xff",
    # Semantic tags whose decoding does arithmetic on attacker-chosen sizes.
    "bigfloat, exponent 2**63 - 1": b"\xc5\x82" + HUGE_POSITIVE + b"\x01",
    "bigfloat, exponent -2**63": b"\xc5\x82" + HUGE_NEGATIVE + b"\x01",
    "decimal fraction, exponent 2**63 - 1": b"\xc4\x82" + HUGE_POSITIVE + b"\x01",
    "decimal fraction, exponent -2**63": b"\xc4\x82" + HUGE_NEGATIVE + b"\x01",
    "bigfloat, 64 KiB mantissa": b"\xc5\x82\x01" + bignum(64 * K),
    "decimal fraction, 64 KiB mantissa": b"\xc4\x82\x01" + bignum(64 * K),
    "decimal fraction, huge exponent and mantissa": b"\xc4\x82" + HUGE_POSITIVE + bignum(64 * K),
    "rational of two 64 KiB bignums": b"\xd8\x1e\x82" + bignum(64 * K) + bignum(64 * K),
    "epoch datetime of 1.8e308": b"\xc1\xfb\x7f\xef\xff\xff\xff\xff\xff\xff",
    "string datetime of 64 KiB": b"\xc0" + text(b"9" * 64 * K),
    "regular expression of 64 KiB": regular_expression,
    "MIME message of 512 KiB": b"\xd8\x24" + text(b"A: b\r\n" * (512 * K // 6)),
    "set of 100000 byte strings": b"\xd9\x01\x02" + head(4, 100_000) + b"\x41\x00" * 100_000,
    # Value sharing and string references: small on the wire, big or endless once decoded.
    "shared value that contains itself": b"\xd8\x1c\xa1\x61a\xd8\x1d\x00",
    "shared array doubling 26 times": cbor2.dumps({"v": doubling(26)}, value_sharing=True),
    "1 KiB string referenced 2000 times": cbor2.dumps(
        {"v": ["s" * K] * 2000}, string_referencing=True
    ),
}


def bomb(name: str) -> bytes:
    made = BOMBS[name]
    return made if isinstance(made, bytes) else made()


def broadcast_around(value: bytes) -> bytes:
    """A broadcast frame whose ``message`` is ``value`` (map of 4: t, rid, type, message)."""
    return (
        b"\xa4"
        + b"".join(
            cbor2.dumps(item) for item in ("t", "broadcast", "rid", 1, "type", "x", "message")
        )
        + value
    )


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


class Target:
    """A fresh room where bob is enabled, and mallory's connection to receive the bomb."""

    def __init__(self, placement: str) -> None:
        # The pre-authentication bound would refuse most bare bombs by their length alone:
        # lift it to the frame size, so that the decoder is what refuses them.
        self.room = Room(max_hello_size=1024 * K)
        self.bob = self.room.enabled("bob")
        self.bob.take()
        self.mallory: RawPeer = raw_peer(self.room, "mallory", hello=placement != "bare")
        if placement != "bare":
            self.mallory.client.send({"t": "enable", "rid": 1})
            self.room.pump()
        self.mallory.server.data_to_send()


PLACEMENTS = {
    "bare": lambda bomb: bomb,
    "in a broadcast": broadcast_around,
}
"""Where the bomb sits: the whole frame, before the hello; or the message of a broadcast
sent by an enabled participant."""


def refuse(target: Target, data: bytes) -> tuple[RemoteProtocolError, float]:
    """Feed ``data``; return the error it raises and the CPU seconds that took (CPU time, so
    that other processes on a loaded machine do not count)."""
    conn = target.mallory.server
    conn.receive_data(data)
    started = time.thread_time()
    with watchdog(HANG), pytest.raises(RemoteProtocolError) as caught:
        conn.next_event(target.room.now)
    return caught.value, time.thread_time() - started


def peak_of_refusal(target: Target, data: bytes) -> int:
    """Feed ``data``; return the peak bytes allocated while it is refused (tracemalloc)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        refuse(target, data)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("placement", list(PLACEMENTS))
@pytest.mark.parametrize("name", list(BOMBS))
def test_a_bomb_is_refused_quickly_and_cheaply(name: str, placement: str) -> None:
    body = PLACEMENTS[placement](bomb(name))
    assert len(body) < 1024 * K, "the bomb must fit the default 1 MiB frame"
    # Timed without tracemalloc (which slows allocation down), then measured with it.
    error, took = refuse(Target(placement), frame(body))
    assert error.code is Code.BAD_FRAME, (error.code, error.reason)
    assert took < TIME_BOUND, f"took {took * 1000:.0f} ms"
    fresh = PLACEMENTS[placement](bomb(name))  # same bytes, except where a cache would hide
    peak = peak_of_refusal(Target(placement), frame(fresh))
    assert peak < PEAK_BOUND + 4 * len(body), f"peak allocation {peak / K:.0f} KiB"


@pytest.mark.parametrize("name", list(BOMBS))
def test_a_bomb_closes_only_the_connection_that_sent_it(name: str) -> None:
    target = Target("in a broadcast")
    conn = target.mallory.server
    conn.receive_data(frame(broadcast_around(bomb(name))))
    with watchdog(HANG), pytest.raises(RemoteProtocolError) as caught:
        conn.next_event(target.room.now)
    assert conn.state is State.CLOSED
    assert decode_frames(conn.data_to_send())[-1] == {
        "t": "close",
        "code": int(caught.value.code),
        "reason": caught.value.reason,
    }
    target.room.pump()
    assert target.bob.client.state is State.ENABLED
    assert not [e for e in target.bob.take() if isinstance(e, MessageReceived)]


def half_precision_floats(room: Room) -> bytes:
    """CBOR's preferred serialization writes 1.5 as a 3-byte half-precision float; the
    server's re-encoding writes a 9-byte double: a send at the limit triples."""
    count = (room.server.config.max_send_size - 64) // 3
    return b"\xa1" + cbor2.dumps("v") + head(4, count) + b"\xf9\x3e\x00" * count


def string_references(room: Room) -> bytes:
    """String references (tags 256 and 25): a 1 KiB string named 2000 times in 7 KiB."""
    return cbor2.dumps({"v": ["s" * K] * 2000}, string_referencing=True)


@pytest.mark.parametrize("message", [half_precision_floats, string_references])
def test_a_send_is_never_delivered_larger_than_the_frame_limit(
    message: Callable[[Room], bytes],
) -> None:
    """The server decodes a send and re-encodes its message for delivery. Whatever the
    sender's encoding, the delivery must fit the frame limit every client was promised: the
    send is refused (BAD_FRAME or TOO_LARGE) or delivered within the limit, and the
    recipients are not closed for it."""
    room = Room()
    bob = room.enabled("bob")
    mallory = raw_peer(room, "mallory")
    mallory.client.send({"t": "enable", "rid": 1})
    room.pump()
    bob.take()
    body = broadcast_around(message(room))
    assert len(body) <= room.server.config.max_send_size
    mallory.server.receive_data(frame(body))
    error: RemoteProtocolError | None = None
    events = []
    try:
        events = list(iter(lambda: mallory.server.next_event(room.now), NEED_DATA))
    except RemoteProtocolError as exc:
        error = exc
    assert error is None or error.code is Code.BAD_FRAME
    refused = [e for e in events if isinstance(e, RequestRefused)]
    assert all(e.code is Code.TOO_LARGE for e in refused)
    closed = bob.server.state is State.CLOSED
    delivered = bob.server.data_to_send()
    assert not closed, f"bob was closed for it: {decode_frames(delivered)[-1]}"
    assert len(delivered) <= room.server.config.max_frame_size + 4, (
        f"a {len(body)}-byte send became a {len(delivered)}-byte delivery"
    )
    if delivered:
        bob.client.receive_data(delivered)
    room.pump()
    assert bob.client.state is State.ENABLED


# --- an over-limit length prefix ------------------------------------------------------


@pytest.mark.parametrize("over", ["by one", "2**31", "2**32 - 1"])
@pytest.mark.parametrize("side", ["server", "client"])
def test_an_over_limit_prefix_alone_is_refused_before_any_body(over: str, side: str) -> None:
    room = Room()
    conn: ServerConnection | ClientConnection
    if side == "server":
        conn = room.server.accept("mallory", room.now)
        limit = room.server.config.max_frame_size
    else:
        conn = ClientConnection(token=token(name="carol"), now=room.now)
        limit = conn.config.max_frame_size
    declared = {"by one": limit + 1, "2**31": 2**31, "2**32 - 1": 2**32 - 1}[over]
    assert declared > limit
    conn.data_to_send()
    prefix = HEADER.pack(declared)
    # Three bytes are not a prefix yet.
    conn.receive_data(prefix[:3])
    assert conn.next_event(room.now) is NEED_DATA
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        conn.receive_data(prefix[3:])
        with pytest.raises(RemoteProtocolError) as caught:
            conn.next_event(room.now)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.code is Code.FRAME_TOO_LARGE
    assert peak < 64 * K
    assert conn.state is State.CLOSED
    close = decode_frames(conn.data_to_send())[-1]
    assert close["t"] == "close"
    assert close["code"] == Code.FRAME_TOO_LARGE
    assert close["reason"]
    # The body that follows is not buffered.
    conn.receive_data(b"\x00" * 64 * K)
    assert len(conn._buffer) == 0  # white-box: released at the close, the body never kept


def test_the_broadcast_placement_routes_a_harmless_message() -> None:
    """The harness's own check: the same placement around an empty map is routed, so the
    bombs are refused for what they are, not for where they sit."""
    target = Target("in a broadcast")
    conn = target.mallory.server
    conn.receive_data(frame(broadcast_around(cbor2.dumps({}))))
    events = list(iter(lambda: conn.next_event(target.room.now), NEED_DATA))
    assert conn.state is State.ENABLED, events
    target.room.pump()
    got = [e for e in target.bob.take() if isinstance(e, MessageReceived)]
    assert len(got) == 1
