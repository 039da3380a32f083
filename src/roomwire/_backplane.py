"""Records nodes exchange through the backplane: presence upserts and removals, messages
(stamped with each node's room sequence when they come back from the backplane, so every node
applies them in the backplane's one order), node heartbeats and presence sync requests."""

from __future__ import annotations

from ._codec import Frame
from ._errors import bad_frame
from ._participant import from_record, is_record
from ._registry import Checker
from ._room import Member


def _check_common(record: Frame) -> bool:
    return type(record.get("n")) is str and type(record.get("r")) is str


def _check_msg(record: Frame) -> None:
    to = record.get("to")
    att = record.get("att")
    if not (
        _check_common(record)
        and type(record.get("id")) is str
        and type(record.get("ts")) in (int, float)
        and type(record.get("from")) is str
        and type(record.get("type")) is str
        and type(record.get("message")) is dict
        and (att is None or type(att) is bytes)
        and (to is None or (type(to) is list and all(type(r) is str for r in to)))
    ):
        raise bad_frame("malformed backplane 'msg' record")


def _check_join(record: Frame) -> None:
    if not (_check_common(record) and is_record(record.get("p"))):
        raise bad_frame("malformed backplane 'join' record")


def _check_left(record: Frame) -> None:
    if not (_check_common(record) and type(record.get("id")) is str):
        raise bad_frame("malformed backplane 'left' record")


def _check_plain(record: Frame) -> None:
    if not _check_common(record):
        raise bad_frame(f"malformed backplane {record['t']!r} record")


BACKPLANE_RECORDS: dict[str, Checker] = {
    "msg": _check_msg,
    "join": _check_join,
    "left": _check_left,
    "hb": _check_plain,
    "sync": _check_plain,
}


def record_member(record: Frame, node: str) -> Member:
    return Member(participant=from_record(record["p"]), outbound=None, node=node)
