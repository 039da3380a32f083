"""Server URLs: ``tcp://host:port``, ``tls://host:port``, ``ws://host:port/path`` and
``wss://host:port/path`` (IPv6 hosts in brackets)."""

from __future__ import annotations

from urllib.parse import urlsplit

import attrs

from roomwire import Framing

SCHEMES = ("tcp", "tls", "ws", "wss")


@attrs.frozen
class Endpoint:
    """Where a URL points and how to talk there: TLS or not, WebSocket or not."""

    scheme: str
    host: str
    port: int
    path: str = ""

    @property
    def tls(self) -> bool:
        return self.scheme in ("tls", "wss")

    @property
    def websocket(self) -> bool:
        return self.scheme in ("ws", "wss")

    @property
    def framing(self) -> Framing:
        """A WebSocket carries one frame per message; TCP and TLS carry a byte stream."""
        return Framing.MESSAGE if self.websocket else Framing.STREAM

    def url(self, port: int | None = None) -> str:
        """This endpoint's URL (with ``port`` instead, e.g. the one port 0 was bound to)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = (self.path or "/") if self.websocket else ""
        return f"{self.scheme}://{host}:{self.port if port is None else port}{path}"


def parse_endpoint(url: str) -> Endpoint:
    """The endpoint of ``url``, or ValueError naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(
            f"unsupported URL {url!r}: use tcp://host:port, tls://host:port,"
            " ws://host:port/path or wss://host:port/path"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"invalid port in URL {url!r}") from None
    if not parts.hostname or port is None:
        raise ValueError(f"URL {url!r} needs a host and a port: {parts.scheme}://host:port")
    stream_path = parts.path not in ("", "/") and parts.scheme in ("tcp", "tls")
    if parts.query or parts.fragment or stream_path:
        # A token must never ride in a URL, and a stream URL has no path.
        raise ValueError(f"URL {url!r}: no query, fragment or (for tcp/tls) path allowed")
    return Endpoint(parts.scheme, parts.hostname, port, parts.path)


def parse_url(url: str) -> tuple[str, int]:
    """Return (host, port) or raise ValueError naming what is wrong."""
    endpoint = parse_endpoint(url)
    return endpoint.host, endpoint.port


def format_url(host: str, port: int) -> str:
    return Endpoint("tcp", host, port).url()
