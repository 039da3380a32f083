"""Vectors of issue 13's hardening (PROTOCOL.md §25): the connection cap, and a token's
expiry while connected with ``refresh``. ``tools/make_vectors.py`` adds them to its own
(``vectors(make_vectors_module)``): each takes that module for its ``Harness`` and helpers."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from types import ModuleType
from typing import Any

JSON = dict[str, Any]


def server_too_many_connections(mv: ModuleType) -> JSON:
    h = mv.Harness("server", {"alice": {}, "bob": {}}, server={"max_connections": 1})
    h.pump()
    h.expect("ParticipantJoined", connection="alice", index=0)
    return h.vector(
        "With max_connections 1, bob's connection (accepted second) is over the cap: it is"
        " closed at once with 3005 TOO_MANY_CONNECTIONS, before its hello is read (the close"
        " frame is bob's whole output); alice's connection is unaffected."
    )


def _alice_until_1020(mv: ModuleType, *, enable: bool = True) -> Any:
    """A recorded server; alice's token expires at 1020 (20 s after the start)."""
    h = mv.Harness("server", {"alice": {"expires_at": mv.START + 20}})
    h.pump()
    if enable:
        h.call("alice", "enable", "alice enables messaging")
    return h


def server_token_expires(mv: ModuleType) -> JSON:
    h = _alice_until_1020(mv)
    h.advance(20, "20 s later the server's now reaches alice's exp (1020): TOKEN_EXPIRED")
    h.expect_close(mv.Code.TOKEN_EXPIRED, connection="alice")
    return h.vector(
        "A token's exp holds while connected: at exp (1020 here) the server closes the"
        " connection with 3021 TOKEN_EXPIRED, whatever it is doing."
    )


def server_refresh_accepted(mv: ModuleType) -> JSON:
    h = _alice_until_1020(mv)
    later = mv.make_token("alice", expires_at=mv.START + 40)
    h.call("alice", "refresh_token", "alice refreshes: the same claims, exp 1040", token=later)
    h.advance(20, "at the old exp (1020) nothing happens: the token was refreshed")
    h.advance(5, "at 1025: the server pings (hb 25) and alice's client answers")
    h.advance(15, "at the new exp (1040): TOKEN_EXPIRED")
    h.expect_close(mv.Code.TOKEN_EXPIRED, connection="alice")
    return h.vector(
        "A refresh with a token for the same room, name, role and grants is acked; the"
        " connection then closes at the new token's exp, not the old one's."
    )


def server_refresh_refused(mv: ModuleType) -> JSON:
    h = _alice_until_1020(mv, enable=False)
    other = mv.make_token("mallory", expires_at=mv.START + 40)
    h.call("alice", "refresh_token", "a refresh naming another participant", token=other)
    h.expect("RequestRefused", connection="alice")
    stale = mv.make_token("alice", expires_at=mv.START - 1)
    h.call("alice", "refresh_token", "a refresh with an expired token", token=stale)
    h.expect("RequestRefused", connection="alice")
    h.advance(20, "the first token's exp (1020) still holds: TOKEN_EXPIRED")
    h.expect_close(mv.Code.TOKEN_EXPIRED, connection="alice")
    return h.vector(
        "A refresh token that names another participant (or room, role or grants), or that"
        " does not verify (here: already expired), is refused with 4001 TOKEN_REFUSED; the"
        " connection stays open until the current token's exp."
    )


VECTORS: list[Callable[[ModuleType], JSON]] = [
    server_too_many_connections,
    server_token_expires,
    server_refresh_accepted,
    server_refresh_refused,
]


def vectors(mv: ModuleType) -> dict[str, Callable[[], JSON]]:
    """These vectors by name, bound to ``tools/make_vectors.py`` (the module ``mv``)."""
    return {make.__name__: partial(make, mv) for make in VECTORS}
