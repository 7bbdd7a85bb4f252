"""Every operation of both clients against a real server, with the embedded broker's
types and errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from conveyor import errors
from conveyor.client import AsyncClient, Client
from conveyor.queue import QueueConfig
from conveyor.testing import ServerProcess
from conveyor.types import Message, MessageAttribute, QueueInfo, SendEntry, SendResult


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.native_address) as c:
        yield c


def test_queue_operations(client: Client, qname: str) -> None:
    client.ping()
    info = client.create_queue(qname, {"visibility_timeout_s": 7}, {"team": "a"})
    assert isinstance(info, QueueInfo) and isinstance(info.config, QueueConfig)
    assert (info.name, info.config.visibility_timeout_s, info.tags) == (qname, 7, {"team": "a"})
    assert info.stats is None
    # again with the same attributes: a no-op; with others: an error
    assert client.create_queue(qname, {"visibility_timeout_s": 7}).name == qname
    with pytest.raises(errors.QueueAlreadyExists):
        client.create_queue(qname, {"visibility_timeout_s": 8})
    assert qname in client.list_queues()
    assert client.list_queues(qname) == [qname]
    assert client.set_queue(qname, {"delay_s": 1}).config.delay_s == 1
    client.tag_queue(qname, {"env": "test"}, remove=["team"])
    got = client.get_queue(qname)
    assert got.tags == {"env": "test"} and got.config.delay_s == 1
    assert got.stats is not None and got.stats.messages == 0
    client.set_queue(qname, {"delay_s": 0})
    client.send(qname, "x")
    client.purge_queue(qname)
    assert client.peek(qname) == []
    with pytest.raises(errors.PurgeQueueInProgress):  # one purge per 60 s, not retried forever
        client.purge_queue(qname)
    client.delete_queue(qname)
    with pytest.raises(errors.QueueDoesNotExist):
        client.get_queue(qname)
    with pytest.raises(errors.QueueDoesNotExist):
        client.delete_queue(qname)
    with pytest.raises(errors.InvalidParameterValue):
        client.create_queue("bad name!")


def test_message_operations(client: Client, qname: str) -> None:
    client.create_queue(qname)
    attrs = {"n": MessageAttribute("Number", "5"), "b": MessageAttribute("Binary", None, b"\0")}
    sent = client.send(qname, b"one", attributes=attrs)
    assert isinstance(sent, SendResult) and sent.message_id
    results = client.send_batch(qname, [SendEntry(body=f"m{i}") for i in range(3)])
    assert all(isinstance(r, SendResult) for r in results)
    peeked = client.peek(qname, 10)
    assert [m.body for m in peeked] == [b"one", b"m0", b"m1", b"m2"]
    assert all(m.receipt_handle == "" for m in peeked)
    msgs = client.receive(qname, 10, visibility_timeout_s=30, wait_s=1)
    assert len(msgs) == 4 and all(isinstance(m, Message) and m.queue == qname for m in msgs)
    first = next(m for m in msgs if m.body == b"one")
    assert first.attributes == attrs and first.receive_count == 1 and first.text == "one"
    client.delete(qname, first.receipt_handle)
    rest = [m for m in msgs if m is not first]
    client.change_visibility(qname, rest[0].receipt_handle, 0)
    assert client.change_visibility_batch(qname, [(rest[1].receipt_handle, 0)]) == [None]
    again = client.receive(qname, 10, wait_s=1)
    assert sorted(m.body for m in again) == sorted([rest[0].body, rest[1].body])
    handles = [m.receipt_handle for m in again] + [rest[2].receipt_handle, "garbage"]
    out = client.delete_batch(qname, handles)
    assert out[:3] == [None, None, None]
    assert isinstance(out[3], errors.ReceiptHandleIsInvalid)
    assert client.get_queue(qname).stats.messages == 0  # type: ignore[union-attr]
    with pytest.raises(errors.ReceiptHandleIsInvalid):
        client.delete(qname, "garbage")
    with pytest.raises(errors.QueueDoesNotExist):
        client.send("no-such-queue-anywhere", "x")
    with pytest.raises(errors.EmptyBatchRequest):
        client.send_batch(qname, [])


def test_batches_above_the_protocol_limit_are_split(client: Client, qname: str) -> None:
    client.create_queue(qname)
    body = b"x" * 20_000  # 1200 x 20 kB: above 1000 entries and above a 16 MiB frame
    results = client.send_batch(qname, [SendEntry(body=body) for _ in range(1200)])
    assert len(results) == 1200 and all(isinstance(r, SendResult) for r in results)
    assert len({r.message_id for r in results if isinstance(r, SendResult)}) == 1200
    msgs: list[Message] = []
    while len(msgs) < 1200:
        msgs += client.receive(qname, 500, wait_s=1)
    assert client.delete_batch(qname, [m.receipt_handle for m in msgs]) == [None] * 1200


def test_a_batch_takes_bare_bodies(client: Client, server: ServerProcess, qname: str) -> None:
    client.create_queue(qname)
    results = client.send_batch(qname, ["text", b"bytes", SendEntry(body="entry")])
    assert all(isinstance(r, SendResult) for r in results)
    with pytest.raises(TypeError, match="not int"):
        client.send_batch(qname, ["ok", 42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="body is bytes or str, not int"):
        client.send_batch(qname, [SendEntry(body=5)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="body is bytes or str, not int"):
        client.send(qname, 5)  # type: ignore[arg-type]

    async def main() -> None:
        async with AsyncClient(server.native_address) as ac:
            assert all(isinstance(r, SendResult) for r in await ac.send_batch(qname, ["async"]))

    asyncio.run(main())
    got = client.receive(qname, 10, wait_s=1)
    assert sorted(m.body for m in got) == [b"async", b"bytes", b"entry", b"text"]


def test_fifo_dedup_and_redrive(client: Client, qname: str) -> None:
    dlq, q = f"{qname}-dlq.fifo", f"{qname}.fifo"
    client.create_queue(dlq)
    client.create_queue(q, {"redrive": {"dead_letter_queue": dlq, "max_receive_count": 1}})
    a = client.send(q, "a", group_id="g", dedup_id="d1")
    b = client.send(q, "a", group_id="g", dedup_id="d1")
    assert b.duplicate and b.message_id == a.message_id and a.sequence_number
    [m] = client.receive(q, 10, visibility_timeout_s=0, wait_s=1)
    assert (m.group_id, m.dedup_id) == ("g", "d1")
    assert client.receive(q, 10, wait_s=0.2) == []  # moved to the DLQ on the next receive
    assert [x.body for x in client.peek(dlq)] == [b"a"]
    assert client.redrive(dlq) == 1
    assert [x.body for x in client.peek(q)] == [b"a"]


def test_async_client_operations(server: ServerProcess, qname: str) -> None:
    async def main() -> None:
        async with AsyncClient(server.native_address) as c:
            await c.ping()
            info = await c.create_queue(qname, {"visibility_timeout_s": 5}, {"k": "v"})
            assert info.config.visibility_timeout_s == 5 and info.tags == {"k": "v"}
            assert qname in await c.list_queues()
            assert (await c.set_queue(qname, {"delay_s": 0})).name == qname
            await c.tag_queue(qname, {"k2": "v2"})
            assert (await c.get_queue(qname)).tags == {"k": "v", "k2": "v2"}
            r = await c.send(qname, "a")
            rs = await c.send_batch(qname, [SendEntry(body=b"b"), SendEntry(body=b"c")])
            assert isinstance(r, SendResult) and len(rs) == 2
            assert len(await c.peek(qname)) == 3
            msgs = await c.receive(qname, 10, wait_s=1)
            assert sorted(m.body for m in msgs) == [b"a", b"b", b"c"]
            await c.change_visibility(qname, msgs[0].receipt_handle, 0)
            assert await c.change_visibility_batch(qname, [(msgs[1].receipt_handle, 0)]) == [None]
            await c.delete(qname, msgs[2].receipt_handle)
            again = await c.receive(qname, 10, wait_s=1)
            assert await c.delete_batch(qname, [m.receipt_handle for m in again]) == [None, None]
            await c.purge_queue(qname)
            await c.create_queue(qname + "-dlq")
            assert await c.redrive(qname + "-dlq") == 0
            await c.delete_queue(qname)
            with pytest.raises(errors.QueueDoesNotExist):
                await c.get_queue(qname)
            # many concurrent calls share the one connection
            await asyncio.gather(*(c.ping() for _ in range(500)))
            assert c.connections_made == 1

    asyncio.run(main())
