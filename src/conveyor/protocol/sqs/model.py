"""The shapes of the SQS API (version 2012-11-05): what each action takes and returns.

One table drives both protocols in both directions. A :class:`Shape` is a scalar
(``string``, ``integer`` (32-bit), ``long`` (64-bit), ``boolean``, ``blob``) or a
``list``, ``map`` or ``structure``. Each structure member has two names:

* ``name`` — its key in the JSON protocol and in the parameter and result dicts
  (``Entries``, ``MessageAttributes``), the names boto3 users write;
* ``wire`` — its name in the query protocol's form keys and XML elements
  (``SendMessageBatchRequestEntry``, ``MessageAttribute``).

Every SQS list and map is *flattened* on the query wire: a list member ``Entries``
with wire name ``SendMessageBatchRequestEntry`` appears as
``SendMessageBatchRequestEntry.1.Id`` in a form and as repeated
``<SendMessageBatchRequestEntry>`` elements in XML; a map member ``Attributes`` with
wire name ``Attribute`` appears as ``Attribute.1.Name`` / ``Attribute.1.Value`` and as
repeated ``<Attribute><Name/><Value/></Attribute>``. The key and value names of map
entries are ``Name``/``Value`` except for tags (``Key``/``Value``).

The structures follow the published service model; the query names are those the query
protocol has always used (the JSON-only model that current SDKs ship omits them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["string", "integer", "long", "boolean", "blob", "list", "map", "structure"]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True, eq=False)
class Member:
    name: str
    shape: Shape
    wire: str


@dataclass(frozen=True, slots=True, eq=False)
class Shape:
    kind: Kind
    # structure
    members: dict[str, Member] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    # list element, map value
    item: Shape | None = None
    # map entries: the key's and the value's names on the query wire
    key_name: str = "Name"
    value_name: str = "Value"


STRING = Shape("string")
INTEGER = Shape("integer")
LONG = Shape("long")
BOOLEAN = Shape("boolean")
BLOB = Shape("blob")


def m(name: str, shape: Shape, wire: str | None = None) -> Member:
    return Member(name, shape, wire or name)


def struct(*members: Member, required: tuple[str, ...] = ()) -> Shape:
    by_name = {mem.name: mem for mem in members}
    assert set(required) <= set(by_name), required
    return Shape("structure", members=by_name, required=frozenset(required))


def list_of(item: Shape) -> Shape:
    return Shape("list", item=item)


def map_of(value: Shape, key_name: str = "Name", value_name: str = "Value") -> Shape:
    return Shape("map", item=value, key_name=key_name, value_name=value_name)


# --- shared shapes -------------------------------------------------------------------

QUEUE_ATTRIBUTES = map_of(STRING)
TAGS = map_of(STRING, key_name="Key")
MESSAGE_ATTRIBUTE_VALUE = struct(
    m("StringValue", STRING),
    m("BinaryValue", BLOB),
    m("StringListValues", list_of(STRING), "StringListValue"),
    m("BinaryListValues", list_of(BLOB), "BinaryListValue"),
    m("DataType", STRING),
    required=("DataType",),
)
MESSAGE_ATTRIBUTES = map_of(MESSAGE_ATTRIBUTE_VALUE)
BATCH_ERROR_ENTRY = struct(
    m("Id", STRING),
    m("SenderFault", BOOLEAN),
    m("Code", STRING),
    m("Message", STRING),
    required=("Id", "SenderFault", "Code"),
)


def _send_members() -> tuple[Member, ...]:
    return (
        m("MessageBody", STRING),
        m("DelaySeconds", INTEGER),
        m("MessageAttributes", MESSAGE_ATTRIBUTES, "MessageAttribute"),
        m("MessageSystemAttributes", MESSAGE_ATTRIBUTES, "MessageSystemAttribute"),
        m("MessageDeduplicationId", STRING),
        m("MessageGroupId", STRING),
    )


def _batch_result(entry_wire: str, entry: Shape) -> Shape:
    return struct(
        m("Successful", list_of(entry), entry_wire),
        m("Failed", list_of(BATCH_ERROR_ENTRY), "BatchResultErrorEntry"),
        required=("Successful", "Failed"),
    )


_ID_ONLY = struct(m("Id", STRING), required=("Id",))

MESSAGE = struct(
    m("MessageId", STRING),
    m("ReceiptHandle", STRING),
    m("MD5OfBody", STRING),
    m("Body", STRING),
    m("Attributes", map_of(STRING), "Attribute"),
    m("MD5OfMessageAttributes", STRING),
    m("MessageAttributes", MESSAGE_ATTRIBUTES, "MessageAttribute"),
)

MOVE_TASK = struct(
    m("TaskHandle", STRING),
    m("Status", STRING),
    m("SourceArn", STRING),
    m("DestinationArn", STRING),
    m("MaxNumberOfMessagesPerSecond", INTEGER),
    m("ApproximateNumberOfMessagesMoved", LONG),
    m("ApproximateNumberOfMessagesToMove", LONG),
    m("FailureReason", STRING),
    m("StartedTimestamp", LONG),
)

_QUEUE_URL = m("QueueUrl", STRING)


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    input: Shape
    output: Shape | None  # None: the response carries only its request id
    takes_queue_url: bool = field(init=False)  # read on every request: a field

    def __post_init__(self) -> None:
        object.__setattr__(self, "takes_queue_url", "QueueUrl" in self.input.members)


def _a(name: str, input: Shape, output: Shape | None = None) -> Action:
    return Action(name, input, output)


_ACTION_LIST = [
    _a(
        "CreateQueue",
        struct(
            m("QueueName", STRING),
            m("Attributes", QUEUE_ATTRIBUTES, "Attribute"),
            m("tags", TAGS, "Tag"),
            required=("QueueName",),
        ),
        struct(m("QueueUrl", STRING)),
    ),
    _a(
        "GetQueueUrl",
        struct(
            m("QueueName", STRING), m("QueueOwnerAWSAccountId", STRING), required=("QueueName",)
        ),
        struct(m("QueueUrl", STRING)),
    ),
    _a(
        "ListQueues",
        struct(m("QueueNamePrefix", STRING), m("NextToken", STRING), m("MaxResults", INTEGER)),
        struct(m("QueueUrls", list_of(STRING), "QueueUrl"), m("NextToken", STRING)),
    ),
    _a(
        "GetQueueAttributes",
        struct(
            _QUEUE_URL,
            m("AttributeNames", list_of(STRING), "AttributeName"),
            required=("QueueUrl",),
        ),
        struct(m("Attributes", QUEUE_ATTRIBUTES, "Attribute")),
    ),
    _a(
        "SetQueueAttributes",
        struct(
            _QUEUE_URL,
            m("Attributes", QUEUE_ATTRIBUTES, "Attribute"),
            required=("QueueUrl", "Attributes"),
        ),
    ),
    _a("DeleteQueue", struct(_QUEUE_URL, required=("QueueUrl",))),
    _a("PurgeQueue", struct(_QUEUE_URL, required=("QueueUrl",))),
    _a(
        "SendMessage",
        struct(_QUEUE_URL, *_send_members(), required=("QueueUrl", "MessageBody")),
        struct(
            m("MD5OfMessageBody", STRING),
            m("MD5OfMessageAttributes", STRING),
            m("MD5OfMessageSystemAttributes", STRING),
            m("MessageId", STRING),
            m("SequenceNumber", STRING),
        ),
    ),
    _a(
        "SendMessageBatch",
        struct(
            _QUEUE_URL,
            m(
                "Entries",
                list_of(struct(m("Id", STRING), *_send_members(), required=("Id", "MessageBody"))),
                "SendMessageBatchRequestEntry",
            ),
            required=("QueueUrl", "Entries"),
        ),
        _batch_result(
            "SendMessageBatchResultEntry",
            struct(
                m("Id", STRING),
                m("MessageId", STRING),
                m("MD5OfMessageBody", STRING),
                m("MD5OfMessageAttributes", STRING),
                m("MD5OfMessageSystemAttributes", STRING),
                m("SequenceNumber", STRING),
                required=("Id", "MessageId", "MD5OfMessageBody"),
            ),
        ),
    ),
    _a(
        "ReceiveMessage",
        struct(
            _QUEUE_URL,
            m("AttributeNames", list_of(STRING), "AttributeName"),
            m("MessageSystemAttributeNames", list_of(STRING), "MessageSystemAttributeName"),
            m("MessageAttributeNames", list_of(STRING), "MessageAttributeName"),
            m("MaxNumberOfMessages", INTEGER),
            m("VisibilityTimeout", INTEGER),
            m("WaitTimeSeconds", INTEGER),
            m("ReceiveRequestAttemptId", STRING),
            required=("QueueUrl",),
        ),
        struct(m("Messages", list_of(MESSAGE), "Message")),
    ),
    _a(
        "DeleteMessage",
        struct(_QUEUE_URL, m("ReceiptHandle", STRING), required=("QueueUrl", "ReceiptHandle")),
    ),
    _a(
        "DeleteMessageBatch",
        struct(
            _QUEUE_URL,
            m(
                "Entries",
                list_of(
                    struct(
                        m("Id", STRING),
                        m("ReceiptHandle", STRING),
                        required=("Id", "ReceiptHandle"),
                    )
                ),
                "DeleteMessageBatchRequestEntry",
            ),
            required=("QueueUrl", "Entries"),
        ),
        _batch_result("DeleteMessageBatchResultEntry", _ID_ONLY),
    ),
    _a(
        "ChangeMessageVisibility",
        struct(
            _QUEUE_URL,
            m("ReceiptHandle", STRING),
            m("VisibilityTimeout", INTEGER),
            required=("QueueUrl", "ReceiptHandle", "VisibilityTimeout"),
        ),
    ),
    _a(
        "ChangeMessageVisibilityBatch",
        struct(
            _QUEUE_URL,
            m(
                "Entries",
                list_of(
                    struct(
                        m("Id", STRING),
                        m("ReceiptHandle", STRING),
                        m("VisibilityTimeout", INTEGER),
                        required=("Id", "ReceiptHandle"),
                    )
                ),
                "ChangeMessageVisibilityBatchRequestEntry",
            ),
            required=("QueueUrl", "Entries"),
        ),
        _batch_result("ChangeMessageVisibilityBatchResultEntry", _ID_ONLY),
    ),
    _a(
        "TagQueue",
        struct(_QUEUE_URL, m("Tags", TAGS, "Tag"), required=("QueueUrl", "Tags")),
    ),
    _a(
        "UntagQueue",
        struct(
            _QUEUE_URL,
            m("TagKeys", list_of(STRING), "TagKey"),
            required=("QueueUrl", "TagKeys"),
        ),
    ),
    _a(
        "ListQueueTags",
        struct(_QUEUE_URL, required=("QueueUrl",)),
        struct(m("Tags", TAGS, "Tag")),
    ),
    _a(
        "ListDeadLetterSourceQueues",
        struct(
            _QUEUE_URL,
            m("NextToken", STRING),
            m("MaxResults", INTEGER),
            required=("QueueUrl",),
        ),
        struct(
            m("queueUrls", list_of(STRING), "QueueUrl"),
            m("NextToken", STRING),
            required=("queueUrls",),
        ),
    ),
    _a(
        "StartMessageMoveTask",
        struct(
            m("SourceArn", STRING),
            m("DestinationArn", STRING),
            m("MaxNumberOfMessagesPerSecond", INTEGER),
            required=("SourceArn",),
        ),
        struct(m("TaskHandle", STRING)),
    ),
    _a(
        "ListMessageMoveTasks",
        struct(m("SourceArn", STRING), m("MaxResults", INTEGER), required=("SourceArn",)),
        struct(m("Results", list_of(MOVE_TASK), "ListMessageMoveTasksResultEntry")),
    ),
    _a(
        "CancelMessageMoveTask",
        struct(m("TaskHandle", STRING), required=("TaskHandle",)),
        struct(m("ApproximateNumberOfMessagesMoved", LONG)),
    ),
    _a(
        "AddPermission",
        struct(
            _QUEUE_URL,
            m("Label", STRING),
            m("AWSAccountIds", list_of(STRING), "AWSAccountId"),
            m("Actions", list_of(STRING), "ActionName"),
            required=("QueueUrl", "Label", "AWSAccountIds", "Actions"),
        ),
    ),
    _a(
        "RemovePermission",
        struct(_QUEUE_URL, m("Label", STRING), required=("QueueUrl", "Label")),
    ),
]

ACTIONS: dict[str, Action] = {a.name: a for a in _ACTION_LIST}
assert len(ACTIONS) == len(_ACTION_LIST) == 23

API_VERSION = "2012-11-05"
XML_NAMESPACE = "http://queue.amazonaws.com/doc/2012-11-05/"
TARGET_PREFIX = "AmazonSQS."
