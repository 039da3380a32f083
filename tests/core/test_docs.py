"""The generated docs match the code: docs/CODES.md, STATES.md, LIMITS.md and the generated
regions of docs/PROTOCOL.md (run ``python tools/gen_docs.py`` after changing the code)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from roomwire import Code
from roomwire._state import TRANSITIONS, Input, State
from roomwire.frames import CLIENT_FRAMES, SERVER_FRAMES

ROOT = Path(__file__).resolve().parents[2]


def _gen_docs() -> ModuleType:
    module = sys.modules.get("gen_docs")
    if module is None:
        spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "tools" / "gen_docs.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["gen_docs"] = module
        spec.loader.exec_module(module)
    return module


GEN = _gen_docs()
OUTPUTS = GEN.outputs()


@pytest.mark.parametrize("path", sorted(OUTPUTS), ids=lambda p: p.name)
def test_generated_doc_is_up_to_date(path: Path) -> None:
    assert path.exists(), f"{path.name} is missing: run python tools/gen_docs.py"
    assert path.read_text(encoding="utf-8") == OUTPUTS[path], (
        f"docs/{path.name} is out of date: run python tools/gen_docs.py"
    )


def test_check_mode_reports_nothing_stale() -> None:
    assert GEN.stale() == []
    assert GEN.main(["--check"]) == 0


def test_check_mode_fails_on_a_stale_doc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "X.md"
    doc.write_text("edited by hand\n", encoding="utf-8")
    monkeypatch.setattr(GEN, "outputs", lambda: {doc: "generated\n"})
    assert GEN.main(["--check"]) == 1
    assert "X.md is out of date" in capsys.readouterr().out
    assert doc.read_text(encoding="utf-8") == "edited by hand\n"
    assert GEN.main([]) == 0
    assert doc.read_text(encoding="utf-8") == "generated\n"


def test_codes_table_lists_every_code() -> None:
    table = OUTPUTS[ROOT / "docs" / "CODES.md"]
    for code in Code:
        assert f"| {code.value} | `{code.name}` |" in table


def test_states_diagram_has_every_transition() -> None:
    text = OUTPUTS[ROOT / "docs" / "STATES.md"]
    edges = re.findall(r"^    (\w+) --> (\w+): (.+)$", text, re.MULTILINE)
    drawn = {(a, i, b) for a, b, inputs in edges for i in inputs.split(", ")}
    assert drawn == {(s.name, i.name, t.name) for (s, i), t in TRANSITIONS.items()}
    for state in State:
        assert f"| **{state.name}** |" in text
    for event in Input:
        assert f"| `{event.name}` |" in text


def test_protocol_documents_every_frame_kind() -> None:
    text = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    for kind in {*CLIENT_FRAMES, *SERVER_FRAMES}:
        assert f"| `{kind}` |" in text, f"frame kind {kind!r} missing from the kinds table"


def test_protocol_examples_come_from_the_vectors() -> None:
    text = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    examples = re.findall(r"<!-- generated: example (\S+):", text)
    assert len(examples) >= 10
    for name in examples:
        assert (ROOT / "tests" / "vectors" / f"{name}.json").exists()


def test_annotate_handles_every_cbor_major_type() -> None:
    # {"t": -1, "x": [1, 2, 3], "y": 1.0 (as a half float), "z": null, "b": h'01'}
    body = bytes.fromhex("a5 6174 20 6178 83010203 6179 f93c00 617a f6 6162 4101".replace(" ", ""))
    lines, end = GEN.annotate(body)
    assert end == len(body)
    text = "\n".join(lines)
    for fragment in ("map(5)", "negative(-1)", "array(3)", "float16(1.0)", "null", "h'01'"):
        assert fragment in text
