"""Server URLs: ``tcp://host:port`` (IPv6 hosts in brackets)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit


def parse_url(url: str) -> tuple[str, int]:
    """Return (host, port) or raise ValueError naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != "tcp":
        raise ValueError(f"unsupported URL {url!r}: use tcp://host:port")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"invalid port in URL {url!r}") from None
    if not parts.hostname or port is None:
        raise ValueError(f"URL {url!r} needs a host and a port: tcp://host:port")
    return parts.hostname, port


def format_url(host: str, port: int) -> str:
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


_QUERY_PASSWORD = re.compile(r"(?<=[?&]password=)[^&#]*")


def redact_url(url: str) -> str:
    """``url`` fit for a log: a password in its user part or its query becomes ``***``."""
    parts = urlsplit(url)
    if parts.password is not None:
        userinfo, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{host}")
    return _QUERY_PASSWORD.sub("***", parts.geturl())
