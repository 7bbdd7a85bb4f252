"""Bad input gets SQS's error code, in both protocols, and nothing else."""

from __future__ import annotations

import json
from typing import Any

import botocore.serialize
import pytest
import sqs_botocore as bc
from sqs_samples import URL

from conveyor.protocol import sqs
from conveyor.protocol.sqs.errors import SqsError

JSON = {"content-type": "application/x-amz-json-1.0"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


def json_error(action: str, body: bytes | str) -> SqsError:
    raw = body.encode() if isinstance(body, str) else body
    with pytest.raises(SqsError) as info:
        sqs.parse_request("POST", "/", "", {**JSON, "x-amz-target": f"AmazonSQS.{action}"}, raw)
    return info.value


def form_error(body: bytes | str, method: str = "POST", query: str = "") -> SqsError:
    raw = body.encode() if isinstance(body, str) else body
    with pytest.raises(SqsError) as info:
        sqs.parse_request(method, "/", query, FORM, raw)
    return info.value


def error_in(protocol: str, action: str, params: dict[str, Any]) -> SqsError:
    """The error for a request botocore builds (without its client-side validation)."""
    serializer = botocore.serialize.create_serializer(protocol, include_validation=False)
    request = serializer.serialize_to_request(params, bc.operation(protocol, action))
    body = request["body"]
    if isinstance(body, dict):
        from urllib.parse import urlencode

        body = urlencode(body).encode()
    with pytest.raises(SqsError) as info:
        sqs.parse_request("POST", "/", "", bc.http_headers({**request, "body": body}), body)
    return info.value


# --- malformed requests -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"QueueUrl": ',
        "[1, 2]",
        '"text"',
        "<SendMessage><QueueUrl>x</QueueUrl></SendMessage>",
        b"\xff\xfe{}",
        '{"QueueUrl": "' + URL + '", "MessageBody": "x",}',
        b'{"QueueUrl": "' + URL.encode() + b'", "MessageBody": "\xff"}',  # not UTF-8
        b'{"QueueUrl": "' + URL.encode() + b'", "MessageBody": "x", "Other": "\xc3"}',
    ],
)
def test_malformed_json(body: str | bytes) -> None:
    assert json_error("SendMessage", body).code == "SerializationException"


@pytest.mark.parametrize(
    "params",
    [
        {"QueueUrl": URL, "MessageBody": 5},
        {"QueueUrl": 1, "MessageBody": "x"},
        {"QueueUrl": URL, "MessageBody": "x", "DelaySeconds": "10"},
        {"QueueUrl": URL, "MessageBody": "x", "DelaySeconds": True},
        {"QueueUrl": URL, "MessageBody": "x", "DelaySeconds": 1.5},
        {"QueueUrl": URL, "MessageBody": "x", "DelaySeconds": 2**31},
        {"QueueUrl": URL, "MessageBody": "x", "MessageAttributes": []},
        {"QueueUrl": URL, "MessageBody": "x", "MessageAttributes": {"a": "b"}},
        {
            "QueueUrl": URL,
            "MessageBody": "x",
            "MessageAttributes": {"a": {"DataType": "Binary", "BinaryValue": "!!"}},
        },
    ],
)
def test_json_wrong_types(params: dict[str, Any]) -> None:
    assert json_error("SendMessage", json.dumps(params)).code == "SerializationException"


@pytest.mark.parametrize(
    "target", ["AmazonSQS.Frobnicate", "DynamoDB_20120810.ListTables", "", "AmazonSQS."]
)
def test_unknown_json_operation(target: str) -> None:
    with pytest.raises(SqsError) as info:
        sqs.parse_request("POST", "/", "", {**JSON, "x-amz-target": target}, b"{}")
    assert info.value.code == "UnknownOperationException"
    with pytest.raises(SqsError) as info:
        sqs.parse_request("POST", "/", "", JSON, b"{}")
    assert info.value.code == "UnknownOperationException"


def test_query_actions() -> None:
    assert form_error("Version=2012-11-05").code == "MissingAction"
    assert form_error("").code == "MissingAction"
    assert form_error("Action=Frobnicate").code == "InvalidAction"
    assert form_error("Action=sendmessage").code == "InvalidAction"
    # An XML document posted as a form has no Action either.
    assert form_error("<SendMessage><QueueUrl>x</QueueUrl></SendMessage>").code == "MissingAction"


def test_query_malformed() -> None:
    assert form_error(b"Action=SendMessage&MessageBody=%ff%fe").code == "MalformedQueryString"
    assert form_error(b"Action=SendMessage&MessageBody=\xff").code == "MalformedQueryString"
    many = "&".join(f"k{i}=v" for i in range(5000))
    assert form_error("Action=ListQueues&" + many).code == "MalformedQueryString"
    assert (
        form_error("", method="GET", query="Action=ListQueues&X=%C3").code == "MalformedQueryString"
    )


@pytest.mark.parametrize(
    "body",
    [
        "Action=ReceiveMessage&QueueUrl=" + URL + "&MaxNumberOfMessages=abc",
        "Action=ReceiveMessage&QueueUrl=" + URL + "&MaxNumberOfMessages=1.5",
        "Action=ReceiveMessage&QueueUrl=" + URL + "&WaitTimeSeconds=99999999999",
        "Action=SendMessage&QueueUrl=" + URL + "&MessageBody=x&MessageAttribute.1.Name=a"
        "&MessageAttribute.1.Value.DataType=Binary&MessageAttribute.1.Value.BinaryValue=%21%21",
        "Action=DeleteMessageBatch&QueueUrl=" + URL + "&DeleteMessageBatchRequestEntry.1001.Id=a",
    ],
)
def test_query_wrong_types(body: str) -> None:
    assert form_error(body).code == "InvalidParameterValue"


@pytest.mark.parametrize(
    ("protocol", "action", "params", "missing"),
    [
        ("json", "SendMessage", {"QueueUrl": URL}, "MessageBody"),
        ("query", "SendMessage", {"QueueUrl": URL}, "MessageBody"),
        ("json", "SendMessage", {"MessageBody": "x"}, "QueueUrl"),
        ("query", "GetQueueUrl", {}, "QueueName"),
        (
            "json",
            "SendMessageBatch",
            {"QueueUrl": URL, "Entries": [{"MessageBody": "x"}]},
            "Entries.1.Id",
        ),
        (
            "json",
            "SendMessage",
            {"QueueUrl": URL, "MessageBody": "x", "MessageAttributes": {"a": {"StringValue": "v"}}},
            "DataType",
        ),
        (
            "query",
            "ChangeMessageVisibility",
            {"QueueUrl": URL, "ReceiptHandle": "h"},
            "VisibilityTimeout",
        ),
        ("json", "SendMessage", {"QueueUrl": URL, "MessageBody": ""}, "MessageBody"),
    ],
)
def test_missing_parameters(
    protocol: str, action: str, params: dict[str, Any], missing: str
) -> None:
    err = error_in(protocol, action, params)
    assert err.code == "MissingParameter"
    assert missing in err.message


def test_query_map_entry_without_name() -> None:
    body = "Action=SetQueueAttributes&QueueUrl=" + URL + "&Attribute.1.Value=5"
    err = form_error(body)
    assert (err.code, err.message) == (
        "MissingParameter",
        "The request must contain the parameter Attribute.1.Name.",
    )


@pytest.mark.parametrize(
    "url",
    ["http://localhost:9324/", "http://localhost:9324/000000000000", "nonsense", "http://h/a/b/c"],
)
def test_queue_url_naming_no_queue(url: str) -> None:
    for protocol in ("json", "query"):
        assert error_in(protocol, "PurgeQueue", {"QueueUrl": url}).code == "InvalidAddress"


# --- SQS rules --------------------------------------------------------------------------------


def _entries(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"Id": f"e{i}", "MessageBody": "x", **extra} for i in range(n)]


BIG = "x" * (110 * 1024)
CASES: list[tuple[str, dict[str, Any], str]] = [
    # batches
    (
        "SendMessageBatch",
        {"QueueUrl": URL, "Entries": _entries(11)},
        "TooManyEntriesInBatchRequest",
    ),
    (
        "DeleteMessageBatch",
        {"QueueUrl": URL, "Entries": [{"Id": f"e{i}", "ReceiptHandle": "h"} for i in range(11)]},
        "TooManyEntriesInBatchRequest",
    ),
    (
        "ChangeMessageVisibilityBatch",
        {"QueueUrl": URL, "Entries": [{"Id": f"e{i}", "ReceiptHandle": "h"} for i in range(11)]},
        "TooManyEntriesInBatchRequest",
    ),
    ("SendMessageBatch", {"QueueUrl": URL, "Entries": []}, "EmptyBatchRequest"),
    ("DeleteMessageBatch", {"QueueUrl": URL, "Entries": []}, "EmptyBatchRequest"),
    (
        "SendMessageBatch",
        {
            "QueueUrl": URL,
            "Entries": [{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}],
        },
        "BatchEntryIdsNotDistinct",
    ),
    (
        "DeleteMessageBatch",
        {
            "QueueUrl": URL,
            "Entries": [{"Id": "a", "ReceiptHandle": "1"}, {"Id": "a", "ReceiptHandle": "2"}],
        },
        "BatchEntryIdsNotDistinct",
    ),
    (
        "SendMessageBatch",
        {"QueueUrl": URL, "Entries": [{"Id": "a b", "MessageBody": "x"}]},
        "InvalidBatchEntryId",
    ),
    (
        "SendMessageBatch",
        {"QueueUrl": URL, "Entries": [{"Id": "a" * 81, "MessageBody": "x"}]},
        "InvalidBatchEntryId",
    ),
    (
        "ChangeMessageVisibilityBatch",
        {"QueueUrl": URL, "Entries": [{"Id": "ü", "ReceiptHandle": "h"}]},
        "InvalidBatchEntryId",
    ),
    (
        "SendMessageBatch",
        {"QueueUrl": URL, "Entries": _entries(10, MessageBody=BIG)},
        "BatchRequestTooLong",
    ),
    # message bodies
    ("SendMessage", {"QueueUrl": URL, "MessageBody": "nul \x00"}, "InvalidMessageContents"),
    ("SendMessage", {"QueueUrl": URL, "MessageBody": "vt \x0b"}, "InvalidMessageContents"),
    ("SendMessage", {"QueueUrl": URL, "MessageBody": "nonchar \ufffe"}, "InvalidMessageContents"),
    (
        "SendMessage",
        {"QueueUrl": URL, "MessageBody": "x" * (1024 * 1024 + 1)},
        "InvalidParameterValue",
    ),
    (
        "SendMessage",
        {"QueueUrl": URL, "MessageBody": "x", "DelaySeconds": 901},
        "InvalidParameterValue",
    ),
    (
        "SendMessage",
        {"QueueUrl": URL, "MessageBody": "x", "DelaySeconds": -1},
        "InvalidParameterValue",
    ),
    (
        "SendMessage",
        {"QueueUrl": URL, "MessageBody": "x", "MessageGroupId": "has space"},
        "InvalidParameterValue",
    ),
    (
        "SendMessage",
        {"QueueUrl": URL, "MessageBody": "x", "MessageDeduplicationId": "d" * 129},
        "InvalidParameterValue",
    ),
    # message attributes
    (
        "SendMessage",
        {
            "QueueUrl": URL,
            "MessageBody": "x",
            "MessageAttributes": {
                f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)
            },
        },
        "InvalidParameterValue",
    ),
    *[
        (
            "SendMessage",
            {
                "QueueUrl": URL,
                "MessageBody": "x",
                "MessageAttributes": {name: {"DataType": "String", "StringValue": "v"}},
            },
            "InvalidParameterValue",
        )
        for name in [
            "AWS.x",
            "amazon.y",
            "Amazon.z",
            ".lead",
            "trail.",
            "dou..ble",
            "sp ace",
            "n" * 257,
            "ü",
        ]
    ],
    *[
        (
            "SendMessage",
            {"QueueUrl": URL, "MessageBody": "x", "MessageAttributes": {"a": value}},
            "InvalidParameterValue",
        )
        for value in [
            {"DataType": "Strin", "StringValue": "v"},
            {"DataType": "String.", "StringValue": "v"},
            {"DataType": "", "StringValue": "v"},
            {"DataType": "String", "StringValue": ""},
            {"DataType": "String"},
            {"DataType": "String", "BinaryValue": b"x"},
            {"DataType": "Binary", "StringValue": "x"},
            {"DataType": "Binary", "BinaryValue": b""},
            {"DataType": "Number", "StringValue": "abc"},
            {"DataType": "Number", "StringValue": "1" * 39},
            {"DataType": "Number", "StringValue": "1e127"},
            {"DataType": "Number", "StringValue": "1e-129"},
            {"DataType": "String", "StringValue": "v", "StringListValues": ["a"]},
        ]
    ],
    (
        "SendMessage",
        {
            "QueueUrl": URL,
            "MessageBody": "x",
            "MessageAttributes": {"a": {"DataType": "String", "StringValue": "bad \x01"}},
        },
        "InvalidMessageContents",
    ),
    (
        "SendMessage",
        {
            "QueueUrl": URL,
            "MessageBody": "x",
            "MessageSystemAttributes": {"Foo": {"DataType": "String", "StringValue": "v"}},
        },
        "InvalidParameterValue",
    ),
    (
        "SendMessage",
        {
            "QueueUrl": URL,
            "MessageBody": "x",
            "MessageSystemAttributes": {
                "AWSTraceHeader": {"DataType": "Number", "StringValue": "1"}
            },
        },
        "InvalidParameterValue",
    ),
    # ReceiveMessage
    ("ReceiveMessage", {"QueueUrl": URL, "MaxNumberOfMessages": 11}, "InvalidParameterValue"),
    ("ReceiveMessage", {"QueueUrl": URL, "MaxNumberOfMessages": 0}, "InvalidParameterValue"),
    ("ReceiveMessage", {"QueueUrl": URL, "WaitTimeSeconds": 21}, "InvalidParameterValue"),
    ("ReceiveMessage", {"QueueUrl": URL, "VisibilityTimeout": 43201}, "InvalidParameterValue"),
    ("ReceiveMessage", {"QueueUrl": URL, "AttributeNames": ["Bogus"]}, "InvalidAttributeName"),
    (
        "ReceiveMessage",
        {"QueueUrl": URL, "MessageSystemAttributeNames": ["VisibilityTimeout"]},
        "InvalidAttributeName",
    ),
    (
        "ReceiveMessage",
        {"QueueUrl": URL, "MessageAttributeNames": ["AWS.x"]},
        "InvalidParameterValue",
    ),
    (
        "ReceiveMessage",
        {"QueueUrl": URL, "ReceiveRequestAttemptId": "a b"},
        "InvalidParameterValue",
    ),
    (
        "ChangeMessageVisibility",
        {"QueueUrl": URL, "ReceiptHandle": "h", "VisibilityTimeout": 43201},
        "InvalidParameterValue",
    ),
    # queues and their attributes
    ("CreateQueue", {"QueueName": "bad name"}, "InvalidParameterValue"),
    ("CreateQueue", {"QueueName": "q" * 81}, "InvalidParameterValue"),
    (
        "CreateQueue",
        {"QueueName": "q" * 76 + ".fifo", "Attributes": {"FifoQueue": "true"}},
        "InvalidParameterValue",
    ),
    ("CreateQueue", {"QueueName": "jobs.fifo"}, "InvalidParameterValue"),
    (
        "CreateQueue",
        {"QueueName": "jobs", "Attributes": {"FifoQueue": "true"}},
        "InvalidParameterValue",
    ),
    ("CreateQueue", {"QueueName": "jobs", "Attributes": {"Bogus": "1"}}, "InvalidAttributeName"),
    ("CreateQueue", {"QueueName": "jobs", "Attributes": {"QueueArn": "x"}}, "InvalidAttributeName"),
    (
        "CreateQueue",
        {"QueueName": "jobs", "Attributes": {"ContentBasedDeduplication": "true"}},
        "InvalidAttributeName",
    ),
    (
        "CreateQueue",
        {"QueueName": "jobs", "Attributes": {"VisibilityTimeout": "abc"}},
        "InvalidAttributeValue",
    ),
    (
        "CreateQueue",
        {"QueueName": "jobs", "Attributes": {"VisibilityTimeout": "43201"}},
        "InvalidAttributeValue",
    ),
    (
        "CreateQueue",
        {"QueueName": "jobs", "Attributes": {"MaximumMessageSize": "1023"}},
        "InvalidAttributeValue",
    ),
    (
        "CreateQueue",
        {"QueueName": "jobs", "Attributes": {"MessageRetentionPeriod": "1209601"}},
        "InvalidAttributeValue",
    ),
    (
        "CreateQueue",
        {"QueueName": "jobs", "Attributes": {"RedrivePolicy": "{nope"}},
        "InvalidAttributeValue",
    ),
    (
        "CreateQueue",
        {
            "QueueName": "jobs",
            "Attributes": {
                "RedrivePolicy": json.dumps(
                    {
                        "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:d",
                        "maxReceiveCount": 0,
                    }
                )
            },
        },
        "InvalidAttributeValue",
    ),
    (
        "CreateQueue",
        {
            "QueueName": "jobs",
            "Attributes": {
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": "d", "maxReceiveCount": 3})
            },
        },
        "InvalidAttributeValue",
    ),
    (
        "CreateQueue",
        {
            "QueueName": "jobs",
            "Attributes": {"RedriveAllowPolicy": json.dumps({"redrivePermission": "byQueue"})},
        },
        "InvalidAttributeValue",
    ),
    ("CreateQueue", {"QueueName": "jobs", "tags": {"aws:reserved": "x"}}, "InvalidParameterValue"),
    (
        "CreateQueue",
        {"QueueName": "jobs", "tags": {f"k{i}": "v" for i in range(51)}},
        "InvalidParameterValue",
    ),
    (
        "SetQueueAttributes",
        {"QueueUrl": URL, "Attributes": {"FifoQueue": "true"}},
        "InvalidAttributeName",
    ),
    (
        "SetQueueAttributes",
        {"QueueUrl": URL, "Attributes": {"ApproximateNumberOfMessages": "1"}},
        "InvalidAttributeName",
    ),
    (
        "SetQueueAttributes",
        {"QueueUrl": URL, "Attributes": {"SqsManagedSseEnabled": "yes"}},
        "InvalidAttributeValue",
    ),
    (
        "SetQueueAttributes",
        {"QueueUrl": URL, "Attributes": {"DeduplicationScope": "global"}},
        "InvalidAttributeValue",
    ),
    (
        "SetQueueAttributes",
        {"QueueUrl": URL, "Attributes": {"KmsMasterKeyId": "k\x01"}},
        "InvalidAttributeValue",
    ),
    ("TagQueue", {"QueueUrl": URL, "Tags": {"k": "bell\x07"}}, "InvalidParameterValue"),
    (
        "GetQueueAttributes",
        {"QueueUrl": URL, "AttributeNames": ["VisibilityTimeout", "Bogus"]},
        "InvalidAttributeName",
    ),
    ("ListQueues", {"MaxResults": 0}, "InvalidParameterValue"),
    ("ListQueues", {"MaxResults": 1001}, "InvalidParameterValue"),
    ("TagQueue", {"QueueUrl": URL, "Tags": {}}, "MissingParameter"),
    ("TagQueue", {"QueueUrl": URL, "Tags": {"k" * 129: "v"}}, "InvalidParameterValue"),
    ("TagQueue", {"QueueUrl": URL, "Tags": {"k": "v" * 257}}, "InvalidParameterValue"),
    ("UntagQueue", {"QueueUrl": URL, "TagKeys": []}, "MissingParameter"),
    ("StartMessageMoveTask", {"SourceArn": "not-an-arn"}, "InvalidParameterValue"),
    (
        "StartMessageMoveTask",
        {"SourceArn": "arn:aws:sqs:us-east-1:000000000000:d", "MaxNumberOfMessagesPerSecond": 501},
        "InvalidParameterValue",
    ),
    (
        "ListMessageMoveTasks",
        {"SourceArn": "arn:aws:sqs:us-east-1:000000000000:d", "MaxResults": 11},
        "InvalidParameterValue",
    ),
    (
        "AddPermission",
        {"QueueUrl": URL, "Label": "bad label", "AWSAccountIds": ["1"], "Actions": ["SendMessage"]},
        "InvalidParameterValue",
    ),
    (
        "AddPermission",
        {"QueueUrl": URL, "Label": "l", "AWSAccountIds": ["1"], "Actions": ["Frobnicate"]},
        "InvalidParameterValue",
    ),
    (
        "AddPermission",
        {"QueueUrl": URL, "Label": "l", "AWSAccountIds": ["1"], "Actions": ["SendMessage"] * 8},
        "OverLimit",
    ),
]


@pytest.mark.parametrize("protocol", ["json", "query"])
@pytest.mark.parametrize(
    ("action", "params", "code"), CASES, ids=[f"{a}-{i}-{c}" for i, (a, _, c) in enumerate(CASES)]
)
def test_sqs_rules(protocol: str, action: str, params: dict[str, Any], code: str) -> None:
    err = error_in(protocol, action, params)
    assert err.code == code, err.message
    # and the client sees the code in its protocol's spelling
    resp = sqs.render_error(protocol, err, "r")
    parsed = bc.parse(protocol, action, resp.status, resp.headers, resp.body)
    assert parsed["Error"]["Code"] == err.query_code


def test_query_spelling_of_batch_errors() -> None:
    err = error_in("query", "SendMessageBatch", {"QueueUrl": URL, "Entries": _entries(11)})
    assert err.query_code == "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
    assert err.message == "Maximum number of entries per request are 10. You have sent 11."


def test_lone_surrogate_in_json() -> None:
    body = '{"QueueUrl": "' + URL + '", "MessageBody": "half \\ud800 pair"}'
    assert json_error("SendMessage", body).code == "SerializationException"
    # the same surrogate UTF-8-encoded in a form is not UTF-8
    assert form_error("Action=SendMessage&MessageBody=%ED%A0%80").code == "MalformedQueryString"


def test_valid_edges_pass() -> None:
    ok = [
        (
            "SendMessage",
            {"QueueUrl": URL, "MessageBody": "\t\n\r \ud7ff\ue000\ufffd\U00010000\U0010ffff"},
        ),
        ("SendMessage", {"QueueUrl": URL, "MessageBody": "x" * (1024 * 1024)}),
        (
            "SendMessage",
            {
                "QueueUrl": URL,
                "MessageBody": "x",
                "MessageAttributes": {
                    "a.b-c_d": {"DataType": "Number", "StringValue": "-0.000123e-5"}
                },
            },
        ),
        (
            "SendMessage",
            {
                "QueueUrl": URL,
                "MessageBody": "x",
                "MessageAttributes": {
                    "n" * 256: {"DataType": "String.custom type ✓", "StringValue": "v"}
                },
            },
        ),
        ("SendMessageBatch", {"QueueUrl": URL, "Entries": _entries(10)}),
        ("SendMessageBatch", {"QueueUrl": URL, "Entries": [{"Id": "a" * 80, "MessageBody": "x"}]}),
        (
            "ReceiveMessage",
            {
                "QueueUrl": URL,
                "MessageAttributeNames": [".*", "All", "prefix.*"],
                "WaitTimeSeconds": 0,
            },
        ),
        ("CreateQueue", {"QueueName": "q" * 75 + ".fifo", "Attributes": {"FifoQueue": "true"}}),
        ("CreateQueue", {"QueueName": "Q-_9" * 20}),
        ("SetQueueAttributes", {"QueueUrl": URL, "Attributes": {"RedrivePolicy": ""}}),
        (
            "SetQueueAttributes",
            {
                "QueueUrl": URL,
                "Attributes": {
                    "RedrivePolicy": json.dumps(
                        {
                            "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:d",
                            "maxReceiveCount": "1000",
                        }
                    )
                },
            },
        ),
    ]
    for protocol in ("json", "query"):
        for action, params in ok:
            request = bc.serialize(protocol, action, params)
            sqs.parse_request("POST", "/", "", bc.http_headers(request), request["body"])
