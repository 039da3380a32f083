"""Alice and Bob over real sockets, on asyncio or trio.

The exchange itself (about 60 lines of the room.messaging API) is
bindings/anyio/src/roomwire_anyio/demo.py; this script picks the runtime.

Run: python examples/alice_and_bob.py --runtime asyncio   (or --runtime trio)
"""

import argparse

from roomwire_anyio import demo

parser = argparse.ArgumentParser(description="Alice and Bob over real sockets")
parser.add_argument("--runtime", choices=("asyncio", "trio"), default="asyncio")
if parser.parse_args().runtime == "trio":
    import roomwire_trio
    import trio

    trio.run(demo.main, roomwire_trio)
else:
    import roomwire_asyncio

    roomwire_asyncio.run(demo.main(roomwire_asyncio))
