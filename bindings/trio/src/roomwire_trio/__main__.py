"""``python -m roomwire_trio`` is the ``roomwire`` command running on trio.

The commands live in ``roomwire_asyncio.cli`` (written on anyio, so they run on either
runtime); install them with ``pip install "roomwire-trio[cli]"``.
"""

import sys

try:
    from roomwire_asyncio.cli import main
except ImportError:  # installed without the cli extra
    sys.exit('error: the roomwire command needs: pip install "roomwire-trio[cli]"')

main(runtime="trio")
