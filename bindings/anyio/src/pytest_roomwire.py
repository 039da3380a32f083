"""pytest fixtures for testing your own app against a real roomwire server.

Installed with ``roomwire-anyio`` (so with either binding) and loaded by pytest on its own
(a ``pytest11`` entry point). The fixtures are async: use them from tests that anyio's pytest
plugin runs (``@pytest.mark.anyio``); they run on the test's own event loop, asyncio or trio
as the ``anyio_backend`` fixture says.

- ``roomwire_server``: a ``Server`` on 127.0.0.1 and a free port (``roomwire_server.url``),
  stopped after the test. ``@pytest.mark.roomwire_server(**settings)`` passes
  ``ServerConfig`` fields, e.g. ``max_frame_size=4096``.
- ``roomwire_token``: ``roomwire_token("alice", room="demo", can_send=False)`` mints a token
  the server accepts (keywords are ``ParticipantToken`` fields).
- ``roomwire_secret``: the secret that server checks tokens with (new for every test).

This is a top-level module, and it imports roomwire only inside the fixtures: pytest loads
plugins before coverage starts, so a plugin that imported the package under test at load time
would hide that package's import-time lines from a user's coverage report (and ours).
"""

from __future__ import annotations

import importlib
import secrets
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from roomwire_anyio import Server

__all__ = ["TokenFactory", "roomwire_secret", "roomwire_server", "roomwire_token"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "roomwire_server(**settings): ServerConfig fields for roomwire_server"
    )


class TokenFactory(Protocol):
    """What ``roomwire_token`` is: mints a token for ``name`` in ``room``."""

    def __call__(self, name: str, *, room: str = "test", **fields: Any) -> str: ...


@pytest.fixture
def roomwire_secret() -> str:
    """The secret ``roomwire_server`` signs and checks tokens with."""
    return secrets.token_urlsafe(32)


@pytest.fixture
async def roomwire_server(
    roomwire_secret: str, request: pytest.FixtureRequest, anyio_backend_name: str
) -> AsyncIterator[Server]:
    """A running server on 127.0.0.1, port 0, on the test's runtime (``roomwire_asyncio`` or
    ``roomwire_trio`` must be installed); every connection is closed after the test."""
    # Not at plugin load (see the docstring).
    binding = importlib.import_module(f"roomwire_{anyio_backend_name}")
    marker = request.node.get_closest_marker("roomwire_server")
    settings = marker.kwargs if marker else {}
    async with binding.serve("127.0.0.1", 0, secret=roomwire_secret, **settings) as server:
        yield server


@pytest.fixture
def roomwire_token(roomwire_secret: str) -> TokenFactory:
    """``roomwire_token(name, room="test", **ParticipantToken fields)`` -> a signed token."""
    from roomwire import ParticipantToken  # noqa: PLC0415 - not at plugin load (see the docstring)

    def mint(name: str, *, room: str = "test", **fields: Any) -> str:
        return ParticipantToken(room=room, name=name, **fields).to_jwt(roomwire_secret)

    return mint
