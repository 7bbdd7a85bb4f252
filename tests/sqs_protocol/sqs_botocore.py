"""botocore as the reference SQS client, in both protocols, without a network.

The SQS model that botocore ships today speaks only AWS JSON 1.0 and has lost the query
protocol's names (``Attribute.1.Name``, ``SendMessageBatchRequestEntry.1.Id``, XML
``<Message>`` elements...). :func:`query_service_model` puts them back — the table
below is the query wire format SQS has always used — so botocore's own query serializer
and XML parser can play the older SDKs. Other test suites (the server's) can reuse it
to force boto3 onto the query protocol.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import io
from typing import Any

import botocore.loaders
import botocore.parsers
import botocore.serialize
from botocore.awsrequest import AWSRequest, HeadersDict
from botocore.model import OperationModel, ServiceModel

# shape -> the name of a list's members / a map's entries on the query wire
_LIST_MEMBER_NAMES = {
    "AWSAccountIdList": "AWSAccountId",
    "ActionNameList": "ActionName",
    "AttributeNameList": "AttributeName",
    "BatchResultErrorEntryList": "BatchResultErrorEntry",
    "BinaryList": "BinaryListValue",
    "ChangeMessageVisibilityBatchRequestEntryList": "ChangeMessageVisibilityBatchRequestEntry",
    "ChangeMessageVisibilityBatchResultEntryList": "ChangeMessageVisibilityBatchResultEntry",
    "DeleteMessageBatchRequestEntryList": "DeleteMessageBatchRequestEntry",
    "DeleteMessageBatchResultEntryList": "DeleteMessageBatchResultEntry",
    "ListMessageMoveTasksResultEntryList": "ListMessageMoveTasksResultEntry",
    "MessageAttributeNameList": "MessageAttributeName",
    "MessageList": "Message",
    "MessageSystemAttributeList": "MessageSystemAttributeName",
    "QueueUrlList": "QueueUrl",
    "SendMessageBatchRequestEntryList": "SendMessageBatchRequestEntry",
    "SendMessageBatchResultEntryList": "SendMessageBatchResultEntry",
    "StringList": "StringListValue",
    "TagKeyList": "TagKey",
}
# map shape -> (entry name, key name, value name)
_MAPS = {
    "MessageBodyAttributeMap": (None, "Name", "Value"),
    "MessageBodySystemAttributeMap": (None, "Name", "Value"),
    "MessageSystemAttributeMap": ("Attribute", "Name", "Value"),
    "QueueAttributeMap": ("Attribute", "Name", "Value"),
    "TagMap": ("Tag", "Key", "Value"),
}
# (structure, member) -> the member's name on the query wire
_MEMBER_NAMES = {
    ("CreateQueueRequest", "Attributes"): "Attribute",
    ("CreateQueueRequest", "tags"): "Tag",
    ("GetQueueAttributesResult", "Attributes"): "Attribute",
    ("ListQueueTagsResult", "Tags"): "Tag",
    ("Message", "Attributes"): "Attribute",
    ("Message", "MessageAttributes"): "MessageAttribute",
    ("MessageAttributeValue", "StringListValues"): "StringListValue",
    ("MessageAttributeValue", "BinaryListValues"): "BinaryListValue",
    ("MessageSystemAttributeValue", "StringListValues"): "StringListValue",
    ("MessageSystemAttributeValue", "BinaryListValues"): "BinaryListValue",
    ("SendMessageBatchRequestEntry", "MessageAttributes"): "MessageAttribute",
    ("SendMessageBatchRequestEntry", "MessageSystemAttributes"): "MessageSystemAttribute",
    ("SendMessageRequest", "MessageAttributes"): "MessageAttribute",
    ("SendMessageRequest", "MessageSystemAttributes"): "MessageSystemAttribute",
    ("SetQueueAttributesRequest", "Attributes"): "Attribute",
}
# query error codes botocore's query parser reports (shape -> code)
QUERY_CODES = {
    "BatchEntryIdsNotDistinct": "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
    "BatchRequestTooLong": "AWS.SimpleQueueService.BatchRequestTooLong",
    "EmptyBatchRequest": "AWS.SimpleQueueService.EmptyBatchRequest",
    "InvalidBatchEntryId": "AWS.SimpleQueueService.InvalidBatchEntryId",
    "MessageNotInflight": "AWS.SimpleQueueService.MessageNotInflight",
    "PurgeQueueInProgress": "AWS.SimpleQueueService.PurgeQueueInProgress",
    "QueueDeletedRecently": "AWS.SimpleQueueService.QueueDeletedRecently",
    "QueueDoesNotExist": "AWS.SimpleQueueService.NonExistentQueue",
    "QueueNameExists": "QueueAlreadyExists",
    "TooManyEntriesInBatchRequest": "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
    "UnsupportedOperation": "AWS.SimpleQueueService.UnsupportedOperation",
}


@functools.cache
def _json_model_dict() -> dict[str, Any]:
    loader = botocore.loaders.Loader()
    data: dict[str, Any] = loader.load_service_model("sqs", "service-2")
    return data


@functools.cache
def json_service_model() -> ServiceModel:
    return ServiceModel(_json_model_dict(), service_name="sqs")


def query_model_dict() -> dict[str, Any]:
    data = copy.deepcopy(_json_model_dict())
    meta = data["metadata"]
    meta["protocol"] = "query"
    meta["protocols"] = ["query"]
    meta["xmlNamespace"] = "http://queue.amazonaws.com/doc/2012-11-05/"
    meta.pop("awsQueryCompatible", None)
    shapes = data["shapes"]
    for name, member_name in _LIST_MEMBER_NAMES.items():
        shapes[name]["member"]["locationName"] = member_name
    for name, (entry, key, value) in _MAPS.items():
        shapes[name]["key"]["locationName"] = key
        shapes[name]["value"]["locationName"] = value
        if entry:
            shapes[name]["locationName"] = entry
    for (shape, member), wire in _MEMBER_NAMES.items():
        shapes[shape]["members"][member]["locationName"] = wire
    for name, code in QUERY_CODES.items():
        shapes[name]["error"] = {"code": code, "httpStatusCode": 400, "senderFault": True}
    for op_name, op in data["operations"].items():
        if "output" in op:
            op["output"]["resultWrapper"] = f"{op_name}Result"
    return data


@functools.cache
def query_service_model() -> ServiceModel:
    return ServiceModel(query_model_dict(), service_name="sqs")


def operation(protocol: str, name: str) -> OperationModel:
    model = json_service_model() if protocol == "json" else query_service_model()
    return model.operation_model(name)


def serialize(protocol: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """What botocore would send: a request dict (method, url_path, query_string, headers, body)."""
    serializer = botocore.serialize.create_serializer(protocol, include_validation=True)
    request: dict[str, Any] = serializer.serialize_to_request(params, operation(protocol, action))
    body = request["body"]
    if isinstance(body, dict):  # the query serializer leaves the form as a dict
        prepared = AWSRequest(method="POST", url="http://x/", data=body).prepare()
        body = prepared.body
    request["body"] = body if isinstance(body, bytes) else (body or "").encode("utf-8")
    return request


def http_headers(request: dict[str, Any], host: str = "localhost:9324") -> dict[str, str]:
    headers = {k.lower(): str(v) for k, v in request["headers"].items()}
    headers["host"] = host
    if request["body"] and "content-type" not in headers:
        headers["content-type"] = "application/x-www-form-urlencoded; charset=utf-8"
    return headers


def parse(
    protocol: str, action: str, status: int, headers: list[tuple[str, str]], body: bytes
) -> dict[str, Any]:
    """What botocore makes of a response (its parser, as the client runs it)."""
    parser = botocore.parsers.create_parser(protocol)
    op = operation(protocol, action)
    parsed: dict[str, Any] = parser.parse(
        {"status_code": status, "headers": HeadersDict(headers), "body": body},
        op.output_shape,
    )
    return parsed


def sdk_check(attributes: dict[str, Any]) -> str:
    """The digest check the Java/Go/Ruby/.NET SDKs run on SQS responses, restated
    independently of the codec (botocore runs none)."""
    buf = io.BytesIO()

    def put(data: bytes) -> None:
        buf.write(len(data).to_bytes(4, "big"))
        buf.write(data)

    for name in sorted(attributes):
        value = attributes[name]
        put(name.encode())
        put(value["DataType"].encode())
        if value.get("StringValue") is not None:
            buf.write(b"\x01")
            put(value["StringValue"].encode())
        else:
            buf.write(b"\x02")
            put(value["BinaryValue"])
    return hashlib.md5(buf.getvalue()).hexdigest()
