"""docs/cli.md's exit-code table is the one ``roomwire --help`` prints (EXIT_CODES)."""

from __future__ import annotations

import re
from pathlib import Path

from roomwire_asyncio.cli import EXIT_CODES

CLI_PAGE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_page_lists_every_exit_code_as_the_help_does() -> None:
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", CLI_PAGE.read_text(encoding="utf-8"), re.M)
    assert {int(code): meaning for code, meaning in rows} == EXIT_CODES
