"""roomwire for asyncio: ``connect()``, ``serve()`` and the ``room.messaging`` API.

The driver is shared with ``roomwire_trio`` (see ``roomwire_anyio``), so both behave the same.
``run(main())`` runs a coroutine on uvloop when it is installed, else on asyncio's loop.
"""

import roomwire_anyio
from roomwire_anyio import *  # noqa: F403 - this module is the asyncio face of that API

from ._run import run
from ._version import __version__ as __version__

__all__ = [*roomwire_anyio.__all__, "run"]  # noqa: PLE0604 - the shared names, plus run
