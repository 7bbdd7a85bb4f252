"""One request and one result per SQS action, as a boto3 user writes and reads them."""

from __future__ import annotations

import json
from typing import Any

from conveyor.protocol.sqs.errors import SqsError
from conveyor.protocol.sqs.results import (
    batch_error_entry,
    message_result,
    send_batch_entry,
    send_result,
)

URL = "http://localhost:9324/000000000000/jobs"
FIFO_URL = "http://localhost:9324/000000000000/jobs.fifo"
ARN = "arn:aws:sqs:us-east-1:000000000000:jobs"
DLQ_ARN = "arn:aws:sqs:us-east-1:000000000000:jobs-dlq"
BODY = "héllo ☃ \U0001f600 <&> \"quoted\" 'single' \r\n\tend"
ATTRS: dict[str, Any] = {
    "color": {"DataType": "String", "StringValue": "blue & <green>"},
    "size": {"DataType": "Number", "StringValue": "-12.5e3"},
    "price": {"DataType": "Number.float", "StringValue": "1.99"},
    "thumb": {"DataType": "Binary.png", "BinaryValue": b"\x89PNG\r\n\x1a\n\x00"},
}
TRACE = {
    "AWSTraceHeader": {
        "DataType": "String",
        "StringValue": "Root=1-5759e988-bd862e3fe1be46a994272793",
    }
}

REQUESTS: dict[str, dict[str, Any]] = {
    "CreateQueue": {
        "QueueName": "jobs.fifo",
        "Attributes": {
            "FifoQueue": "true",
            "VisibilityTimeout": "45",
            "ContentBasedDeduplication": "true",
            "DeduplicationScope": "messageGroup",
            "FifoThroughputLimit": "perMessageGroupId",
            "RedrivePolicy": json.dumps(
                {
                    "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:dlq.fifo",
                    "maxReceiveCount": 5,
                }
            ),
        },
        "tags": {"team": "core", "empty": ""},
    },
    "GetQueueUrl": {"QueueName": "jobs", "QueueOwnerAWSAccountId": "123456789012"},
    "ListQueues": {"QueueNamePrefix": "jo", "NextToken": "abc==", "MaxResults": 50},
    "GetQueueAttributes": {"QueueUrl": URL, "AttributeNames": ["VisibilityTimeout", "QueueArn"]},
    "SetQueueAttributes": {
        "QueueUrl": URL,
        "Attributes": {
            "DelaySeconds": "5",
            "Policy": json.dumps({"Version": "2012-10-17", "Statement": []}),
            "RedriveAllowPolicy": json.dumps(
                {"redrivePermission": "byQueue", "sourceQueueArns": [ARN]}
            ),
        },
    },
    "DeleteQueue": {"QueueUrl": URL},
    "PurgeQueue": {"QueueUrl": URL},
    "SendMessage": {
        "QueueUrl": FIFO_URL,
        "MessageBody": BODY,
        "MessageAttributes": ATTRS,
        "MessageSystemAttributes": TRACE,
        "MessageDeduplicationId": "dedup-1!",
        "MessageGroupId": "group#1",
    },
    "SendMessageBatch": {
        "QueueUrl": URL,
        "Entries": [
            {"Id": "first", "MessageBody": BODY, "DelaySeconds": 10, "MessageAttributes": ATTRS},
            {"Id": "second-2", "MessageBody": "x", "MessageSystemAttributes": TRACE},
        ],
    },
    "ReceiveMessage": {
        "QueueUrl": URL,
        "AttributeNames": ["All"],
        "MessageSystemAttributeNames": ["SentTimestamp", "ApproximateReceiveCount"],
        "MessageAttributeNames": ["color", "foo.*"],
        "MaxNumberOfMessages": 10,
        "VisibilityTimeout": 0,
        "WaitTimeSeconds": 20,
        "ReceiveRequestAttemptId": "attempt-1",
    },
    "DeleteMessage": {"QueueUrl": URL, "ReceiptHandle": "AQEB+/handle=="},
    "DeleteMessageBatch": {
        "QueueUrl": URL,
        "Entries": [{"Id": "a", "ReceiptHandle": "h1"}, {"Id": "b", "ReceiptHandle": "h2"}],
    },
    "ChangeMessageVisibility": {"QueueUrl": URL, "ReceiptHandle": "h1", "VisibilityTimeout": 43200},
    "ChangeMessageVisibilityBatch": {
        "QueueUrl": URL,
        "Entries": [
            {"Id": "a", "ReceiptHandle": "h1", "VisibilityTimeout": 60},
            {"Id": "b", "ReceiptHandle": "h2"},
        ],
    },
    "TagQueue": {"QueueUrl": URL, "Tags": {"team": "core", "cost-center": "", "ünï": "cödé"}},
    "UntagQueue": {"QueueUrl": URL, "TagKeys": ["team", "cost-center"]},
    "ListQueueTags": {"QueueUrl": URL},
    "ListDeadLetterSourceQueues": {"QueueUrl": URL, "NextToken": "t1", "MaxResults": 10},
    "StartMessageMoveTask": {
        "SourceArn": DLQ_ARN,
        "DestinationArn": ARN,
        "MaxNumberOfMessagesPerSecond": 50,
    },
    "ListMessageMoveTasks": {"SourceArn": DLQ_ARN, "MaxResults": 10},
    "CancelMessageMoveTask": {"TaskHandle": "eyJ0YXNrIjoxfQ=="},
    "AddPermission": {
        "QueueUrl": URL,
        "Label": "share_1",
        "AWSAccountIds": ["111122223333", "444455556666"],
        "Actions": ["SendMessage", "ReceiveMessage"],
    },
    "RemovePermission": {"QueueUrl": URL, "Label": "share_1"},
}

_MSG = message_result(
    message_id="5fea7756-0ea4-451a-a703-a558b933e274",
    receipt_handle="MbZj6wDWli+JvwwJaBV+3dcjk2YW2vA3+STFFljTM8tJJg6HRG6PYSasuWXPJB+Cw",
    body=BODY,
    system_attributes={"SentTimestamp": "1700000000000", "ApproximateReceiveCount": "3"},
    message_attributes=ATTRS,
    requested_system=["All"],
    requested_attributes=["All"],
)

RESULTS: dict[str, dict[str, Any] | None] = {
    "CreateQueue": {"QueueUrl": FIFO_URL},
    "GetQueueUrl": {"QueueUrl": URL},
    "ListQueues": {"QueueUrls": [URL, FIFO_URL], "NextToken": "next&<token>"},
    "GetQueueAttributes": {
        "Attributes": {
            "VisibilityTimeout": "30",
            "QueueArn": ARN,
            "Policy": json.dumps({"a": "<b>&"}),
            "CreatedTimestamp": "1700000000",
        }
    },
    "SetQueueAttributes": None,
    "DeleteQueue": None,
    "PurgeQueue": None,
    "SendMessage": send_result("m-1", BODY, ATTRS, TRACE, "18849496460467696128"),
    "SendMessageBatch": {
        "Successful": [
            send_batch_entry("first", "m-1", BODY, ATTRS),
            send_batch_entry("second-2", "m-2", "x", None, TRACE),
        ],
        "Failed": [batch_error_entry("third", SqsError("InvalidParameterValue", "bad <delay>"))],
    },
    "ReceiveMessage": {"Messages": [_MSG, {**_MSG, "MessageId": "second"}]},
    "DeleteMessage": None,
    "DeleteMessageBatch": {
        "Successful": [{"Id": "a"}],
        "Failed": [
            {"Id": "b", "SenderFault": True, "Code": "ReceiptHandleIsInvalid", "Message": "no"}
        ],
    },
    "ChangeMessageVisibility": None,
    "ChangeMessageVisibilityBatch": {
        "Successful": [{"Id": "a"}, {"Id": "b"}],
        "Failed": [{"Id": "c", "SenderFault": False, "Code": "InternalError", "Message": "later"}],
    },
    "TagQueue": None,
    "UntagQueue": None,
    "ListQueueTags": {"Tags": {"team": "core", "empty": "", "ünï": "<&>"}},
    "ListDeadLetterSourceQueues": {"queueUrls": [URL, FIFO_URL], "NextToken": "n"},
    "StartMessageMoveTask": {"TaskHandle": "eyJ0YXNrIjoxfQ=="},
    "ListMessageMoveTasks": {
        "Results": [
            {
                "TaskHandle": "h",
                "Status": "RUNNING",
                "SourceArn": DLQ_ARN,
                "DestinationArn": ARN,
                "MaxNumberOfMessagesPerSecond": 50,
                "ApproximateNumberOfMessagesMoved": 2**40,
                "ApproximateNumberOfMessagesToMove": 10,
                "StartedTimestamp": 1700000000000,
            },
            {
                "Status": "FAILED",
                "SourceArn": DLQ_ARN,
                "FailureReason": "AccessDenied",
                "ApproximateNumberOfMessagesMoved": 0,
                "StartedTimestamp": 1,
            },
        ]
    },
    "CancelMessageMoveTask": {"ApproximateNumberOfMessagesMoved": 7},
    "AddPermission": None,
    "RemovePermission": None,
}
