"""One filled-in example of every native-protocol message, and helpers to wire a client
connection to a server connection in memory."""

from __future__ import annotations

import msgspec

from conveyor import limits
from conveyor.protocol import native as n

ATTRS = {
    "kind": n.MessageAttribute(data_type="String", string_value="order"),
    "n": n.MessageAttribute(data_type="Number.int", string_value="42"),
    "raw": n.MessageAttribute(data_type="Binary", binary_value=b"\x00\xff"),
}

MESSAGE = n.Message(
    message_id="m-1",
    body=b"hello \x00 world",
    receipt_handle="rh-1",
    attributes=ATTRS,
    system={"AWSTraceHeader": "Root=1"},
    sent_ms=1_700_000_000_000,
    receive_count=2,
    first_receive_ms=1_700_000_000_500,
    group_id="g",
    dedup_id="d",
    sequence_number="0001",
)


def requests(first_id: int = 1) -> list[n.AnyRequest]:
    """One request of every op, ids counting from ``first_id``."""
    out: list[n.AnyRequest] = [
        n.CreateQueueRequest(
            id=0,
            name="orders.fifo",
            config={"fifo": True, "visibility_timeout_s": 60, "redrive": {"dlq": "d", "n": 3}},
            tags={"team": "a"},
        ),
        n.DeleteQueueRequest(id=0, name="orders"),
        n.PurgeQueueRequest(id=0, name="orders"),
        n.ListQueuesRequest(id=0, prefix="or", limit=5, after="ord"),
        n.GetQueueRequest(id=0, name="orders"),
        n.SetQueueRequest(id=0, name="orders", config={"delay_s": 5}),
        n.TagQueueRequest(id=0, name="orders", tags={"k": "v"}, remove=["old"]),
        n.SendRequest(
            id=0,
            queue="orders",
            body=b"x" * 100,
            attributes=ATTRS,
            delay_s=3,
            group_id="g",
            dedup_id="d",
            system={"AWSTraceHeader": "Root=1"},
        ),
        n.SendBatchRequest(
            id=0,
            queue="orders",
            entries=[
                n.SendEntry(body=b"a"),
                n.SendEntry(body=b"b", attributes=ATTRS, delay_s=1, group_id="g", dedup_id="d"),
            ],
        ),
        n.ReceiveRequest(
            id=0,
            queue="orders",
            max_messages=limits.native_receive_messages_max,
            visibility_timeout_s=30,
            wait_s=2.5,
            attempt_id="att",
        ),
        n.PeekRequest(id=0, queue="orders", max_messages=3),
        n.DeleteRequest(id=0, queue="orders", receipt_handle="rh-1"),
        n.DeleteBatchRequest(id=0, queue="orders", receipt_handles=["rh-1", "rh-2"]),
        n.ChangeVisibilityRequest(id=0, queue="orders", receipt_handle="rh-1", timeout_s=0),
        n.ChangeVisibilityBatchRequest(
            id=0,
            queue="orders",
            entries=[n.VisibilityEntry(receipt_handle="rh-1", timeout_s=10)],
        ),
        n.RedriveRequest(id=0, source="orders-dlq", destination="orders", max_messages=10),
        n.ReplicateRequest(id=0, sender="n2", data=b"\x93\x01\x02\x03"),
        n.ClusterStatusRequest(id=0),
        n.DrainNodeRequest(id=0, node="n3"),
        n.MoveInRequest(id=0, queue_uid="0123456789abcdef", partition=0, records=[b"\x01"]),
        n.PingRequest(id=0),
    ]
    return [_with_id(r, first_id + i) for i, r in enumerate(out)]


def response_for(request: n.AnyRequest) -> n.AnyResponse:
    """A filled-in successful response to ``request``."""
    rid = request.id
    samples: dict[str, n.AnyResponse] = {
        "create_queue": n.CreateQueueResponse(id=rid, name="orders.fifo", created=True),
        "delete_queue": n.DeleteQueueResponse(id=rid),
        "purge_queue": n.PurgeQueueResponse(id=rid),
        "list_queues": n.ListQueuesResponse(id=rid, names=["orders", "orders-dlq"], next="p"),
        "get_queue": n.GetQueueResponse(
            id=rid,
            name="orders",
            config={"fifo": False, "retention_s": 345600, "redrive": None},
            stats={"messages": 3, "oldest_age_s": 1.5},
            tags={"team": "a"},
        ),
        "set_queue": n.SetQueueResponse(id=rid),
        "tag_queue": n.TagQueueResponse(id=rid),
        "send": n.SendResponse(id=rid, message_id="m-1", sequence_number="7", duplicate=True),
        "send_batch": n.SendBatchResponse(
            id=rid,
            results=[
                n.SendResult(message_id="m-1", sequence_number="8"),
                n.ErrorInfo(code="MessageTooLong", message="too long"),
            ],
        ),
        "receive": n.ReceiveResponse(id=rid, messages=[MESSAGE, MESSAGE]),
        "peek": n.PeekResponse(id=rid, messages=[n.Message(message_id="m", body=b"", sent_ms=1)]),
        "delete": n.DeleteResponse(id=rid),
        "delete_batch": n.DeleteBatchResponse(
            id=rid, results=[None, n.ErrorInfo(code="ReceiptHandleIsInvalid", message="bad")]
        ),
        "change_visibility": n.ChangeVisibilityResponse(id=rid),
        "change_visibility_batch": n.ChangeVisibilityBatchResponse(
            id=rid, results=[n.ErrorInfo(code="MessageNotInflight"), None]
        ),
        "redrive": n.RedriveResponse(id=rid, moved=12),
        "replicate": n.ReplicateResponse(id=rid),
        "cluster_status": n.ClusterStatusResponse(id=rid, status={"node": "n1", "nodes": []}),
        "drain_node": n.DrainNodeResponse(id=rid, replicas=3),
        "move_in": n.MoveInResponse(id=rid, queue="orders-dlq"),
        "ping": n.PingResponse(id=rid),
    }
    assert set(samples) == set(n.OPS)
    return samples[request.OP]


def _with_id(request: n.AnyRequest, rid: int) -> n.AnyRequest:
    return msgspec.structs.replace(request, id=rid)


def pair(
    *,
    max_inflight: int = n.inflight_requests_default,
    server_frame_bytes: int = n.frame_bytes_default,
    client_frame_bytes: int = n.frame_bytes_default,
) -> tuple[n.NativeConnection, n.NativeConnection]:
    """A client and a server connection after a completed handshake."""
    client = n.NativeConnection("client", max_frame_bytes=client_frame_bytes)
    server = n.NativeConnection(
        "server", max_inflight=max_inflight, max_frame_bytes=server_frame_bytes
    )
    server.receive_data(client.send(client.hello(client="test", token="t0k")))
    hello = server.next_event()
    assert isinstance(hello, n.Hello)
    assert server.next_event() is n.NEED_DATA
    client.receive_data(server.send(server.welcome(server="conveyor-test", node_id="node-1")))
    welcome = client.next_event()
    assert isinstance(welcome, n.Welcome)
    assert client.state is n.State.OPEN and server.state is n.State.OPEN
    return client, server


def drain(conn: n.NativeConnection) -> list[n.Event]:
    """Every event available now (stops at NEED_DATA or ConnectionClosed)."""
    events: list[n.Event] = []
    while True:
        event = conn.next_event()
        if event is n.NEED_DATA:
            return events
        events.append(event)
        if isinstance(event, n.ConnectionClosed):
            return events


def state(conn: n.NativeConnection) -> n.State:
    """``conn.state``, read through a call so a type checker does not keep a narrowed
    value from an earlier assert."""
    return conn.state


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body
