"""The request counter and the send-duration histogram of ``conveyor.metrics``.

Both are counted without ``prometheus_client``'s per-call work but must be exposed
exactly as its ``Counter`` and ``Histogram`` would be; and counted right from several
threads at once.
"""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from conveyor.metrics import (
    Durations,
    Metrics,
    RequestCounter,
    SendDurations,
    fsync_buckets_s,
    send_buckets_s,
)

DOC = "Some help."


@pytest.fixture
def fixed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.25)


def test_request_counter_is_exposed_as_a_counter(fixed_time: None) -> None:
    ours = CollectorRegistry()
    counter = RequestCounter("requests", DOC)
    ours.register(counter)
    theirs = CollectorRegistry()
    reference = Counter("requests", DOC, ["api", "action", "code"], registry=theirs)
    for key in [
        ("sqs", "SendMessage", "OK"),
        ("sqs", "SendMessage", "OK"),
        ("native", "send", "QueueDoesNotExist"),
        ("sqs", "ReceiveMessage", "OK"),
        ("sqs", "SendMessage", "OK"),
    ]:
        next(counter.series(key))
        reference.labels(*key).inc()
    assert generate_latest(ours) == generate_latest(theirs)
    assert counter.value("sqs", "SendMessage") == 3
    assert counter.value("sqs", "Nothing") == 0


def test_send_durations_are_exposed_as_a_histogram(fixed_time: None) -> None:
    ours = CollectorRegistry()
    durations = SendDurations("send_seconds", DOC, send_buckets_s)
    ours.register(durations)
    theirs = CollectorRegistry()
    reference = Histogram("send_seconds", DOC, ["queue"], buckets=send_buckets_s, registry=theirs)
    values = [0.0, 0.0001, 0.0005, 0.00050001, 0.001, 0.003, 0.2, 1.0, 9.99, 10.0, 11.0, 1e9]
    for queue in ("jobs", "other", "gone"):
        durations.labels(queue)
        reference.labels(queue)
    for i, v in enumerate(values):
        queue = ("jobs", "other")[i % 2]
        durations.labels(queue).observe(v)
        reference.labels(queue).observe(v)
    durations.remove("gone")
    reference.remove("gone")
    assert generate_latest(ours) == generate_latest(theirs)


def test_durations_are_exposed_as_an_unlabelled_histogram(fixed_time: None) -> None:
    ours = CollectorRegistry()
    durations = Durations("sync_seconds", DOC, fsync_buckets_s)
    ours.register(durations)
    theirs = CollectorRegistry()
    reference = Histogram("sync_seconds", DOC, buckets=fsync_buckets_s, registry=theirs)
    for v in [0.0, 0.0001, 0.00013, 0.0005, 0.002, 0.05, 1.0, 1e9]:
        durations.observe(v)
        reference.observe(v)
    assert generate_latest(ours) == generate_latest(theirs)


def test_metrics_render_counts_requests_and_sends(fixed_time: None) -> None:
    m = Metrics()
    m.request("sqs", "SendMessage")
    m.request("sqs", "SendMessage", "OK")
    m.request("admin", "list", "InvalidRequest")
    m.queue("jobs", 1).send_duration.observe(0.002)
    text = m.render().decode()
    assert 'conveyor_requests_total{action="SendMessage",api="sqs",code="OK"} 2.0' in text
    assert 'conveyor_requests_total{action="list",api="admin",code="InvalidRequest"} 1.0' in text
    assert (
        'conveyor_requests_created{action="SendMessage",api="sqs",code="OK"} 1.70000000025e+09'
        in text
    )
    assert 'conveyor_send_duration_seconds_bucket{le="0.0025",queue="jobs"} 1.0' in text
    assert 'conveyor_send_duration_seconds_count{queue="jobs"} 1.0' in text
    m.forget_queue("jobs")
    assert 'queue="jobs"' not in m.render().decode()


def test_counted_from_many_threads() -> None:
    m = Metrics()
    series = m.queue("jobs", 1).send_duration
    threads_n, each = 8, 5_000
    start = threading.Barrier(threads_n)

    def work() -> None:
        start.wait()
        for _ in range(each):
            m.request("sqs", "SendMessage")
            series.observe(0.001)

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m.requests.value("sqs", "SendMessage") == threads_n * each
    counts, total = series.snapshot()
    assert sum(counts) == threads_n * each
    assert total == pytest.approx(0.001 * threads_n * each)
