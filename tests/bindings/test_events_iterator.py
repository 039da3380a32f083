"""``room.messaging.events()``: leaving it with ``break`` needs no ``aclosing`` on either
runtime (pytest turns the warning an unfinalized async generator would give into an error),
``aclose()`` ends it, and the event classes come from the binding itself."""

from __future__ import annotations

import gc
from types import ModuleType

import anyio
import pytest

from . import WAIT, Join

pytestmark = pytest.mark.anyio


async def test_break_out_of_events_leaves_nothing_to_finalize(rw: ModuleType, join: Join) -> None:
    alice, bob = await join("alice"), await join("bob")
    for n in range(2):
        await alice.messaging.send_message(to=bob.local_participant, type="n", message={"n": n})
    seen = []
    with anyio.fail_after(WAIT):
        for _ in range(2):  # each loop takes one event and leaves at once
            async for event in bob.messaging.events():
                if isinstance(event, rw.MessageReceived):
                    seen.append(event.message.message["n"])
                    break
    gc.collect()  # an abandoned async generator would be finalized (and warn) here
    assert seen == [0, 1]


async def test_aclose_ends_the_iteration(rw: ModuleType, join: Join) -> None:
    bob = await join("bob")
    events = bob.messaging.events()
    await events.aclose()
    assert [event async for event in events] == []


def test_event_classes_are_the_binding_names(rw: ModuleType) -> None:
    import roomwire_anyio  # noqa: PLC0415 - the events' home, compared with the binding's

    from roomwire import events  # noqa: PLC0415

    for name in ("MessageReceived", "ParticipantAdded", "ParticipantRemoved",
                 "ParticipantUpdated", "MessagingEnabled", "MessagingDisabled"):  # fmt: skip
        assert getattr(rw, name) is getattr(events, name)
        assert name in rw.__all__
    for name in ("Disconnected", "Reconnected", "SendFailed", "EventsDropped"):
        assert getattr(rw, name) is getattr(roomwire_anyio.events, name)
        assert name in rw.__all__
