"""The participant record: its wire form, its check, and the attribute merge, for both sides
(welcome, snapshot pages, presence frames and backplane records all carry it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import cbor2

from .events import JSONObject, RemoteParticipant

Record = dict[str, Any]


def to_record(participant: RemoteParticipant) -> Record:
    """The wire form of a participant."""
    return {
        "id": participant.id,
        "name": participant.name,
        "role": participant.role,
        "attributes": participant.attributes,
    }


def encode(participant: RemoteParticipant) -> bytes:
    """The record as CBOR: encoded once per change, spliced into every snapshot page."""
    return cbor2.dumps(to_record(participant))


def is_record(value: object) -> bool:
    """True when ``value`` has a participant record's fields and their types."""
    return (
        type(value) is dict
        and type(value.get("id")) is str
        and type(value.get("name")) is str
        and type(value.get("role")) is str
        and type(value.get("attributes")) is dict
    )


def from_record(record: Record) -> RemoteParticipant:
    """The participant of a record that passed ``is_record``."""
    return RemoteParticipant(
        id=record["id"], name=record["name"], role=record["role"], attributes=record["attributes"]
    )


def merge_attributes(current: JSONObject, update: JSONObject) -> JSONObject:
    """``current`` with ``update`` applied: a None value removes its key."""
    merged = dict(current)
    for key, value in update.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def attributes_size(attributes: JSONObject) -> int:
    """Encoded size of an attributes object, as ``max_attributes_size`` counts it."""
    return len(cbor2.dumps(attributes))


def participant_named(
    participants: Iterable[RemoteParticipant], name: str
) -> RemoteParticipant | None:
    """The one present participant called ``name``; None when there is none, and None when
    several share it (docs/PROTOCOL.md §9.5): a newcomer taking an existing participant's
    name makes the name ambiguous, never a way to capture what is addressed by name."""
    found = None
    for participant in participants:
        if participant.name == name:
            if found is not None:
                return None
            found = participant
    return found
