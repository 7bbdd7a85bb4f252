"""Whatever arrives, the codec parses it or raises SqsError, and the error renders."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqs_samples import REQUESTS

from conveyor.protocol import sqs
from conveyor.protocol.sqs.errors import SqsError
from conveyor.protocol.sqs.model import ACTIONS

ACTION_NAMES = sorted(ACTIONS)


def _parse_or_sqs_error(method: str, query: str, headers: dict[str, str], body: bytes) -> None:
    try:
        sqs.parse_request(method, "/", query, headers, body)
    except SqsError as exc:
        for protocol in ("json", "query"):
            resp = sqs.render_error(protocol, exc, "r")
            assert 400 <= resp.status < 600


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(ACTION_NAMES), st.data())
def test_json_fuzz(action: str, data: st.DataObject) -> None:
    # start from a valid request and replace one member with junk
    params: dict[str, Any] = json.loads(json.dumps(REQUESTS[action], default=lambda b: "AAAA"))
    if params and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(params)))
        params[key] = data.draw(json_values)
    body = json.dumps(params).encode()
    _parse_or_sqs_error(
        "POST",
        "",
        {"x-amz-target": f"AmazonSQS.{action}", "content-type": "application/x-amz-json-1.0"},
        body,
    )


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(ACTION_NAMES))
def test_json_bytes_fuzz(body: bytes, action: str) -> None:
    _parse_or_sqs_error("POST", "", {"x-amz-target": f"AmazonSQS.{action}"}, body)


form_keys = st.sampled_from(
    [
        "Action",
        "QueueUrl",
        "MessageBody",
        "MaxNumberOfMessages",
        "AttributeName.1",
        "Attribute.1.Name",
        "Attribute.1.Value",
        "MessageAttribute.1.Name",
        "MessageAttribute.1.Value.DataType",
        "MessageAttribute.1.Value.StringValue",
        "MessageAttribute.1.Value.BinaryValue",
        "SendMessageBatchRequestEntry.1.Id",
        "SendMessageBatchRequestEntry.1.MessageBody",
        "SendMessageBatchRequestEntry.2.Id",
        "DeleteMessageBatchRequestEntry.1.Id",
        "Tag.1.Key",
        "QueueName",
    ]
) | st.text(max_size=15)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(ACTION_NAMES), st.lists(st.tuples(form_keys, st.text(max_size=20)), max_size=8)
)
def test_form_fuzz(action: str, pairs: list[tuple[str, str]]) -> None:
    from urllib.parse import urlencode

    body = urlencode([("Action", action), *pairs]).encode()
    _parse_or_sqs_error("POST", "", {"content-type": "application/x-www-form-urlencoded"}, body)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_form_bytes_fuzz(body: bytes) -> None:
    _parse_or_sqs_error("POST", "", {}, body)
