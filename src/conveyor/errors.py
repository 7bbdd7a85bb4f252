"""Errors a client can act on.

One root, :class:`ConveyorError`. Every error carries

* ``code`` — Conveyor's stable name for it (also the native protocol's error code),
* ``retriable`` — whether the same request may succeed later unchanged,
* ``sqs_code`` / ``sqs_query_code`` / ``http_status`` — how the SQS API reports it.

::

    ConveyorError
    ├── InvalidRequest            bad input; nothing was changed
    │   ├── InvalidParameterValue
    │   ├── MissingParameter
    │   ├── InvalidAttributeName
    │   ├── InvalidAttributeValue
    │   ├── InvalidMessageContents
    │   ├── MessageTooLong
    │   ├── ReceiptHandleIsInvalid
    │   ├── MessageNotInflight
    │   ├── BatchEntryIdsNotDistinct / EmptyBatchRequest / TooManyEntriesInBatchRequest
    │   │   InvalidBatchEntryId / BatchRequestTooLong
    │   ├── UnsupportedOperation
    │   └── OverLimit
    ├── QueueDoesNotExist
    ├── QueueAlreadyExists        same name, different attributes
    ├── QueueDeletedRecently
    ├── PurgeQueueInProgress
    ├── AccessDenied / InvalidSecurity
    ├── QueueFull                 retriable: the backpressure signal
    ├── Unavailable               retriable: shutting down, not leader, not enough replicas
    │   └── CoordinatorUnavailable   the coordinator (etcd) did not answer, or failed
    └── InternalError             retriable

``ERRORS`` maps each code to its class; :func:`from_code` rebuilds an error received
over the wire.
"""

from __future__ import annotations

from typing import ClassVar


class ConveyorError(Exception):
    """Root of every error Conveyor raises on purpose."""

    code: ClassVar[str] = "InternalError"
    retriable: ClassVar[bool] = False
    sqs_code: ClassVar[str] = "InternalError"
    sqs_query_code: ClassVar[str | None] = None  # when the query protocol spells it differently
    http_status: ClassVar[int] = 500
    sender_fault: ClassVar[bool] = True

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class InvalidRequest(ConveyorError):
    code = "InvalidRequest"
    sqs_code = "InvalidParameterValue"
    http_status = 400


class InvalidParameterValue(InvalidRequest):
    code = "InvalidParameterValue"
    sqs_code = "InvalidParameterValue"


class MissingParameter(InvalidRequest):
    code = "MissingParameter"
    sqs_code = "MissingParameter"


class InvalidAttributeName(InvalidRequest):
    code = "InvalidAttributeName"
    sqs_code = "InvalidAttributeName"


class InvalidAttributeValue(InvalidRequest):
    code = "InvalidAttributeValue"
    sqs_code = "InvalidAttributeValue"


class InvalidMessageContents(InvalidRequest):
    code = "InvalidMessageContents"
    sqs_code = "InvalidMessageContents"


class MessageTooLong(InvalidRequest):
    code = "MessageTooLong"
    sqs_code = "InvalidParameterValue"


class ReceiptHandleIsInvalid(InvalidRequest):
    code = "ReceiptHandleIsInvalid"
    sqs_code = "ReceiptHandleIsInvalid"
    sqs_query_code = "ReceiptHandleIsInvalid"
    http_status = 404


class MessageNotInflight(InvalidRequest):
    code = "MessageNotInflight"
    sqs_code = "MessageNotInflight"
    sqs_query_code = "AWS.SimpleQueueService.MessageNotInflight"


class BatchEntryIdsNotDistinct(InvalidRequest):
    code = "BatchEntryIdsNotDistinct"
    sqs_code = "BatchEntryIdsNotDistinct"
    sqs_query_code = "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"


class EmptyBatchRequest(InvalidRequest):
    code = "EmptyBatchRequest"
    sqs_code = "EmptyBatchRequest"
    sqs_query_code = "AWS.SimpleQueueService.EmptyBatchRequest"


class TooManyEntriesInBatchRequest(InvalidRequest):
    code = "TooManyEntriesInBatchRequest"
    sqs_code = "TooManyEntriesInBatchRequest"
    sqs_query_code = "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"


class InvalidBatchEntryId(InvalidRequest):
    code = "InvalidBatchEntryId"
    sqs_code = "InvalidBatchEntryId"
    sqs_query_code = "AWS.SimpleQueueService.InvalidBatchEntryId"


class BatchRequestTooLong(InvalidRequest):
    code = "BatchRequestTooLong"
    sqs_code = "BatchRequestTooLong"
    sqs_query_code = "AWS.SimpleQueueService.BatchRequestTooLong"


class UnsupportedOperation(InvalidRequest):
    code = "UnsupportedOperation"
    sqs_code = "UnsupportedOperation"
    sqs_query_code = "AWS.SimpleQueueService.UnsupportedOperation"


class OverLimit(InvalidRequest):
    code = "OverLimit"
    sqs_code = "OverLimit"
    http_status = 403


class QueueDoesNotExist(ConveyorError):
    code = "QueueDoesNotExist"
    sqs_code = "QueueDoesNotExist"
    sqs_query_code = "AWS.SimpleQueueService.NonExistentQueue"
    http_status = 400


class QueueAlreadyExists(ConveyorError):
    code = "QueueAlreadyExists"
    sqs_code = "QueueNameExists"
    sqs_query_code = "QueueAlreadyExists"
    http_status = 400


class QueueDeletedRecently(ConveyorError):
    code = "QueueDeletedRecently"
    sqs_code = "QueueDeletedRecently"
    sqs_query_code = "AWS.SimpleQueueService.QueueDeletedRecently"
    http_status = 400
    retriable = True


class PurgeQueueInProgress(ConveyorError):
    code = "PurgeQueueInProgress"
    sqs_code = "PurgeQueueInProgress"
    sqs_query_code = "AWS.SimpleQueueService.PurgeQueueInProgress"
    http_status = 403
    retriable = True


class AccessDenied(ConveyorError):
    code = "AccessDenied"
    sqs_code = "AccessDenied"
    http_status = 403


class InvalidSecurity(ConveyorError):
    code = "InvalidSecurity"
    sqs_code = "InvalidSecurity"
    sqs_query_code = "AWS.SimpleQueueService.InvalidSecurity"
    http_status = 403


class QueueFull(ConveyorError):
    """The queue is at its configured depth and its overflow policy is ``reject``."""

    code = "QueueFull"
    sqs_code = "OverLimit"
    http_status = 403
    retriable = True


class Unavailable(ConveyorError):
    """The node cannot serve this now (closing, not the leader, too few replicas)."""

    code = "Unavailable"
    sqs_code = "ServiceUnavailable"
    http_status = 503
    retriable = True
    sender_fault = False


class CoordinatorUnavailable(Unavailable):
    """The coordinator (etcd) could not be reached, or answered with an error.

    Every etcd or gRPC failure surfaces as this one type (nothing etcd-specific leaks
    upward). A write that timed out may still have been applied.
    """

    code = "CoordinatorUnavailable"


class InternalError(ConveyorError):
    code = "InternalError"
    sqs_code = "InternalError"
    http_status = 500
    retriable = True
    sender_fault = False


def _all_subclasses(cls: type[ConveyorError]) -> list[type[ConveyorError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


_CLASSES = _all_subclasses(ConveyorError)[1:]  # the root shares InternalError's code
ERRORS: dict[str, type[ConveyorError]] = {c.code: c for c in _CLASSES}
assert len(ERRORS) == len(_CLASSES), "error codes must be unique"


def from_code(code: str, message: str = "") -> ConveyorError:
    """Rebuild an error received over the wire; unknown codes become InternalError."""
    cls = ERRORS.get(code, InternalError)
    return cls(message)
