"""A stand-in for the broker glue: the whole codec pipeline behind a real botocore client.

``FakeSqs.handle`` does what the HTTP server will do — verify the signature (when keys
are configured), parse, answer, render — with canned answers instead of a broker. A
``before-send`` hook plugs it into a botocore client, so boto3's own serializer, signer,
parser and exception mapping run against the codec with no socket.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import botocore.session
from botocore.awsrequest import AWSResponse
from sqs_botocore import query_model_dict

from conveyor import errors as core_errors
from conveyor.protocol import sqs
from conveyor.protocol.sqs.results import batch_error_entry, message_result, send_batch_entry

BASE = "http://localhost:9324"
ACCOUNT = "000000000000"

STORED_ATTRIBUTES: dict[str, dict[str, Any]] = {
    "color": {"DataType": "String", "StringValue": "blue"},
    "foo.size": {"DataType": "Number.int", "StringValue": "42"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff\x10"},
}
STORED_SYSTEM = {
    "SenderId": "AIDAEXAMPLE",
    "SentTimestamp": "1700000000000",
    "ApproximateReceiveCount": "2",
    "ApproximateFirstReceiveTimestamp": "1700000001000",
    "AWSTraceHeader": "Root=1-abc",
}


def glue(req: sqs.SqsRequest) -> dict[str, Any] | None:
    p = req.params
    account = sqs.account_for(req.access_key, ACCOUNT)
    if req.queue is not None and req.queue.name.startswith("missing"):
        raise core_errors.QueueDoesNotExist("The specified queue does not exist.")
    a = req.action
    if a == "CreateQueue":
        if p["QueueName"] == "exists":
            raise core_errors.QueueAlreadyExists(
                "A queue already exists with the same name and a different value for attribute VisibilityTimeout"
            )
        return {"QueueUrl": sqs.queue_url(BASE, account, p["QueueName"])}
    if a == "GetQueueUrl":
        if p["QueueName"].startswith("missing"):
            raise core_errors.QueueDoesNotExist("The specified queue does not exist.")
        return {
            "QueueUrl": sqs.queue_url(
                BASE, p.get("QueueOwnerAWSAccountId", account), p["QueueName"]
            )
        }
    if a == "ListQueues":
        prefix = p.get("QueueNamePrefix", "")
        urls = [sqs.queue_url(BASE, account, f"{prefix}{i}") for i in range(3)]
        return (
            {"QueueUrls": urls, "NextToken": "page-2"} if "MaxResults" in p else {"QueueUrls": urls}
        )
    if a == "GetQueueAttributes":
        attrs = {
            "VisibilityTimeout": "30",
            "QueueArn": sqs.queue_arn(req.region, account, req.queue.name if req.queue else ""),
            "RedrivePolicy": json.dumps(
                {
                    "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:dlq",
                    "maxReceiveCount": 3,
                }
            ),
        }
        return {"Attributes": attrs}
    if a == "SendMessage":
        if req.queue is not None and req.queue.name == "full":
            raise core_errors.QueueFull("queue is full")
        return sqs.send_result(
            "m-1",
            p["MessageBody"],
            p.get("MessageAttributes"),
            p.get("MessageSystemAttributes"),
            "100" if req.queue and req.queue.name.endswith(".fifo") else None,
        )
    if a == "SendMessageBatch":
        ok = []
        failed = [batch_error_entry(i, e, req.protocol) for i, e in req.entry_errors.items()]
        for n, e in enumerate(p["Entries"]):
            if e["Id"] in req.entry_errors:
                continue
            ok.append(
                send_batch_entry(
                    e["Id"],
                    f"m-{n}",
                    e["MessageBody"],
                    e.get("MessageAttributes"),
                    e.get("MessageSystemAttributes"),
                )
            )
        return {"Successful": ok, "Failed": failed}
    if a == "ReceiveMessage":
        system_names = [*p.get("AttributeNames", []), *p.get("MessageSystemAttributeNames", [])]
        count = p.get("MaxNumberOfMessages", 1)
        return {
            "Messages": [
                message_result(
                    message_id=f"m-{i}",
                    receipt_handle=f"rh-{i}",
                    body=f"body {i} <&> \r\n ☃",
                    system_attributes=STORED_SYSTEM,
                    message_attributes=STORED_ATTRIBUTES,
                    requested_system=system_names,
                    requested_attributes=p.get("MessageAttributeNames"),
                )
                for i in range(count)
            ]
        }
    if a in ("DeleteMessage", "ChangeMessageVisibility"):
        if p["ReceiptHandle"] == "bad":
            raise core_errors.ReceiptHandleIsInvalid(
                f'The input receipt handle "{p["ReceiptHandle"]}" is not a valid receipt handle.'
            )
        return None
    if a in ("DeleteMessageBatch", "ChangeMessageVisibilityBatch"):
        ok, failed = (
            [],
            [batch_error_entry(i, e, req.protocol) for i, e in req.entry_errors.items()],
        )
        for e in p["Entries"]:
            if e["Id"] in req.entry_errors:
                continue
            if e["ReceiptHandle"] == "bad":
                failed.append(
                    batch_error_entry(
                        e["Id"], core_errors.ReceiptHandleIsInvalid("bad handle"), req.protocol
                    )
                )
            else:
                ok.append({"Id": e["Id"]})
        return {"Successful": ok, "Failed": failed}
    if a == "ListQueueTags":
        return {"Tags": {"team": "core", "empty": ""}}
    if a == "ListDeadLetterSourceQueues":
        return {"queueUrls": [sqs.queue_url(BASE, account, "src")]}
    if a == "StartMessageMoveTask":
        return {"TaskHandle": "task-1"}
    if a == "ListMessageMoveTasks":
        return {
            "Results": [
                {
                    "TaskHandle": "task-1",
                    "Status": "RUNNING",
                    "SourceArn": p["SourceArn"],
                    "ApproximateNumberOfMessagesMoved": 3,
                    "ApproximateNumberOfMessagesToMove": 10,
                    "MaxNumberOfMessagesPerSecond": 5,
                    "StartedTimestamp": 1700000000000,
                }
            ]
        }
    if a == "CancelMessageMoveTask":
        return {"ApproximateNumberOfMessagesMoved": 7}
    if a == "PurgeQueue" and req.queue is not None and req.queue.name == "purging":
        raise core_errors.PurgeQueueInProgress(
            "Only one PurgeQueue operation on purging is allowed every 60 seconds."
        )
    return None


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        yield self._body


class FakeSqs:
    def __init__(self, secrets: dict[str, str] | None = None) -> None:
        self.secrets = secrets
        self.requests: list[sqs.SqsRequest] = []
        self.responses: list[sqs.SqsResponse] = []
        self._ids = itertools.count(1)

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> sqs.SqsResponse:
        request_id = f"req-{next(self._ids)}"
        try:
            if self.secrets is not None:
                sqs.verify(
                    method,
                    path,
                    query,
                    headers,
                    body,
                    secret_for=self.secrets.get,
                    now_s=time.time(),
                )
            req = sqs.parse_request(method, path, query, headers, body)
            self.requests.append(req)
            resp = sqs.render_result(req.action, req.protocol, glue(req), request_id)
        except Exception as exc:
            resp = sqs.render_error(sqs.protocol_of(headers), exc, request_id)
        self.responses.append(resp)
        return resp

    def before_send(self, request: Any, **kwargs: Any) -> AWSResponse:
        url = urlsplit(request.url)
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, bytes):
            body = body.read()
        headers = {
            k.lower(): (v.decode() if isinstance(v, bytes) else v)
            for k, v in request.headers.items()
        }
        headers.setdefault("host", url.netloc)
        resp = self.handle(request.method, url.path or "/", url.query, headers, body)
        out_headers = [*resp.headers, ("content-type", resp.content_type)]
        return AWSResponse(request.url, resp.status, out_headers, _Raw(resp.body))


def write_query_model(root: Path) -> Path:
    """A botocore data directory whose SQS model speaks the query protocol."""
    target = root / "sqs" / "2012-11-05"
    target.mkdir(parents=True, exist_ok=True)
    (target / "service-2.json").write_text(json.dumps(query_model_dict()))
    return root


def make_client(fake: FakeSqs, protocol: str, data_dir: Path | None = None, **kwargs: Any) -> Any:
    session = botocore.session.get_session()
    if protocol == "query":
        assert data_dir is not None
        session.get_component("data_loader").search_paths.insert(0, str(data_dir))
    options: dict[str, Any] = {
        "region_name": "eu-west-1",
        "endpoint_url": BASE,
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "secret",
    }
    options.update(kwargs)
    client = session.create_client("sqs", **options)
    assert client.meta.service_model.protocol == protocol
    client.meta.events.register("before-send.sqs", fake.before_send)
    return client
