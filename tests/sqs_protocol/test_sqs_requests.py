"""Requests as botocore serializes them, in both protocols, decode to what the user passed."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
import sqs_botocore as bc
from sqs_samples import REQUESTS, URL

from conveyor.protocol import sqs
from conveyor.protocol.sqs.model import ACTIONS

PROTOCOLS = ["json", "query"]


def decode(protocol: str, action: str, params: dict[str, Any]) -> sqs.SqsRequest:
    request = bc.serialize(protocol, action, params)
    return sqs.parse_request(
        request["method"], request["url_path"], "", bc.http_headers(request), request["body"]
    )


def test_every_action_has_a_sample() -> None:
    assert set(REQUESTS) == set(ACTIONS)
    assert set(ACTIONS) == set(bc.json_service_model().operation_names)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("action", sorted(REQUESTS))
def test_botocore_request_decodes_to_its_parameters(protocol: str, action: str) -> None:
    req = decode(protocol, action, REQUESTS[action])
    assert req.action == action
    assert req.protocol == protocol
    assert req.params == REQUESTS[action]
    assert req.entry_errors == {}
    if "QueueUrl" in REQUESTS[action]:
        assert req.queue is not None and req.queue.account == "000000000000"
        assert req.queue_url == REQUESTS[action]["QueueUrl"]
    else:
        assert req.queue is None


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_empty_lists_and_maps(protocol: str) -> None:
    req = decode(protocol, "GetQueueAttributes", {"QueueUrl": URL, "AttributeNames": []})
    assert req.params.get("AttributeNames", []) == []
    req = decode(protocol, "CreateQueue", {"QueueName": "q", "Attributes": {}})
    assert req.params.get("Attributes", {}) == {}


def test_query_with_member_names_as_the_json_model_serializes_them() -> None:
    # botocore's query serializer run on today's JSON-only model uses the members' own
    # names (Entries.1.Id, MessageAttributes.1.key); they decode the same.
    import botocore.serialize

    serializer = botocore.serialize.create_serializer("query")
    params = REQUESTS["SendMessageBatch"]
    request = serializer.serialize_to_request(
        params, bc.json_service_model().operation_model("SendMessageBatch")
    )
    body = urlencode(request["body"]).encode()
    assert b"Entries.1.Id" in body and b"MessageAttributes.1.key" in body
    req = sqs.parse_request(
        "POST", "/", "", {"content-type": "application/x-www-form-urlencoded"}, body
    )
    assert req.params == params


def test_query_posted_to_the_queue_url() -> None:
    body = b"Action=SendMessage&Version=2012-11-05&MessageBody=hi"
    req = sqs.parse_request("POST", "/123456789012/orders", "", {"host": "sqs.local:9324"}, body)
    assert req.queue == sqs.QueueRef("123456789012", "orders")
    assert req.queue_url == "http://sqs.local:9324/123456789012/orders"
    assert req.params["QueueUrl"] == req.queue_url


def test_query_by_get_with_query_string() -> None:
    query = (
        "Action=ReceiveMessage&MaxNumberOfMessages=5&AttributeName.1=All&QueueUrl="
        + URL.replace(":", "%3A").replace("/", "%2F")
    )
    req = sqs.parse_request("GET", "/", query, {}, b"")
    assert req.params == {"QueueUrl": URL, "MaxNumberOfMessages": 5, "AttributeNames": ["All"]}


def test_query_list_indices_are_sorted_numerically_and_gaps_tolerated() -> None:
    body = (
        "Action=DeleteMessageBatch&QueueUrl="
        + URL
        + "&DeleteMessageBatchRequestEntry.10.Id=j&DeleteMessageBatchRequestEntry.10.ReceiptHandle=r10"
        + "&DeleteMessageBatchRequestEntry.2.Id=b&DeleteMessageBatchRequestEntry.2.ReceiptHandle=r2"
    ).encode()
    req = sqs.parse_request("POST", "/", "", {}, body)
    assert [e["Id"] for e in req.params["Entries"]] == ["b", "j"]


def test_form_plus_and_percent_encoding() -> None:
    body = b"Action=SendMessage&QueueUrl=" + URL.encode() + b"&MessageBody=a+b%2Bc%26d%E2%98%83"
    req = sqs.parse_request("POST", "/", "", {}, body)
    assert req.params["MessageBody"] == "a b+c&d☃"


def test_region_and_access_key_come_from_the_signature() -> None:
    headers = {
        "X-Amz-Target": "AmazonSQS.ListQueues",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": "AWS4-HMAC-SHA256 Credential=123456789012/20240101/eu-central-1/sqs/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=00",
        "X-Amz-Date": "20240101T000000Z",
    }
    req = sqs.parse_request("POST", "/", "", headers, b"{}")
    assert (req.region, req.access_key) == ("eu-central-1", "123456789012")
    assert sqs.account_for(req.access_key, "000000000000") == "123456789012"
    unsigned = sqs.parse_request("POST", "/", "", {"x-amz-target": "AmazonSQS.ListQueues"}, b"")
    assert (unsigned.region, unsigned.access_key) == ("us-east-1", None)
    assert sqs.account_for(unsigned.access_key, "000000000000") == "000000000000"
    assert sqs.account_for("AKIDEXAMPLE", "000000000000") == "000000000000"


def test_json_ignores_unknown_members_and_nulls() -> None:
    body = b'{"QueueUrl": "' + URL.encode() + b'", "MaxNumberOfMessages": null, "Bogus": 1}'
    req = sqs.parse_request("POST", "/", "", {"x-amz-target": "AmazonSQS.ReceiveMessage"}, body)
    assert req.params == {"QueueUrl": URL}


def test_batch_entry_failures_are_reported_per_entry() -> None:
    params = {
        "QueueUrl": URL,
        "Entries": [
            {"Id": "ok", "MessageBody": "fine"},
            {"Id": "badchar", "MessageBody": "bell \x07"},
            {"Id": "baddelay", "MessageBody": "x", "DelaySeconds": 901},
            {
                "Id": "badattr",
                "MessageBody": "x",
                "MessageAttributes": {"AWS.x": {"DataType": "String", "StringValue": "v"}},
            },
        ],
    }
    for protocol in PROTOCOLS:
        req = decode(protocol, "SendMessageBatch", params)
        assert {k: v.code for k, v in req.entry_errors.items()} == {
            "badchar": "InvalidMessageContents",
            "baddelay": "InvalidParameterValue",
            "badattr": "InvalidParameterValue",
        }
    req = decode(
        "json",
        "ChangeMessageVisibilityBatch",
        {
            "QueueUrl": URL,
            "Entries": [
                {"Id": "a", "ReceiptHandle": "h", "VisibilityTimeout": 43201},
                {"Id": "b", "ReceiptHandle": "h"},
            ],
        },
    )
    assert list(req.entry_errors) == ["a"]
