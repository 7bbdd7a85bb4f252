"""Queue attributes: which exist, which an action may set, and what values they take.

Every SQS queue attribute is a string on the wire. :func:`parse_queue_attributes`
checks names and values for CreateQueue and SetQueueAttributes and returns typed values
(``int``, ``bool``, ``str``, or a dict for the JSON policies), so the broker glue never
parses a string; :func:`check_attribute_names` checks GetQueueAttributes' names.

========================================  ======  ======  ==================================
name                                      set     fifo    value
========================================  ======  ======  ==================================
DelaySeconds                              yes             0..900 (s)
MaximumMessageSize                        yes             1024..1048576 (bytes)
MessageRetentionPeriod                    yes             60..1209600 (s)
ReceiveMessageWaitTimeSeconds             yes             0..20 (s)
VisibilityTimeout                         yes             0..43200 (s)
Policy                                    yes             a JSON object (stored as text)
RedrivePolicy                             yes             {"deadLetterTargetArn", "maxReceiveCount" 1..1000}; "" removes
RedriveAllowPolicy                        yes             {"redrivePermission": allowAll|denyAll|byQueue, "sourceQueueArns"}
KmsMasterKeyId                            yes             text
KmsDataKeyReusePeriodSeconds              yes             60..86400 (s)
SqsManagedSseEnabled                      yes             true|false
FifoQueue                                 create  yes     true (false only on standard queues)
ContentBasedDeduplication                 yes     yes     true|false
DeduplicationScope                        yes     yes     messageGroup|queue
FifoThroughputLimit                       yes     yes     perQueue|perMessageGroupId
ApproximateNumberOfMessages               no              read only
ApproximateNumberOfMessagesDelayed        no              read only
ApproximateNumberOfMessagesNotVisible     no              read only
CreatedTimestamp, LastModifiedTimestamp   no              read only (seconds since the epoch)
QueueArn                                  no              read only
========================================  ======  ======  ==================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import msgspec

from conveyor import limits
from conveyor.protocol.sqs.charset import first_bad_character
from conveyor.protocol.sqs.errors import (
    SqsError,
    invalid_attribute_name,
    invalid_attribute_value,
)
from conveyor.protocol.sqs.urls import parse_arn

kms_reuse_s_min = 60
kms_reuse_s_max = 24 * limits.HOUR_S
policy_bytes_max = 20 * limits.KiB
redrive_source_arns_max = 10

READ_ONLY = frozenset(
    {
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
        "CreatedTimestamp",
        "LastModifiedTimestamp",
        "QueueArn",
    }
)
FIFO_ONLY = frozenset({"ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"})

Parser = Callable[[str, str], object]


def _int_range(lo: int, hi: int) -> Parser:
    def parse(name: str, text: str) -> object:
        if not re.fullmatch(r"-?[0-9]{1,19}", text):
            raise invalid_attribute_value(name, f"{text!r} is not an integer.")
        value = int(text)
        if not lo <= value <= hi:
            raise invalid_attribute_value(name, f"must be between {lo} and {hi}.")
        return value

    return parse


def _bool(name: str, text: str) -> object:
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise invalid_attribute_value(name, "must be true or false.")
    return lowered == "true"


def _choice(*choices: str) -> Parser:
    def parse(name: str, text: str) -> object:
        if text not in choices:
            raise invalid_attribute_value(name, f"must be one of {', '.join(choices)}.")
        return text

    return parse


def _text(name: str, text: str) -> object:
    return text


def _json_object(name: str, text: str) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        raise invalid_attribute_value(name, "must be a JSON object.") from None
    if not isinstance(value, dict):
        raise invalid_attribute_value(name, "must be a JSON object.")
    return value


def _policy(name: str, text: str) -> object:
    if len(text.encode("utf-8")) > policy_bytes_max:
        raise invalid_attribute_value(name, f"must be at most {policy_bytes_max} bytes.")
    if text:
        _json_object(name, text)
    return text


def _redrive_policy(name: str, text: str) -> object:
    if text == "":
        return None  # SetQueueAttributes with an empty RedrivePolicy removes it
    value = _json_object(name, text)
    arn = value.get("deadLetterTargetArn")
    count = value.get("maxReceiveCount")
    if not isinstance(arn, str):
        raise invalid_attribute_value(name, "deadLetterTargetArn is required.")
    try:
        parse_arn(arn, "deadLetterTargetArn")
    except SqsError:
        raise invalid_attribute_value(name, "deadLetterTargetArn is not a queue ARN.") from None
    if isinstance(count, str) and re.fullmatch(r"[0-9]{1,9}", count):
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int):
        raise invalid_attribute_value(name, "maxReceiveCount is required and must be an integer.")
    lo, hi = limits.max_receive_count_min, limits.max_receive_count_max
    if not lo <= count <= hi:
        raise invalid_attribute_value(name, f"maxReceiveCount must be between {lo} and {hi}.")
    extra = set(value) - {"deadLetterTargetArn", "maxReceiveCount"}
    if extra:
        raise invalid_attribute_value(name, f"unknown field {sorted(extra)[0]}.")
    return {"deadLetterTargetArn": arn, "maxReceiveCount": count}


def _redrive_allow_policy(name: str, text: str) -> object:
    if text == "":
        return None
    value = _json_object(name, text)
    permission = value.get("redrivePermission")
    if permission not in ("allowAll", "denyAll", "byQueue"):
        raise invalid_attribute_value(
            name, "redrivePermission must be allowAll, denyAll or byQueue."
        )
    arns = value.get("sourceQueueArns")
    if permission == "byQueue":
        if not isinstance(arns, list) or not 1 <= len(arns) <= redrive_source_arns_max:
            raise invalid_attribute_value(
                name, f"byQueue needs 1 to {redrive_source_arns_max} sourceQueueArns."
            )
        for arn in arns:
            if not isinstance(arn, str):
                raise invalid_attribute_value(name, "sourceQueueArns must be ARNs.")
            parse_arn(arn, "sourceQueueArns")
    elif arns is not None:
        raise invalid_attribute_value(name, "sourceQueueArns is only allowed with byQueue.")
    out: dict[str, Any] = {"redrivePermission": permission}
    if arns is not None:
        out["sourceQueueArns"] = list(arns)
    return out


SETTABLE: dict[str, Parser] = {
    "DelaySeconds": _int_range(limits.delay_s_min, limits.delay_s_max),
    "MaximumMessageSize": _int_range(limits.message_size_bytes_min, limits.message_size_bytes_max),
    "MessageRetentionPeriod": _int_range(limits.retention_s_min, limits.retention_s_max),
    "ReceiveMessageWaitTimeSeconds": _int_range(
        limits.receive_wait_s_min, limits.receive_wait_s_max
    ),
    "VisibilityTimeout": _int_range(
        limits.visibility_timeout_s_min, limits.visibility_timeout_s_max
    ),
    "Policy": _policy,
    "RedrivePolicy": _redrive_policy,
    "RedriveAllowPolicy": _redrive_allow_policy,
    "KmsMasterKeyId": _text,
    "KmsDataKeyReusePeriodSeconds": _int_range(kms_reuse_s_min, kms_reuse_s_max),
    "SqsManagedSseEnabled": _bool,
    "FifoQueue": _bool,
    "ContentBasedDeduplication": _bool,
    "DeduplicationScope": _choice("messageGroup", "queue"),
    "FifoThroughputLimit": _choice("perQueue", "perMessageGroupId"),
}

ALL_NAMES = frozenset(SETTABLE) | READ_ONLY


def parse_queue_attributes(
    attributes: Mapping[str, str], action: Literal["CreateQueue", "SetQueueAttributes"]
) -> dict[str, object]:
    """Check names and values; return the values typed. Raises InvalidAttributeName/Value."""
    out: dict[str, object] = {}
    for name, text in attributes.items():
        parse = SETTABLE.get(name)
        if parse is None or (name == "FifoQueue" and action != "CreateQueue"):
            raise invalid_attribute_name(name)
        if first_bad_character(text) is not None:
            raise invalid_attribute_value(name, "it contains characters SQS does not allow.")
        out[name] = parse(name, text)
    return out


def check_queue_kind(attributes: Mapping[str, object], fifo: bool) -> None:
    """FIFO-only attributes on a standard queue are unknown there, as in SQS."""
    if fifo:
        return
    for name in attributes:
        if name in FIFO_ONLY:
            raise invalid_attribute_name(name)
    if attributes.get("FifoQueue") is True:
        raise invalid_attribute_value("FifoQueue", "only a queue whose name ends in .fifo.")


def check_attribute_names(names: Iterable[str]) -> list[str]:
    """GetQueueAttributes: every name known or ``All``; returns the names expanded."""
    wanted: list[str] = []
    for name in names:
        if name == "All":
            return sorted(ALL_NAMES)
        if name not in ALL_NAMES:
            raise invalid_attribute_name(name)
        wanted.append(name)
    return wanted


def attribute_string(value: object) -> str:
    """How an attribute value is written on the wire (``true``, ``30``, JSON text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return msgspec.json.encode(value).decode("utf-8")
    return str(value)
