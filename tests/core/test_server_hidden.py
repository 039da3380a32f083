"""Hidden participants (the token's ``hidden`` grant): they send without entering presence,
so one-shot senders (``roomwire messaging send``) are no presence churn to the others."""

from __future__ import annotations

import pytest

from roomwire import Code, ParticipantToken
from roomwire.events import (
    Connected,
    MessageReceived,
    MessagingDisabled,
    MessagingEnabled,
    ParticipantAdded,
    ParticipantRemoved,
    RequestAcked,
    RequestRefused,
)

from .helpers import SECRET, Room


def test_the_hidden_grant_round_trips_and_defaults_off() -> None:
    hidden = ParticipantToken(room="demo", name="cli", hidden=True)
    assert ParticipantToken.from_jwt(hidden.to_jwt(SECRET), SECRET).hidden is True
    plain = ParticipantToken(room="demo", name="bob")
    assert ParticipantToken.from_jwt(plain.to_jwt(SECRET), SECRET).hidden is False


@pytest.mark.parametrize("presence", [True, False])
def test_a_hidden_sender_is_no_presence_churn(presence: bool) -> None:
    room = Room()
    bob = room.enabled("bob")
    bob.take()
    cli = room.join("cli", hidden=True)
    cli.client.enable(presence=presence)
    room.pump()
    assert [type(e) for e in cli.take()] == [Connected, MessagingEnabled]
    # A hidden participant still sees who is there when it asked for presence (the CLI
    # looks names up), and no one sees it.
    assert [p.name for p in cli.client.remote_participants] == (["bob"] if presence else [])
    assert bob.client.remote_participants == []
    assert [p.name for p in room.server.participants("demo")] == ["bob"]
    bob_id = bob.server.participant.id  # type: ignore[union-attr]
    cli.client.send_message([bob_id], "chat", {"n": 1})
    cli.client.broadcast_message("news", {"n": 2})
    room.pump()
    cli.client.disable()
    room.pump()
    got = bob.take()
    assert [type(e) for e in got] == [MessageReceived, MessageReceived]
    assert all(isinstance(e, MessageReceived) and e.message.from_participant_id for e in got)
    assert [type(e) for e in cli.take()] == [RequestAcked, RequestAcked, MessagingDisabled]
    # Disabling left no trace either, and took its presence feed with it.
    carol = room.join("carol")
    carol.client.enable()
    room.pump()
    assert [type(e) for e in bob.take()] == [ParticipantAdded]
    assert cli.take() == []
    assert [p.name for p in carol.client.remote_participants] == ["bob"]


def test_a_hidden_participant_receives_no_messages() -> None:
    room = Room()
    cli = room.join("cli", hidden=True)
    cli.client.enable()
    room.pump()
    cli_id = cli.server.participant.id  # type: ignore[union-attr]
    bob = room.enabled("bob")
    bob.take()
    bob.client.send_message([cli_id], "chat", {"n": 1})
    bob.client.broadcast_message("news", {"n": 2})
    room.pump()
    refused, acked = bob.take()
    assert isinstance(refused, RequestRefused)
    assert refused.code is Code.NOT_FOUND
    assert isinstance(acked, RequestAcked)
    assert not [e for e in cli.take() if isinstance(e, MessageReceived | ParticipantRemoved)]
    cli.client.close()
    room.pump()
    assert bob.take() == []
