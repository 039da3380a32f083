"""Conformance vectors: the replay engine shared by the test and by tools/make_vectors.py.

A vector is a JSON file (format in ``README.md`` next to this file). ``replay(vector)`` builds
the fresh receiver its ``setup`` describes, runs every step through the public API and returns
what actually happened in the same JSON shape as the vector's ``expected*`` fields, so a test
compares the two and the generator fills them in.
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import cbor2

from roomwire import (
    NEED_DATA,
    ClientConfig,
    ClientConnection,
    Code,
    Framing,
    LocalProtocolError,
    RemoteProtocolError,
    ResumeInfo,
    RoomServer,
    ServerConfig,
    ServerConnection,
)
from roomwire.events import ConnectionClosed, Event
from roomwire.frames import HEADER, MAX_DEPTH, PREFIX_SIZE

VECTOR_DIR = Path(__file__).parent
JSON = Any


class Ids:
    """The deterministic id factory every server vector uses: ``id1``, ``id2``, ..."""

    def __init__(self, prefix: str = "id") -> None:
        self.prefix = prefix
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.prefix}{self.n}"


# --- values to plain JSON -----------------------------------------------------------------


def to_json(value: object) -> JSON:
    """Events and their records as plain JSON: attrs classes become maps of their fields,
    codes their numbers, bytes lowercase hex, tuples lists."""
    if isinstance(value, Code):
        return int(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if attrs.has(type(value)):
        fields = attrs.fields(type(value))  # type: ignore[arg-type]
        return {f.name: to_json(getattr(value, f.name)) for f in fields}
    return value


def event_to_json(event: Event) -> JSON:
    return {"event": type(event).__name__, **to_json(event)}


def error_to_json(exc: Exception) -> JSON:
    """An exception raised by the receiver, as a pseudo-event."""
    found: JSON = {"event": type(exc).__name__}
    if isinstance(exc, LocalProtocolError | RemoteProtocolError):
        found["code"] = int(exc.code)
        found["reason"] = exc.reason
    return found


def split_frames(data: bytes) -> Iterator[bytes]:
    """Frame bodies of a well-formed stream (used for the informative ``*_frames`` fields)."""
    pos = 0
    while pos < len(data):
        (size,) = HEADER.unpack_from(data, pos)
        body = data[pos + PREFIX_SIZE : pos + PREFIX_SIZE + size]
        if not body or len(body) < size:
            raise ValueError("not a well-formed stream of frames")
        yield body
        pos += PREFIX_SIZE + size


def frames_to_json(data: bytes) -> list[JSON]:
    """Decode every frame of a well-formed byte stream to JSON (bytes as hex)."""
    return [
        to_json(
            cbor2.loads(
                body,
                max_depth=MAX_DEPTH,
                allow_indefinite=False,
                allow_duplicate_keys=False,
                strict_hashable_types=True,
            )
        )
        for body in split_frames(data)
    ]


# --- building receivers -------------------------------------------------------------------


def make_client(setup: JSON, framing: Framing = Framing.STREAM) -> ClientConnection:
    return ClientConnection(
        token=setup["token"],
        now=setup["now"],
        room=setup.get("room"),
        config=ClientConfig(**setup.get("config", {})),
        framing=framing,
        resume=ResumeInfo(**setup["resume"]) if "resume" in setup else None,
    )


def make_server(
    setup: JSON, framing: Framing = Framing.STREAM
) -> tuple[RoomServer, dict[str, ServerConnection]]:
    config = ServerConfig(id_factory=Ids(setup.get("ids", "id")), **setup["config"])
    server = RoomServer(config)
    now = setup["now"]
    connections = {cid: server.accept(cid, now, framing=framing) for cid in setup["connections"]}
    return server, connections


# --- running steps ------------------------------------------------------------------------


def _chunks(step: JSON) -> list[bytes]:
    chunks = step["hex"]
    if isinstance(chunks, str):
        chunks = [chunks]
    return [bytes.fromhex(chunk) for chunk in chunks]


def _inputs(step: JSON, framing: Framing) -> list[bytes]:
    """A step's input as the transport hands it over: its chunks, or one message per frame."""
    chunks = _chunks(step)
    if framing is Framing.STREAM:
        return chunks
    return list(split_frames(b"".join(chunks)))


def _receive(conn: ClientConnection | ServerConnection, data: bytes) -> None:
    if conn.framing is Framing.STREAM:
        conn.receive_data(data)
    else:
        conn.receive_message(data)


def _output(conn: ClientConnection | ServerConnection) -> bytes:
    """What ``conn`` has to send, as stream bytes (a message transport's frames prefixed)."""
    if conn.framing is Framing.STREAM:
        return conn.data_to_send()
    return b"".join(HEADER.pack(len(m)) + m for m in conn.messages_to_send())


def over_messages(vector: JSON) -> bool:
    """True when every input of ``vector`` is whole, non-empty frames, so the same exchange
    can run over a message transport (the others test the stream's own prefix rules)."""
    for step in vector["steps"]:
        if "hex" in step:
            try:
                list(split_frames(b"".join(_chunks(step))))
            except (ValueError, struct.error):
                return False
    return True


def _drain(conn: ClientConnection | ServerConnection, now: float, out: list[JSON]) -> bool:
    """Append every event ``conn`` has; True once it reported its close (or raised)."""
    while True:
        try:
            event = conn.next_event(now)
        except RemoteProtocolError as exc:
            out.append(error_to_json(exc))
            return True
        if event is NEED_DATA:
            return False
        assert isinstance(event, Event)
        out.append(event_to_json(event))
        if isinstance(event, ConnectionClosed):
            return True


_VERBS = (
    "enable",
    "disable",
    "send_message",
    "broadcast_message",
    "set_attributes",
    "history",
    "close",
    "call",
    "answer",
    "fail_call",
    "cancel_call",
    "open_stream",
    "accept_stream",
    "send_chunk",
    "grant_credit",
    "end_stream",
    "abort_stream",
    "attach_service",
    "send_to_service",
    "decide",
    "send_as",
    "create_puppet",
    "remove_puppet",
)


def _call(client: ClientConnection, step: JSON) -> JSON:
    verb = step["call"]
    if verb not in _VERBS:
        raise ValueError(f"unknown verb {verb!r}")
    args = dict(step.get("args", {}))
    if args.get("attachment") is not None:
        args["attachment"] = bytes.fromhex(args["attachment"])
    if "data" in args:  # a stream chunk's bytes
        args["data"] = bytes.fromhex(args["data"])
    if "code" in args:
        args["code"] = Code(args["code"])
    try:
        return getattr(client, verb)(**args)
    except LocalProtocolError as exc:
        return error_to_json(exc)


class ClientReplay:
    """A fresh ``ClientConnection`` driven step by step."""

    def __init__(self, setup: JSON, framing: Framing = Framing.STREAM) -> None:
        self.client = make_client(setup, framing)
        self.done = False
        self.initial_output = _output(self.client)

    def run(self, step: JSON) -> JSON:
        client, now = self.client, step["now"]
        result: JSON = {}
        events: list[JSON] = []
        if "call" in step:
            result["returns"] = _call(client, step)
        elif step.get("timer"):
            client.handle_timer(now)
        elif step.get("eof"):
            client.receive_data(b"")
        else:
            for chunk in _inputs(step, client.framing):
                _receive(client, chunk)
                if not self.done:
                    self.done = _drain(client, now, events)
        if not self.done:
            self.done = _drain(client, now, events)
        result["expected"] = events
        result["expected_output_hex"] = _output(client).hex()
        result["expected_state"] = client.state.name
        return result


class ServerReplay:
    """A fresh ``RoomServer`` with the setup's connections, driven step by step."""

    def __init__(self, setup: JSON, framing: Framing = Framing.STREAM) -> None:
        self.server, self.connections = make_server(setup, framing)
        self.done: set[str] = set()

    def _drain(self, cid: str, now: float, events: dict[str, list[JSON]]) -> None:
        if cid in self.done:
            return
        found: list[JSON] = []
        if _drain(self.connections[cid], now, found):
            self.done.add(cid)
        if found:
            events.setdefault(cid, []).extend(found)

    def run(self, step: JSON) -> JSON:
        server, now = self.server, step["now"]
        events: dict[str, list[JSON]] = {}
        if step.get("timer"):
            server.handle_timer(now)
        elif "server_close" in step:
            server.close(Code(step["server_close"]["code"]), step["server_close"]["reason"])
        else:
            cid = step["connection"]
            conn = self.connections[cid]
            if step.get("eof"):
                conn.receive_data(b"")
            else:
                for chunk in _inputs(step, conn.framing):
                    _receive(conn, chunk)
                    self._drain(cid, now, events)
        for cid in self.connections:
            self._drain(cid, now, events)
        output = {}
        for conn in server.connections_with_output():
            data = _output(conn)
            if data:
                output[conn.connection_id] = data.hex()
        return {
            "expected": events,
            "expected_output_hex": output,
            "expected_state": {cid: c.state.name for cid, c in self.connections.items()},
        }


def replay(vector: JSON, framing: Framing = Framing.STREAM) -> JSON:
    """Run ``vector`` on a fresh receiver; the result has the vector's shape with what
    actually happened in every ``expected*`` field (and the informative frame decodes).
    With ``Framing.MESSAGE`` each input frame arrives as one message, and the output's
    messages are prefixed again to compare with the stream bytes."""
    setup = vector["setup"]
    result = json.loads(json.dumps(vector))  # a deep copy that also normalises tuples
    runner: ClientReplay | ServerReplay
    if setup["receiver"] == "client":
        runner = ClientReplay(setup, framing)
        result["setup"]["initial_output_hex"] = runner.initial_output.hex()
        result["setup"]["initial_output_frames"] = frames_to_json(runner.initial_output)
    else:
        runner = ServerReplay(setup, framing)
    for step, out in zip(vector["steps"], result["steps"], strict=True):
        out.update(runner.run(step))
        describe_step(out)
    return result


def _plain(value: JSON) -> bool:
    """True when ``value`` survives a trip through strict JSON unchanged."""
    try:
        return bool(json.loads(json.dumps(value, allow_nan=False)) == value)
    except ValueError:
        return False


def describe_step(step: JSON) -> None:
    """Add the decoded input and output frames (informative; checked like the rest)."""
    step.pop("input_frames", None)
    step.pop("output_frames", None)
    if "hex" in step:
        with contextlib.suppress(Exception):  # malformed input: nothing to show
            frames = frames_to_json(b"".join(_chunks(step)))
            if _plain(frames):
                step["input_frames"] = frames
    output = step["expected_output_hex"]
    if isinstance(output, str):
        step["output_frames"] = frames_to_json(bytes.fromhex(output))
    else:
        step["output_frames"] = {
            cid: frames_to_json(bytes.fromhex(data)) for cid, data in output.items()
        }
    ordered = {key: step.pop(key) for key in STEP_KEYS if key in step}
    ordered.update(step)
    step.clear()
    step.update(ordered)


STEP_KEYS = (
    "note",
    "now",
    "connection",
    "call",
    "args",
    "returns",
    "timer",
    "eof",
    "server_close",
    "hex",
    "input_frames",
    "expected",
    "expected_output_hex",
    "output_frames",
    "expected_state",
)
"""The order of a step's keys in the files (readers see the input before the results)."""


def load_vectors() -> dict[str, JSON]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(VECTOR_DIR.glob("*.json"))
    }


def dump_vector(vector: JSON) -> str:
    return json.dumps(vector, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
