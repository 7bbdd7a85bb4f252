"""The clients' hot paths against a real server, next to the general ones: per-entry
errors in a batch whether its request was checked by type tests or by the codec's decode,
a request the server would reject refused before it is sent (the connection kept), and
the sync client's blocking socket (a frame larger than the socket buffers, a peer that
stops reading, a reader woken by its deadline, by a close from another thread and by the
peer's close)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor import errors
from conveyor.client import AsyncClient, Client, Timeout
from conveyor.client import sync as sync_client
from conveyor.client.errors import ClientClosed, ConnectionLost
from conveyor.protocol import native as n
from conveyor.testing import ServerProcess
from conveyor.types import MessageAttribute, SendEntry, SendResult

BAD_DELAY = 10**6  # well-typed, refused by the broker per entry
KINDS = [
    SendResult,
    errors.InvalidParameterValue,
    errors.InvalidParameterValue,
    errors.MessageTooLong,
    SendResult,
    SendResult,
]


def mixed_batch(binary: bytes | bytearray) -> list[SendEntry]:
    """Entries the broker takes and refuses, in a known order. With a ``bytearray``
    attribute value the type tests cannot vouch for the batch: the codec checks it."""
    return [
        SendEntry(body=b"a"),
        SendEntry(body=b"b", delay_s=BAD_DELAY),
        SendEntry(body=b"c", attributes={"a": MessageAttribute("Bogus", "v")}),
        SendEntry(body=b"x" * 300_000),  # above the queue's 256 KiB
        SendEntry(body=b"d", attributes={"b": MessageAttribute("Binary", None, binary)}),
        SendEntry(body="e"),
    ]


def check_results(results: list[SendResult | errors.ConveyorError]) -> None:
    assert [type(r) for r in results] == KINDS
    ids = [r.message_id for r in results if isinstance(r, SendResult)]
    assert len(set(ids)) == 3


def test_per_entry_errors_sync(server: ServerProcess, qname: str) -> None:
    with Client(server.native_address) as c:
        c.create_queue(qname)
        check_results(c.send_batch(qname, mixed_batch(b"\0")))  # checked by type tests
        check_results(c.send_batch(qname, mixed_batch(bytearray(b"\0"))))  # by the codec
        got = c.receive(qname, 10, wait_s=1)
        got += c.receive(qname, 10, wait_s=0.2)
        assert sorted(m.body for m in got) == [b"a", b"a", b"d", b"d", b"e", b"e"]
        assert c.delete_batch(qname, [m.receipt_handle for m in got]) == [None] * len(got)
        assert c.connections_made == 1


def test_per_entry_errors_async(server: ServerProcess, qname: str) -> None:
    async def main() -> None:
        async with AsyncClient(server.native_address) as c:
            await c.create_queue(qname)
            check_results(await c.send_batch(qname, mixed_batch(b"\0")))
            check_results(await c.send_batch(qname, mixed_batch(bytearray(b"\0"))))
            got = await c.receive(qname, 10, wait_s=1)
            got += await c.receive(qname, 10, wait_s=0.2)
            assert sorted(m.body for m in got) == [b"a", b"a", b"d", b"d", b"e", b"e"]
            handles = [m.receipt_handle for m in got] + ["garbage"]
            out = await c.delete_batch(qname, handles)
            assert out[:-1] == [None] * len(got)
            assert isinstance(out[-1], errors.ReceiptHandleIsInvalid)
            assert c.connections_made == 1

    asyncio.run(main())


ILL_TYPED = [
    SendEntry(body=b"ok"),
    SendEntry(body=b"bad", delay_s="5"),  # type: ignore[arg-type]
]


def test_ill_typed_requests_are_refused_before_sending_sync(
    server: ServerProcess, qname: str
) -> None:
    with Client(server.native_address) as c:
        c.create_queue(qname)
        with pytest.raises(n.LocalProtocolError, match="delay_s"):
            c.send_batch(qname, ILL_TYPED)
        with pytest.raises(n.LocalProtocolError):
            c.receive(qname, 1001)
        with pytest.raises(n.LocalProtocolError):
            c.send(qname, b"x", group_id=5)  # type: ignore[arg-type]
        c.ping()
        assert c.connections_made == 1
        assert c.peek(qname) == []  # nothing of the refused batch was sent


def test_ill_typed_requests_are_refused_before_sending_async(
    server: ServerProcess, qname: str
) -> None:
    async def main() -> None:
        async with AsyncClient(server.native_address) as c:
            await c.create_queue(qname)
            with pytest.raises(n.LocalProtocolError, match="delay_s"):
                await c.send_batch(qname, ILL_TYPED)
            with pytest.raises(n.LocalProtocolError):
                await c.delete_batch(qname, ["h", b"h"])  # type: ignore[list-item]
            await c.ping()
            assert c.connections_made == 1
            assert await c.peek(qname) == []

    asyncio.run(main())


def test_a_frame_larger_than_the_socket_buffers(server: ServerProcess, qname: str) -> None:
    """~10 MB in one frame: the sync client's non-blocking send writes it in pieces."""
    body = b"x" * 250_000
    with Client(server.native_address) as c:
        c.create_queue(qname)
        results = c.send_batch(qname, [SendEntry(body=body) for _ in range(40)])
        assert all(isinstance(r, SendResult) for r in results) and len(results) == 40
        c.purge_queue(qname)


def _connection(sock: socket.socket, write_timeout_s: float) -> sync_client._Connection:
    return sync_client._Connection(sock, n.NativeConnection("client"), write_timeout_s)


def test_send_all_waits_for_room() -> None:
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    conn = _connection(a, write_timeout_s=5)
    data = bytearray(range(256)) * 20_000  # 5 MB: many times the buffers
    got = bytearray()

    def read() -> None:
        while len(got) < len(data):
            time.sleep(0.001)  # a slow reader: the writer must wait for room
            chunk = b.recv(1 << 16)
            if not chunk:
                return
            got.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    with conn.write_lock:
        conn._send_all(data)
    reader.join(10)
    assert got == data
    a.close()
    b.close()


def test_send_all_gives_up_on_a_peer_that_stops_reading() -> None:
    a, b = socket.socketpair()
    conn = _connection(a, write_timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(TimeoutError), conn.write_lock:
        conn._send_all(bytearray(64 * 1024 * 1024))  # nobody reads b
    assert 0.25 < time.monotonic() - started < 2
    a.close()
    b.close()


@pytest.fixture
def blocking_pair(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[sync_client._Connection, socket.socket]]:
    """A client connection on one end of a socket pair (the reader's slice made long, so
    only a deadline or a close can end a read) and the other end, which never answers."""
    monkeypatch.setattr(sync_client, "read_slice_s", 30.0)
    a, b = socket.socketpair()
    yield _connection(a, write_timeout_s=5), b
    a.close()
    b.close()


def _reader(conn: sync_client._Connection, deadline: float) -> tuple[sync_client._Slot, list[Any]]:
    """Register a slot as a request would and read for it on a thread; the list gets
    what the read ended with (None, or the exception) and how long it took."""
    slot = sync_client._Slot()
    conn.slots[1] = slot
    conn.reading = True
    ended: list[Any] = []

    def read() -> None:
        started = time.monotonic()
        try:
            conn._read_until(slot, deadline)
            ended.append(None)
        except BaseException as exc:
            ended.append(exc)
        ended.append(time.monotonic() - started)

    threading.Thread(target=read, daemon=True).start()
    return slot, ended


def _wait_for(ended: list[Any], seconds: float) -> None:
    limit = time.monotonic() + seconds
    while len(ended) < 2 and time.monotonic() < limit:
        time.sleep(0.005)
    assert len(ended) == 2, "the reader is still blocked"


def test_a_blocked_read_ends_at_the_deadline_not_the_slice(
    blocking_pair: tuple[sync_client._Connection, socket.socket],
) -> None:
    conn, _b = blocking_pair
    _slot, ended = _reader(conn, time.monotonic() + 0.2)  # b never answers
    _wait_for(ended, 5)
    assert isinstance(ended[0], sync_client._Deadline)
    assert 0.15 < ended[1] < 1.0
    # a read with a far deadline waits the whole slice again
    _slot, ended = _reader(conn, time.monotonic() + 60)
    time.sleep(0.1)
    assert conn.read_timeout_s == 30.0 and not ended
    conn.fail(ClientClosed("closed by the test"))
    _wait_for(ended, 3)


def test_a_blocked_read_wakes_when_another_thread_fails_the_connection(
    blocking_pair: tuple[sync_client._Connection, socket.socket],
) -> None:
    conn, _b = blocking_pair
    slot, ended = _reader(conn, time.monotonic() + 30)
    time.sleep(0.1)  # the reader is inside recv
    conn.fail(ClientClosed("closed by the test"))
    _wait_for(ended, 3)
    assert ended[0] is None and ended[1] < 2
    assert slot.done and isinstance(slot.error, ClientClosed)


def test_a_blocked_read_wakes_when_the_peer_closes(
    blocking_pair: tuple[sync_client._Connection, socket.socket],
) -> None:
    conn, b = blocking_pair
    slot, ended = _reader(conn, time.monotonic() + 30)
    time.sleep(0.1)
    b.close()
    _wait_for(ended, 3)
    assert ended[0] is None and ended[1] < 2
    assert slot.done and isinstance(slot.error, ConnectionLost)
    assert conn.closed is not None


# --- the asyncio client's hot path, on an in-memory transport ------------------------------
class _Transport(asyncio.Transport):
    """Records every write; the test answers by calling ``data_received``."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _open_client(timeout_s: float = 30.0) -> tuple[AsyncClient, _Transport, n.NativeConnection]:
    """An AsyncClient on an open in-memory connection, and the server's codec."""
    from conveyor.client import aio

    client = AsyncClient("127.0.0.1:1", timeout_s=timeout_s)
    proto = aio._Protocol(asyncio.get_running_loop(), "test", None, n.frame_bytes_default)
    transport = _Transport()
    proto.connection_made(transport)
    server = n.NativeConnection("server")
    server.receive_data(transport.writes.pop())
    assert isinstance(server.next_event(), n.Hello)
    proto.data_received(server.send(server.welcome()))
    assert proto.ready.done()
    client._proto = proto
    return client, transport, server


def _requests(server: n.NativeConnection, data: bytes) -> list[n.Request]:
    server.receive_data(data)
    out = []
    while (event := server.next_event()) is not n.NEED_DATA:
        assert isinstance(event, n.Request)
        out.append(event)
    return out


def test_async_writes_at_once_when_idle_and_gathers_otherwise() -> None:
    async def main() -> None:
        client, transport, server = _open_client()
        first = asyncio.ensure_future(client.ping())
        await asyncio.sleep(0)  # the task runs: an idle connection, written at once
        assert len(transport.writes) == 1
        (ping,) = _requests(server, transport.writes.pop())
        # two more while the first is in flight: gathered into one write
        more = [asyncio.ensure_future(client.ping()) for _ in range(2)]
        await asyncio.sleep(0)
        assert transport.writes == []  # not yet: at the end of the loop iteration
        await asyncio.sleep(0)
        assert len(transport.writes) == 1
        pings = _requests(server, transport.writes.pop())
        assert len(pings) == 2
        answers = b"".join(server.send(n.PingResponse(id=p.id)) for p in [ping, *pings])
        client._proto.data_received(answers)  # type: ignore[union-attr]
        await asyncio.gather(first, *more)

    asyncio.run(main())


def test_async_deadline_on_the_hot_path() -> None:
    """No answer: Timeout at the deadline, the silent connection given up, and the late
    answer ignored."""

    async def main() -> None:
        client, transport, server = _open_client(timeout_s=0.2)
        proto = client._proto
        assert proto is not None
        started = time.monotonic()
        with pytest.raises(Timeout):
            await client.ping()
        assert 0.15 < time.monotonic() - started < 1.0
        assert proto.closed is not None  # nothing came back while it waited
        (ping,) = _requests(server, transport.writes.pop())
        proto.data_received(server.send(n.PingResponse(id=ping.id)))  # too late: ignored

    asyncio.run(main())


def test_async_answer_before_the_deadline_leaves_no_timer() -> None:
    async def main() -> None:
        client, transport, server = _open_client(timeout_s=0.2)
        task = asyncio.ensure_future(client.ping())
        await asyncio.sleep(0)
        (ping,) = _requests(server, transport.writes.pop())
        client._proto.data_received(server.send(n.PingResponse(id=ping.id)))  # type: ignore[union-attr]
        await task
        await asyncio.sleep(0.4)  # past the deadline: the cancelled timer did nothing
        assert client._proto is not None and client._proto.closed is None

    asyncio.run(main())
