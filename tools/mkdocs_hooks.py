"""mkdocs hook: links from docs/ to repository files outside it point at the repository.

docs/PROTOCOL.md links ``../tests/vectors/README.md`` so that it reads well on a clone; on the
site that file does not exist, so such a link goes to ``repo_url`` instead.
"""

from __future__ import annotations

import re
from typing import Any

OUTSIDE = re.compile(r"\]\(\.\./([^)#\s]+)")


def on_page_markdown(markdown: str, *, config: Any, **_: Any) -> str:
    base = str(config["repo_url"]).rstrip("/")
    return OUTSIDE.sub(lambda m: f"]({base}/blob/main/{m.group(1)}", markdown)
