"""The Amazon SQS wire protocols (AWS JSON 1.0 and query/XML), sans-IO.

An HTTP server uses it like this::

    from conveyor.protocol import sqs

    try:
        sqs.verify(method, path, query, headers, body,          # only when keys are set
                   secret_for=keys.get, now_s=clock())
        req = sqs.parse_request(method, path, query, headers, body)
        result = glue(req)                                       # broker work -> dict
        resp = sqs.render_result(req.action, req.protocol, result, request_id)
    except Exception as exc:
        resp = sqs.render_error(sqs.protocol_of(headers), exc, request_id)
    # resp.status, resp.body, resp.content_type, resp.headers

Modules: :mod:`.model` (shapes of every action), :mod:`.request` (decode),
:mod:`.validate` and :mod:`.queue_attributes` (SQS's input rules), :mod:`.response`
(encode), :mod:`.results` (result builders), :mod:`.md5` (digests), :mod:`.errors`
(codes, statuses, faults), :mod:`.sigv4` (signatures), :mod:`.urls` (queue URLs, ARNs,
accounts).
"""

from __future__ import annotations

from conveyor.protocol.sqs.errors import SqsError, to_sqs_error
from conveyor.protocol.sqs.md5 import md5_of_attributes, md5_of_body
from conveyor.protocol.sqs.model import ACTIONS
from conveyor.protocol.sqs.queue_attributes import (
    attribute_string,
    check_queue_kind,
    parse_queue_attributes,
)
from conveyor.protocol.sqs.request import Protocol, SqsRequest, parse_request, protocol_of
from conveyor.protocol.sqs.response import SqsResponse, render_error, render_result
from conveyor.protocol.sqs.results import (
    batch_error_entry,
    message_result,
    send_batch_entry,
    send_result,
)
from conveyor.protocol.sqs.sigv4 import Credential, extract, verify
from conveyor.protocol.sqs.urls import (
    QueueRef,
    account_for,
    base_url,
    parse_arn,
    parse_queue_url,
    queue_arn,
    queue_url,
)
from conveyor.protocol.sqs.validate import check_send_for_queue, message_size

__all__ = [
    "ACTIONS",
    "Credential",
    "Protocol",
    "QueueRef",
    "SqsError",
    "SqsRequest",
    "SqsResponse",
    "account_for",
    "attribute_string",
    "base_url",
    "batch_error_entry",
    "check_queue_kind",
    "check_send_for_queue",
    "extract",
    "md5_of_attributes",
    "md5_of_body",
    "message_result",
    "message_size",
    "parse_arn",
    "parse_queue_attributes",
    "parse_queue_url",
    "parse_request",
    "protocol_of",
    "queue_arn",
    "queue_url",
    "render_error",
    "render_result",
    "send_batch_entry",
    "send_result",
    "to_sqs_error",
    "verify",
]
