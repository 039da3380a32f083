"""Records nodes exchange through the backplane: presence upserts and removals, messages
(stamped with each node's room sequence when they come back from the backplane, so every node
applies them in the backplane's one order), node heartbeats and presence sync requests."""

from __future__ import annotations

import hashlib
import hmac
import math
from typing import TYPE_CHECKING

from ._codec import ATTRIBUTES_DEPTH, Frame, is_json_object
from ._errors import bad_frame
from ._fast import PAGE_OVERHEAD
from ._framing import PREFIX_SIZE
from ._participant import attributes_size, encode, from_record, is_record
from ._registry import Checker
from ._room import Member
from ._routing import delivery_frame
from ._rpc import call_frame, result_frame
from ._service import svc_msg_frame

if TYPE_CHECKING:
    from ._config import ServerConfig

TAG_SIZE = 32
"""Bytes of a record's HMAC-SHA256 tag, ahead of the record, with a cluster key."""

LARGEST_SEQ = 2**64 - 1
GROWTH = 3
"""Most a CBOR item grows when re-encoded (a half float becomes a 64-bit one)."""


def _check_common(record: Frame) -> bool:
    return type(record.get("n")) is str and type(record.get("r")) is str


def _check_msg(record: Frame) -> None:
    """A ``msg`` record, or the fields of an ``svc_up`` (which are a message's)."""
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
        raise bad_frame(f"malformed backplane {record['t']!r} record")


def _check_join(record: Frame) -> None:
    if not (_check_common(record) and is_record(record.get("p"))):
        raise bad_frame("malformed backplane 'join' record")


def _check_left(record: Frame) -> None:
    if not (_check_common(record) and type(record.get("id")) is str):
        raise bad_frame("malformed backplane 'left' record")


def _check_plain(record: Frame) -> None:
    if not _check_common(record):
        raise bad_frame(f"malformed backplane {record['t']!r} record")


def _check_call(record: Frame) -> None:
    att = record.get("att")
    if not (
        _check_common(record)
        and type(record.get("id")) is str
        and type(record.get("to")) is str
        and type(record.get("from")) is str
        and type(record.get("type")) is str
        and type(record.get("ts")) in (int, float)
        and type(record.get("message")) is dict
        and (att is None or type(att) is bytes)
    ):
        raise bad_frame("malformed backplane 'call' record")


def _check_result(record: Frame) -> None:
    att, code = record.get("att"), record.get("code")
    if not (
        _check_common(record)
        and type(record.get("id")) is str
        and type(record.get("from")) is str
        and type(record.get("type")) is str
        and type(record.get("ts")) in (int, float)
        and (
            (type(code) is int and type(record.get("reason")) is str)
            if "code" in record
            else (type(record.get("message")) is dict and (att is None or type(att) is bytes))
        )
    ):
        raise bad_frame("malformed backplane 'result' record")


def _check_cancel(record: Frame) -> None:
    if not (_check_common(record) and type(record.get("id")) is str):
        raise bad_frame("malformed backplane 'cancel' record")


def _check_svc_on(record: Frame) -> None:
    if not (_check_common(record) and type(record.get("since")) in (int, float)):
        raise bad_frame("malformed backplane 'svc_on' record")


def _check_svc_up(record: Frame) -> None:
    if type(record.get("since")) not in (int, float):
        raise bad_frame("malformed backplane 'svc_up' record")
    _check_msg(record)


def _check_svc_id(record: Frame) -> None:
    if not (_check_common(record) and type(record.get("id")) is str):
        raise bad_frame(f"malformed backplane {record['t']!r} record")


BACKPLANE_RECORDS: dict[str, Checker] = {
    "msg": _check_msg,
    "join": _check_join,
    "left": _check_left,
    "hb": _check_plain,
    "sync": _check_plain,
    "call": _check_call,
    "result": _check_result,
    "cancel": _check_cancel,
    "svc_on": _check_svc_on,
    "svc_off": _check_plain,
    "svc_up": _check_svc_up,
    "svc_done": _check_svc_id,
    "svc_back": _check_svc_id,
}


def record_member(record: Frame, node: str) -> Member:
    return Member(participant=from_record(record["p"]), outbound=None, node=node)


def sign(key: bytes, record: bytes) -> bytes:
    """The record as published with a cluster key: its HMAC-SHA256 tag, then the record."""
    return hmac.digest(key, record, hashlib.sha256) + record


def unsign(key: bytes, data: bytes) -> bytes:
    """The record inside ``data``; BAD_FRAME unless its tag is the key's."""
    tag, record = data[:TAG_SIZE], data[TAG_SIZE:]
    if not hmac.compare_digest(tag, hmac.digest(key, record, hashlib.sha256)):
        raise bad_frame("backplane record not signed with this cluster's key")
    return record


def check_content(record: Frame, size: int, config: ServerConfig) -> None:
    """Refuse a well-shaped record that no node with these limits could have sent: what it
    carries must pass the checks a client's request passes, and the frame it becomes must fit
    every client's ``max_frame_size``. ``size`` is the record's encoded size."""
    kind = record["t"]
    if kind in {"msg", "svc_up"}:
        _check_message(record, size, config)
    elif kind == "svc_on" and not math.isfinite(record["since"]):
        raise bad_frame("backplane 'svc_on' record with a time that is not finite")
    elif kind in {"call", "result"}:
        _check_call_content(record, config)
    elif kind == "join":
        participant = from_record(record["p"])
        attributes = participant.attributes
        if not (
            is_json_object(attributes, ATTRIBUTES_DEPTH)
            and attributes_size(attributes) <= config.max_attributes_size
            and len(encode(participant)) <= config.max_frame_size - PAGE_OVERHEAD
        ):
            raise bad_frame("backplane 'join' record over the attribute limits")


def _check_message(record: Frame, size: int, config: ServerConfig) -> None:
    """A ``msg`` record, or an ``svc_up`` (whose ``to`` may be empty: "to the service
    only"), and the frame it becomes: a delivery, or the service's ``svc_msg``."""
    to = record["to"]
    up = record["t"] == "svc_up"
    if not (
        0 < len(record["type"]) <= config.max_type_length
        and (to is None or (0 if up else 1) <= len(to) <= config.max_recipients)
        and math.isfinite(record["ts"])
        and math.isfinite(record.get("since", 0.0))
        and is_json_object(record["message"])
    ):
        raise bad_frame(f"backplane {record['t']!r} record over the message limits")
    if size * GROWTH + PAGE_OVERHEAD <= config.max_frame_size:
        return  # the frame cannot outgrow a frame: no need to build it
    if up:
        data = svc_msg_frame(record)
    else:
        data = delivery_frame(
            record["id"],
            LARGEST_SEQ,
            record["ts"],
            record["from"],
            None if to is None else tuple(to),
            record["type"],
            record["message"],
            record.get("att"),
        )
    if len(data) - PREFIX_SIZE > config.max_frame_size:
        raise bad_frame(f"backplane {record['t']!r} record would make a frame over max_frame_size")


def _check_call_content(record: Frame, config: ServerConfig) -> None:
    """A call or result record: the rules its client's request passed, and the frame it
    becomes fits ``max_frame_size``."""
    message = record.get("message")
    if not (
        0 < len(record["type"]) <= config.max_type_length
        and math.isfinite(record["ts"])
        and (message is None or is_json_object(message))
        and -(2**63) <= record.get("code", 0) < 2**63
    ):
        raise bad_frame(f"backplane {record['t']!r} record over the message limits")
    data = call_frame(record) if record["t"] == "call" else result_frame(record, LARGEST_SEQ)
    if len(data) - PREFIX_SIZE > config.max_frame_size:
        raise bad_frame(f"backplane {record['t']!r} record would make a frame over max_frame_size")
