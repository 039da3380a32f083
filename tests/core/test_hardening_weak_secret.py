"""Issue 13, finding 9's leftover: PyJWT warns about a short HMAC key at every decode. With
``allow_weak_secret`` (development only) the server accepted the key once, at its start, and
checks tokens without the warning: this suite turns warnings into errors, as ``-W error``
does, so a warning would fail the hello."""

from __future__ import annotations

import warnings

from jwt.warnings import InsecureKeyLengthWarning

from roomwire import ParticipantToken

from .helpers import Room


def test_a_weak_secret_allowed_for_development_does_not_warn_at_every_token_check() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        tokens = [ParticipantToken(room="demo", name=n).to_jwt("short") for n in ("a", "b")]
    room = Room(secret="short", allow_weak_secret=True)
    for name, tok in zip(("a", "b"), tokens, strict=True):
        assert room.join(name, tok=tok).client.local_participant is not None


def test_a_strong_secret_still_warns_nothing() -> None:
    room = Room()
    assert room.join("alice").client.local_participant is not None
