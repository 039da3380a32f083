"""A frame kind's entry in its receiving side's registry: its shape check, the state input it
drives and its handler, in one place (as aioquic's frame-handler table). Each side has one
registry of the kinds it receives: ``_session.CLIENT_KINDS`` and ``_client.SERVER_KINDS``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs

from ._codec import Frame, decode_payload
from ._errors import bad_frame
from ._fast import CHUNK_START, decode_chunk
from ._state import Input

Checker = Callable[[dict[str, Any]], None]
"""Raises BAD_FRAME unless a decoded frame's fields have the right types."""

H = TypeVar("H")


@attrs.frozen
class FrameKind(Generic[H]):
    check: Checker
    input: Input | None
    """The input the frame drives, checked and applied before ``handle`` runs. None for
    replies: which input they drive depends on the request (``_state.REPLIES``)."""
    handle: H
    verb: str | None = None
    """Server only: a request's verb, for the refusal of a request the state does not allow
    (``cannot {verb} while ...``). None for frames that are not requests."""
    unexpected: str = "{kind!r} before the handshake completed"
    """Server only: the protocol error when a frame that is not a request is out of place."""


def receive(payload: bytes, kinds: dict[str, FrameKind[H]]) -> tuple[Frame, FrameKind[H]]:
    """Decode one frame and find its kind's entry; its shape is checked. BAD_FRAME for a
    kind the registry does not hold."""
    # The test inline, not in decode_chunk: every other frame pays only for it.
    chunk = decode_chunk(payload) if payload.startswith(CHUNK_START) else None
    frame = decode_payload(payload) if chunk is None else chunk
    kind = kinds.get(frame["t"])
    if kind is None:
        raise bad_frame(f"unknown frame kind {frame['t'][:40]!r}")
    kind.check(frame)
    return frame, kind
