"""``python -m roomwire_asyncio`` is the ``roomwire`` command."""

from .cli import main

main()
