"""Alice and Bob in one room, with no network: the sans-IO core driven by hand.

Run: python examples/inmemory_room.py
"""

from roomwire import (
    NEED_DATA,
    ClientConnection,
    ParticipantToken,
    RoomServer,
    ServerConfig,
    ServerConnection,
)

SECRET = "change-me-to-a-long-random-secret-string"
server = RoomServer(ServerConfig(secret=SECRET))
now = 0.0
clients: dict[object, tuple[ClientConnection, ServerConnection]] = {}
for name in ("alice", "bob"):
    jwt = ParticipantToken(room="demo", name=name).to_jwt(SECRET)
    clients[name] = (ClientConnection(token=jwt, now=now), server.accept(name, now))


def pump() -> None:
    """Move bytes both ways until every queue is empty, printing what the clients see."""
    moving = True
    while moving:
        moving = False
        for client, conn in clients.values():
            if data := client.data_to_send():
                conn.receive_data(data)
                moving = True
            while conn.next_event(now) is not NEED_DATA:
                pass
        for conn in server.connections_with_output():
            client = clients[conn.connection_id][0]
            if data := conn.data_to_send():
                client.receive_data(data)
                moving = True
        for name, (client, _) in clients.items():
            while (event := client.next_event(now)) is not NEED_DATA:
                print(f"{name:>5} <- {type(event).__name__}: {event}")


pump()
alice, bob = clients["alice"][0], clients["bob"][0]
alice.enable()
bob.enable()
pump()
found = alice.get_participant_by_name("bob")  # presence lookup by name
assert found is not None
alice.send_message(found.id, "chat", {"text": "hi Bob"}, attachment=b"\x89PNG...")
pump()
bob.broadcast_message("announcement", {"text": "Bob is here"})
pump()
