"""Every native message round-trips; the messages stay in step with the broker's API;
errors convert both ways; structural bounds are enforced on decode."""

from __future__ import annotations

import inspect
from typing import Any, get_args

import msgspec
import pytest
from native_samples import MESSAGE, drain, frame, pair, requests, response_for

from conveyor import errors, limits, types
from conveyor.broker import Broker
from conveyor.protocol import native as n

ENC = msgspec.msgpack.Encoder()
CLIENT_DEC = msgspec.msgpack.Decoder(n.ClientMessage)
SERVER_DEC = msgspec.msgpack.Decoder(n.ServerMessage)


def all_samples() -> list[Any]:
    reqs = requests()
    c = n.NativeConnection("client")
    return [
        c.hello(client="cli", token="secret"),
        n.Welcome(version=1, server="s", node_id="n", max_frame_bytes=n.frame_bytes_min),
        n.ErrorResponse(code="Unavailable", message="closing", retriable=True),
        n.ErrorResponse(id=3, code="QueueDoesNotExist", message="no queue"),
        *reqs,
        *(response_for(r) for r in reqs),
    ]


def test_every_message_type_has_a_sample() -> None:
    kinds = {type(s) for s in all_samples()}
    assert kinds == set(get_args(n.ClientMessage)) | set(get_args(n.ServerMessage))


@pytest.mark.parametrize("sample", all_samples(), ids=lambda s: type(s).__name__)
def test_round_trip(sample: Any) -> None:
    body = ENC.encode(sample)
    decoder = CLIENT_DEC if isinstance(sample, get_args(n.ClientMessage)) else SERVER_DEC
    assert decoder.decode(body) == sample


def test_round_trip_through_connections() -> None:
    client, server = pair()
    reqs = requests()
    out = bytearray()
    for r in reqs:
        client.send_into(r, out)
    server.receive_data(bytes(out))
    assert drain(server) == reqs
    back = b"".join(server.send(response_for(r)) for r in reqs)
    client.receive_data(back)
    assert drain(client) == [response_for(r) for r in reqs]
    assert client.inflight == server.inflight == 0


def test_defaults_are_left_out_and_unknown_keys_ignored() -> None:
    body = ENC.encode(n.SendRequest(id=7, queue="q", body=b"b"))
    assert msgspec.msgpack.decode(body) == {"op": "send", "id": 7, "queue": "q", "body": b"b"}
    # a later version may add optional fields: an older peer ignores them
    newer = ENC.encode({"op": "send", "id": 7, "queue": "q", "body": b"b", "priority": 9})
    assert CLIENT_DEC.decode(newer) == n.SendRequest(id=7, queue="q", body=b"b")


def test_response_op_equals_request_op() -> None:
    for r in requests():
        assert response_for(r).OP == r.OP == r.__struct_config__.tag
        assert n.RESPONSE_FOR[r.OP] is type(response_for(r))


# --- in step with the broker -----------------------------------------------------------
# Request fields that the broker method does not take (the server maps them).
SERVER_SIDE = {
    "list_queues": {"limit", "after"},  # pagination is done by the server
    "set_queue": {"config"},  # Broker.set_queue(name, changes)
}


@pytest.mark.parametrize("cls", n.REQUEST_TYPES, ids=lambda c: c.OP)
def test_requests_mirror_broker_methods(cls: type[n.Request]) -> None:
    if cls.OP in ("ping", "replicate", "cluster_status", "drain_node", "move_in"):
        return  # not broker calls: a liveness check, and the cluster's own requests
    method = getattr(Broker, cls.OP)
    params = set(inspect.signature(method).parameters) - {"self"}
    fields = set(cls.__struct_fields__) - {"id"}
    assert fields - SERVER_SIDE.get(cls.OP, set()) <= params, cls.OP


def test_values_mirror_broker_types() -> None:
    assert set(n.Message.__struct_fields__) == set(types.Message.__struct_fields__) - {"queue"}
    assert set(n.SendEntry.__struct_fields__) == set(types.SendEntry.__struct_fields__)
    assert set(n.SendResult.__struct_fields__) == set(types.SendResult.__struct_fields__)
    assert set(n.MessageAttribute.__struct_fields__) == set(
        types.MessageAttribute.__struct_fields__
    )


# --- errors ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", list(errors.ERRORS.values()), ids=lambda c: c.code)
def test_conveyor_errors_round_trip(cls: type[errors.ConveyorError]) -> None:
    exc = cls("details here")
    frame_ = n.error_response(9, exc)
    back = SERVER_DEC.decode(ENC.encode(frame_))
    assert back == frame_
    assert back.id == 9 and back.code == cls.code and back.retriable == cls.retriable
    rebuilt = back.to_exception()
    assert type(rebuilt) is cls and rebuilt.message == "details here"
    info = n.error_info(exc)
    assert type(info.to_exception()) is cls and info.retriable == cls.retriable


def test_unknown_error_code_becomes_internal_error() -> None:
    rebuilt = n.ErrorResponse(id=1, code="SomethingNew", message="m").to_exception()
    assert isinstance(rebuilt, errors.InternalError) and rebuilt.message == "m"


def test_protocol_error_round_trip() -> None:
    exc = n.ProtocolError("FrameTooLarge", "too big")
    frame_ = n.error_response(None, exc)
    assert frame_.id is None and frame_.retriable is False
    rebuilt = SERVER_DEC.decode(ENC.encode(frame_)).to_exception()
    assert isinstance(rebuilt, n.ProtocolError)
    assert rebuilt.code == "FrameTooLarge" and rebuilt.message == "too big"


def test_protocol_codes_are_distinct_from_error_codes() -> None:
    assert not n.PROTOCOL_ERROR_CODES & set(errors.ERRORS)


# --- structural bounds ---------------------------------------------------------------------
def _server_gets(body: dict[str, Any]) -> n.Event | n.NeedData:
    _, server = pair()
    server.receive_data(frame(ENC.encode(body)))
    return server.next_event()


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ({"op": "receive", "id": 1, "queue": "q", "max_messages": 1}, True),
        ({"op": "receive", "id": 1, "queue": "q", "max_messages": 0}, False),
        (
            {
                "op": "receive",
                "id": 1,
                "queue": "q",
                "max_messages": limits.native_receive_messages_max + 1,
            },
            False,
        ),
        ({"op": "receive", "id": 1, "queue": "q", "max_messages": "1"}, False),
        ({"op": "receive", "id": 1, "queue": "q", "wait_s": 3}, True),  # int is a float
        ({"op": "receive", "id": 2**32, "queue": "q"}, False),
        ({"op": "receive", "id": -1, "queue": "q"}, False),
        ({"op": "receive", "queue": "q"}, False),  # no id
        ({"op": "send", "id": 1, "queue": "q", "body": "text"}, False),  # str, not bin
        ({"op": "send", "id": 1, "queue": "q"}, False),  # no body
        ({"op": "list_queues", "id": 1, "limit": 1001}, False),
        ({"op": "delete_batch", "id": 1, "queue": "q", "receipt_handles": []}, True),
        (
            {
                "op": "delete_batch",
                "id": 1,
                "queue": "q",
                "receipt_handles": ["h"] * limits.native_batch_entries_max,
            },
            True,
        ),
        (
            {
                "op": "delete_batch",
                "id": 1,
                "queue": "q",
                "receipt_handles": ["h"] * (limits.native_batch_entries_max + 1),
            },
            False,
        ),
        (
            {
                "op": "send_batch",
                "id": 1,
                "queue": "q",
                "entries": [{"body": b"x"}] * (limits.native_batch_entries_max + 1),
            },
            False,
        ),
        (
            {
                "op": "send",
                "id": 1,
                "queue": "q",
                "body": b"x",
                "attributes": {"a": {"data_type": "String", "string_value": 5}},
            },
            False,
        ),
        ({"op": "create_queue", "id": 1, "name": "q", "config": {"a": [1, {"b": None}]}}, True),
    ],
)
def test_structural_validation(body: dict[str, Any], ok: bool) -> None:
    if ok:
        assert isinstance(_server_gets(body), n.Request)
    else:
        with pytest.raises(n.ProtocolError) as info:
            _server_gets(body)
        assert info.value.code == "MalformedFrame"


def test_a_full_native_batch_fits_the_default_frame() -> None:
    client, server = pair()
    entry = n.SendEntry(body=b"x" * (16 * limits.KiB - 64), attributes={}, group_id="g" * 16)
    batch = n.SendBatchRequest(id=1, queue="q", entries=[entry] * limits.native_batch_entries_max)
    server.receive_data(client.send(batch))
    assert server.next_event() == batch


def test_receive_response_of_maximal_messages_fits_the_minimum_frame() -> None:
    client, server = pair(client_frame_bytes=n.frame_bytes_min)
    request = n.ReceiveRequest(id=1, queue="q")
    server.receive_data(client.send(request))
    server.next_event()
    big = msgspec.structs.replace(
        MESSAGE,
        body=b"x" * limits.message_size_bytes_max,
        attributes={
            f"a{i}": n.MessageAttribute(data_type="Binary", binary_value=b"y" * 20_000)
            for i in range(limits.message_attributes_max)
        },
        receipt_handle="r" * 200,
    )
    client.receive_data(server.send(n.ReceiveResponse(id=1, messages=[big])))
    assert client.next_event() == n.ReceiveResponse(id=1, messages=[big])
