"""The console's history (conveyor.server.history) over a real embedded broker: points
from ``queue_samples()``, rates from counter deltas, the bound on points, ``since_ms``,
deleted and re-created queues, and the sampler task."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conveyor.broker.broker import Broker
from conveyor.server.history import (
    Counts,
    CountSource,
    History,
    HistorySampler,
    history_points_max,
    sample_interval_s,
)


def open_broker(tmp_path: Path) -> Broker:
    return Broker(tmp_path / "data", fsync="never", maintenance_interval_s=None)


def test_fifteen_minutes_of_five_second_points() -> None:
    assert (sample_interval_s, history_points_max) == (5.0, 180)
    h = History()
    assert h.interval_s * h.points_max == 15 * 60


def test_points_and_rates_from_counter_deltas(tmp_path: Path) -> None:
    with open_broker(tmp_path) as b:
        b.create_queue("jobs")
        counts = CountSource(b.metrics.queue_metrics)
        h = History(interval_s=5, points_max=3)
        h.observe(1_000, 100.0, b.queue_samples(), counts)
        [first] = h.points("jobs")
        assert first.t_ms == 1_000 and first.messages == 0 and first.oldest_age_s == 0
        assert first.sent_per_s is None and first.received_per_s is None  # no delta yet

        for i in range(10):
            b.send("jobs", f"job-{i}")
        got = b.receive("jobs", 4, visibility_timeout_s=60)
        for m in got[:3]:
            b.delete("jobs", m.receipt_handle)
        h.observe(6_000, 105.0, b.queue_samples(), counts)
        p = h.points("jobs")[-1]
        assert (p.messages, p.visible, p.inflight, p.delayed) == (7, 6, 1, 0)
        assert p.bytes == 7 * len("job-0")
        assert p.oldest_age_s >= 0
        assert p.sent_per_s == 10 / 5
        assert p.received_per_s == 4 / 5
        assert p.deleted_per_s == 3 / 5
        assert p.redelivered_per_s == p.dead_lettered_per_s == p.expired_per_s == 0

        # rates use the monotonic time between samples, not the nominal interval
        b.send("jobs", "one more")
        h.observe(16_000, 115.0, b.queue_samples(), counts)
        assert h.points("jobs")[-1].sent_per_s == 0.1

        # at most points_max points, oldest dropped; since_ms gives the newer ones
        h.observe(21_000, 120.0, b.queue_samples(), counts)
        assert [p.t_ms for p in h.points("jobs")] == [6_000, 16_000, 21_000]
        assert [p.t_ms for p in h.points("jobs", since_ms=6_000)] == [16_000, 21_000]
        assert h.points("jobs", since_ms=21_000) == []
        assert h.points("nothing") == []


def test_dead_letters_and_redrive_rates(tmp_path: Path) -> None:
    with open_broker(tmp_path) as b:
        b.create_queue("dlq")
        b.create_queue("work", {"redrive": {"dead_letter_queue": "dlq", "max_receive_count": 1}})
        counts = CountSource(b.metrics.queue_metrics)
        h = History()
        h.observe(0, 0.0, b.queue_samples(), counts)
        for i in range(4):
            b.send("work", f"poison-{i}")
        for _ in range(2):
            b.receive("work", 10, visibility_timeout_s=0)
        h.observe(2_000, 2.0, b.queue_samples(), counts)
        work, dlq = h.points("work")[-1], h.points("dlq")[-1]
        assert work.dead_lettered_per_s == 2.0 and work.messages == 0
        assert dlq.messages == 4 and dlq.sent_per_s == 0  # moved in, not sent
        assert b.redrive("dlq") == 4
        h.observe(4_000, 4.0, b.queue_samples(), counts)
        assert h.points("dlq")[-1].redriven_per_s == 2.0
        assert h.points("work")[-1].messages == 4


def test_deleted_queue_loses_its_history_and_reset_counters_give_no_rate(
    tmp_path: Path,
) -> None:
    with open_broker(tmp_path) as b:
        b.create_queue("a")
        b.create_queue("b")
        counts = CountSource(b.metrics.queue_metrics)
        h = History()
        for i in range(5):
            b.send("a", f"m{i}")
        h.observe(0, 0.0, b.queue_samples(), counts)
        assert h.queues() == ["a", "b"]
        b.delete_queue("b")
        h.observe(5_000, 5.0, b.queue_samples(), counts)
        assert h.queues() == ["a"] and h.points("b") == []
        # deleted and created again between two samples: its counters start again at 0
        b.delete_queue("a")
        b.create_queue("a")
        b.send("a", "fresh")
        h.observe(10_000, 10.0, b.queue_samples(), counts)
        p = h.points("a")[-1]
        assert p.messages == 1 and p.sent_per_s is None
        h.observe(15_000, 15.0, b.queue_samples(), counts)
        assert h.points("a")[-1].sent_per_s == 0


def test_unknown_counters_give_no_rate(tmp_path: Path) -> None:
    with open_broker(tmp_path) as b:
        b.create_queue("jobs")
        h = History()

        def none(name: str) -> Counts | None:
            return None

        h.observe(0, 0.0, b.queue_samples(), none)
        h.observe(5_000, 5.0, b.queue_samples(), none)
        assert [p.sent_per_s for p in h.points("jobs")] == [None, None]


def test_sampler_task_samples_at_start_then_every_interval(tmp_path: Path) -> None:
    with open_broker(tmp_path) as b:
        b.create_queue("jobs")
        b.send("jobs", "x")

        async def run() -> list[int]:
            sampler = HistorySampler(
                b, CountSource(b.metrics.queue_metrics), History(interval_s=0.05, points_max=100)
            )
            sampler.start()
            await asyncio.sleep(0)  # the first sample is taken at once
            first = len(sampler.history.points("jobs"))
            await asyncio.sleep(0.32)
            await sampler.stop()
            stopped = len(sampler.history.points("jobs"))
            await asyncio.sleep(0.12)
            return [first, stopped, len(sampler.history.points("jobs"))]

        first, stopped, later = asyncio.run(run())
        assert first == 1
        assert 5 <= stopped <= 8
        assert later == stopped  # nothing after stop()
