"""ParticipantToken: HS256 round trips, grants, expiry, and every refusal with its own code."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from roomwire import Code, ParticipantToken, TokenError

from .helpers import SECRET

OTHER_SECRET = "another-secret-that-is-also-long-enough-for-hs256"


def signed(claims: dict[str, Any], key: str | None = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def refusal(tok: str, now: float | None = 1000.0) -> Code:
    with pytest.raises(TokenError) as caught:
        ParticipantToken.from_jwt(tok, SECRET, now=now)
    assert caught.value.reason
    return caught.value.code


def test_round_trip_keeps_every_field() -> None:
    original = ParticipantToken(
        room="demo",
        name="alice",
        role="agent",
        can_send=False,
        can_broadcast=True,
        can_list=False,
        expires_at=2000.5,
    )
    assert ParticipantToken.from_jwt(original.to_jwt(SECRET), SECRET, now=1000.0) == original


def test_bytes_secret_round_trips() -> None:
    key = SECRET.encode()
    original = ParticipantToken(room="demo", name="bob")
    assert ParticipantToken.from_jwt(original.to_jwt(key), key) == original


def test_missing_role_and_grants_take_the_defaults() -> None:
    parsed = ParticipantToken.from_jwt(signed({"room": "demo", "name": "carol"}), SECRET)
    assert parsed == ParticipantToken(
        room="demo", name="carol", role="user", can_send=True, can_broadcast=True, can_list=True
    )
    assert parsed.expires_at is None


def test_partial_grants_default_the_rest_to_true() -> None:
    tok = signed({"room": "demo", "name": "dan", "grants": {"broadcast": False}})
    parsed = ParticipantToken.from_jwt(tok, SECRET)
    assert (parsed.can_send, parsed.can_broadcast, parsed.can_list) == (True, False, True)


@pytest.mark.parametrize(("now", "expired"), [(1999.0, False), (2000.0, True), (2500.0, True)])
def test_expiry_against_the_given_now(now: float, expired: bool) -> None:
    tok = ParticipantToken(room="demo", name="eve", expires_at=2000).to_jwt(SECRET)
    if expired:
        assert refusal(tok, now=now) is Code.TOKEN_EXPIRED
    else:
        assert ParticipantToken.from_jwt(tok, SECRET, now=now).expires_at == 2000


def test_without_now_pyjwt_checks_exp_against_its_clock() -> None:
    # exp = 1 is in 1970 and 2**40 is some 30,000 years away, whatever the machine's clock.
    past = ParticipantToken(room="demo", name="eve", expires_at=1).to_jwt(SECRET)
    future = ParticipantToken(room="demo", name="eve", expires_at=2**40).to_jwt(SECRET)
    assert refusal(past, now=None) is Code.TOKEN_EXPIRED
    assert ParticipantToken.from_jwt(future, SECRET).expires_at == 2**40


@pytest.mark.parametrize(
    ("tok", "code"),
    [
        pytest.param(
            ParticipantToken(room="demo", name="x").to_jwt(OTHER_SECRET),
            Code.TOKEN_BAD_SIGNATURE,
            id="wrong-key",
        ),
        pytest.param(
            signed({"room": "demo", "name": "x"}, key=None, algorithm="none"),
            Code.TOKEN_BAD_ALGORITHM,
            id="alg-none",
        ),
        pytest.param(
            signed({"room": "demo", "name": "x"}, key=SECRET * 2, algorithm="HS512"),
            Code.TOKEN_BAD_ALGORITHM,
            id="hs512",
        ),
        pytest.param("not-a-jwt", Code.TOKEN_INVALID, id="garbage"),
        pytest.param(signed({"name": "x"}), Code.TOKEN_INVALID, id="no-room"),
        pytest.param(signed({"room": "demo"}), Code.TOKEN_INVALID, id="no-name"),
    ],
)
def test_refusals_have_distinct_codes(tok: str, code: Code) -> None:
    assert refusal(tok) is code
    assert refusal(tok, now=None) is code


@pytest.mark.parametrize(
    ("claims", "now"),
    [
        pytest.param({"room": 7, "name": "x"}, 1000.0, id="room-not-text"),
        pytest.param({"room": "demo", "name": ["x"]}, 1000.0, id="name-not-text"),
        pytest.param({"room": "demo", "name": ""}, 1000.0, id="name-empty"),
        pytest.param({"room": "demo", "name": "n" * 257}, 1000.0, id="name-too-long"),
        pytest.param({"room": "demo", "name": "x", "role": 3}, 1000.0, id="role-not-text"),
        pytest.param({"room": "demo", "name": "x", "exp": "soon"}, 1000.0, id="exp-text"),
        pytest.param({"room": "demo", "name": "x", "exp": True}, 1000.0, id="exp-bool"),
        pytest.param({"room": "demo", "name": "x", "exp": "soon"}, None, id="exp-text-no-now"),
        pytest.param({"room": "demo", "name": "x", "nbf": "later"}, 1000.0, id="nbf-text"),
        pytest.param({"room": "demo", "name": "x", "grants": ["send"]}, 1000.0, id="grants-list"),
        pytest.param(
            {"room": "demo", "name": "x", "grants": {"send": "yes"}}, 1000.0, id="grant-text"
        ),
        pytest.param({"room": "demo", "name": "x", "grants": {"list": 1}}, 1000.0, id="grant-int"),
    ],
)
def test_bad_claim_types_are_token_invalid(claims: dict[str, Any], now: float | None) -> None:
    assert refusal(signed(claims), now=now) is Code.TOKEN_INVALID


@pytest.mark.parametrize(
    "fields",
    [
        {"room": "", "name": "x"},
        {"room": "demo", "name": "x" * 257},
        {"room": "demo", "name": "x", "role": ""},
        {"room": "demo", "name": 5},
    ],
)
def test_constructor_checks_its_text_fields(fields: dict[str, Any]) -> None:
    with pytest.raises(TokenError) as caught:
        ParticipantToken(**fields)
    assert caught.value.code is Code.TOKEN_INVALID


def test_text_fields_accept_256_characters() -> None:
    assert ParticipantToken(room="r" * 256, name="n" * 256).room == "r" * 256


@pytest.mark.parametrize(("now", "valid"), [(999.0, False), (1000.0, True), (5000.0, True)])
def test_not_before_is_checked_against_the_given_now_not_the_clock(now: float, valid: bool) -> None:
    tok = signed({"room": "demo", "name": "x", "nbf": 1000, "iat": 10**10})
    if valid:
        assert ParticipantToken.from_jwt(tok, SECRET, now=now).name == "x"
    else:
        assert refusal(tok, now=now) is Code.TOKEN_INVALID
