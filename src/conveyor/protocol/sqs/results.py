"""Builders for the result dicts the broker glue hands to :func:`response.render_result`.

They compute the digests (:mod:`.md5`) and apply ReceiveMessage's attribute selection,
so the glue cannot get those subtly wrong. Each returns a plain dict in the action's
output shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from conveyor.protocol.sqs.errors import to_sqs_error
from conveyor.protocol.sqs.md5 import md5_of_attributes, md5_of_body
from conveyor.protocol.sqs.request import Protocol
from conveyor.protocol.sqs.validate import SYSTEM_ATTRIBUTE_NAMES

AttributeMap = Mapping[str, Mapping[str, Any]]


def send_result(
    message_id: str,
    body: str,
    attributes: AttributeMap | None = None,
    system_attributes: AttributeMap | None = None,
    sequence_number: str | None = None,
) -> dict[str, Any]:
    """SendMessage's result (and, with ``Id``, a SendMessageBatch success entry)."""
    out: dict[str, Any] = {"MessageId": message_id, "MD5OfMessageBody": md5_of_body(body)}
    digest = md5_of_attributes(attributes)
    if digest is not None:
        out["MD5OfMessageAttributes"] = digest
    digest = md5_of_attributes(system_attributes)
    if digest is not None:
        out["MD5OfMessageSystemAttributes"] = digest
    if sequence_number is not None:
        out["SequenceNumber"] = sequence_number
    return out


def send_batch_entry(
    entry_id: str,
    message_id: str,
    body: str,
    attributes: AttributeMap | None = None,
    system_attributes: AttributeMap | None = None,
    sequence_number: str | None = None,
) -> dict[str, Any]:
    return {
        "Id": entry_id,
        **send_result(message_id, body, attributes, system_attributes, sequence_number),
    }


def batch_error_entry(
    entry_id: str, error: BaseException, protocol: Protocol = "json"
) -> dict[str, Any]:
    """A ``Failed`` entry of any batch result, from the error that entry met."""
    err = to_sqs_error(error)
    return {
        "Id": entry_id,
        "SenderFault": err.sender_fault,
        "Code": err.code_for(protocol),
        "Message": err.message,
    }


def wants_all(names: Iterable[str] | None) -> bool:
    return any(name in ("All", ".*") for name in names or ())


def select_message_attributes(
    requested: Iterable[str] | None, attributes: AttributeMap
) -> dict[str, Mapping[str, Any]]:
    """The message attributes ReceiveMessage returns: ``All``/``.*``, names, ``prefix.*``."""
    wanted = list(requested or ())
    if not wanted or not attributes:
        return {}
    if wants_all(wanted):
        return dict(attributes)
    exact = {name for name in wanted if not name.endswith(".*")}
    prefixes = tuple(name[:-1] for name in wanted if name.endswith(".*"))  # keep the "."
    return {
        name: value
        for name, value in attributes.items()
        if name in exact or (prefixes and name.startswith(prefixes))
    }


def select_system_attributes(
    requested: Iterable[str] | None, system: Mapping[str, str]
) -> dict[str, str]:
    """The system attributes ReceiveMessage returns, from AttributeNames and
    MessageSystemAttributeNames together (``All`` selects every one)."""
    wanted = set(requested or ())
    if not wanted or not system:
        return {}
    if "All" in wanted:
        return {k: v for k, v in system.items() if k in SYSTEM_ATTRIBUTE_NAMES}
    return {k: v for k, v in system.items() if k in wanted}


def message_result(
    *,
    message_id: str,
    receipt_handle: str,
    body: str,
    system_attributes: Mapping[str, str] | None = None,
    message_attributes: AttributeMap | None = None,
    requested_system: Iterable[str] | None = None,
    requested_attributes: Iterable[str] | None = None,
) -> dict[str, Any]:
    """One message of ReceiveMessage's result.

    ``system_attributes`` are all the message's system attributes as strings
    (``SentTimestamp`` in epoch milliseconds, ``ApproximateReceiveCount``, ...);
    ``message_attributes`` all its message attributes. Only the requested ones are
    returned. ``MD5OfMessageAttributes`` is the digest of the attributes returned (what
    SDKs check); when none are returned but the message has some, of all of them.
    """
    out: dict[str, Any] = {
        "MessageId": message_id,
        "ReceiptHandle": receipt_handle,
        "MD5OfBody": md5_of_body(body),
        "Body": body,
    }
    system = select_system_attributes(requested_system, system_attributes or {})
    if system:
        out["Attributes"] = system
    attributes = message_attributes or {}
    selected = select_message_attributes(requested_attributes, attributes)
    if selected:
        out["MessageAttributes"] = selected
    digest = md5_of_attributes(selected or attributes)
    if digest is not None:
        out["MD5OfMessageAttributes"] = digest
    return out
