"""roomwire for asyncio: ``connect()``, ``serve()`` and the ``room.messaging`` API.

The driver is shared with ``roomwire_trio`` (see ``roomwire_anyio``), so both behave the same;
here connections are asyncio Protocols (no task per connection, output written once per loop
turn) and ``serve(redis=...)`` has its Redis backplane and history store. ``run(main())`` runs
a coroutine on uvloop when it is installed, else on asyncio's loop.
"""

from functools import partial

import roomwire_anyio
from roomwire_anyio import *  # noqa: F403 - this module is the asyncio face of that API

from ._backplane import redis_backplane, redis_history
from ._protocol_transport import ProtocolNetwork
from ._run import run
from ._version import __version__ as __version__

_NETWORK = ProtocolNetwork()
connect = partial(roomwire_anyio.connect, network=_NETWORK)
serve = partial(
    roomwire_anyio.serve,
    network=_NETWORK,
    backplane=redis_backplane,
    history_store=redis_history,
)

__all__ = [*roomwire_anyio.__all__, "connect", "run", "serve"]  # noqa: PLE0604 - shared names
