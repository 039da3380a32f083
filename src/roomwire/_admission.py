"""Connection caps: how many connections the server holds at once, in all and per peer
address (``max_connections``, ``max_connections_per_address``). A connection over a cap is
closed at once with TOO_MANY_CONNECTIONS, so a flood cannot take every file descriptor."""

from __future__ import annotations


class Admission:
    __slots__ = ("_addresses", "_counts", "_per_address", "_total")

    def __init__(self, total: int | None, per_address: int | None) -> None:
        self._total = total
        self._per_address = per_address
        self._addresses: dict[object, str] = {}
        """The address of each admitted connection, by id (only with a per-address cap)."""
        self._counts: dict[str, int] = {}
        """Admitted connections per address; an address with none has no entry."""

    def admit(self, connection_id: object, address: str | None, open_now: int) -> str | None:
        """Count a new connection in, or say why it is over a cap (and count nothing)."""
        if self._total is not None and open_now >= self._total:
            return f"the server holds its maximum of {self._total} connections"
        most = self._per_address
        if most is not None and address is not None:
            count = self._counts.get(address, 0)
            if count >= most:
                return f"{address} holds its maximum of {most} connections"
            self._counts[address] = count + 1
            self._addresses[connection_id] = address
        return None

    def release(self, connection_id: object) -> None:
        """A connection closed: it no longer counts against its address."""
        address = self._addresses.pop(connection_id, None)
        if address is not None:
            count = self._counts[address] - 1
            if count:
                self._counts[address] = count
            else:
                del self._counts[address]
