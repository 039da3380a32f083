"""TLS as a layer over a byte stream, on the standard library's ``ssl`` (``MemoryBIO``).

Sans-IO like ``WebSocketLayer``: ciphertext from the socket goes in, plaintext comes out, and
what must be written comes out of ``data_to_send``. Doing the handshake here rather than in
the runtime's own TLS support makes both runtimes behave the same, and lets a failed
handshake (garbage, a plain-TCP client, an untrusted certificate) be reported once, as one
line, instead of being dropped silently (asyncio) or logged with a traceback (anyio).
"""

from __future__ import annotations

import ssl

from .transport import READ_SIZE


class TlsLayer:
    """One side of one TLS connection. ``failure`` holds why it broke, once it did;
    ``ended`` turns True when the peer closed it (EOF or close_notify)."""

    def __init__(
        self, context: ssl.SSLContext, *, server_side: bool, server_hostname: str | None = None
    ) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side, server_hostname=server_hostname
        )
        self._held = bytearray()
        """Plaintext sent before the handshake is done."""
        self.opened = False
        self.ended = False
        self.failure: str | None = None
        self._step()  # the client's hello

    @property
    def has_output(self) -> bool:
        return self._outgoing.pending > 0

    def receive_data(self, data: bytes) -> bytes:
        """Apply ciphertext (``b""``: EOF); returns the plaintext in it (maybe none yet)."""
        if self.failure is not None or self.ended:
            return b""
        if not data:
            self.ended = True
            return b""
        self._incoming.write(data)
        self._step()
        return self._read() if self.opened else b""

    def send(self, plaintext: bytes) -> None:
        if self.failure is not None:
            return
        if self.opened:
            self._ssl.write(plaintext)
        else:
            self._held += plaintext

    def data_to_send(self) -> bytes:
        return self._outgoing.read()

    def _step(self) -> None:
        """Go on with the handshake; once done, write what was held back."""
        if self.opened:
            return
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            return
        except (ssl.SSLError, ssl.CertificateError) as exc:
            self.failure = _why(exc)
            return
        self.opened = True
        if self._held:
            self._ssl.write(bytes(self._held))
            self._held.clear()

    def _read(self) -> bytes:
        chunks: list[bytes] = []
        try:
            while chunk := self._ssl.read(READ_SIZE):
                chunks.append(chunk)
            self.ended = True  # an empty read: the peer's close_notify
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self.ended = True
        except ssl.SSLError as exc:
            self.failure = _why(exc)
        return b"".join(chunks)


def _why(exc: ssl.SSLError | ssl.CertificateError) -> str:
    reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None)
    return str(reason or exc)
