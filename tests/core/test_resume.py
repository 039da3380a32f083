"""Resume after reconnect (PROTOCOL.md §22), through the public API of the core: a lost
connection's participant stays present for ``resume_window``; a hello presenting its resume
info takes it back and gets what it missed, in order, before live traffic."""

from __future__ import annotations

from typing import Any

import attrs
import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import roomwire._room
from roomwire import (
    ClientConnection,
    Code,
    ParticipantToken,
    RemoteProtocolError,
    ResumeInfo,
    ServerConfig,
    State,
)
from roomwire.events import (
    Connected,
    MessageReceived,
    MessagingEnabled,
    ParticipantAdded,
    ParticipantRemoved,
    RequestAcked,
    RequestRefused,
)
from roomwire.frames import encode_frame

from .helpers import SECRET, Room, token
from .test_backplane import prefixed_ids


def _room(**config: object) -> tuple[Room, ResumeInfo]:
    """Alice and bob enabled in a room; alice's resume info after a message from bob."""
    room = Room(**config)  # type: ignore[arg-type]
    alice, bob = room.enabled("alice"), room.enabled("bob")
    bob.client.broadcast_message("chat", {"n": 0})
    room.pump()
    alice.take()
    bob.take()
    info = alice.client.resume_info
    assert info is not None
    return room, info


def _texts(events: list[object]) -> list[object]:
    return [e.message.message["n"] for e in events if isinstance(e, MessageReceived)]


def test_a_cut_participant_stays_present_and_takes_its_id_back_with_what_it_missed() -> None:
    room, _ = _room()
    alice_id = room.peers["alice"].client.local_participant.id  # type: ignore[union-attr]
    info = room.cut("alice")
    assert info is not None
    assert info.participant_id == alice_id
    assert info.enabled
    bob = room.peers["bob"]
    bob.take()
    assert room.server.suspended_count == 1
    # Present for the others: sends to it are accepted, broadcasts go on.
    bob.client.send_message(alice_id, "chat", {"n": 1})
    bob.client.broadcast_message("chat", {"n": 2})
    room.pump()
    assert [type(e) for e in bob.take()] == [RequestAcked, RequestAcked]
    alice = room.join("alice", resume=info)
    assert bob.take() == []  # no removed/added flicker
    events = alice.take()
    connected = events[0]
    assert isinstance(connected, Connected)
    assert connected.participant.id == alice_id
    assert (connected.resumed, connected.recovered, connected.missed) == (True, True, 2)
    assert isinstance(events[1], MessagingEnabled)
    assert events[1].request_id == 0
    assert [p.name for p in events[1].participants] == ["alice", "bob"]
    assert _texts(events) == [1, 2]
    assert room.server.suspended_count == 0
    # Live traffic after the replay, and the client's position goes on.
    bob.client.broadcast_message("chat", {"n": 3})
    room.pump()
    assert _texts(alice.take()) == [3]
    again = alice.client.resume_info
    assert again is not None
    assert again.seq > info.seq


def test_a_resume_past_the_window_gets_a_new_id_and_recovered_false() -> None:
    room, _ = _room(resume_window=5.0)
    info = room.cut("alice")
    assert info is not None
    bob = room.peers["bob"]
    bob.take()
    room.advance(4.0)
    assert bob.take() == []
    room.advance(2.0)
    removed = bob.of(ParticipantRemoved)
    assert [r.participant.id for r in removed] == [info.participant_id]
    for _ in range(6):
        room.advance(10.0)
    assert bob.of(ParticipantRemoved) == []  # exactly once
    alice = room.join("alice", resume=info)
    connected = alice.of(Connected)[0]
    assert connected.participant.id != info.participant_id
    assert (connected.resumed, connected.recovered, connected.missed) == (False, False, 0)
    # Not resumed, but it asked to be enabled as before: it is, as a new participant.
    assert [p.participant.name for p in bob.of(ParticipantAdded)] == ["alice"]


def test_a_wrong_secret_another_identity_or_room_takes_nothing() -> None:
    room, info = _room()
    room.cut("alice")
    forged = attrs.evolve(info, secret="0" * 32)
    for name, tok, resume in (
        ("mallory", token("demo", "mallory"), info),  # another identity, alice's secret
        ("alice2", token("other", "alice"), info),  # alice in another room
        ("alice3", token("demo", "alice"), forged),  # the right identity, a wrong secret
    ):
        peer = room.join(name, tok=tok, resume=resume)
        connected = peer.of(Connected)[0]
        assert connected.participant.id != info.participant_id
        assert (connected.resumed, connected.recovered) == (False, False)
    assert room.server.suspended_count == 1


def test_a_clean_close_removes_at_once_and_a_server_close_suspends_nobody() -> None:
    room, _ = _room()
    alice = room.peers["alice"]
    alice.client.close()
    room.pump()
    assert [r.participant.name for r in room.peers["bob"].of(ParticipantRemoved)] == ["alice"]
    assert room.server.suspended_count == 0
    room.server.close()
    room.pump()
    assert room.server.suspended_count == 0


def test_a_zero_window_removes_at_once_but_still_replays_to_the_new_id() -> None:
    room, _ = _room(resume_window=0)
    info = room.cut("alice")
    assert info is not None
    bob = room.peers["bob"]
    assert [r.participant.name for r in bob.of(ParticipantRemoved)] == ["alice"]
    bob.client.broadcast_message("chat", {"n": 1})
    room.pump()
    alice = room.join("alice", resume=info)
    events = alice.take()
    connected = events[0]
    assert isinstance(connected, Connected)
    assert connected.participant.id != info.participant_id
    assert (connected.resumed, connected.recovered, connected.missed) == (False, True, 1)
    assert _texts(events) == [1]


def test_a_half_open_connection_is_closed_when_its_participant_resumes() -> None:
    room, info = _room()
    stale = room.peers.pop("alice")  # the server has not noticed its loss
    bob = room.peers["bob"]
    bob.client.broadcast_message("chat", {"n": 1})
    room.pump()
    bob.take()
    alice = room.join("alice2", tok=token("demo", "alice"), resume=info)
    assert stale.server.state is State.CLOSED
    assert room.server.stats.closes == {Code.RESUMED_ELSEWHERE: 1}
    events = alice.take()
    connected = events[0]
    assert isinstance(connected, Connected)
    assert connected.participant.id == info.participant_id
    assert (connected.resumed, connected.recovered, connected.missed) == (True, True, 1)
    assert _texts(events) == [1]
    assert bob.take() == []  # nothing for the others to see
    bob.client.broadcast_message("chat", {"n": 2})
    room.pump()
    assert _texts(alice.take()) == [2]


def test_a_trimmed_history_gives_recovered_false() -> None:
    room, _ = _room(history_size=3)
    info = room.cut("alice")
    bob = room.peers["bob"]
    for n in range(5):
        bob.client.broadcast_message("chat", {"n": n})
    room.pump()
    alice = room.join("alice", resume=info)
    events = alice.take()
    connected = events[0]
    assert isinstance(connected, Connected)
    assert (connected.resumed, connected.recovered, connected.missed) == (True, False, 0)
    assert _texts(events) == []


def test_a_position_from_another_epoch_or_past_the_room_is_not_recovered() -> None:
    room, info = _room()
    room.cut("alice")
    for bad in (attrs.evolve(info, epoch="other"), attrs.evolve(info, seq=10**6)):
        peer = room.join(f"a{bad.seq}", tok=token("demo", "alice"), resume=bad)
        connected = peer.of(Connected)[0]
        assert connected.recovered is False
        room.cut(f"a{bad.seq}")


def test_directs_to_others_are_never_replayed() -> None:
    room, _ = _room()
    carol = room.enabled("carol")
    info = room.cut("alice")
    assert info is not None
    bob = room.peers["bob"]
    carol_id = carol.client.local_participant.id  # type: ignore[union-attr]
    bob.client.send_message(carol_id, "chat", {"n": 1})
    bob.client.send_message(info.participant_id, "chat", {"n": 2})
    room.pump()
    alice = room.join("alice", resume=info)
    assert _texts(alice.take()) == [2]


def test_calls_to_a_suspended_participant_are_not_found() -> None:
    room, info = _room()
    room.cut("alice")
    bob = room.peers["bob"]
    bob.client.call(info.participant_id, "ping", {})
    room.pump()
    refused = bob.of(RequestRefused)
    assert [r.code for r in refused] == [Code.NOT_FOUND]


def test_resume_window_must_be_finite_and_not_negative() -> None:
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="resume_window"):
            ServerConfig(secret=SECRET, resume_window=bad)


def test_a_participant_that_never_enabled_resumes_with_nothing_missed() -> None:
    room = Room()
    alice = room.join("alice")
    assert ClientConnection(token=token(), now=0.0).resume_info is None  # before a welcome
    room.enabled("bob")
    info = alice.client.resume_info
    assert info is not None
    assert not info.enabled
    room.cut("alice")
    room.peers["bob"].client.broadcast_message("chat", {"n": 1})
    room.pump()
    alice = room.join("alice", resume=info)
    events = alice.take()
    connected = events[0]
    assert isinstance(connected, Connected)
    assert connected.participant.id == info.participant_id
    assert (connected.resumed, connected.recovered, connected.missed) == (True, True, 0)
    assert events[1:] == []  # not enabled: no snapshot, no messages


def test_servers_sharing_a_resume_key_check_each_others_secrets() -> None:
    key = b"k" * 32
    one = Room(resume_key=key, authenticator=_authenticate, secret=None, history_epoch="e1")
    alice = one.join("alice")
    info = alice.client.resume_info
    assert info is not None
    other = Room(resume_key=key, authenticator=_authenticate, secret=None, history_epoch="e1")
    assert other.server.config.resume_key_bytes == key
    # Not held there (a new id), but the secret is good: the position is checked.
    peer = other.join("alice", resume=info)
    connected = peer.of(Connected)[0]
    assert (connected.resumed, connected.recovered) == (False, True)
    drawn = Room(authenticator=_authenticate, secret=None)
    assert drawn.server.config.resume_key_bytes == drawn.server.config.resume_key_bytes


def _authenticate(jwt: str, now: float) -> ParticipantToken:
    return ParticipantToken.from_jwt(jwt, SECRET, now=now)


def test_a_room_remembers_its_last_lapsed_participants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(roomwire._room, "LAPSED_KEPT", 1)
    room = Room(resume_window=1.0)
    room.enabled("keeper")
    infos = []
    for name in ("a", "b"):
        room.enabled(name)
        infos.append(room.cut(name))
    room.advance(2.0)
    # "a" is forgotten (recovered by its position), "b" is remembered as lapsed.
    for name, info in zip(("a", "b"), infos, strict=True):
        assert info is not None
        peer = room.join(name + "2", tok=token("demo", name), resume=info)
        assert peer.of(Connected)[0].recovered is (name == "a")


# --- after a restart, from the driver's store (PROTOCOL.md §22.2) ---------------------------


def _restarted(**config: Any) -> tuple[Room, ResumeInfo, list[bytes]]:
    """A server with a store, where alice was cut and then got a direct message and two
    broadcasts (and bob a note she must never see); then a new server on the same store."""
    first = Room(external_history=True)
    first.server.restore_history("e1")
    first.enabled("alice")
    bob, carol = first.enabled("bob"), first.enabled("carol")
    bob.client.broadcast_message("chat", {"n": 0})
    first.pump()
    info = first.cut("alice")
    assert info is not None
    carol_id = carol.client.local_participant.id  # type: ignore[union-attr]
    bob.client.send_message(info.participant_id, "chat", {"n": 1})
    bob.client.send_message(carol_id, "chat", {"n": -1})
    for n in (2, 3):
        bob.client.broadcast_message("chat", {"n": n})
    first.pump()
    records = [record for _, record in first.server.history_to_store()]
    first.server.history_stored(len(records))
    # A restarted server draws new ids (the default factory's prefix is random).
    second = Room(external_history=True, id_factory=prefixed_ids("r"), **config)
    second.server.restore_history("e1", first.server.history_positions())
    return second, info, records


CORRUPT = b"\xff"
"""A record no store wrote."""


def _answer(room: Room, records: list[bytes], dropped: int = 0, epoch: str | None = "e1") -> None:
    (read,) = room.server.history_reads()
    assert read.resume is not None
    after = read.after("e1")
    kept = [r for r in records if r == CORRUPT or cbor2.loads(r)["seq"] > after]
    room.server.answer_history(read, kept, room.now, epoch, dropped)
    room.pump()


def test_after_a_restart_the_store_replays_with_a_new_id() -> None:
    room, info, records = _restarted()
    alice = room.join("alice", resume=info)
    assert alice.take() == []  # the welcome waits for the store
    dave = room.enabled("dave")  # meanwhile the room goes on, in memory only
    dave.client.broadcast_message("chat", {"n": 4})
    room.pump()
    _answer(room, records)
    events = alice.take()
    connected = events[0]
    assert isinstance(connected, Connected)
    assert connected.participant.id != info.participant_id
    assert (connected.resumed, connected.recovered, connected.missed) == (False, True, 4)
    assert _texts(events) == [1, 2, 3, 4]  # never carol's note


@pytest.mark.parametrize("damage", ["dropped", "corrupt", "memory trimmed"])
def test_a_store_that_lost_a_record_or_broke_gives_recovered_false(damage: str) -> None:
    room, info, records = _restarted(history_size=2)
    alice = room.join("alice", resume=info)
    if damage == "corrupt":
        _answer(room, [*records, CORRUPT], epoch=None)
    elif damage == "dropped":
        _answer(room, records[1:], dropped=info.seq + 1)
    else:  # the room went on past what the memory keeps before the store answered
        dave = room.enabled("dave")
        for n in range(3):
            dave.client.broadcast_message("chat", {"n": n})
        room.pump()
        _answer(room, records)
    connected = alice.of(Connected)[0]
    assert (connected.recovered, connected.missed) == (False, 0)


def test_a_second_hello_while_the_store_reads_breaks_the_protocol() -> None:
    room, info, _ = _restarted()
    alice = room.join("alice", resume=info)
    alice.server.receive_data(encode_frame({"t": "hello", "v": 1, "token": token()}))
    with pytest.raises(RemoteProtocolError, match="second hello"):
        alice.server.next_event(room.now)


def test_a_store_answer_for_a_connection_gone_meanwhile_is_dropped() -> None:
    room, info, records = _restarted()
    room.join("alice", resume=info)
    room.cut("alice")
    _answer(room, records)
    assert room.server.connection_count == 0


# --- a property: cuts and resumes never duplicate, lose or reorder a kept message ----------

STEPS = st.lists(st.sampled_from(["broadcast", "direct", "cut", "resume", "tick"]), max_size=40)


@settings(max_examples=60, deadline=None)
@given(steps=STEPS, size=st.integers(min_value=2, max_value=30))
def test_any_interleaving_of_cuts_and_resumes_delivers_each_message_once_in_order(
    steps: list[str], size: int
) -> None:
    """alice is cut and resumes at any points while bob sends; time moves in ticks shorter
    than the window. Every resume keeps her id; when it says recovered, what she processed
    is exactly what bob sent, in order, once; when not (the history was trimmed), what she
    processed is still in order, and never twice."""
    room = Room(history_size=size, resume_window=30.0)
    alice, bob = room.enabled("alice"), room.enabled("bob")
    alice_id = alice.client.local_participant.id  # type: ignore[union-attr]
    sent: list[int] = []
    got: list[int] = []
    info: ResumeInfo | None = None
    lossless = True
    for step in steps:
        if step in {"broadcast", "direct"}:
            n = len(sent)
            sent.append(n)
            if step == "broadcast":
                bob.client.broadcast_message("chat", {"n": n})
            else:
                bob.client.send_message(alice_id, "chat", {"n": n})
            room.pump()
        elif step == "cut" and info is None:
            got += _texts(alice.take())  # type: ignore[arg-type]
            info = room.cut("alice")
        elif step == "resume" and info is not None:
            alice = room.join("alice", resume=info)
            connected = alice.take()
            welcome = connected[0]
            assert isinstance(welcome, Connected)
            assert welcome.participant.id == alice_id
            assert welcome.resumed
            lossless = lossless and welcome.recovered
            got += _texts(connected)  # type: ignore[arg-type]
            info = None
        elif step == "tick":
            room.advance(1.0)
    if info is None:
        got += _texts(alice.take())  # type: ignore[arg-type]
    assert got == sorted(set(got))  # in order, never twice
    if lossless and info is None:
        assert got == sent
