"""ServerConfig validation and defaults, the code registry, and the error hierarchy."""

from __future__ import annotations

import pytest

from roomwire import (
    Code,
    InvalidRequest,
    LocalProtocolError,
    MessageTooLarge,
    ProtocolError,
    RemoteProtocolError,
    ServerConfig,
    TokenError,
)
from roomwire.codes import CODE_INFO

from .helpers import SECRET

POSITIVE_FIELDS = [
    "max_frame_size",
    "outbound_limit",
    "heartbeat_interval",
    "heartbeat_timeout",
    "handshake_timeout",
    "max_recipients",
    "max_type_length",
    "max_attributes_size",
    "history_size",
    "history_ttl",
    "max_history_limit",
]


def test_defaults_are_the_documented_ones() -> None:
    config = ServerConfig(secret=SECRET)
    assert (config.max_frame_size, config.outbound_limit) == (1024 * 1024, 1024 * 1024)
    assert (config.heartbeat_interval, config.heartbeat_timeout) == (25.0, 10.0)
    assert config.max_send_size == config.max_frame_size - 1024
    assert (config.interceptor, config.node_id, config.authenticator) == (None, None, None)


def test_default_ids_share_a_random_prefix_and_count_up() -> None:
    first, second = ServerConfig(secret=SECRET), ServerConfig(secret=SECRET)
    a1, a2, b1 = first.id_factory(), first.id_factory(), second.id_factory()
    prefix, _, number = a1.rpartition("-")
    assert (number, a2) == ("1", f"{prefix}-2")
    assert b1.endswith("-1")
    assert b1 != a1  # each server draws its own prefix


def test_secret_or_authenticator_is_required() -> None:
    with pytest.raises(ValueError, match="secret or an authenticator"):
        ServerConfig()


def test_authenticator_alone_is_enough() -> None:
    config = ServerConfig(authenticator=lambda tok, now: pytest.fail("not called"))
    assert config.secret is None


@pytest.mark.parametrize("field", POSITIVE_FIELDS)
@pytest.mark.parametrize("value", [0, -1])
def test_limits_and_timings_must_be_positive(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        ServerConfig(secret=SECRET, **{field: value})


def test_max_frame_size_must_leave_room_for_the_stamps() -> None:
    with pytest.raises(ValueError, match="over 2048"):
        ServerConfig(secret=SECRET, max_frame_size=2048)
    assert ServerConfig(secret=SECRET, max_frame_size=2049).max_send_size == 1025


def test_every_code_is_in_the_registry() -> None:
    assert set(CODE_INFO) == set(Code)
    for code in Code:
        assert code.info is CODE_INFO[code]
        assert code.info.description.endswith(".")
        assert type(code.info.retry) is bool


REFUSALS = {
    Code.INVALID_REQUEST,
    Code.FORBIDDEN_SEND,
    Code.FORBIDDEN_BROADCAST,
    Code.FORBIDDEN_LIST,
    Code.FORBIDDEN_HISTORY,
    Code.NOT_FOUND,
    Code.INVALID_STATE,
    Code.TOO_LARGE,
    Code.RATE_LIMITED,
    Code.TOKEN_REFUSED,
    Code.CALL_NOT_FOUND,
    Code.CALLEE_LEFT,
    Code.NO_HANDLER,
    Code.CALL_CANCELLED,
    Code.TOO_MANY_CALLS,
    Code.HANDLER_FAILED,
    Code.STREAM_NOT_FOUND,
    Code.STREAM_ABORTED,
    Code.STREAM_PEER_LEFT,
    Code.TOO_MANY_STREAMS,
    Code.OVER_CREDIT,
    # Services (§23).
    Code.FORBIDDEN_INTERCEPT,
    Code.SERVICE_UNAVAILABLE,
    Code.SERVICE_TAKEN,
    Code.NOT_INTERCEPTED,
    Code.INTERCEPTOR_FAILED,
}


@pytest.mark.parametrize("code", list(Code))
def test_only_request_refusals_leave_the_connection_open(code: Code) -> None:
    assert code.closes_connection is (code not in REFUSALS)


def test_protocol_error_is_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        ProtocolError("nope", Code.PROTOCOL_ERROR)


@pytest.mark.parametrize(
    ("error", "code", "base"),
    [
        (LocalProtocolError("r"), Code.PROTOCOL_ERROR, LocalProtocolError),
        (RemoteProtocolError("r"), Code.PROTOCOL_ERROR, RemoteProtocolError),
        (RemoteProtocolError("r", Code.BAD_FRAME), Code.BAD_FRAME, RemoteProtocolError),
        (InvalidRequest("r"), Code.INVALID_REQUEST, LocalProtocolError),
        (MessageTooLarge("r"), Code.TOO_LARGE, LocalProtocolError),
        (TokenError("r", Code.TOKEN_EXPIRED), Code.TOKEN_EXPIRED, ProtocolError),
    ],
)
def test_errors_carry_code_and_reason(error: ProtocolError, code: Code, base: type) -> None:
    assert isinstance(error, base)
    assert isinstance(error, ProtocolError)
    assert (error.code, error.reason, str(error)) == (code, "r", "r")
