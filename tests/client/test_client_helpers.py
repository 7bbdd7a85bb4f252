"""The consumer and producer helpers: delete on success, release on failure, lease
extension, batching with a future per message."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterator

import pytest

from conveyor import errors
from conveyor.client import AsyncClient, Client
from conveyor.client.consumer import Leases
from conveyor.testing import ServerProcess
from conveyor.types import Message, SendEntry


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.native_address) as c:
        yield c


def fill(client: Client, queue: str, n: int) -> None:
    client.create_queue(queue)
    client.send_batch(queue, [SendEntry(body=f"m{i}") for i in range(n)])


def stats(client: Client, queue: str) -> tuple[int, int, int]:
    s = client.get_queue(queue).stats
    assert s is not None
    return s.messages, s.visible, s.inflight


def test_for_loop_deletes_each_message_when_the_next_is_asked_for(
    client: Client, qname: str
) -> None:
    fill(client, qname, 5)
    bodies = [m.body for m in client.consume(qname, wait_s=0.2, limit=5)]
    assert sorted(bodies) == [f"m{i}".encode() for i in range(5)]
    assert stats(client, qname) == (0, 0, 0)


def test_exception_releases_and_with_block_decides(client: Client, qname: str) -> None:
    fill(client, qname, 3)
    # an exception in the loop body: that message is released (visible again), the
    # ones handled before it deleted, the prefetched rest released
    with pytest.raises(RuntimeError), client.consume(qname, wait_s=0.2, batch=3) as messages:
        for i, _msg in enumerate(messages):
            if i == 1:
                raise RuntimeError("handler failed")
    assert stats(client, qname) == (2, 2, 0)
    # break inside ``with``: success, the message is deleted
    with client.consume(qname, wait_s=0.2, batch=1) as messages:
        for _msg in messages:
            break
    assert stats(client, qname) == (1, 1, 0)
    # break in a plain for loop: not known to have succeeded, released
    for _msg in client.consume(qname, wait_s=0.2):
        break
    assert stats(client, qname) == (1, 1, 0)


def test_handler_form(client: Client, qname: str) -> None:
    fill(client, qname, 6)
    seen: list[bytes] = []

    def handler(msg: Message) -> None:
        seen.append(msg.body)
        if msg.body == b"m3" and msg.receive_count == 1:
            raise ValueError("first try of m3 fails")

    consumer = client.consume(qname, handler, wait_s=0.2, limit=7)
    assert consumer.acked == 6 and consumer.released == 1
    assert sorted(seen) == sorted([f"m{i}".encode() for i in range(6)] + [b"m3"])
    assert stats(client, qname) == (0, 0, 0)


def test_lease_is_extended_while_a_handler_runs_long(client: Client, qname: str) -> None:
    fill(client, qname, 1)
    other = Client(f"{client.host}:{client.port}")

    def slow(msg: Message) -> None:
        time.sleep(3.2)  # more than three visibility timeouts
        # meanwhile nobody else could receive it
        assert other.receive(qname, 10, wait_s=0) == []

    consumer = client.consume(qname, slow, wait_s=0.2, visibility_timeout_s=1, limit=1)
    assert consumer.acked == 1
    assert stats(client, qname) == (0, 0, 0)
    other.close()


def test_leases_tracker() -> None:
    leases = Leases(10)
    leases.add("a", 100.0)
    leases.add("b", 103.0)
    assert leases.due(100.0) == [] and leases.next_due_s(100.0) == pytest.approx(5.0)
    assert leases.due(105.0) == ["a"]
    leases.extended(["a"], 105.0)
    assert leases.due(108.0) == ["b"]
    leases.discard("b")
    assert len(leases) == 1


def test_stop_from_another_thread(client: Client, qname: str) -> None:
    client.create_queue(qname)
    consumer = client.consume(qname, wait_s=0.2)
    threading.Timer(0.3, consumer.stop).start()
    started = time.monotonic()
    assert list(consumer) == []
    assert time.monotonic() - started < 1.5


def test_producer_batches_and_resolves_futures(client: Client, qname: str) -> None:
    client.create_queue(qname)
    with client.producer(qname, batch_size=50, linger_s=0.01) as producer:
        futures = [producer.send(f"p{i}") for i in range(230)]
        producer.flush()
        assert all(f.done() for f in futures)
        late = producer.send("late")
    assert late.result().message_id
    ids = {f.result().message_id for f in futures}
    assert len(ids) == 230
    assert stats(client, qname)[0] == 231
    with pytest.raises(errors.ConveyorError):
        producer.send("after close")
    # per-entry errors land on their own future
    with client.producer("no-such-queue-for-producer") as p2:
        bad = p2.send("x")
    with pytest.raises(errors.QueueDoesNotExist):
        bad.result()


def test_async_helpers(server: ServerProcess, qname: str) -> None:
    async def main() -> None:
        async with AsyncClient(server.native_address) as c:
            await c.create_queue(qname)
            async with c.producer(qname, batch_size=20) as producer:
                futures = [producer.send(f"a{i}") for i in range(55)]
            assert len({(await f).message_id for f in futures}) == 55
            # async for with an exception: that message is released
            with pytest.raises(RuntimeError):
                async with c.consume(qname, wait_s=0.2, batch=5) as messages:
                    async for i, _msg in _enumerate(messages):
                        if i == 3:
                            raise RuntimeError("boom")
            s = (await c.get_queue(qname)).stats
            assert s is not None and (s.messages, s.inflight) == (52, 0)
            # handler form with a lease extension
            seen: list[bytes] = []

            async def handler(msg: Message) -> None:
                if not seen:
                    await asyncio.sleep(2.2)  # > 2 visibility timeouts of 1 s
                seen.append(msg.body)

            await c.consume(qname, handler, wait_s=0.2, visibility_timeout_s=1, limit=52)
            assert len(seen) == 52 and len(set(seen)) == 52
            s = (await c.get_queue(qname)).stats
            assert s is not None and s.messages == 0

    asyncio.run(main())


async def _enumerate(it: AsyncIterable[Message]) -> AsyncIterator[tuple[int, Message]]:
    i = 0
    async for x in it:
        yield i, x
        i += 1
