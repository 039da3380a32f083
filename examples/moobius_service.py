"""Moobius's channel-service tutorial over real sockets, on asyncio or trio: a service
rewrites every text with " lol~", its puppet Meow answers anything about a cat, ``create
<name>`` sent to the service only makes a puppet, and joins and leaves are greeted.

The tutorial itself (the room.service API) is
bindings/anyio/src/roomwire_anyio/demo_service.py; this script picks the runtime.
``roomwire demo --service`` runs the same.

Run: python examples/moobius_service.py --runtime asyncio   (or --runtime trio)
"""

import argparse

from roomwire_anyio import demo_service

parser = argparse.ArgumentParser(description="A Moobius-style channel service")
parser.add_argument("--runtime", choices=("asyncio", "trio"), default="asyncio")
if parser.parse_args().runtime == "trio":
    import roomwire_trio
    import trio

    trio.run(demo_service.main, roomwire_trio)
else:
    import roomwire_asyncio

    roomwire_asyncio.run(demo_service.main(roomwire_asyncio))
