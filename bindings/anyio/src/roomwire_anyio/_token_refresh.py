"""Keeping a client's token fresh (PROTOCOL.md §25.2). With ``connect(token_provider=...)``
the client asks the provider (an async callable returning a token) for a new token at 80 % of
the current one's lifetime and hands it to the server in a ``refresh`` request, and asks it
again for every reconnect, so a connection outlives any one token."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Awaitable, Callable

import anyio

log = logging.getLogger("roomwire.client")

TokenProvider = Callable[[], Awaitable[str]]
"""``async () -> token``: a fresh participant token (same room, name, role and grants)."""
REFRESH_AT = 0.8
"""Part of a token's lifetime (from when the client got it to its ``exp``) after which the
client refreshes it."""
RETRY_PAUSE = 1.0
"""Longest pause before trying again after a refresh failed."""


def token_expiry(token: str) -> float | None:
    """A JWT's ``exp`` read without verifying it (the server verifies); None when it has
    none or cannot be read."""
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


class TokenKeeper:
    """The client's current token, where it came from, and the refresh loop."""

    def __init__(self, token: str | None, provider: TokenProvider | None) -> None:
        if token is None and provider is None:
            raise TypeError("connect() needs a token or a token_provider")
        self.provider = provider
        self.token = token or ""
        self._got_at = time.time()
        self._changed = anyio.Event()

    async def for_connect(self, *, again: bool) -> str:
        """The token for a new connection: from the provider for every reconnect (and the
        first connection when no token was given)."""
        if self.provider is not None and (again or not self.token):
            self._set(await self.provider())
        return self.token

    def _set(self, token: str) -> None:
        self.token, self._got_at = token, time.time()
        self._changed.set()
        self._changed = anyio.Event()

    async def run(self, refresh: Callable[[str], Awaitable[object]]) -> None:
        """Until cancelled: before each token's expiry, get a new one and ``refresh`` with it
        (a failure is logged and tried again, up to the server's TOKEN_EXPIRED close)."""
        assert self.provider is not None
        while True:
            changed = self._changed
            exp = token_expiry(self.token)
            if exp is None:
                await changed.wait()  # nothing expires; a reconnect may bring a token that does
                continue
            due = self._got_at + REFRESH_AT * (exp - self._got_at)
            with anyio.move_on_after(max(0.0, due - time.time())):
                await changed.wait()
                continue  # a reconnect took a new token: start over from it
            try:
                token = await self.provider()
                await refresh(token)
            except Exception as exc:  # the provider's failure, or the server's refusal
                log.warning("token refresh failed, trying again: %s", exc)
                await anyio.sleep(min(RETRY_PAUSE, max(0.05, (exp - time.time()) / 4)))
                continue
            self._set(token)
