"""What SQS clients set survives a restart of ``conveyor serve``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqs_server_helpers import make_client

testing = pytest.importorskip("conveyor.testing")


def test_queues_attributes_and_messages_survive_restart(tmp_path: Path, query_dir: Path) -> None:
    with testing.ServerProcess(tmp_path / "data") as server:
        sqs = make_client(server.http_url)
        alice = make_client(server.http_url, "query", query_dir, access_key="111122223333")
        dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}
        url = sqs.create_queue(
            QueueName="jobs",
            Attributes={
                "VisibilityTimeout": "17",
                "RedrivePolicy": json.dumps(redrive),
                "KmsMasterKeyId": "alias/mine",
            },
            tags={"team": "core"},
        )["QueueUrl"]
        sqs.add_permission(QueueUrl=url, Label="l1", AWSAccountIds=["111122223333"], Actions=["*"])
        sqs.send_message(QueueUrl=url, MessageBody="kept")
        alice_url = alice.create_queue(QueueName="jobs")["QueueUrl"]
        alice.send_message(QueueUrl=alice_url, MessageBody="alice's")

        server.restart()

        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["VisibilityTimeout"] == "17"
        assert json.loads(attrs["RedrivePolicy"]) == redrive
        assert attrs["KmsMasterKeyId"] == "alias/mine"
        assert json.loads(attrs["Policy"])["Statement"][0]["Sid"] == "l1"
        assert attrs["ApproximateNumberOfMessages"] == "1"
        assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "core"}
        assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [url]
        assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "kept"
        assert alice.list_queues()["QueueUrls"] == [alice_url]
        assert alice.receive_message(QueueUrl=alice_url)["Messages"][0]["Body"] == "alice's"
        assert sorted(sqs.list_queues()["QueueUrls"]) == [dlq, url]


def test_fifo_receive_attempts_survive_restart(tmp_path: Path) -> None:
    with testing.ServerProcess(tmp_path / "data") as server:
        sqs = make_client(server.http_url)
        url = sqs.create_queue(
            QueueName="jobs.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
        )["QueueUrl"]
        for body, group in (("a0", "a"), ("a1", "a"), ("b0", "b")):
            sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group)
        first = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=2, ReceiveRequestAttemptId="try-1"
        )["Messages"]
        assert [m["Body"] for m in first] == ["a0", "a1"]

        server.restart()

        # the retry gets the same messages under the same receipt handles
        retry = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=2,
            ReceiveRequestAttemptId="try-1",
            AttributeNames=["ApproximateReceiveCount"],
        )["Messages"]
        assert [(m["MessageId"], m["ReceiptHandle"]) for m in retry] == [
            (m["MessageId"], m["ReceiptHandle"]) for m in first
        ]
        assert [m["Attributes"]["ApproximateReceiveCount"] for m in retry] == ["1", "1"]
        # another attempt is a new receive: group a is in flight, b0 is next
        other = sqs.receive_message(QueueUrl=url, ReceiveRequestAttemptId="try-2")["Messages"]
        assert [m["Body"] for m in other] == ["b0"]
        for m in retry:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        # once none of its messages is in flight, the attempt id is a new receive
        assert (
            sqs.receive_message(QueueUrl=url, ReceiveRequestAttemptId="try-1").get("Messages", [])
            == []
        )
