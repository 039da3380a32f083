"""The bindings suite's fixtures (both runtimes, the leak check), plus test certificates:
a ``trustme`` CA, a server context for 127.0.0.1 and a client context trusting that CA."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest
import trustme

from tests.bindings import SECRET
from tests.bindings.conftest import (
    anyio_backend,
    make_token,
    no_leaked_tasks,
    pytest_configure,
    rw,
)

__all__ = ["anyio_backend", "make_token", "no_leaked_tasks", "pytest_configure", "rw"]


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_ssl(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_ssl(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


LISTEN = ["tcp://127.0.0.1:0", "tls://127.0.0.1:0", "ws://127.0.0.1:0/", "wss://127.0.0.1:0/"]


@pytest.fixture
async def server(
    rw: ModuleType, server_ssl: ssl.SSLContext, request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    """One server listening on all four schemes (``@pytest.mark.server(**settings)``)."""
    marker = request.node.get_closest_marker("server")
    settings = marker.kwargs if marker else {}
    async with rw.serve(listen=LISTEN, ssl=server_ssl, secret=SECRET, **settings) as running:
        yield running
