"""Item 1: 1,000 malformed frames while 20 participants chat.

The corpus mixes random bytes, truncated CBOR, wrong field types, unknown kinds, server-only
kinds, CBOR-rule breaches (indefinite lengths, duplicate keys, tags, non-text keys), empty and
oversized prefixes, and well-formed frames the state does not allow. Every frame has the close
code it must earn. One offender sends all 1,000 on one connection (it is closed once, with the
first frame's code, and the others see it leave once); then 10 frames of every category are
tried again on a connection of their own, each closed with exactly its own code. Meanwhile 20
participants broadcast sequence-numbered messages: each must receive every message of every
other, in order, none twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import anyio
import cbor2
import pytest

from roomwire import PROTOCOL_VERSION, Code, RemoteProtocolError
from roomwire.frames import CLIENT_FRAMES, HEADER, FrameBuffer, check_frame, decode_payload

from . import WAIT, Inbox, close_codes, raw_peer, wait_until
from .conftest import Figures

pytestmark = pytest.mark.anyio

FRAMES = 1000
CHATTERS = 20
MIN_MESSAGES = 20
"""Each chatter sends at least this many, and goes on until the offenders are done."""
MAX_MESSAGES = 1000
PACE = 0.1
"""Seconds between one chatter's broadcasts (20 chatters: 200 broadcasts, 3,800 deliveries
a second)."""
PER_CATEGORY = 10
"""Frames of each category tried again on a connection of their own (100 in all)."""
WORKERS = 8
"""Offender connections at a time in the one-frame-per-connection pass."""
MAX_FRAME = 1024 * 1024

Corpus = list[tuple[bytes, Code, str]]


def prefixed(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def valid_bodies(rng: random.Random) -> list[bytes]:
    """Well-formed client frames, to be cut short."""
    return [
        cbor2.dumps(
            {"t": "send", "type": "chat", "message": {"n": rng.random()}, "to": ["x"], "rid": 9}
        ),
        cbor2.dumps({"t": "broadcast", "type": "chat", "message": {"k": [1, 2]}, "rid": 7}),
        cbor2.dumps({"t": "attrs", "attributes": {"mood": "fine"}, "rid": 3}),
        cbor2.dumps({"t": "hello", "v": PROTOCOL_VERSION, "token": "a.b.c"}),
        cbor2.dumps({"t": "ping"}),
    ]


WRONG_TYPES: list[dict[Any, Any]] = [
    {"t": "send", "type": "x", "message": {}, "to": ["a"], "rid": "1"},
    {"t": "send", "type": "x", "message": {}, "to": "a", "rid": 1},
    {"t": "send", "type": "x", "message": {}, "to": [1], "rid": 1},
    {"t": "send", "type": "x", "message": [], "to": ["a"], "rid": 1},
    {"t": "send", "type": 5, "message": {}, "to": ["a"], "rid": 1},
    {"t": "broadcast", "type": "x", "message": {}, "rid": -1},
    {"t": "broadcast", "type": "x", "message": {}, "rid": 2**63},
    {"t": "broadcast", "type": "x", "message": {}, "att": "text", "rid": 1},
    {"t": "broadcast", "type": "x", "rid": 1},
    {"t": "attrs", "attributes": [1], "rid": 1},
    {"t": "enable", "presence": "yes", "rid": 1},
    {"t": "enable", "rid": 1.5},
    {"t": "disable"},
    {"t": "close", "code": "1000", "reason": "r"},
    {"t": "close", "code": 1234, "reason": "r"},
    {"t": "close", "code": 4000, "reason": "r"},
    {"t": "close", "code": 1006, "reason": "r"},
    {"t": "close", "code": 1000},
    {"t": 7},
    {"kind": "ping"},
    {"t": "hello", "v": "1", "token": "x"},
]

SERVER_ONLY: list[dict[str, Any]] = [
    {"t": "msg", "id": "m", "seq": 1, "ts": 1.0, "from": "x", "type": "a", "message": {}, "bc": 1},
    {"t": "joined", "p": {"id": "x", "name": "x", "role": "user", "attributes": {}}, "seq": 1},
    {"t": "updated", "p": {"id": "x", "name": "x", "role": "user", "attributes": {}}, "seq": 2},
    {"t": "left", "id": "x", "seq": 3},
    {"t": "welcome", "v": 1, "room": "main", "participant": {}, "limits": {}, "hb": 1, "hbt": 1},
    {"t": "snapshot", "rid": 1, "more": False, "participants": []},
    {"t": "ack", "rid": 1, "id": "m"},
    {"t": "error", "rid": 1, "code": 4000, "reason": "no"},
]

RULE_BREACHES = [
    b"\xbf\x61t\x64ping\xff",  # indefinite-length map
    b"\xa1\x61t\x7f\x62pi\x62ng\xff",  # indefinite-length text
    b"\xa2\x61t\x64ping\x61t\x64ping",  # duplicate key
    b"\xa2\x61t\x64ping\x01\x02",  # integer key
    b"\xa2\x61t\x64ping\x81\x01\x02",  # array key
    b"\xa1\x61t\xc0\x64ping",  # a tag on the kind
    b"\xd9\xd9\xf7\xa1\x61t\x64ping",  # the self-describe tag in front
    b"\xa1\x61t\x64pin\xff",  # invalid UTF-8 in a text
    b"\xa1\x61t\x1c",  # a reserved additional-info value
    b"\xa1\x61t\xf7",  # undefined as the kind
]


def corpus(seed: int = 5) -> Corpus:
    """``FRAMES`` malformed frames, in a shuffled but reproducible order, each with the code
    it must be closed with (sent by a participant that completed the handshake)."""
    rng = random.Random(seed)
    kinds: list[Callable[[], tuple[bytes, Code, str]]] = []

    def random_bytes() -> tuple[bytes, Code, str]:
        body = rng.randbytes(rng.randint(1, 300))
        if 0xA0 <= body[0] <= 0xBF:  # a map might decode; keep it garbage
            body = b"\xff" + body[1:]
        return prefixed(body), Code.BAD_FRAME, "random bytes"

    def truncated() -> tuple[bytes, Code, str]:
        body = rng.choice(valid_bodies(rng))
        return prefixed(body[: rng.randint(1, len(body) - 1)]), Code.BAD_FRAME, "truncated"

    def wrong_type() -> tuple[bytes, Code, str]:
        return prefixed(cbor2.dumps(rng.choice(WRONG_TYPES))), Code.BAD_FRAME, "wrong types"

    def unknown_kind() -> tuple[bytes, Code, str]:
        while (kind := rng.randbytes(rng.randint(1, 12)).hex()) in CLIENT_FRAMES:
            pass
        return prefixed(cbor2.dumps({"t": kind, "rid": 1})), Code.BAD_FRAME, "unknown kind"

    def server_only() -> tuple[bytes, Code, str]:
        return prefixed(cbor2.dumps(rng.choice(SERVER_ONLY))), Code.BAD_FRAME, "server kind"

    def not_a_map() -> tuple[bytes, Code, str]:
        value = rng.choice([["t", "ping"], 5, "ping", None, b"t", 1.5, True, [{"t": "ping"}]])
        return prefixed(cbor2.dumps(value)), Code.BAD_FRAME, "not a map"

    def rule_breach() -> tuple[bytes, Code, str]:
        return prefixed(rng.choice(RULE_BREACHES)), Code.BAD_FRAME, "CBOR rule"

    def empty() -> tuple[bytes, Code, str]:
        return HEADER.pack(0) + rng.randbytes(8), Code.BAD_FRAME, "empty frame"

    def oversize() -> tuple[bytes, Code, str]:
        size = rng.randint(MAX_FRAME + 1, 2**32 - 1)
        return HEADER.pack(size) + rng.randbytes(16), Code.FRAME_TOO_LARGE, "oversize prefix"

    def not_allowed() -> tuple[bytes, Code, str]:
        hello = {"t": "hello", "v": PROTOCOL_VERSION, "token": "again"}
        return prefixed(cbor2.dumps(hello)), Code.PROTOCOL_ERROR, "second hello"

    kinds += [random_bytes, truncated, wrong_type, unknown_kind, server_only, not_a_map]
    kinds += [rule_breach, empty, oversize, not_allowed]
    frames = [kinds[i % len(kinds)]() for i in range(FRAMES)]
    rng.shuffle(frames)
    return frames


def test_the_corpus_is_what_it_claims() -> None:
    """The corpus itself: 1,000 frames, every category present, no frame the core accepts."""
    frames = corpus()
    assert len(frames) == FRAMES
    assert len({category for _, _, category in frames}) == 10
    for data, code, _ in frames:
        if code is Code.PROTOCOL_ERROR:
            continue  # well-formed: it is the state that refuses it
        buffer = FrameBuffer(MAX_FRAME)
        buffer.feed(data)
        with pytest.raises(RemoteProtocolError) as caught:
            _decode_one(buffer)
        assert caught.value.code is code


def _decode_one(buffer: FrameBuffer) -> None:
    payload = buffer.next_payload()
    assert payload is not None
    check_frame(decode_payload(payload), CLIENT_FRAMES)


@pytest.mark.server(max_frame_size=MAX_FRAME)
async def test_malformed_frames_close_only_the_offender(
    join: Any, server: Any, make_token: Any, figures: Figures
) -> None:
    frames = corpus()
    chatters = [Inbox(await join(f"c{i}")) for i in range(CHATTERS)]
    for inbox in chatters:
        await wait_until(lambda inbox=inbox: len(inbox.room.messaging.remote_participants) == 19)
    sent: dict[str, int] = {}
    offence_over = anyio.Event()

    async def chat(inbox: Inbox) -> None:
        messaging, n = inbox.room.messaging, 0
        while n < MIN_MESSAGES or (not offence_over.is_set() and n < MAX_MESSAGES - 1):
            await messaging.broadcast_message(type="chat", message={"n": n}, wait=False)
            n += 1
            await anyio.sleep(PACE)
        await messaging.broadcast_message(type="chat", message={"n": n})  # acked: all are in
        sent[inbox.id] = n + 1

    blaster: dict[str, Any] = {}

    async def blast() -> None:
        """All 1,000 frames on one connection, in one write."""
        async with raw_peer(server.url, make_token("offender"), enable=True) as peer:
            blaster["id"] = peer.id
            for inbox in chatters:  # everyone sees the offender before it strikes
                await wait_until(
                    lambda inbox=inbox: inbox.room.messaging.get_participant(peer.id) is not None
                )
            await peer.send(b"".join(data for data, _, _ in frames))
            blaster["frames"] = await peer.rest()

    mismatches: list[tuple[str, list[int], Code]] = []
    tried = 0
    sample: Corpus = []
    for category in {category for _, _, category in frames}:
        sample += [f for f in frames if f[2] == category][:PER_CATEGORY]

    async def one_per_connection(worker: int) -> None:
        nonlocal tried
        token = make_token(f"offender-{worker}")
        for data, code, category in sample[worker::WORKERS]:
            async with raw_peer(server.url, token) as peer:
                await peer.send(data)
                codes = close_codes(await peer.rest())
            tried += 1
            if codes != [code]:
                mismatches.append((category, codes, code))

    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        for inbox in chatters:
            tg.start_soon(chat, inbox)
        await blast()
        async with anyio.create_task_group() as offenders:
            for worker in range(WORKERS):
                offenders.start_soon(one_per_connection, worker)
        offence_over.set()
    offence = anyio.current_time() - start

    # The offender: exactly one close, with the first frame's code, then nothing.
    assert close_codes(blaster["frames"]) == [frames[0][1]]
    assert blaster["frames"][-1]["t"] == "close"
    # Each frame on its own connection earns exactly its own code.
    assert tried == len(sample) == 10 * PER_CATEGORY
    assert mismatches == []
    # The others: every message from every other chatter, in order, none twice; and the
    # offender announced as gone exactly once.
    lost = duplicated = 0
    for inbox in chatters:
        await inbox.wait_for(sum(sent.values()) - sent[inbox.id], timeout=WAIT)
        for sender, count in sent.items():
            if sender != inbox.id:
                got = inbox.numbers_from(sender)
                lost += len(set(range(count)) - set(got))
                duplicated += len(got) - len(set(got))
                assert got == list(range(count))
        assert len({m.id for m in inbox.messages}) == len(inbox.messages)
        assert inbox.removed.count(blaster["id"]) == 1
    await wait_until(lambda: server.connection_count == CHATTERS)
    figures(
        offender_closes=close_codes(blaster["frames"]),
        frames_one_per_connection=tried,
        code_mismatches=len(mismatches),
        chat_messages=sum(sent.values()),
        deliveries=sum(len(i.messages) for i in chatters),
        lost=lost,
        duplicated=duplicated,
        offence_s=round(offence, 2),
    )
