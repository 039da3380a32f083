"""A room server in a process of its own, so that its memory and descriptors can be measured.

    python tests/reliability/server_proc.py RUNTIME CONFIG_JSON

RUNTIME is ``asyncio`` or ``trio``; CONFIG_JSON holds ``ServerConfig`` fields (``secret``
included). Once listening on 127.0.0.1 (a free port) it prints one JSON line
``{"port": ..., "pid": ...}``. Then it answers every ``stats`` line on stdin with one JSON
line ``{"tasks": ..., "connections": ...}``: the live tasks of its event loop and the open
connections of the driver. End of stdin stops it cleanly (GOING_AWAY to every client); the
test also stops it by pid if it is still running at teardown.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import anyio


def _task_count(runtime: str) -> int:
    if runtime == "asyncio":
        import asyncio  # noqa: PLC0415

        return len(asyncio.all_tasks())
    import trio  # noqa: PLC0415

    count = 0
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is not None:
            count += 1
            stack.extend(t for n in task.child_nurseries for t in n.child_tasks)
    return count


async def _main(runtime: str, settings: dict[str, Any]) -> None:
    import importlib  # noqa: PLC0415

    rw = importlib.import_module(f"roomwire_{runtime}")
    stdin = anyio.wrap_file(sys.stdin)
    async with rw.serve("127.0.0.1", 0, **settings) as server:
        print(json.dumps({"port": server.port, "pid": _pid()}), flush=True)
        while line := await stdin.readline():
            if line.strip() == "stats":
                stats = {"tasks": _task_count(runtime), "connections": server.connection_count}
                print(json.dumps(stats), flush=True)


def _pid() -> int:
    import os  # noqa: PLC0415

    return os.getpid()


def main() -> None:
    runtime, settings = sys.argv[1], json.loads(sys.argv[2])
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    anyio.run(_main, runtime, settings, backend=runtime)


if __name__ == "__main__":
    main()
