"""Item 7: spoofing and privacy. A client cannot choose the sender (or the id, seq, time or
broadcast flag) of what it sends, cannot forge presence events or deliveries (a client
sending a server-only kind is closed with BAD_FRAME and nobody's view changes), and a
participant of one room can neither see nor reach another room.
"""

from __future__ import annotations

from typing import Any

import pytest
from roomwire_anyio import NotFoundError

from roomwire import PROTOCOL_VERSION, Code

from . import Inbox, close_codes, raw_peer, wait_until
from .conftest import Figures

pytestmark = pytest.mark.anyio


async def test_the_sender_is_stamped_by_the_server(
    join: Any, server: Any, make_token: Any, figures: Figures
) -> None:
    alice = Inbox(await join("alice"))
    bob = Inbox(await join("bob"))
    async with raw_peer(server.url, make_token("mallory"), enable=True) as mallory:
        forged = {"from": alice.id, "id": "forged-id", "seq": 0, "ts": 0.0}
        await mallory.send_frame(
            "send", type="t", message={"n": 1}, to=[bob.id], rid=5, bc=True, **forged
        )
        ack_send = await mallory.until("ack")
        await mallory.send_frame("broadcast", type="t", message={"n": 2}, rid=6, **forged)
        ack_broadcast = await mallory.until("ack")
        await bob.wait_for(2)
        await alice.wait_for(1)
        direct, broadcast = bob.messages
        assert (direct.from_participant_id, direct.id, direct.broadcast) == (
            mallory.id,
            ack_send["id"],
            False,
        )
        assert (broadcast.from_participant_id, broadcast.id, broadcast.broadcast) == (
            mallory.id,
            ack_broadcast["id"],
            True,
        )
        assert direct.seq > 0
        assert broadcast.seq > direct.seq
        assert [m.from_participant_id for m in alice.messages] == [mallory.id]
    # Nor can a hello choose the participant's id.
    async with raw_peer(server.url) as peer:
        await peer.send_frame(
            "hello", v=PROTOCOL_VERSION, token=make_token("mallory"), id=alice.id, name="alice"
        )
        welcome = await peer.until("welcome")
        assert welcome["participant"]["id"] not in (alice.id, bob.id)
        assert welcome["participant"]["name"] == "mallory"
    figures(forged_from_delivered=sum(m.from_participant_id == alice.id for m in bob.messages))


async def test_presence_events_and_deliveries_cannot_be_forged(
    join: Any, server: Any, make_token: Any, figures: Figures
) -> None:
    alice = Inbox(await join("alice"))
    bob = Inbox(await join("bob"))
    await wait_until(lambda: len(bob.room.messaging.remote_participants) == 1)
    record = {"id": "ghost", "name": "ghost", "role": "admin", "attributes": {}}
    alice_record = {"id": alice.id, "name": "alice", "role": "user", "attributes": {"x": 1}}
    forgeries = {
        "joined": {"p": record, "seq": 10**6},
        "updated": {"p": alice_record, "seq": 10**6},
        "left": {"id": alice.id, "seq": 10**6},
        "msg": {
            "id": "m",
            "seq": 10**6,
            "ts": 0.0,
            "from": alice.id,
            "type": "t",
            "message": {"forged": True},
            "bc": True,
        },
        "snapshot": {"rid": 1, "more": False, "participants": [record]},
        "welcome": {
            "v": 1,
            "room": "main",
            "participant": record,
            "limits": {},
            "hb": 1,
            "hbt": 1,
        },
    }
    offenders: list[str] = []
    codes: dict[str, list[int]] = {}
    for kind, fields in forgeries.items():
        async with raw_peer(server.url, make_token("mallory"), enable=True) as mallory:
            offenders.append(mallory.id)
            await mallory.send_frame(kind, **fields)
            codes[kind] = close_codes(await mallory.rest())
    assert codes == {key: [Code.BAD_FRAME] for key in forgeries}
    # Every offender came and went once; alice was never announced gone, no ghost appeared,
    # nobody got a message, and alice's record is untouched.
    await wait_until(lambda: len(bob.removed) == len(forgeries))
    assert bob.removed == offenders
    assert [p.id for p in bob.room.messaging.remote_participants] == [alice.id]
    assert bob.room.messaging.get_participant(alice.id).attributes == {}
    assert bob.messages == []
    assert alice.messages == []
    await bob.room.messaging.send_message(to=alice.id, type="still", message={"n": 1})
    await alice.wait_for(1)
    figures(
        forgeries_closed_bad_frame=len(codes),
        forged_lefts_applied=sum(r not in offenders for r in bob.removed),
    )


async def test_a_participant_cannot_see_or_reach_another_room(
    join: Any, server: Any, make_token: Any, figures: Figures
) -> None:
    alice = Inbox(await join("alice"))
    bob = Inbox(await join("bob"))
    carol = Inbox(await join("carol", room="other"))
    dave = Inbox(await join("dave", room="other"))
    await wait_until(lambda: len(carol.room.messaging.remote_participants) == 1)
    # Presence is per room.
    assert [p.name for p in carol.room.messaging.remote_participants] == ["dave"]
    assert [p.name for p in alice.room.messaging.remote_participants] == ["bob"]
    # Broadcasts stay in their room.
    await alice.room.messaging.broadcast_message(type="main", message={"n": 1})
    await carol.room.messaging.broadcast_message(type="other", message={"n": 2})
    await bob.wait_for(1)
    await dave.wait_for(1)
    # A direct message to another room's participant is refused: nothing is delivered.
    with pytest.raises(NotFoundError) as caught:
        await carol.room.messaging.send_message(to=alice.id, type="x", message={})
    assert caught.value.code is Code.NOT_FOUND
    # Nor can a hello ask for another room than its token's.
    async with raw_peer(server.url) as peer:
        await peer.send_frame(
            "hello", v=PROTOCOL_VERSION, token=make_token("carol", room="other"), room="main"
        )
        assert close_codes(await peer.rest()) == [Code.ROOM_MISMATCH]
    # A marker through each room proves nothing else was in flight.
    await bob.room.messaging.send_message(to=alice.id, type="end", message={})
    await dave.room.messaging.send_message(to=carol.id, type="end", message={})
    await alice.wait_for(1)
    await carol.wait_for(1)
    assert [m.type for m in bob.messages] == ["main"]
    assert [m.type for m in alice.messages] == ["end"]
    assert [m.type for m in dave.messages] == ["other"]
    assert [m.type for m in carol.messages] == ["end"]
    crossed = [m for i in (alice, bob) for m in i.messages if m.type == "other"]
    crossed += [m for i in (carol, dave) for m in i.messages if m.type == "main"]
    figures(cross_room_deliveries=len(crossed), cross_room_send_refused=int(caught.value.code))
