"""Many producers and consumers at once on shared connections: nothing lost, and in a
FIFO queue nothing duplicated and each group in order."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

from conveyor.client import AsyncClient, Client
from conveyor.testing import ServerProcess
from conveyor.types import Message

PRODUCERS = 4
PER_PRODUCER = 150


def test_threads_standard_queue_nothing_lost(server: ServerProcess, qname: str) -> None:
    client = Client(server.native_address)  # one client, shared by every thread
    client.create_queue(qname)
    total = PRODUCERS * PER_PRODUCER
    got: list[bytes] = []
    lock = threading.Lock()
    done = threading.Event()

    def produce(p: int) -> None:
        with client.producer(qname, batch_size=25) as producer:
            for i in range(PER_PRODUCER):
                if i % 3 == 0:
                    client.send(qname, f"{p}-{i}")
                else:
                    producer.send(f"{p}-{i}")

    helpers = [client.consume(qname, wait_s=0.2, batch=10) for _ in range(3)]

    def consume(i: int) -> None:
        with helpers[i] as messages:
            for msg in messages:
                with lock:
                    got.append(msg.body)
                    if len(set(got)) >= total:
                        done.set()

    consumers = [threading.Thread(target=consume, args=(i,)) for i in range(3)]
    producers = [threading.Thread(target=produce, args=(p,)) for p in range(PRODUCERS)]
    for t in consumers + producers:
        t.start()
    for t in producers:
        t.join()
    assert done.wait(20), f"{len(set(got))} of {total} received"
    for h in helpers:
        h.stop()
    for t in consumers:
        t.join()
    expected = {f"{p}-{i}".encode() for p in range(PRODUCERS) for i in range(PER_PRODUCER)}
    assert set(got) == expected  # none lost (at-least-once: a redelivery is allowed)
    assert client.connections_made == 1
    client.close()


def test_tasks_fifo_queue_no_duplicates_in_order(server: ServerProcess, qname: str) -> None:
    queue = f"{qname}.fifo"
    groups = 4

    async def main() -> None:
        async with AsyncClient(server.native_address) as c:
            await c.create_queue(queue)

            async def produce(p: int) -> None:
                async with c.producer(queue, batch_size=20) as producer:
                    for i in range(PER_PRODUCER):
                        producer.send(f"{p}:{i}", group_id=f"g{p}", dedup_id=f"{p}-{i}")

            received: list[Message] = []

            async def consume() -> None:
                consumer = c.consume(queue, wait_s=0.2, batch=10)
                async with consumer as messages:
                    async for msg in messages:
                        received.append(msg)
                        if len(received) >= groups * PER_PRODUCER:
                            consumer.stop()

            consumers = [asyncio.create_task(consume()) for _ in range(3)]
            await asyncio.gather(*(produce(p) for p in range(groups)))
            async with asyncio.timeout(20):
                while len(received) < groups * PER_PRODUCER:
                    await asyncio.sleep(0.05)
            for t in consumers:
                t.cancel()
            await asyncio.gather(*consumers, return_exceptions=True)
            bodies = Counter(m.body for m in received)
            assert len(bodies) == groups * PER_PRODUCER
            assert max(bodies.values()) == 1, "a FIFO message was delivered twice"
            for p in range(groups):
                seq = [int(m.body.split(b":")[1]) for m in received if m.group_id == f"g{p}"]
                assert seq == sorted(seq), f"group g{p} out of order"

    asyncio.run(main())
