"""The resume vectors (docs/PROTOCOL.md §22), registered by ``tools/make_vectors.py``
through ``add``: its ``vector`` decorator, ``Harness`` and ``frame`` are passed in (that
script runs as ``__main__``, so importing it from here would load a second copy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from roomwire import Code

JSON = Any


def add(vector: Callable[..., Any], harness: Any, frame: Callable[..., bytes]) -> None:
    @vector
    def server_resume() -> JSON:
        # alice2 is alice's reconnect: same token name, silent until alice's loss.
        h = harness("server", {"alice": {}, "bob": {}, "alice2": {"token_name": "alice"}})
        h.muted.add("alice2")
        h.pump()
        for name in ("alice", "bob"):
            h.call(name, "enable", f"{name} enables messaging")
        alice = h.participant_id("alice")
        h.call("bob", "broadcast_message", "bob broadcasts", type="chat", message={"n": 1})
        info = h.clients["alice"].resume_info
        h.eof("alice", "alice's transport ends with no close: suspended, still present")
        h.call(
            "bob",
            "send_message",
            "bob writes to alice: accepted",
            to=alice,
            type="dm",
            message={"n": 2},
        )
        h.call("bob", "broadcast_message", "bob broadcasts again", type="chat", message={"n": 3})
        resume = {
            "id": info.participant_id,
            "secret": info.secret,
            "epoch": info.epoch,
            "seq": info.seq,
            "enable": True,
            "presence": True,
        }
        h.inject(
            "alice2",
            frame(t="hello", v=1, token=h.tokens["alice2"], resume=resume),
            "alice2 -> server: the reconnect's hello, with alice's resume (hand-made)",
            route=False,
        )
        h.expect("ParticipantJoined", connection="alice2")
        h.call(
            "bob",
            "broadcast_message",
            "bob broadcasts: live, after the replay",
            type="chat",
            message={"n": 4},
        )
        h.inject(
            "alice2",
            frame(t="hello", v=1, token=h.tokens["alice2"], resume=resume),
            "alice2 -> server: a second hello breaks the protocol (hand-made)",
            route=False,
        )
        return h.vector(
            "A connection lost with no close leaves its participant present (nobody sees it"
            " leave) and sends to it are accepted. A hello whose resume proves the id (the"
            " welcome's secret) takes it back: resumed, the same id and enabled state, a"
            " snapshot answering request 0, then the messages it missed after its position"
            " (recovered, missed 2: the direct message and the broadcast), then live traffic."
        )

    @vector
    def server_resume_half_open() -> JSON:
        h = harness("server", {"alice": {}, "bob": {}, "alice2": {"token_name": "alice"}})
        h.muted.add("alice2")
        h.pump()
        for name in ("alice", "bob"):
            h.call(name, "enable", f"{name} enables messaging")
        info = h.clients["alice"].resume_info
        resume = {
            "id": info.participant_id,
            "secret": info.secret,
            "epoch": info.epoch,
            "seq": info.seq,
            "enable": True,
        }
        h.inject(
            "alice2",
            frame(t="hello", v=1, token=h.tokens["alice2"], resume=resume),
            "alice2 -> server: hello with alice's resume while alice's connection is still"
            " open (hand-made)",
            route=False,
        )
        h.expect_close(Code.RESUMED_ELSEWHERE, connection="alice")
        return h.vector(
            "A resume that names a participant whose connection the server still has open (a"
            " half-open connection: its loss not noticed yet) takes it over: the old connection"
            " is closed with 3006 RESUMED_ELSEWHERE (its client must not reconnect), and"
            " nobody else sees a change."
        )

    @vector
    def client_resume() -> JSON:
        h = harness(
            "alice",
            {"alice": {}, "bob": {}},
            server={"history_epoch": "e1"},
            resume={"participant_id": "id9", "epoch": "e1", "seq": 0, "enabled": True},
        )
        h.pump()
        h.call("bob", "enable", "bob enables")
        h.call("bob", "broadcast_message", "bob broadcasts", type="chat", message={"n": 1})
        return h.vector(
            "A client built with resume info says so in its hello. This server no longer holds"
            " participant id9 (a restart): a new id, resumed false; the position (epoch e1,"
            " seq 0) is the room's and nothing was dropped: recovered, missed 0. It asked to"
            " be enabled as before: the server enabled it, and the welcome's enabled is"
            " followed by a snapshot answering request 0 (MessagingEnabled, request_id 0)."
        )
