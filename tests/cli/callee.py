"""A participant that answers requests, for the CLI's ``messaging request`` tests: run as
``python tests/cli/callee.py URL ROOM NAME SECRET``; prints ``ready`` once its handlers are
registered and messaging is enabled, then serves until it is killed."""

from __future__ import annotations

import sys
from typing import Any

import anyio
import roomwire_asyncio as rw

from roomwire import ParticipantToken, RoomMessage


async def add(request: RoomMessage) -> tuple[dict[str, Any], bytes | None]:
    return {"sum": request.message["a"] + request.message["b"]}, request.attachment


async def refuse(request: RoomMessage) -> dict[str, Any]:
    raise rw.RequestError(42, "the application says no")


async def hang(request: RoomMessage) -> dict[str, Any]:
    await anyio.sleep(3600)
    return {}


async def main(url: str, room: str, name: str, secret: str) -> None:
    token = ParticipantToken(room=room, name=name).to_jwt(secret)
    async with rw.connect(url, token=token, reconnect=False) as client:
        for type_, handler in (("tool.add", add), ("tool.refuse", refuse), ("tool.hang", hang)):
            client.messaging.on_request(type_, handler)
        await client.messaging.enable()
        print("ready", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    rw.run(main(*sys.argv[1:5]))
