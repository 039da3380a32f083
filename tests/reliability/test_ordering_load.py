"""Item 9: ordering under load. Ten participants broadcast 10^4 sequence-numbered messages
each (10^5 messages) through a server in its own process, pipelined. Eleven recipients — the
ten senders, and one listener through the client binding — get 10^6 deliveries between them.
Every recipient must get every sender's messages in the order sent, none lost or twice, and
all must see one room order: each one's ``seq`` only grows, and a message carries the same
``seq`` at every recipient.

The ten senders are raw peers (frames encoded once, written 100 at a time, and read back with
plain cbor2), so the run takes seconds even with the coverage tracer on: the binding's side of
ordering is also checked here, by the listener, and at a smaller scale by the bindings suite.
The senders run at the pace the recipients read (no sender more than ``WINDOW`` messages ahead
of its slowest recipient): they share this process, and without that window the server would
rightly close the laggards as slow consumers (item 4 covers that).
"""

from __future__ import annotations

from array import array
from typing import Any

import anyio
import cbor2
import pytest

from roomwire import RoomMessage

from . import RawPeer, frame, raw_peer, wait_until
from .conftest import Figures, StartServer

pytestmark = pytest.mark.anyio

SENDERS = 10
PER_SENDER = 10_000
WINDOW = 500
"""Messages a sender may be ahead of its slowest recipient (at about 100 bytes a delivery,
under 0.5 MiB queued for a recipient: within the default outbound bound of 1 MiB)."""
BATCH = 100
"""Frames per write."""
TIME_LIMIT = 90
"""Seconds for the whole exchange (it takes about 10 s per runtime on 2 cores)."""


class Recipient:
    """One participant's view, checked message by message."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.ids: dict[str, int] = {}
        self.next_n = [0] * SENDERS
        self.count = 0
        self.out_of_order = 0
        self.last_seq = -1
        self.seq_regressions = 0
        self.seq_of = array("q", [-1]) * (SENDERS * PER_SENDER)

    def delivered(self, sender_id: str, n: int, seq: int) -> None:
        sender = self.ids[sender_id]
        if n != self.next_n[sender]:
            self.out_of_order += 1  # a gap, a duplicate or a reordering
        self.next_n[sender] = n + 1
        if seq <= self.last_seq:
            self.seq_regressions += 1
        self.last_seq = seq
        self.seq_of[sender * PER_SENDER + n] = seq
        self.count += 1

    def on_message(self, message: RoomMessage) -> None:
        self.delivered(message.from_participant_id, message.message["n"], message.seq)


async def read_all(peer: RawPeer, recipient: Recipient) -> None:
    """Read frames until EOF, recording deliveries and answering pings."""
    buffer = bytearray()
    stream = peer.stream
    while True:
        try:
            buffer += await stream.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return
        pos, end = 0, len(buffer)
        while end - pos >= 4:
            size = int.from_bytes(buffer[pos : pos + 4], "big")
            if end - pos - 4 < size:
                break
            found = cbor2.loads(buffer[pos + 4 : pos + 4 + size])
            pos += 4 + size
            kind = found["t"]
            if kind == "msg":
                recipient.delivered(found["from"], found["message"]["n"], found["seq"])
            elif kind == "ping":
                await peer.send_frame("pong")
            elif kind == "error":
                raise AssertionError(f"a broadcast was refused: {found}")
        del buffer[:pos]


async def test_per_sender_fifo_and_one_room_order_for_ten_to_the_five_messages(
    server_proc: StartServer, make_token: Any, rw: Any, figures: Figures
) -> None:
    server = await server_proc()
    async with (
        rw.connect(server.url, token=make_token("listener"), reconnect=False) as room,
        anyio.create_task_group() as tg,
    ):
        listener = Recipient(SENDERS)
        room.messaging.on("message", listener.on_message)
        await room.messaging.enable()
        peers: list[RawPeer] = []
        recipients: list[Recipient] = []
        for i in range(SENDERS):
            peer = await tg.start(_open, server.url, make_token(f"s{i}"))
            peers.append(peer)
            recipients.append(Recipient(i))
        ids = {peer.id: i for i, peer in enumerate(peers)}
        for recipient in (*recipients, listener):
            recipient.ids = ids
        await wait_until(lambda: len(room.messaging.remote_participants) == SENDERS)
        for peer, recipient in zip(peers, recipients, strict=True):
            tg.start_soon(read_all, peer, recipient)

        async def send_all(i: int) -> None:
            others = [r for r in (*recipients, listener) if r.index != i]
            frames = [
                frame("broadcast", type="o", message={"n": n}, rid=n + 1) for n in range(PER_SENDER)
            ]
            for n in range(0, PER_SENDER, BATCH):
                while min(r.next_n[i] for r in others) < n - WINDOW:
                    await anyio.sleep(0.001)
                await peers[i].send(b"".join(frames[n : n + BATCH]))

        start = anyio.current_time()
        with anyio.fail_after(TIME_LIMIT):
            async with anyio.create_task_group() as senders:
                for i in range(SENDERS):
                    senders.start_soon(send_all, i)
            expected = (SENDERS - 1) * PER_SENDER
            await wait_until(
                lambda: (
                    all(r.count >= expected for r in recipients)
                    and listener.count >= SENDERS * PER_SENDER
                ),
                timeout=TIME_LIMIT,
            )
        took = anyio.current_time() - start
        hwm = server.hwm()
        tg.cancel_scope.cancel()

    lost = sum(expected - r.count for r in recipients) + SENDERS * PER_SENDER - listener.count
    for recipient in recipients:
        assert recipient.count == expected
        assert recipient.next_n == [0 if i == recipient.index else PER_SENDER for i in range(10)]
    assert listener.count == SENDERS * PER_SENDER
    assert listener.next_n == [PER_SENDER] * SENDERS
    everyone = (*recipients, listener)
    for recipient in everyone:
        assert recipient.out_of_order == 0
        assert recipient.seq_regressions == 0
    # One room order: every message has the same seq wherever it was delivered.
    differing = 0
    for key in range(SENDERS * PER_SENDER):
        seqs = {r.seq_of[key] for r in everyone if r.index != key // PER_SENDER}
        differing += len(seqs) != 1 or -1 in seqs
    assert differing == 0
    figures(
        messages=SENDERS * PER_SENDER,
        deliveries=sum(r.count for r in everyone),
        lost=lost,
        out_of_order=sum(r.out_of_order for r in everyone),
        seq_disagreements=differing,
        seconds=round(took, 1),
        msgs_per_s=round(SENDERS * PER_SENDER / took),
        server_peak_rss_mib=round(hwm / 2**20, 1),
    )


async def _open(url: str, token: str, *, task_status: Any) -> None:
    """A raw sender, enabled, kept open until the test's task group ends."""
    async with raw_peer(url, token, enable=True) as peer:
        task_status.started(peer)
        await anyio.sleep_forever()
