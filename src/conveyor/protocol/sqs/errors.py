"""SQS errors as the wire shows them, and the table from Conveyor's errors to them.

An SQS error has two spellings. The JSON protocol names it by its shape
(``__type: com.amazonaws.sqs#QueueDoesNotExist``) and adds the query spelling in the
``x-amzn-query-error: AWS.SimpleQueueService.NonExistentQueue;Sender`` header, which
botocore prefers; the query protocol puts the query spelling in ``<Code>``. Each error
also has an HTTP status and a fault (``Sender``: the request was bad; ``Receiver``: the
service failed).

::

    Exception
    └── SqsError            code, query_code, status, sender_fault, namespace, message

:data:`SPECS` holds every code this codec emits. :func:`to_sqs_error` turns a
:class:`conveyor.errors.ConveyorError` (or any exception) into an :class:`SqsError`;
the classes carry ``sqs_code`` and this table supplies the rest, so the two cannot
drift apart unnoticed (a test compares them).
"""

from __future__ import annotations

from typing import NamedTuple

from conveyor import errors as core_errors

SQS_NAMESPACE = "com.amazonaws.sqs"
COMMON_NAMESPACE = "com.amazon.coral.service"


class ErrorSpec(NamedTuple):
    code: str  # the JSON protocol's name (the model's shape name)
    query_code: str  # the query protocol's <Code>, and x-amzn-query-error's first part
    status: int
    sender_fault: bool = True
    namespace: str = SQS_NAMESPACE


def _spec(
    code: str,
    query_code: str | None = None,
    status: int = 400,
    sender_fault: bool = True,
    namespace: str = SQS_NAMESPACE,
) -> ErrorSpec:
    return ErrorSpec(code, query_code or code, status, sender_fault, namespace)


_SPEC_LIST = [
    # --- errors the SQS model declares -------------------------------------------
    _spec("BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"),
    _spec("BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong"),
    _spec("EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest"),
    _spec("InvalidAddress"),
    _spec("InvalidAttributeName"),
    _spec("InvalidAttributeValue"),
    _spec("InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId"),
    _spec("InvalidMessageContents"),
    _spec("InvalidSecurity", "AWS.SimpleQueueService.InvalidSecurity", 403),
    _spec("MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight"),
    _spec("OverLimit", status=403),
    _spec("PurgeQueueInProgress", "AWS.SimpleQueueService.PurgeQueueInProgress", 403),
    _spec("QueueDeletedRecently", "AWS.SimpleQueueService.QueueDeletedRecently"),
    _spec("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"),
    _spec("QueueNameExists", "QueueAlreadyExists"),
    _spec("ReceiptHandleIsInvalid", status=404),
    _spec("RequestThrottled", status=403),
    _spec("ResourceNotFoundException", status=404),
    _spec("TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"),
    _spec("UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation"),
    # --- errors common to AWS query/JSON services ---------------------------------
    _spec("InvalidParameterValue"),
    _spec("InvalidParameterCombination"),
    _spec("MissingParameter"),
    _spec("InvalidAction", namespace=COMMON_NAMESPACE),
    _spec("MissingAction", namespace=COMMON_NAMESPACE),
    _spec("MalformedQueryString", status=404, namespace=COMMON_NAMESPACE),
    _spec("SerializationException", namespace=COMMON_NAMESPACE),
    _spec("UnknownOperationException", namespace=COMMON_NAMESPACE),
    _spec("AccessDenied", status=403, namespace=COMMON_NAMESPACE),
    _spec("InvalidClientTokenId", status=403, namespace=COMMON_NAMESPACE),
    _spec("SignatureDoesNotMatch", status=403, namespace=COMMON_NAMESPACE),
    _spec("IncompleteSignature", namespace=COMMON_NAMESPACE),
    _spec("MissingAuthenticationToken", status=403, namespace=COMMON_NAMESPACE),
    _spec("RequestExpired", namespace=COMMON_NAMESPACE),
    _spec("InternalError", status=500, sender_fault=False, namespace=COMMON_NAMESPACE),
    _spec("ServiceUnavailable", status=503, sender_fault=False, namespace=COMMON_NAMESPACE),
]

SPECS: dict[str, ErrorSpec] = {s.code: s for s in _SPEC_LIST}
assert len(SPECS) == len(_SPEC_LIST), "SQS error codes must be unique"


class SqsError(Exception):
    """An error answered to an SQS client."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        query_code: str | None = None,
        status: int | None = None,
        sender_fault: bool | None = None,
        namespace: str | None = None,
    ) -> None:
        spec = SPECS.get(code)
        super().__init__(message)
        self.code = code
        self.message = message
        self.query_code = query_code or (spec.query_code if spec else code)
        self.status = status or (spec.status if spec else 400)
        if sender_fault is None:
            sender_fault = spec.sender_fault if spec else True
        self.sender_fault = sender_fault
        self.namespace = namespace or (spec.namespace if spec else SQS_NAMESPACE)

    @property
    def fault(self) -> str:
        return "Sender" if self.sender_fault else "Receiver"

    @property
    def json_type(self) -> str:
        return f"{self.namespace}#{self.code}"

    def code_for(self, protocol: str) -> str:
        """The code a client of ``protocol`` sees (``json`` or ``query``)."""
        return self.query_code if protocol == "query" else self.code

    def __repr__(self) -> str:
        return f"SqsError({self.code!r}, {self.message!r})"


def to_sqs_error(exc: BaseException) -> SqsError:
    """The SQS error for any exception; unknown exceptions are an InternalError."""
    if isinstance(exc, SqsError):
        return exc
    if isinstance(exc, core_errors.ConveyorError):
        spec = SPECS.get(exc.sqs_code)
        if spec is None:
            return SqsError(
                exc.sqs_code,
                exc.message,
                query_code=exc.sqs_query_code or exc.sqs_code,
                status=exc.http_status,
                sender_fault=exc.sender_fault,
            )
        return SqsError(spec.code, exc.message)
    return SqsError("InternalError", "We encountered an internal error. Please try again.")


# --- convenience constructors for the errors this codec raises most ---------------


def invalid_parameter(message: str) -> SqsError:
    return SqsError("InvalidParameterValue", message)


def invalid_value(name: str, value: object, reason: str) -> SqsError:
    """AWS's wording: ``Value <v> for parameter <name> is invalid. Reason: <reason>.``"""
    return SqsError(
        "InvalidParameterValue",
        f"Value {value} for parameter {name} is invalid. Reason: {reason}.",
    )


def missing_parameter(name: str) -> SqsError:
    return SqsError("MissingParameter", f"The request must contain the parameter {name}.")


def invalid_attribute_name(name: str) -> SqsError:
    return SqsError("InvalidAttributeName", f"Unknown Attribute {name}.")


def invalid_attribute_value(name: str, reason: str = "") -> SqsError:
    tail = f" Reason: {reason}" if reason else ""
    return SqsError("InvalidAttributeValue", f"Invalid value for the parameter {name}.{tail}")
