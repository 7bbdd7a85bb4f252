"""The SQS API answers the same whether a request takes the hot path or the generic one.

:class:`SqsApi` serves SendMessage, ReceiveMessage and DeleteMessage of the JSON
protocol from typed structs when it can (``conveyor.protocol.sqs.hot``). Each request
below is answered twice by an API over a recording stub broker: as it comes, and with
the hot path switched off. The responses (status, headers, body), what the broker was
asked, and the requests counted for the metrics must be the same.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor import errors
from conveyor.protocol import sqs
from conveyor.protocol.sqs import hot
from conveyor.server.http import Request
from conveyor.server.settings import Settings
from conveyor.server.sqs_api import SqsApi
from conveyor.types import Message, MessageAttribute, SendEntry, SendResult

HOST = "localhost:9324"
URL = f"http://{HOST}/000000000000/jobs"
FIFO_URL = f"http://{HOST}/000000000000/jobs.fifo"
OTHER_URL = f"http://{HOST}/123456789012/jobs"  # another account's queue
MISSING_URL = f"http://{HOST}/000000000000/missing"
AUTH = (
    "AWS4-HMAC-SHA256 Credential=123456789012/20240101/eu-west-1/sqs/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=abc"
)


def _message(i: int, **kw: Any) -> Message:
    fields: dict[str, Any] = {
        "queue": "jobs",
        "message_id": f"id-{i}",
        "body": f"body {i}".encode(),
        "receipt_handle": f"handle-{i}",
        "attributes": {},
        "system": {"SenderId": "000000000000"},
        "sent_ms": 1_700_000_000_000 + i,
        "receive_count": 1 + i,
        "first_receive_ms": 1_700_000_000_500 + i,
    }
    fields.update(kw)
    return Message(**fields)


MESSAGES = [
    _message(0),
    _message(1, body="ünï 😀".encode()),
    _message(2, body=b"not utf-8 \xff\xfe"),
    _message(
        3,
        attributes={
            "color": MessageAttribute("String", "red"),
            "size": MessageAttribute("Number", "10"),
            "blob": MessageAttribute("Binary", None, b"\x00\x01"),
            "foo.bar": MessageAttribute("String.custom", "x"),
        },
    ),
    _message(
        4,
        system={"SenderId": "123456789012", "AWSTraceHeader": "Root=1", "DLQ": "x"},
        group_id="g",
        dedup_id="d",
        sequence_number="18",
    ),
    _message(5, system={"DeadLetterQueueSourceQueue": "123456789012:src"}),
    _message(6, system={}),
]


class RecordingBroker:
    """Answers from fixed data and records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self._ids = 0

    def _check(self, queue: str) -> None:
        if queue.startswith("missing"):
            raise errors.QueueDoesNotExist("The specified queue does not exist.")

    async def send_batch(
        self, queue: str, entries: Sequence[SendEntry]
    ) -> list[SendResult | errors.ConveyorError]:
        self.calls.append(("send_batch", queue, [msgspec_tuple(e) for e in entries]))
        self._check(queue)
        out: list[SendResult | errors.ConveyorError] = []
        for e in entries:
            if e.body == "too long":
                out.append(errors.MessageTooLong("Message too long."))
            else:
                self._ids += 1
                seq = str(self._ids) if queue.endswith(".fifo") else None
                out.append(SendResult(message_id=f"mid-{self._ids}", sequence_number=seq))
        return out

    async def receive(
        self,
        queue: str,
        max_messages: int = 1,
        *,
        visibility_timeout_s: int | None = None,
        wait_s: float | None = None,
        attempt_id: str | None = None,
    ) -> list[Message]:
        self.calls.append(
            ("receive", queue, max_messages, visibility_timeout_s, wait_s, attempt_id)
        )
        self._check(queue)
        if wait_s:
            await asyncio.sleep(0)  # a long poll waits: the caller goes on in a task
        return MESSAGES[:max_messages] if visibility_timeout_s != 7 else []

    async def delete(self, queue: str, receipt_handle: str) -> None:
        self.calls.append(("delete", queue, receipt_handle))
        self._check(queue)
        if receipt_handle == "bad":
            raise errors.ReceiptHandleIsInvalid("The receipt handle is not valid.")

    async def delete_batch(
        self, queue: str, receipt_handles: Sequence[str]
    ) -> list[errors.ConveyorError | None]:
        self.calls.append(("delete_batch", queue, list(receipt_handles)))
        self._check(queue)
        return [
            errors.ReceiptHandleIsInvalid(f"The receipt handle {h} is not valid.")
            if h == "bad"
            else None
            for h in receipt_handles
        ]

    async def redrive(self, *args: Any) -> int:
        return 0


def msgspec_tuple(e: SendEntry) -> tuple[Any, ...]:
    return (e.body, e.attributes, e.delay_s, e.group_id, e.dedup_id, e.system)


def _request(action: str, body: bytes | dict[str, Any], **headers: str) -> Request:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {
        "host": HOST,
        "x-amz-target": f"AmazonSQS.{action}",
        "content-type": "application/x-amz-json-1.0",
        "content-length": str(len(raw)),
    }
    h.update(headers)
    return Request("POST", "/", "", h, raw)


REQUESTS = [
    # SendMessage
    _request("SendMessage", {"QueueUrl": URL, "MessageBody": "hello"}),
    _request("SendMessage", {"QueueUrl": URL, "MessageBody": "x" * 2000, "DelaySeconds": 5}),
    _request("SendMessage", {"QueueUrl": URL, "MessageBody": 'é\n\t\\"😀'}),
    _request("SendMessage", {"QueueUrl": FIFO_URL, "MessageBody": "a", "DelaySeconds": 0}),
    _request(
        "SendMessage",
        {
            "QueueUrl": FIFO_URL,
            "MessageBody": "a",
            "MessageGroupId": "g",
            "MessageDeduplicationId": "d",
        },
    ),
    _request("SendMessage", {"QueueUrl": OTHER_URL, "MessageBody": "a"}, authorization=AUTH),
    _request("SendMessage", {"QueueUrl": URL, "MessageBody": "a"}, authorization=AUTH),
    _request("SendMessage", {"QueueUrl": URL, "MessageBody": "a"}, authorization="Basic x"),
    _request("SendMessage", {"QueueUrl": MISSING_URL, "MessageBody": "a"}),
    _request("SendMessage", {"QueueUrl": "not a url", "MessageBody": "a"}),
    _request("SendMessage", {"QueueUrl": f"http://{HOST}/000000000000/", "MessageBody": "a"}),
    _request("SendMessage", {"QueueUrl": "not a url", "MessageBody": ""}),
    _request("SendMessage", {"QueueUrl": URL, "MessageBody": "too long"}),
    _request("SendMessage", {"QueueUrl": URL, "MessageBody": ""}),
    _request("SendMessage", {"QueueUrl": URL, "MessageBody": "a\u0001"}),
    _request("SendMessage", {"QueueUrl": URL, "MessageBody": "a", "DelaySeconds": 901}),
    _request("SendMessage", {"QueueUrl": URL, "MessageBody": "a", "MessageGroupId": ""}),
    _request("SendMessage", {"QueueUrl": URL, "MessageBody": "a", "MessageDeduplicationId": "d"}),
    _request("SendMessage", {"QueueUrl": URL, "MessageBody": "a", "Other": 1}),
    _request(
        "SendMessage",
        {
            "QueueUrl": URL,
            "MessageBody": "a",
            "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}},
            "MessageSystemAttributes": {
                "AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1"}
            },
        },
    ),
    _request("SendMessage", b'{"QueueUrl": "x", "MessageBody": "\xff"}'),
    _request("SendMessage", b"{"),
    _request("SendMessage", b""),
    _request("SendMessage", {"QueueUrl": URL, "MessageBody": 5}),
    # ReceiveMessage
    _request("ReceiveMessage", {"QueueUrl": URL}),
    _request("ReceiveMessage", {"QueueUrl": URL, "MaxNumberOfMessages": 10}),
    _request(
        "ReceiveMessage", {"QueueUrl": URL, "MaxNumberOfMessages": 10, "VisibilityTimeout": 7}
    ),
    _request(
        "ReceiveMessage",
        {
            "QueueUrl": URL,
            "MaxNumberOfMessages": 10,
            "AttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        },
        authorization=AUTH,
    ),
    _request(
        "ReceiveMessage",
        {
            "QueueUrl": FIFO_URL,
            "MaxNumberOfMessages": 10,
            "AttributeNames": ["SentTimestamp", "VisibilityTimeout"],
            "MessageSystemAttributeNames": ["MessageGroupId", "SequenceNumber", "SenderId"],
            "MessageAttributeNames": ["color", "foo.*"],
            "VisibilityTimeout": 30,
            "WaitTimeSeconds": 1,
            "ReceiveRequestAttemptId": "attempt",
        },
    ),
    _request(
        "ReceiveMessage",
        {"QueueUrl": URL, "MaxNumberOfMessages": 10, "MessageAttributeNames": []},
    ),
    _request(
        "ReceiveMessage",
        {"QueueUrl": URL, "ReceiveRequestAttemptId": "ignored", "WaitTimeSeconds": 0},
    ),
    _request("ReceiveMessage", {"QueueUrl": MISSING_URL}),
    _request("ReceiveMessage", {"QueueUrl": URL, "MaxNumberOfMessages": 11}),
    _request("ReceiveMessage", {"QueueUrl": URL, "AttributeNames": ["Nope"]}),
    _request("ReceiveMessage", {"QueueUrl": URL, "AttributeNames": [None, "All"]}),
    # DeleteMessage
    _request("DeleteMessage", {"QueueUrl": URL, "ReceiptHandle": "handle-1"}),
    _request("DeleteMessage", {"QueueUrl": URL, "ReceiptHandle": "bad"}),
    _request("DeleteMessage", {"QueueUrl": MISSING_URL, "ReceiptHandle": "h"}),
    _request("DeleteMessage", {"QueueUrl": URL}),
    _request("DeleteMessage", {"QueueUrl": "", "ReceiptHandle": "h"}),
    # SendMessageBatch
    _request("SendMessageBatch", {"QueueUrl": URL, "Entries": [{"Id": "a", "MessageBody": "b"}]}),
    _request(
        "SendMessageBatch",
        {
            "QueueUrl": FIFO_URL,
            "Entries": [
                {"Id": f"m{i}", "MessageBody": f"é {i}", "MessageGroupId": "g", "DelaySeconds": 0}
                for i in range(10)
            ],
        },
        authorization=AUTH,
    ),
    _request(
        "SendMessageBatch",
        {
            "QueueUrl": URL,
            "Entries": [
                {"Id": "a", "MessageBody": "too long"},
                {"Id": "b", "MessageBody": "fine", "DelaySeconds": 9},
                {"Id": "c", "MessageBody": "too long"},
            ],
        },
    ),
    _request(
        "SendMessageBatch", {"QueueUrl": MISSING_URL, "Entries": [{"Id": "a", "MessageBody": "b"}]}
    ),
    _request("SendMessageBatch", {"QueueUrl": URL, "Entries": []}),
    _request(
        "SendMessageBatch",
        {
            "QueueUrl": URL,
            "Entries": [{"Id": "a", "MessageBody": "b"}, {"Id": "b", "MessageBody": ""}],
        },
    ),
    _request(
        "SendMessageBatch",
        {
            "QueueUrl": URL,
            "Entries": [{"Id": "a", "MessageBody": "b"}, {"Id": "a", "MessageBody": "c"}],
        },
    ),
    # DeleteMessageBatch
    _request(
        "DeleteMessageBatch",
        {
            "QueueUrl": URL,
            "Entries": [
                {"Id": "a", "ReceiptHandle": "h1"},
                {"Id": "b", "ReceiptHandle": "bad"},
                {"Id": "c", "ReceiptHandle": "h3"},
            ],
        },
    ),
    _request(
        "DeleteMessageBatch",
        {"QueueUrl": MISSING_URL, "Entries": [{"Id": "a", "ReceiptHandle": "h"}]},
    ),
    _request("DeleteMessageBatch", {"QueueUrl": URL, "Entries": [{"Id": "a"}]}),
    _request(
        "DeleteMessageBatch", {"QueueUrl": "u", "Entries": [{"Id": "a", "ReceiptHandle": "h"}]}
    ),
    # not hot
    _request(
        "ChangeMessageVisibility", {"QueueUrl": URL, "ReceiptHandle": "h", "VisibilityTimeout": 5}
    ),
    _request("Nope", {"QueueUrl": URL}),
]


def _api(counted: list[tuple[str, str]], **settings: Any) -> tuple[SqsApi, RecordingBroker]:
    broker = RecordingBroker()
    api = SqsApi(
        broker,  # type: ignore[arg-type]
        Settings(**settings),
        on_request=lambda action, code: counted.append((action, code)),
    )
    api._request_id_prefix = "00000000-0000-0000-0000-"
    return api, broker


def _answer(requests: Sequence[Request], **settings: Any) -> tuple[list[Any], list[Any], list[Any]]:
    counted: list[tuple[str, str]] = []
    api, broker = _api(counted, **settings)

    async def run() -> list[Any]:
        out = []
        for req in requests:
            resp = await api.handle(req)
            out.append((resp.status, resp.content_type, resp.headers, resp.body))
        return out

    return asyncio.run(run()), broker.calls, counted


def _both(requests: Sequence[Request], monkeypatch: pytest.MonkeyPatch, **settings: Any) -> int:
    """Answer ``requests`` both ways, check they agree; how many took the hot path."""
    took: list[hot.HotRequest] = []
    decode = hot.decode

    def spy(target: str | None, body: bytes) -> hot.HotRequest | None:
        p = decode(target, body)
        if p is not None:
            took.append(p)
        return p

    with monkeypatch.context() as m:
        m.setattr(hot, "decode", spy)
        fast = _answer(requests, **settings)
    with monkeypatch.context() as m:
        m.setattr(hot, "decode", lambda target, body: None)
        generic = _answer(requests, **settings)
    for a, b, req in zip(fast[0], generic[0], requests, strict=True):
        assert a == b, req
    assert fast[1] == generic[1]
    assert fast[2] == generic[2]
    return len(took)


def test_hot_and_generic_paths_answer_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    hot_count = _both(REQUESTS, monkeypatch)
    assert hot_count >= 32  # the valid simple requests, and those failing after the parse


def test_same_with_another_default_account_and_region(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _both(REQUESTS, monkeypatch, account_id="111122223333", region="eu-west-3") >= 32


body_text = st.text(
    st.characters(codec="utf-8") | st.sampled_from(["\x00", "\x1f", "\ufffe", "\\", '"']),
    max_size=30,
)
scalars = st.sampled_from([URL, FIFO_URL, MISSING_URL, "u", None, 0, 1, 10, 901, -1, True])
entries = st.lists(
    st.dictionaries(
        st.sampled_from(["Id", "MessageBody", "ReceiptHandle", "DelaySeconds", "MessageGroupId"]),
        st.sampled_from(["a", "b", "c", "too long", "bad", "", 0, 5, None]) | body_text,
        max_size=4,
    ),
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "SendMessage",
                    "ReceiveMessage",
                    "DeleteMessage",
                    "SendMessageBatch",
                    "DeleteMessageBatch",
                ]
            ),
            st.dictionaries(
                st.sampled_from(
                    [
                        "QueueUrl",
                        "MessageBody",
                        "DelaySeconds",
                        "MessageGroupId",
                        "MessageDeduplicationId",
                        "MaxNumberOfMessages",
                        "VisibilityTimeout",
                        "WaitTimeSeconds",
                        "AttributeNames",
                        "MessageAttributeNames",
                        "ReceiptHandle",
                        "Entries",
                    ]
                ),
                scalars
                | body_text
                | entries
                | st.lists(
                    st.sampled_from(["All", "color", "Nope", "x.*", "SenderId"]), max_size=3
                ),
                max_size=6,
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_fuzz_both_paths(requests: list[tuple[str, dict[str, Any]]]) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _both([_request(action, params) for action, params in requests], monkeypatch)


def _attribute_dicts(m: Message) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, a in m.attributes.items():
        if a.binary_value is not None:
            out[key] = {"DataType": a.data_type, "BinaryValue": a.binary_value}
        else:
            out[key] = {"DataType": a.data_type, "StringValue": a.string_value}
    return out


@pytest.mark.parametrize("hot_path", [True, False])
def test_received_messages_as_message_result_builds_them(
    hot_path: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bodies decoded with replacement characters where not UTF-8, their MD5 that of the
    text returned, attributes' MD5 that of all of them when none are selected."""
    if not hot_path:
        monkeypatch.setattr(hot, "decode", lambda target, body: None)
    answers, _, _ = _answer(
        [_request("ReceiveMessage", {"QueueUrl": URL, "MaxNumberOfMessages": 10})]
    )
    status, _, _, body = answers[0]
    assert status == 200
    got = json.loads(body)["Messages"]
    expected = [
        sqs.message_result(
            message_id=m.message_id,
            receipt_handle=m.receipt_handle,
            body=m.body.decode("utf-8", "replace"),
            message_attributes=_attribute_dicts(m),
        )
        for m in MESSAGES
    ]
    assert got == json.loads(json.dumps(expected, default=lambda b: base64.b64encode(b).decode()))
    assert "\ufffd" in got[2]["Body"]
    assert got[2]["MD5OfBody"] == hashlib.md5(got[2]["Body"].encode()).hexdigest()
