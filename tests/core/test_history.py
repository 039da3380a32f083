"""Room history: what is kept (size, time to live), what each reader sees, paging, the grant,
refusals of absurd limits and positions, and the client's verb and page collection."""

from __future__ import annotations

from typing import Any

import attrs
import cbor2
import pytest

from roomwire import Code, InvalidRequest, LocalProtocolError, RemoteProtocolError
from roomwire.events import (
    Connected,
    HistoryReceived,
    MessageReceived,
    RequestRefused,
    RoomMessage,
)

from .helpers import WIRE_LIMITS, LoneClient, Peer, Room, raw_peer, token, welcome_frame
from .test_backplane import Cluster


def history(room: Room, peer: Peer, **args: Any) -> list[RoomMessage]:
    rid = peer.client.history(**args)
    room.pump()
    (answer,) = [e for e in peer.take() if isinstance(e, HistoryReceived | RequestRefused)]
    assert isinstance(answer, HistoryReceived), answer
    assert answer.request_id == rid
    return list(answer.messages)


def texts(messages: list[RoomMessage]) -> list[Any]:
    return [m.message["n"] for m in messages]


@pytest.fixture
def room() -> Room:
    """alice, bob and carol enabled; alice broadcast n=0, sent bob n=1, bob sent carol n=2."""
    room = Room()
    alice, bob, carol = (room.enabled(n) for n in ("alice", "bob", "carol"))
    alice.client.broadcast_message("chat", {"n": 0})
    bob_id = bob.client.local_participant.id  # type: ignore[union-attr]
    carol_id = carol.client.local_participant.id  # type: ignore[union-attr]
    alice.client.send_message(bob_id, "dm", {"n": 1})
    room.pump()
    bob.client.send_message(carol_id, "dm", {"n": 2})
    room.pump()
    for peer in room.peers.values():
        peer.take()
    return room


def test_a_reader_sees_broadcasts_and_its_own_direct_messages(room: Room) -> None:
    alice, bob, carol = (room.peers[n] for n in ("alice", "bob", "carol"))
    assert texts(history(room, alice)) == [0, 1]
    assert texts(history(room, bob)) == [0, 1, 2]
    assert texts(history(room, carol)) == [0, 2]


def test_history_messages_are_the_deliveries(room: Room) -> None:
    carol = room.peers["carol"]
    bob = room.peers["bob"]
    bob.client.broadcast_message("chat", {"n": 3}, attachment=b"\x00\x01")
    room.pump()
    (delivered,) = [e.message for e in carol.take() if isinstance(e, MessageReceived)]
    assert history(room, carol, reverse=True, limit=1) == [delivered]
    assert delivered.attachment == b"\x00\x01"


def test_a_late_joiner_sees_what_was_said_before_it_came(room: Room) -> None:
    dave = room.join("dave")  # not even enabled
    assert texts(history(room, dave)) == [0]


def test_every_connection_of_a_name_reads_the_same(room: Room) -> None:
    second_bob = room.join("bob2", tok=token("demo", "bob"))
    assert texts(history(room, second_bob)) == [0, 1, 2]


def test_since_limit_and_reverse(room: Room) -> None:
    bob = room.peers["bob"]
    everything = history(room, bob)
    first = everything[0].seq
    assert texts(history(room, bob, since=first)) == [1, 2]
    assert texts(history(room, bob, limit=2)) == [0, 1]
    assert texts(history(room, bob, reverse=True)) == [2, 1, 0]
    assert texts(history(room, bob, reverse=True, limit=2)) == [2, 1]
    assert texts(history(room, bob, reverse=True, since=first)) == [2, 1]
    assert history(room, bob, since=everything[-1].seq) == []


def test_the_room_keeps_only_history_size_messages() -> None:
    room = Room(history_size=3)
    alice = room.enabled("alice")
    for n in range(5):
        alice.client.broadcast_message("chat", {"n": n})
    room.pump()
    assert texts(history(room, alice)) == [2, 3, 4]


def test_messages_expire_after_history_ttl() -> None:
    room = Room(history_ttl=60.0)
    alice = room.enabled("alice")
    alice.client.broadcast_message("chat", {"n": 0})
    room.pump()
    room.now += 30
    alice.client.broadcast_message("chat", {"n": 1})
    room.pump()
    room.now += 31
    assert texts(history(room, alice)) == [1]
    room.now += 30
    assert history(room, alice) == []


def test_a_store_drops_what_expired_even_if_nobody_read() -> None:
    room = Room(history_ttl=60.0)
    alice = room.enabled("alice")
    for n in range(3):
        alice.client.broadcast_message("chat", {"n": n})
        room.pump()
        room.now += 40  # each message outlives the one before it by 40 s
    assert texts(history(room, alice)) == [2]  # read at 120 s: n=1 (80 s old) expired too
    room.now += 100
    assert history(room, alice) == []  # everything expired: the room's queue is empty
    alice.client.broadcast_message("chat", {"n": 3})
    room.pump()
    assert texts(history(room, alice)) == [3]


def test_a_room_without_messages_has_an_empty_history() -> None:
    room = Room()
    assert history(room, room.join("alice")) == []


def test_presence_changes_are_not_history(room: Room) -> None:
    room.peers["bob"].client.set_attributes({"mood": "ok"})
    room.pump()
    room.enabled("dave")
    assert texts(history(room, room.peers["carol"])) == [0, 2]


def raw_pages(room: Room, count: int, size: int) -> tuple[list[dict[str, Any]], Peer]:
    """alice broadcasts ``count`` messages of ``size`` bytes of text; a hand-driven bob asks
    for them all: the pages he gets, and bob."""
    alice = room.enabled("alice")
    for n in range(count):
        alice.client.broadcast_message("chat", {"n": n, "text": "x" * size})
        room.pump()
    bob = raw_peer(room, "bob")
    bob.client.take()  # the welcome
    bob.client.send({"t": "history", "rid": 7, "limit": count})
    room.pump()
    return bob.client.take(), bob


def test_a_large_history_comes_in_pages_that_fit_a_frame() -> None:
    room = Room(max_frame_size=4096)
    pages, _ = raw_pages(room, 5, 1500)
    assert [p["more"] for p in pages] == [True, True, False]
    assert [m["message"]["n"] for p in pages for m in p["messages"]] == [0, 1, 2, 3, 4]
    assert texts(history(room, room.join("carol"))) == [0, 1, 2, 3, 4]


def test_a_history_reply_is_not_a_slow_consumer() -> None:
    pages, bob = raw_pages(Room(outbound_limit=4096), 20, 1000)  # ~20 KiB over a 4 KiB bound
    assert sum(len(p["messages"]) for p in pages) == 20
    assert bob.server.state.name == "OPEN"


def test_a_message_too_large_for_a_page_is_delivered_but_not_kept() -> None:
    def grow(m: Any) -> Any:
        return attrs.evolve(m, message={"n": 0, "pad": "x" * (4096 - 100)})  # 4069 bytes

    room = Room(max_frame_size=4096, interceptor=grow)
    alice, bob = room.enabled("alice"), room.enabled("bob")
    alice.client.broadcast_message("chat", {"n": 0})
    room.pump()
    assert len([e for e in bob.take() if isinstance(e, MessageReceived)]) == 1
    assert history(room, bob) == []


def test_relayed_messages_are_kept_on_every_node() -> None:
    cluster = Cluster()
    alice = cluster.enabled(cluster.n1, "alice")
    bob = cluster.enabled(cluster.n2, "bob")
    alice.client.broadcast_message("chat", {"n": 0})
    cluster.settle()
    for peer in (alice, bob):
        rid = peer.client.history()
        cluster.settle()
        (answer,) = [e for e in peer.take() if isinstance(e, HistoryReceived)]
        assert answer.request_id == rid
        assert texts(list(answer.messages)) == [0]


# --- refusals -------------------------------------------------------------------------------


def refusal(room: Room, frame: dict[str, Any], **grants: Any) -> dict[str, Any]:
    peer = raw_peer(room, "mallory", tok=token("demo", "mallory", **grants))
    peer.client.send(frame)
    room.pump()
    (answer,) = peer.client.take()[1:]  # after the welcome
    assert peer.server.state.name == "OPEN", "a refusal leaves the connection open"
    return answer


def test_history_needs_the_grant(room: Room) -> None:
    answer = refusal(room, {"t": "history", "rid": 1}, can_history=False)
    assert answer["code"] == Code.FORBIDDEN_HISTORY


@pytest.mark.parametrize("limit", [0, -1, 1001, 2**62, -(2**63)])
def test_an_absurd_limit_is_refused(room: Room, limit: int) -> None:
    answer = refusal(room, {"t": "history", "rid": 1, "limit": limit})
    assert (answer["t"], answer["code"]) == ("error", Code.INVALID_REQUEST)
    assert "limit must be 1 to 1000" in answer["reason"]


@pytest.mark.parametrize("since", [-1, 10**9, 2**63 - 1])
def test_an_absurd_position_is_refused(room: Room, since: int) -> None:
    answer = refusal(room, {"t": "history", "rid": 1, "since": since})
    assert (answer["t"], answer["code"]) == ("error", Code.INVALID_REQUEST)
    assert "since must be a seq" in answer["reason"]


def test_the_advertised_limit_is_the_servers() -> None:
    room = Room(max_history_limit=5)
    alice = room.join("alice")
    (connected,) = [e for e in alice.server_events + alice.take() if isinstance(e, Connected)]
    assert connected.limits.max_history_limit == 5
    with pytest.raises(InvalidRequest, match="1 to 5"):
        alice.client.history(limit=6)
    assert refusal(room, {"t": "history", "rid": 1, "limit": 6})["code"] == Code.INVALID_REQUEST


# --- the client alone -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [{"limit": 0}, {"limit": 1001}, {"limit": 1.5}, {"since": -1}, {"since": "3"}]
)
def test_the_client_checks_its_arguments(args: dict[str, Any]) -> None:
    lone = LoneClient()
    lone.feed(welcome_frame(limits={**WIRE_LIMITS, "max_history_limit": 1000}))
    lone.events()
    with pytest.raises(InvalidRequest):
        lone.client.history(**args)
    assert lone.sent() == []


def test_history_is_not_allowed_before_the_welcome() -> None:
    with pytest.raises(LocalProtocolError, match="cannot read history"):
        LoneClient().client.history()


def test_an_older_server_without_the_history_limit_gets_the_default() -> None:
    lone = LoneClient().open()
    assert lone.client.limits is not None
    assert lone.client.limits.max_history_limit == 1000


def test_the_client_collects_pages_into_one_event() -> None:
    lone = LoneClient().open()
    rid = lone.client.history(limit=3, since=4, reverse=True)
    assert lone.sent() == [{"t": "history", "limit": 3, "reverse": True, "since": 4, "rid": rid}]
    msg = {"id": "m", "seq": 9, "ts": 1.0, "from": "p", "type": "chat", "message": {}, "bc": True}
    lone.feed({"t": "history", "rid": rid, "more": True, "messages": [msg]})
    assert lone.events() == []
    lone.feed({"t": "history", "rid": rid, "more": False, "messages": [{**msg, "seq": 8}]})
    (event,) = lone.events()
    assert isinstance(event, HistoryReceived)
    assert [m.seq for m in event.messages] == [9, 8]


@pytest.mark.parametrize("verb", ["none", "attrs"])
def test_a_page_for_another_request_breaks_the_protocol(verb: str) -> None:
    lone = LoneClient().open()
    rid = 99 if verb == "none" else lone.client.set_attributes({"a": 1})
    lone.feed({"t": "history", "rid": rid, "more": False, "messages": []})
    with pytest.raises(RemoteProtocolError, match="not a history request"):
        lone.events()


def test_a_refused_history_is_a_refusal() -> None:
    lone = LoneClient().open()
    rid = lone.client.history()
    lone.feed({"t": "error", "rid": rid, "code": int(Code.FORBIDDEN_HISTORY), "reason": "no"})
    (event,) = lone.events()
    assert event == RequestRefused(request_id=rid, code=Code.FORBIDDEN_HISTORY, reason="no")


# --- the door to a driver's store (external_history) ----------------------------------------


class Store:
    """What a driver does with an external store: append records, answer reads."""

    def __init__(self, room: Room) -> None:
        self.room = room
        self.rooms: dict[str, list[bytes]] = {}

    def sync(self) -> None:
        """Store what the server gives, then answer its reads (from the records only)."""
        server = self.room.server
        for name, record in server.history_to_store():
            self.rooms.setdefault(name, []).append(record)
        for read in server.history_reads():
            records = self.rooms.get(read.room, [])
            after = -1 if read.since is None else read.since
            found = [r for r in records if cbor2.loads(r)["seq"] > after]
            server.answer_history(read, found, self.room.now)
        self.room.pump()


def test_an_external_store_gets_every_record_and_answers_reads() -> None:
    ext = Room(external_history=True, history_ttl=60.0)
    store = Store(ext)
    alice, bob = ext.enabled("alice"), ext.enabled("bob")
    bob_id = bob.client.local_participant.id  # type: ignore[union-attr]
    alice.client.broadcast_message("chat", {"n": 0}, attachment=b"\x01")
    alice.client.send_message(bob_id, "dm", {"n": 1})
    ext.pump()
    store.sync()
    assert len(store.rooms["demo"]) == 2
    for peer, expected in ((alice, [0, 1]), (bob, [0, 1]), (ext.join("carol"), [0])):
        rid = peer.client.history()
        ext.pump()
        assert not [e for e in peer.take() if isinstance(e, HistoryReceived)]  # not yet
        store.sync()
        (answer,) = [e for e in peer.take() if isinstance(e, HistoryReceived)]
        assert answer.request_id == rid
        assert texts(list(answer.messages)) == expected
    assert answer.messages[0].attachment == b"\x01"
    ext.now += 61  # the core drops what expired, whatever the store keeps
    bob.client.history(since=1)
    ext.pump()
    store.sync()
    assert [e.messages for e in bob.take() if isinstance(e, HistoryReceived)] == [()]


def test_an_answer_for_a_reader_that_left_is_dropped() -> None:
    ext = Room(external_history=True)
    alice = ext.enabled("alice")
    alice.client.history()
    ext.pump()
    (read,) = ext.server.history_reads()
    alice.client.close()
    ext.pump()
    ext.server.answer_history(read, [], ext.now)
    assert ext.server.connections_with_output() == []


@pytest.mark.parametrize(
    "record", [b"\xff", cbor2.dumps({"t": "stored", "id": "m"}), cbor2.dumps([1, 2])]
)
def test_a_corrupt_stored_record_is_a_local_error(record: bytes) -> None:
    ext = Room(external_history=True)
    alice = ext.enabled("alice")
    alice.client.history()
    ext.pump()
    (read,) = ext.server.history_reads()
    with pytest.raises(LocalProtocolError, match="stored history record is malformed"):
        ext.server.answer_history(read, [record], ext.now)
