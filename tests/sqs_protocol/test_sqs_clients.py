"""A real botocore client, signing its requests, talks to the codec in both protocols.

Nothing but the socket is faked: botocore serializes, signs and parses; the codec
verifies, parses and renders; ``sqs_fake_glue`` answers in the broker's place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqs_botocore import sdk_check
from sqs_fake_glue import STORED_ATTRIBUTES, FakeSqs, make_client
from sqs_samples import REQUESTS

from conveyor.protocol import sqs

PROTOCOLS = ["json", "query"]
SECRETS = {"AKIDEXAMPLE": "secret"}


# Clients are slow to build (~0.1 s): one per protocol for the module.
@pytest.fixture(scope="module", params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def fake(protocol: str) -> FakeSqs:
    return FakeSqs(secrets=SECRETS)


@pytest.fixture(scope="module")
def client(fake: FakeSqs, protocol: str, query_data_dir: Path) -> Any:
    return make_client(fake, protocol, query_data_dir)


def _snake(action: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in action).lstrip("_")


@pytest.mark.parametrize("action", sorted(REQUESTS))
def test_every_action_through_a_client(
    client: Any, fake: FakeSqs, protocol: str, action: str
) -> None:
    response = getattr(client, _snake(action))(**REQUESTS[action])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["ResponseMetadata"]["RequestId"].startswith("req-")
    req = fake.requests[-1]
    assert (req.action, req.protocol, req.region, req.access_key) == (
        action,
        protocol,
        "eu-west-1",
        "AKIDEXAMPLE",
    )
    assert req.params == REQUESTS[action]


def test_send_digests_match_what_sdks_compute(client: Any) -> None:
    params = REQUESTS["SendMessage"]
    response = client.send_message(**params)
    assert response["MD5OfMessageBody"] == sqs.md5_of_body(params["MessageBody"])
    assert response["MD5OfMessageAttributes"] == sdk_check(params["MessageAttributes"])
    assert response["MD5OfMessageSystemAttributes"] == sdk_check(params["MessageSystemAttributes"])
    assert response["SequenceNumber"] == "100"


def test_receive_selection_and_digests(client: Any) -> None:
    url = "http://localhost:9324/000000000000/jobs"
    got = client.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=3,
        MessageAttributeNames=["color", "foo.*"],
        MessageSystemAttributeNames=["SentTimestamp"],
    )
    assert len(got["Messages"]) == 3
    for message in got["Messages"]:
        assert message["Body"].endswith("<&> \r\n ☃")
        assert message["MD5OfBody"] == sqs.md5_of_body(message["Body"])
        assert set(message["MessageAttributes"]) == {"color", "foo.size"}
        assert message["MD5OfMessageAttributes"] == sdk_check(message["MessageAttributes"])
        assert message["Attributes"] == {"SentTimestamp": "1700000000000"}
    everything = client.receive_message(
        QueueUrl=url, MessageAttributeNames=["All"], AttributeNames=["All"]
    )
    (message,) = everything["Messages"]
    assert message["MessageAttributes"] == STORED_ATTRIBUTES
    assert message["MD5OfMessageAttributes"] == sdk_check(STORED_ATTRIBUTES)
    assert set(message["Attributes"]) == {
        "SenderId",
        "SentTimestamp",
        "ApproximateReceiveCount",
        "ApproximateFirstReceiveTimestamp",
        "AWSTraceHeader",
    }
    bare = client.receive_message(QueueUrl=url)["Messages"][0]
    assert "MessageAttributes" not in bare and "Attributes" not in bare


def test_batch_with_failed_entries(client: Any, protocol: str) -> None:
    url = "http://localhost:9324/000000000000/jobs"
    got = client.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "ok", "MessageBody": "fine"},
            {"Id": "bad", "MessageBody": "\x00"},
            {"Id": "late", "MessageBody": "x", "DelaySeconds": 901},
        ],
    )
    assert [e["Id"] for e in got["Successful"]] == ["ok"]
    failed = {e["Id"]: e for e in got["Failed"]}
    assert (
        failed["bad"]["Code"] == "InvalidMessageContents" and failed["bad"]["SenderFault"] is True
    )
    assert failed["late"]["Code"] == "InvalidParameterValue"
    got = client.delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": "a", "ReceiptHandle": "h"}, {"Id": "b", "ReceiptHandle": "bad"}],
    )
    assert got["Successful"] == [{"Id": "a"}]
    assert got["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"


@pytest.mark.parametrize(
    ("call", "exception", "code_json", "code_query", "status"),
    [
        (
            lambda c: c.get_queue_url(QueueName="missing"),
            "QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue",
            "AWS.SimpleQueueService.NonExistentQueue",
            400,
        ),
        (
            lambda c: c.create_queue(QueueName="exists"),
            "QueueNameExists",
            "QueueAlreadyExists",
            "QueueAlreadyExists",
            400,
        ),
        (
            lambda c: c.send_message_batch(
                QueueUrl="http://localhost:9324/000000000000/q",
                Entries=[{"Id": "a", "MessageBody": "x"}] * 2,
            ),
            "BatchEntryIdsNotDistinct",
            "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            400,
        ),
        (
            lambda c: c.delete_message_batch(
                QueueUrl="http://localhost:9324/000000000000/q",
                Entries=[{"Id": f"i{i}", "ReceiptHandle": "h"} for i in range(11)],
            ),
            "TooManyEntriesInBatchRequest",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            400,
        ),
        (
            lambda c: c.purge_queue(QueueUrl="http://localhost:9324/000000000000/purging"),
            "PurgeQueueInProgress",
            "AWS.SimpleQueueService.PurgeQueueInProgress",
            "AWS.SimpleQueueService.PurgeQueueInProgress",
            403,
        ),
        (
            lambda c: c.delete_message(
                QueueUrl="http://localhost:9324/000000000000/q", ReceiptHandle="bad"
            ),
            "ReceiptHandleIsInvalid",
            "ReceiptHandleIsInvalid",
            "ReceiptHandleIsInvalid",
            404,
        ),
        (
            lambda c: c.send_message(
                QueueUrl="http://localhost:9324/000000000000/full", MessageBody="x"
            ),
            "OverLimit",
            "OverLimit",
            "OverLimit",
            403,
        ),
        (
            lambda c: c.send_message(
                QueueUrl="http://localhost:9324/000000000000/q", MessageBody="\x01"
            ),
            "InvalidMessageContents",
            "InvalidMessageContents",
            "InvalidMessageContents",
            400,
        ),
        (
            lambda c: c.get_queue_attributes(
                QueueUrl="http://localhost:9324/000000000000/q", AttributeNames=["Nope"]
            ),
            "InvalidAttributeName",
            "InvalidAttributeName",
            "InvalidAttributeName",
            400,
        ),
        (
            lambda c: c.send_message(QueueUrl="http://nowhere/", MessageBody="x"),
            "InvalidAddress",
            "InvalidAddress",
            "InvalidAddress",
            400,
        ),
    ],
)
def test_errors_raise_the_modeled_exception(
    client: Any,
    protocol: str,
    call: Any,
    exception: str,
    code_json: str,
    code_query: str,
    status: int,
) -> None:
    error_class = getattr(client.exceptions, exception)
    with pytest.raises(error_class) as info:
        call(client)
    error = info.value.response["Error"]
    assert error["Code"] == (code_json if protocol == "json" else code_query)
    assert error["Type"] == "Sender"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_bad_signature_is_refused(protocol: str, query_data_dir: Path) -> None:
    fake = FakeSqs(secrets={"AKIDEXAMPLE": "a-different-secret"})
    client = make_client(fake, protocol, query_data_dir)
    with pytest.raises(client.exceptions.ClientError) as info:
        client.list_queues()
    assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert fake.requests == []  # nothing was parsed, let alone done
    client = make_client(FakeSqs(secrets={}), protocol, query_data_dir)
    with pytest.raises(client.exceptions.ClientError) as info:
        client.list_queues()
    assert info.value.response["Error"]["Code"] == "InvalidClientTokenId"


def test_local_mode_takes_any_credentials_and_names_accounts(
    protocol: str, query_data_dir: Path
) -> None:
    fake = FakeSqs(secrets=None)
    client = make_client(
        fake,
        protocol,
        query_data_dir,
        aws_access_key_id="123456789012",
        aws_secret_access_key="whatever",
        region_name="ap-southeast-2",
    )
    url = client.create_queue(QueueName="mine")["QueueUrl"]
    assert url == "http://localhost:9324/123456789012/mine"
    assert (fake.requests[-1].region, fake.requests[-1].access_key) == (
        "ap-southeast-2",
        "123456789012",
    )


def test_boto3_resource_layer(query_data_dir: Path) -> None:
    import boto3

    fake = FakeSqs(secrets=SECRETS)
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="eu-west-1"
    )
    sqs_resource = session.resource("sqs", endpoint_url="http://localhost:9324")
    sqs_resource.meta.client.meta.events.register("before-send.sqs", fake.before_send)
    queue = sqs_resource.create_queue(QueueName="res")
    assert queue.url == "http://localhost:9324/000000000000/res"
    sent = queue.send_message(MessageBody="hello")
    assert sent["MD5OfMessageBody"] == "5d41402abc4b2a76b9719d911017c592"
    messages = queue.receive_messages(MaxNumberOfMessages=2)
    assert [m.receipt_handle for m in messages] == ["rh-0", "rh-1"]
    messages[0].delete()
    assert fake.requests[-1].action == "DeleteMessage"
