"""boto3 against the running server, in the JSON and the query protocol: every action."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sqs_botocore import sdk_check
from sqs_server_helpers import REGION, qname


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    resp = exc.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


def create(sqs: Any, stem: str, fifo: bool = False, **attributes: str) -> str:
    name = qname(stem, fifo)
    if fifo:
        attributes.setdefault("FifoQueue", "true")
    url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url


# --- queues ----------------------------------------------------------------------------


def test_queue_lifecycle(sqs: Any, server: Any) -> None:
    name = qname("life")
    url = sqs.create_queue(
        QueueName=name, Attributes={"VisibilityTimeout": "45"}, tags={"team": "core"}
    )["QueueUrl"]
    assert url == f"{server.url}/000000000000/{name}"
    # creating again with the same attributes is a no-op; with others, an error
    assert (
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})["QueueUrl"] == url
    )
    assert sqs.create_queue(QueueName=name)["QueueUrl"] == url
    with pytest.raises(ClientError) as exc:
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "46"})
    assert error(exc) == ("QueueAlreadyExists", 400)
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url

    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "45"
    assert attrs["QueueArn"] == f"arn:aws:sqs:{REGION}:000000000000:{name}"
    assert attrs["MaximumMessageSize"] == "262144"
    assert attrs["MessageRetentionPeriod"] == "345600"
    assert attrs["DelaySeconds"] == "0"
    assert attrs["ReceiveMessageWaitTimeSeconds"] == "0"
    assert attrs["ApproximateNumberOfMessages"] == "0"
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert attrs["ApproximateNumberOfMessagesDelayed"] == "0"
    assert attrs["SqsManagedSseEnabled"] == "false"
    assert abs(int(attrs["CreatedTimestamp"]) - time.time()) < 60
    assert "FifoQueue" not in attrs and "RedrivePolicy" not in attrs and "Policy" not in attrs

    sqs.set_queue_attributes(
        QueueUrl=url,
        Attributes={
            "DelaySeconds": "2",
            "MaximumMessageSize": "2048",
            "Policy": '{"Version": "2012-10-17", "Statement": []}',
            "KmsMasterKeyId": "alias/aws/sqs",
            "SqsManagedSseEnabled": "true",
        },
    )
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "DelaySeconds",
            "MaximumMessageSize",
            "Policy",
            "KmsMasterKeyId",
            "SqsManagedSseEnabled",
        ],
    )["Attributes"]
    assert attrs == {
        "DelaySeconds": "2",
        "MaximumMessageSize": "2048",
        "Policy": '{"Version": "2012-10-17", "Statement": []}',
        "KmsMasterKeyId": "alias/aws/sqs",
        "SqsManagedSseEnabled": "true",
    }

    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "core"}
    sqs.tag_queue(QueueUrl=url, Tags={"env": "test", "team": "queues"})
    sqs.untag_queue(QueueUrl=url, TagKeys=["env", "aws:sqs:attributes"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "queues"}
    # the SQS-only attributes are still there after untagging the reserved key
    assert (
        "KmsMasterKeyId"
        in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    )

    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(ClientError) as exc:
        sqs.get_queue_url(QueueName=name)
    assert error(exc) == ("AWS.SimpleQueueService.NonExistentQueue", 400)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl=url, MessageBody="x")


def test_list_queues_prefix_and_pages(sqs: Any, server: Any) -> None:
    stem = qname("list")
    names = [f"{stem}-{i}" for i in range(5)]
    for name in names:
        sqs.create_queue(QueueName=name)
    urls = sqs.list_queues(QueueNamePrefix=stem)["QueueUrls"]
    assert urls == [f"{server.url}/000000000000/{n}" for n in names]
    seen: list[str] = []
    kwargs: dict[str, Any] = {"QueueNamePrefix": stem, "MaxResults": 2}
    pages = 0
    while True:
        page = sqs.list_queues(**kwargs)
        seen += page["QueueUrls"]
        pages += 1
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert seen == urls and pages == 3
    assert sqs.list_queues(QueueNamePrefix=f"{stem}-nothing").get("QueueUrls", []) == []
    with pytest.raises(ClientError) as exc:
        sqs.list_queues(MaxResults=1001)
    assert error(exc) == ("InvalidParameterValue", 400)


def test_queue_attribute_errors(sqs: Any) -> None:
    url = create(sqs, "attrerr")
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "99999"})
    assert error(exc) == ("InvalidAttributeValue", 400)
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Colour": "blue"})
    assert error(exc) == ("InvalidAttributeName", 400)
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"ContentBasedDeduplication": "true"})
    assert error(exc) == ("InvalidAttributeName", 400)
    with pytest.raises(ClientError) as exc:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Nope"])
    assert error(exc) == ("InvalidAttributeName", 400)
    with pytest.raises(ClientError) as exc:
        sqs.create_queue(QueueName="bad name!")
    assert error(exc) == ("InvalidParameterValue", 400)
    with pytest.raises(ClientError) as exc:
        sqs.create_queue(QueueName=qname("notfifo"), Attributes={"FifoQueue": "true"})
    assert error(exc) == ("InvalidParameterValue", 400)
    # nothing changed
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    assert attrs["Attributes"] == {"VisibilityTimeout": "30"}


# --- messages --------------------------------------------------------------------------

ATTRIBUTES = {
    "color": {"DataType": "String", "StringValue": "blue ☃"},
    "size": {"DataType": "Number.int", "StringValue": "42"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff\x10"},
    "blob.custom": {"DataType": "Binary.gzip", "BinaryValue": b"abc"},
}


def test_send_receive_delete(sqs: Any) -> None:
    url = create(sqs, "msgs")
    body = "hello <&> \r\n ☃ \U0001f600"
    sent = sqs.send_message(
        QueueUrl=url,
        MessageBody=body,
        MessageAttributes=ATTRIBUTES,
        MessageSystemAttributes={
            "AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-5759e988-bd862e3fe"}
        },
    )
    assert sent["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()
    assert sent["MD5OfMessageAttributes"] == sdk_check(ATTRIBUTES)
    assert "MD5OfMessageSystemAttributes" in sent
    got = sqs.receive_message(
        QueueUrl=url,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
        VisibilityTimeout=30,
    )["Messages"]
    assert len(got) == 1
    m = got[0]
    assert m["MessageId"] == sent["MessageId"]
    assert m["Body"] == body
    assert m["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert m["MessageAttributes"] == ATTRIBUTES
    assert m["MD5OfMessageAttributes"] == sdk_check(m["MessageAttributes"])
    a = m["Attributes"]
    assert a["ApproximateReceiveCount"] == "1"
    assert a["AWSTraceHeader"] == "Root=1-5759e988-bd862e3fe"
    assert a["SenderId"] == "AKIDEXAMPLE"
    assert abs(int(a["SentTimestamp"]) / 1000 - time.time()) < 60
    assert int(a["ApproximateFirstReceiveTimestamp"]) >= int(a["SentTimestamp"])
    # selection of message attributes by name and by prefix
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
    )
    again = sqs.receive_message(
        QueueUrl=url, MessageAttributeNames=["blob.*", "color"], AttributeNames=["SentTimestamp"]
    )["Messages"][0]
    assert set(again["MessageAttributes"]) == {"blob.custom", "color"}
    assert set(again["Attributes"]) == {"SentTimestamp"}
    assert again["MD5OfMessageAttributes"] == sdk_check(again["MessageAttributes"])
    # the old handle is stale: deleting with it is a no-op, the new one deletes
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])
    sqs.change_message_visibility  # noqa: B018
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []


def test_counts_and_delays(sqs_json: Any) -> None:
    sqs = sqs_json
    url = create(sqs, "counts")
    sqs.send_message(QueueUrl=url, MessageBody="now")
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    sqs.send_message(QueueUrl=url, MessageBody="flight")
    sqs.receive_message(QueueUrl=url, VisibilityTimeout=60)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "1"
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert attrs["ApproximateNumberOfMessagesDelayed"] == "1"
    sqs.purge_queue(QueueUrl=url)
    with pytest.raises(ClientError) as exc:
        sqs.purge_queue(QueueUrl=url)
    assert error(exc) == ("AWS.SimpleQueueService.PurgeQueueInProgress", 403)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_batches_with_partial_failures(sqs: Any) -> None:
    url = create(sqs, "batch", MaximumMessageSize="1024")
    result = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "ok1", "MessageBody": "one", "MessageAttributes": {"n": ATTRIBUTES["size"]}},
            {"Id": "badchars", "MessageBody": "nul \x00 here"},
            {"Id": "toolong", "MessageBody": "x" * 2000},
            {"Id": "ok2", "MessageBody": "two", "DelaySeconds": 0},
        ],
    )
    assert sorted(e["Id"] for e in result["Successful"]) == ["ok1", "ok2"]
    ok1 = next(e for e in result["Successful"] if e["Id"] == "ok1")
    assert ok1["MD5OfMessageBody"] == hashlib.md5(b"one").hexdigest()
    assert ok1["MD5OfMessageAttributes"] == sdk_check({"n": ATTRIBUTES["size"]})
    failed = {e["Id"]: e for e in result["Failed"]}
    assert failed["badchars"]["Code"] == "InvalidMessageContents"
    assert failed["badchars"]["SenderFault"] is True
    assert failed["toolong"]["Code"] == "InvalidParameterValue"

    msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in msgs) == ["one", "two"]
    handles = [m["ReceiptHandle"] for m in msgs]

    vis = sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "a", "ReceiptHandle": handles[0], "VisibilityTimeout": 40},
            {"Id": "b", "ReceiptHandle": handles[1], "VisibilityTimeout": 50000},
            {"Id": "c", "ReceiptHandle": "forged", "VisibilityTimeout": 5},
        ],
    )
    assert [e["Id"] for e in vis["Successful"]] == ["a"]
    assert {e["Id"]: e["Code"] for e in vis["Failed"]} == {
        "b": "InvalidParameterValue",
        "c": "ReceiptHandleIsInvalid",
    }

    deleted = sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "a", "ReceiptHandle": handles[0]},
            {"Id": "b", "ReceiptHandle": handles[1]},
            {"Id": "c", "ReceiptHandle": "forged"},
        ],
    )
    assert sorted(e["Id"] for e in deleted["Successful"]) == ["a", "b"]
    assert [(e["Id"], e["Code"]) for e in deleted["Failed"]] == [("c", "ReceiptHandleIsInvalid")]


def test_batch_request_errors(sqs: Any) -> None:
    url = create(sqs, "batcherr")
    cases = [
        ([{"Id": str(i), "MessageBody": "x"} for i in range(11)],
         ("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400)),
        ([{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}],
         ("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", 400)),
        ([{"Id": "bad id!", "MessageBody": "x"}], ("AWS.SimpleQueueService.InvalidBatchEntryId", 400)),
        ([{"Id": "a", "MessageBody": "x" * 600_000}, {"Id": "b", "MessageBody": "y" * 600_000}],
         ("AWS.SimpleQueueService.BatchRequestTooLong", 400)),
    ]  # fmt: skip
    for entries, expected in cases:
        with pytest.raises(ClientError) as exc:
            sqs.send_message_batch(QueueUrl=url, Entries=entries)
        assert error(exc) == expected
    with pytest.raises(ClientError) as exc:
        sqs.delete_message_batch(QueueUrl=url, Entries=[])
    assert error(exc) == ("AWS.SimpleQueueService.EmptyBatchRequest", 400)
    # nothing was sent
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_message_errors(sqs: Any) -> None:
    url = create(sqs, "msgerr")
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="bad \ufffe")
    assert error(exc) == ("InvalidMessageContents", 400)
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="x" * 300_000)
    assert error(exc) == ("InvalidParameterValue", 400)
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="x", DelaySeconds=901)
    assert error(exc) == ("InvalidParameterValue", 400)
    with pytest.raises(ClientError) as exc:
        sqs.send_message(
            QueueUrl=url,
            MessageBody="x",
            MessageAttributes={"n": {"DataType": "Number", "StringValue": "abc"}},
        )
    assert error(exc) == ("InvalidParameterValue", 400)
    with pytest.raises(ClientError) as exc:
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11)
    assert error(exc) == ("InvalidParameterValue", 400)
    with pytest.raises(ClientError) as exc:
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
    assert error(exc) == ("ReceiptHandleIsInvalid", 404)
    with pytest.raises(ClientError) as exc:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle="nope", VisibilityTimeout=1)
    assert error(exc) == ("ReceiptHandleIsInvalid", 404)
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl="http://elsewhere/just-a-name", MessageBody="x")
    assert error(exc) == ("InvalidAddress", 400)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_long_polling(sqs: Any) -> None:
    url = create(sqs, "poll")
    started = time.monotonic()
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []) == []
    assert 0.9 <= time.monotonic() - started < 5
    timer = threading.Timer(0.5, lambda: sqs.send_message(QueueUrl=url, MessageBody="late"))
    timer.start()
    started = time.monotonic()
    msgs = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10)["Messages"]
    elapsed = time.monotonic() - started
    timer.join()
    assert [m["Body"] for m in msgs] == ["late"]
    assert 0.4 <= elapsed < 5
    # the queue's ReceiveMessageWaitTimeSeconds applies when the request names none
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"ReceiveMessageWaitTimeSeconds": "1"})
    started = time.monotonic()
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
    assert time.monotonic() - started >= 0.9


def test_fifo(sqs: Any) -> None:
    url = create(sqs, "orders", fifo=True, ContentBasedDeduplication="true")
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["FifoQueue"] == "true"
    assert attrs["ContentBasedDeduplication"] == "true"
    assert attrs["DeduplicationScope"] == "queue"
    assert attrs["FifoThroughputLimit"] == "perQueue"
    seqs = []
    for i in range(3):
        r = sqs.send_message(QueueUrl=url, MessageBody=f"a{i}", MessageGroupId="a")
        seqs.append(int(r["SequenceNumber"]))
    assert seqs == sorted(seqs)
    dup = sqs.send_message(QueueUrl=url, MessageBody="a0", MessageGroupId="a")
    assert int(dup["SequenceNumber"]) == seqs[0]
    sqs.send_message(
        QueueUrl=url, MessageBody="b0", MessageGroupId="b", MessageDeduplicationId="d1"
    )
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="no group")
    assert error(exc) == ("MissingParameter", 400)

    first = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        ReceiveRequestAttemptId="try-1",
        AttributeNames=["All"],
    )["Messages"]
    bodies = [m["Body"] for m in first]
    assert [b for b in bodies if b.startswith("a")] == ["a0", "a1", "a2"]
    assert "b0" in bodies
    by_body = {m["Body"]: m for m in first}
    assert by_body["b0"]["Attributes"]["MessageDeduplicationId"] == "d1"
    assert by_body["a0"]["Attributes"]["MessageGroupId"] == "a"
    assert (
        by_body["a0"]["Attributes"]["MessageDeduplicationId"] == hashlib.sha256(b"a0").hexdigest()
    )
    assert "SequenceNumber" in by_body["a0"]["Attributes"]
    # a retried receive with the same attempt id gets the same messages
    retry = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, ReceiveRequestAttemptId="try-1"
    )
    assert sorted(m["MessageId"] for m in retry.get("Messages", [])) == sorted(
        m["MessageId"] for m in first
    )
    for m in first:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    url2 = create(sqs, "nodedup", fifo=True)
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url2, MessageBody="x", MessageGroupId="g")
    assert error(exc) == ("InvalidParameterValue", 400)
    sqs.set_queue_attributes(
        QueueUrl=url2,
        Attributes={
            "DeduplicationScope": "messageGroup",
            "FifoThroughputLimit": "perMessageGroupId",
        },
    )
    attrs = sqs.get_queue_attributes(QueueUrl=url2, AttributeNames=["All"])["Attributes"]
    assert attrs["DeduplicationScope"] == "messageGroup"
    assert attrs["FifoThroughputLimit"] == "perMessageGroupId"


def test_dead_letter_queue_and_move_task(sqs: Any) -> None:
    dlq_url = create(sqs, "dlq")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}
    src_url = create(sqs, "src", RedrivePolicy=json.dumps(policy))
    got = sqs.get_queue_attributes(QueueUrl=src_url, AttributeNames=["RedrivePolicy"])
    assert json.loads(got["Attributes"]["RedrivePolicy"]) == policy
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq_url)["queueUrls"] == [src_url]

    with pytest.raises(ClientError) as exc:  # not a dead-letter queue
        sqs.start_message_move_task(SourceArn=dlq_arn.replace(":dlq", ":nothere"))
    assert error(exc)[1] in (400, 404)

    for i in range(3):
        sqs.send_message(QueueUrl=src_url, MessageBody=f"poison {i}")
    for _ in range(2):
        msgs = sqs.receive_message(QueueUrl=src_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        assert len(msgs["Messages"]) == 3
    assert sqs.receive_message(QueueUrl=src_url, MaxNumberOfMessages=10).get("Messages", []) == []
    dead = sqs.receive_message(
        QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0, AttributeNames=["All"]
    )["Messages"]
    assert sorted(m["Body"] for m in dead) == ["poison 0", "poison 1", "poison 2"]
    src_arn = dlq_arn.rsplit(":", 1)[0] + ":" + src_url.rsplit("/", 1)[1]
    assert dead[0]["Attributes"]["DeadLetterQueueSourceArn"] == src_arn

    handle = sqs.start_message_move_task(SourceArn=dlq_arn, MaxNumberOfMessagesPerSecond=100)[
        "TaskHandle"
    ]
    deadline = time.monotonic() + 10
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
        if tasks[0]["Status"] != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert tasks[0]["Status"] == "COMPLETED"
    assert tasks[0]["ApproximateNumberOfMessagesMoved"] == 3
    assert tasks[0]["ApproximateNumberOfMessagesToMove"] == 3
    assert tasks[0]["MaxNumberOfMessagesPerSecond"] == 100
    assert "TaskHandle" not in tasks[0]
    back = sqs.receive_message(QueueUrl=src_url, MaxNumberOfMessages=10, AttributeNames=["All"])
    assert sorted(m["Body"] for m in back["Messages"]) == ["poison 0", "poison 1", "poison 2"]
    assert all(m["Attributes"]["ApproximateReceiveCount"] == "1" for m in back["Messages"])
    with pytest.raises(ClientError) as exc:
        sqs.cancel_message_move_task(TaskHandle=handle)
    assert error(exc) == ("AWS.SimpleQueueService.UnsupportedOperation", 400)
    with pytest.raises(ClientError) as exc:
        sqs.cancel_message_move_task(TaskHandle="bm90LWEtdGFzaw==")
    assert error(exc) == ("ResourceNotFoundException", 404)


def test_move_task_to_destination_and_cancel(sqs_json: Any) -> None:
    sqs = sqs_json
    dlq_url = create(sqs, "dlq2")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    create(
        sqs,
        "src2",
        RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}),
    )
    other_url = create(sqs, "other")
    other_arn = sqs.get_queue_attributes(QueueUrl=other_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sqs.send_message_batch(
        QueueUrl=dlq_url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(6)]
    )
    handle = sqs.start_message_move_task(
        SourceArn=dlq_arn, DestinationArn=other_arn, MaxNumberOfMessagesPerSecond=2
    )["TaskHandle"]
    with pytest.raises(ClientError) as exc:  # one running task per queue
        sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=other_arn)
    assert error(exc) == ("AWS.SimpleQueueService.UnsupportedOperation", 400)
    running = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10)["Results"]
    assert running[0]["Status"] == "RUNNING" and running[0]["TaskHandle"] == handle
    assert running[0]["DestinationArn"] == other_arn
    moved = sqs.cancel_message_move_task(TaskHandle=handle)["ApproximateNumberOfMessagesMoved"]
    assert moved < 6
    deadline = time.monotonic() + 5
    while sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"][0]["Status"] == "CANCELLING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"][0]["Status"] == "CANCELLED"
    counts = [
        int(
            sqs.get_queue_attributes(QueueUrl=u, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"
            ]["ApproximateNumberOfMessages"]
        )
        for u in (dlq_url, other_url)
    ]
    assert sum(counts) == 6 and counts[1] < 6


def test_permissions(sqs: Any) -> None:
    url = create(sqs, "perm")
    sqs.add_permission(
        QueueUrl=url, Label="share", AWSAccountIds=["111122223333"], Actions=["SendMessage"]
    )
    with pytest.raises(ClientError) as exc:
        sqs.add_permission(
            QueueUrl=url, Label="share", AWSAccountIds=["111122223333"], Actions=["SendMessage"]
        )
    assert error(exc) == ("InvalidParameterValue", 400)
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"]
    )
    (statement,) = policy["Statement"]
    assert statement["Sid"] == "share"
    assert statement["Action"] == ["SQS:SendMessage"]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    sqs.remove_permission(QueueUrl=url, Label="share")
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])
    assert "Policy" not in attrs.get("Attributes", {})
    with pytest.raises(ClientError) as exc:
        sqs.remove_permission(QueueUrl=url, Label="share")
    assert error(exc) == ("InvalidParameterValue", 400)
    with pytest.raises(ClientError) as exc:
        sqs.add_permission(QueueUrl=url, Label="x", AWSAccountIds=["1"], Actions=["Fly"])
    assert error(exc) == ("InvalidParameterValue", 400)


def test_accounts(client_for: Any, server: Any) -> None:
    default = client_for("json")
    alice = client_for("json", access_key="111122223333")
    bob = client_for("query", access_key="444455556666")
    name = qname("shared")
    urls = [c.create_queue(QueueName=name)["QueueUrl"] for c in (default, alice, bob)]
    assert urls == [
        f"{server.url}/000000000000/{name}",
        f"{server.url}/111122223333/{name}",
        f"{server.url}/444455556666/{name}",
    ]
    alice.send_message(QueueUrl=urls[1], MessageBody="for alice")
    assert default.receive_message(QueueUrl=urls[0]).get("Messages", []) == []
    assert bob.receive_message(QueueUrl=urls[2]).get("Messages", []) == []
    # a queue URL names its account, whoever asks
    assert default.receive_message(QueueUrl=urls[1])["Messages"][0]["Body"] == "for alice"
    assert alice.list_queues(QueueNamePrefix=name)["QueueUrls"] == [urls[1]]
    assert default.list_queues(QueueNamePrefix=name)["QueueUrls"] == [urls[0]]
    assert (
        default.get_queue_url(QueueName=name, QueueOwnerAWSAccountId="444455556666")["QueueUrl"]
        == urls[2]
    )
    arn = alice.get_queue_attributes(QueueUrl=urls[1], AttributeNames=["QueueArn"])
    assert arn["Attributes"]["QueueArn"] == f"arn:aws:sqs:{REGION}:111122223333:{name}"
    with pytest.raises(alice.exceptions.QueueDoesNotExist):
        alice.get_queue_url(QueueName=qname("nowhere"))
    with pytest.raises(ClientError) as exc:
        alice.create_queue(QueueName="x" * 70)
    assert error(exc) == ("InvalidParameterValue", 400)


def test_region_from_signature(client_for: Any) -> None:
    tokyo = client_for("json", region="ap-northeast-1")
    url = tokyo.create_queue(QueueName=qname("region"))["QueueUrl"]
    arn = tokyo.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    assert arn["Attributes"]["QueueArn"].startswith("arn:aws:sqs:ap-northeast-1:000000000000:")
