"""Moobius's channel-service tutorial over real sockets (docs/PROTOCOL.md §23): a service
that rewrites every text with " lol~", a puppet, Meow, that answers any text mentioning a
cat, ``create <name>`` (sent to the service only) making a new puppet, and greetings when
someone joins or leaves. Alice and Bob talk through it on a server embedded in the process.

``roomwire demo --service`` and ``examples/moobius_service.py`` run it; ``rw`` is
``roomwire_asyncio`` or ``roomwire_trio``.
"""

from __future__ import annotations

import secrets
from types import ModuleType
from typing import Any

import anyio

from roomwire import ParticipantToken, RemoteParticipant, RoomMessage


# --8<-- [start:service]
async def service(rw: ModuleType, url: str, token: str, ready: anyio.Event) -> None:
    """The channel service: decides every message, speaks as Meow."""
    async with rw.connect(url, token=token) as room:
        svc = room.service
        await svc.attach()
        meow = await svc.create_puppet(name="Meow", attributes={"kind": "cat"})

        async def greet(participant: RemoteParticipant, text: str) -> None:
            if participant.role != "puppet":
                await svc.send(type="chat", message={"text": text}, sender=meow)

        room.messaging.on("participant_added", lambda p: greet(p, f"Welcome, {p.name}!"))
        room.messaging.on("participant_removed", lambda p: greet(p, f"See you, {p.name}!"))
        ready.set()
        async for up in svc.intercepted():
            text = str(up.message.get("text", ""))
            if up.recipients == [] and text.startswith("create "):
                puppet = await svc.create_puppet(name=text.removeprefix("create "))
                print(f"svc   made the puppet {puppet.name} ({puppet.role})")
                await svc.drop(up)
                continue
            await svc.forward(up, message={**up.message, "text": text + " lol~"})
            if "cat" in text:
                await svc.send(type="chat", message={"text": "meow? I heard cat!"}, sender=meow)


# --8<-- [end:service]


class User:
    """A participant who prints what arrives and can wait for it."""

    def __init__(self, name: str, room: Any) -> None:
        self.name, self.room = name, room
        self.names: dict[str, str] = {}
        self._seen: list[str] = []
        self._changed = anyio.Event()
        room.messaging.on("message", self._message)
        room.messaging.on("participant_added", self._added)

    def _added(self, participant: RemoteParticipant) -> None:
        self.names[participant.id] = participant.name
        if participant.role == "puppet":
            print(f"{self.name:<5} sees the puppet {participant.name}")

    def _message(self, message: RoomMessage) -> None:
        sender = self.names.get(message.from_participant_id, message.from_participant_id)
        text = message.message.get("text")
        print(f"{self.name:<5} <- {sender}: {text}")
        self._seen.append(str(text))
        self._changed.set()

    async def heard(self, text: str) -> None:
        while text not in self._seen:
            self._changed = anyio.Event()
            await self._changed.wait()


async def main(rw: ModuleType) -> None:
    """Run the tutorial, printing every step."""
    secret = secrets.token_urlsafe(32)

    def token(name: str, **grants: Any) -> str:
        return ParticipantToken(room="channel", name=name, **grants).to_jwt(secret)

    async with rw.serve(host="127.0.0.1", port=0, secret=secret) as server:
        print(f"room server on {server.url}")
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                ready = anyio.Event()
                tg.start_soon(
                    service, rw, server.url, token("svc", intercept=True, hidden=True), ready
                )
                await ready.wait()
                async with rw.connect(server.url, token=token("bob")) as bob_room:
                    bob = User("bob", bob_room)
                    await bob_room.messaging.enable()
                    await bob.heard("Welcome, bob!")
                    async with rw.connect(server.url, token=token("alice")) as alice_room:
                        alice = User("alice", alice_room)
                        await alice_room.messaging.enable()
                        await bob.heard("Welcome, alice!")
                        await alice_room.messaging.send_message(
                            to=alice_room.messaging.get_participant_by_name("bob"),
                            type="chat",
                            message={"text": "hi Bob"},
                        )
                        await bob.heard("hi Bob lol~")
                        await bob_room.messaging.broadcast_message(
                            type="chat", message={"text": "my cat says hi"}
                        )
                        await alice.heard("my cat says hi lol~")
                        await alice.heard("meow? I heard cat!")
                        await alice_room.messaging.send_message(
                            to=[], type="chat", message={"text": "create Tom"}
                        )
                        while bob_room.messaging.get_participant_by_name("Tom") is None:
                            await anyio.sleep(0.01)
                    await bob.heard("See you, alice!")
                tg.cancel_scope.cancel()
    print("done")
