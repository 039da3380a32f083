"""Issue 13 in the core: the pre-authentication bound, exact nesting depth, attributes checked
at the depth they travel, and the rule for names several participants share."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from roomwire import Code, InvalidRequest, RemoteParticipant, RemoteProtocolError, participant_named
from roomwire.events import MessageReceived, MessagingEnabled
from roomwire.frames import ATTRIBUTES_DEPTH, HEADER, JSON_DEPTH, MAX_DEPTH, decode_payload

from .helpers import Room, feed, raw_peer, token


def nested(levels: int) -> Any:
    """``levels`` arrays, one in another, the innermost empty: ``levels`` deep."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


# --- finding 2: memory before authentication ------------------------------------------------


def test_a_frame_over_the_hello_bound_is_refused_before_the_hello() -> None:
    room = Room()
    mallory = raw_peer(room, "mallory", hello=False)
    mallory.server.receive_data(HEADER.pack(1024 * 1024) + b"\x00" * 1000)
    with pytest.raises(RemoteProtocolError) as caught:
        mallory.server.next_event(room.now)
    assert caught.value.code is Code.FRAME_TOO_LARGE
    assert "8192-byte limit" in caught.value.reason


def test_after_the_welcome_frames_up_to_max_frame_size_are_accepted() -> None:
    room = Room()
    alice, bob = room.enabled("alice"), room.enabled("bob")
    alice.take()
    big = "x" * 100_000  # far over the 8 KiB hello bound, under the 1 MiB frame limit
    bob.client.broadcast_message(type="big", message={"text": big})
    room.pump()
    assert [e.message.message["text"] for e in alice.of(MessageReceived)] == [big]


# --- finding 6: depth exact, attributes at the depth they travel ----------------------------


def test_the_decoder_refuses_containers_one_level_over_max_depth_with_bad_frame() -> None:
    room = Room()
    mallory = raw_peer(room, "mallory")
    mallory.client.send({"t": "enable", "rid": 1})
    room.pump()
    # frame map (1) + message map (2) + arrays: the innermost, empty, at MAX_DEPTH + 1.
    mallory.client.send(
        {"t": "broadcast", "rid": 2, "type": "x", "message": {"a": nested(MAX_DEPTH - 1)}}
    )
    with pytest.raises(RemoteProtocolError) as caught:
        feed(room, mallory)
    assert caught.value.code is Code.BAD_FRAME
    assert caught.value.reason == f"arrays and maps nested over {MAX_DEPTH} levels deep"


def test_an_empty_map_one_level_over_max_depth_is_refused_too() -> None:
    # The same slip through cbor2's cap with the other empty container (the byte 0xa0).
    deepest: Any = {}
    for _ in range(MAX_DEPTH - 1):  # the frame map, 31 arrays, the map at MAX_DEPTH + 1
        deepest = [deepest]
    with pytest.raises(RemoteProtocolError, match="nested over 32 levels deep"):
        decode_payload(cbor2.dumps({"t": "x", "d": deepest}))


def test_deep_containers_that_are_not_empty_are_left_to_the_decoders_cap() -> None:
    # No empty container, so the decoder's own cap is exact: at MAX_DEPTH a frame decodes,
    # one level deeper cbor2 refuses it.
    def deep(levels: int) -> Any:
        value: Any = [1]
        for _ in range(levels - 1):
            value = [value]
        return value

    frame = {"t": "x", "d": deep(MAX_DEPTH - 1)}
    assert decode_payload(cbor2.dumps(frame)) == frame
    with pytest.raises(RemoteProtocolError, match="undecodable CBOR"):
        decode_payload(cbor2.dumps({"t": "x", "d": deep(MAX_DEPTH)}))


def test_many_shallow_containers_are_not_too_deep() -> None:
    # More array heads than MAX_DEPTH, side by side: the depth walk runs and finds none deep.
    frame = {"t": "broadcast", "rid": 2, "type": "x", "message": {"a": [[]] * (MAX_DEPTH + 8)}}
    assert decode_payload(cbor2.dumps(frame)) == frame


def test_the_deepest_message_is_delivered() -> None:
    room = Room()
    alice, bob = room.enabled("alice"), room.enabled("bob")
    alice.take()
    deepest = {"a": nested(JSON_DEPTH - 1)}  # frame map + 31 levels = MAX_DEPTH
    bob.client.broadcast_message(type="deep", message=deepest)
    room.pump()
    assert [e.message.message for e in alice.of(MessageReceived)] == [deepest]


def test_the_deepest_attributes_travel_in_presence_and_snapshots() -> None:
    room = Room()
    alice = room.enabled("alice")
    deepest = {"a": nested(ATTRIBUTES_DEPTH - 1)}
    alice.client.set_attributes(deepest)
    room.pump()
    # A newcomer's snapshot carries them 3 levels down: exactly MAX_DEPTH.
    carol = room.join("carol")
    carol.client.enable()
    room.pump()
    (enabled,) = carol.of(MessagingEnabled)
    assert [p.attributes for p in enabled.participants] == [deepest]


def test_attributes_one_level_deeper_are_refused_by_both_sides() -> None:
    room = Room()
    alice = room.enabled("alice")
    too_deep = {"a": nested(ATTRIBUTES_DEPTH)}
    with pytest.raises(InvalidRequest, match="at most 29 levels deep"):
        alice.client.set_attributes(too_deep)
    mallory = raw_peer(room, "mallory")
    mallory.client.send({"t": "attrs", "rid": 1, "attributes": too_deep})
    room.pump()
    (error,) = mallory.client.take()[-1:]
    assert error["t"] == "error"
    assert error["code"] == Code.INVALID_REQUEST
    assert error["reason"] == "attributes must be a JSON object at most 29 levels deep"


# --- finding 7: names shared by several participants ----------------------------------------


def _p(pid: str, name: str) -> RemoteParticipant:
    return RemoteParticipant(id=pid, name=name, role="")


def test_a_shared_name_names_nobody() -> None:
    alice, bob, fake = _p("1", "alice"), _p("2", "bob"), _p("3", "alice")
    assert participant_named([alice, bob], "alice") == alice
    assert participant_named([alice, bob], "carol") is None
    assert participant_named([alice, bob, fake], "alice") is None
    assert participant_named([fake, bob, alice], "alice") is None
    assert participant_named([alice, bob, fake], "bob") == bob


def test_a_newcomer_with_an_existing_name_cannot_capture_it_after_a_re_enable() -> None:
    room = Room()
    carol, alice = room.enabled("carol"), room.enabled("alice")
    fake = room.join("mallory", tok=token("demo", "alice"))  # the newcomer, same name
    fake.client.enable()
    room.pump()
    assert len(carol.client.remote_participants) == 2
    alice.client.disable()
    room.pump()
    alice.client.enable()
    room.pump()
    assert carol.client.get_participant_by_name("alice") is None


# --- finding 9: weak secrets refused when the server is made --------------------------------


@pytest.mark.parametrize("field", ["secret", "backplane_key"])
@pytest.mark.parametrize("key", ["s" * 31, b"s" * 31, "é" * 15])
def test_a_weak_secret_is_refused_unless_allowed(field: str, key: str | bytes) -> None:
    with pytest.raises(ValueError, match=f"{field} has 3[01] bytes: use at least 32"):
        Room(**{field: key})
    assert Room(**{field: key}, allow_weak_secret=True).server.config.allow_weak_secret


def test_a_32_byte_secret_is_strong_enough() -> None:
    assert Room(secret=b"s" * 32, backplane_key="k" * 32).server.config.secret == b"s" * 32
