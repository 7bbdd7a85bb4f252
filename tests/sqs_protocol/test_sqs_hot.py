"""The typed decode of the hot actions (``hot.decode``) against the generic path.

What the SQS API rests on: whenever ``hot.decode`` returns parameters, the generic path
(``parse_request`` then its checks) accepts the same request, with the same parameters
and no failed entries; whenever it returns None, the generic path answers. So the
answer a client gets never depends on which path a request took.
"""

from __future__ import annotations

import json
import typing
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor import limits
from conveyor.protocol import sqs
from conveyor.protocol.sqs import hot, validate
from conveyor.protocol.sqs.errors import SqsError
from conveyor.protocol.sqs.model import ACTIONS, INT32_MAX, INT64_MAX, Shape
from conveyor.protocol.sqs.request import _parse_json

URL = "http://localhost:9324/000000000000/jobs"
HOT_ACTIONS = (
    "SendMessage",
    "ReceiveMessage",
    "DeleteMessage",
    "SendMessageBatch",
    "DeleteMessageBatch",
)


def _headers(action: str) -> dict[str, str]:
    return {"x-amz-target": f"AmazonSQS.{action}", "content-type": "application/x-amz-json-1.0"}


def _generic(action: str, body: bytes) -> dict[str, Any] | Exception:
    """The generic path's checked parameters (the queue URL not parsed), or its error
    (an SqsError). A batch with failed entries counts as an error: the hot path must
    leave it alone."""
    try:
        _, params = _parse_json(_headers(action), body, None)
        failed = validate.check_request(action, params)
    except SqsError as exc:
        return exc
    if failed:
        return ValueError(f"failed entries: {failed}")
    return params


def _as_params(p: msgspec.Struct) -> dict[str, Any]:
    """The struct as the generic path's dict: absent (None) members left out."""
    out: dict[str, Any] = {}
    for name in p.__struct_fields__:
        value = getattr(p, name)
        if isinstance(value, list) and value and isinstance(value[0], msgspec.Struct):
            value = [_as_params(v) for v in value]
        if value is not None:
            out[name] = value
    return out


def check_same(action: str, body: bytes) -> hot.HotRequest | None:
    """``hot.decode`` of ``body`` agrees with the generic path; returns what it gave."""
    p = hot.decode(f"AmazonSQS.{action}", body)
    generic = _generic(action, body)
    if p is not None:
        assert p.action == action
        assert not isinstance(generic, Exception), (body, generic)
        assert _as_params(p) == generic
        # the whole generic parse: the same parameters, or the queue URL's error, which
        # the hot path meets as it parses the URL
        try:
            req = sqs.parse_request("POST", "/", "", _headers(action), body)
        except SqsError as exc:
            assert exc.code == "InvalidAddress"
            with pytest.raises(SqsError) as url_error:
                sqs.parse_queue_url(p.QueueUrl)
            assert (url_error.value.code, url_error.value.message) == (exc.code, exc.message)
        else:
            assert req.params == generic and req.entry_errors == {}
    return p


def _body(params: dict[str, Any]) -> bytes:
    return json.dumps(params).encode()


SIMPLE = {
    "SendMessage": {"QueueUrl": URL, "MessageBody": "hello"},
    "ReceiveMessage": {"QueueUrl": URL},
    "DeleteMessage": {"QueueUrl": URL, "ReceiptHandle": "AQEB+/handle=="},
    "SendMessageBatch": {
        "QueueUrl": URL,
        "Entries": [{"Id": "a", "MessageBody": "one"}, {"Id": "b-2_", "MessageBody": "two"}],
    },
    "DeleteMessageBatch": {
        "QueueUrl": URL,
        "Entries": [{"Id": "a", "ReceiptHandle": "h1"}, {"Id": "b", "ReceiptHandle": "h2"}],
    },
}


def _send_batch(*entries: dict[str, Any]) -> bytes:
    return _body({"QueueUrl": URL, "Entries": list(entries)})


def _delete_batch(*entries: dict[str, Any]) -> bytes:
    return _body({"QueueUrl": URL, "Entries": list(entries)})


def _sends(n: int, **kw: Any) -> list[dict[str, Any]]:
    return [{"Id": f"m{i}", "MessageBody": f"body {i}", **kw} for i in range(n)]


@pytest.mark.parametrize(
    ("action", "params"),
    [
        *SIMPLE.items(),
        ("SendMessage", {"QueueUrl": URL, "MessageBody": "x" * 1024, "DelaySeconds": 900}),
        ("SendMessage", {"QueueUrl": URL, "MessageBody": "ünïcödé 😀\t\n\r", "DelaySeconds": 0}),
        ("SendMessage", {"QueueUrl": URL, "MessageBody": "a", "MessageGroupId": "g!~"}),
        ("SendMessage", {"QueueUrl": URL, "MessageBody": "a", "MessageDeduplicationId": "d"}),
        ("SendMessage", {"QueueUrl": URL, "MessageBody": 'esc"aped\\ \u00e9 \n'}),
        ("SendMessage", {"QueueUrl": URL, "MessageBody": "a", "MessageAttributes": None}),
        ("SendMessage", {"QueueUrl": URL, "MessageBody": "a", "DelaySeconds": None}),
        ("SendMessage", {"QueueUrl": "", "MessageBody": "a"}),  # InvalidAddress, later
        (
            "ReceiveMessage",
            {
                "QueueUrl": URL,
                "AttributeNames": ["All", "VisibilityTimeout"],
                "MessageSystemAttributeNames": ["SentTimestamp", "AWSTraceHeader"],
                "MessageAttributeNames": ["All", ".*", "color", "foo.*"],
                "MaxNumberOfMessages": 10,
                "VisibilityTimeout": 43200,
                "WaitTimeSeconds": 20,
                "ReceiveRequestAttemptId": "attempt-1",
            },
        ),
        ("ReceiveMessage", {"QueueUrl": URL, "MaxNumberOfMessages": 1, "VisibilityTimeout": 0}),
        ("ReceiveMessage", {"QueueUrl": URL, "AttributeNames": [], "WaitTimeSeconds": 0}),
        ("DeleteMessage", {"QueueUrl": URL, "ReceiptHandle": ""}),
        ("SendMessageBatch", {"QueueUrl": URL, "Entries": _sends(10, DelaySeconds=3)}),
        (
            "SendMessageBatch",
            {
                "QueueUrl": URL,
                "Entries": [
                    {"Id": "x" * 80, "MessageBody": "é\n", "MessageGroupId": "g"},
                    {"Id": "y", "MessageBody": "x" * 1000, "MessageDeduplicationId": "d"},
                ],
            },
        ),
        ("DeleteMessageBatch", {"QueueUrl": URL, "Entries": [{"Id": "a", "ReceiptHandle": ""}]}),
    ],
)
def test_simple_requests_take_the_hot_path(action: str, params: dict[str, Any]) -> None:
    assert check_same(action, _body(params)) is not None


@pytest.mark.parametrize(
    ("action", "body"),
    [
        # not JSON, not an object, empty, bad UTF-8
        ("SendMessage", b""),
        ("SendMessage", b"   "),
        ("SendMessage", b"[]"),
        ("SendMessage", b'{"QueueUrl": "' + URL.encode() + b'", "MessageBody": "a"'),
        ("SendMessage", b'{"QueueUrl": "' + URL.encode() + b'", "MessageBody": "\xff"}'),
        ("SendMessage", b'{"QueueUrl": "u", "MessageBody": "a"} trailing'),
        # missing or null members
        ("SendMessage", _body({"QueueUrl": URL})),
        ("SendMessage", _body({"MessageBody": "a"})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": None})),
        ("SendMessage", _body({"QueueUrl": None, "MessageBody": "a"})),
        ("DeleteMessage", _body({"QueueUrl": URL})),
        ("DeleteMessage", _body({"QueueUrl": URL, "ReceiptHandle": None})),
        ("ReceiveMessage", _body({})),
        # wrong types
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": 5})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "a", "DelaySeconds": "5"})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "a", "DelaySeconds": True})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "a", "DelaySeconds": 1.0})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "a", "MessageGroupId": 1})),
        ("ReceiveMessage", _body({"QueueUrl": URL, "AttributeNames": "All"})),
        ("ReceiveMessage", _body({"QueueUrl": URL, "AttributeNames": [None, "All"]})),
        ("ReceiveMessage", _body({"QueueUrl": URL, "MessageAttributeNames": [1]})),
        ("ReceiveMessage", _body({"QueueUrl": URL, "MaxNumberOfMessages": "1"})),
        # out of range, for the model and for SQS's rules
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "a", "DelaySeconds": 901})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "a", "DelaySeconds": -1})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "a", "DelaySeconds": INT32_MAX})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "a", "DelaySeconds": INT64_MAX})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "a", "DelaySeconds": 2**70})),
        ("ReceiveMessage", _body({"QueueUrl": URL, "MaxNumberOfMessages": 0})),
        ("ReceiveMessage", _body({"QueueUrl": URL, "MaxNumberOfMessages": 11})),
        ("ReceiveMessage", _body({"QueueUrl": URL, "VisibilityTimeout": 43201})),
        ("ReceiveMessage", _body({"QueueUrl": URL, "WaitTimeSeconds": 21})),
        ("ReceiveMessage", _body({"QueueUrl": URL, "WaitTimeSeconds": -1})),
        ("ReceiveMessage", _body({"QueueUrl": URL, "AttributeNames": ["x"] * 1001})),
        # SQS's rules
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": ""})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "a\u0001b"})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "a\bb"})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "a\x1fb"})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "é\u0000"})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "\ud800"})),  # lone surrogate
        ("SendMessage", b'{"QueueUrl": "u", "MessageBody": "\xef\xbf\xbe"}'),  # U+FFFE, raw
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "\uffff"})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "x" * (1024 * 1024 + 1)})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "é" * (512 * 1024 + 1)})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "a", "MessageGroupId": ""})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "a", "MessageGroupId": "a b"})),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "a", "MessageGroupId": "g" * 129})),
        (
            "SendMessage",
            _body({"QueueUrl": URL, "MessageBody": "a", "MessageDeduplicationId": "é"}),
        ),
        ("ReceiveMessage", _body({"QueueUrl": URL, "AttributeNames": ["Nope"]})),
        ("ReceiveMessage", _body({"QueueUrl": URL, "MessageSystemAttributeNames": ["Policy"]})),
        ("ReceiveMessage", _body({"QueueUrl": URL, "MessageAttributeNames": ["AWS.x"]})),
        ("ReceiveMessage", _body({"QueueUrl": URL, "ReceiveRequestAttemptId": "a b"})),
        # the parts left to the generic path: unknown members, message attributes
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "a", "Unknown": [1, {"x": 2}]})),
        ("ReceiveMessage", b'{"QueueUrl": "u", "Unknown": "\x80"}'),  # not UTF-8
        (
            "SendMessage",
            _body(
                {
                    "QueueUrl": URL,
                    "MessageBody": "a",
                    "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}},
                }
            ),
        ),
        ("SendMessage", _body({"QueueUrl": URL, "MessageBody": "a", "MessageAttributes": {}})),
        # batches: the batch's rules, and any entry failing its own
        ("SendMessageBatch", _send_batch()),
        ("SendMessageBatch", _body({"QueueUrl": URL})),
        ("SendMessageBatch", _body({"QueueUrl": URL, "Entries": None})),
        ("SendMessageBatch", _body({"QueueUrl": URL, "Entries": [None, *_sends(1)]})),
        ("SendMessageBatch", _send_batch(*_sends(11))),
        ("SendMessageBatch", _send_batch(*_sends(2), {"Id": "m1", "MessageBody": "again"})),
        ("SendMessageBatch", _send_batch({"Id": "", "MessageBody": "a"})),
        ("SendMessageBatch", _send_batch({"Id": "a.b", "MessageBody": "a"})),
        ("SendMessageBatch", _send_batch({"Id": "x" * 81, "MessageBody": "a"})),
        ("SendMessageBatch", _send_batch({"Id": "a"})),
        ("SendMessageBatch", _send_batch({"Id": "a", "MessageBody": "a", "Other": 1})),
        ("SendMessageBatch", _send_batch(*_sends(1), {"Id": "b", "MessageBody": ""})),
        ("SendMessageBatch", _send_batch(*_sends(1), {"Id": "b", "MessageBody": "\u0002"})),
        ("SendMessageBatch", _send_batch(*_sends(2, DelaySeconds=-1))),
        (
            "SendMessageBatch",
            _send_batch(*_sends(1), {"Id": "b", "MessageBody": "a", "MessageGroupId": " "}),
        ),
        (
            "SendMessageBatch",
            _send_batch(
                {"Id": "a", "MessageBody": "x" * (600 * 1024)},
                {"Id": "b", "MessageBody": "x" * (600 * 1024)},
            ),
        ),
        (
            "SendMessageBatch",
            _send_batch(
                *_sends(1),
                {
                    "Id": "b",
                    "MessageBody": "a",
                    "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}},
                },
            ),
        ),
        ("DeleteMessageBatch", _delete_batch()),
        ("DeleteMessageBatch", _delete_batch({"Id": "a"})),
        ("DeleteMessageBatch", _delete_batch({"Id": "a", "ReceiptHandle": None})),
        (
            "DeleteMessageBatch",
            _delete_batch(*[{"Id": f"i{i}", "ReceiptHandle": "h"} for i in range(11)]),
        ),
        (
            "DeleteMessageBatch",
            _delete_batch({"Id": "a", "ReceiptHandle": "h"}, {"Id": "a", "ReceiptHandle": "i"}),
        ),
        ("DeleteMessageBatch", _delete_batch({"Id": "a!", "ReceiptHandle": "h"})),
        (
            "SendMessage",
            _body({"QueueUrl": URL, "MessageBody": "a", "MessageSystemAttributes": {"x": 1}}),
        ),
    ],
)
def test_other_requests_take_the_generic_path(action: str, body: bytes) -> None:
    assert check_same(action, body) is None


def test_repeated_members_keep_the_last_value() -> None:
    body = b'{"QueueUrl": "u", "MessageBody": "first", "MessageBody": "last"}'
    p = check_same("SendMessage", body)
    assert isinstance(p, hot.SendMessageIn) and p.MessageBody == "last"
    # a null last value is an absent member for both
    body = b'{"QueueUrl": "u", "MessageBody": "a", "DelaySeconds": 5, "DelaySeconds": null}'
    p = check_same("SendMessage", body)
    assert isinstance(p, hot.SendMessageIn) and p.DelaySeconds is None
    # a bad first value: the generic path, which takes the last
    assert (
        check_same("SendMessage", b'{"QueueUrl": "u", "MessageBody": 1, "MessageBody": "a"}')
        is None
    )


def test_other_targets_are_not_hot() -> None:
    body = _body(SIMPLE["SendMessage"])
    for target in (None, "", "SendMessage", "AmazonSQS.SendMessageBatch", "amazonsqs.SendMessage"):
        assert hot.decode(target, body) is None
    assert set(hot._DECODERS) == {f"AmazonSQS.{a}" for a in HOT_ACTIONS}


def test_msgspec_refuses_raw_control_characters_in_strings() -> None:
    """What skipping the character check of escape-free ASCII bodies rests on."""
    for c in range(0x20):
        with pytest.raises(msgspec.DecodeError):
            msgspec.json.decode(b'{"a": "x' + bytes([c]) + b'y"}')
        with pytest.raises(msgspec.DecodeError):
            msgspec.json.decode(b'{"a": "x' + bytes([c]) + b'y"}', type=hot.SendMessageIn)
    assert hot.decode("AmazonSQS.SendMessage", b'{"QueueUrl": "u", "MessageBody": "a\x7f"}')


def test_structs_follow_the_model() -> None:
    """Every field is a member of the action's input; the required ones are required."""

    def check(cls: type[msgspec.Struct], shape: Shape) -> None:
        fields = msgspec.structs.fields(cls)
        assert {f.name for f in fields} <= set(shape.members), cls
        assert {f.name for f in fields if f.required} == set(shape.required), cls
        for f in fields:
            member = shape.members[f.name].shape
            item = member.item
            if member.kind == "list" and item is not None and item.kind == "structure":
                (entry_cls,) = typing.get_args(typing.get_args(f.type)[0])
                check(entry_cls, item)

    for cls in (
        hot.SendMessageIn,
        hot.ReceiveMessageIn,
        hot.DeleteMessageIn,
        hot.SendMessageBatchIn,
        hot.DeleteMessageBatchIn,
    ):
        check(cls, ACTIONS[cls.action].input)
    assert limits.receive_messages_max == 10


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**65), max_value=2**65)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["All", ".*", "color", "foo.*", "SentTimestamp", "", "a" * 129, "\x00"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(HOT_ACTIONS), st.data())
def test_fuzz_hot_agrees_with_generic(action: str, data: st.DataObject) -> None:
    params: dict[str, Any] = json.loads(json.dumps(SIMPLE[action]))
    members = sorted(ACTIONS[action].input.members)
    targets: list[dict[str, Any]] = [params]
    if "Entries" in params:  # a batch: its entries, several of them alike
        entry_members = sorted(ACTIONS[action].input.members["Entries"].shape.item.members)
        params["Entries"] = params["Entries"] * data.draw(st.integers(0, 6))
        for i, e in enumerate(params["Entries"]):
            params["Entries"][i] = e = dict(e, Id=data.draw(st.sampled_from(["a", "b", f"e{i}"])))
            targets.append(e)
    for _ in range(data.draw(st.integers(0, 4))):
        target = data.draw(st.sampled_from(targets))
        names = members if target is params else entry_members
        name = data.draw(st.sampled_from([*names, "Other"]))
        if data.draw(st.booleans()):
            target.pop(name, None)
        else:
            target[name] = data.draw(json_values)
    check_same(action, json.dumps(params, ensure_ascii=data.draw(st.booleans())).encode())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(HOT_ACTIONS), st.text(max_size=40), st.booleans())
def test_fuzz_message_bodies(action: str, text: str, ascii_only: bool) -> None:
    params = dict(SIMPLE["SendMessage"], MessageBody=text)
    check_same("SendMessage", json.dumps(params, ensure_ascii=ascii_only).encode())
    check_same(action, json.dumps({**SIMPLE[action], "ReceiptHandle": text}).encode())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(HOT_ACTIONS), st.binary(max_size=120))
def test_fuzz_bytes(action: str, body: bytes) -> None:
    check_same(action, body)
    check_same(action, b'{"QueueUrl": "u", "MessageBody": "' + body + b'", "ReceiptHandle": "h"}')
