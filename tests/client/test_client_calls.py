"""The hot calls' short cuts in :mod:`conveyor.client.calls` give what the general path
gives: a ``checked`` request is exactly one the codec's decode check would pass (same
bytes, or the same refusal), the one-pass batch conversion and split equal
``wire_entry``/``entry_bytes``/``split_batch``, and the result conversions keep every
field and every per-entry error."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor import errors, limits
from conveyor.client import calls
from conveyor.protocol import native as n
from conveyor.types import Message, MessageAttribute, SendEntry, SendResult

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def opened() -> n.NativeConnection:
    """A client connection after the handshake (the server's default frame limit)."""
    client, server = n.NativeConnection("client"), n.NativeConnection("server")
    server.receive_data(client.send(client.hello()))
    server.next_event()
    client.receive_data(server.send(server.welcome()))
    assert isinstance(client.next_event(), n.Welcome)
    return client


def outcome(build: Callable[[], calls.Call[Any]], checked: bool | None) -> object:
    """What sending the built request gives: its bytes or the refusal's code. ``checked``
    None: as the client sends it (``call.checked``); False: always the decode check."""
    try:
        call = build()
    except Exception as exc:  # refused by the builder, before any codec
        return ("builder", type(exc))
    conn = opened()
    call.request.id = conn.new_request_id()
    try:
        return conn.send(call.request, checked=call.checked if checked is None else checked)
    except n.LocalProtocolError as exc:
        return ("refused", exc.code)


def same_either_way(build: Callable[[], calls.Call[Any]]) -> bool:
    """The short cut changes nothing; returns whether it was taken."""
    assert outcome(build, None) == outcome(build, False)
    try:
        return build().checked
    except Exception:
        return False


# --- values, good and bad -----------------------------------------------------------------
class Text(str):
    """A str subclass: not recognised by the type tests, so left to the decode check."""


ODD: list[object] = [
    None,
    "s",
    Text("t"),
    "",
    b"b",
    bytearray(b"ba"),
    0,
    5,
    -1,
    2**40,
    2**70,
    True,
    5.0,
    float("nan"),
    [],
    {},
    ("t",),
]
odd = st.sampled_from(ODD) | st.none() | st.text(max_size=3) | st.integers() | st.floats()
attribute = st.builds(
    MessageAttribute,
    data_type=st.sampled_from(["String", "Binary", 5, b"x", Text("String")]),
    string_value=st.sampled_from([None, "v", 5, b"v"]),
    binary_value=st.sampled_from([None, b"\0", bytearray(b"\0"), "s", 5]),
)
attributes = st.none() | st.dictionaries(
    st.sampled_from(["a", "b", 1, b"k"]), attribute, max_size=2
)
str_map = st.none() | st.dictionaries(
    st.sampled_from(["k", 1, b"k"]), st.sampled_from(["v", 5, b"v", None]), max_size=2
)
queue = st.sampled_from(["q", "q.fifo", Text("q"), b"q", 5])
body = st.sampled_from([b"x", "x", bytearray(b"x"), memoryview(b"x"), b"", Text("x")])


@PROPERTY
@given(queue, body, attributes, odd, odd, odd, str_map)
def test_send_checked_only_when_the_decoder_agrees(
    q: Any, b: Any, attrs: Any, delay: Any, group: Any, dedup: Any, system: Any
) -> None:
    same_either_way(
        lambda: calls.send(
            q, b, attributes=attrs, delay_s=delay, group_id=group, dedup_id=dedup, system=system
        )
    )


@PROPERTY
@given(queue, odd, odd, odd, odd)
def test_receive_checked_only_when_the_decoder_agrees(
    q: Any, count: Any, visibility: Any, wait: Any, attempt: Any
) -> None:
    same_either_way(lambda: calls.receive(q, count, visibility, wait, attempt))


@PROPERTY
@given(queue, odd, odd, st.lists(odd, max_size=3))
def test_delete_and_visibility_checked_only_when_the_decoder_agrees(
    q: Any, handle: Any, timeout: Any, handles: Any
) -> None:
    same_either_way(lambda: calls.delete(q, handle))
    same_either_way(lambda: calls.change_visibility(q, handle, timeout))
    same_either_way(lambda: calls.delete_batch(q, handles))


@PROPERTY
@given(
    queue,
    st.lists(
        st.builds(
            SendEntry,
            body=body,
            attributes=attributes,
            delay_s=odd,
            group_id=odd,
            dedup_id=odd,
            system=str_map,
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_send_batch_checked_only_when_the_decoder_agrees(q: Any, entries: list[SendEntry]) -> None:
    def build() -> calls.Call[Any]:
        (call,) = calls.send_batch_calls(q, calls.wire_batch(entries), n.frame_bytes_default)
        return call

    same_either_way(build)


ODD_ATTRIBUTES: list[object] = [
    None,
    {},
    {"a": MessageAttribute("String", "v")},
    {"a": MessageAttribute("Binary", None, b"\0")},
    {"a": MessageAttribute("Binary", None, bytearray(b"\0"))},
    {"a": MessageAttribute("Binary", None, "s")},  # type: ignore[arg-type]
    {"a": MessageAttribute(5, "v")},  # type: ignore[arg-type]
    {"a": MessageAttribute(Text("String"), "v")},
    {"a": MessageAttribute("String", 5)},  # type: ignore[arg-type]
    {1: MessageAttribute("String", "v")},
    {b"a": MessageAttribute("String", "v")},
]
ODD_MAPS: list[object] = [None, {}, {"k": "v"}, {"k": 5}, {5: "v"}, {"k": b"v"}, {"k": Text("v")}]
ODD_HANDLES: list[object] = [[], ["h"], ["h", b"h"], ["h", 5], ("h",), ["h"] * 1001, [Text("h")]]


def sweep(good: dict[str, object], odd: dict[str, list[object]]) -> list[dict[str, object]]:
    """The good arguments, then each argument in turn over its odd values."""
    out = [dict(good)]
    for name, values in odd.items():
        out += [{**good, name: v} for v in values]
    return out


@pytest.mark.parametrize(
    "kw",
    sweep(
        {
            "queue": "q.fifo",
            "body": b"x",
            "attributes": None,
            "delay_s": None,
            "group_id": "g",
            "dedup_id": "d",
            "system": None,
        },
        {
            "queue": [*ODD, Text("q.fifo")],
            "body": ODD,
            "attributes": ODD_ATTRIBUTES,
            "delay_s": ODD,
            "group_id": ODD,
            "dedup_id": ODD,
            "system": ODD_MAPS,
        },
    ),
)
def test_send_sweep(kw: dict[str, Any]) -> None:
    q, b = kw.pop("queue"), kw.pop("body")
    same_either_way(lambda: calls.send(q, b, **kw))
    entry = {"body": b, **kw}

    def batch() -> calls.Call[Any]:
        entries = [SendEntry(body=b"first"), SendEntry(**entry)]
        (call,) = calls.send_batch_calls(q, calls.wire_batch(entries), n.frame_bytes_default)
        return call

    same_either_way(batch)


@pytest.mark.parametrize(
    "kw",
    sweep(
        {
            "queue": "q",
            "max_messages": 10,
            "visibility_timeout_s": None,
            "wait_s": None,
            "attempt_id": None,
        },
        {
            "queue": ODD,
            "max_messages": [*ODD, 1000, 1001],
            "visibility_timeout_s": ODD,
            "wait_s": ODD,
            "attempt_id": ODD,
        },
    ),
)
def test_receive_sweep(kw: dict[str, Any]) -> None:
    same_either_way(lambda: calls.receive(**kw))


@pytest.mark.parametrize(
    "kw",
    sweep(
        {"queue": "q", "handle": "h", "timeout": 5, "handles": ["h"]},
        {"queue": ODD, "handle": ODD, "timeout": ODD, "handles": ODD_HANDLES},
    ),
)
def test_delete_and_visibility_sweep(kw: dict[str, Any]) -> None:
    same_either_way(lambda: calls.delete(kw["queue"], kw["handle"]))
    same_either_way(lambda: calls.change_visibility(kw["queue"], kw["handle"], kw["timeout"]))
    same_either_way(lambda: calls.delete_batch(kw["queue"], kw["handles"]))


def test_the_usual_calls_take_the_short_cut() -> None:
    """...so that the property tests above compare something."""
    attrs = {"a": MessageAttribute("String", "v"), "b": MessageAttribute("Binary", None, b"")}
    assert calls.ping().checked
    assert same_either_way(
        lambda: calls.send(
            "q", b"x", attributes=None, delay_s=None, group_id=None, dedup_id=None, system=None
        )
    )
    assert same_either_way(
        lambda: calls.send(
            "q.fifo",
            "x",
            attributes=attrs,
            delay_s=3,
            group_id="g",
            dedup_id="d",
            system={"AWSTraceHeader": "t"},
        )
    )
    assert same_either_way(lambda: calls.receive("q", 100, 30, 0.5, None))
    assert same_either_way(lambda: calls.receive("q.fifo", 1, None, 20, "attempt"))
    assert same_either_way(lambda: calls.delete("q", "h"))
    assert same_either_way(lambda: calls.delete_batch("q", ["h"] * 1000))
    assert same_either_way(lambda: calls.change_visibility("q", "h", 0))
    entries = [SendEntry(body=b"x"), SendEntry(body="y", attributes=attrs, group_id="g")]
    assert calls.wire_batch(entries).checked
    # and the ones the type tests cannot vouch for go through the decode check
    assert not calls.receive("q", 1001, None, None, None).checked
    assert not calls.receive("q", True, None, None, None).checked
    assert not calls.delete_batch("q", ["h"] * 1001).checked
    assert not calls.delete("q", Text("h")).checked
    ill_typed = [SendEntry(body=b"x", delay_s="5")]  # type: ignore[arg-type]
    assert not calls.wire_batch(ill_typed).checked
    bad = calls.send_batch_calls("q", calls.wire_batch(ill_typed), n.frame_bytes_default)
    with pytest.raises(n.LocalProtocolError, match="delay_s"):
        opened().send(bad[0].request, checked=bad[0].checked)


# --- the one-pass batch conversion and split ----------------------------------------------
def test_wire_batch_equals_wire_entry_and_entry_bytes() -> None:
    attrs = {"n": MessageAttribute("Number", "5"), "b": MessageAttribute("Binary", None, b"\0")}
    entries = [
        SendEntry(body=b"plain"),
        SendEntry(body="text \u00e9"),
        SendEntry(body=bytearray(b"ba")),
        SendEntry(body=memoryview(b"mv")),
        SendEntry(body=b"e", attributes={}, system={}),  # empty, as if absent
        SendEntry(body=b"a", attributes=attrs),
        SendEntry(body=b"d", delay_s=5),
        SendEntry(body=b"f", group_id="g", dedup_id="d"),
        SendEntry(body=b"s", system={"AWSTraceHeader": "Root=1"}),
    ]
    wire = calls.wire_batch(entries)
    expected = [calls.wire_entry(e) for e in entries]
    assert wire.entries == expected
    assert [type(e.body) for e in wire.entries] == [bytes] * len(entries)
    assert wire.sizes == [calls.entry_bytes(e) for e in expected]
    assert wire.checked
    # the very bytes sent are those of the general path
    fast = n.SendBatchRequest(id=7, queue="q", entries=wire.entries)
    slow = n.SendBatchRequest(id=7, queue="q", entries=expected)
    assert msgspec.msgpack.encode(fast) == msgspec.msgpack.encode(slow)


@pytest.mark.parametrize(
    ("count", "size"),
    [(1, 10), (999, 10), (1000, 10), (1001, 10), (2500, 1), (20, 300_000), (3, 3_000_000)],
)
def test_send_batch_calls_split_like_split_batch(count: int, size: int) -> None:
    entries = [SendEntry(body=b"x" * size) for _ in range(count)]
    wire = calls.wire_batch(entries)
    parts = calls.send_batch_calls("q", wire, n.frame_bytes_min)
    assert [c.request.entries for c in parts] == calls.split_batch(  # type: ignore[attr-defined]
        [calls.wire_entry(e) for e in entries], n.frame_bytes_min
    )
    # greedy: every part is full, by count or by bytes, unless it is the last
    budget = n.frame_bytes_min - calls.frame_envelope_bytes
    for part, after in itertools.pairwise(parts):
        used = [calls.entry_bytes(e) for e in part.request.entries]  # type: ignore[attr-defined]
        nxt = calls.entry_bytes(after.request.entries[0])  # type: ignore[attr-defined]
        assert len(used) == limits.native_batch_entries_max or sum(used) + nxt > budget
        assert len(used) == 1 or sum(used) <= budget


def test_split_at_exactly_the_budget() -> None:
    """The one-frame short cut (total within the budget) agrees with the loop at the edge."""
    budget = n.frame_bytes_min - calls.frame_envelope_bytes
    body = budget // 2 - calls.entry_overhead_bytes
    two = [n.SendEntry(body=b"x" * body)] * 2
    assert [len(p) for p in calls.split_batch(two, n.frame_bytes_min)] == [2]
    over = [n.SendEntry(body=b"x" * (body + 1))] * 2
    assert [len(p) for p in calls.split_batch(over, n.frame_bytes_min)] == [1, 1]
    assert calls.split_batch([], n.frame_bytes_min) == []


def test_send_batch_safety_per_part() -> None:
    fifo = [SendEntry(body=b"x", group_id="g", dedup_id=str(i)) for i in range(1500)]
    parts = calls.send_batch_calls("q.fifo", calls.wire_batch(fifo), n.frame_bytes_default)
    assert [p.safety for p in parts] == [calls.Safety.IDEMPOTENT] * 2
    mixed = [*fifo[:1000], SendEntry(body=b"y", group_id="g")]
    parts = calls.send_batch_calls("q.fifo", calls.wire_batch(mixed), n.frame_bytes_default)
    assert [p.safety for p in parts] == [calls.Safety.IDEMPOTENT, calls.Safety.UNSAFE]


# --- results ------------------------------------------------------------------------------
def test_send_results_keep_every_field_and_every_error() -> None:
    resp = n.SendBatchResponse(
        id=1,
        results=[
            n.SendResult(message_id="a"),
            n.ErrorInfo(code="InvalidParameterValue", message="delay_s"),
            n.SendResult(message_id="b", sequence_number="7", duplicate=True),
            n.ErrorInfo(code="NoSuchCode", message="?"),
        ],
    )
    out = calls._send_results(resp)
    assert out[0] == SendResult(message_id="a")
    assert type(out[1]) is errors.InvalidParameterValue and out[1].message == "delay_s"
    assert out[2] == SendResult(message_id="b", sequence_number="7", duplicate=True)
    assert type(out[3]) is errors.InternalError
    with pytest.raises(errors.InternalError):
        calls._send_results(n.PingResponse(id=1))
    one = calls.send(
        "q", b"x", attributes=None, delay_s=None, group_id=None, dedup_id=None, system=None
    )
    assert one.convert(n.SendResponse(id=1, message_id="m", sequence_number="1")) == SendResult(
        message_id="m", sequence_number="1"
    )
    with pytest.raises(errors.InternalError):
        one.convert(n.PingResponse(id=1))


def test_batch_errors() -> None:
    ok = n.DeleteBatchResponse(id=1, results=[None, None, None])
    assert calls._batch_errors(ok) == [None, None, None]
    mixed = n.DeleteBatchResponse(
        id=1, results=[None, n.ErrorInfo(code="ReceiptHandleIsInvalid"), None]
    )
    out = calls._batch_errors(mixed)
    assert out[0] is None and out[2] is None
    assert type(out[1]) is errors.ReceiptHandleIsInvalid


def test_messages_conversion() -> None:
    wire = [
        n.Message(
            message_id="m1",
            body=b"b1",
            receipt_handle="r1",
            attributes={"n": n.MessageAttribute(data_type="Number", string_value="5")},
            system={"DeadLetterQueueSourceQueue": "src"},
            sent_ms=10,
            receive_count=2,
            first_receive_ms=11,
            group_id="g",
            dedup_id="d",
            sequence_number="3",
        ),
        n.Message(message_id="m2", body=b"b2", sent_ms=12),
        n.Message(message_id="m3", body=b"b3", sent_ms=13),
    ]
    # through the codec, as the client gets them
    raw = msgspec.msgpack.encode(n.ReceiveResponse(id=1, messages=wire))
    decoded = msgspec.msgpack.Decoder(n.ServerMessage).decode(raw)
    assert isinstance(decoded, n.ReceiveResponse)
    got = calls.messages("q", decoded.messages)
    assert got[0] == Message(
        queue="q",
        message_id="m1",
        body=b"b1",
        receipt_handle="r1",
        attributes={"n": MessageAttribute("Number", "5")},
        system={"DeadLetterQueueSourceQueue": "src"},
        sent_ms=10,
        receive_count=2,
        first_receive_ms=11,
        group_id="g",
        dedup_id="d",
        sequence_number="3",
    )
    assert got[1] == Message(
        queue="q",
        message_id="m2",
        body=b"b2",
        receipt_handle="",
        attributes={},
        system={},
        sent_ms=12,
        receive_count=0,
        first_receive_ms=0,
    )
    # every message has dicts of its own
    assert got[1].attributes is not got[2].attributes and got[1].system is not got[2].system
    call = calls.receive("q", 10, None, 1, None)
    assert call.convert(decoded) == got
