"""Generate the conformance vectors in tests/vectors/*.json.

Every vector is recorded from a real in-memory exchange through the public API: a RoomServer
(with ``id_factory`` ids ``id1``, ``id2``... and a fixed secret) and ClientConnections, time
stepped by hand from ``now=1000.0``. One side is *recorded*: each batch of bytes it receives
(and, for a client, each verb it calls and each timer it runs) becomes a step, and the
receiver's events, output and state are filled in by replaying the step on a fresh receiver
with the same engine the test uses (``tests/vectors/__init__.py``). A few steps inject
hand-made frames (malformed input, or replies a compliant server never sends); their notes
say so.

    python tools/make_vectors.py           # (re)write tests/vectors/*.json
    python tools/make_vectors.py --check   # exit 1 if a committed vector differs
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from roomwire import (  # noqa: E402
    NEED_DATA,
    ClientConnection,
    Code,
    ParticipantToken,
    RemoteProtocolError,
    RoomServer,
    ServerConfig,
    ServerConnection,
    State,
)
from roomwire._resume import derive_key, resume_secret  # noqa: E402 - the vectors' secrets
from roomwire.frames import ATTRIBUTES_DEPTH, HEADER, MAX_DEPTH, PREFIX_SIZE, encode_frame  # noqa: E402
from tests.vectors import (  # noqa: E402
    JSON,
    VECTOR_DIR,
    ClientReplay,
    Ids,
    ServerReplay,
    describe_step,
    dump_vector,
    frames_to_json,
    replay,
)
from tools import (  # noqa: E402 - the vectors of issue 13 and of participant RPC
    vectors_hardening,
    vectors_rpc,
)

SECRET = "roomwire-conformance-vectors-secret-0001"
"""The server secret of every vector (40 bytes)."""
OTHER_SECRET = "a-different-secret-nobody-configured-0002"
START = 1000.0
ROOM = "demo"


def frame(**fields: Any) -> bytes:
    """A hand-made frame, length prefix included (``t`` is the kind)."""
    return encode_frame(fields)


def raw(body: bytes) -> bytes:
    """Arbitrary body bytes behind a correct length prefix."""
    return HEADER.pack(len(body)) + body


def make_token(name: str, **kwargs: Any) -> str:
    secret = kwargs.pop("secret", SECRET)
    kwargs.setdefault("room", ROOM)
    return ParticipantToken(name=name, **kwargs).to_jwt(secret)


def describe_token(token: str) -> JSON:
    """The token's header and claims, read without verifying (informative only)."""
    parts = token.split(".")
    if len(parts) != 3:
        return {"malformed": True}
    try:
        return {
            "header": json.loads(base64.urlsafe_b64decode(parts[0] + "==")),
            "claims": jwt.decode(token, options={"verify_signature": False}),
        }
    except (ValueError, jwt.PyJWTError):
        return {"malformed": True}


def _decode_kinds(data: bytes) -> str:
    try:
        return ", ".join(f["t"] for f in frames_to_json(data))
    except Exception:
        return "malformed bytes"


class Harness:
    """One RoomServer and named ClientConnections in memory; one side is recorded.

    ``subject`` is ``"server"`` (record every batch the server receives) or a peer's name
    (record that client). Peers are created, and accepted, at ``START``; a peer's hello is
    sent by the first ``pump``.
    """

    def __init__(
        self,
        subject: str,
        peers: dict[str, dict[str, Any]],
        *,
        server: dict[str, Any] | None = None,
        client_config: dict[str, Any] | None = None,
        resume: dict[str, Any] | None = None,
    ) -> None:
        """``resume``: the recorded client's ``ResumeInfo`` fields but its secret (made
        here, for its token's name in ``ROOM``)."""
        self.subject = subject
        self.now = START
        self.steps: list[JSON] = []
        self._split: list[int] | None = None
        self._split_frames = False
        self.server_overrides = dict(server or {})
        self.client_config = dict(client_config or {})
        self.muted: set[str] = set()
        self.tokens: dict[str, str] = {}
        self.rooms: dict[str, str | None] = {}
        for name, given in peers.items():
            spec = dict(given)
            hello_room = spec.pop("hello_room", None)
            token_name = spec.pop("token_name", name)
            token = spec.pop("token", None) or make_token(token_name, **spec)
            self.tokens[name] = token
            self.rooms[name] = hello_room
        if subject == "server":
            self.setup: JSON = {
                "receiver": "server",
                "now": START,
                "config": {"secret": SECRET, **self.server_overrides},
                "ids": "id",
                "connections": list(peers),
                "tokens": {name: describe_token(t) for name, t in self.tokens.items()},
            }
            self.server_replay = ServerReplay(self.setup)
            self.server = self.server_replay.server
            self.conns = self.server_replay.connections
        else:
            self.setup = {
                "receiver": "client",
                "now": START,
                "token": self.tokens[subject],
                "room": self.rooms[subject],
                "config": self.client_config,
                "token_info": describe_token(self.tokens[subject]),
            }
            if resume is not None:
                key = derive_key(SECRET)
                secret = resume_secret(key, ROOM, subject, resume["participant_id"])
                self.setup["resume"] = {**resume, "secret": secret}
            self.server = RoomServer(
                ServerConfig(secret=SECRET, id_factory=Ids(), **self.server_overrides)
            )
            self.conns = {name: self.server.accept(name, START) for name in peers}
            self.client_replay = ClientReplay(self.setup)
        self.clients: dict[str, ClientConnection] = {}
        for name in peers:
            if name == subject:
                self.clients[name] = self.client_replay.client
            else:
                self.clients[name] = ClientConnection(
                    token=self.tokens[name], now=START, room=self.rooms[name]
                )
        self.subject_output = self.client_replay.initial_output if subject != "server" else b""

    # --- recording ------------------------------------------------------------------------

    def _record(self, step: JSON) -> JSON:
        step = {"note": step.pop("note"), "now": self.now, **step}
        if self.subject == "server":
            result = self.server_replay.run(step)
        else:
            result = self.client_replay.run(step)
        step = {**step, **result}
        describe_step(step)
        self.steps.append(step)
        return result

    def _hexes(self, data: bytes) -> str | list[str]:
        split, self._split = self._split, None
        if self._split_frames:
            self._split_frames = False
            split, pos = [], 0
            while pos < len(data):
                pos += PREFIX_SIZE + HEADER.unpack_from(data, pos)[0]
                split.append(pos)
            split.pop()
        if not split:
            return data.hex()
        cuts = [0, *split, len(data)]
        return [data[a:b].hex() for a, b in itertools.pairwise(cuts)]

    def split_next(self, *offsets: int, frames: bool = False) -> None:
        """Feed the next recorded batch of bytes in chunks cut at these offsets (or, with
        ``frames``, one chunk per frame)."""
        self._split = list(offsets)
        self._split_frames = frames

    # --- moving bytes ---------------------------------------------------------------------

    def _to_server(
        self, name: str, data: bytes, note: str | None = None, *, route: bool = True
    ) -> None:
        if not data or self.conns[name].state is State.CLOSED:
            return  # a driver closes the transport of a CLOSED connection
        if self.subject == "server":
            self._record(
                {
                    "note": note or f"{name} -> server: {_decode_kinds(data)}",
                    "connection": name,
                    "hex": self._hexes(data),
                }
            )
            output = dict(self.steps[-1]["expected_output_hex"])
            if not route:
                output.pop(name, None)
            self._route_server_output(output)
        else:
            conn = self.conns[name]
            conn.receive_data(data)
            _drain_quietly(conn, self.now)
            self._route_server_output(self._take_server_output())

    def _take_server_output(self) -> dict[str, str]:
        return {
            c.connection_id: data.hex()  # type: ignore[misc]
            for c in self.server.connections_with_output()
            if (data := c.data_to_send())
        }

    def _route_server_output(self, output: dict[str, str]) -> None:
        for name, data_hex in output.items():
            self._to_client(name, bytes.fromhex(data_hex))

    def _to_client(self, name: str, data: bytes, note: str | None = None) -> None:
        client = self.clients[name]
        if client.state is State.CLOSED:
            return  # a driver closes the transport of a CLOSED connection
        if name == self.subject:
            result = self._record(
                {
                    "note": note or f"server -> {name}: {_decode_kinds(data)}",
                    "hex": self._hexes(data),
                }
            )
            self.subject_output += bytes.fromhex(result["expected_output_hex"])
        else:
            client.receive_data(data)
            _drain_quietly(client, self.now)

    def pump(self) -> None:
        """Move bytes both ways until nobody has anything to say."""
        for _ in range(100):
            moved = False
            for name, client in self.clients.items():
                if name == self.subject:
                    data, self.subject_output = self.subject_output, b""
                else:
                    data = client.data_to_send()
                if data and name not in self.muted:
                    moved = True
                    self._to_server(name, data)
            output = self._take_server_output()
            if output:
                moved = True
                self._route_server_output(output)
            if not moved:
                return
        raise AssertionError("the exchange did not go quiet")

    # --- what a vector script does ---------------------------------------------------------

    def call(self, name: str, verb: str, note: str, *, deliver: bool = True, **args: Any) -> Any:
        """A client verb. On the recorded client it is a step; its output then flows on
        unless ``deliver`` is False (the bytes are dropped, for crafted replies)."""
        if name == self.subject:
            result = self._record({"note": note, "call": verb, "args": args})
            data = bytes.fromhex(result["expected_output_hex"])
            if deliver:
                self.subject_output += data
            returns = result["returns"]
        else:
            method: Callable[..., Any] = getattr(self.clients[name], verb)
            if "attachment" in args and args["attachment"] is not None:
                args["attachment"] = bytes.fromhex(args["attachment"])
            if "data" in args:
                args["data"] = bytes.fromhex(args["data"])
            if "code" in args:
                args["code"] = Code(args["code"])
            returns = method(**args)
            data = self.clients[name].data_to_send()
            if deliver:
                self._to_server(name, data, note)
        self.pump()
        return returns

    def inject(self, name: str, data: bytes, note: str, *, route: bool = True) -> JSON:
        """Hand-made bytes into the recorded side (from ``name``'s direction). On a recorded
        server, ``route=False`` keeps the answer from ``name``'s own client, which did not
        send the hand-made request and would not expect it."""
        if self.subject == "server":
            self._to_server(name, data, note, route=route)
        else:
            self._to_client(name, data, note)
        result = self.steps[-1]
        self.pump()
        return result

    def eof(self, name: str, note: str) -> None:
        if self.subject == "server":
            self._record({"note": note, "connection": name, "eof": True})
            self._route_server_output(self.steps[-1]["expected_output_hex"])
        elif name == self.subject:
            self._record({"note": note, "eof": True})
        else:
            self.conns[name].receive_data(b"")
            _drain_quietly(self.conns[name], self.now)
            self._route_server_output(self._take_server_output())
        self.pump()

    def advance(
        self, seconds: float, note: str, *, server_timer: bool = True, pump: bool = True
    ) -> None:
        """Move time; run the server's timers, then (on a recorded client) its timer.
        ``server_timer=False`` plays a server that has gone silent."""
        self.now += seconds
        if self.subject == "server":
            self._record({"note": note, "timer": True})
            self._route_server_output(self.steps[-1]["expected_output_hex"])
        else:
            if server_timer:
                self.server.handle_timer(self.now)
                for conn in list(self.conns.values()):
                    _drain_quietly(conn, self.now)
                self._route_server_output(self._take_server_output())
            result = self._record({"note": note, "timer": True})
            self.subject_output += bytes.fromhex(result["expected_output_hex"])
        if pump:
            self.pump()

    def server_close(self, code: Code, reason: str, note: str) -> None:
        """The server shuts down (``RoomServer.close``)."""
        if self.subject == "server":
            self._record({"note": note, "server_close": {"code": int(code), "reason": reason}})
            self._route_server_output(self.steps[-1]["expected_output_hex"])
        else:
            self.server.close(code, reason)
            self._route_server_output(self._take_server_output())
        self.pump()

    def participant_id(self, name: str) -> str:
        me = self.clients[name].local_participant
        assert me is not None, f"{name} has no welcome yet"
        return me.id

    # --- checks that keep the vectors honest -----------------------------------------------

    def events(self, index: int = -1, connection: str | None = None) -> list[str]:
        found = self.steps[index]["expected"]
        if isinstance(found, dict):
            found = found.get(connection or "", [])
        return [e["event"] for e in found]

    def expect(self, *names: str, connection: str | None = None, index: int = -1) -> None:
        got = self.events(index, connection)
        if got != list(names):
            raise AssertionError(f"step {self.steps[index]['note']!r}: {got} != {list(names)}")

    def expect_close(self, code: Code, connection: str | None = None, index: int = -1) -> None:
        found = self.steps[index]["expected"]
        if isinstance(found, dict):
            found = found[connection or ""]
        codes = [e.get("code") for e in found if e["event"] in _CLOSERS]
        if codes != [int(code)]:
            raise AssertionError(f"step {self.steps[index]['note']!r}: {codes} != {int(code)}")

    def vector(self, description: str) -> JSON:
        direction = "client->server" if self.subject == "server" else "server->client"
        vector = {
            "description": description,
            "direction": direction,
            "setup": self.setup,
            "steps": self.steps,
        }
        vector = replay(vector)  # adds the frame decodes, and proves a fresh replay agrees
        for ours, theirs in zip(self.steps, vector["steps"], strict=True):
            for key in ("expected", "expected_output_hex", "expected_state"):
                assert ours[key] == theirs[key], (ours["note"], key)
        return vector


_CLOSERS = ("ConnectionClosed", "RemoteProtocolError")


def _drain_quietly(conn: ClientConnection | ServerConnection, now: float) -> None:
    """Drain a connection that is not recorded (its events are not part of the vector)."""
    for _ in range(10_000):
        try:
            event = conn.next_event(now)
        except RemoteProtocolError:
            return
        if event is NEED_DATA or conn.state is State.CLOSED:
            return
    raise AssertionError("connection did not drain")


# --- the vectors ---------------------------------------------------------------------------

VECTORS: dict[str, Callable[[], JSON]] = {}


def vector(func: Callable[[], JSON]) -> Callable[[], JSON]:
    VECTORS[func.__name__] = func
    return func


def _enabled_server(*names: str, **kwargs: Any) -> Harness:
    """A recorded server whose peers all completed the handshake and enabled, in order."""
    h = Harness("server", {n: {} for n in names}, **kwargs)
    h.pump()
    for name in names:
        h.call(name, "enable", f"{name} enables messaging")
    return h


# Server side: bytes a client sends, and what the server answers -------------------------


@vector
def server_handshake_ok() -> JSON:
    h = Harness("server", {"alice": {}, "bob": {"hello_room": ROOM}})
    h.split_next(2, 9)
    h.pump()  # alice's hello (split inside the prefix and the body), then bob's
    h.expect("ParticipantJoined", connection="alice", index=0)
    h.expect("ParticipantJoined", connection="bob", index=1)
    return h.vector(
        "A hello with a valid token is answered by a welcome carrying the participant (with its"
        " server-assigned id), the room, the advertised limits and the heartbeat timing. alice's"
        " hello arrives in three chunks cut inside the length prefix; bob's hello also names"
        " the room, which must match the token's."
    )


def _refused(description: str, code: Code, **spec: Any) -> JSON:
    h = Harness("server", {"alice": spec})
    h.pump()
    h.expect_close(code, connection="alice", index=0)
    return h.vector(description)


@vector
def server_token_invalid() -> JSON:
    return _refused(
        "A hello whose token is not a JWT at all is refused: close 3020 TOKEN_INVALID.",
        Code.TOKEN_INVALID,
        token="not-a-jwt",
    )


@vector
def server_token_expired() -> JSON:
    return _refused(
        "A token whose exp (999) is not after the server's now (1000.0) is refused: close"
        " 3021 TOKEN_EXPIRED.",
        Code.TOKEN_EXPIRED,
        expires_at=START - 1,
    )


@vector
def server_token_bad_signature() -> JSON:
    return _refused(
        "A token signed with another secret is refused: close 3022 TOKEN_BAD_SIGNATURE.",
        Code.TOKEN_BAD_SIGNATURE,
        secret=OTHER_SECRET,
    )


@vector
def server_token_bad_algorithm() -> JSON:
    unsigned = jwt.encode({"room": ROOM, "name": "alice"}, None, algorithm="none")
    return _refused(
        "An unsigned token (alg none) is refused: close 3023 TOKEN_BAD_ALGORITHM.",
        Code.TOKEN_BAD_ALGORITHM,
        token=unsigned,
    )


@vector
def server_room_mismatch() -> JSON:
    return _refused(
        "A hello naming a room other than the token's is refused: close 3024 ROOM_MISMATCH.",
        Code.ROOM_MISMATCH,
        hello_room="elsewhere",
    )


@vector
def server_unsupported_version() -> JSON:
    h = Harness("server", {"alice": {}})
    h.muted.add("alice")
    h.inject(
        "alice",
        frame(t="hello", v=2, token=h.tokens["alice"]),
        "alice -> server: hello asking for protocol version 2 (hand-made)",
        route=False,
    )
    h.expect_close(Code.UNSUPPORTED_VERSION, connection="alice")
    return h.vector(
        "A hello with a protocol version the server does not speak is refused: close 3010"
        " UNSUPPORTED_VERSION."
    )


@vector
def server_enable_snapshot() -> JSON:
    h = Harness("server", {"alice": {}, "bob": {}})
    h.pump()
    h.call("alice", "enable", "alice enables: nobody else is enabled, the snapshot is empty")
    h.expect("ParticipantEnabled", connection="alice")
    h.call("bob", "enable", "bob enables: his snapshot lists alice, and alice is told bob joined")
    h.expect("ParticipantEnabled", connection="bob")
    assert set(h.steps[-1]["expected_output_hex"]) == {"alice", "bob"}
    return h.vector(
        "enable is answered by the presence snapshot (one page here: more=false) with the"
        " enable's rid; everyone already enabled is sent a joined diff with the room seq."
    )


@vector
def server_snapshot_pages() -> JSON:
    names = ("alice", "bob", "carol", "dave")
    h = Harness("server", {n: {} for n in names}, server={"max_frame_size": 2200})
    h.pump()
    for name in names[:3]:
        h.call(
            name,
            "set_attributes",
            f"{name} sets a large attribute",
            attributes={"bio": f"{name} " + "x" * 700},
        )
        h.call(name, "enable", f"{name} enables messaging")
    h.call("dave", "enable", "dave enables: three large records need two snapshot pages")
    pages = h.steps[-1]["output_frames"]["dave"]
    assert [p["more"] for p in pages if p["t"] == "snapshot"] == [True, False], pages
    return h.vector(
        "With max_frame_size 2200, a snapshot of three participants carrying ~720-byte"
        " attributes does not fit one frame: the server sends pages with the same rid, every"
        " page but the last with more=true. Each page stays within max_frame_size."
    )


@vector
def server_direct_message() -> JSON:
    h = _enabled_server("alice", "bob", "carol")
    bob, carol = h.participant_id("bob"), h.participant_id("carol")
    h.call(
        "alice",
        "send_message",
        "alice sends bob a chat message with an attachment",
        to=bob,
        type="chat",
        message={"text": "hi bob"},
        attachment="00010203ff",
    )
    h.expect("MessageRouted", connection="alice")
    h.call(
        "alice",
        "send_message",
        "alice sends one message to bob and carol",
        to=[bob, carol],
        type="note",
        message={"n": 1, "ok": True, "x": [1.5, None]},
    )
    h.expect("MessageRouted", connection="alice")
    return h.vector(
        "A send is acked to the sender with the server's message id; each recipient gets a"
        " msg stamped with the true sender (from), the same id, the server's timestamp (ts),"
        " the room seq and bc=false. A send may name several recipients."
    )


@vector
def server_sender_stamped() -> JSON:
    h = _enabled_server("alice", "bob", "mallory")
    alice, bob = h.participant_id("alice"), h.participant_id("bob")
    forged = frame(
        t="send",
        rid=7,
        to=[bob],
        type="chat",
        message={"text": "from alice?"},
        **{"from": alice, "id": "forged", "ts": 1.0, "seq": 999, "bc": True},
    )
    h.inject(
        "mallory",
        forged,
        "mallory -> server: a send carrying forged from/id/ts/seq/bc fields (hand-made)",
        route=False,
    )
    msg = h.steps[-1]["output_frames"]["bob"][0]
    assert msg["from"] == h.participant_id("mallory"), msg
    assert msg["id"] != "forged", msg
    return h.vector(
        "Clients cannot choose the sender: unknown keys of a request are ignored, and the"
        " server stamps from, id, ts, seq and bc itself. bob sees mallory as the sender."
    )


@vector
def server_broadcast() -> JSON:
    h = _enabled_server("alice", "bob", "carol")
    h.call(
        "alice",
        "broadcast_message",
        "alice broadcasts an announcement",
        type="announcement",
        message={"x": 1},
    )
    out = h.steps[-1]["expected_output_hex"]
    assert out["bob"] == out["carol"], "a broadcast is encoded once"
    return h.vector(
        "A broadcast is acked to the sender with its message id and delivered to every other"
        " enabled participant as the same bytes (bc=true). The sender does not get a copy."
    )


@vector
def server_presence() -> JSON:
    h = _enabled_server("alice", "bob")
    h.call(
        "bob",
        "set_attributes",
        "bob sets attributes: alice gets an updated diff",
        attributes={"status": "busy"},
    )
    h.expect("AttributesChanged", connection="bob")
    h.call("bob", "set_attributes", "bob removes a key with null", attributes={"status": None})
    h.call("bob", "disable", "bob disables: acked, and alice gets left")
    h.expect("ParticipantDisabled", connection="bob")
    h.call("bob", "enable", "bob enables again: alice gets joined")
    h.call("bob", "close", "bob closes cleanly: the server echoes the close, alice gets left")
    h.expect("ConnectionClosed", connection="bob")
    return h.vector(
        "Presence diffs go, in room seq order, to every enabled participant holding the list"
        " grant except the one who changed: joined on enable, updated on an attribute change,"
        " left on disable, close, hang-up or timeout (exactly once)."
    )


@vector
def server_hidden_sender() -> JSON:
    h = Harness("server", {"alice": {}, "bob": {}, "cli": {"hidden": True}})
    h.pump()
    for name in ("alice", "bob", "cli"):
        h.call(name, "enable", f"{name} enables messaging")
    h.call(
        "cli",
        "broadcast_message",
        "cli, hidden, broadcasts: alice and bob get it, with cli's id as the sender",
        type="news",
        message={"x": 1},
    )
    h.call("cli", "close", "cli closes: no one gets left, as no one got joined")
    h.expect("ConnectionClosed", connection="cli")
    return h.vector(
        "A token with the hidden grant (grants.hidden: true) enables messaging without entering"
        " presence: its enable is answered with the snapshot like any other, but no joined or"
        " left is sent about it and no snapshot lists it. It may send and broadcast; it"
        " receives no messages (a send naming it is refused with NOT_FOUND)."
    )


@vector
def server_hangup() -> JSON:
    h = _enabled_server("alice", "bob")
    h.split_next(3)
    h.call(
        "bob",
        "broadcast_message",
        "bob broadcasts; the frame arrives in two chunks",
        type="chat",
        message={"text": "bye"},
    )
    h.eof("bob", "bob's transport ends without a close frame (EOF)")
    h.expect_close(Code.CONNECTION_LOST, connection="bob")
    return h.vector(
        "A transport that ends without a close frame is CONNECTION_LOST (1006, never sent on"
        " the wire): the participant is removed once and the others get left."
    )


@vector
def server_refuse_not_found() -> JSON:
    h = _enabled_server("alice", "bob")
    h.call(
        "alice",
        "send_message",
        "alice sends to an id nobody has",
        to="nobody",
        type="chat",
        message={},
    )
    h.expect("RequestRefused", connection="alice")
    bob = h.participant_id("bob")
    h.call("bob", "disable", "bob disables messaging")
    h.call(
        "alice",
        "send_message",
        "alice sends to bob, who is connected but not enabled",
        to=bob,
        type="chat",
        message={},
    )
    h.expect("RequestRefused", connection="alice")
    return h.vector(
        "A send naming an unknown participant, or one without messaging enabled, is refused"
        " with an error frame 4040 NOT_FOUND for its rid; the connection stays open."
    )


@vector
def server_refuse_forbidden() -> JSON:
    h = Harness(
        "server",
        {"alice": {"can_send": False, "can_broadcast": False}, "bob": {"can_list": False}},
    )
    h.pump()
    h.call("alice", "enable", "alice enables")
    h.call("bob", "enable", "bob enables without the list grant: 4032 FORBIDDEN_LIST")
    h.expect("RequestRefused", connection="bob")
    h.call(
        "bob",
        "enable",
        "bob enables with presence=false (no snapshot entries, no diffs)",
        presence=False,
    )
    h.expect("ParticipantEnabled", connection="bob")
    bob = h.participant_id("bob")
    h.call(
        "alice",
        "send_message",
        "alice may not send: 4030 FORBIDDEN_SEND",
        to=bob,
        type="chat",
        message={},
    )
    h.expect("RequestRefused", connection="alice")
    h.call(
        "alice",
        "broadcast_message",
        "alice may not broadcast: 4031 FORBIDDEN_BROADCAST",
        type="chat",
        message={},
    )
    h.expect("RequestRefused", connection="alice")
    return h.vector(
        "Grants from the token: without send, broadcast or list the request is refused with"
        " 4030, 4031 or 4032 and the connection stays open. An enable refused for the list"
        " grant leaves messaging disabled; enable with presence=false needs no list grant."
    )


@vector
def server_refuse_invalid_state() -> JSON:
    h = Harness("server", {"alice": {}, "bob": {}})
    h.pump()
    h.inject(
        "alice",
        frame(t="send", rid=1, to=["id2"], type="chat", message={}),
        "alice -> server: a send before enable (hand-made)",
        route=False,
    )
    h.expect("RequestRefused", connection="alice")
    h.inject(
        "alice",
        frame(t="disable", rid=2),
        "alice -> server: a disable while disabled (hand-made)",
        route=False,
    )
    h.inject("alice", frame(t="enable", rid=3), "alice -> server: enable", route=False)
    h.inject(
        "alice",
        frame(t="enable", rid=4),
        "alice -> server: a second enable (hand-made)",
        route=False,
    )
    h.expect("RequestRefused", connection="alice")
    return h.vector(
        "A request the connection's state does not allow (a send or disable before enable, a"
        " second enable) is refused with 4090 INVALID_STATE; the connection stays open."
    )


@vector
def server_refuse_invalid_request() -> JSON:
    h = _enabled_server("alice", "bob", server={"max_frame_size": 4096})
    bob = h.participant_id("bob")
    h.inject(
        "alice",
        frame(t="send", rid=10, to=[bob], type="", message={}),
        "alice -> server: an empty type: 4000 INVALID_REQUEST (hand-made)",
        route=False,
    )
    h.inject(
        "alice",
        frame(t="send", rid=11, to=[], type="chat", message={}),
        "alice -> server: no recipients: 4000 INVALID_REQUEST (hand-made)",
        route=False,
    )
    h.inject(
        "alice",
        frame(t="broadcast", rid=12, type="chat", message={"x": float("nan")}),
        "alice -> server: a message that is not JSON (NaN): 4000 (hand-made)",
        route=False,
    )
    h.inject(
        "alice",
        frame(t="send", rid=13, to=[bob], type="chat", message={"x": "y" * 3100}),
        "alice -> server: a send over max_send_size 3072: 4130 TOO_LARGE (hand-made)",
        route=False,
    )
    for index in range(-4, 0):
        h.expect("RequestRefused", connection="alice", index=index)
    return h.vector(
        "Well-framed requests whose content breaks a rule are refused one by one, the"
        " connection staying open: 4000 INVALID_REQUEST (type length, recipient count,"
        " non-JSON message) and 4130 TOO_LARGE (frame over the advertised max_send_size)."
    )


def _nested(levels: int) -> Any:
    """``levels`` arrays, one in another, the innermost empty."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


@vector
def server_depth_boundary() -> JSON:
    h = _enabled_server("alice", "bob")
    h.call(
        "alice",
        "broadcast_message",
        "alice: a message nested to the limit (frame map + 31 levels = 32)",
        type="deep",
        message={"a": _nested(MAX_DEPTH - 2)},
    )
    h.call(
        "alice",
        "set_attributes",
        "alice: attributes nested to their limit (29 levels, 32 in a snapshot page)",
        attributes={"a": _nested(ATTRIBUTES_DEPTH - 1)},
    )
    h.inject(
        "alice",
        frame(t="attrs", rid=50, attributes={"a": _nested(ATTRIBUTES_DEPTH)}),
        "alice -> server: attributes one level deeper: 4000 INVALID_REQUEST (hand-made)",
        route=False,
    )
    h.expect("RequestRefused", connection="alice")
    h.inject(
        "alice",
        frame(t="broadcast", rid=51, type="deep", message={"a": _nested(MAX_DEPTH - 1)}),
        "alice -> server: a message one level deeper (33 in all): 1003 BAD_FRAME (hand-made)",
        route=False,
    )
    h.expect_close(Code.BAD_FRAME, connection="alice")
    return h.vector(
        "Nesting at the limits of §3: a message may nest 31 levels below the frame's map (32"
        " in all) and is delivered; attributes may nest 29 (they travel 3 levels down in a"
        " snapshot page) and are announced. Attributes one level deeper are refused with 4000;"
        " a frame nested 33 levels deep, empty innermost array included, closes with 1003."
    )


@vector
def server_heartbeat() -> JSON:
    h = _enabled_server("alice", "bob")
    h.muted.add("bob")
    h.inject(
        "alice", frame(t="ping"), "alice -> server: ping; the server answers pong", route=False
    )
    h.advance(25, "25 s later the server pings both; alice's client answers, bob is silent")
    h.advance(10, "35 s after bob was last heard (hb 25 + hbt 10): HEARTBEAT_TIMEOUT")
    h.expect_close(Code.HEARTBEAT_TIMEOUT, connection="bob")
    return h.vector(
        "The server pings every hb (25) seconds and answers a client's ping with pong. A"
        " connection heard from for longer than hb + hbt (35) seconds is closed with 3001"
        " HEARTBEAT_TIMEOUT and removed from presence (the others get left)."
    )


@vector
def server_handshake_timeout() -> JSON:
    h = Harness("server", {"alice": {}})
    h.muted.add("alice")
    h.advance(10, "10 s after accept without a hello: HANDSHAKE_TIMEOUT")
    h.expect_close(Code.HANDSHAKE_TIMEOUT, connection="alice")
    return h.vector(
        "A connection that sends no valid hello within the handshake timeout (10 s) is closed"
        " with 3002 HANDSHAKE_TIMEOUT."
    )


@vector
def server_shutdown() -> JSON:
    h = _enabled_server("alice", "bob")
    h.server_close(Code.GOING_AWAY, "server shutting down", "the server shuts down")
    return h.vector(
        "RoomServer.close() closes every connection with 1001 GOING_AWAY. Connections are"
        " closed one at a time, so the later ones first hear that the earlier ones left."
    )


@vector
def server_slow_consumer() -> JSON:
    h = _enabled_server("alice", "bob", "carol", server={"outbound_limit": 2048})
    bob = h.participant_id("bob")

    def send(rid: int, data: str) -> bytes:
        frame = {"t": "send", "rid": rid, "to": [bob], "type": "blob", "message": {"data": data}}
        return encode_frame(frame)

    h.inject(
        "alice",
        send(50, "z" * 3000) + send(51, "more"),
        "two sends for bob in one read: the first (3000 bytes) may pass his 2048-byte"
        " bound; the second arrives while over 2048 bytes wait, and closes him (hand-made)",
        route=False,
    )
    h.expect_close(Code.SLOW_CONSUMER, connection="bob")
    return h.vector(
        "Each connection's unsent output is bounded (outbound_limit, 2048 here). A frame that"
        " arrives while more than the bound already waits closes the connection with 3003"
        " SLOW_CONSUMER: its queued frames are dropped for the close frame, and the others"
        " are unaffected (they get left)."
    )


@vector
def server_rate_limited() -> JSON:
    h = _enabled_server("alice", "bob", server={"rate_limit": 1.0, "rate_burst": 2})

    def broadcast(rid: int) -> bytes:
        return encode_frame({"t": "broadcast", "rid": rid, "type": "t", "message": {"n": rid}})

    h.inject(
        "alice",
        broadcast(50),
        "a broadcast: alice's bucket (2, one spent on enable) has a token left (hand-made)",
        route=False,
    )
    h.inject(
        "alice",
        broadcast(51),
        "another at the same instant: refused with 4290 RATE_LIMITED (hand-made)",
        route=False,
    )
    h.inject(
        "alice",
        broadcast(52) + broadcast(53),
        "two more: the refusals pile up past the burst and alice is closed (hand-made)",
        route=False,
    )
    h.expect_close(Code.RATE_LIMIT_EXCEEDED, connection="alice")
    return h.vector(
        "A per-connection request rate (rate_limit 1/s, rate_burst 2 here; time does not"
        " move in this vector). Past the bucket, requests are refused with 4290 RATE_LIMITED"
        " and the connection stays; refusals that outrun the rate by more than the burst close"
        " it with 3004 RATE_LIMIT_EXCEEDED."
    )


def _malformed(
    description: str, data: bytes, code: Code, note: str, split: tuple[int, ...] = ()
) -> JSON:
    h = _enabled_server("alice", "bob")
    if split:
        h.split_next(*split)
    h.inject("alice", data, note, route=False)
    h.expect_close(code, connection="alice")
    assert "bob" in h.steps[-1]["expected_output_hex"], "bob is told alice left"
    return h.vector(description)


@vector
def server_bad_cbor() -> JSON:
    return _malformed(
        "A frame body that is not CBOR (a lone break byte 0xff) closes the connection with"
        " 1003 BAD_FRAME; next_event raises RemoteProtocolError after queuing the close frame."
        " Others in the room only see the participant leave.",
        raw(b"\xff"),
        Code.BAD_FRAME,
        "alice -> server: body 0xff (hand-made)",
    )


@vector
def server_unknown_kind() -> JSON:
    return _malformed(
        "A frame whose t is not a client frame kind closes with 1003 BAD_FRAME.",
        frame(t="teleport", rid=1),
        Code.BAD_FRAME,
        "alice -> server: t='teleport' (hand-made)",
    )


@vector
def server_oversize_prefix() -> JSON:
    return _malformed(
        "The length prefix is checked before any body byte arrives: a prefix declaring more"
        " than max_frame_size (1048577 > 1048576) closes with 1009 FRAME_TOO_LARGE.",
        HEADER.pack(1024 * 1024 + 1),
        Code.FRAME_TOO_LARGE,
        "alice -> server: only a length prefix of 1048577 (hand-made)",
    )


@vector
def server_empty_frame() -> JSON:
    return _malformed(
        "A zero length prefix (an empty frame) closes with 1003 BAD_FRAME.",
        HEADER.pack(0),
        Code.BAD_FRAME,
        "alice -> server: length prefix 0 (hand-made)",
    )


@vector
def server_not_a_map() -> JSON:
    return _malformed(
        "A frame must be a CBOR map with a text t: an array closes with 1003 BAD_FRAME.",
        raw(bytes.fromhex("826474797065") + b"\x01"),
        Code.BAD_FRAME,
        'alice -> server: body is the array ["type", 1] (hand-made)',
    )


@vector
def server_indefinite_length() -> JSON:
    body = bytes.fromhex("bf617464706f6e67ff")  # {_ "t": "pong"}: an indefinite-length map
    return _malformed(
        "Only definite lengths are allowed: an indefinite-length map closes with 1003"
        " BAD_FRAME, even though it would otherwise be a valid pong.",
        raw(body),
        Code.BAD_FRAME,
        'alice -> server: {_ "t": "pong"} (hand-made)',
    )


@vector
def server_duplicate_keys() -> JSON:
    body = bytes.fromhex("a2617464706f6e67617464706f6e67")  # {"t": "pong", "t": "pong"}
    return _malformed(
        "Duplicate map keys are not allowed: closes with 1003 BAD_FRAME.",
        raw(body),
        Code.BAD_FRAME,
        'alice -> server: {"t": "pong", "t": "pong"} (hand-made)',
    )


@vector
def server_too_deep() -> JSON:
    nested: Any = 0
    for _ in range(40):
        nested = [nested]
    return _malformed(
        "CBOR nesting deeper than 32 containers closes with 1003 BAD_FRAME (here a broadcast"
        " whose message holds 40 nested arrays).",
        frame(t="broadcast", rid=1, type="chat", message={"deep": nested}),
        Code.BAD_FRAME,
        "alice -> server: a broadcast nested 42 deep (hand-made)",
    )


@vector
def server_wrong_field_type() -> JSON:
    return _malformed(
        "A known kind with a field of the wrong CBOR type (rid as text) closes with 1003"
        " BAD_FRAME: shape errors are frame errors, not request refusals.",
        frame(t="broadcast", rid="1", type="chat", message={}),
        Code.BAD_FRAME,
        'alice -> server: broadcast with rid "1" (hand-made)',
    )


@vector
def server_second_hello() -> JSON:
    h = _enabled_server("alice", "bob")
    h.inject(
        "alice",
        frame(t="hello", v=1, token=h.tokens["alice"]),
        "alice -> server: a second hello (hand-made)",
        route=False,
    )
    h.expect_close(Code.PROTOCOL_ERROR, connection="alice")
    return h.vector(
        "A well-formed frame the state does not allow closes with 1002 PROTOCOL_ERROR: here a"
        " second hello."
    )


@vector
def server_request_before_hello() -> JSON:
    h = Harness("server", {"alice": {}})
    h.muted.add("alice")
    h.inject(
        "alice",
        frame(t="enable", rid=1),
        "alice -> server: enable before any hello (hand-made)",
        route=False,
    )
    h.expect_close(Code.PROTOCOL_ERROR, connection="alice")
    return h.vector(
        "Before the handshake completes only hello (or close) is allowed: a request closes"
        " with 1002 PROTOCOL_ERROR."
    )


@vector
def server_trailing_bytes() -> JSON:
    h = _enabled_server("alice", "bob")
    body = bytes.fromhex("a1617464706f6e67") + b"\x00\x01\x02"  # {"t": "pong"} then junk
    h.inject(
        "alice",
        raw(body),
        "alice -> server: a pong with 3 bytes after the CBOR item (hand-made)",
        route=False,
    )
    assert not h.steps[-1]["expected"], "the trailing bytes are ignored"
    h.inject(
        "alice", frame(t="ping"), "alice -> server: ping (the stream is still in step)", route=False
    )
    return h.vector(
        "The length prefix, not the CBOR item, delimits a frame: bytes after the item inside"
        " the frame are ignored, and the next frame starts after the prefixed length."
    )


@vector
def server_history() -> JSON:
    h = Harness(
        "server",
        {"alice": {}, "bob": {}, "carol": {}, "dave": {"can_history": False}},
        server={"history_epoch": "e1"},
    )
    h.pump()
    for name in ("alice", "bob", "carol"):
        h.call(name, "enable", f"{name} enables messaging")
    bob, carol = h.participant_id("bob"), h.participant_id("carol")
    h.call("alice", "broadcast_message", "alice broadcasts", type="chat", message={"n": 1})
    h.call("alice", "send_message", "alice sends bob a note", to=bob, type="dm", message={})
    h.call("bob", "send_message", "bob sends carol a note", to=carol, type="dm", message={})
    h.call("carol", "history", "carol reads history: the broadcast and bob's note to her")
    h.call("carol", "history", "carol reads the newest one only", limit=1, reverse=True)
    h.call("bob", "history", "bob reads after the broadcast's seq", since=4)
    h.call("bob", "history", "bob reads after seq 4 in epoch e1, the room's", since=4, epoch="e1")
    h.call(
        "bob",
        "history",
        "bob's position is from epoch e0, not the room's: reset, from the oldest kept",
        since=4,
        epoch="e0",
    )
    h.call("dave", "history", "dave has no history grant: 4033 FORBIDDEN_HISTORY")
    h.expect("RequestRefused", connection="dave")
    h.inject(
        "alice",
        frame(t="history", rid=90, limit=0),
        "alice -> server: limit 0: 4000 INVALID_REQUEST (hand-made)",
        route=False,
    )
    h.inject(
        "alice",
        frame(t="history", rid=91, limit=2**62),
        "alice -> server: an absurd limit: 4000 INVALID_REQUEST (hand-made)",
        route=False,
    )
    h.inject(
        "alice",
        frame(t="history", rid=92, since=10**9),
        "alice -> server: a since past the room's last seq: 4000 (hand-made)",
        route=False,
    )
    for index in range(-3, 0):
        h.expect("RequestRefused", connection="alice", index=index)
    return h.vector(
        "The room keeps its messages: a history request returns the broadcasts and the direct"
        " messages to or from the reader's name, oldest first (reverse: newest first), after"
        " since (exclusive), at most limit. Without the history grant: 4033; a limit outside"
        " 1 to max_history_limit or a since past the room's seq: 4000. The connection stays"
        " open. Every page names the room's epoch; a since from another epoch is not used"
        " (reset: true, from the oldest kept)."
    )


# Client side: bytes a server sends, and what the client does -----------------------------


def _client(
    peers: dict[str, dict[str, Any]] | None = None,
    alice: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Harness:
    """A recorded client ``alice``, plus other peers; pumped through the handshake."""
    h = Harness("alice", {"alice": alice or {}, **(peers or {})}, **kwargs)
    h.pump()
    return h


@vector
def client_handshake_ok() -> JSON:
    h = Harness("alice", {"alice": {}})
    h.split_next(1, 4, 30)
    h.pump()
    h.expect("Connected", index=0)
    return h.vector(
        "A fresh client queues its hello at construction. The welcome (fed here in four"
        " chunks) produces Connected with the participant, room, limits and heartbeat timing."
    )


@vector
def client_token_refused() -> JSON:
    h = Harness("alice", {"alice": {"expires_at": START - 60}})
    h.pump()
    h.expect_close(Code.TOKEN_EXPIRED)
    return h.vector(
        "The server refuses the token with a close frame (3021 TOKEN_EXPIRED) instead of a"
        " welcome: the client echoes the close and reports ConnectionClosed."
    )


@vector
def client_unsupported_version() -> JSON:
    h = Harness("alice", {"alice": {}})
    h.muted.add("alice")  # no real server here: the hello goes nowhere
    h.inject(
        "alice",
        frame(
            t="welcome",
            v=2,
            room=ROOM,
            participant={"id": "id1", "name": "alice", "role": "user", "attributes": {}},
            limits={
                "max_frame_size": 1048576,
                "max_send_size": 1047552,
                "max_recipients": 1000,
                "max_type_length": 256,
                "max_attributes_size": 65536,
            },
            hb=25.0,
            hbt=10.0,
        ),
        "server -> alice: a welcome for protocol version 2 (hand-made)",
    )
    h.expect_close(Code.UNSUPPORTED_VERSION)
    return h.vector(
        "A welcome with a version the client does not speak closes with 3010 UNSUPPORTED_VERSION."
    )


@vector
def client_enable_snapshot() -> JSON:
    h = Harness("alice", {"bob": {}, "alice": {}})
    h.pump()
    h.call("bob", "enable", "bob enables first")
    h.call("alice", "enable", "alice enables: request id 1")
    h.expect("MessagingEnabled")
    return h.vector(
        "enable() queues an enable frame and returns its rid; the snapshot pages that answer"
        " it end in MessagingEnabled with every other enabled participant."
    )


@vector
def client_snapshot_pages() -> JSON:
    names = ("bob", "carol", "dave")
    h = Harness("alice", {**{n: {} for n in names}, "alice": {}}, server={"max_frame_size": 2200})
    h.pump()
    for name in names:
        h.call(
            name,
            "set_attributes",
            f"{name} sets a large attribute",
            attributes={"bio": f"{name} " + "x" * 700},
        )
        h.call(name, "enable", f"{name} enables")
    h.split_next(frames=True)
    h.call("alice", "enable", "alice enables; each page is fed as its own chunk")
    step = h.steps[-1]
    frames = step["input_frames"]
    assert [f["more"] for f in frames] == [True, False], frames
    h.expect("MessagingEnabled")
    return h.vector(
        "A snapshot in two pages (more=true, then more=false) produces one MessagingEnabled,"
        " after the last page, listing the participants of every page in order."
    )


@vector
def client_direct_message() -> JSON:
    h = _client({"bob": {}})
    h.call("alice", "enable", "alice enables")
    h.call("bob", "enable", "bob enables: alice sees him join")
    alice, bob = h.participant_id("alice"), h.participant_id("bob")
    h.call(
        "bob",
        "send_message",
        "bob sends alice a message with an attachment",
        to=alice,
        type="chat",
        message={"text": "hi alice"},
        attachment="cafe00",
    )
    h.expect("MessageReceived")
    h.call(
        "alice",
        "send_message",
        "alice sends bob a message",
        to=bob,
        type="chat",
        message={"text": "hi bob", "n": [1, 2.5]},
    )
    h.expect("RequestAcked")
    return h.vector(
        "A msg produces MessageReceived with the server's stamps (id, seq, timestamp, true"
        " sender) and the attachment. A send returns its rid; the ack carries the message id."
    )


@vector
def client_broadcast() -> JSON:
    h = _client({"bob": {}, "carol": {}})
    for name in ("alice", "bob", "carol"):
        h.call(name, "enable", f"{name} enables")
    h.call("bob", "broadcast_message", "bob broadcasts", type="announcement", message={"x": 1})
    h.expect("MessageReceived")
    h.call(
        "alice",
        "broadcast_message",
        "alice broadcasts with an attachment",
        type="announcement",
        message={},
        attachment="ff",
    )
    h.expect("RequestAcked")
    return h.vector(
        "A broadcast delivery has broadcast=true (bc on the wire). The client's own broadcast"
        " is acked with the message id and never delivered back to it."
    )


@vector
def client_presence() -> JSON:
    h = _client({"bob": {}, "carol": {}})
    h.call("alice", "enable", "alice enables (empty snapshot)")
    h.call("bob", "enable", "bob enables: ParticipantAdded")
    h.expect("ParticipantAdded")
    h.call(
        "bob",
        "set_attributes",
        "bob sets attributes: ParticipantUpdated",
        attributes={"status": "busy"},
    )
    h.expect("ParticipantUpdated")
    h.call("carol", "enable", "carol enables")
    h.call("bob", "disable", "bob disables: ParticipantRemoved")
    h.expect("ParticipantRemoved")
    h.eof("carol", "carol's transport drops: ParticipantRemoved")
    h.expect("ParticipantRemoved")
    h.call(
        "alice",
        "set_attributes",
        "alice sets her own attributes: acked, no diff to her",
        attributes={"mood": "ok"},
    )
    h.expect("RequestAcked")
    h.call("alice", "disable", "alice disables: MessagingDisabled")
    h.expect("MessagingDisabled")
    return h.vector(
        "Presence: joined, updated and left frames produce ParticipantAdded, Updated and"
        " Removed with the room seq, in order; a left for a participant who hung up comes"
        " once. disable is acked with MessagingDisabled and clears presence."
    )


@vector
def client_refusals() -> JSON:
    h = _client({"bob": {}})
    h.call("alice", "enable", "alice enables")
    h.call(
        "alice",
        "send_message",
        "alice sends to an unknown id: 4040 NOT_FOUND",
        to="nobody",
        type="chat",
        message={},
    )
    h.expect("RequestRefused")
    rid = h.call(
        "alice",
        "broadcast_message",
        "alice broadcasts; the server's answer is replaced below",
        deliver=False,
        type="chat",
        message={},
    )
    h.inject(
        "alice",
        frame(t="error", rid=rid, code=4090, reason="not now"),
        "server -> alice: error 4090 INVALID_STATE for that rid (hand-made)",
    )
    h.expect("RequestRefused")
    return h.vector(
        "An error frame answers one request: RequestRefused with its rid, code and reason;"
        " the connection stays open."
    )


@vector
def client_refuse_forbidden() -> JSON:
    h = _client({"bob": {}}, alice={"can_send": False, "can_list": False})
    h.call("bob", "enable", "bob enables")
    h.call("alice", "enable", "alice enables, but her token lacks the list grant")
    h.expect("RequestRefused")
    h.call("alice", "enable", "alice enables with presence=false", presence=False)
    h.expect("MessagingEnabled")
    h.call(
        "alice",
        "send_message",
        "alice sends, but her token lacks the send grant",
        to=h.participant_id("bob"),
        type="chat",
        message={},
    )
    h.expect("RequestRefused")
    return h.vector(
        "Refusals for missing grants: an enable refused with 4032 FORBIDDEN_LIST leaves the"
        " client in OPEN (it may enable again, here with presence=false); a send refused with"
        " 4030 FORBIDDEN_SEND."
    )


@vector
def client_local_checks() -> JSON:
    h = _client({"bob": {}}, server={"max_frame_size": 4096, "max_recipients": 2})
    h.call(
        "alice",
        "send_message",
        "a send before enable raises LocalProtocolError",
        to="id2",
        type="chat",
        message={},
    )
    h.call("alice", "enable", "alice enables")
    h.call(
        "alice",
        "send_message",
        "three recipients, over max_recipients 2: InvalidRequest",
        to=["a", "b", "c"],
        type="chat",
        message={},
    )
    h.call("alice", "broadcast_message", "an empty type: InvalidRequest", type="", message={})
    h.call(
        "alice",
        "broadcast_message",
        "over max_send_size 3072: MessageTooLarge",
        type="chat",
        message={"x": "y" * 3100},
    )
    h.call("alice", "enable", "a second enable raises LocalProtocolError")
    assert not any(
        s["expected_output_hex"]
        for s in h.steps
        if s.get("call") != "enable" or s["note"].startswith("a second")
    )
    return h.vector(
        "Clients pre-check the advertised limits and their own state: a verb that breaks one"
        " raises (LocalProtocolError, InvalidRequest 4000, MessageTooLarge 4130) and queues"
        " nothing."
    )


@vector
def client_ping_pong() -> JSON:
    h = _client()
    h.call("alice", "enable", "alice enables")
    h.advance(25, "25 s: the server pings; the client queues a pong, its timer finds nothing due")
    h.expect()
    h.inject("alice", frame(t="pong"), "server -> alice: an unsolicited pong (hand-made)")
    h.expect()
    h.advance(34, "34 s after the last frame heard: nothing due yet", server_timer=False)
    h.expect()
    return h.vector(
        "A ping from the server is answered with a pong queued by the client itself. Any"
        " frame heard from the server (a pong too) pushes the client's deadline to now + hb +"
        " hbt."
    )


@vector
def client_heartbeat_timeout() -> JSON:
    h = _client()
    h.advance(34, "34 s of silence: not yet a dead peer", server_timer=False)
    h.expect()
    h.advance(1, "35 s (hb 25 + hbt 10) of silence: HEARTBEAT_TIMEOUT", server_timer=False)
    h.expect_close(Code.HEARTBEAT_TIMEOUT)
    return h.vector(
        "A server heard from for longer than hb + hbt is a dead peer: the client queues a close"
        " frame with 3001 HEARTBEAT_TIMEOUT and reports ConnectionClosed (by_peer false)."
    )


@vector
def client_handshake_timeout() -> JSON:
    h = Harness("alice", {"alice": {}})
    h.advance(10, "10 s without a welcome: HANDSHAKE_TIMEOUT", server_timer=False, pump=False)
    h.expect_close(Code.HANDSHAKE_TIMEOUT)
    return h.vector(
        "No welcome within ClientConfig.handshake_timeout (10 s): the client closes with 3002"
        " HANDSHAKE_TIMEOUT."
    )


@vector
def client_close() -> JSON:
    h = _client()
    h.call("alice", "enable", "alice enables")
    h.call(
        "alice",
        "close",
        "alice closes cleanly; the server echoes the close",
        code=1000,
        reason="done",
    )
    h.expect_close(Code.NORMAL)
    return h.vector(
        "Clean close: close() queues a close frame and moves to CLOSING; the server's echo"
        " ends the connection with ConnectionClosed (CLOSED)."
    )


@vector
def client_server_closes() -> JSON:
    h = _client({"bob": {}})
    h.call("alice", "enable", "alice enables")
    h.call("bob", "enable", "bob enables")
    h.server_close(Code.GOING_AWAY, "server shutting down", "the server shuts down")
    h.expect_close(Code.GOING_AWAY)
    return h.vector(
        "The server closes first (1001 GOING_AWAY): frames before the close still count, and"
        " the client answers the close with the same code and reason."
    )


@vector
def client_hangup() -> JSON:
    h = _client()
    h.eof("alice", "the transport ends without a close frame")
    h.expect_close(Code.CONNECTION_LOST)
    return h.vector(
        "EOF without a close frame ends the connection with 1006 CONNECTION_LOST (reported"
        " locally, never sent on the wire)."
    )


def _client_malformed(description: str, data: bytes, code: Code, note: str) -> JSON:
    h = _client({"bob": {}})
    h.call("alice", "enable", "alice enables")
    h.inject("alice", data, note)
    h.expect_close(code)
    return h.vector(description)


@vector
def client_bad_cbor() -> JSON:
    return _client_malformed(
        "A frame body that is not CBOR closes with 1003 BAD_FRAME; next_event raises"
        " RemoteProtocolError after queuing the close frame.",
        raw(bytes.fromhex("1c")),
        Code.BAD_FRAME,
        "server -> alice: body 0x1c, a reserved additional-information value (hand-made)",
    )


@vector
def client_unknown_kind() -> JSON:
    return _client_malformed(
        "A frame kind the server never sends (here a hello) closes with 1003 BAD_FRAME.",
        frame(t="hello", v=1, token="x"),
        Code.BAD_FRAME,
        "server -> alice: a hello (hand-made)",
    )


@vector
def client_oversize_prefix() -> JSON:
    return _client_malformed(
        "A length prefix over ClientConfig.max_frame_size closes with 1009 FRAME_TOO_LARGE as"
        " soon as its four bytes are in.",
        bytes.fromhex("ffffffff"),
        Code.FRAME_TOO_LARGE,
        "server -> alice: length prefix 0xffffffff (hand-made)",
    )


@vector
def client_empty_frame() -> JSON:
    return _client_malformed(
        "An empty frame (length prefix 0) closes with 1003 BAD_FRAME.",
        HEADER.pack(0),
        Code.BAD_FRAME,
        "server -> alice: length prefix 0 (hand-made)",
    )


@vector
def client_unknown_reply() -> JSON:
    return _client_malformed(
        "A reply to a request id the client has no pending request for closes with 1002"
        " PROTOCOL_ERROR.",
        frame(t="ack", rid=99),
        Code.PROTOCOL_ERROR,
        "server -> alice: ack rid 99 (hand-made)",
    )


@vector
def client_left_for_absent() -> JSON:
    return _client_malformed(
        "A presence diff that does not match the client's presence (left for someone absent)"
        " closes with 1002 PROTOCOL_ERROR.",
        frame(t="left", seq=50, id="ghost"),
        Code.PROTOCOL_ERROR,
        "server -> alice: left for 'ghost' (hand-made)",
    )


@vector
def client_message_before_enable() -> JSON:
    h = _client()
    h.inject(
        "alice",
        frame(
            t="msg", id="m1", seq=1, ts=1000.0, **{"from": "id9"}, type="chat", message={}, bc=True
        ),
        "server -> alice: a msg while messaging is disabled (hand-made)",
    )
    h.expect_close(Code.PROTOCOL_ERROR)
    return h.vector(
        "Deliveries are only allowed while messaging is enabled (or being disabled): a msg in"
        " OPEN closes with 1002 PROTOCOL_ERROR."
    )


@vector
def client_history() -> JSON:
    h = _client({"bob": {}}, server={"max_frame_size": 4096, "history_epoch": "e1"})
    h.call("alice", "enable", "alice enables")
    h.call("bob", "enable", "bob enables")
    for n in range(3):
        h.call(
            "bob",
            "broadcast_message",
            f"bob broadcasts message {n} (1500 bytes of text)",
            type="chat",
            message={"n": n, "text": "x" * 1500},
        )
    h.call("alice", "history", "alice reads history: three messages in two pages", limit=10)
    h.expect("HistoryReceived")
    return h.vector(
        "A history reply may come in pages (more=true on every page but the last): the"
        " client collects them and reports one HistoryReceived with every message in order."
    )


VECTORS.update(vectors_hardening.vectors(sys.modules[__name__]))
vectors_rpc.register(vector, sys.modules[__name__])
from tools import vectors_services  # noqa: E402 - after ROOT is on the path

vectors_services.add(vector, Harness)
from tools import vectors_idempotency  # noqa: E402 - after ROOT is on the path

vectors_idempotency.add(vector, Harness, frame)
from tools import vectors_resume  # noqa: E402 - after ROOT is on the path

vectors_resume.add(vector, Harness, frame)


# --- writing -------------------------------------------------------------------------------


def build() -> dict[str, str]:
    """Every vector file's name and text."""
    return {f"{name}.json": dump_vector(make()) for name, make in VECTORS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a vector file differs")
    args = parser.parse_args(argv)
    files = build()
    stale = sorted(p.name for p in VECTOR_DIR.glob("*.json") if p.name not in files)
    changed = [
        n
        for n, text in files.items()
        if not (VECTOR_DIR / n).exists() or (VECTOR_DIR / n).read_text(encoding="utf-8") != text
    ]
    if args.check:
        for name in changed + stale:
            print(f"tests/vectors/{name} is out of date: run python tools/make_vectors.py")
        return 1 if changed or stale else 0
    for name in stale:
        (VECTOR_DIR / name).unlink()
    for name in changed:
        (VECTOR_DIR / name).write_text(files[name], encoding="utf-8")
    print(f"{len(files)} vectors, {len(changed)} written, {len(stale)} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
