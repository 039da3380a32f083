"""The shape of every frame kind: each checker takes a decoded map and raises BAD_FRAME
unless the fields it needs have the right types. Unknown keys are ignored (room for
additive, backwards-compatible fields). Each side's registry names the checker of each kind
it receives."""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

from ._codec import Frame
from ._errors import bad_frame
from ._participant import is_record as is_participant
from ._registry import Checker
from .codes import Code
from .events import Limits


def _require(ok: bool, kind: str) -> None:
    if not ok:
        raise bad_frame(f"malformed {kind!r} frame")


def _is_int(value: object) -> bool:
    return type(value) is int and 0 <= value < 2**63


def _is_duration(value: object) -> bool:
    """A positive, finite number of seconds (NaN fails both comparisons)."""
    return (type(value) is int or type(value) is float) and 0 < value < math.inf


def _optional_attachment(frame: Frame) -> bool:
    att = frame.get("att")
    return att is None or type(att) is bytes


def check_hello(f: Frame) -> None:
    room = f.get("room")
    _require(
        _is_int(f.get("v"))
        and type(f.get("token")) is str
        and (room is None or type(room) is str)
        and ("resume" not in f or _is_resume(f["resume"])),
        "hello",
    )


def _is_resume(r: object) -> bool:
    """A hello's ``resume`` map (PROTOCOL.md §22)."""
    return (
        type(r) is dict
        and type(r.get("id")) is str
        and type(r.get("secret")) is str
        and type(r.get("epoch")) is str
        and _is_int(r.get("seq"))
        and type(r.get("enable", False)) is bool
        and type(r.get("presence", True)) is bool
    )


def check_request(f: Frame) -> None:
    _require(_is_int(f.get("rid")), f["t"])


def check_enable(f: Frame) -> None:
    presence = f.get("presence", True)
    _require(_is_int(f.get("rid")) and type(presence) is bool, "enable")


def _message_fields(f: Frame) -> bool:
    """The fields a send and a broadcast share. The hottest check (every message): written
    out, with no helper calls."""
    get = f.get
    rid, att = get("rid"), get("att")
    return (
        type(rid) is int
        and 0 <= rid < 2**63
        and type(get("type")) is str
        and type(get("message")) is dict
        and (att is None or type(att) is bytes)
    )


def check_send(f: Frame) -> None:
    to = f.get("to")
    if not (type(to) is list and _message_fields(f)):
        raise bad_frame("malformed 'send' frame")
    for recipient in to:
        if type(recipient) is not str:
            raise bad_frame("malformed 'send' frame")


def check_broadcast(f: Frame) -> None:
    if not _message_fields(f):
        raise bad_frame("malformed 'broadcast' frame")


def check_attrs(f: Frame) -> None:
    _require(_is_int(f.get("rid")) and type(f.get("attributes")) is dict, "attrs")


def check_history(f: Frame) -> None:
    # Any integer passes here: an absurd limit or position is refused, not a broken frame.
    since = f.get("since")
    _require(
        _is_int(f.get("rid"))
        and type(f.get("limit", 0)) is int
        and (since is None or type(since) is int)
        and type(f.get("reverse", False)) is bool
        and type(f.get("epoch", "")) is str,
        "history",
    )


def check_refresh(f: Frame) -> None:
    _require(_is_int(f.get("rid")) and type(f.get("token")) is str, "refresh")


def check_bare(f: Frame) -> None:
    """ping and pong carry nothing."""


def _check_coded(f: Frame, closes: bool) -> None:
    """A close carries a close code (below 4000, never the local-only CONNECTION_LOST); an
    error carries a refusal code (4000 and up)."""
    _require(_is_int(f.get("code")) and type(f.get("reason")) is str, f["t"])
    code = f["code"]
    if code not in Code._value2member_map_ or code == Code.CONNECTION_LOST:
        raise bad_frame(f"unknown code {code} in {f['t']!r}")
    if Code(code).closes_connection is not closes:
        raise bad_frame(f"code {code} does not belong in {f['t']!r}")


def check_close(f: Frame) -> None:
    _check_coded(f, closes=True)


def check_welcome(f: Frame) -> None:
    limits = f.get("limits")
    _require(
        _is_int(f.get("v"))
        and type(f.get("room")) is str
        and is_participant(f.get("participant"))
        and type(limits) is dict
        and all(_is_int(limits.get(name)) for name in REQUIRED_LIMITS)
        and all(_is_int(limits[name]) for name in LIMIT_FIELDS if name in limits)
        and _is_duration(f.get("hb"))
        and _is_duration(f.get("hbt"))
        and type(f.get("resume", "")) is str
        and _is_int(f.get("seq", 0))
        and _is_int(f.get("missed", 0))
        and all(type(f.get(k, False)) is bool for k in _WELCOME_FLAGS)
        and (type(w := f.get("resume_window", 0)) is int or type(w) is float)
        and 0 <= w < math.inf,
        "welcome",
    )


_WELCOME_FLAGS = ("resumed", "recovered", "enabled")


def _is_page(f: Frame, key: str, is_item: Callable[[object], bool]) -> bool:
    """A page of a paged reply: its request id, ``more``, and the list under ``key``."""
    items = f.get(key)
    return (
        _is_int(f.get("rid"))
        and type(f.get("more")) is bool
        and type(items) is list
        and all(is_item(item) for item in items)
    )


def check_snapshot(f: Frame) -> None:
    _require(_is_page(f, "participants", is_participant), "snapshot")


def check_ack(f: Frame) -> None:
    message_id = f.get("id")
    recipients = f.get("recipients")
    _require(
        _is_int(f.get("rid"))
        and (message_id is None or type(message_id) is str)
        and (recipients is None or _is_int(recipients))
        and type(f.get("dup", False)) is bool,
        "ack",
    )


def check_error(f: Frame) -> None:
    _require(_is_int(f.get("rid")), "error")
    _check_coded(f, closes=False)


def _is_message(f: Frame) -> bool:
    """A ``msg`` frame's fields, also each message of a ``history`` page."""
    return (
        type(f.get("id")) is str
        and _is_int(f.get("seq"))
        and type(f.get("ts")) in (int, float)
        and type(f.get("from")) is str
        and type(f.get("type")) is str
        and type(f.get("message")) is dict
        and type(f.get("bc")) is bool
        and _optional_attachment(f)
    )


def check_msg(f: Frame) -> None:
    _require(_is_message(f), "msg")


def check_stored(f: Frame) -> None:
    """A history record as a driver's store hands it back: a message, its sender's name and
    its recipients' names (None for a broadcast) and, from stores written since PROTOCOL.md
    §22, their participant ids (``ids``)."""
    to, ids = f.get("to"), f.get("ids")
    _require(
        _is_message(f)
        and type(f.get("name")) is str
        and (to is None or (type(to) is list and all(type(n) is str for n in to)))
        and (ids is None or (type(ids) is list and all(type(i) is str for i in ids))),
        "stored",
    )


def check_history_page(f: Frame) -> None:
    _require(
        _is_page(f, "messages", lambda m: type(m) is dict and _is_message(m))
        and type(f.get("epoch", "")) is str
        and type(f.get("reset", False)) is bool,
        "history",
    )


def check_presence(f: Frame) -> None:
    _require(_is_int(f.get("seq")) and is_participant(f.get("p")), f["t"])


def check_left(f: Frame) -> None:
    _require(_is_int(f.get("seq")) and type(f.get("id")) is str, "left")


LIMIT_FIELDS = tuple(field.name for field in attrs.fields(Limits))
"""The welcome's ``limits`` keys: the fields of ``events.Limits``."""
REQUIRED_LIMITS = tuple(f.name for f in attrs.fields(Limits) if f.default is attrs.NOTHING)
"""The keys every welcome has; later ones (with a default) may be missing from an older
server's, which then keeps its default."""


def check_frame(frame: Frame, kinds: dict[str, Checker]) -> None:
    """Raise BAD_FRAME unless ``frame`` is one of ``kinds`` with the right field types."""
    checker = kinds.get(frame["t"])
    if checker is None:
        raise bad_frame(f"unknown frame kind {frame['t'][:40]!r}")
    checker(frame)


# --- participant RPC (PROTOCOL.md §24) ----------------------------------------------------


def _is_answer(f: Frame) -> bool:
    """An answer's outcome: a message (and attachment), or an application code and reason."""
    if "code" in f:
        code = f["code"]
        return type(code) is int and -(2**63) <= code < 2**63 and type(f.get("reason")) is str
    return type(f.get("message")) is dict and _optional_attachment(f)


def check_call(f: Frame) -> None:
    _require(
        _is_int(f.get("rid"))
        and type(f.get("to")) is str
        and type(f.get("type")) is str
        and type(f.get("message")) is dict
        and _optional_attachment(f),
        "call",
    )


def check_answer(f: Frame) -> None:
    _require(_is_int(f.get("rid")) and type(f.get("id")) is str and _is_answer(f), "answer")


def check_incoming_call(f: Frame) -> None:
    _require(
        type(f.get("id")) is str
        and type(f.get("from")) is str
        and type(f.get("ts")) in (int, float)
        and type(f.get("type")) is str
        and type(f.get("message")) is dict
        and _optional_attachment(f),
        "call",
    )


def check_result(f: Frame) -> None:
    _require(
        _is_int(f.get("rid"))
        and type(f.get("id")) is str
        and type(f.get("from")) is str
        and type(f.get("ts")) in (int, float)
        and type(f.get("type")) is str
        and _is_answer(f),
        "result",
    )


def check_call_cancelled(f: Frame) -> None:
    _require(type(f.get("id")) is str, "cancel")


# --- streams (PROTOCOL.md §24.4) --------------------------------------------------------


def _optional_header(f: Frame) -> bool:
    header = f.get("header")
    return header is None or type(header) is dict


def check_open(f: Frame) -> None:
    _require(
        _is_int(f.get("rid")) and type(f.get("to")) is str and type(f.get("header")) is dict,
        "open",
    )


def check_accept(f: Frame) -> None:
    _require(_is_int(f.get("rid")) and type(f.get("sid")) is str, "accept")


def check_chunk(f: Frame) -> None:
    _require(
        type(f.get("sid")) is str and type(f.get("data")) is bytes and _optional_header(f),
        "chunk",
    )


def check_credit(f: Frame) -> None:
    n = f.get("n")
    _require(type(f.get("sid")) is str and type(n) is int and 0 < n < 2**63, "credit")


def check_stream_end(f: Frame) -> None:
    _require(type(f.get("sid")) is str, f["t"])


def check_abort(f: Frame) -> None:
    _require(type(f.get("sid")) is str and type(f.get("reason")) is str, "abort")


def check_offer(f: Frame) -> None:
    _require(
        type(f.get("sid")) is str
        and type(f.get("from")) is str
        and type(f.get("ts")) in (int, float)
        and type(f.get("header")) is dict,
        "open",
    )


def check_aborted(f: Frame) -> None:
    _require(type(f.get("sid")) is str, "abort")
    _check_coded(f, closes=False)


# --- services (docs/PROTOCOL.md §23) ---------------------------------------------------------


def _is_recipients(to: object) -> bool:
    """A list of participant ids, or None (everyone)."""
    return to is None or (type(to) is list and all(type(r) is str for r in to))


def check_svc_decide(f: Frame) -> None:
    _require(
        _is_int(f.get("rid"))
        and type(f.get("id")) is str
        and type(f.get("drop", False)) is bool
        and type(f.get("type", "")) is str
        and type(f.get("message", {})) is dict
        and _optional_attachment(f)
        and _is_recipients(f.get("to")),
        "svc_decide",
    )


def _is_upward(f: Frame) -> bool:
    """What a service sends or is handed: a sender, a message, and its recipients."""
    return (
        type(f.get("from")) is str
        and type(f.get("type")) is str
        and type(f.get("message")) is dict
        and _optional_attachment(f)
        and _is_recipients(f.get("to"))
    )


def check_svc_send(f: Frame) -> None:
    _require(_is_int(f.get("rid")) and _is_upward(f), "svc_send")


def check_svc_puppet(f: Frame) -> None:
    _require(
        _is_int(f.get("rid")) and type(f.get("name")) is str and type(f.get("attributes")) is dict,
        "svc_puppet",
    )


def check_svc_unpuppet(f: Frame) -> None:
    _require(_is_int(f.get("rid")) and type(f.get("id")) is str, "svc_unpuppet")


def check_svc_msg(f: Frame) -> None:
    _require(
        type(f.get("id")) is str and type(f.get("ts")) in (int, float) and _is_upward(f),
        "svc_msg",
    )


def check_svc_timeout(f: Frame) -> None:
    _require(type(f.get("id")) is str, "svc_timeout")
