"""Resume after reconnect (PROTOCOL.md §22): the secret that proves a participant id is
one's own, what a client presents in its ``hello`` (``ResumeInfo``), and the participants
a server holds suspended after their connection was lost.

The secret is an HMAC of the room, the name and the participant id under the server's
resume key, not a random draw: any server with the same key (a restart on the same
configuration, another node of the cluster) can check it with nothing stored, so a client
can take back what was sent to its old id after a restart too, and no other can."""

from __future__ import annotations

import hashlib
import hmac
import math
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ._session import ServerConnection

RESUME_KEY_LABEL = b"roomwire resume key"
"""What the resume key is derived from the token secret with (so the two never coincide)."""


def derive_key(secret: str | bytes) -> bytes:
    """The resume key of a server whose tokens are checked with ``secret``."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, RESUME_KEY_LABEL, hashlib.sha256).digest()


def resume_secret(key: bytes, room: str, name: str, participant_id: str) -> str:
    """The secret a welcome hands participant ``participant_id`` (of ``name`` in ``room``)."""
    # Length-prefixed fields: no two triples share a message.
    parts = (room, name, participant_id)
    message = b"".join(len(b := p.encode()).to_bytes(4, "big") + b for p in parts)
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def proves(key: bytes, room: str, name: str, participant_id: str, secret: str) -> bool:
    """Whether ``secret`` is participant ``participant_id``'s (checked in constant time)."""
    return hmac.compare_digest(resume_secret(key, room, name, participant_id), secret)


@attrs.frozen(kw_only=True)
class ResumeInfo:
    """What a client presents to take its place back after a lost connection
    (``ClientConnection.resume_info``; pass it as ``ClientConnection(resume=...)``)."""

    participant_id: str
    """The participant id to take back."""
    secret: str
    """The welcome's ``resume`` secret for that id."""
    epoch: str
    """The room's epoch the position is in."""
    seq: int
    """The last room seq the client processed (the welcome's, if nothing since)."""
    enabled: bool = False
    """Messaging was enabled: a server that cannot give the id back enables the new one at
    once (no gap between the welcome and an enable for messages to fall into)."""
    presence: bool = True
    """It was enabled with presence."""

    def frame(self) -> dict[str, Any]:
        """The hello's ``resume`` map."""
        resume: dict[str, Any] = {
            "id": self.participant_id,
            "secret": self.secret,
            "epoch": self.epoch,
            "seq": self.seq,
        }
        if self.enabled:
            resume["enable"] = True
            resume["presence"] = self.presence
        return resume


class Suspended:
    """Participants whose connection was lost, held for ``resume_window`` seconds, by id,
    in the order their windows end (one window for all: the order they were lost)."""

    __slots__ = ("_held", "_window")

    def __init__(self, window: float) -> None:
        self._window = window
        self._held: dict[str, tuple[float, ServerConnection]] = {}

    def hold(self, participant_id: str, connection: ServerConnection, now: float) -> None:
        self._held[participant_id] = (now + self._window, connection)

    def take(self, participant_id: str) -> ServerConnection | None:
        """The suspended connection of ``participant_id``, taken back; None if none."""
        held = self._held.pop(participant_id, None)
        return None if held is None else held[1]

    def next_deadline(self) -> float:
        held = self._held
        return next(iter(held.values()))[0] if held else math.inf

    def lapse(self, now: float) -> list[ServerConnection]:
        """The connections whose window ended by ``now``: their participants leave."""
        held, gone = self._held, []
        while held:
            participant_id, (deadline, connection) = next(iter(held.items()))
            if deadline > now:
                break
            del held[participant_id]
            gone.append(connection)
        return gone

    def __len__(self) -> int:
        return len(self._held)
