"""Responses parse, with botocore's own parsers, back into exactly what was rendered."""

from __future__ import annotations

import copy
import json
import types
import typing
import xml.etree.ElementTree as ET
from typing import Any

import msgspec
import pytest
import sqs_botocore as bc
from sqs_samples import RESULTS

from conveyor import errors as core_errors
from conveyor.protocol import sqs
from conveyor.protocol.sqs import results
from conveyor.protocol.sqs.errors import SPECS, SqsError
from conveyor.protocol.sqs.model import ACTIONS, XML_NAMESPACE, Shape

PROTOCOLS = ["json", "query"]


def _drop_empty_lists(value: Any) -> Any:
    """The query protocol has no way to say "empty list": botocore leaves the key out."""
    if isinstance(value, dict):
        return {k: _drop_empty_lists(v) for k, v in value.items() if v != []}
    if isinstance(value, list):
        return [_drop_empty_lists(v) for v in value]
    return value


def roundtrip(protocol: str, action: str, result: dict[str, Any] | None) -> dict[str, Any]:
    resp = sqs.render_result(action, protocol, result, "rid-1")
    assert resp.status == 200
    assert resp.content_type == ("application/x-amz-json-1.0" if protocol == "json" else "text/xml")
    assert ("x-amzn-RequestId", "rid-1") in resp.headers
    parsed = bc.parse(protocol, action, resp.status, resp.headers, resp.body)
    assert parsed.pop("ResponseMetadata")["RequestId"] == "rid-1"
    return parsed


def test_every_action_has_a_result_sample() -> None:
    assert set(RESULTS) == set(ACTIONS)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("action", sorted(RESULTS))
def test_botocore_parses_what_was_rendered(protocol: str, action: str) -> None:
    result = copy.deepcopy(RESULTS[action])
    parsed = roundtrip(protocol, action, result)
    expected = result or {}
    if protocol == "query":
        expected = _drop_empty_lists(expected)
    assert parsed == expected


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_empty_batch_lists(protocol: str) -> None:
    parsed = roundtrip(protocol, "DeleteMessageBatch", {"Successful": [{"Id": "a"}], "Failed": []})
    assert parsed.get("Failed", []) == []
    parsed = roundtrip(protocol, "ReceiveMessage", {"Messages": []})
    assert parsed.get("Messages", []) == []
    parsed = roundtrip(protocol, "ListDeadLetterSourceQueues", {"queueUrls": []})
    assert parsed.get("queueUrls", []) == []


def test_query_xml_shape() -> None:
    resp = sqs.render_result(
        "GetQueueAttributes", "query", {"Attributes": {"VisibilityTimeout": "30"}}, "r"
    )
    root = ET.fromstring(resp.body)
    ns = {"q": XML_NAMESPACE}
    assert root.tag == f"{{{XML_NAMESPACE}}}GetQueueAttributesResponse"
    attr = root.find("q:GetQueueAttributesResult/q:Attribute", ns)
    assert attr is not None
    assert attr.findtext("q:Name", namespaces=ns) == "VisibilityTimeout"
    assert attr.findtext("q:Value", namespaces=ns) == "30"
    assert root.findtext("q:ResponseMetadata/q:RequestId", namespaces=ns) == "r"
    empty = sqs.render_result("DeleteQueue", "query", None, "r2")
    assert (
        ET.fromstring(empty.body).findtext("q:ResponseMetadata/q:RequestId", namespaces=ns) == "r2"
    )


def test_carriage_returns_survive_xml() -> None:
    result = {
        "Messages": [
            {"MessageId": "m", "ReceiptHandle": "h", "MD5OfBody": "x", "Body": "a\r\nb\rc"}
        ]
    }
    assert roundtrip("query", "ReceiveMessage", result)["Messages"][0]["Body"] == "a\r\nb\rc"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_result_shape_mistakes_are_caught(protocol: str) -> None:
    with pytest.raises(KeyError):
        sqs.render_result("GetQueueUrl", protocol, {"QueueURL": "x"}, "r")
    with pytest.raises(TypeError):
        sqs.render_result(
            "CancelMessageMoveTask", protocol, {"ApproximateNumberOfMessagesMoved": "7"}, "r"
        )
    with pytest.raises(KeyError):
        sqs.render_result("DeleteQueue", protocol, {"QueueUrl": "x"}, "r")
    with pytest.raises(KeyError):
        sqs.render_result(
            "SendMessageBatch", protocol, {"Successful": [{"Id": "a"}], "Failed": []}, "r"
        )


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(SPECS))
def test_json_error_as_botocore_sees_it(code: str) -> None:
    spec = SPECS[code]
    resp = sqs.render_error("json", SqsError(code, 'it went <wrong> & "badly"'), "rid-9")
    assert resp.status == spec.status
    headers = dict(resp.headers)
    fault = "Sender" if spec.sender_fault else "Receiver"
    assert headers["x-amzn-query-error"] == f"{spec.query_code};{fault}"
    parsed = bc.parse("json", "SendMessage", resp.status, resp.headers, resp.body)
    error = parsed["Error"]
    # botocore takes the code from x-amzn-query-error and keeps the shape name aside;
    # its SQS handler then picks the exception class by that shape name.
    assert error["Code"] == spec.query_code
    assert error["QueryErrorCode"] == code
    assert error["Type"] == fault
    assert error["Message"] == 'it went <wrong> & "badly"'
    assert parsed["ResponseMetadata"]["RequestId"] == "rid-9"


@pytest.mark.parametrize("code", sorted(SPECS))
def test_query_error_as_botocore_sees_it(code: str) -> None:
    spec = SPECS[code]
    resp = sqs.render_error("query", SqsError(code, 'it went <wrong> & "badly"'), "rid-9")
    assert resp.status == spec.status
    assert resp.content_type == "text/xml"
    parsed = bc.parse("query", "SendMessage", resp.status, resp.headers, resp.body)
    assert parsed["Error"]["Code"] == spec.query_code
    assert parsed["Error"]["Type"] == ("Sender" if spec.sender_fault else "Receiver")
    assert parsed["Error"]["Message"] == 'it went <wrong> & "badly"'
    assert parsed["ResponseMetadata"]["RequestId"] == "rid-9"


@pytest.mark.parametrize(
    ("error", "code", "query_code", "status"),
    [
        (
            core_errors.QueueDoesNotExist("gone"),
            "QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue",
            400,
        ),
        (core_errors.QueueAlreadyExists("dup"), "QueueNameExists", "QueueAlreadyExists", 400),
        (
            core_errors.ReceiptHandleIsInvalid("bad"),
            "ReceiptHandleIsInvalid",
            "ReceiptHandleIsInvalid",
            404,
        ),
        (
            core_errors.PurgeQueueInProgress("wait"),
            "PurgeQueueInProgress",
            "AWS.SimpleQueueService.PurgeQueueInProgress",
            403,
        ),
        (core_errors.QueueFull("full"), "OverLimit", "OverLimit", 403),
        (core_errors.MessageTooLong("long"), "InvalidParameterValue", "InvalidParameterValue", 400),
        (core_errors.Unavailable("not leader"), "ServiceUnavailable", "ServiceUnavailable", 503),
        (RuntimeError("boom"), "InternalError", "InternalError", 500),
    ],
)
def test_conveyor_errors_map_to_sqs(
    error: BaseException, code: str, query_code: str, status: int
) -> None:
    err = sqs.to_sqs_error(error)
    assert (err.code, err.query_code, err.status) == (code, query_code, status)
    if isinstance(error, RuntimeError):
        assert "boom" not in err.message  # internals are not leaked to clients


def test_every_conveyor_error_has_a_consistent_sqs_spelling() -> None:
    for cls in core_errors.ERRORS.values():
        err = sqs.to_sqs_error(cls("m"))
        assert err.code == cls.sqs_code
        assert err.query_code == (cls.sqs_query_code or cls.sqs_code), cls
        assert err.status == cls.http_status, cls
        assert err.sender_fault == cls.sender_fault, cls


def test_error_messages_quoting_unprintable_input_stay_valid_xml() -> None:
    err = SqsError("InvalidAttributeName", "Unknown Attribute a\x01b\ud800\r<x>.")
    resp = sqs.render_error("query", err, "r")
    parsed = bc.parse("query", "GetQueueAttributes", resp.status, resp.headers, resp.body)
    assert parsed["Error"]["Message"] == "Unknown Attribute a\ufffdb\ufffd\r<x>."


# --- typed results ------------------------------------------------------------------------

_KINDS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "boolean": (bool,),
    "blob": (bytes,),
}


def _typed_results() -> list[type[results.TypedResult]]:
    return [
        results.SendMessageResult,
        results.ReceiveMessageResult,
        results.SendMessageBatchResult,
        results.DeleteMessageBatchResult,
    ]


def _check_struct_against_shape(cls: type[msgspec.Struct], shape: Shape) -> None:
    """Every field of ``cls`` is a member of ``shape``, of the member's kind; optional
    fields default to None (absent, as None values of a dict result are)."""
    required = set()
    for f in msgspec.structs.fields(cls):
        assert f.name in shape.members, (cls.__name__, f.name)
        member = shape.members[f.name].shape
        hint = f.type
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
        origin = typing.get_origin(hint) or hint
        if member.kind in _KINDS:
            assert origin in _KINDS[member.kind], (cls.__name__, f.name, hint)
        elif member.kind == "list":
            assert origin is list, (cls.__name__, f.name, hint)
            (item,) = typing.get_args(hint)
            assert member.item is not None
            if member.item.kind == "structure":
                _check_struct_against_shape(item, member.item)
        else:
            assert member.kind == "map" and origin is dict, (cls.__name__, f.name, hint)
        if f.required:
            required.add(f.name)
        else:
            assert f.default is None, (cls.__name__, f.name)
    assert shape.required <= required, cls


@pytest.mark.parametrize("cls", _typed_results(), ids=lambda c: c.__name__)
def test_typed_results_match_the_model(cls: type[results.TypedResult]) -> None:
    output = ACTIONS[cls.action].output
    assert output is not None
    _check_struct_against_shape(cls, output)


def _typed_samples() -> list[tuple[str, results.TypedResult]]:
    msg = results.received_message(
        message_id="m-1",
        receipt_handle="h-1",
        body="héllo <b>&",
        system_attributes={"SentTimestamp": "1700000000000", "ApproximateReceiveCount": "3"},
        message_attributes={
            "s": {"DataType": "String", "StringValue": "v<&>"},
            "b": {"DataType": "Binary.gif", "BinaryValue": b"\x00\xff"},
        },
        requested_system=["All"],
        requested_attributes=["All"],
    )
    plain = results.received_message(message_id="m-2", receipt_handle="h-2", body="x")
    return [
        ("SendMessage", results.send_message_result("m-1", "body")),
        (
            "SendMessage",
            results.send_message_result(
                "m-1",
                "body",
                {"a": {"DataType": "Number", "StringValue": "1"}},
                {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1"}},
                "18849496460467696128",
            ),
        ),
        ("ReceiveMessage", results.ReceiveMessageResult([msg, plain])),
        ("ReceiveMessage", results.ReceiveMessageResult([])),
        (
            "SendMessageBatch",
            results.SendMessageBatchResult(
                [
                    results.SendMessageBatchResultEntry(
                        "a", "m-1", "d41d8cd98f00b204e9800998ecf8427e"
                    ),
                    results.SendMessageBatchResultEntry(
                        "b", "m-2", "d41d8cd98f00b204e9800998ecf8427e", "x", "y", "18"
                    ),
                ],
                [results.batch_error_result("c", core_errors.MessageTooLong("Too <long> & more."))],
            ),
        ),
        ("SendMessageBatch", results.SendMessageBatchResult([], [])),
        (
            "DeleteMessageBatch",
            results.DeleteMessageBatchResult(
                [results.BatchResultIdEntry("a"), results.BatchResultIdEntry("b")],
                [
                    results.batch_error_result("c", core_errors.ReceiptHandleIsInvalid("bad")),
                    results.batch_error_result("d", RuntimeError("boom")),
                ],
            ),
        ),
    ]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("sample", range(len(_typed_samples())))
def test_typed_results_render_as_their_dicts(protocol: str, sample: int) -> None:
    action, typed = _typed_samples()[sample]
    as_dict = results.as_dict(typed)
    assert None not in as_dict.values()
    typed_resp = sqs.render_result(action, protocol, typed, "rid-1")
    dict_resp = sqs.render_result(action, protocol, as_dict, "rid-1")
    assert (typed_resp.status, typed_resp.content_type) == (200, dict_resp.content_type)
    assert typed_resp.headers == dict_resp.headers
    if protocol == "json":
        assert json.loads(typed_resp.body) == json.loads(dict_resp.body)
    else:
        assert typed_resp.body == dict_resp.body
    parsed = bc.parse(protocol, action, typed_resp.status, typed_resp.headers, typed_resp.body)
    parsed.pop("ResponseMetadata")
    assert parsed == roundtrip(protocol, action, as_dict)


def test_typed_result_of_another_action_is_refused() -> None:
    with pytest.raises(KeyError):
        sqs.render_result("ReceiveMessage", "json", results.send_message_result("m", "b"), "r")


def test_dict_builders_are_the_typed_ones() -> None:
    assert sqs.send_result("m", "b", None, None, "1") == results.as_dict(
        results.send_message_result("m", "b", None, None, "1")
    )
    assert sqs.send_result("m", "b") == {"MessageId": "m", "MD5OfMessageBody": sqs.md5_of_body("b")}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_typed_batch_results_render_as_the_glue_dicts(protocol: str) -> None:
    """Byte for byte: the typed batch results against the dicts the builders make."""
    attrs = {"a": {"DataType": "Number", "StringValue": "1"}}
    trace = {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1"}}
    too_long = core_errors.MessageTooLong("Too <long>.")
    as_dicts = {
        "Successful": [
            results.send_batch_entry("a", "m-1", "body"),
            results.send_batch_entry("b", "m-2", "bödy", attrs, trace, "18"),
        ],
        "Failed": [results.batch_error_entry("c", too_long, protocol)],
    }
    typed = results.SendMessageBatchResult(
        [
            results.SendMessageBatchResultEntry("a", "m-1", sqs.md5_of_body("body")),
            results.SendMessageBatchResultEntry(
                "b",
                "m-2",
                sqs.md5_of_body("bödy"),
                sqs.md5_of_attributes(attrs),
                sqs.md5_of_attributes(trace),
                "18",
            ),
        ],
        [results.batch_error_result("c", too_long, protocol)],
    )
    a = sqs.render_result("SendMessageBatch", protocol, typed, "rid")
    b = sqs.render_result("SendMessageBatch", protocol, as_dicts, "rid")
    assert (a.status, a.content_type, a.headers, a.body) == (
        b.status,
        b.content_type,
        b.headers,
        b.body,
    )
    bad = core_errors.ReceiptHandleIsInvalid("bad")
    typed_delete = results.DeleteMessageBatchResult(
        [results.BatchResultIdEntry("a")],
        [results.batch_error_result("b", bad, protocol)],
    )
    dict_delete = {
        "Successful": [{"Id": "a"}],
        "Failed": [results.batch_error_entry("b", bad, protocol)],
    }
    a = sqs.render_result("DeleteMessageBatch", protocol, typed_delete, "rid")
    b = sqs.render_result("DeleteMessageBatch", protocol, dict_delete, "rid")
    assert a.body == b.body
