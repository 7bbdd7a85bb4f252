"""Builders for the results the broker glue hands to :func:`response.render_result`.

They compute the digests (:mod:`.md5`) and apply ReceiveMessage's attribute selection,
so the glue cannot get those subtly wrong. Most return a plain dict in the action's
output shape. The results of the hot actions also come typed, as :class:`TypedResult`
structs whose fields are the output's members (``SendMessageResult``,
``ReceiveMessageResult`` of ``ReceivedMessage``, ``SendMessageBatchResult``,
``DeleteMessageBatchResult``): the JSON protocol encodes those in one msgspec call,
without walking the output shape (``send_result``, ``message_result``,
``send_batch_entry`` and ``batch_error_entry`` are the same results as dicts).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import msgspec

from conveyor.protocol.sqs.errors import to_sqs_error
from conveyor.protocol.sqs.md5 import md5_of_attributes, md5_of_body
from conveyor.protocol.sqs.request import Protocol
from conveyor.protocol.sqs.validate import SYSTEM_ATTRIBUTE_NAMES

AttributeMap = Mapping[str, Mapping[str, Any]]


class TypedResult(msgspec.Struct, omit_defaults=True):
    """A result as a struct: field names and types are those of ``action``'s output
    (tests check them against :mod:`.model`); fields left at their default (None) are
    absent from the response, as None values of a dict result are."""

    action: ClassVar[str]


class SendMessageResult(TypedResult, omit_defaults=True):
    action: ClassVar[str] = "SendMessage"
    MessageId: str
    MD5OfMessageBody: str
    MD5OfMessageAttributes: str | None = None
    MD5OfMessageSystemAttributes: str | None = None
    SequenceNumber: str | None = None


class ReceivedMessage(msgspec.Struct, omit_defaults=True):
    """One message of :class:`ReceiveMessageResult` (``model.MESSAGE``)."""

    MessageId: str
    ReceiptHandle: str
    MD5OfBody: str
    Body: str
    Attributes: dict[str, str] | None = None
    MD5OfMessageAttributes: str | None = None
    # values in the JSON shape: {"DataType": ..., "StringValue" or "BinaryValue": ...}
    MessageAttributes: dict[str, Mapping[str, Any]] | None = None


class ReceiveMessageResult(TypedResult, omit_defaults=True):
    action: ClassVar[str] = "ReceiveMessage"
    Messages: list[ReceivedMessage]  # no default: an empty list is rendered, as before


class SendMessageBatchResultEntry(msgspec.Struct, omit_defaults=True):
    """A success of :class:`SendMessageBatchResult` (:func:`send_batch_entry`)."""

    Id: str
    MessageId: str
    MD5OfMessageBody: str
    MD5OfMessageAttributes: str | None = None
    MD5OfMessageSystemAttributes: str | None = None
    SequenceNumber: str | None = None


class BatchResultIdEntry(msgspec.Struct):
    """A success of :class:`DeleteMessageBatchResult`."""

    Id: str


class BatchResultErrorEntry(msgspec.Struct):
    """A ``Failed`` entry of a batch result (:func:`batch_error_entry`)."""

    Id: str
    SenderFault: bool
    Code: str
    Message: str


class SendMessageBatchResult(TypedResult, omit_defaults=True):
    action: ClassVar[str] = "SendMessageBatch"
    Successful: list[SendMessageBatchResultEntry]
    Failed: list[BatchResultErrorEntry]


class DeleteMessageBatchResult(TypedResult, omit_defaults=True):
    action: ClassVar[str] = "DeleteMessageBatch"
    Successful: list[BatchResultIdEntry]
    Failed: list[BatchResultErrorEntry]


def as_dict(result: msgspec.Struct) -> dict[str, Any]:
    """A typed result as the plain dict of the same result (absent fields left out)."""
    out = msgspec.to_builtins(result, builtin_types=(bytes, bytearray, memoryview))
    assert isinstance(out, dict)
    return out


def send_message_result(
    message_id: str,
    body: str,
    attributes: AttributeMap | None = None,
    system_attributes: AttributeMap | None = None,
    sequence_number: str | None = None,
) -> SendMessageResult:
    """SendMessage's result, typed (see :func:`send_result`)."""
    return SendMessageResult(
        message_id,
        md5_of_body(body),
        md5_of_attributes(attributes) if attributes else None,
        md5_of_attributes(system_attributes) if system_attributes else None,
        sequence_number,
    )


def send_result(
    message_id: str,
    body: str,
    attributes: AttributeMap | None = None,
    system_attributes: AttributeMap | None = None,
    sequence_number: str | None = None,
) -> dict[str, Any]:
    """SendMessage's result (and, with ``Id``, a SendMessageBatch success entry)."""
    return as_dict(
        send_message_result(message_id, body, attributes, system_attributes, sequence_number)
    )


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


def batch_error_result(
    entry_id: str, error: BaseException, protocol: Protocol = "json"
) -> BatchResultErrorEntry:
    """:func:`batch_error_entry`, typed."""
    err = to_sqs_error(error)
    return BatchResultErrorEntry(entry_id, err.sender_fault, err.code_for(protocol), err.message)


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


def received_message(
    *,
    message_id: str,
    receipt_handle: str,
    body: str,
    system_attributes: Mapping[str, str] | None = None,
    message_attributes: AttributeMap | None = None,
    requested_system: Iterable[str] | None = None,
    requested_attributes: Iterable[str] | None = None,
    body_md5: str | None = None,
) -> ReceivedMessage:
    """One message of ReceiveMessage's result, typed (see :func:`message_result`).
    ``body_md5``: ``md5_of_body(body)``, when the caller has it already."""
    out = ReceivedMessage(
        message_id, receipt_handle, md5_of_body(body) if body_md5 is None else body_md5, body
    )
    if system_attributes and requested_system:
        system = select_system_attributes(requested_system, system_attributes)
        if system:
            out.Attributes = system
    if message_attributes:
        selected = select_message_attributes(requested_attributes, message_attributes)
        if selected:
            out.MessageAttributes = selected
        out.MD5OfMessageAttributes = md5_of_attributes(selected or message_attributes)
    return out


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
    return as_dict(
        received_message(
            message_id=message_id,
            receipt_handle=receipt_handle,
            body=body,
            system_attributes=system_attributes,
            message_attributes=message_attributes,
            requested_system=requested_system,
            requested_attributes=requested_attributes,
        )
    )
