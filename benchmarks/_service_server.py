"""The other processes of ``benchmarks/service.py``, stopped by pid:

- ``python _service_server.py serve``: a roomwire server (roomwire_asyncio on uvloop) on
  127.0.0.1, a free port; prints its URL.
- ``python _service_server.py pass URL ROOM``: a pass-through service attached to ``ROOM``,
  forwarding every message as sent with its decisions pipelined; prints ``READY``
  (``service.py`` also runs ``pass_through`` in its own process).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import anyio
import roomwire_asyncio as rw

from roomwire import ParticipantToken

SECRET = "benchmark-secret-that-is-long-enough-for-hs256"


async def serve() -> None:
    async with rw.serve("127.0.0.1", 0, secret=SECRET, outbound_limit=1 << 30) as server:
        print(server.url, flush=True)
        await anyio.sleep_forever()


async def pass_through(url: str, room: str, ready: Callable[[], object]) -> None:
    token = ParticipantToken(room=room, name="svc", intercept=True, hidden=True).to_jwt(SECRET)
    async with rw.connect(url, token=token) as svc:
        await svc.service.attach()
        ready()
        async for up in svc.service.intercepted():
            await svc.service.forward(up, wait=False)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        rw.run(serve())
    else:
        rw.run(pass_through(sys.argv[2], sys.argv[3], lambda: print("READY", flush=True)))
