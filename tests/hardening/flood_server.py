"""``server_proc.py`` with few file descriptors, for the flood tests (issue 13, finding 1).

    python tests/hardening/flood_server.py RUNTIME CONFIG_JSON NOFILE

RUNTIME is ``asyncio``, ``uvloop`` or ``trio``; the process's RLIMIT_NOFILE is set to NOFILE
(soft and hard) before anything is imported. It logs at WARNING to stderr.
"""

from __future__ import annotations

import json
import logging
import resource
import sys
from pathlib import Path


def main() -> None:
    runtime, settings, nofile = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    import anyio  # noqa: PLC0415 - after the limit, as the server's own imports

    sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))
    from server_proc import _main  # noqa: PLC0415 - the reliability suite's server

    backend = "trio" if runtime == "trio" else "asyncio"
    options = {"use_uvloop": True} if runtime == "uvloop" else {}
    anyio.run(_main, backend, settings, backend=backend, backend_options=options)


if __name__ == "__main__":
    main()
