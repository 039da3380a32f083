"""Write the reference's answers the TypeScript codec is held to. Run from the repository's
venv: ``python bindings/typescript/test/make_cbor_cases.py``.

- test/cbor_cases.json: CBOR bodies, and whether the Python client accepts each
  (``roomwire.frames.decode_payload`` and ``check_frame(SERVER_FRAMES)``).
- test/encode_cases.json: JSON objects and their bytes from the reference encoder
  (``encode_payload``). Floats are never integral and no key looks like an integer, so that
  JSON.parse gives JavaScript the same value in the same key order.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import cbor2

from roomwire import RemoteProtocolError
from roomwire.frames import SERVER_FRAMES, check_frame, decode_payload, encode_payload

OUT = Path(__file__).with_name("cbor_cases.json")
ENCODE_OUT = Path(__file__).with_name("encode_cases.json")


def frame(**fields: Any) -> str:
    return cbor2.dumps(fields).hex()


def nest(levels: int) -> str:
    """A ping whose key "a" holds arrays nested so that `levels` containers nest in all."""
    return "a261746470696e676161" + "81" * (levels - 1) + "00"


P = {"id": "b1", "name": "bob", "role": "user", "attributes": {}}
LIMITS = {
    "max_frame_size": 1048576,
    "max_send_size": 1047552,
    "max_recipients": 1000,
    "max_type_length": 256,
    "max_attributes_size": 65536,
}
WELCOME = {"t": "welcome", "v": 1, "room": "demo", "participant": P, "limits": LIMITS}
PING = "a161746470696e67"

CASES: list[tuple[str, str]] = [
    # well-formed, plain
    (PING, "a ping"),
    ("a261746470696e676178f6", "an unknown key is ignored"),
    ("a161746470696e6700", "bytes after the first item are ignored"),
    ("a2617464706f6e67617818ff", "a non-shortest integer head is accepted"),
    # the frame itself
    ("00", "not a map"),
    ("80", "an array"),
    ("a0", "a map without t"),
    ("a1617401", "t is not text"),
    ("a141744470696e67", "t as a byte-string key"),
    ("a2617464706f6e67417464706f6e67", "text t and byte-string t are distinct keys"),
    (frame(t="hello", v=1, token="x"), "a kind only clients send"),
    (frame(t="nope"), "an unknown kind"),
    # definite lengths only
    ("a261746470696e6761785f4101ff", "an indefinite byte string"),
    ("a261746470696e6761787f6161ff", "an indefinite text string"),
    ("a261746470696e6761789f01ff", "an indefinite array"),
    ("bf617464706f6e67ff", "an indefinite map"),
    # no duplicate keys
    ("a2617464706f6e67617464706f6e67", "a duplicate key in the frame"),
    ("a261746470696e676161a2617801617802", "a duplicate key nested"),
    ("a261746470696e676161a2417801417802", "a duplicate byte-string key nested"),
    ("a261746470696e676161a2617801417802", "text and bytes keys with the same bytes"),
    ("a261746470696e6769" + "5f5f70726f746f5f5f" + "a0", "a __proto__ key"),
    # keys are text or byte strings
    ("a261746470696e676161a10101", "an integer key nested"),
    ("a261746470696e676161a1f401", "a boolean key"),
    ("a261746470696e676161a1f601", "a null key"),
    ("a261746470696e676161a1fb3ff000000000000001", "a float key"),
    ("a261746470696e676161a18001", "an array key"),
    ("a261746470696e676161a1a001", "a map key"),
    # no tags
    ("a261746470696e676161c11a00000001", "tag 1 (a date)"),
    ("a261746470696e676161c074323032302d30312d30315430303a30303a30305a", "tag 0"),
    ("a261746470696e676161c24101", "tag 2 (a bignum)"),
    ("a261746470696e676161d81c80", "tag 28 (shareable)"),
    ("a261746470696e676161d81d00", "tag 29 (a shared reference)"),
    ("a261746470696e676161d840420102", "tag 64 (a typed array)"),
    ("d9d9f7a161746470696e67", "tag 55799 (self-described CBOR)"),
    ("a261746470696e676161db000000010000000000", "a 64-bit tag number"),
    # nesting depth
    (nest(32), "32 containers deep"),
    (nest(33), "33 containers deep"),
    ("a261746470696e676161" + "a16161" * 31 + "00", "32 maps deep"),
    ("a261746470696e676161" + "a16161" * 32 + "00", "33 maps deep"),
    # well-formedness
    ("ff", "a lone break"),
    ("1c", "reserved additional information 28"),
    ("a261746470696e676161fc", "reserved simple value 28"),
    ("a261746470696e676161f813", "a two-byte simple value below 32"),
    ("a261746470696e676161f820", "simple value 32"),
    ("a261746470696e676161f0", "simple value 16"),
    ("a261746470696e676161f7", "undefined"),
    ("a261746470696e6761", "a map that ends early"),
    ("a261746470696e67616118", "an integer head that ends early"),
    ("a261746470696e6761619affffffff", "an array longer than the data"),
    ("a261746470696e6761615affffffff00", "a byte string longer than the data"),
    ("a261746470696e6761617b000000010000000061", "a text longer than the data (64-bit)"),
    ("a261746470696e6761611bffffffffffffffff", "the largest uint64"),
    ("a261746470696e6761613bffffffffffffffff", "the smallest negative integer"),
    # UTF-8
    ("a261746470696e67616162c328", "invalid UTF-8"),
    ("a261746470696e67616163eda080", "an encoded surrogate"),
    ("a261746470696e67616162c0af", "an overlong encoding"),
    ("a261746470696e67616163efbbbf", "a byte-order mark is a character"),
    ("a261746470696e676161" + "78" + "28" + "e282ac" * 13 + "41", "a long non-ASCII text"),
    ("a261746470696e676161" + "78" + "28" + "e282ac" * 13 + "ff", "a long text with a bad byte"),
    # floats of every width
    ("a261746470696e676161f93c00", "a half float"),
    ("a261746470696e676161fa3f800000", "a single float"),
    ("a261746470696e676161f97e00", "a half NaN"),
    # field shapes (PROTOCOL.md §7.3)
    (frame(**WELCOME, hb=25.0, hbt=10), "a welcome"),
    (frame(**{**WELCOME, "v": 1.0}, hb=25.0, hbt=10.0), "a welcome whose v is a float"),
    (
        frame(**{**WELCOME, "limits": {**LIMITS, "max_recipients": 1000.0}}, hb=25.0, hbt=10.0),
        "a limit as a float",
    ),
    (frame(**WELCOME, hb=0, hbt=10), "a zero heartbeat"),
    (frame(**WELCOME, hb=float("inf"), hbt=10), "an infinite heartbeat"),
    (frame(**WELCOME, hb=True, hbt=10), "a boolean heartbeat"),
    (frame(**{**WELCOME, "participant": {**P, "attributes": []}}, hb=1, hbt=1), "bad attributes"),
    (frame(t="ack", rid=1), "an ack"),
    (frame(t="ack", rid=1, id="m1"), "an ack with an id"),
    (frame(t="ack", rid=1, id=None), "an ack with a null id"),
    (frame(t="ack", rid=1, id=cbor2.undefined), "an ack with an undefined id"),
    (frame(t="ack", rid=1.0), "a float rid"),
    (frame(t="ack", rid=True), "a boolean rid"),
    (frame(t="ack", rid=-1), "a negative rid"),
    (frame(t="ack", rid=2**63 - 1), "the largest rid"),
    (frame(t="ack", rid=2**63), "a rid of 2^63"),
    (frame(t="error", rid=1, code=4040, reason="x"), "an error"),
    (frame(t="error", rid=1, code=4999, reason="x"), "an unregistered code"),
    (frame(t="error", rid=1, code=1000, reason="x"), "a close code in an error"),
    (frame(t="error", rid=1, code=4040.0, reason="x"), "a float code"),
    (frame(t="close", code=1001, reason="bye"), "a close"),
    (frame(t="close", code=4040, reason="x"), "a refusal code in a close"),
    (frame(t="close", code=1006, reason="x"), "CONNECTION_LOST on the wire"),
    (frame(t="close", code=1001), "a close without a reason"),
    (frame(t="snapshot", rid=1, more=False, participants=[P]), "a snapshot"),
    (frame(t="snapshot", rid=1, more=0, participants=[P]), "an integer more"),
    (frame(t="snapshot", rid=1, more=False, participants=[{"id": "x"}]), "a bad participant"),
    (
        frame(t="snapshot", rid=1, more=False, participants=[{**P, b"k": 1}]),
        "a participant record with a byte-string key",
    ),
    (frame(t="joined", p=P, seq=2**62), "a joined with a large seq"),
    (frame(t="updated", p=P, seq=1.5), "an updated with a float seq"),
    (frame(t="left", id="b1", seq=3), "a left"),
    (frame(t="left", id=b"b1", seq=3), "a left with a byte-string id"),
]

MSG = {"t": "msg", "id": "m1", "seq": 1, "ts": 1.5, "from": "b1", "type": "chat", "message": {}}
CASES += [
    (frame(**MSG, bc=False), "a msg"),
    (frame(**MSG, bc=False, att=b"\x00"), "a msg with an attachment"),
    (frame(**MSG, bc=False, att=None), "a msg with a null attachment"),
    (frame(**MSG, bc=False, att=cbor2.undefined), "a msg with an undefined attachment"),
    (frame(**MSG, bc=False, att="x"), "a msg with a text attachment"),
    (frame(**{**MSG, "ts": 12}, bc=True), "a msg with an integer ts"),
    (frame(**{**MSG, "ts": "now"}, bc=True), "a msg with a text ts"),
    (frame(**{**MSG, "message": []}, bc=True), "a msg whose message is an array"),
    (frame(**{**MSG, "message": {b"k": 1}}, bc=True), "a msg whose message has a byte-string key"),
    (frame(**MSG), "a msg without bc"),
]


def verdict(hex_body: str) -> bool:
    try:
        check_frame(decode_payload(bytes.fromhex(hex_body)), SERVER_FRAMES)
    except RemoteProtocolError as exc:
        if exc.code != 1003:
            raise
        return False
    return True


INTEGER_EDGES = [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53]
TEXTS = ["", "a" * 23, "b" * 24, "c" * 255, "d" * 256, "\u00e9" * 12, "\u20ac" * 30, "\U0001f600"]


def scalar(rng: random.Random) -> Any:
    kind = rng.randrange(6)
    if kind == 0:
        edge = rng.choice(INTEGER_EDGES)
        return rng.choice([edge, -edge, -edge - 1]) if edge < 2**53 else edge
    if kind == 1:
        return rng.randint(-(2**40), 2**40)
    if kind == 2:
        return rng.choice([0.5, -1.25, 1e-300, 3.141592653589793, 1.5e300, -0.1])
    if kind == 3:
        return rng.choice(TEXTS) + str(rng.random())
    return rng.choice([True, False, None])


def value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.5:
        return scalar(rng)
    if roll < 0.75:
        return [value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    return json_object(rng, depth + 1)


def json_object(rng: random.Random, depth: int) -> dict[str, Any]:
    keys = [f"k{rng.randrange(1000)}" for _ in range(rng.randrange(0, 6))]
    return {key: value(rng, depth) for key in keys}


def encode_cases() -> list[dict[str, str]]:
    rng = random.Random(14)
    objects = [json_object(rng, 1) for _ in range(80)]
    objects.append({f"k{i}": i for i in range(30)})  # a map head of two bytes
    deep: Any = 0
    for _ in range(30):
        deep = [deep]
    objects.append({"deepest": deep})
    return [{"json": json.dumps(o), "hex": encode_payload(o).hex()} for o in objects]


def main() -> None:
    cases = [{"hex": h, "note": note, "accepted": verdict(h)} for h, note in CASES]
    OUT.write_text(json.dumps(cases, indent=1) + "\n")
    print(f"{len(cases)} cases, {sum(c['accepted'] for c in cases)} accepted -> {OUT}")
    encoded = encode_cases()
    ENCODE_OUT.write_text(json.dumps(encoded, indent=1) + "\n")
    print(f"{len(encoded)} encoded objects -> {ENCODE_OUT}")


if __name__ == "__main__":
    main()
