"""Replay every conformance vector (tests/vectors/*.json) against a fresh receiver."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from roomwire import Code, Framing
from roomwire.frames import CLIENT_FRAMES, SERVER_FRAMES
from tests.vectors import load_vectors, over_messages, replay

VECTORS = load_vectors()
ROOT = Path(__file__).resolve().parents[2]


def _mismatch(expected: Any, actual: Any) -> str:
    """The first step where a replay disagrees with its vector, for a readable failure."""
    if expected["setup"] != actual["setup"]:
        return f"setup differs: {expected['setup']} != {actual['setup']}"
    for number, (want, got) in enumerate(zip(expected["steps"], actual["steps"], strict=True)):
        for key in want.keys() | got.keys():
            if want.get(key) != got.get(key):
                return (
                    f"step {number} ({want.get('note')}): {key}\n"
                    f"  expected: {want.get(key)}\n  actual:   {got.get(key)}"
                )
    return "vectors differ"


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_vector(name: str) -> None:
    vector = VECTORS[name]
    actual = replay(vector)
    assert actual == vector, _mismatch(vector, actual)


def _one_byte_chunks(vector: Any) -> Any:
    split = copy.deepcopy(vector)
    for step in split["steps"]:
        if "hex" in step:
            data = "".join([step["hex"]] if isinstance(step["hex"], str) else step["hex"])
            step["hex"] = [data[i : i + 2] for i in range(0, len(data), 2)]
    return split


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_vector_byte_by_byte(name: str) -> None:
    """However the bytes are split, a receiver produces the same events and output."""
    vector = _one_byte_chunks(VECTORS[name])
    actual = replay(vector)
    assert actual == vector, _mismatch(vector, actual)


OVER_MESSAGES = sorted(name for name, vector in VECTORS.items() if over_messages(vector))


@pytest.mark.parametrize("name", OVER_MESSAGES)
def test_vector_over_messages(name: str) -> None:
    """The same exchange over a message transport (each frame one message, no prefix) gives
    the same events, states and frames."""
    vector = VECTORS[name]
    actual = replay(vector, Framing.MESSAGE)
    assert actual == vector, _mismatch(vector, actual)


def test_only_the_stream_prefix_vectors_stay_on_streams() -> None:
    assert sorted(set(VECTORS) - set(OVER_MESSAGES)) == [
        "client_empty_frame",  # a zero length prefix; an empty message is tested in core
        "client_oversize_prefix",
        "server_empty_frame",
        "server_oversize_prefix",
    ]


def _events(vector: Any) -> list[Any]:
    found = []
    for step in vector["steps"]:
        events = step["expected"]
        for group in events.values() if isinstance(events, dict) else [events]:
            found.extend(group)
        if isinstance(step.get("returns"), dict):
            found.append(step["returns"])
    return found


def test_vectors_cover_every_code() -> None:
    seen = {event.get("code") for v in VECTORS.values() for event in _events(v)}
    assert {int(code) for code in Code} <= seen


def test_vectors_cover_every_frame_kind() -> None:
    received: dict[str, set[str]] = {"client->server": set(), "server->client": set()}
    for vector in VECTORS.values():
        for step in vector["steps"]:
            received[vector["direction"]].update(
                f["t"] for f in step.get("input_frames", []) if isinstance(f, dict)
            )
    assert set(CLIENT_FRAMES) <= received["client->server"]
    assert set(SERVER_FRAMES) <= received["server->client"]


def test_vectors_cover_every_state() -> None:
    states: set[str] = set()
    for vector in VECTORS.values():
        for step in vector["steps"]:
            state = step["expected_state"]
            states.update(state.values() if isinstance(state, dict) else [state])
    assert states >= {"OPEN", "ENABLING", "ENABLED", "DISABLING", "CLOSING", "CLOSED"}


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_vectors", ROOT / "tools/make_vectors.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_vectors", module)
    spec.loader.exec_module(module)
    return module


def test_generator_matches_committed_vectors() -> None:
    """tools/make_vectors.py regenerates exactly the committed files (no drift)."""
    files = _load_generator().build()
    committed = {
        p.name: p.read_text(encoding="utf-8") for p in (ROOT / "tests/vectors").glob("*.json")
    }
    assert sorted(files) == sorted(committed)
    stale = [name for name, text in files.items() if committed[name] != text]
    assert not stale, f"run python tools/make_vectors.py: {stale}"


def test_a_hand_made_marker_ends_its_note() -> None:
    """tests/vectors/README.md: a hand-made step's note ends with "(hand-made)"."""
    misplaced = [
        (name, step["note"])
        for name, vector in VECTORS.items()
        for step in vector["steps"]
        if "hand-made" in step["note"] and not step["note"].endswith("(hand-made)")
    ]
    assert misplaced == []
