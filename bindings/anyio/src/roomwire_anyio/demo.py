"""The seed's Alice and Bob over real sockets: presence lookup by name, a direct message with
an attachment, a reply and a broadcast, on a server embedded in the same process.

``roomwire demo`` and ``examples/alice_and_bob.py`` run it; ``rw`` is ``roomwire_asyncio`` or
``roomwire_trio``.
"""

from __future__ import annotations

import secrets
from types import ModuleType

import anyio

from roomwire import ParticipantToken, RoomMessage


async def bob(rw: ModuleType, url: str, token: str, ready: anyio.Event) -> None:
    async with rw.connect(url, token=token) as room:
        done = anyio.Event()

        async def on_message(message: RoomMessage) -> None:
            size = len(message.attachment or b"")
            print(f"bob   <- {message.type} {message.message} ({size}-byte attachment)")
            if message.type == "chat":
                await room.messaging.send_message(
                    to=message.from_participant_id, type="chat", message={"text": "hi Alice!"}
                )
            else:
                done.set()

        room.messaging.on("message", on_message)
        await room.messaging.enable()
        ready.set()
        await done.wait()


async def alice(rw: ModuleType, url: str, token: str) -> None:
    async with rw.connect(url, token=token) as room:
        replied = anyio.Event()

        def on_message(message: RoomMessage) -> None:
            print(f"alice <- {message.type} {message.message}")
            replied.set()

        room.messaging.on("message", on_message)
        room.messaging.on("participant_added", lambda p: print(f"alice sees {p.name} ({p.id})"))
        await room.messaging.enable()
        peer = room.messaging.get_participant_by_name("bob")
        if peer is None:
            raise RuntimeError("bob is not in the room")
        message_id = await room.messaging.send_message(
            to=peer, type="chat", message={"text": "hi Bob"}, attachment=b"\x89PNG\r\n"
        )
        print(f"alice -> chat to bob, accepted as message {message_id}")
        await replied.wait()
        await room.messaging.broadcast_message(type="announcement", message={"text": "bye all"})
        print("alice -> broadcast announcement")


async def main(rw: ModuleType) -> None:
    """Run the whole exchange, printing every step."""
    secret = secrets.token_urlsafe(32)
    async with rw.serve(host="127.0.0.1", port=0, secret=secret) as server:
        print(f"room server on {server.url}")
        tokens = {n: ParticipantToken(room="demo", name=n).to_jwt(secret) for n in ("alice", "bob")}
        bob_ready = anyio.Event()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(bob, rw, server.url, tokens["bob"], bob_ready)
                await bob_ready.wait()
                tg.start_soon(alice, rw, server.url, tokens["alice"])
    print("done")
