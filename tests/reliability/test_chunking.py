"""Item 11: chunking. One scripted session of valid traffic (hello, enable, attributes, direct
messages and broadcasts with attachments up to 60 KiB, two refused requests, a ping, disable,
enable again, close) is written to the server in one piece, then cut at random into pieces of
1 byte to 64 KiB (log-uniform sizes, so both ends are common), the first 2 KiB of one run one
byte at a time. Every run must give the same deliveries and presence changes to the two
listeners, and the same replies to the sender, as the unsplit run.
"""

from __future__ import annotations

import math
import random
from typing import Any

import anyio
import pytest

from roomwire import PROTOCOL_VERSION

from . import Inbox, RawPeer, frame, raw_peer, wait_until
from .conftest import Figures

pytestmark = pytest.mark.anyio

SEEDS = [1, 2, 3, 4, 5]
MAX_PIECE = 64 * 1024
BYTE_BY_BYTE = 2048


def script(token: str, bob: str, carol: str, rng: random.Random) -> bytes:
    frames = [
        frame("hello", v=PROTOCOL_VERSION, token=token),
        frame("enable", rid=1),
        frame("attrs", attributes={"mood": "chunky", "n": 1}, rid=2),
    ]
    rid = 3
    for n in range(40):
        size = rng.choice([0, 1, 100, 4000, 20_000, 60_000])
        fields: dict[str, Any] = {
            "type": f"t{n % 3}",
            "message": {"n": n, "pad": "p" * rng.randint(0, 300), "f": n / 7},
            "rid": rid,
        }
        if size:
            fields["att"] = rng.randbytes(size)
        if n % 4 == 3:
            frames.append(frame("broadcast", **fields))
        else:
            frames.append(frame("send", to=[bob] if n % 2 else [bob, carol], **fields))
        rid += 1
    frames += [
        frame("send", type="x", message={}, to=["nobody"], rid=rid),  # NOT_FOUND
        frame("broadcast", type="", message={}, rid=rid + 1),  # INVALID_REQUEST
        frame("ping"),
        frame("disable", rid=rid + 2),
        frame("enable", rid=rid + 3),
        frame("broadcast", type="last", message={"n": 99}, rid=rid + 4),
        frame("close", code=1000, reason="done"),
    ]
    return b"".join(frames)


def pieces(data: bytes, seed: int | None) -> list[bytes]:
    """``data`` cut into log-uniform pieces of 1 byte to 64 KiB (seed None: one piece; seed
    1 also sends its first ``BYTE_BY_BYTE`` bytes one at a time)."""
    if seed is None:
        return [data]
    rng = random.Random(seed)
    cut: list[bytes] = []
    pos = 0
    if seed == 1:
        cut += [data[i : i + 1] for i in range(BYTE_BY_BYTE)]
        pos = BYTE_BY_BYTE
    while pos < len(data):
        size = int(math.exp(rng.uniform(0, math.log(MAX_PIECE))))
        cut.append(data[pos : pos + size])
        pos += size
    return cut


def normalize(frame_: dict[str, Any], sender: str) -> tuple[Any, ...]:
    """What the sender receives, without what differs by connection (ids, seq, time)."""
    kind = frame_["t"]
    if kind == "welcome":
        return (kind, frame_["room"], frame_["participant"]["name"], frame_["limits"])
    if kind == "snapshot":
        return (kind, frame_["rid"], sorted(p["name"] for p in frame_["participants"]))
    if kind == "ack":
        return (kind, frame_["rid"], "id" in frame_)
    if kind == "error":
        return (kind, frame_["rid"], frame_["code"])
    if kind == "close":
        return (kind, frame_["code"], frame_["reason"])
    return (kind,)


async def test_random_splits_give_the_same_deliveries(
    join: Any, server: Any, make_token: Any, figures: Figures
) -> None:
    bob, carol = Inbox(await join("bob")), Inbox(await join("carol"))
    presence: dict[str, list[tuple[Any, ...]]] = {bob.id: [], carol.id: []}
    for inbox in (bob, carol):
        log = presence[inbox.id]
        messaging = inbox.room.messaging
        messaging.on("participant_added", lambda p, log=log: log.append(("+", p.name)))
        messaging.on(
            "participant_updated", lambda p, log=log: log.append(("~", p.name, p.attributes))
        )
        messaging.on("participant_removed", lambda p, log=log: log.append(("-", p.name)))
    await wait_until(lambda: len(bob.room.messaging.remote_participants) == 1)
    data = script(make_token("chunky"), bob.id, carol.id, random.Random(11))

    async def run(seed: int | None) -> tuple[Any, ...]:
        marks = {i.id: (len(i.messages), len(presence[i.id])) for i in (bob, carol)}
        cut = pieces(data, seed)
        assert b"".join(cut) == data
        assert seed is None or all(1 <= len(p) <= MAX_PIECE for p in cut)
        async with raw_peer(server.url) as peer:
            replies: list[dict[str, Any]] = []

            async def read(peer: RawPeer) -> None:
                replies.extend(await peer.rest(timeout=20))

            async with anyio.create_task_group() as tg:
                tg.start_soon(read, peer)
                for piece in cut:
                    await peer.send(piece)
                    await anyio.sleep(0)  # let the server read this piece on its own
        sender = next(f["participant"]["id"] for f in replies if f["t"] == "welcome")
        for inbox in (bob, carol):
            await wait_until(
                lambda inbox=inbox: (
                    presence[inbox.id][-1:] == [("-", "chunky")]
                    and len(presence[inbox.id]) > marks[inbox.id][1] + 3
                )
            )
        deliveries = []
        for inbox in (bob, carol):
            start, presence_start = marks[inbox.id]
            got = inbox.messages[start:]
            seqs = [m.seq for m in got]
            assert seqs == sorted(set(seqs))
            deliveries.append(
                (
                    [
                        (
                            m.from_participant_id == sender,
                            m.type,
                            m.message,
                            m.attachment,
                            m.broadcast,
                        )
                        for m in got
                    ],
                    presence[inbox.id][presence_start:],
                )
            )
        return (tuple(normalize(f, sender) for f in replies), deliveries, len(cut))

    reference = await run(None)
    replies, deliveries, _ = reference
    assert replies[-1] == ("close", 1000, "done")
    assert [r for r in replies if r[0] == "error"] == [("error", 43, 4040), ("error", 44, 4000)]
    assert ("pong",) in replies
    counts = [len(d[0]) for d in deliveries]
    assert counts == [41, 31]  # bob: all 40 + last; carol: 10 broadcasts, 20 sends, last
    piece_counts = []
    differing = []
    for seed in SEEDS:
        result = await run(seed)
        piece_counts.append(result[2])
        if result[:2] != (replies, deliveries):
            differing.append(seed)
    assert differing == []
    figures(
        stream_kib=len(data) // 1024,
        runs=len(SEEDS),
        pieces_per_run=piece_counts,
        differing_runs=len(differing),
        deliveries_per_run=sum(counts),
    )
