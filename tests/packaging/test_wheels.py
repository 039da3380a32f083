"""Every distribution builds a wheel that carries a README, the MIT license file, project URLs
and a ``__version__`` matching its metadata (issue 18)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = {
    # distribution folder: the module whose __version__ it carries
    ".": "roomwire",
    "bindings/anyio": "roomwire_anyio",
    "bindings/asyncio": "roomwire_asyncio",
    "bindings/trio": "roomwire_trio",
}
URLS = {"Homepage", "Documentation", "Source", "Issues"}
BUILD_TIMEOUT = 300.0


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One wheel per distribution folder, built as pip builds it for an install."""
    out = tmp_path_factory.mktemp("wheels")
    folders = [str(ROOT / folder) for folder in DISTRIBUTIONS]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), *folders],
        check=True,
        capture_output=True,
        timeout=BUILD_TIMEOUT,
    )
    built = {}
    for folder in DISTRIBUTIONS:
        name = _project(folder)["name"].replace("-", "_")
        (wheel,) = out.glob(f"{name}-*.whl")
        built[folder] = wheel
    return built


def _project(folder: str) -> dict[str, object]:
    with (ROOT / folder / "pyproject.toml").open("rb") as file:
        project: dict[str, object] = tomllib.load(file)["project"]
    return project


def _metadata(wheel: zipfile.ZipFile) -> Message:
    (path,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return Parser().parsestr(wheel.read(path).decode())


@pytest.mark.parametrize("folder", list(DISTRIBUTIONS))
def test_wheel_carries_readme_license_urls_and_version(
    wheels: dict[str, Path], folder: str
) -> None:
    project = _project(folder)
    with zipfile.ZipFile(wheels[folder]) as wheel:
        meta = _metadata(wheel)
        names = wheel.namelist()
        (license_path,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        license_text = wheel.read(license_path).decode()
    assert meta["Name"] == project["name"]
    assert meta["Version"] == project["version"]
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert license_text == (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    # The README is the long description, rendered as Markdown, and it is this folder's own.
    assert meta["Description-Content-Type"] == "text/markdown"
    readme = (ROOT / folder / "README.md").read_text()
    assert meta.get_payload().strip() == readme.strip()
    assert readme.startswith(f"# {project['name']}\n") or folder == "."
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL") or [])
    assert urls.keys() == URLS
    assert all(url.startswith("https://") for url in urls.values())
    # __version__ is the metadata's version.
    module = importlib.import_module(DISTRIBUTIONS[folder])
    assert module.__version__ == project["version"]


def test_the_version_module_ships_in_each_binding_wheel(wheels: dict[str, Path]) -> None:
    for folder, package in [
        ("bindings/anyio", "roomwire_anyio"),
        ("bindings/asyncio", "roomwire_asyncio"),
        ("bindings/trio", "roomwire_trio"),
    ]:
        with zipfile.ZipFile(wheels[folder]) as wheel:
            assert f"{package}/_version.py" in wheel.namelist()


def test_entry_points_ship_in_the_wheels(wheels: dict[str, Path]) -> None:
    def entry_points(folder: str) -> str:
        with zipfile.ZipFile(wheels[folder]) as wheel:
            (path,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
            return wheel.read(path).decode()

    assert "[pytest11]\nroomwire = pytest_roomwire" in entry_points("bindings/anyio")
    with zipfile.ZipFile(wheels["bindings/anyio"]) as wheel:
        assert "pytest_roomwire.py" in wheel.namelist()  # the module that entry point names
    assert "[console_scripts]\nroomwire = roomwire_asyncio.cli:main" in entry_points(
        "bindings/asyncio"
    )
    with zipfile.ZipFile(wheels["bindings/trio"]) as wheel:
        assert "roomwire_trio/__main__.py" in wheel.namelist()
        meta = _metadata(wheel)
    assert 'roomwire-asyncio==0.1.0; extra == "cli"' in (meta.get_all("Requires-Dist") or [])
