"""Hand-written HTTP requests: bad input answered with AWS's errors, and nothing changed."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from sqs_server_helpers import json_call, qname, query_call, raw


def count(server: Any, url: str) -> int:
    resp = json_call(
        server.url,
        "GetQueueAttributes",
        {"QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages"]},
    )
    assert resp.status == 200, resp.body
    return int(resp.json()["Attributes"]["ApproximateNumberOfMessages"])


@pytest.fixture
def queue(server: Any) -> str:
    resp = json_call(server.url, "CreateQueue", {"QueueName": qname("raw")})
    assert resp.status == 200
    url: str = resp.json()["QueueUrl"]
    return url


def json_error(resp: Any) -> tuple[int, str, str]:
    assert resp.headers["content-type"] == "application/x-amz-json-1.0"
    assert resp.headers["x-amzn-requestid"]
    return (
        resp.status,
        resp.json()["__type"].split("#")[1],
        resp.headers.get("x-amzn-query-error", ""),
    )


def xml_error(resp: Any) -> tuple[int, str]:
    assert resp.headers["content-type"] == "text/xml"
    text = resp.text
    assert text.startswith('<?xml version="1.0"?><ErrorResponse')
    assert "<RequestId>" in text
    return resp.status, text.split("<Code>")[1].split("</Code>")[0]


def test_json_errors(server: Any, queue: str) -> None:
    url = server.url
    assert json_error(json_call(url, "SendMessage", None, b"{not json")) == (
        400,
        "SerializationException",
        "SerializationException;Sender",
    )
    assert json_error(json_call(url, "SendMessage", None, b"[1, 2]"))[:2] == (
        400,
        "SerializationException",
    )
    assert json_error(json_call(url, "Fly", {}))[:2] == (400, "UnknownOperationException")
    assert json_error(json_call(url, "SendMessage", {"QueueUrl": queue}))[:2] == (
        400,
        "MissingParameter",
    )
    assert json_error(
        json_call(url, "ReceiveMessage", {"QueueUrl": queue, "MaxNumberOfMessages": "ten"})
    )[:2] == (400, "SerializationException")
    assert json_error(
        json_call(url, "SendMessage", {"QueueUrl": queue, "MessageBody": "bad \u0001"})
    ) == (400, "InvalidMessageContents", "InvalidMessageContents;Sender")
    assert json_error(
        json_call(url, "SendMessage", {"QueueUrl": queue, "MessageBody": "x" * (1024 * 1024 + 1)})
    )[:2] == (400, "InvalidParameterValue")
    entries = [{"Id": f"e{i}", "MessageBody": "x"} for i in range(11)]
    assert json_error(
        json_call(url, "SendMessageBatch", {"QueueUrl": queue, "Entries": entries})
    ) == (
        400,
        "TooManyEntriesInBatchRequest",
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest;Sender",
    )
    dup = [{"Id": "same", "MessageBody": "x"}] * 2
    assert json_error(json_call(url, "SendMessageBatch", {"QueueUrl": queue, "Entries": dup}))[
        :2
    ] == (400, "BatchEntryIdsNotDistinct")
    missing = f"{queue}-missing"
    assert json_error(json_call(url, "SendMessage", {"QueueUrl": missing, "MessageBody": "x"})) == (
        400,
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue;Sender",
    )
    assert json_error(
        json_call(url, "DeleteMessage", {"QueueUrl": queue, "ReceiptHandle": "AAAA"})
    )[:2] == (404, "ReceiptHandleIsInvalid")
    assert count(server, queue) == 0


def test_query_errors(server: Any, queue: str) -> None:
    url = server.url
    assert xml_error(query_call(url, "Version=2012-11-05")) == (400, "MissingAction")
    assert xml_error(query_call(url, "Action=Fly")) == (400, "InvalidAction")
    assert xml_error(query_call(url, b"Action=SendMessage&MessageBody=%FF%FE")) == (
        404,
        "MalformedQueryString",
    )
    # an XML document where a form belongs is not a request
    assert xml_error(query_call(url, b"<SendMessage><Body>x</Body></SendMessage>")) == (
        400,
        "MissingAction",
    )
    q = quote(queue, safe="")
    assert xml_error(
        query_call(url, f"Action=ReceiveMessage&QueueUrl={q}&MaxNumberOfMessages=ten")
    ) == (400, "InvalidParameterValue")
    form = f"Action=SendMessageBatch&QueueUrl={q}" + "".join(
        f"&SendMessageBatchRequestEntry.{i}.Id=e{i}&SendMessageBatchRequestEntry.{i}.MessageBody=x"
        for i in range(1, 12)
    )
    assert xml_error(query_call(url, form)) == (
        400,
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
    )
    assert xml_error(
        query_call(url, f"Action=SendMessage&QueueUrl={q}&MessageBody={quote(chr(0xFFFF))}")
    ) == (400, "InvalidMessageContents")
    assert xml_error(query_call(url, f"Action=GetQueueUrl&QueueName={qname('never')}")) == (
        400,
        "AWS.SimpleQueueService.NonExistentQueue",
    )
    assert count(server, queue) == 0


def test_query_to_queue_url_and_get(server: Any, queue: str) -> None:
    path = "/" + "/".join(queue.rsplit("/", 2)[-2:])
    sent = query_call(server.url, "Action=SendMessage&MessageBody=hello%20there", path=path)
    assert sent.status == 200, sent.text
    assert "<SendMessageResult><MD5OfMessageBody>" in sent.text
    assert "<MessageId>" in sent.text
    assert "<MD5OfMessageBody>" in sent.text
    got = query_call(
        server.url, "Action=ReceiveMessage&AttributeName.1=All", path=path, method="GET"
    )
    assert got.status == 200
    assert "<Body>hello there</Body>" in got.text
    assert "<Name>ApproximateReceiveCount</Name><Value>1</Value>" in got.text
    listed = query_call(server.url, "Action=ListQueues&Version=2012-11-05", method="GET")
    assert f"<QueueUrl>{queue}</QueueUrl>" in listed.text


def test_oversized_request_is_refused(server: Any, queue: str) -> None:
    body = json.dumps({"QueueUrl": queue, "MessageBody": "x" * (3 * 1024 * 1024)}).encode()
    resp = json_call(server.url, "SendMessage", None, body)
    # refused by the HTTP layer before any SQS decoding (it bounds bodies at 2 MiB)
    assert resp.status in (400, 413), resp.body
    assert count(server, queue) == 0


def test_not_found_paths_and_keep_alive(server: Any) -> None:
    # a request to a path that names no queue, without an action, is a query-protocol error
    resp = raw(server.url, "GET", "/some/deep/path")
    assert resp.status == 400
    assert "MissingAction" in resp.text
