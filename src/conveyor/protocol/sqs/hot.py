"""A typed decode of the hot actions' JSON requests: the short way through the codec.

SendMessage, ReceiveMessage and DeleteMessage (and the batch forms of sending and
deleting) are most of an SQS server's requests. Their JSON bodies are decoded straight
into msgspec structs (one call, no dict walked against the model) and checked by the
same rules :mod:`.validate` applies. That is all
this module decides: whether a request is one of those, well-formed and valid, in its
simple form. If it is, :func:`decode` returns the struct, whose fields hold exactly
the parameters :func:`.request.parse_request` would have returned (an absent or
``null`` member is ``None``), and which :mod:`.validate` would pass. If anything is
off — the JSON, a type, a range, a rule, or a part this path leaves alone (message
attributes) — it returns None, and the caller takes the generic path,
:func:`.request.parse_request`, which gives the error, or the result, it always gave.
So no error is ever raised here, and the errors clients see cannot drift.

What the structs check against what the generic path checks:

* a member's JSON type: msgspec's, as strict as ``_from_json`` (a ``str`` takes only
  strings, an ``int`` only integers, not ``true`` or ``1.0``); a string's UTF-8 is
  checked by the same msgspec code either way; unknown members, which the generic path
  ignores, send a request the generic way (see :class:`HotRequest`); when a member is
  repeated, both keep the last value (the struct may also reject an earlier one, which
  only sends the request the generic way);
* integers: the action's range (``msgspec.Meta``), narrower than the int32 range the
  generic path checks first; lists: at most ``request.list_items_max`` items, no
  ``null`` items (the generic path drops those: here they send it the generic way);
* the rules of :func:`.validate.check_request`, in :func:`_send_ok`,
  :func:`_receive_ok`, :func:`_send_batch_ok` and :func:`.validate.batch_ids_ok`; a
  batch takes this path only when none of its entries fails on its own (else the
  generic path reports those in ``Failed``).

The character check of a message body is skipped when it cannot fail: msgspec rejects
raw control characters inside JSON strings, so an ASCII body of a JSON text without a
backslash (no escapes) has none of the characters SQS refuses (tests pin that msgspec
behaviour).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

from conveyor import limits
from conveyor.protocol.sqs.charset import first_bad_character
from conveyor.protocol.sqs.errors import SqsError
from conveyor.protocol.sqs.model import TARGET_PREFIX
from conveyor.protocol.sqs.request import list_items_max
from conveyor.protocol.sqs.validate import (
    batch_ids_ok,
    check_message_attribute_names,
    check_system_attribute_names,
    token_ok,
)

__all__ = [
    "DeleteMessageBatchIn",
    "DeleteMessageIn",
    "HotRequest",
    "ReceiveMessageIn",
    "SendMessageBatchIn",
    "SendMessageIn",
    "decode",
]

_Names = Annotated[list[str], msgspec.Meta(max_length=list_items_max)]


class HotRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The parameters of a hot action's request (``action`` names it).

    Unknown members are refused (the generic path ignores them): msgspec skips an
    unknown member without checking that its strings are UTF-8, and the generic path's
    decode does check (and fails), so a request with one goes the generic way."""

    action: ClassVar[str]
    QueueUrl: str


_Delay = Annotated[int, msgspec.Meta(ge=limits.delay_s_min, le=limits.delay_s_max)]


class SendMessageIn(HotRequest):
    action: ClassVar[str] = "SendMessage"
    MessageBody: str
    DelaySeconds: _Delay | None = None
    # present (not null): the generic path, which types and checks attributes
    MessageAttributes: Any = None
    MessageSystemAttributes: Any = None
    MessageDeduplicationId: str | None = None
    MessageGroupId: str | None = None


class SendBatchEntryIn(msgspec.Struct, forbid_unknown_fields=True):
    """An entry of :class:`SendMessageBatchIn`: :class:`SendMessageIn`'s members, an id."""

    Id: str
    MessageBody: str
    DelaySeconds: _Delay | None = None
    MessageAttributes: Any = None
    MessageSystemAttributes: Any = None
    MessageDeduplicationId: str | None = None
    MessageGroupId: str | None = None


class SendMessageBatchIn(HotRequest):
    action: ClassVar[str] = "SendMessageBatch"
    Entries: Annotated[list[SendBatchEntryIn], msgspec.Meta(max_length=list_items_max)]


class ReceiveMessageIn(HotRequest):
    action: ClassVar[str] = "ReceiveMessage"
    AttributeNames: _Names | None = None
    MessageSystemAttributeNames: _Names | None = None
    MessageAttributeNames: _Names | None = None
    MaxNumberOfMessages: (
        Annotated[int, msgspec.Meta(ge=1, le=limits.receive_messages_max)] | None
    ) = None
    VisibilityTimeout: (
        Annotated[
            int,
            msgspec.Meta(ge=limits.visibility_timeout_s_min, le=limits.visibility_timeout_s_max),
        ]
        | None
    ) = None
    WaitTimeSeconds: (
        Annotated[int, msgspec.Meta(ge=limits.receive_wait_s_min, le=limits.receive_wait_s_max)]
        | None
    ) = None
    ReceiveRequestAttemptId: str | None = None


class DeleteMessageIn(HotRequest):
    action: ClassVar[str] = "DeleteMessage"
    ReceiptHandle: str


class DeleteBatchEntryIn(msgspec.Struct, forbid_unknown_fields=True):
    Id: str
    ReceiptHandle: str


class DeleteMessageBatchIn(HotRequest):
    action: ClassVar[str] = "DeleteMessageBatch"
    Entries: Annotated[list[DeleteBatchEntryIn], msgspec.Meta(max_length=list_items_max)]


def _send_size(p: SendMessageIn | SendBatchEntryIn, escapes: bool) -> int | None:
    """``validate.check_send`` would pass (message attributes absent): the message's
    size (``validate.message_size``), else None. ``escapes``: the JSON text has a
    backslash."""
    if p.MessageAttributes is not None or p.MessageSystemAttributes is not None:
        return None
    body = p.MessageBody
    if not body:
        return None
    if body.isascii():
        size = len(body)
        # an escape in the text may have made a control character; else none can be
        if escapes and first_bad_character(body) is not None:
            return None
    else:
        if first_bad_character(body) is not None:
            return None
        size = len(body.encode("utf-8"))
    if (
        size <= limits.message_size_bytes_max
        and token_ok(p.MessageGroupId)
        and token_ok(p.MessageDeduplicationId)
    ):
        return size
    return None


def _send_ok(p: SendMessageIn, raw: bytes) -> bool:
    return _send_size(p, raw.find(b"\\") >= 0) is not None


def _send_batch_ok(p: SendMessageBatchIn, raw: bytes) -> bool:
    """``validate``'s SendMessageBatch rules would pass, and no entry would fail."""
    entries = p.Entries
    if not batch_ids_ok([e.Id for e in entries]):
        return False
    escapes = raw.find(b"\\") >= 0
    total = 0
    for e in entries:
        size = _send_size(e, escapes)
        if size is None:
            return False
        total += size
    return total <= limits.batch_request_bytes_max


def _receive_ok(p: ReceiveMessageIn) -> bool:
    """``validate``'s ReceiveMessage rules would pass (the integers' ranges are the
    struct's)."""
    try:
        if p.AttributeNames:
            check_system_attribute_names(p.AttributeNames, legacy=True)
        if p.MessageSystemAttributeNames:
            check_system_attribute_names(p.MessageSystemAttributeNames, legacy=False)
        if p.MessageAttributeNames:
            check_message_attribute_names(p.MessageAttributeNames)
    except SqsError:
        return False
    return token_ok(p.ReceiveRequestAttemptId)


_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    TARGET_PREFIX + cls.action: msgspec.json.Decoder(cls)
    for cls in (
        SendMessageIn,
        ReceiveMessageIn,
        DeleteMessageIn,
        SendMessageBatchIn,
        DeleteMessageBatchIn,
    )
}


def decode(target: str | None, body: bytes) -> HotRequest | None:
    """The typed, checked parameters of a hot action's JSON request (``target``: its
    ``X-Amz-Target``), or None: not a hot action, or not one this path can answer the
    way the generic path would (see the module's docstring)."""
    decoder = _DECODERS.get(target) if target is not None else None
    if decoder is None:
        return None
    try:
        p = decoder.decode(body)
    except Exception:  # malformed JSON, a type, a range, bad UTF-8: the generic path says
        return None
    cls = type(p)
    if cls is SendMessageIn:
        return p if _send_ok(p, body) else None
    if cls is ReceiveMessageIn:
        return p if _receive_ok(p) else None
    if cls is SendMessageBatchIn:
        return p if _send_batch_ok(p, body) else None
    if cls is DeleteMessageBatchIn:
        return p if batch_ids_ok([e.Id for e in p.Entries]) else None
    return p  # type: ignore[no-any-return]  # DeleteMessage has no rules of its own
