"""One roomwire node for the multi-node suite: ``python node.py REDIS_URL SETTINGS_JSON``.

Runs ``roomwire_asyncio.serve(port=0, redis=REDIS_URL, **settings)``, prints the server's
URL on stdout once the backplane is healthy, and serves until killed or until stdin closes.
"""

from __future__ import annotations

import json
import logging
import sys

import anyio
import roomwire_asyncio


async def main(redis_url: str, settings: dict[str, object]) -> None:
    async with roomwire_asyncio.serve(port=0, redis=redis_url, **settings) as server:  # type: ignore[arg-type]
        print(server.url, flush=True)
        await anyio.wait_readable(sys.stdin.fileno())  # until the test closes stdin, or kills


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    roomwire_asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
