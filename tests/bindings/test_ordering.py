"""Ordering: per-sender order to each recipient, and one room order for broadcasts."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from roomwire.events import MessageReceived

from . import Join, collect, participant

pytestmark = pytest.mark.anyio

SENDERS = 4
PER_SENDER = 100


async def test_per_sender_order_none_lost_or_duplicated(join: Join) -> None:
    sink = await join("sink")
    senders = [await join(f"s{i}") for i in range(SENDERS)]

    async def send_all(room: Any) -> None:
        messaging = room.messaging
        to = messaging.get_participant_by_name("sink")
        for n in range(PER_SENDER - 1):
            await messaging.send_message(to=to, type="seq", message={"n": n}, wait=False)
        await messaging.send_message(to=to, type="seq", message={"n": PER_SENDER - 1})

    async with anyio.create_task_group() as tg:
        for room in senders:
            tg.start_soon(send_all, room)

    got = await collect(sink, SENDERS * PER_SENDER, MessageReceived)
    by_sender: dict[str, list[int]] = {}
    for event in got:
        by_sender.setdefault(event.message.from_participant_id, []).append(
            event.message.message["n"]
        )
    assert by_sender == {room.local_participant.id: list(range(PER_SENDER)) for room in senders}
    assert len({event.message.id for event in got}) == SENDERS * PER_SENDER


BROADCASTERS = 3
LISTENERS = 2
PER_BROADCASTER = 40


async def test_broadcasts_seen_in_one_room_order(join: Join) -> None:
    listeners = [await join(f"l{i}") for i in range(LISTENERS)]
    broadcasters = [await join(f"b{i}") for i in range(BROADCASTERS)]
    for room in (*listeners, *broadcasters):  # everyone sees everyone before sending
        for other in broadcasters:
            if other is not room:
                await participant(room, other.local_participant.name)

    async def broadcast_all(room: Any) -> None:
        messaging = room.messaging
        for n in range(PER_BROADCASTER - 1):
            await messaging.broadcast_message(type="bc", message={"n": n}, wait=False)
        await messaging.broadcast_message(type="bc", message={"n": PER_BROADCASTER - 1})

    async with anyio.create_task_group() as tg:
        for room in broadcasters:
            tg.start_soon(broadcast_all, room)

    total = BROADCASTERS * PER_BROADCASTER
    seen: dict[str, list[Any]] = {}
    for room in (*listeners, *broadcasters):
        expected = total if room in listeners else total - PER_BROADCASTER
        got = await collect(room, expected, MessageReceived)
        seen[room.local_participant.id] = [event.message for event in got]

    reference = seen[listeners[0].local_participant.id]
    assert len({m.id for m in reference}) == total
    assert [m.seq for m in reference] == sorted(m.seq for m in reference)
    for room in broadcasters:
        sender = room.local_participant.id
        mine = [m.message["n"] for m in reference if m.from_participant_id == sender]
        assert mine == list(range(PER_BROADCASTER))
    for me, messages in seen.items():
        # The same order everywhere: the reference order without my own broadcasts.
        assert [m.id for m in messages] == [m.id for m in reference if m.from_participant_id != me]
