"""Idempotent sends (docs/PROTOCOL.md §26): the keys each sender identity used lately, so a
send re-sent after a reconnect is acknowledged again instead of delivered twice."""

from __future__ import annotations

import attrs

MAX_KEY_LENGTH = 64
"""Longest idempotency key, in characters: room for a UUID in any spelling."""


@attrs.frozen
class Sent:
    """What a key's first send got: its ack's message id and recipient count."""

    message_id: str
    recipients: int | None
    """None when the ack carried no count (a service decides later, §23)."""
    at: float
    """When it was accepted: it is remembered until ``at + window``."""


def key_error(key: object) -> str | None:
    """Why ``key`` (a frame's ``key``, not None) is not a usable key; None when it is."""
    if type(key) is not str or not 0 < len(key) <= MAX_KEY_LENGTH:
        return f"key must be text of 1 to {MAX_KEY_LENGTH} characters"
    return None


class SentKeys:
    """Per sender identity (room, token name): its keys, oldest first, each kept for
    ``window`` seconds and at most ``per_sender`` of them (the oldest go first).

    Identities are kept in the order they last sent with a key, so the ones whose newest key
    has expired are at the front and are dropped by the next ``remember``: memory holds the
    identities that sent in the last ``window`` seconds, ``per_sender`` keys each at most.
    """

    __slots__ = ("_senders", "per_sender", "window")

    def __init__(self, window: float, per_sender: int) -> None:
        self.window = window
        self.per_sender = per_sender
        self._senders: dict[tuple[str, str], dict[str, Sent]] = {}

    def seen(self, room: str, name: str, key: str, now: float) -> Sent | None:
        """The first send of ``key`` by this identity, if still within the window."""
        keys = self._senders.get((room, name))
        sent = None if keys is None else keys.get(key)
        if sent is None or sent.at + self.window <= now:
            return None
        return sent

    def remember(self, room: str, name: str, key: str, sent: Sent) -> None:
        """Remember the accepted send of ``key``, dropping what has expired."""
        now, window, senders = sent.at, self.window, self._senders
        while senders:
            oldest = next(iter(senders))
            if next(reversed(senders[oldest].values())).at + window > now:
                break
            del senders[oldest]
        identity = (room, name)
        keys = senders.pop(identity, None)
        if keys is None:
            keys = {}
        senders[identity] = keys  # to the back: it is the latest to send
        keys.pop(key, None)  # an expired first send is replaced, at the back
        keys[key] = sent
        while len(keys) > self.per_sender or next(iter(keys.values())).at + window <= now:
            del keys[next(iter(keys))]

    def __len__(self) -> int:
        """Keys remembered, across every identity."""
        return sum(len(keys) for keys in self._senders.values())

    @property
    def identities(self) -> int:
        """Identities with keys remembered."""
        return len(self._senders)
