"""roomwire for trio: ``connect()``, ``serve()`` and the ``room.messaging`` API.

The driver is shared with ``roomwire_asyncio`` (see ``roomwire_anyio``), so both behave the
same; here connections are carried by anyio streams. Call it from inside ``trio.run``.
"""

from functools import partial

import roomwire_anyio
from roomwire_anyio import *  # noqa: F403 - this module is the trio face of that API
from roomwire_anyio import StreamNetwork

from ._version import __version__ as __version__

_NETWORK = StreamNetwork()
connect = partial(roomwire_anyio.connect, network=_NETWORK)
serve = partial(roomwire_anyio.serve, network=_NETWORK)

__all__ = [*roomwire_anyio.__all__, "connect", "serve"]  # noqa: PLE0604 - the shared names
