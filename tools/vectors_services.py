"""The services vectors (docs/PROTOCOL.md §23), registered by ``tools/make_vectors.py``
through ``add``: its ``vector`` decorator and ``Harness`` are passed in
(that script runs as ``__main__``, so importing it from here would load a second copy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

JSON = Any
SERVICE = {"intercept": True, "hidden": True}
"""The service's grants: intercept, and hidden (it is no member of the room)."""


def add(vector: Callable[..., Any], harness: Any) -> None:
    def enabled(subject: str, *names: str, server: dict[str, Any] | None = None) -> Any:
        peers = {n: {} for n in names}
        peers["svc"] = dict(SERVICE)
        h = harness(
            subject, {**peers, "mallory": {}} if subject == "server" else peers, server=server
        )
        h.pump()
        for name in (*names, "svc"):
            h.call(name, "enable", f"{name} enables messaging")
        return h

    def routed_id(h: Any, connection: str) -> str:
        """The message id of the last message the server accepted from ``connection``."""
        for step in reversed(h.steps):
            for event in step["expected"].get(connection, []):
                if event["event"] == "MessageRouted":
                    return str(event["message_id"])
        raise AssertionError("no message routed")

    @vector
    def server_service_decides() -> JSON:
        h = enabled("server", "alice", "bob")
        bob = h.participant_id("bob")
        h.call("svc", "attach_service", "svc attaches as the room's service")
        h.call(
            "alice",
            "send_message",
            "alice sends to bob",
            to=[bob],
            type="chat",
            message={"text": "hi"},
        )
        up = routed_id(h, "alice")
        h.call(
            "svc", "decide", "svc delivers it rewritten", message_id=up, message={"text": "hi lol~"}
        )
        h.expect("MessageRouted", connection="svc")
        h.call(
            "alice",
            "send_to_service",
            "alice writes to the service only",
            type="chat",
            message={"text": "create Meow"},
        )
        h.call("svc", "decide", "svc drops it", message_id=routed_id(h, "alice"), drop=True)
        h.call("alice", "broadcast_message", "alice broadcasts", type="chat", message={})
        h.call(
            "svc",
            "decide",
            "svc redirects it to bob only",
            message_id=routed_id(h, "alice"),
            to=[bob],
        )
        h.call("svc", "decide", "svc decides it again: 4502 NOT_INTERCEPTED", message_id=up)
        h.expect("RequestRefused", connection="svc")
        return h.vector(
            "A client with the intercept grant attaches as the room's service. Every message"
            " sent in the room is acked to its sender and handed to the service (svc_msg)"
            " instead of its recipients; the service's svc_decide delivers it (rewritten or"
            " redirected, stamped with the sender and the same id) or drops it. A message"
            " already decided is refused with 4502 NOT_INTERCEPTED."
        )

    @vector
    def server_service_speaks() -> JSON:
        h = enabled("server", "alice", "bob")
        alice = h.participant_id("alice")
        h.call("svc", "attach_service", "svc attaches")
        h.call(
            "svc",
            "create_puppet",
            "svc creates the puppet Meow",
            puppet_name="Meow",
            attributes={"kind": "cat"},
        )
        puppet = h.clients["svc"].get_participant_by_name("Meow").id
        h.call(
            "svc",
            "send_as",
            "Meow says meow to everyone",
            sender=puppet,
            type="chat",
            message={"text": "meow"},
        )
        h.call(
            "svc",
            "send_as",
            "svc speaks as alice, to bob and a ghost",
            sender=alice,
            type="chat",
            message={},
            to=[h.participant_id("bob"), "ghost"],
        )
        h.call(
            "svc",
            "send_as",
            "svc speaks as nobody: 4040 NOT_FOUND",
            sender="nobody",
            type="chat",
            message={},
        )
        h.expect("RequestRefused", connection="svc")
        h.call("svc", "remove_puppet", "svc removes Meow", puppet_id=puppet)
        h.call("mallory", "enable", "mallory enables")
        h.call(
            "mallory", "attach_service", "mallory has no intercept grant: 4035 FORBIDDEN_INTERCEPT"
        )
        h.expect("RequestRefused", connection="mallory")
        return h.vector(
            "The service creates a puppet (announced with role puppet; the ack carries its"
            " id), speaks as it or as any member (absent recipients are skipped), and removes"
            " it. Sending as nobody is refused with 4040; attaching without the intercept"
            " grant with 4035 FORBIDDEN_INTERCEPT."
        )

    @vector
    def server_service_one_per_room() -> JSON:
        h = harness(
            "server",
            {"svc": dict(SERVICE), "svc2": dict(SERVICE), "alice": {}},
            server={"service_timeout": 5.0},
        )
        h.pump()
        for name in ("svc", "svc2", "alice"):
            h.call(name, "enable", f"{name} enables")
        h.call("svc", "attach_service", "svc attaches")
        h.call("svc2", "attach_service", "svc2 attaches too: 4501 SERVICE_TAKEN")
        h.expect("RequestRefused", connection="svc2")
        h.call("alice", "send_to_service", "alice writes to the service", type="chat", message={})
        h.advance(6.0, "svc does not decide within service_timeout: svc_timeout")
        return h.vector(
            "One service per room: a second one is refused with 4501 SERVICE_TAKEN while the"
            " first is attached. A message not decided within service_timeout is handled as"
            " if no service were attached (bypass: delivered as asked) and the service gets"
            " svc_timeout with its id."
        )

    @vector
    def server_service_refuse_policy() -> JSON:
        h = harness("server", {"alice": {}, "bob": {}}, server={"service_policy": "refuse"})
        h.pump()
        for name in ("alice", "bob"):
            h.call(name, "enable", f"{name} enables")
        h.call(
            "alice",
            "broadcast_message",
            "alice broadcasts; no service: 4500 SERVICE_UNAVAILABLE",
            type="chat",
            message={},
        )
        h.expect("RequestRefused", connection="alice")
        return h.vector(
            "With service_policy refuse, a message sent while no service is attached is"
            " refused with 4500 SERVICE_UNAVAILABLE."
        )

    @vector
    def client_service() -> JSON:
        h = harness("svc", {"svc": dict(SERVICE), "alice": {}}, server={"service_timeout": 5.0})
        h.pump()
        h.call("alice", "enable", "alice enables")
        h.call("svc", "enable", "svc enables")
        h.call("svc", "attach_service", "svc attaches")
        h.call(
            "alice",
            "send_to_service",
            "alice writes to the service only",
            type="chat",
            message={"text": "hi"},
            attachment="01",
        )
        h.expect("MessageIntercepted")
        h.advance(6.0, "no decision within service_timeout")
        h.expect("InterceptTimedOut", index=-2)
        return h.vector(
            "A service receives every message as svc_msg (MessageIntercepted: its id, sender,"
            " type, message, attachment and the recipients asked for, [] for the service only)"
            " and svc_timeout (InterceptTimedOut) for one it did not decide in time."
        )

    @vector
    def client_interceptor_failed() -> JSON:
        def broken(message: object) -> None:
            raise RuntimeError("the operator's bug")

        h = harness("alice", {"alice": {}, "bob": {}}, server={"interceptor": broken})
        h.pump()
        h.call("bob", "enable", "bob enables")
        h.call("alice", "enable", "alice enables")
        h.call("alice", "broadcast_message", "alice broadcasts", type="chat", message={})
        h.expect("RequestRefused")
        return h.vector(
            "A server whose in-process interceptor raises refuses the message with 4503"
            " INTERCEPTOR_FAILED; the connection stays open."
        )
