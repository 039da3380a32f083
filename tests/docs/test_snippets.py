"""Every ```python block in README.md and docs/*.md runs as written, as its own script.

The convention the blocks follow (README.md says it): a block that needs a server reads its
address and secret from ``ROOMWIRE_URL`` and ``ROOMWIRE_SECRET``, the two variables
``roomwire serve`` tells you to export; here they point at a real ``roomwire serve``. A block
that is only an include (``--8<-- "examples/test_*.py"``, for the docs site) shows a pytest
file: that file is run with pytest, as a user would.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..cli.conftest import SECRET, Server, Spawner, cli_env

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
INCLUDE = re.compile(r'--8<-- "([^"]+)"')
TIMEOUT = 60.0
"""Seconds one block may take (an included test file runs on two runtimes)."""


def _blocks() -> Iterator[pytest.ParameterSet]:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            yield pytest.param(match.group(1), id=f"{page.relative_to(ROOT)}:{line}")


BLOCKS = list(_blocks())


def test_every_python_fence_is_collected() -> None:
    # An indented or oddly closed fence would escape FENCE, and so the tests: none may.
    total = sum(page.read_text(encoding="utf-8").count("```python") for page in PAGES)
    assert total == len(BLOCKS)
    assert len(BLOCKS) >= 2  # the README's two, at least


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    spawner = Spawner(tmp_path_factory.mktemp("docs-server"))
    yield spawner.server()
    spawner.close()


@pytest.mark.parametrize("code", BLOCKS)
def test_block_runs(code: str, docs_server: Server, tmp_path: Path) -> None:
    env = cli_env(ROOMWIRE_URL=docs_server.url, ROOMWIRE_SECRET=SECRET)
    include = INCLUDE.fullmatch(code.strip())
    if include is not None:
        path = ROOT / include.group(1)
        assert path.match("test_*.py"), path
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)]
    else:
        script = tmp_path / "snippet.py"
        script.write_text(code, encoding="utf-8")
        command = [sys.executable, "-X", "dev", "-W", "error", str(script)]
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
