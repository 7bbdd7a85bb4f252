"""The connection state machine: handshake and version negotiation, pipelining, request
ids, frame limits, end of stream, the ERROR state, and refused sends changing nothing."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest
from native_samples import drain, frame, pair, requests, response_for, state

from conveyor import errors
from conveyor.protocol import native as n

ENC = msgspec.msgpack.Encoder()
DOC = Path(__file__).resolve().parents[2] / "docs" / "native-protocol.md"


def raw(body: object) -> bytes:
    return frame(ENC.encode(body))


def expect_error(conn: n.NativeConnection, code: str) -> n.ProtocolError:
    with pytest.raises(n.ProtocolError) as info:
        conn.next_event()
    assert type(info.value) is n.ProtocolError
    assert info.value.code == code, info.value
    assert conn.state is n.State.ERROR
    return info.value


def snapshot(conn: n.NativeConnection) -> tuple[object, ...]:
    return (conn.state, conn.inflight, conn.version, conn.buffered_bytes, conn.max_inflight)


# --- handshake ---------------------------------------------------------------------------
def test_handshake() -> None:
    client = n.NativeConnection("client")
    server = n.NativeConnection("server", max_inflight=8, max_frame_bytes=n.frame_bytes_min)
    assert (client.state, server.state) == (n.State.IDLE, n.State.IDLE)
    server.receive_data(client.send(client.hello(client="cli/1", token="tok")))
    assert client.state is n.State.HANDSHAKE
    hello = server.next_event()
    assert hello == n.Hello(versions=[1], client="cli/1", token="tok")
    assert server.state is n.State.HANDSHAKE and server.peer_hello == hello
    assert server.version == 1
    welcome = server.welcome(server="conveyor/0.1", node_id="node-a")
    client.receive_data(server.send(welcome))
    assert client.next_event() == welcome
    assert (client.state, server.state) == (n.State.OPEN, n.State.OPEN)
    assert client.version == 1 and client.peer_welcome == welcome
    assert client.max_inflight == 8
    assert client.peer_max_frame_bytes == n.frame_bytes_min
    assert server.peer_max_frame_bytes == n.frame_bytes_default


def test_server_picks_the_highest_common_version() -> None:
    server = n.NativeConnection("server")
    server.receive_data(raw({"op": "hello", "versions": [9, 1, 4]}))
    assert isinstance(server.next_event(), n.Hello)
    assert server.version == 1
    assert server.welcome().version == 1


def test_no_common_version_is_refused_with_an_error_frame() -> None:
    client = n.NativeConnection("client")
    server = n.NativeConnection("server")
    server.receive_data(raw({"op": "hello", "versions": [2, 3], "client": "future"}))
    exc = expect_error(server, "UnsupportedVersion")
    refusal = server.send(n.error_response(None, exc))
    assert server.state is n.State.CLOSED
    # the client (pretend it offered 2 and 3) gets the reason and is closed too
    client.send(client.hello())
    client.receive_data(refusal)
    event = client.next_event()
    assert isinstance(event, n.ErrorResponse) and event.id is None
    rebuilt = event.to_exception()
    assert isinstance(rebuilt, n.ProtocolError) and rebuilt.code == "UnsupportedVersion"
    assert client.state is n.State.CLOSED
    assert isinstance(client.next_event(), n.ConnectionClosed)


def test_welcome_with_a_version_not_offered_is_an_error() -> None:
    client = n.NativeConnection("client")
    client.send(client.hello())
    client.receive_data(raw({"op": "welcome", "version": 2}))
    expect_error(client, "UnsupportedVersion")


def test_auth_refusal() -> None:
    client = n.NativeConnection("client")
    server = n.NativeConnection("server")
    server.receive_data(client.send(client.hello(token="wrong")))
    hello = server.next_event()
    assert isinstance(hello, n.Hello) and hello.token == "wrong"
    client.receive_data(server.send(n.error_response(None, errors.AccessDenied("bad token"))))
    assert server.state is n.State.CLOSED
    event = client.next_event()
    assert isinstance(event, n.ErrorResponse)
    rebuilt = event.to_exception()
    assert isinstance(rebuilt, errors.AccessDenied) and rebuilt.message == "bad token"
    assert client.state is n.State.CLOSED


def test_request_before_handshake() -> None:
    server = n.NativeConnection("server")
    server.receive_data(raw({"op": "ping", "id": 1}))
    expect_error(server, "UnexpectedMessage")


def test_duplicate_hello() -> None:
    _client, server = pair()
    server.receive_data(raw({"op": "hello", "versions": [1]}))
    expect_error(server, "UnexpectedMessage")


def test_hello_while_handshaking() -> None:
    server = n.NativeConnection("server")
    server.receive_data(raw({"op": "hello", "versions": [1]}) * 2)
    assert isinstance(server.next_event(), n.Hello)
    expect_error(server, "UnexpectedMessage")


def test_duplicate_welcome() -> None:
    client, _server = pair()
    client.receive_data(raw({"op": "welcome", "version": 1}))
    expect_error(client, "UnexpectedMessage")


def test_server_only_ops_from_a_client_are_unknown() -> None:
    server = n.NativeConnection("server")
    server.receive_data(raw({"op": "welcome", "version": 1}))
    expect_error(server, "UnknownOperation")


def test_unknown_op() -> None:
    _client, server = pair()
    server.receive_data(raw({"op": "explode", "id": 1}))
    expect_error(server, "UnknownOperation")


def test_malformed_msgpack() -> None:
    _client, server = pair()
    server.receive_data(frame(b"\xc1\x00\x01"))
    expect_error(server, "MalformedFrame")


def test_sends_out_of_order_are_refused_and_change_nothing() -> None:
    client = n.NativeConnection("client")
    server = n.NativeConnection("server")
    cases: list[tuple[n.NativeConnection, n.Frame]] = [
        (client, n.PingRequest(id=1)),  # before Hello
        (client, n.Welcome(version=1)),  # a server's frame
        (server, n.Welcome(version=1)),  # before Hello
        (server, n.PingResponse(id=1)),
        (server, n.Hello(versions=[1])),
    ]
    for conn, event in cases:
        before = snapshot(conn)
        with pytest.raises(n.LocalProtocolError):
            conn.send(event)
        assert snapshot(conn) == before
    with pytest.raises(n.LocalProtocolError):
        server.welcome()


def test_hello_and_welcome_must_match_the_connection() -> None:
    client = n.NativeConnection("client")
    with pytest.raises(n.LocalProtocolError):
        client.send(n.Hello(versions=[1], max_frame_bytes=n.frame_bytes_min))
    assert client.state is n.State.IDLE
    server = n.NativeConnection("server", max_inflight=4)
    server.receive_data(client.send(client.hello()))
    server.next_event()
    with pytest.raises(n.LocalProtocolError):
        server.send(n.Welcome(version=1))  # max_inflight 1024 announced, 4 enforced
    assert state(server) is n.State.HANDSHAKE
    server.send(server.welcome())
    assert state(server) is n.State.OPEN


def test_constructor_checks_its_limits() -> None:
    for kwargs in [
        {"max_frame_bytes": n.frame_bytes_min - 1},
        {"max_frame_bytes": n.frame_bytes_max + 1},
        {"max_inflight": 0},
        {"versions": ()},
        {"versions": (1, 2)},
    ]:
        with pytest.raises(ValueError):
            n.NativeConnection("server", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        n.NativeConnection("peer")  # type: ignore[arg-type]


# --- pipelining --------------------------------------------------------------------------
def test_pipelined_requests_answered_out_of_order() -> None:
    client, server = pair()
    rng = random.Random(7)
    sent: dict[int, n.AnyRequest] = {}
    wire = bytearray()
    for _ in range(5):
        for template in requests():
            r = msgspec.structs.replace(template, id=client.new_request_id())
            sent[r.id] = r
            client.send_into(r, wire)
    assert client.inflight == len(sent) == 5 * len(requests())
    server.receive_data(bytes(wire))
    received = drain(server)
    assert received == list(sent.values())
    assert server.inflight == len(sent)
    rng.shuffle(received)
    # answer in random order; some fail with an error response
    answers = bytearray()
    expected: dict[int, n.Frame] = {}
    for i, event in enumerate(received):
        assert isinstance(event, n.Request)
        request = sent[event.id]
        assert event == request
        resp: n.Frame
        if i % 7 == 0:
            resp = n.error_response(request.id, errors.QueueDoesNotExist("gone"))
        else:
            resp = response_for(request)
        server.send_into(resp, answers)
        expected[request.id] = resp
    assert server.inflight == 0
    client.receive_data(bytes(answers))
    got = drain(client)
    assert [getattr(e, "id", None) for e in got] == list(expected)
    for event in got:
        assert isinstance(event, n.Response | n.ErrorResponse)
        assert event == expected[event.id]  # type: ignore[index]
        if isinstance(event, n.Response):
            assert event.OP == sent[event.id].OP
    assert client.inflight == 0


def test_client_refuses_a_request_id_in_flight() -> None:
    client, _server = pair()
    client.send(n.PingRequest(id=5))
    before = snapshot(client)
    with pytest.raises(n.LocalProtocolError) as info:
        client.send(n.PingRequest(id=5))
    assert info.value.code == "DuplicateRequestId"
    assert snapshot(client) == before


def test_server_refuses_a_duplicate_request_id() -> None:
    _client, server = pair()
    server.receive_data(raw({"op": "ping", "id": 5}) + raw({"op": "ping", "id": 5}))
    assert server.next_event() == n.PingRequest(id=5)
    expect_error(server, "DuplicateRequestId")


def test_request_ids_can_be_reused_once_answered() -> None:
    client, server = pair()
    for _ in range(3):
        server.receive_data(client.send(n.PingRequest(id=5)))
        assert server.next_event() == n.PingRequest(id=5)
        client.receive_data(server.send(n.PingResponse(id=5)))
        assert client.next_event() == n.PingResponse(id=5)


def test_new_request_id_wraps_and_skips_ids_in_flight() -> None:
    client, _server = pair()
    client.send(n.PingRequest(id=0))
    client.send(n.PingRequest(id=2))
    client._next_id = n.request_id_max  # near the wrap
    assert client.new_request_id() == n.request_id_max
    assert client.new_request_id() == 1
    assert client.new_request_id() == 3


def test_max_inflight() -> None:
    client, server = pair(max_inflight=2)
    assert client.max_inflight == 2
    server.receive_data(client.send(n.PingRequest(id=1)) + client.send(n.PingRequest(id=2)))
    with pytest.raises(n.LocalProtocolError) as info:
        client.send(n.PingRequest(id=3))
    assert info.value.code == "TooManyInflight"
    assert client.inflight == 2
    drain(server)
    client.receive_data(server.send(n.PingResponse(id=2)))
    assert client.next_event() == n.PingResponse(id=2)
    server.receive_data(client.send(n.PingRequest(id=3)))
    assert server.next_event() == n.PingRequest(id=3)
    # a client that ignores the limit is cut off
    server.receive_data(raw({"op": "ping", "id": 4}))
    expect_error(server, "TooManyInflight")


def test_response_to_a_request_not_in_flight() -> None:
    client, _server = pair()
    client.receive_data(raw({"op": "ping", "id": 1}))
    expect_error(client, "UnexpectedMessage")


def test_response_with_the_wrong_op() -> None:
    client, _server = pair()
    client.send(n.PingRequest(id=1))
    client.receive_data(raw({"op": "delete", "id": 1}))
    expect_error(client, "UnexpectedMessage")


def test_server_refuses_to_send_a_wrong_response() -> None:
    client, server = pair()
    server.receive_data(client.send(n.PingRequest(id=1)))
    server.next_event()
    wrongs: list[n.Frame] = [
        n.PingResponse(id=2),
        n.DeleteResponse(id=1),
        n.ErrorResponse(id=2, code="x"),
    ]
    for wrong in wrongs:
        before = snapshot(server)
        with pytest.raises(n.LocalProtocolError):
            server.send(wrong)
        assert snapshot(server) == before
    server.send(n.PingResponse(id=1))


def test_a_server_does_not_accept_a_request_error() -> None:
    _client, server = pair()
    server.receive_data(raw({"op": "error", "id": 1, "code": "InternalError"}))
    expect_error(server, "UnexpectedMessage")


# --- frame limits ------------------------------------------------------------------------
def test_oversized_length_prefix_fails_before_the_body() -> None:
    _client, server = pair(server_frame_bytes=n.frame_bytes_min)
    server.receive_data((n.frame_bytes_min + 1).to_bytes(4, "big"))
    exc = expect_error(server, "FrameTooLarge")
    assert str(n.frame_bytes_min + 1) in exc.message
    assert server.buffered_bytes == 0
    server.receive_data(b"x" * 1000)  # the body keeps coming: not buffered
    assert server.buffered_bytes == 0


def test_frame_of_exactly_the_limit_is_accepted() -> None:
    client, server = pair(server_frame_bytes=n.frame_bytes_min)
    request = n.SendRequest(id=1, queue="q", body=b"")
    overhead = len(ENC.encode(request)) + 3  # an empty bin8 header is 3 bytes short of bin32
    body = b"x" * (n.frame_bytes_min - overhead)
    data = client.send(msgspec.structs.replace(request, body=body))
    assert len(data) == n.frame_bytes_min + 4
    server.receive_data(data)
    assert isinstance(server.next_event(), n.SendRequest)


def test_send_refuses_a_frame_above_the_peer_limit() -> None:
    client, server = pair(server_frame_bytes=n.frame_bytes_min)
    before = snapshot(client)
    out = bytearray(b"previous")
    with pytest.raises(n.LocalProtocolError) as info:
        client.send_into(n.SendRequest(id=1, queue="q", body=b"x" * n.frame_bytes_min), out)
    assert info.value.code == "FrameTooLarge"
    assert out == b"previous" and snapshot(client) == before
    server.receive_data(client.send(n.SendRequest(id=1, queue="q", body=b"x")))
    assert isinstance(server.next_event(), n.SendRequest)


def test_server_can_replace_a_too_large_response_with_an_error() -> None:
    client, server = pair(client_frame_bytes=n.frame_bytes_min)
    server.receive_data(client.send(n.ReceiveRequest(id=1, queue="q", max_messages=10)))
    server.next_event()
    msg = n.Message(message_id="m", body=b"x" * (n.frame_bytes_min // 2), sent_ms=1)
    with pytest.raises(n.LocalProtocolError):
        server.send(n.ReceiveResponse(id=1, messages=[msg, msg, msg]))
    client.receive_data(server.send(n.error_response(1, errors.OverLimit("too big"))))
    event = client.next_event()
    assert isinstance(event, n.ErrorResponse) and event.code == "OverLimit"


def test_client_checks_what_it_sends() -> None:
    client, server = pair()
    bads: list[n.Frame] = [
        n.SendRequest(id=1, queue="q", body="text"),  # type: ignore[arg-type]
        n.PingRequest(id=2**32),
        n.ReceiveRequest(id=1, queue="q", max_messages=0),
        n.DeleteBatchRequest(id=1, queue="q", receipt_handles=["h"] * 1001),
    ]
    for bad in bads:
        before = snapshot(client)
        with pytest.raises(n.LocalProtocolError) as info:
            client.send(bad)
        assert info.value.code == "MalformedFrame"
        assert snapshot(client) == before
    # without the check, the peer finds the mistake and closes
    unchecked = n.NativeConnection("client", check_sends=False)
    server = n.NativeConnection("server")
    server.receive_data(unchecked.send(unchecked.hello()))
    server.next_event()
    unchecked.receive_data(server.send(server.welcome()))
    unchecked.next_event()
    server.receive_data(unchecked.send(n.SendRequest(id=1, queue="q", body="text")))  # type: ignore[arg-type]
    expect_error(server, "MalformedFrame")


# --- end of stream -----------------------------------------------------------------------
def test_clean_end_of_stream() -> None:
    client, server = pair()
    server.receive_data(client.send(n.PingRequest(id=1)))
    server.receive_data(b"")
    assert server.next_event() == n.PingRequest(id=1)
    assert isinstance(server.next_event(), n.ConnectionClosed)
    assert server.state is n.State.PEER_CLOSED
    # a request in flight can still be answered
    client.receive_data(server.send(n.PingResponse(id=1)))
    assert client.next_event() == n.PingResponse(id=1)
    assert isinstance(server.next_event(), n.ConnectionClosed)
    with pytest.raises(n.LocalProtocolError):
        server.send(n.PingResponse(id=1))
    with pytest.raises(n.LocalProtocolError):
        server.receive_data(b"more")
    client.receive_data(b"")
    assert isinstance(client.next_event(), n.ConnectionClosed)
    assert client.state is n.State.CLOSED


def test_end_of_stream_inside_a_frame() -> None:
    client, _server = pair()
    data = client.send(n.PingRequest(id=1))
    for cut in (2, len(data) - 1):
        _c2, s2 = pair()
        s2.receive_data(data[:cut])
        assert s2.next_event() is n.NEED_DATA
        s2.receive_data(b"")
        expect_error(s2, "TruncatedFrame")


def test_end_of_stream_before_hello() -> None:
    server = n.NativeConnection("server")
    server.receive_data(b"")
    assert isinstance(server.next_event(), n.ConnectionClosed)
    assert server.state is n.State.CLOSED


# --- the ERROR state ---------------------------------------------------------------------
def test_error_state_is_final() -> None:
    client, server = pair()
    server.receive_data(client.send(n.PingRequest(id=1)))
    server.receive_data(frame(b"\xc1"))
    assert server.next_event() == n.PingRequest(id=1)
    exc = expect_error(server, "MalformedFrame")
    with pytest.raises(n.ProtocolError) as again:
        server.next_event()
    assert again.value is exc
    server.receive_data(b"\x00" * 100)
    assert server.buffered_bytes == 0
    with pytest.raises(n.LocalProtocolError):
        server.send(n.PingResponse(id=1))
    goodbye = server.send(n.error_response(None, exc))
    assert server.state is n.State.CLOSED
    client.receive_data(goodbye)
    event = client.next_event()
    assert isinstance(event, n.ErrorResponse) and event.code == "MalformedFrame"
    assert client.state is n.State.CLOSED


def test_client_can_say_why_it_closes() -> None:
    client, server = pair()
    client.receive_data(frame(b"\xc1"))
    exc = expect_error(client, "MalformedFrame")
    server.receive_data(client.send(n.error_response(None, exc)))
    assert client.state is n.State.CLOSED
    event = server.next_event()
    assert isinstance(event, n.ErrorResponse) and event.code == "MalformedFrame"
    assert server.state is n.State.CLOSED
    assert isinstance(server.next_event(), n.ConnectionClosed)


def test_buffer_is_compacted() -> None:
    _client, server = pair(max_inflight=20_000)
    data = b"".join(raw({"op": "ping", "id": i}) for i in range(20_000))
    server.receive_data(data + data[:3])  # a partial frame at the end
    events = drain(server)
    assert len(events) == 20_000
    assert server.buffered_bytes == 3
    assert len(server._buf) < n.buffer_compact_bytes + 100


def test_received_bytes_are_decoded_in_place_and_partial_frames_kept() -> None:
    """``bytes`` arriving with nothing buffered are decoded where they are; a partial
    frame left in them is copied (without the frames before it); any split of a stream,
    in chunks of any buffer type, gives the same events."""
    frames = [raw({"op": "ping", "id": i}) for i in range(4)]
    data = b"".join(frames)
    _client, server = pair()
    server.receive_data(data[:-3])  # three frames and a partial one
    assert [e.id for e in drain(server)] == [0, 1, 2]  # type: ignore[union-attr]
    assert type(server._buf) is bytearray and server.buffered_bytes == len(frames[3]) - 3
    server.receive_data(data[-3:])
    assert [e.id for e in drain(server)] == [3]  # type: ignore[union-attr]
    assert server.buffered_bytes == 0
    kinds = [bytes, bytearray, memoryview]
    for cut in range(1, len(data)):
        for i, kind in enumerate(kinds):
            _client, server = pair()
            first, second = kind(data[:cut]), kinds[(i + cut) % 3](data[cut:])
            server.receive_data(first)
            events = drain(server)
            server.receive_data(second)
            events += drain(server)
            assert [e.id for e in events] == [0, 1, 2, 3], (cut, kind)  # type: ignore[union-attr]


def test_a_reused_receive_buffer_is_copied() -> None:
    """A bytearray (or a view of one) may be refilled by the caller after receive_data."""
    _client, server = pair()
    chunk = bytearray(raw({"op": "ping", "id": 7}) + raw({"op": "ping", "id": 8})[:5])
    server.receive_data(memoryview(chunk))
    chunk[:] = b"\xff" * len(chunk)
    assert [e.id for e in drain(server)] == [7]  # type: ignore[union-attr]
    server.receive_data(raw({"op": "ping", "id": 8})[5:])
    assert [e.id for e in drain(server)] == [8]  # type: ignore[union-attr]


def test_checked_sends_skip_only_the_decode_check() -> None:
    client, _server = pair()
    other, _ = pair()
    good = n.SendRequest(id=1, queue="q", body=b"x", group_id="g")
    assert client.send(good, checked=True) == other.send(good)
    # the caller vouches for the types: a frame it got wrong goes out as it is...
    bad = n.SendRequest(id=2, queue="q", body="text")  # type: ignore[arg-type]
    with pytest.raises(n.LocalProtocolError):
        other.send(bad)
    assert client.send(bad, checked=True)
    # ...but the state machine and the peer's frame limit are checked all the same
    with pytest.raises(n.LocalProtocolError) as info:
        client.send(n.PingRequest(id=1), checked=True)
    assert info.value.code == "DuplicateRequestId"
    big = n.SendRequest(id=3, queue="q", body=b"x" * (n.frame_bytes_default + 1))
    with pytest.raises(n.LocalProtocolError) as info:
        client.send(big, checked=True)
    assert info.value.code == "FrameTooLarge"


# --- documentation -------------------------------------------------------------------------
def test_doc_prints_the_transition_table() -> None:
    assert n.transitions_markdown() in DOC.read_text(encoding="utf-8")


def test_public_names() -> None:
    for name in n.__all__:
        assert hasattr(n, name), name
    import conveyor.protocol.native_messages as m

    assert set(m.__all__) <= set(n.__all__)
