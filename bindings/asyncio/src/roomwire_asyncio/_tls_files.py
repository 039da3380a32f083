"""TLS contexts from the files the CLI names (``--tls-cert``/``--tls-key``, ``--ca``)."""

from __future__ import annotations

import ssl
from pathlib import Path


def server_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """The server's context (None without a certificate); ValueError naming a bad file."""
    if cert is None:
        if key is not None:
            raise ValueError("--tls-key needs --tls-cert")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load --tls-cert {cert} / --tls-key {key}: {exc}") from None
    return context


def client_context(ca: Path | None) -> ssl.SSLContext | None:
    """None (the system's trust roots) or a context that also trusts ``ca``."""
    if ca is None:
        return None
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load --ca {ca}: {exc}") from None
    return context
