"""Item 6: the auth matrix. Every bad token is refused with its own close code, through the
client binding and on the wire; every missing grant with its own refusal code (the connection
stays open); a connection that never completes the handshake is closed with
HANDSHAKE_TIMEOUT once the handshake timeout has passed, however it stalls.
"""

from __future__ import annotations

import base64
import json
import time
import warnings
from typing import Any

import anyio
import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning
from roomwire_anyio import ConnectionClosedError, ForbiddenError

from roomwire import PROTOCOL_VERSION, Code

from . import SECRET, Inbox, close_codes, frame, raw_peer, wait_until
from .conftest import Figures

pytestmark = pytest.mark.anyio

HANDSHAKE_TIMEOUT = 0.3
MARGIN = 0.5
"""Seconds the handshake-timeout close may come after the timeout."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any]) -> str:
    """A JWT with ``alg: none`` and an empty signature."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def hs512(claims: dict[str, Any]) -> str:
    """Signed with the server's secret, but with HS512 (too short a key for it: PyJWT warns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, SECRET, algorithm="HS512")


CLAIMS = {"room": "main", "name": "mallory", "grants": {"send": True}}


def bad_tokens(make_token: Any) -> dict[str, tuple[str, str | None, int, Code]]:
    """case -> (token, room asked for in the hello, protocol version, expected close code)."""
    v = PROTOCOL_VERSION
    return {
        "expired": (make_token("m", expires_at=time.time() - 5), None, v, Code.TOKEN_EXPIRED),
        "wrong key": (
            make_token("m", secret="another-secret-that-is-long-enough-too"),
            None,
            v,
            Code.TOKEN_BAD_SIGNATURE,
        ),
        "alg none": (unsigned(CLAIMS), None, v, Code.TOKEN_BAD_ALGORITHM),
        "alg HS512": (
            hs512(CLAIMS),
            None,
            v,
            Code.TOKEN_BAD_ALGORITHM,
        ),
        "other room": (make_token("m", room="other"), "main", v, Code.ROOM_MISMATCH),
        "garbage": ("not a token at all", None, v, Code.TOKEN_INVALID),
        "no name claim": (
            jwt.encode({"room": "main"}, SECRET, algorithm="HS256"),
            None,
            v,
            Code.TOKEN_INVALID,
        ),
        "version 2": (make_token("m"), None, 2, Code.UNSUPPORTED_VERSION),
    }


async def test_each_bad_token_is_refused_with_its_own_code(
    rw: Any, server: Any, make_token: Any, join: Any, figures: Figures
) -> None:
    watcher = Inbox(await join("watcher"))
    got_wire: dict[str, list[int]] = {}
    got_binding: dict[str, Code] = {}
    for case, (token, room, version, code) in bad_tokens(make_token).items():
        # On the wire: exactly one close with the code, then the server hangs up.
        async with raw_peer(server.url) as peer:
            hello: dict[str, Any] = {"v": version, "token": token}
            if room is not None:
                hello["room"] = room
            await peer.send(frame("hello", **hello))
            frames = await peer.rest()
            got_wire[case] = close_codes(frames)
            assert [f["t"] for f in frames] == ["close"]
            assert peer.eof
        # Through the binding (which cannot send another version).
        if version == PROTOCOL_VERSION:
            with pytest.raises(ConnectionClosedError) as caught:
                async with rw.connect(server.url, token=token, room=room, reconnect=False):
                    pass
            got_binding[case] = caught.value.code
            assert got_binding[case] is code
        assert got_wire[case] == [code], case
    # Nobody was let in: the watcher saw no one, and only it is connected.
    assert watcher.room.messaging.remote_participants == []
    await wait_until(lambda: server.connection_count == 1)
    figures(**{case.replace(" ", "_"): codes[0] for case, codes in got_wire.items()})


async def test_each_missing_grant_is_refused_with_its_own_code(join: Any, figures: Figures) -> None:
    bob = Inbox(await join("bob"))
    no_send = await join("no-send", can_send=False)
    no_broadcast = await join("no-broadcast", can_broadcast=False)
    no_list = await join("no-list", can_list=False, enable=False)
    await wait_until(lambda: len(no_send.messaging.remote_participants) == 2)
    target = bob.id
    refused: dict[str, Code] = {}
    with pytest.raises(ForbiddenError) as caught:
        await no_send.messaging.send_message(to=target, type="x", message={})
    refused["send"] = caught.value.code
    with pytest.raises(ForbiddenError) as caught:
        await no_broadcast.messaging.broadcast_message(type="x", message={})
    refused["broadcast"] = caught.value.code
    with pytest.raises(ForbiddenError) as caught:
        await no_list.messaging.enable()
    refused["list"] = caught.value.code
    assert refused == {
        "send": Code.FORBIDDEN_SEND,
        "broadcast": Code.FORBIDDEN_BROADCAST,
        "list": Code.FORBIDDEN_LIST,
    }
    # Each connection stays open and may still do what it is granted.
    await no_send.messaging.broadcast_message(type="ok", message={"n": 1})
    await no_broadcast.messaging.send_message(to=target, type="ok", message={"n": 2})
    await no_list.messaging.enable(presence=False)
    await no_list.messaging.send_message(to=target, type="ok", message={"n": 3})
    await bob.wait_for(3)
    assert sorted(m.message["n"] for m in bob.messages) == [1, 2, 3]
    assert no_list.messaging.remote_participants == []  # it sees no one
    figures(**{f"no_{grant}": int(code) for grant, code in refused.items()})


@pytest.mark.server(handshake_timeout=HANDSHAKE_TIMEOUT)
async def test_a_connection_that_never_completes_the_handshake_is_closed(
    server: Any, make_token: Any, figures: Figures
) -> None:
    hello = frame("hello", v=PROTOCOL_VERSION, token=make_token("slow"))
    timings: dict[str, float] = {}
    codes: dict[str, list[int]] = {}

    async def stall(case: str) -> None:
        # Timed from before the connect: the server's clock starts at its accept, which a
        # loaded machine can run before the connecting task resumes.
        start = anyio.current_time()
        async with raw_peer(server.url) as peer:
            if case == "half a hello":
                await peer.send(hello[: len(hello) // 2])
            elif case == "trickle":

                async def trickle() -> None:  # one byte every 50 ms: never done in time
                    for i in range(len(hello) - 1):
                        await peer.send(hello[i : i + 1])
                        await anyio.sleep(0.05)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(trickle)
                    frames = await peer.rest(timeout=HANDSHAKE_TIMEOUT + MARGIN + 1)
                    tg.cancel_scope.cancel()
            if case != "trickle":
                frames = await peer.rest(timeout=HANDSHAKE_TIMEOUT + MARGIN + 1)
            timings[case] = anyio.current_time() - start
            codes[case] = close_codes(frames)

    async with anyio.create_task_group() as tg:
        for case in ("silent", "half a hello", "trickle"):
            tg.start_soon(stall, case)
    assert codes == {key: [Code.HANDSHAKE_TIMEOUT] for key in timings}
    for took in timings.values():
        assert HANDSHAKE_TIMEOUT - 0.01 <= took <= HANDSHAKE_TIMEOUT + MARGIN
    # A frame other than hello before the handshake is refused at once, not timed out.
    async with raw_peer(server.url) as peer:
        await peer.send_frame("ping")
        assert close_codes(await peer.rest(timeout=HANDSHAKE_TIMEOUT / 2)) == [Code.PROTOCOL_ERROR]
    await wait_until(lambda: server.connection_count == 0)
    figures(
        timeout_s=HANDSHAKE_TIMEOUT, **{k.replace(" ", "_") + "_s": v for k, v in timings.items()}
    )
