"""The idempotent-send vectors (docs/PROTOCOL.md §26), registered by ``tools/make_vectors.py``
through ``add``: its ``vector`` decorator, ``Harness`` and ``frame`` are passed in (that
script runs as ``__main__``, so importing it from here would load a second copy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

JSON = Any


def add(vector: Callable[..., Any], harness: Any, frame: Callable[..., bytes]) -> None:
    @vector
    def server_idempotent_send() -> JSON:
        h = harness("server", {"alice": {}, "bob": {}, "carol": {}})
        h.pump()
        for name in ("alice", "bob", "carol"):
            h.call(name, "enable", f"{name} enables messaging")
        bob = h.participant_id("bob")
        h.call(
            "alice",
            "broadcast_message",
            "alice broadcasts with key k1: acked with recipients 2",
            type="chat",
            message={"n": 1},
            idempotency_key="k1",
        )
        h.call(
            "alice",
            "send_message",
            "alice sends to bob with key k2: recipients 1",
            to=[bob],
            type="chat",
            message={"n": 2},
            idempotency_key="k2",
        )
        h.call(
            "alice",
            "broadcast_message",
            "alice repeats k1: acked with the first id and count, dup=true, delivered to nobody",
            type="chat",
            message={"n": 1},
            idempotency_key="k1",
        )
        h.call(
            "carol",
            "broadcast_message",
            "carol uses k1 too: another identity, so another message",
            type="chat",
            message={"n": 3},
            idempotency_key="k1",
        )
        h.inject(
            "alice",
            frame(t="broadcast", rid=90, type="chat", message={}, key=7),
            "alice -> server: a key that is not text, refused INVALID_REQUEST (hand-made)",
            route=False,
        )
        h.expect("RequestRefused", connection="alice")
        h.inject(
            "alice",
            frame(t="broadcast", rid=91, type="chat", message={}, key="k" * 65),
            "alice -> server: a 65-character key, refused INVALID_REQUEST (hand-made)",
            route=False,
        )
        h.expect("RequestRefused", connection="alice")
        return h.vector(
            "A send or broadcast may carry a key (1 to 64 characters). Its ack counts the"
            " participants it was queued for, the sender not counted (recipients). A repeat of"
            " a key by the same identity (room and token name) within idempotency_window is"
            " acked with the first send's id and recipients and dup=true, and delivered to"
            " nobody. Another identity's key is its own. A key of another type or length is"
            " refused with INVALID_REQUEST, the connection kept."
        )

    @vector
    def client_idempotent_send() -> JSON:
        h = harness("alice", {"alice": {}, "bob": {}})
        h.pump()
        h.call("alice", "enable", "alice enables")
        h.call("bob", "enable", "bob enables")
        h.call(
            "alice",
            "broadcast_message",
            "alice broadcasts with a key",
            type="chat",
            message={},
            idempotency_key="order-17",
        )
        h.expect("RequestAcked")
        h.call(
            "alice",
            "broadcast_message",
            "alice repeats the key: RequestAcked with duplicate=true",
            type="chat",
            message={},
            idempotency_key="order-17",
        )
        h.expect("RequestAcked")
        h.call(
            "alice",
            "broadcast_message",
            "a key over 64 characters is refused locally (InvalidRequest)",
            type="chat",
            message={},
            idempotency_key="k" * 65,
        )
        return h.vector(
            "The client sends its idempotency key as key; the ack's recipients and dup become"
            " RequestAcked.recipients and RequestAcked.duplicate. A key of 0 or over 64"
            " characters is refused before anything is sent."
        )
