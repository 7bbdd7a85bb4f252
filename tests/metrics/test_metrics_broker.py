"""Exact metric values after known operations on an embedded broker with a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import errors
from conveyor.broker.broker import Broker
from conveyor.metrics import Metrics
from conveyor.types import SendEntry

Q = {"queue": "jobs", "partition": "0"}
QG = {**Q, "group": "default"}


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def broker(clock: Clock) -> Iterator[Broker]:
    b = Broker(None, clock=clock, maintenance_interval_s=None)
    yield b
    b.close()


@pytest.fixture
def scrape(broker: Broker, parse: Callable[[str], Any]) -> Callable[[], Any]:
    return lambda: parse(broker.metrics.render().decode())


def test_send_receive_delete_counts_and_depth(
    broker: Broker, clock: Clock, scrape: Any, metric: Any
) -> None:
    broker.create_queue("jobs")
    for body in (b"a" * 10, b"b" * 20, b"c" * 30):
        broker.send("jobs", body)
    clock.ms += 1000
    got = broker.receive("jobs", 2)
    assert [m.body for m in got] == [b"a" * 10, b"b" * 20]
    clock.ms += 2500
    broker.delete("jobs", got[0].receipt_handle)
    s = scrape()
    assert metric(s, "conveyor_messages_sent_total", **Q) == 3
    assert metric(s, "conveyor_messages_received_total", **QG) == 2
    assert metric(s, "conveyor_messages_deleted_total", **QG) == 1
    assert metric(s, "conveyor_messages_redelivered_total", **QG) == 0
    for state, n, size in (("visible", 1, 30), ("inflight", 1, 20), ("delayed", 0, 0)):
        assert metric(s, "conveyor_queue_messages", **QG, state=state) == n
        assert metric(s, "conveyor_queue_message_bytes", **QG, state=state) == size
    # the oldest live message (b, sent at the start) is 3.5 s old on the fake clock
    assert metric(s, "conveyor_queue_oldest_message_age_seconds", **QG) == 3.5
    # received at +1 s, deleted at +3.5 s: one observation of 2.5 s
    r2d = {"queue": "jobs", "group": "default"}
    assert metric(s, "conveyor_receive_to_delete_seconds_count", **r2d) == 1
    assert metric(s, "conveyor_receive_to_delete_seconds_sum", **r2d) == 2.5
    assert metric(s, "conveyor_receive_to_delete_seconds_bucket", **r2d, le="1.0") == 0
    assert metric(s, "conveyor_receive_to_delete_seconds_bucket", **r2d, le="5.0") == 1
    assert metric(s, "conveyor_receive_to_delete_seconds_bucket", **r2d, le="+Inf") == 1
    assert metric(s, "conveyor_send_duration_seconds_count", queue="jobs") == 3
    assert metric(s, "conveyor_queue_parked_receives", queue="jobs") == 0


def test_stale_delete_and_batches_count_once(broker: Broker, scrape: Any, metric: Any) -> None:
    broker.create_queue("jobs")
    results = broker.send_batch("jobs", [SendEntry(body=f"m{i}") for i in range(5)])
    assert all(not isinstance(r, Exception) for r in results)
    msgs = broker.receive("jobs", 5, visibility_timeout_s=0)  # visible again at once
    again = broker.receive("jobs", 5)
    assert len(msgs) == len(again) == 5
    broker.delete_batch("jobs", [m.receipt_handle for m in msgs])  # stale: no-ops
    broker.delete_batch("jobs", [m.receipt_handle for m in again[:2]])
    s = scrape()
    assert metric(s, "conveyor_messages_sent_total", **Q) == 5
    assert metric(s, "conveyor_messages_received_total", **QG) == 10
    assert metric(s, "conveyor_messages_redelivered_total", **QG) == 5
    assert metric(s, "conveyor_messages_deleted_total", **QG) == 2
    assert metric(s, "conveyor_send_duration_seconds_count", queue="jobs") == 1
    assert metric(s, "conveyor_queue_messages", **QG, state="inflight") == 3


def test_partitions_are_labelled(broker: Broker, scrape: Any, metric: Any) -> None:
    broker.create_queue("wide", {"partitions": 3})
    broker.send_batch("wide", [SendEntry(body="x") for _ in range(7)])
    s = scrape()
    counts = [
        metric(s, "conveyor_messages_sent_total", queue="wide", partition=str(p)) for p in range(3)
    ]
    assert sorted(counts) == [2, 2, 3]
    visible = [
        metric(
            s,
            "conveyor_queue_messages",
            queue="wide",
            partition=str(p),
            group="default",
            state="visible",
        )
        for p in range(3)
    ]
    assert visible == counts


def test_delayed_messages(broker: Broker, clock: Clock, scrape: Any, metric: Any) -> None:
    broker.create_queue("jobs")
    broker.send("jobs", b"later", delay_s=10)
    s = scrape()
    assert metric(s, "conveyor_queue_messages", **QG, state="delayed") == 1
    assert metric(s, "conveyor_queue_message_bytes", **QG, state="delayed") == 5
    assert metric(s, "conveyor_queue_messages", **QG, state="visible") == 0
    clock.ms += 10_000
    s = scrape()
    assert metric(s, "conveyor_queue_messages", **QG, state="delayed") == 0
    assert metric(s, "conveyor_queue_message_bytes", **QG, state="visible") == 5


def test_dead_letter_and_redrive(broker: Broker, scrape: Any, metric: Any) -> None:
    broker.create_queue("dlq")
    broker.create_queue("jobs", {"redrive": {"dead_letter_queue": "dlq", "max_receive_count": 2}})
    broker.send("jobs", b"poison")
    for _ in range(2):
        assert len(broker.receive("jobs", 1, visibility_timeout_s=0)) == 1
    assert broker.receive("jobs", 1) == []  # the third receive moves it instead
    s = scrape()
    assert metric(s, "conveyor_messages_received_total", **QG) == 2
    assert metric(s, "conveyor_messages_redelivered_total", **QG) == 1
    assert metric(s, "conveyor_messages_dead_lettered_total", **QG) == 1
    assert metric(s, "conveyor_queue_messages", **QG, state="visible") == 0
    dlq = {"queue": "dlq", "partition": "0", "group": "default"}
    assert metric(s, "conveyor_queue_messages", **dlq, state="visible") == 1
    # a move is not a send: it shows as dead_lettered (and redriven) of the source
    assert metric(s, "conveyor_messages_sent_total", queue="dlq", partition="0") == 0
    assert broker.redrive("dlq") == 1
    s = scrape()
    assert metric(s, "conveyor_messages_redriven_total", queue="dlq") == 1
    assert metric(s, "conveyor_queue_messages", **QG, state="visible") == 1
    assert metric(s, "conveyor_queue_messages", **dlq, state="visible") == 0


def test_overflow_reject_and_drop_oldest(broker: Broker, scrape: Any, metric: Any) -> None:
    broker.create_queue("jobs", {"max_depth_messages": 2})
    results = broker.send_batch("jobs", [SendEntry(body=f"m{i}") for i in range(3)])
    assert isinstance(results[2], errors.QueueFull)
    with pytest.raises(errors.QueueFull):
        broker.send("jobs", "one more")
    broker.create_queue("ring", {"max_depth_messages": 2, "overflow": "drop_oldest"})
    broker.send_batch("ring", [SendEntry(body=f"m{i}") for i in range(2)])
    broker.send_batch("ring", [SendEntry(body=f"n{i}") for i in range(2)])
    s = scrape()
    assert metric(s, "conveyor_messages_overflow_rejected_total", **Q) == 2
    assert metric(s, "conveyor_messages_sent_total", **Q) == 2
    ring = {"queue": "ring", "partition": "0"}
    assert metric(s, "conveyor_messages_expired_total", **ring, reason="overflow") == 2
    assert metric(s, "conveyor_messages_expired_total", **ring, reason="retention") == 0
    assert metric(s, "conveyor_messages_sent_total", **ring) == 4


def test_retention_expiry_and_purge(broker: Broker, clock: Clock, scrape: Any, metric: Any) -> None:
    broker.create_queue("jobs", {"retention_s": 60})
    broker.send_batch("jobs", [SendEntry(body="old") for _ in range(3)])
    clock.ms += 61_000
    broker.send("jobs", "new")
    broker.maintain()
    s = scrape()
    assert metric(s, "conveyor_messages_expired_total", **Q, reason="retention") == 3
    assert metric(s, "conveyor_queue_messages", **QG, state="visible") == 1
    broker.send("jobs", "newer")
    broker.purge_queue("jobs")
    s = scrape()
    assert metric(s, "conveyor_messages_purged_total", **Q) == 2
    assert metric(s, "conveyor_queue_messages", **QG, state="visible") == 0
    assert metric(s, "conveyor_queue_oldest_message_age_seconds", **QG) == 0


def test_deleted_queue_series_disappear(broker: Broker, scrape: Any) -> None:
    broker.create_queue("gone")
    broker.send("gone", "x")
    broker.delete_queue("gone")
    s = scrape()
    assert not [key for key in s if ("queue", "gone") in key[1]]


def test_brokers_have_separate_registries(tmp_path: Path, parse: Any, metric: Any) -> None:
    m1, m2 = Metrics(), Metrics()
    with (
        Broker(tmp_path / "a", metrics=m1, maintenance_interval_s=None) as a,
        Broker(tmp_path / "b", metrics=m2, maintenance_interval_s=None) as b,
    ):
        a.create_queue("jobs")
        b.create_queue("jobs")
        a.send("jobs", "x")
        s1 = parse(m1.render().decode())
        s2 = parse(m2.render().decode())
        assert metric(s1, "conveyor_messages_sent_total", **Q) == 1
        assert metric(s2, "conveyor_messages_sent_total", **Q) == 0
        # durable sends were fsynced, and the log has a segment holding the record
        assert metric(s1, "conveyor_fsync_duration_seconds_count") >= 1
        assert metric(s1, "conveyor_log_segments", **Q) == 1
        assert metric(s1, "conveyor_log_bytes", **Q) > 0
        assert metric(s1, "conveyor_node_info", node_id=a.node_id, version="0.1.0") == 1
