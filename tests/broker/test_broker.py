"""The embedded broker, end to end on a real data directory."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

import conveyor
from conveyor import errors
from conveyor.types import MessageAttribute, SendEntry

from .conftest import FakeClock


def reopen(broker: conveyor.Broker, data_dir: Path, clock: FakeClock) -> conveyor.Broker:
    broker.close()
    return conveyor.open(data_dir, clock=clock, maintenance_interval_s=None)


# ---------------------------------------------------------------- queue management
def test_create_is_idempotent_and_conflicts_on_different_attributes(
    broker: conveyor.Broker,
) -> None:
    a = broker.create_queue("jobs", {"visibility_timeout_s": 10})
    b = broker.create_queue("jobs", {"visibility_timeout_s": 10})
    assert a.uid == b.uid
    with pytest.raises(errors.QueueAlreadyExists):
        broker.create_queue("jobs", {"visibility_timeout_s": 11})


@pytest.mark.parametrize(
    ("name", "attrs"),
    [
        ("bad name", {}),
        ("x" * 81, {}),
        ("jobs", {"max_message_bytes": 100}),
        ("jobs", {"retention_s": 59}),
        ("jobs", {"visibility_timeout_s": 43_201}),
        ("jobs", {"delay_s": 901}),
        ("jobs", {"fifo": True}),
        ("jobs.fifo", {"fifo": False}),
        ("jobs", {"content_dedup": True}),
        ("jobs", {"redrive": {"dead_letter_queue": "missing", "max_receive_count": 3}}),
        ("jobs", {"unknown": 1}),
        ("jobs", {"visibility_timeout_s": "10"}),
    ],
)
def test_bad_attributes_are_rejected_and_change_nothing(
    broker: conveyor.Broker, name: str, attrs: dict[str, object]
) -> None:
    with pytest.raises(errors.InvalidRequest):
        broker.create_queue(name, attrs)
    assert broker.list_queues() == []


def test_list_get_set_delete(broker: conveyor.Broker) -> None:
    for name in ("orders", "orders-dlq", "billing"):
        broker.create_queue(name)
    assert broker.list_queues("ord") == ["orders", "orders-dlq"]
    info = broker.set_queue("orders", {"visibility_timeout_s": 5, "max_depth_messages": 10})
    assert info.config.visibility_timeout_s == 5
    assert broker.get_queue("orders").config.max_depth_messages == 10
    with pytest.raises(errors.InvalidAttributeValue):
        broker.set_queue("orders", {"partitions": 4})
    broker.delete_queue("billing")
    assert broker.list_queues() == ["orders", "orders-dlq"]
    with pytest.raises(errors.QueueDoesNotExist):
        broker.send("billing", "x")


def test_recreated_queue_starts_empty_and_old_handles_fail(broker: conveyor.Broker) -> None:
    broker.create_queue("q")
    broker.send("q", "hello")
    (msg,) = broker.receive("q")
    broker.delete_queue("q")
    broker.create_queue("q")
    assert broker.receive("q") == []
    with pytest.raises(errors.ReceiptHandleIsInvalid):
        broker.delete("q", msg.receipt_handle)


# ---------------------------------------------------------------- messages
def test_send_receive_delete_with_attributes(broker: conveyor.Broker, clock: FakeClock) -> None:
    broker.create_queue("q")
    attrs = {
        "kind": MessageAttribute("String", string_value="order"),
        "n": MessageAttribute("Number.int", string_value="42"),
        "raw": MessageAttribute("Binary", binary_value=b"\x00\x01"),
    }
    sent = broker.send("q", "hello", attributes=attrs, system={"AWSTraceHeader": "Root=1-x"})
    clock.advance(1)
    (msg,) = broker.receive("q", 10)
    assert msg.message_id == sent.message_id
    assert msg.text == "hello" and msg.attributes == attrs
    assert msg.system == {"AWSTraceHeader": "Root=1-x"}
    assert msg.receive_count == 1
    assert msg.sent_ms == clock.ms - 1000 and msg.first_receive_ms == clock.ms
    broker.delete("q", msg.receipt_handle)
    broker.delete("q", msg.receipt_handle)  # idempotent
    clock.advance(60)
    assert broker.receive("q") == []
    assert broker.get_queue("q").stats.messages == 0  # type: ignore[union-attr]


def test_bad_messages_are_rejected(broker: conveyor.Broker) -> None:
    broker.create_queue("q", {"max_message_bytes": 1024})
    with pytest.raises(errors.MessageTooLong):
        broker.send("q", b"x" * 1025)
    with pytest.raises(errors.MissingParameter):
        broker.send("q", b"")
    with pytest.raises(errors.InvalidParameterValue):
        broker.send("q", "x", attributes={"n": MessageAttribute("Number", string_value="abc")})
    with pytest.raises(errors.InvalidParameterValue):
        broker.send(
            "q", "x", attributes={f"a{i}": MessageAttribute("String", "v") for i in range(11)}
        )
    with pytest.raises(errors.InvalidParameterValue):
        broker.send("q", "x", delay_s=901)
    with pytest.raises(errors.InvalidParameterValue):
        broker.send("q", "x", dedup_id="d")
    assert broker.get_queue("q").stats.messages == 0  # type: ignore[union-attr]


def test_visibility_timeout_and_stale_handles(broker: conveyor.Broker, clock: FakeClock) -> None:
    broker.create_queue("q", {"visibility_timeout_s": 30})
    broker.send("q", "m")
    (first,) = broker.receive("q")
    assert broker.receive("q") == []
    clock.advance(31)
    (second,) = broker.receive("q")
    assert second.receive_count == 2 and second.message_id == first.message_id
    # the stale handle neither deletes nor extends the newer delivery
    broker.delete("q", first.receipt_handle)
    with pytest.raises(errors.MessageNotInflight):
        broker.change_visibility("q", first.receipt_handle, 100)
    assert broker.get_queue("q").stats.inflight == 1  # type: ignore[union-attr]
    broker.change_visibility("q", second.receipt_handle, 100)
    clock.advance(60)
    assert broker.receive("q") == []
    broker.change_visibility("q", second.receipt_handle, 0)  # release at once
    (third,) = broker.receive("q")
    assert third.receive_count == 3
    broker.delete("q", third.receipt_handle)
    assert broker.get_queue("q").stats.messages == 0  # type: ignore[union-attr]


def test_forged_handles_are_rejected(broker: conveyor.Broker) -> None:
    broker.create_queue("q")
    broker.send("q", "m")
    (msg,) = broker.receive("q")
    h = msg.receipt_handle
    forged = h[:-2] + ("AA" if h[-2:] != "AA" else "BB")
    for bad in (forged, "nonsense", "", h + "x"):
        with pytest.raises(errors.ReceiptHandleIsInvalid):
            broker.delete("q", bad)
    broker.create_queue("other")
    with pytest.raises(errors.ReceiptHandleIsInvalid):
        broker.delete("other", h)


def test_batches_with_per_entry_errors(broker: conveyor.Broker) -> None:
    broker.create_queue("q", {"max_message_bytes": 1024})
    results = broker.send_batch(
        "q", [SendEntry(body="a"), SendEntry(body=b"x" * 2000), SendEntry(body="c")]
    )
    assert isinstance(results[1], errors.MessageTooLong)
    assert not isinstance(results[0], Exception) and not isinstance(results[2], Exception)
    msgs = broker.receive("q", 10)
    assert sorted(m.text for m in msgs) == ["a", "c"]
    out = broker.delete_batch("q", [m.receipt_handle for m in msgs] + ["junk"])
    assert out[:2] == [None, None] and isinstance(out[2], errors.ReceiptHandleIsInvalid)
    with pytest.raises(errors.EmptyBatchRequest):
        broker.send_batch("q", [])


def test_a_batch_takes_bare_bodies(broker: conveyor.Broker) -> None:
    broker.create_queue("q")
    results = broker.send_batch("q", ["text", b"bytes", SendEntry(body="entry", delay_s=0)])
    assert all(not isinstance(r, Exception) for r in results)
    assert sorted(m.text for m in broker.receive("q", 10)) == ["bytes", "entry", "text"]
    bad = broker.send_batch("q", ["ok", 42])  # type: ignore[list-item]
    assert not isinstance(bad[0], Exception)
    assert isinstance(bad[1], errors.InvalidParameterValue) and "not int" in str(bad[1])


def test_delay(broker: conveyor.Broker, clock: FakeClock) -> None:
    broker.create_queue("q", {"delay_s": 10})
    broker.send("q", "queue-delay")
    broker.send("q", "own-delay", delay_s=0)
    assert [m.text for m in broker.receive("q", 10)] == ["own-delay"]
    stats = broker.get_queue("q").stats
    assert stats is not None and stats.delayed == 1
    clock.advance(10)
    assert [m.text for m in broker.receive("q", 10)] == ["queue-delay"]


def test_retention_expiry(broker: conveyor.Broker, clock: FakeClock) -> None:
    broker.create_queue("q", {"retention_s": 60})
    broker.send("q", "old")
    clock.advance(30)
    broker.send("q", "new")
    clock.advance(31)
    broker.maintain()
    assert [m.text for m in broker.peek("q")] == ["new"]
    clock.advance(30)
    assert broker.receive("q") == []


def test_purge_and_its_interval(broker: conveyor.Broker, clock: FakeClock) -> None:
    broker.create_queue("q")
    for i in range(5):
        broker.send("q", str(i))
    broker.receive("q")
    broker.purge_queue("q")
    assert broker.get_queue("q").stats.messages == 0  # type: ignore[union-attr]
    with pytest.raises(errors.PurgeQueueInProgress):
        broker.purge_queue("q")
    broker.send("q", "after")
    clock.advance(60)
    broker.purge_queue("q")


def test_backpressure_queue_full(broker: conveyor.Broker) -> None:
    broker.create_queue("q", {"max_depth_messages": 3})
    for i in range(3):
        broker.send("q", str(i))
    with pytest.raises(errors.QueueFull) as info:
        broker.send("q", "x")
    assert info.value.retriable
    (m,) = broker.receive("q")
    broker.delete("q", m.receipt_handle)
    broker.send("q", "fits again")
    broker.create_queue("b", {"max_depth_bytes": 10})
    broker.send("b", "12345")
    with pytest.raises(errors.QueueFull):
        broker.send("b", "123456")


def test_overflow_drop_oldest(broker: conveyor.Broker) -> None:
    broker.create_queue("q", {"max_depth_messages": 2, "overflow": "drop_oldest"})
    for i in range(4):
        broker.send("q", str(i))
    assert [m.text for m in broker.peek("q")] == ["2", "3"]


def test_partitions_spread_and_receive_everything(broker: conveyor.Broker) -> None:
    broker.create_queue("q", {"partitions": 4})
    for i in range(40):
        broker.send("q", str(i))
    states = broker.partition_states("q")
    assert all(s.n_live == 10 for s in states)
    got: list[str] = []
    while msgs := broker.receive("q", 7):
        got.extend(m.text for m in msgs)
        broker.delete_batch("q", [m.receipt_handle for m in msgs])
    assert sorted(got, key=int) == [str(i) for i in range(40)]


# ---------------------------------------------------------------- FIFO
def test_fifo_order_groups_and_dedup(broker: conveyor.Broker, clock: FakeClock) -> None:
    broker.create_queue("q.fifo", {"content_dedup": True})
    for i in range(6):
        broker.send("q.fifo", f"{'ab'[i % 2]}{i}", group_id="ab"[i % 2])
    dup = broker.send("q.fifo", "a0", group_id="a")
    assert dup.duplicate
    seqs = []
    seen: list[str] = []
    while msgs := broker.receive("q.fifo", 10):
        for m in msgs:
            seen.append(m.text)
            seqs.append(m.sequence_number)
            broker.delete("q.fifo", m.receipt_handle)
    assert [s for s in seen if s[0] == "a"] == ["a0", "a2", "a4"]
    assert [s for s in seen if s[0] == "b"] == ["b1", "b3", "b5"]
    with pytest.raises(errors.MissingParameter):
        broker.send("q.fifo", "x")
    with pytest.raises(errors.InvalidParameterValue):
        broker.send("q.fifo", "x", group_id="g", delay_s=5)
    clock.advance(301)
    assert not broker.send("q.fifo", "a0", group_id="a").duplicate


def test_fifo_dedup_survives_restart(
    broker: conveyor.Broker, data_dir: Path, clock: FakeClock
) -> None:
    broker.create_queue("q.fifo")
    first = broker.send("q.fifo", "x", group_id="g", dedup_id="d1")
    broker = reopen(broker, data_dir, clock)
    try:
        again = broker.send("q.fifo", "other body", group_id="g", dedup_id="d1")
        assert again.duplicate and again.message_id == first.message_id
        assert broker.get_queue("q.fifo").stats.messages == 1  # type: ignore[union-attr]
    finally:
        broker.close()


# ---------------------------------------------------------------- dead letters
def test_dead_letter_move_and_redrive(broker: conveyor.Broker, clock: FakeClock) -> None:
    broker.create_queue("dlq")
    broker.create_queue(
        "q",
        {
            "visibility_timeout_s": 5,
            "redrive": {"dead_letter_queue": "dlq", "max_receive_count": 2},
        },
    )
    attrs = {"k": MessageAttribute("String", string_value="v")}
    sent = broker.send("q", "poison", attributes=attrs)
    first_receive = None
    for _ in range(2):
        (m,) = broker.receive("q")
        first_receive = first_receive or m.first_receive_ms
        clock.advance(6)
    assert broker.receive("q") == []  # third receive moves it
    (dead,) = broker.receive("dlq")
    assert dead.message_id == sent.message_id and dead.attributes == attrs
    assert dead.receive_count == 3  # two in the source, this one in the DLQ
    assert dead.first_receive_ms == first_receive
    assert dead.system["DeadLetterQueueSourceQueue"] == "q"
    assert broker.get_queue("q").stats.messages == 0  # type: ignore[union-attr]
    clock.advance(31)
    assert broker.redrive("dlq") == 1
    (back,) = broker.receive("q")
    assert back.message_id == sent.message_id and back.receive_count == 1
    assert broker.get_queue("dlq").stats.messages == 0  # type: ignore[union-attr]


def test_interrupted_move_completes_once_on_reopen(
    broker: conveyor.Broker, data_dir: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker.create_queue("dlq")
    broker.create_queue(
        "q",
        {
            "visibility_timeout_s": 1,
            "redrive": {"dead_letter_queue": "dlq", "max_receive_count": 1},
        },
    )
    broker.send("q", "poison")
    broker.receive("q")
    clock.advance(2)

    def crash(*args: object) -> None:
        raise RuntimeError("crash between intent and move")

    monkeypatch.setattr(broker, "_complete_moves", crash)
    with pytest.raises(RuntimeError):
        broker.receive("q")
    monkeypatch.undo()
    broker = reopen(broker, data_dir, clock)
    try:
        assert [m.text for m in broker.peek("dlq")] == ["poison"]
        assert broker.get_queue("q").stats.messages == 0  # type: ignore[union-attr]
        broker.maintain()  # nothing left to move: still exactly one copy
        assert len(broker.peek("dlq")) == 1
    finally:
        broker.close()


def test_move_appended_but_not_marked_is_not_duplicated(
    broker: conveyor.Broker, data_dir: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after the DLQ append but before the source records 'moved'."""
    from conveyor.broker.partition import Partition

    broker.create_queue("dlq")
    broker.create_queue(
        "q",
        {
            "visibility_timeout_s": 1,
            "redrive": {"dead_letter_queue": "dlq", "max_receive_count": 1},
        },
    )
    broker.send("q", "poison")
    broker.receive("q")
    clock.advance(2)
    real_commit = Partition.commit

    def commit(self: Partition, records: list[object], now: int) -> int:
        from conveyor.partition.records import Moved

        if any(isinstance(r, Moved) for r in records):
            raise RuntimeError("crash before the source records the move")
        return real_commit(self, records, now)  # type: ignore[arg-type]

    monkeypatch.setattr(Partition, "commit", commit)
    with pytest.raises(RuntimeError):
        broker.receive("q")
    monkeypatch.undo()
    broker = reopen(broker, data_dir, clock)
    try:
        assert [m.text for m in broker.peek("dlq")] == ["poison"]
        assert broker.get_queue("q").stats.messages == 0  # type: ignore[union-attr]
    finally:
        broker.close()


# ---------------------------------------------------------------- durability and disk
def test_state_survives_reopen(broker: conveyor.Broker, data_dir: Path, clock: FakeClock) -> None:
    broker.create_queue("q", {"visibility_timeout_s": 60})
    for i in range(10):
        broker.send("q", str(i))
    got = broker.receive("q", 3)
    broker.delete("q", got[0].receipt_handle)
    broker = reopen(broker, data_dir, clock)
    try:
        stats = broker.get_queue("q").stats
        assert stats is not None and (stats.messages, stats.inflight, stats.visible) == (9, 2, 7)
        broker.delete("q", got[1].receipt_handle)  # handles stay valid across restarts
        clock.advance(61)
        texts = sorted(int(m.text) for m in broker.receive("q", 10))
        assert texts == [2, 3, 4, 5, 6, 7, 8, 9]
    finally:
        broker.close()


def test_disk_use_follows_live_data(data_dir: Path, clock: FakeClock) -> None:
    broker = conveyor.open(
        data_dir, clock=clock, maintenance_interval_s=None, segment_bytes_max=64 * 1024
    )
    try:
        broker.create_queue("q")
        body = b"x" * 1000
        for _ in range(10):
            broker.send_batch("q", [SendEntry(body=body) for _ in range(50)])
        log_dir = data_dir / "queues" / broker.get_queue("q").uid / "p0" / "log"

        def disk() -> int:
            return sum(p.stat().st_size for p in log_dir.iterdir())

        full = disk()
        while msgs := broker.receive("q", 100):
            broker.delete_batch("q", [m.receipt_handle for m in msgs])
        broker.checkpoint()
        assert disk() < full / 4
    finally:
        broker.close()
    broker = conveyor.open(data_dir, clock=clock, maintenance_interval_s=None)
    try:
        assert broker.get_queue("q").stats.messages == 0  # type: ignore[union-attr]
        broker.send("q", "still works")
        assert [m.text for m in broker.receive("q")] == ["still works"]
    finally:
        broker.close()


def test_data_dir_is_locked(broker: conveyor.Broker, data_dir: Path) -> None:
    with pytest.raises(errors.Unavailable):
        conveyor.open(data_dir)


# ---------------------------------------------------------------- long polling
def test_long_poll_wakes_on_send(data_dir: Path) -> None:
    broker = conveyor.open(data_dir)
    try:
        broker.create_queue("q")
        result: list[float] = []

        def consume() -> None:
            start = time.monotonic()
            msgs = broker.receive("q", wait_s=10)
            assert msgs
            result.append(time.monotonic() - start)

        t = threading.Thread(target=consume)
        t.start()
        time.sleep(0.3)
        sent_at = time.monotonic()
        broker.send("q", "wake up")
        t.join(5)
        assert result and result[0] < 5
        assert time.monotonic() - sent_at < 1.0
        start = time.monotonic()
        assert broker.receive("q", wait_s=0.3) == []
        assert 0.25 < time.monotonic() - start < 2
    finally:
        broker.close()


def test_long_poll_wakes_when_a_lease_expires(data_dir: Path) -> None:
    broker = conveyor.open(data_dir)
    try:
        broker.create_queue("q", {"visibility_timeout_s": 1})
        broker.send("q", "m")
        assert broker.receive("q")
        start = time.monotonic()
        assert broker.receive("q", wait_s=5)
        assert time.monotonic() - start < 3
    finally:
        broker.close()


# ---------------------------------------------------------------- flavours
def test_in_memory_broker() -> None:
    with conveyor.open(None) as broker:
        broker.create_queue("q")
        broker.send("q", "x")
        assert [m.text for m in broker.receive("q")] == ["x"]


def test_async_broker(data_dir: Path) -> None:
    async def main() -> None:
        async with await conveyor.open_async(data_dir) as broker:
            await broker.create_queue("q")
            await broker.send("q", "hi")
            (m,) = await broker.receive("q", wait_s=1)
            await broker.delete("q", m.receipt_handle)
            assert m.text == "hi"

    asyncio.run(main())


def test_fifo_retry_with_several_partitions_takes_nothing_new(
    broker: conveyor.Broker, clock: FakeClock
) -> None:
    """A receive that repeats its attempt id gets the first attempt's messages again,
    and nothing that arrived since in another partition."""
    import zlib

    broker.create_queue(
        "pay.fifo", {"partitions": 2, "content_dedup": True, "dedup_scope": "message_group"}
    )
    groups = [f"g{i}" for i in range(20)]
    g_a = groups[0]
    g_b = next(g for g in groups if zlib.crc32(g.encode()) % 2 != zlib.crc32(g_a.encode()) % 2)
    broker.send("pay.fifo", "first", group_id=g_a)
    (first,) = broker.receive("pay.fifo", 10, attempt_id="try-1")
    broker.send("pay.fifo", "later", group_id=g_b)  # the other partition
    clock.advance(1)
    again = broker.receive("pay.fifo", 10, attempt_id="try-1")
    assert [m.text for m in again] == ["first"]
    assert again[0].receipt_handle == first.receipt_handle
    # a new attempt gets the new message
    assert [m.text for m in broker.receive("pay.fifo", 10, attempt_id="try-2")] == ["later"]


def test_a_growing_backlog_is_checkpointed_less_often(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Maintenance checkpoints every ``checkpoint_interval_records`` records, or every
    as many records as there are live messages when that is more (a snapshot costs in
    proportion to them)."""
    from conveyor import limits

    monkeypatch.setattr(limits, "checkpoint_interval_records", 10)
    with conveyor.open(tmp_path, fsync="never") as broker:
        broker.create_queue("q")
        part = broker._queue("q").partitions[0]
        broker.send_batch("q", [SendEntry(body=b"x")] * 8)
        broker.maintain()
        assert part.checkpoint_offset == -1  # 8 records, fewer than the interval
        broker.send_batch("q", [SendEntry(body=b"x")] * 42)
        broker.maintain()
        assert part.checkpoint_offset == 49  # 50 records, 50 live
        broker.send_batch("q", [SendEntry(body=b"x")] * 30)
        broker.maintain()
        assert part.checkpoint_offset == 49  # 30 records since, but 80 live
        broker.send_batch("q", [SendEntry(body=b"x")] * 60)
        broker.maintain()
        assert part.checkpoint_offset == 49  # 90 records since, but 140 live
        broker.send_batch("q", [SendEntry(body=b"x")] * 100)
        broker.maintain()
        assert part.checkpoint_offset == 49  # 190 records since, 240 live: still not
        broker.purge_queue("q")  # one Purge record; nothing live
        broker.maintain()
        assert part.checkpoint_offset == 240
