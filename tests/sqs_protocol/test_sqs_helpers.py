"""URLs, ARNs, queue attributes, result builders, and the public surface."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import conveyor.protocol.sqs as sqs_package
from conveyor.protocol import sqs
from conveyor.protocol.sqs import charset, results, urls
from conveyor.protocol.sqs.errors import SqsError
from conveyor.protocol.sqs.queue_attributes import check_attribute_names


def test_exports_are_honest() -> None:
    assert sorted(sqs_package.__all__) == sorted(set(sqs_package.__all__))
    for name in sqs_package.__all__:
        assert hasattr(sqs_package, name), name


def test_queue_urls() -> None:
    url = sqs.queue_url("http://localhost:9324", "000000000000", "jobs.fifo")
    assert url == "http://localhost:9324/000000000000/jobs.fifo"
    assert sqs.parse_queue_url(url) == sqs.QueueRef("000000000000", "jobs.fifo")
    assert sqs.parse_queue_url("https://sqs.us-east-1.amazonaws.com/123456789012/q") == (
        "123456789012",
        "q",
    )
    assert sqs.parse_queue_url("/123456789012/q") == ("123456789012", "q")
    assert sqs.parse_queue_url("http://h:1/123456789012/q/") == ("123456789012", "q")
    for bad in ["http://h/", "http://h/123", "http://h/a/b/c", "", "http://h/bad%20account!/q"]:
        with pytest.raises(SqsError) as info:
            sqs.parse_queue_url(bad)
        assert info.value.code == "InvalidAddress"
    assert sqs.base_url("example.com:9324") == "http://example.com:9324"
    assert urls.path_ref("/") is None


def test_arns() -> None:
    arn = sqs.queue_arn("eu-west-1", "123456789012", "dlq")
    assert arn == "arn:aws:sqs:eu-west-1:123456789012:dlq"
    assert sqs.parse_arn(arn) == ("eu-west-1", "123456789012", "dlq")
    assert sqs.parse_arn("arn:aws-cn:sqs:cn-north-1:123456789012:q.fifo").name == "q.fifo"
    for bad in ["arn:aws:sns:eu-west-1:1:t", "dlq", "arn:aws:sqs:eu-west-1:123"]:
        with pytest.raises(SqsError) as info:
            sqs.parse_arn(bad, "SourceArn")
        assert info.value.code == "InvalidParameterValue"


def test_accounts() -> None:
    assert sqs.account_for("123456789012", "000000000000") == "123456789012"
    assert sqs.account_for("12345678901", "000000000000") == "000000000000"
    assert sqs.account_for(None) == urls.DEFAULT_ACCOUNT


def test_queue_attributes_are_typed() -> None:
    parsed = sqs.parse_queue_attributes(
        {
            "VisibilityTimeout": "60",
            "FifoQueue": "TRUE",
            "ContentBasedDeduplication": "false",
            "RedrivePolicy": json.dumps(
                {
                    "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:d.fifo",
                    "maxReceiveCount": "4",
                }
            ),
            "RedriveAllowPolicy": json.dumps({"redrivePermission": "denyAll"}),
            "Policy": "",
            "DeduplicationScope": "queue",
        },
        "CreateQueue",
    )
    assert parsed == {
        "VisibilityTimeout": 60,
        "FifoQueue": True,
        "ContentBasedDeduplication": False,
        "RedrivePolicy": {
            "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:d.fifo",
            "maxReceiveCount": 4,
        },
        "RedriveAllowPolicy": {"redrivePermission": "denyAll"},
        "Policy": "",
        "DeduplicationScope": "queue",
    }
    assert sqs.parse_queue_attributes({"RedrivePolicy": ""}, "SetQueueAttributes") == {
        "RedrivePolicy": None
    }
    sqs.check_queue_kind(parsed, fifo=True)
    with pytest.raises(SqsError) as info:
        sqs.check_queue_kind({"FifoThroughputLimit": "perQueue"}, fifo=False)
    assert info.value.code == "InvalidAttributeName"
    assert sqs.attribute_string(True) == "true"
    assert sqs.attribute_string(30) == "30"
    assert json.loads(sqs.attribute_string({"maxReceiveCount": 4})) == {"maxReceiveCount": 4}
    assert "QueueArn" in check_attribute_names(["All"])
    assert check_attribute_names(["QueueArn", "DelaySeconds"]) == ["QueueArn", "DelaySeconds"]


def test_message_attribute_selection() -> None:
    attrs = {
        n: {"DataType": "String", "StringValue": "v"}
        for n in ["a", "foo.x", "foo.y", "foox", "bar"]
    }
    assert results.select_message_attributes(None, attrs) == {}
    assert set(results.select_message_attributes(["All"], attrs)) == set(attrs)
    assert set(results.select_message_attributes([".*"], attrs)) == set(attrs)
    assert set(results.select_message_attributes(["foo.*"], attrs)) == {"foo.x", "foo.y"}
    assert set(results.select_message_attributes(["a", "zzz", "bar"], attrs)) == {"a", "bar"}
    system = {"SentTimestamp": "1", "ApproximateReceiveCount": "2", "Internal": "x"}
    assert results.select_system_attributes(["All"], system) == {
        "SentTimestamp": "1",
        "ApproximateReceiveCount": "2",
    }
    assert results.select_system_attributes(["SentTimestamp"], system) == {"SentTimestamp": "1"}
    assert results.select_system_attributes([], system) == {}


def test_message_digest_covers_what_is_returned() -> None:
    attrs = {
        "a": {"DataType": "String", "StringValue": "1"},
        "b": {"DataType": "String", "StringValue": "2"},
    }
    some = sqs.message_result(
        message_id="m",
        receipt_handle="h",
        body="x",
        message_attributes=attrs,
        requested_attributes=["a"],
    )
    assert some["MessageAttributes"] == {"a": attrs["a"]}
    assert some["MD5OfMessageAttributes"] == sqs.md5_of_attributes({"a": attrs["a"]})
    none = sqs.message_result(
        message_id="m", receipt_handle="h", body="x", message_attributes=attrs
    )
    assert "MessageAttributes" not in none
    assert none["MD5OfMessageAttributes"] == sqs.md5_of_attributes(attrs)
    plain = sqs.message_result(message_id="m", receipt_handle="h", body="x")
    assert set(plain) == {"MessageId", "ReceiptHandle", "MD5OfBody", "Body"}


def test_batch_error_entries_per_protocol() -> None:
    from conveyor import errors as core_errors

    err = core_errors.MessageNotInflight("not in flight")
    assert sqs.batch_error_entry("x", err, "json")["Code"] == "MessageNotInflight"
    assert (
        sqs.batch_error_entry("x", err, "query")["Code"]
        == "AWS.SimpleQueueService.MessageNotInflight"
    )
    internal = sqs.batch_error_entry("y", RuntimeError("secret detail"))
    assert internal == {
        "Id": "y",
        "SenderFault": False,
        "Code": "InternalError",
        "Message": internal["Message"],
    }
    assert "secret" not in internal["Message"]


def test_check_send_for_queue() -> None:
    sqs.check_send_for_queue(
        {"MessageBody": "x", "MessageGroupId": "g", "MessageDeduplicationId": "d"},
        fifo=True,
        max_message_bytes=1024,
    )
    cases = [
        ({"MessageBody": "x"}, True, "MissingParameter"),
        ({"MessageBody": "x", "MessageGroupId": "g"}, True, "InvalidParameterValue"),
        (
            {
                "MessageBody": "x",
                "MessageGroupId": "g",
                "MessageDeduplicationId": "d",
                "DelaySeconds": 5,
            },
            True,
            "InvalidParameterValue",
        ),
        ({"MessageBody": "x", "MessageDeduplicationId": "d"}, False, "InvalidParameterValue"),
        ({"MessageBody": "x" * 1025}, False, "InvalidParameterValue"),
    ]
    for entry, fifo, code in cases:
        with pytest.raises(SqsError) as info:
            sqs.check_send_for_queue(entry, fifo=fifo, max_message_bytes=1024)
        assert info.value.code == code
    sqs.check_send_for_queue(
        {"MessageBody": "x", "MessageGroupId": "g"},
        fifo=True,
        max_message_bytes=1024,
        content_based_dedup=True,
    )
    size = sqs.message_size(
        {
            "MessageBody": "ab",
            "MessageAttributes": {"n": {"DataType": "Binary", "BinaryValue": b"123"}},
        }
    )
    assert size == 2 + 1 + 6 + 3


@given(
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=50)
    | st.text(max_size=50)
    | st.text(alphabet=st.sampled_from("ab\t\n\r\x00\x01\x0b\x1f\x7f é\ud800\ufffe"), max_size=20)
)
@settings(max_examples=500, deadline=None)
def test_bad_character_fast_path_agrees_with_the_pattern(text: str) -> None:
    match = charset._BAD_CHAR_RE.search(text)
    assert charset.first_bad_character(text) == (None if match is None else match.group())
