"""Item 3: CBOR bombs through the socket, against a server in its own process.

Deep nesting (10^5 levels, and a 1 MiB frame that never closes its arrays), huge declared
lengths (2^32 and 2^63 bytes, items and pairs), tag chains and expensive tags (bignums,
decimal fractions, shared references that build a cycle, regular expressions), indefinite
containers: each is sent on its own connection, before or after the hello, three times over.
Each must be refused with BAD_FRAME within ``REFUSAL_BOUND`` of its last byte, the server's
resident memory must stay within ``RSS_BOUND`` of what legitimate traffic of the same size
costs (its peak too: a decoder that believed a declared length would allocate gigabytes), and
a participant connected all along still gets its messages.
"""

from __future__ import annotations

import statistics
import struct
from typing import Any

import anyio
import cbor2
import pytest

from roomwire import PROTOCOL_VERSION, Code

from . import Inbox, MiB, close_codes, frame, raw_peer
from .conftest import Figures, StartServer

pytestmark = pytest.mark.anyio

REFUSAL_BOUND = 0.25
"""Seconds from a bomb's last byte to its close (a refusal takes a few milliseconds; a
decoder doing the bomb's work takes seconds or never ends)."""
RSS_BOUND = 16 * MiB
"""Bytes of resident memory the bombs may add, now and at the peak, over the baseline taken
after a legitimate frame of the maximum size."""
ROUNDS = 3
RETENTION = 0.5
"""The server's handshake timeout and heartbeat interval here (scaled down from 10 s and
25 s): the core keeps a closed connection, and the buffer holding its last frame, until its
pending timer entry expires, so memory is measured both at once and after this."""
K = 1024


def head(major: int, length: int) -> bytes:
    if length < 2**32:
        return bytes([major << 5 | 26]) + struct.pack(">I", length)
    return bytes([major << 5 | 27]) + struct.pack(">Q", length)


BOMBS: dict[str, bytes] = {
    "arrays 10^5 deep": b"\x81" * 100_000 + b"\x00",
    "maps 10^5 deep": b"\xa1\x61a" * 100_000 + b"\x00",
    "1 MiB of open arrays": b"\x81" * (MiB - 64),
    "indefinite arrays 10^5 deep": b"\x9f" * 100_000 + b"\xff" * 100_000,
    "bytes of 2^32": head(2, 2**32 - 1) + b"\x00" * 64,
    "text of 2^63": head(3, 2**63 - 1) + b"a" * 64,
    "array of 2^32 items": head(4, 2**32 - 1) + b"\x00" * 64,
    "map of 2^63 pairs": head(5, 2**63 - 1) + b"\x61a\x00" * 64,
    "array of 2^64-1 items": b"\x9b" + b"\xff" * 8 + b"\x00" * 64,
    "tag chain 10^5": b"\xc6" * 100_000 + b"\x00",
    "8-byte tag chain": (b"\xdb" + b"\x7f" + b"\xff" * 7) * 50_000 + b"\x00",
    "bignum of 900 KiB": b"\xc2" + head(2, 900 * K) + b"\xff" * (900 * K),
    "decimal fraction 10^(2^63)": b"\xc4\x82\x1b\x7f\xff\xff\xff\xff\xff\xff\xff\x01",
    "shared reference cycle": b"\xd8\x1c\x81\xd8\x1d\x00",
    "regular expression 64 KiB": b"\xd8\x23"
    + head(3, 64 * K)
    + b"(a|b)*" * (64 * K // 6)
    + b"a" * (64 * K % 6),
    "indefinite bytes in 300k chunks": b"\x5f" + b"\x41a" * 300_000 + b"\xff",
}


def bomb_frame(bomb: bytes, *, in_hello: bool) -> bytes:
    """The bomb as the value of a real frame's field (a hello's token, or a message)."""
    if in_hello:
        fields = [("t", "hello"), ("v", PROTOCOL_VERSION)]
        key = "token"
    else:
        fields = [("t", "broadcast"), ("rid", 1), ("type", "x")]
        key = "message"
    body = bytes([0xA0 | len(fields) + 1])
    for name, value in fields:
        body += cbor2.dumps(name) + cbor2.dumps(value)
    body += cbor2.dumps(key) + bomb
    return struct.pack(">I", len(body)) + body


def test_every_bomb_fits_a_frame() -> None:
    for bomb in BOMBS.values():
        assert len(bomb_frame(bomb, in_hello=False)) - 4 <= MiB


async def test_cbor_bombs_are_refused_quickly_in_bounded_memory(
    server_proc: StartServer, make_token: Any, rw: Any, figures: Figures
) -> None:
    server = await server_proc(
        handshake_timeout=RETENTION,
        heartbeat_interval=RETENTION,
        heartbeat_timeout=RETENTION / 2,
        # The pre-authentication bound would refuse the bombs in a hello by their length
        # alone: lift it to the frame size, so that the decoder is what refuses them.
        max_hello_size=MiB,
    )
    async with rw.connect(server.url, token=make_token("bystander"), reconnect=False) as room:
        bystander = Inbox(room)
        await room.messaging.enable()
        # The baseline: after a legitimate frame of (nearly) the maximum size went through.
        async with raw_peer(server.url, make_token("legit"), enable=True) as legit:
            big = {"pad": "x" * (MiB - 2 * K)}
            await legit.send(frame("broadcast", type="big", message=big, rid=2))
            await legit.until("ack", timeout=10)
            await bystander.wait_for(1)
        await anyio.sleep(0.2)
        baseline, baseline_peak = server.rss(), server.hwm()

        took: dict[str, list[float]] = {}
        for round_ in range(ROUNDS):
            for name, bomb in BOMBS.items():
                in_hello = round_ % 2 == 0
                token = None if in_hello else make_token("bomber")
                async with raw_peer(server.url, token) as peer:
                    await peer.send(bomb_frame(bomb, in_hello=in_hello))
                    sent = anyio.current_time()
                    frames = await peer.rest(timeout=REFUSAL_BOUND + 5)
                    took.setdefault(name, []).append(anyio.current_time() - sent)
                    assert close_codes(frames) == [Code.BAD_FRAME], name
                    assert peer.eof
        at_once, peak = server.rss(), server.hwm()
        # A closed connection's memory (its receive buffer, holding the bomb) is released
        # only when its last timer entry in the core expires: within the handshake timeout
        # or one heartbeat interval (see RETENTION).
        await anyio.sleep(RETENTION + 0.3)
        after = server.rss()

        # The bystander was never disturbed.
        await room.messaging.send_message(to=room.local_participant, type="still", message={"n": 1})
        await bystander.wait_for(2)
        assert [m.type for m in bystander.messages] == ["big", "still"]
        stats = await server.stats()
        assert stats["connections"] == 1
    slowest = max(max(times) for times in took.values())
    everything = [t for times in took.values() for t in times]
    assert slowest <= REFUSAL_BOUND, {k: max(v) for k, v in took.items()}
    assert at_once - baseline <= RSS_BOUND
    assert after - baseline <= RSS_BOUND  # freed, if not always given back to the system
    assert peak - max(baseline, baseline_peak) <= RSS_BOUND
    figures(
        bombs=len(everything),
        refusal_median_ms=round(statistics.median(everything) * 1000, 2),
        refusal_max_ms=round(slowest * 1000, 2),
        slowest=max(took, key=lambda k: max(took[k])),
        rss_baseline_mib=round(baseline / MiB, 1),
        rss_delta_at_once_kib=(at_once - baseline) // K,
        rss_delta_after_release_kib=(after - baseline) // K,
        peak_delta_kib=(peak - max(baseline, baseline_peak)) // K,
    )
