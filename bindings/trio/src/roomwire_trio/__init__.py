"""roomwire for trio: ``connect()``, ``serve()`` and the ``room.messaging`` API.

The driver is shared with ``roomwire_asyncio`` (see ``roomwire_anyio``), so both behave the
same; call it from inside ``trio.run``.
"""

from roomwire_anyio import *  # noqa: F403 - this module is the trio face of that API
from roomwire_anyio import __all__ as __all__

from ._version import __version__ as __version__
