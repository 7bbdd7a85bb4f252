"""AsyncBroker: durable answers without threads per request, and parked long polls."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor import errors
from conveyor.storage import bounds
from conveyor.types import SendEntry


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def _count_syncs(monkeypatch: pytest.MonkeyPatch, threads: list[int], delay_s: float = 0.0) -> None:
    """Note the thread of every fsync or fdatasync of a regular file (a log segment;
    preallocated segments are fdatasynced), each taking ``delay_s`` longer."""
    for name in ("fsync", "fdatasync"):
        real = getattr(os, name)

        def sync(fd: int, real: Any = real) -> None:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                threads.append(threading.get_ident())
                if delay_s:
                    time.sleep(delay_s)
            real(fd)

        monkeypatch.setattr(os, name, sync)


def test_operations_round_trip_with_fsync_always(tmp_path: Path) -> None:
    async def main() -> None:
        async with await conveyor.open_async(tmp_path, fsync="always") as broker:
            await broker.create_queue("jobs")
            sent = await broker.send("jobs", "hello")
            results = await broker.send_batch("jobs", [SendEntry(body=f"b{i}") for i in range(5)])
            assert all(not isinstance(r, Exception) for r in results)
            got = await broker.receive("jobs", 10)
            assert [m.text for m in got][:1] == ["hello"] or "hello" in [m.text for m in got]
            assert len(got) == 6 and got[0].message_id in {sent.message_id} | {
                r.message_id for r in results if not isinstance(r, Exception)
            }
            await broker.change_visibility("jobs", got[0].receipt_handle, 0)
            assert (
                await broker.delete_batch("jobs", [m.receipt_handle for m in got[1:]]) == [None] * 5
            )
            again = await broker.receive("jobs", 10)
            assert [m.message_id for m in again] == [got[0].message_id]
            await broker.delete("jobs", again[0].receipt_handle)
            with pytest.raises(errors.QueueDoesNotExist):
                await broker.send("nope", "x")

        # everything acknowledged is on disk
        with conveyor.open(tmp_path) as broker:
            assert broker.get_queue("jobs").stats.messages == 0  # type: ignore[union-attr]

    run(main())


def test_long_poll_wakes_on_send(tmp_path: Path) -> None:
    async def main() -> None:
        async with await conveyor.open_async(tmp_path) as broker:
            await broker.create_queue("q")
            started = time.monotonic()
            poll = asyncio.create_task(broker.receive("q", 1, wait_s=10))
            await asyncio.sleep(0.1)
            assert not poll.done()
            sent_at = time.monotonic()
            await broker.send("q", "ping")
            msgs = await poll
            woke = time.monotonic() - sent_at
            assert [m.text for m in msgs] == ["ping"]
            # woken by the send, not by the end of its 10 s wait (how soon is a
            # benchmark's question: a stalled disk under CI can take tens of ms)
            assert woke < 1.0, woke
            assert time.monotonic() - started < 5

    run(main())


def test_parked_receivers_cost_no_cpu_and_one_send_wakes_one(tmp_path: Path) -> None:
    async def main() -> None:
        async with await conveyor.open_async(tmp_path) as broker:
            await broker.create_queue("q")
            n = 2000
            polls = [asyncio.create_task(broker.receive("q", 1, wait_s=20)) for _ in range(n)]
            await asyncio.sleep(0.3)
            q = broker.sync._queues["q"]
            assert len(q.parked) == n
            cpu = time.process_time()
            await asyncio.sleep(0.5)
            assert time.process_time() - cpu < 0.1  # parked means asleep
            await broker.send("q", "one")
            for _ in range(50):
                await asyncio.sleep(0.01)
                if any(p.done() for p in polls):
                    break
            done = [p for p in polls if p.done()]
            assert len(done) == 1 and [m.text for m in done[0].result()] == ["one"]
            assert len(q.parked) == n - 1
            for p in polls:
                p.cancel()
            await asyncio.gather(*polls, return_exceptions=True)
            assert len(q.parked) == 0

    run(main())


def test_a_cancelled_receiver_passes_its_wake_on(tmp_path: Path) -> None:
    async def main() -> None:
        async with await conveyor.open_async(tmp_path) as broker:
            await broker.create_queue("q")
            first = asyncio.create_task(broker.receive("q", 1, wait_s=10))
            await asyncio.sleep(0.05)
            second = asyncio.create_task(broker.receive("q", 1, wait_s=10))
            await asyncio.sleep(0.05)
            q = broker.sync._queues["q"]
            # wake the first from another thread, then cancel it before it runs
            with q.lock:
                q.wake(1)
            first.cancel()
            await broker.send_batch("q", [SendEntry(body="x")])
            msgs = await asyncio.wait_for(second, 2)
            assert [m.text for m in msgs] == ["x"]

    run(main())


def test_delayed_message_wakes_a_parked_receiver(tmp_path: Path) -> None:
    async def main() -> None:
        async with await conveyor.open_async(tmp_path) as broker:
            await broker.create_queue("q")
            await broker.send("q", "later", delay_s=1)
            started = time.monotonic()
            msgs = await broker.receive("q", 1, wait_s=5)
            elapsed = time.monotonic() - started
            assert [m.text for m in msgs] == ["later"]
            assert 0.8 < elapsed < 2.0, elapsed

    run(main())


def test_long_poll_times_out_empty(tmp_path: Path) -> None:
    async def main() -> None:
        async with await conveyor.open_async(tmp_path) as broker:
            await broker.create_queue("q")
            started = time.monotonic()
            assert await broker.receive("q", 1, wait_s=0.3) == []
            assert 0.25 < time.monotonic() - started < 1.5
            assert len(broker.sync._queues["q"].parked) == 0

    run(main())


def test_the_event_loop_fsyncs_small_rounds_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One small send is made durable by an fsync on the loop's own thread; a batch over
    ``loop_sync_bytes_max`` goes to a committer thread, and the loop goes on meanwhile."""
    threads: list[int] = []
    _count_syncs(monkeypatch, threads)

    async def main() -> None:
        async with await conveyor.open_async(tmp_path, fsync="always") as broker:
            await broker.create_queue("jobs")
            loop_thread = threading.get_ident()
            threads.clear()
            await broker.send("jobs", "small")
            assert threads == [loop_thread]

            threads.clear()
            big = bounds.loop_sync_bytes_max // 4
            results = await broker.send_batch("jobs", [SendEntry(body=b"x" * big)] * 5)
            assert not any(isinstance(r, Exception) for r in results)
            assert threads and loop_thread not in threads

            # requests answered in one round of the loop share one fsync
            threads.clear()
            await asyncio.gather(*(broker.send("jobs", f"m{i}") for i in range(20)))
            assert len(threads) == 1

        with conveyor.open(tmp_path) as broker:
            assert broker.get_queue("jobs").stats.messages == 26  # type: ignore[union-attr]

    run(main())


def test_a_send_and_the_lease_of_the_long_poll_it_wakes_share_one_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FIFO receive waits for its lease. When a send on the loop wakes it, it resumes
    in the next round, before the fsync the send waits for, so that fsync covers both."""
    syncs: list[int] = []

    async def main() -> None:
        async with await conveyor.open_async(tmp_path, fsync="always") as broker:
            await broker.create_queue("jobs.fifo")
            await broker.send("jobs.fifo", "warm", group_id="g", dedup_id="w")  # grows the file
            first = await broker.receive("jobs.fifo", 1)
            await broker.delete("jobs.fifo", first[0].receipt_handle)
            _count_syncs(monkeypatch, syncs)
            poll = asyncio.create_task(broker.receive("jobs.fifo", 1, wait_s=5))
            await asyncio.sleep(0.05)
            assert len(broker.sync._queues["jobs.fifo"].parked) == 1
            syncs.clear()
            await broker.send("jobs.fifo", "hello", group_id="g", dedup_id="h")
            got = await poll
            assert [m.body for m in got] == [b"hello"]
            assert len(syncs) == 1

    run(main())


def test_the_event_loop_spends_at_most_half_its_time_in_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small round that comes right after an fsync the loop made itself goes to the
    committer: the loop keeps at least as much time for its requests as for fsyncs."""
    threads: list[int] = []

    async def main() -> None:
        async with await conveyor.open_async(tmp_path, fsync="always") as broker:
            await broker.create_queue("jobs")
            _count_syncs(monkeypatch, threads, delay_s=0.05)
            loop_thread = threading.get_ident()
            await asyncio.sleep(0.2)
            threads.clear()
            await broker.send("jobs", "a")  # the loop fsyncs: 50 ms
            await broker.send("jobs", "b")  # within 50 ms of that: the committer does
            assert threads[0] == loop_thread and loop_thread not in threads[1:]
            assert len(threads) >= 2
            await asyncio.sleep(0.15)
            threads.clear()
            await broker.send("jobs", "c")  # long after: the loop again
            assert threads == [loop_thread]

    run(main())


def test_a_standard_receive_waits_for_its_messages_not_for_its_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Receiving messages that are already durable costs no fsync on a standard queue:
    the lease rides on the next one (here the delete's). A FIFO queue's lease locks its
    group, so its receive waits for it. Either way, a crash before that fsync loses the
    lease, never a message or an acknowledged delete."""
    syncs: list[int] = []
    _count_syncs(monkeypatch, syncs)

    async def main() -> None:
        async with await conveyor.open_async(tmp_path, fsync="always") as broker:
            await broker.create_queue("jobs")
            await broker.create_queue("jobs.fifo", {"fifo": True, "content_dedup": True})
            for i in range(3):
                await broker.send("jobs", f"m{i}")
                await broker.send("jobs.fifo", f"m{i}", group_id="g")

            syncs.clear()
            (first,) = await broker.receive("jobs", 1, visibility_timeout_s=60)
            assert syncs == []
            await broker.delete("jobs", first.receipt_handle)  # its fsync covers the lease
            assert len(syncs) == 1
            (second,) = await broker.receive("jobs", 1, visibility_timeout_s=60)

            syncs.clear()
            (ordered,) = await broker.receive("jobs.fifo", 1, visibility_timeout_s=60)
            assert len(syncs) == 1

            (third,) = await broker.receive("jobs", 1)
            assert third.body == b"m2"

            # a long poll woken by a send answers once the message is durable
            syncs.clear()
            poll = asyncio.ensure_future(broker.receive("jobs", 10, wait_s=5))
            await asyncio.sleep(0.05)
            await broker.send("jobs", "late")
            assert [m.body for m in await poll] == [b"late"]
            assert len(syncs) == 1  # the send's fsync covered the delivery too

        with conveyor.open(tmp_path) as broker:
            stats = broker.get_queue("jobs").stats
            assert stats is not None and stats.messages == 3  # m1, m2, late
            assert second.body == b"m1" and ordered.body == b"m0"

    run(main())
