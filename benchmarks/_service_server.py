"""The server of ``benchmarks/service.py``: roomwire_asyncio on uvloop, 127.0.0.1, a free
port; prints its URL, then serves until it is terminated."""

from __future__ import annotations

import anyio
import roomwire_asyncio as rw

SECRET = "benchmark-secret-that-is-long-enough-for-hs256"


async def main() -> None:
    async with rw.serve("127.0.0.1", 0, secret=SECRET, outbound_limit=1 << 30) as server:
        print(server.url, flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    rw.run(main())
