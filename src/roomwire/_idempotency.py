"""Idempotent sends (docs/PROTOCOL.md §26): the keys each sender identity used lately, so a
send re-sent after a reconnect is acknowledged again instead of delivered twice."""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

MAX_KEY_LENGTH = 64
"""Longest idempotency key, in characters: room for a UUID in any spelling."""


class Sent(NamedTuple):
    """What a key's first send got: its ack's message id and recipient count. A named tuple:
    one is made for every keyed send, so it must be cheap."""

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
    """Per sender identity (room, token name): its keys, oldest first, at most ``per_sender``
    of them (the oldest go first), each honoured for ``window`` seconds.

    Identities are kept in the order they last sent with a key. When another identity than
    the last one sends, those at the front whose newest key has expired are dropped: memory
    holds the identities that sent within ``window`` seconds of the latest change of sender,
    ``per_sender`` keys each at most. A key past its window may stay until its identity goes
    (or newer keys push it out): ``seen`` checks the time, not the memory.
    """

    __slots__ = ("_latest", "_senders", "per_sender", "window")

    def __init__(self, window: float, per_sender: int) -> None:
        self.window = window
        self.per_sender = per_sender
        # OrderedDicts: both are queues, and a plain dict's first item costs a scan over the
        # slots its earlier deletions left.
        self._senders: OrderedDict[tuple[str, str], OrderedDict[str, Sent]] = OrderedDict()
        self._latest: OrderedDict[str, Sent] | None = None
        """The keys of the identity that sent last (at the back of ``_senders``)."""

    def seen(self, room: str, name: str, key: str, now: float) -> Sent | None:
        """The first send of ``key`` by this identity, if still within the window."""
        keys = self._senders.get((room, name))
        sent = None if keys is None else keys.get(key)
        if sent is None or sent.at + self.window <= now:
            return None
        return sent

    def remember(self, room: str, name: str, key: str, sent: Sent) -> None:
        """Remember the accepted send of ``key``."""
        senders = self._senders
        identity = (room, name)
        keys = senders.get(identity)
        if keys is None or keys is not self._latest:  # a busy sender skips this
            self._purge(sent.at)
            keys = senders.get(identity)
            if keys is None:
                keys = senders[identity] = OrderedDict()
            else:
                senders.move_to_end(identity)
            self._latest = keys
        if key in keys:  # an expired first send is replaced, at the back
            del keys[key]
        keys[key] = sent
        if len(keys) > self.per_sender:
            keys.popitem(last=False)

    def _purge(self, now: float) -> None:
        """Drop the identities at the front whose newest key has expired."""
        senders, window = self._senders, self.window
        while senders:
            oldest = next(iter(senders.values()))
            if next(reversed(oldest.values())).at + window > now:
                return
            senders.popitem(last=False)

    def __len__(self) -> int:
        """Keys remembered, across every identity."""
        return sum(len(keys) for keys in self._senders.values())

    @property
    def identities(self) -> int:
        """Identities with keys remembered."""
        return len(self._senders)
