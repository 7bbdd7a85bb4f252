"""SQS's input rules, checked before anything reaches the broker.

:func:`check_request` runs the checks of one action on parameters already typed by
:mod:`.request` and raises the :class:`SqsError` SQS would answer. For the batch actions
it returns the entries that fail on their own (``{entry id: error}``): SQS reports those
in the result's ``Failed`` list and carries out the rest. What needs the queue (its
kind, its maximum message size, whether a receipt handle is current) is the broker
glue's to check; :func:`message_size` and :func:`check_send_for_queue` help it.

Rules (from the SQS API reference):

* queue names: 1..80 of ``[A-Za-z0-9_-]``; a FIFO queue's name ends in ``.fifo``
  (counted in the 80);
* message bodies: at least one character, all of ``#x9 | #xA | #xD | #x20-#xD7FF |
  #xE000-#xFFFD | #x10000-#x10FFFF``;
* message attributes: at most 10; names 1..256 of ``[A-Za-z0-9_.-]``, not starting
  with ``AWS.`` or ``Amazon.`` (any case), no leading, trailing or doubled period;
  data types ``String``, ``Number`` or ``Binary``, optionally ``.<custom>``, at most
  256 characters; values non-empty; numbers at most 38 significant digits within
  10^-128..10^126; the only system attribute a send may carry is ``AWSTraceHeader``
  (a String);
* batches: 1..10 entries, ids 1..80 of ``[A-Za-z0-9_-]`` and distinct, bodies plus
  attributes together at most :data:`conveyor.limits.batch_request_bytes_max`;
* group, deduplication and receive-attempt ids: 1..128 of ASCII ``!``..``~``;
* ReceiveMessage: MaxNumberOfMessages 1..10, VisibilityTimeout 0..43200,
  WaitTimeSeconds 0..20; attribute names known, ``All``, or (for message attributes)
  ``.*`` and ``prefix.*``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from conveyor import limits
from conveyor.protocol.sqs.charset import ALLOWED_CHARACTERS, first_bad_character
from conveyor.protocol.sqs.errors import (
    SqsError,
    invalid_attribute_name,
    invalid_parameter,
    invalid_value,
    missing_parameter,
)
from conveyor.protocol.sqs.queue_attributes import (
    ALL_NAMES as _QUEUE_ATTRIBUTE_NAMES,
)
from conveyor.protocol.sqs.queue_attributes import (
    check_attribute_names,
    check_queue_kind,
    parse_queue_attributes,
)
from conveyor.protocol.sqs.urls import parse_arn

batch_entry_id_length_max = 80
tag_key_length_max = 128
tag_value_length_max = 256
permission_label_length_max = 80
permission_actions_max = 7
move_task_rate_max = 500  # MaxNumberOfMessagesPerSecond
move_tasks_listed_max = 10
list_results_max = 1000  # ListQueues / ListDeadLetterSourceQueues MaxResults
number_digits_max = 38

_QUEUE_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,80}")
_ENTRY_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,80}")
_TOKEN_RE = re.compile(r"[!-~]{1,128}")  # group / dedup / attempt ids
_LABEL_RE = re.compile(r"[A-Za-z0-9_-]{1,80}")
_ATTR_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,256}")
_NUMBER_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")

SYSTEM_ATTRIBUTE_NAMES = frozenset(
    {
        "SenderId",
        "SentTimestamp",
        "ApproximateReceiveCount",
        "ApproximateFirstReceiveTimestamp",
        "SequenceNumber",
        "MessageDeduplicationId",
        "MessageGroupId",
        "AWSTraceHeader",
        "DeadLetterQueueSourceArn",
    }
)
SEND_SYSTEM_ATTRIBUTE_NAMES = frozenset({"AWSTraceHeader"})
PERMISSION_ACTIONS = frozenset(
    {
        "*",
        "SendMessage",
        "ReceiveMessage",
        "DeleteMessage",
        "ChangeMessageVisibility",
        "GetQueueAttributes",
        "GetQueueUrl",
        "ListDeadLetterSourceQueues",
        "PurgeQueue",
    }
)

Params = dict[str, Any]
EntryErrors = dict[str, SqsError]


# --- single values ---------------------------------------------------------------------


def check_queue_name(name: str) -> None:
    fifo = name.endswith(".fifo")
    base = name[: -len(".fifo")] if fifo else name
    if len(name) > limits.queue_name_length_max or not _QUEUE_NAME_RE.fullmatch(base):
        if fifo:
            raise invalid_parameter(
                "The name of a FIFO queue can only include alphanumeric characters, hyphens, "
                "or underscores, must end with .fifo suffix and be 1 to 80 in length."
            )
        raise invalid_parameter(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
        )


def check_text(text: str, what: str, code: str = "InvalidMessageContents") -> None:
    """Characters outside SQS's set give InvalidMessageContents (or ``code``)."""
    bad = first_bad_character(text)
    if bad is not None:
        raise SqsError(
            code,
            f"Invalid characters found in {what}: #x{ord(bad):X}. "
            f"Valid unicode characters are {ALLOWED_CHARACTERS}",
        )


def check_body(body: str) -> None:
    if body == "":
        raise missing_parameter("MessageBody")
    check_text(body, "the message body")


def check_int(name: str, value: int | None, lo: int, hi: int, reason: str | None = None) -> None:
    if value is not None and not lo <= value <= hi:
        raise invalid_value(name, value, reason or f"Must be between {lo} and {hi}, if provided")


def token_ok(value: str | None) -> bool:
    """Whether :func:`check_token` passes ``value``."""
    return value is None or _TOKEN_RE.fullmatch(value) is not None


def check_token(name: str, value: str | None) -> None:
    """MessageGroupId, MessageDeduplicationId, ReceiveRequestAttemptId."""
    if not token_ok(value):
        raise invalid_value(
            name,
            value,
            f"{name} can only include alphanumeric and punctuation characters. 1 to 128 in length",
        )


def check_attribute_name(name: str, what: str = "Message (user) attribute") -> None:
    lowered = name.lower()
    if (
        not _ATTR_NAME_RE.fullmatch(name)
        or name.startswith(".")
        or name.endswith(".")
        or ".." in name
        or lowered.startswith(("aws.", "amazon."))
    ):
        raise invalid_parameter(
            f"{what} name '{name}' is invalid. The attribute name can contain "
            "A-Z, a-z, 0-9, underscore (_), hyphen (-), and period (.) characters; "
            "must not start or end with a period, contain two periods in a row, or start "
            "with AWS. or Amazon.; and must be at most 256 characters."
        )


def _check_number(name: str, text: str) -> None:
    ok = bool(_NUMBER_RE.fullmatch(text))
    if ok:
        try:
            number = Decimal(text)
        except InvalidOperation:
            ok = False
        else:
            # Significant digits, without leading or trailing zeros (no rounding:
            # Decimal.normalize would round to the context's 28 digits).
            significant = "".join(map(str, number.as_tuple().digits)).strip("0")
            magnitude = abs(number)
            ok = len(significant) <= number_digits_max and (
                number == 0 or Decimal("1e-128") <= magnitude <= Decimal("1e126")
            )
    if not ok:
        raise invalid_parameter(
            f"Can't cast the value of message (user) attribute '{name}' to a number."
        )


def check_message_attributes(
    attributes: Mapping[str, Mapping[str, Any]], *, system: bool = False
) -> None:
    what = "Message system attribute" if system else "Message (user) attribute"
    if len(attributes) > limits.message_attributes_max:
        raise invalid_parameter(
            f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum "
            f"[{limits.message_attributes_max}]."
        )
    for name, value in attributes.items():
        if system:
            if name not in SEND_SYSTEM_ATTRIBUTE_NAMES:
                raise invalid_parameter(f"Message system attribute name '{name}' is invalid.")
        else:
            check_attribute_name(name, what)
        data_type: str = value["DataType"]
        base, _, custom = data_type.partition(".")
        if (
            base not in ("String", "Number", "Binary")
            or (data_type != base and not custom)
            or len(data_type) > limits.attribute_type_length_max
            or first_bad_character(data_type) is not None
            or (system and data_type != "String")
        ):
            raise invalid_parameter(
                f"The type of {what.lower()} '{name}' is invalid. You must use only the "
                "following supported type prefixes: Binary, Number, String."
            )
        if value.get("StringListValues") or value.get("BinaryListValues"):
            raise invalid_parameter(
                f"{what} '{name}': StringListValues and BinaryListValues are not supported."
            )
        string_value = value.get("StringValue")
        binary_value = value.get("BinaryValue")
        if base == "Binary":
            if not binary_value or string_value is not None:
                raise invalid_parameter(
                    f"{what} '{name}' must contain a non-empty value of type 'Binary'."
                )
            continue
        if not string_value or binary_value is not None:
            raise invalid_parameter(
                f"{what} '{name}' must contain a non-empty value of type '{base}'."
            )
        if first_bad_character(string_value) is not None:
            raise SqsError(
                "InvalidMessageContents",
                f"{what} '{name}' contains invalid characters. "
                f"Valid unicode characters are {ALLOWED_CHARACTERS}",
            )
        if base == "Number":
            _check_number(name, string_value)


def attributes_size(attributes: Mapping[str, Mapping[str, Any]] | None) -> int:
    """Bytes the attributes count toward a message's size: names, types and values."""
    if not attributes:
        return 0
    total = 0
    for name, value in attributes.items():
        total += len(name.encode("utf-8")) + len(value["DataType"].encode("utf-8"))
        if value.get("StringValue") is not None:
            total += len(value["StringValue"].encode("utf-8"))
        if value.get("BinaryValue") is not None:
            total += len(value["BinaryValue"])
    return total


def message_size(entry: Mapping[str, Any]) -> int:
    """What a SendMessage (or batch entry) counts against MaximumMessageSize.

    The body and the message (user) attributes; system attributes do not count.
    """
    body: str = entry.get("MessageBody", "")
    size = len(body) if body.isascii() else len(body.encode("utf-8"))
    attributes = entry.get("MessageAttributes")
    return size + attributes_size(attributes) if attributes else size


def check_send(entry: Mapping[str, Any]) -> None:
    """One message of SendMessage or SendMessageBatch, as far as it can be checked alone."""
    check_body(entry["MessageBody"])
    get = entry.get  # the checks of absent optional parameters are skipped: a hot path
    if get("DelaySeconds") is not None:
        check_int("DelaySeconds", entry["DelaySeconds"], limits.delay_s_min, limits.delay_s_max)
    if get("MessageAttributes"):
        check_message_attributes(entry["MessageAttributes"])
    if get("MessageSystemAttributes"):
        check_message_attributes(entry["MessageSystemAttributes"], system=True)
    if get("MessageGroupId") is not None:
        check_token("MessageGroupId", entry["MessageGroupId"])
    if get("MessageDeduplicationId") is not None:
        check_token("MessageDeduplicationId", entry["MessageDeduplicationId"])
    if message_size(entry) > limits.message_size_bytes_max:
        raise invalid_parameter(
            "One or more parameters are invalid. Reason: Message must be shorter than "
            f"{limits.message_size_bytes_max} bytes."
        )


def check_send_for_queue(
    entry: Mapping[str, Any],
    *,
    fifo: bool,
    max_message_bytes: int,
    content_based_dedup: bool = False,
) -> None:
    """The checks that need the queue; the broker glue calls this per message."""
    size = message_size(entry)
    if size > max_message_bytes:
        raise invalid_parameter(
            "One or more parameters are invalid. Reason: Message must be shorter than "
            f"{max_message_bytes} bytes."
        )
    if fifo:
        if entry.get("MessageGroupId") is None:
            raise missing_parameter("MessageGroupId")
        if entry.get("DelaySeconds") not in (None, 0):
            raise invalid_value(
                "DelaySeconds",
                entry["DelaySeconds"],
                "The request include parameter that is not valid for this queue type",
            )
        if entry.get("MessageDeduplicationId") is None and not content_based_dedup:
            raise invalid_parameter(
                "The queue should either have ContentBasedDeduplication enabled or "
                "MessageDeduplicationId provided explicitly"
            )
    elif entry.get("MessageDeduplicationId") is not None:
        raise invalid_value(
            "MessageDeduplicationId",
            entry["MessageDeduplicationId"],
            "The request include parameter that is not valid for this queue type",
        )


# --- batches -----------------------------------------------------------------------------


def batch_ids_ok(ids: Sequence[str]) -> bool:
    """Whether :func:`check_batch` passes a batch of entries with these ids."""
    return (
        0 < len(ids) <= limits.batch_entries_max
        and all(_ENTRY_ID_RE.fullmatch(i) for i in ids)
        and len(set(ids)) == len(ids)
    )


def check_batch(entries: Sequence[Mapping[str, Any]], entry_wire_name: str) -> None:
    """Rules every batch action shares: count, id format, distinct ids."""
    if not entries:
        raise SqsError(
            "EmptyBatchRequest",
            f"There should be at least one {entry_wire_name} in the request.",
        )
    if len(entries) > limits.batch_entries_max:
        raise SqsError(
            "TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are {limits.batch_entries_max}. "
            f"You have sent {len(entries)}.",
        )
    seen: set[str] = set()
    for entry in entries:
        entry_id: str = entry["Id"]
        if not _ENTRY_ID_RE.fullmatch(entry_id):
            raise SqsError(
                "InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and "
                f"underscores. It can be at most {batch_entry_id_length_max} letters long.",
            )
        if entry_id in seen:
            raise SqsError("BatchEntryIdsNotDistinct", f"Id {entry_id} repeated.")
        seen.add(entry_id)


def _per_entry(
    entries: Iterable[Mapping[str, Any]], check: Callable[[Mapping[str, Any]], None]
) -> EntryErrors:
    failed: EntryErrors = {}
    for entry in entries:
        try:
            check(entry)
        except SqsError as exc:
            failed[entry["Id"]] = exc
    return failed


# --- per action --------------------------------------------------------------------------


def _tags(tags: Mapping[str, str]) -> None:
    if len(tags) > limits.queue_tags_max:
        raise invalid_parameter(
            f"Too many tags: {len(tags)}. A queue can have at most {limits.queue_tags_max}."
        )
    for key, value in tags.items():
        if not 1 <= len(key) <= tag_key_length_max:
            raise invalid_parameter(f"Tag key must be 1 to {tag_key_length_max} characters.")
        if key.lower().startswith("aws:"):
            raise invalid_parameter("Tag keys starting with aws: are reserved.")
        if len(value) > tag_value_length_max:
            raise invalid_parameter(f"Tag value must be at most {tag_value_length_max} characters.")
        check_text(key, "a tag key", "InvalidParameterValue")
        check_text(value, "a tag value", "InvalidParameterValue")


def _create_queue(p: Params) -> EntryErrors:
    name: str = p["QueueName"]
    check_queue_name(name)
    attrs = parse_queue_attributes(p.get("Attributes") or {}, "CreateQueue")
    fifo_name = name.endswith(".fifo")
    if fifo_name != (attrs.get("FifoQueue", False) is True):
        raise invalid_parameter(
            "The name of a FIFO queue can only include alphanumeric characters, hyphens, "
            "or underscores, must end with .fifo suffix and be 1 to 80 in length."
        )
    check_queue_kind(attrs, fifo_name)
    _tags(p.get("tags") or {})
    return {}


def _get_queue_url(p: Params) -> EntryErrors:
    if p["QueueName"] == "":
        raise missing_parameter("QueueName")
    return {}


def _list_queues(p: Params) -> EntryErrors:
    check_int(
        "MaxResults",
        p.get("MaxResults"),
        1,
        list_results_max,
        f"MaxResults must be an integer between 1 and {list_results_max}",
    )
    return {}


def _get_queue_attributes(p: Params) -> EntryErrors:
    check_attribute_names(p.get("AttributeNames") or ())
    return {}


def _set_queue_attributes(p: Params) -> EntryErrors:
    parse_queue_attributes(p["Attributes"], "SetQueueAttributes")
    return {}


def _send_message(p: Params) -> EntryErrors:
    check_send(p)
    return {}


def _send_message_batch(p: Params) -> EntryErrors:
    entries = p["Entries"]
    check_batch(entries, "SendMessageBatchRequestEntry")
    total = sum(message_size(e) for e in entries)
    if total > limits.batch_request_bytes_max:
        raise SqsError(
            "BatchRequestTooLong",
            f"Batch requests cannot be longer than {limits.batch_request_bytes_max} bytes. "
            f"You have sent {total} bytes.",
        )
    return _per_entry(entries, check_send)


def check_message_attribute_names(names: Iterable[str]) -> None:
    """ReceiveMessage's MessageAttributeNames: names, ``All``, ``.*`` or ``prefix.*``."""
    for name in names:
        if name in ("All", ".*"):
            continue
        check_attribute_name(name[:-2] if name.endswith(".*") else name)


def check_system_attribute_names(names: Iterable[str], *, legacy: bool) -> None:
    """ReceiveMessage's AttributeNames (legacy) and MessageSystemAttributeNames."""
    for name in names:
        if name == "All" or name in SYSTEM_ATTRIBUTE_NAMES:
            continue
        if legacy and name in _QUEUE_ATTRIBUTE_NAMES:
            continue  # the legacy parameter's type is the queue attribute name list
        raise invalid_attribute_name(name)


def _receive_message(p: Params) -> EntryErrors:
    check_int(
        "MaxNumberOfMessages",
        p.get("MaxNumberOfMessages"),
        1,
        limits.receive_messages_max,
        f"Must be between 1 and {limits.receive_messages_max}, if provided",
    )
    check_int(
        "VisibilityTimeout",
        p.get("VisibilityTimeout"),
        limits.visibility_timeout_s_min,
        limits.visibility_timeout_s_max,
    )
    check_int(
        "WaitTimeSeconds",
        p.get("WaitTimeSeconds"),
        limits.receive_wait_s_min,
        limits.receive_wait_s_max,
        f"Must be >= {limits.receive_wait_s_min} and <= {limits.receive_wait_s_max}, if provided",
    )
    check_system_attribute_names(p.get("AttributeNames") or (), legacy=True)
    check_system_attribute_names(p.get("MessageSystemAttributeNames") or (), legacy=False)
    check_message_attribute_names(p.get("MessageAttributeNames") or ())
    check_token("ReceiveRequestAttemptId", p.get("ReceiveRequestAttemptId"))
    return {}


def _visibility(value: int | None) -> None:
    check_int(
        "VisibilityTimeout",
        value,
        limits.visibility_timeout_s_min,
        limits.visibility_timeout_s_max,
    )


def _change_message_visibility(p: Params) -> EntryErrors:
    _visibility(p["VisibilityTimeout"])
    return {}


def _delete_message_batch(p: Params) -> EntryErrors:
    check_batch(p["Entries"], "DeleteMessageBatchRequestEntry")
    return {}


def _change_message_visibility_batch(p: Params) -> EntryErrors:
    entries = p["Entries"]
    check_batch(entries, "ChangeMessageVisibilityBatchRequestEntry")
    return _per_entry(entries, lambda e: _visibility(e.get("VisibilityTimeout")))


def _tag_queue(p: Params) -> EntryErrors:
    if not p["Tags"]:
        raise missing_parameter("Tags")
    _tags(p["Tags"])
    return {}


def _untag_queue(p: Params) -> EntryErrors:
    if not p["TagKeys"]:
        raise missing_parameter("TagKeys")
    return {}


def _list_dead_letter_source_queues(p: Params) -> EntryErrors:
    return _list_queues(p)


def _start_message_move_task(p: Params) -> EntryErrors:
    parse_arn(p["SourceArn"], "SourceArn")
    if p.get("DestinationArn") is not None:
        parse_arn(p["DestinationArn"], "DestinationArn")
    check_int(
        "MaxNumberOfMessagesPerSecond", p.get("MaxNumberOfMessagesPerSecond"), 1, move_task_rate_max
    )
    return {}


def _list_message_move_tasks(p: Params) -> EntryErrors:
    parse_arn(p["SourceArn"], "SourceArn")
    check_int("MaxResults", p.get("MaxResults"), 1, move_tasks_listed_max)
    return {}


def _cancel_message_move_task(p: Params) -> EntryErrors:
    if not p["TaskHandle"]:
        raise missing_parameter("TaskHandle")
    return {}


def _label(label: str) -> None:
    if not _LABEL_RE.fullmatch(label):
        raise invalid_value(
            "Label",
            label,
            "Can only include alphanumeric characters, hyphens, or underscores. "
            f"1 to {permission_label_length_max} in length",
        )


def _add_permission(p: Params) -> EntryErrors:
    _label(p["Label"])
    if not p["AWSAccountIds"]:
        raise missing_parameter("AWSAccountId.1")
    if not p["Actions"]:
        raise missing_parameter("ActionName.1")
    if len(p["Actions"]) > permission_actions_max:
        raise SqsError(
            "OverLimit",
            f"{len(p['Actions'])} Actions were found, maximum allowed is {permission_actions_max}.",
        )
    for action in p["Actions"]:
        if action not in PERMISSION_ACTIONS:
            raise invalid_value(
                "ActionName",
                action,
                f"Must be one of {', '.join(sorted(PERMISSION_ACTIONS))}",
            )
    return {}


def _remove_permission(p: Params) -> EntryErrors:
    _label(p["Label"])
    return {}


def _nothing(p: Params) -> EntryErrors:
    return {}


_CHECKS: dict[str, Callable[[Params], EntryErrors]] = {
    "CreateQueue": _create_queue,
    "GetQueueUrl": _get_queue_url,
    "ListQueues": _list_queues,
    "GetQueueAttributes": _get_queue_attributes,
    "SetQueueAttributes": _set_queue_attributes,
    "DeleteQueue": _nothing,
    "PurgeQueue": _nothing,
    "SendMessage": _send_message,
    "SendMessageBatch": _send_message_batch,
    "ReceiveMessage": _receive_message,
    "DeleteMessage": _nothing,
    "DeleteMessageBatch": _delete_message_batch,
    "ChangeMessageVisibility": _change_message_visibility,
    "ChangeMessageVisibilityBatch": _change_message_visibility_batch,
    "TagQueue": _tag_queue,
    "UntagQueue": _untag_queue,
    "ListQueueTags": _nothing,
    "ListDeadLetterSourceQueues": _list_dead_letter_source_queues,
    "StartMessageMoveTask": _start_message_move_task,
    "ListMessageMoveTasks": _list_message_move_tasks,
    "CancelMessageMoveTask": _cancel_message_move_task,
    "AddPermission": _add_permission,
    "RemovePermission": _remove_permission,
}


def check_request(action: str, params: Params) -> EntryErrors:
    """Run ``action``'s rules; raise the request's error or return failed batch entries."""
    return _CHECKS[action](params)
