"""Prometheus metrics of a broker and the node serving it.

Every :class:`Metrics` holds its own ``CollectorRegistry`` (never the process-global
one), so several brokers in one process — tests, embedded users — do not collide.
``render()`` gives the text exposition format served at ``/metrics``.

Two kinds of metrics:

* **counted as it happens** — the broker's counters are plain integers on the queue
  (:class:`PartitionMetrics`), incremented once per batch and partition under the
  queue's lock the operation already holds, and the receive-to-delete histogram
  (:class:`MsHistogram`) is bucketed the same way; both are turned into metric families
  at scrape time. The requests answered are counted per (api, action, code) with one
  ``itertools.count`` each (:class:`RequestCounter`), send latencies in a histogram of
  one small lock per queue (:class:`SendDurations`): both are per request, so they
  cost a fraction of a ``prometheus_client`` child's ``inc``/``observe``, and are
  exposed exactly as a ``Counter`` and a ``Histogram`` would be (same samples,
  ``_created`` included). The fsync latency, observed once per sync round on the path
  of the requests waiting for it, uses the same series unlabelled (:class:`Durations`).
* **read at scrape time** — depth, bytes, oldest age, parked long polls, log size,
  connections: a custom collector asks the broker (``queue_samples()``) and the node
  (the connection source) when Prometheus scrapes, so nothing is kept up to date in
  between.

Names follow the Prometheus conventions: the ``conveyor_`` prefix, base units
(seconds, bytes) as suffixes, ``_total`` on counters, and the labels ``queue``,
``partition`` and ``group`` (the consumer group; ``default`` is the SQS view).
``docs/metrics.md`` lists every metric.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import metrics as _prometheus_metrics
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_GROUP",
    "Durations",
    "Metrics",
    "MsHistogram",
    "PartitionMetrics",
    "PartitionSample",
    "QueueMetrics",
    "QueueSample",
    "RequestCounter",
    "SendDurations",
]

# the classic text format generate_latest() writes, which every Prometheus reads
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_GROUP = "default"  # the consumer group the SQS API and receive() serve

# Bucket bounds in seconds. Sends wait for an fsync (about 0.1-10 ms on real disks);
# receive-to-delete is how long consumers work on a message (up to the 12 h lease).

send_buckets_s = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
receive_to_delete_buckets_s = (
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    43200.0,
)
fsync_buckets_s = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)


@dataclass(slots=True)
class PartitionSample:
    """One partition's numbers at scrape time (see ``PartitionState.stats``)."""

    index: int
    visible: int
    inflight: int
    delayed: int
    visible_bytes: int
    inflight_bytes: int
    delayed_bytes: int
    oldest_age_s: float  # 0 when the partition is empty
    log_bytes: int
    log_segments: int


@dataclass(slots=True)
class QueueSample:
    name: str
    parked_receives: int
    partitions: list[PartitionSample]


class SampleSource(Protocol):
    def queue_samples(self, names: Sequence[str] | None = None) -> list[QueueSample]: ...


class PartitionMetrics:
    """The counters of one partition: plain ints, changed only under the queue's lock
    (so an increment costs an attribute add, not a lock), read at scrape time."""

    __slots__ = (
        "dead_lettered",
        "deleted",
        "expired_overflow",
        "expired_retention",
        "overflow_rejected",
        "purged",
        "received",
        "redelivered",
        "sent",
    )

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.deleted = 0
        self.redelivered = 0
        self.dead_lettered = 0
        self.expired_retention = 0
        self.expired_overflow = 0
        self.overflow_rejected = 0
        self.purged = 0


class MsHistogram:
    """A histogram of whole milliseconds, observed under the queue's lock (one bisect
    and two adds), exposed in seconds at scrape time."""

    __slots__ = ("bounds_ms", "counts", "sum_ms")

    def __init__(self, buckets_s: Sequence[float]) -> None:
        self.bounds_ms = [round(b * 1000) for b in buckets_s]
        self.counts = [0] * (len(self.bounds_ms) + 1)  # the last one is +Inf
        self.sum_ms = 0

    def observe_ms(self, value_ms: int) -> None:
        self.counts[bisect_left(self.bounds_ms, value_ms)] += 1
        self.sum_ms += value_ms

    def observe_since(self, now_ms: int, starts_ms: Iterable[int]) -> None:
        """Observe ``now_ms - start`` for each start (a batch: one call, not one per)."""
        counts, bounds = self.counts, self.bounds_ms
        total = 0
        for start in starts_ms:
            d = now_ms - start
            if d < 0:
                d = 0
            counts[bisect_left(bounds, d)] += 1
            total += d
        self.sum_ms += total

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs, ``+Inf`` last."""
        out: list[tuple[str, float]] = []
        total = 0
        for bound, n in zip([*self.bounds_ms, None], list(self.counts), strict=True):
            total += n
            out.append(("+Inf" if bound is None else _go_float(bound / 1000), total))
        return out


class QueueMetrics:
    """What the broker updates for one queue."""

    __slots__ = ("name", "partitions", "receive_to_delete", "redriven", "send_duration")

    def __init__(self, m: Metrics, queue: str, partitions: int) -> None:
        self.name = queue
        self.partitions = [PartitionMetrics() for _ in range(partitions)]
        self.receive_to_delete = MsHistogram(receive_to_delete_buckets_s)
        self.redriven = 0  # under the queue's lock too
        # a send is timed outside the queue's lock: the series has a lock of its own
        self.send_duration = m.send_duration.labels(queue)


def _use_created() -> bool:
    """Whether ``_created`` series are exported (prometheus_client's own switch)."""
    return bool(getattr(_prometheus_metrics, "_use_created", True))


def _count_value(count: itertools.count[int]) -> int:
    """How many times ``next`` was called on ``count`` (made with ``itertools.count()``).

    ``repr`` is the one public way to read a count without advancing it."""
    return int(repr(count)[6:-1])  # "count(N)"


class RequestCounter(Collector):
    """A counter labelled (api, action, code), exposed as ``prometheus_client``'s
    ``Counter`` of the same name and labels would be (``_total`` and ``_created`` per
    series, series in the order they first counted).

    Each series is an ``itertools.count``: ``next()`` on it is one atomic call, a few
    percent of a ``Counter`` child's ``inc()`` (a check, then a lock)."""

    labelnames = ("api", "action", "code")

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.counts: dict[tuple[str, str, str], itertools.count[int]] = {}
        self._created: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()  # creating a series; counting takes none

    def series(self, key: tuple[str, str, str]) -> itertools.count[int]:
        """The count of ``key``, created on first use."""
        with self._lock:
            count = self.counts.get(key)
            if count is None:
                self._created[key] = time.time()
                count = self.counts[key] = itertools.count()
            return count

    def value(self, api: str, action: str, code: str = "OK") -> int:
        count = self.counts.get((api, action, code))
        return 0 if count is None else _count_value(count)

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        created = _use_created()
        for key, count in list(self.counts.items()):
            family.add_metric(
                key, float(_count_value(count)), created=self._created[key] if created else None
            )
        return [family]

    def describe(self) -> Iterable[Metric]:
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]


class SendDuration:
    """One queue's series of :class:`SendDurations`: ``observe(seconds)``, from any
    thread (one lock of its own, held for two adds)."""

    __slots__ = ("_bounds", "_lock", "counts", "created", "sum")

    def __init__(self, bounds: list[float]) -> None:
        self._bounds = bounds  # ends with +Inf
        self._lock = threading.Lock()
        self.counts = [0] * len(bounds)  # not cumulative
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        # the first bucket whose bound is >= amount, as prometheus_client's Histogram
        i = bisect_left(self._bounds, amount)
        lock = self._lock
        lock.acquire()
        try:
            self.counts[i] += 1
            self.sum += amount
        finally:
            lock.release()

    def snapshot(self) -> tuple[list[int], float]:
        with self._lock:
            return list(self.counts), self.sum


class SendDurations(Collector):
    """A histogram of seconds labelled by queue, exposed as ``prometheus_client``'s
    ``Histogram`` of the same name, buckets and label would be (``_bucket``,
    ``_count``, ``_sum`` and ``_created`` per series). Its series cost a lock and a
    bisect per observation, where a ``Histogram`` child takes a lock per value it
    changes and walks its buckets."""

    def __init__(self, name: str, documentation: str, buckets_s: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds, self._le = _histogram_bounds(buckets_s)
        self._series: dict[str, SendDuration] = {}
        self._lock = threading.Lock()

    def labels(self, queue: str) -> SendDuration:
        with self._lock:
            series = self._series.get(queue)
            if series is None:
                series = self._series[queue] = SendDuration(self._bounds)
            return series

    def remove(self, queue: str) -> None:
        with self._lock:
            self._series.pop(queue, None)

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=["queue"])
        created = _use_created()
        with self._lock:
            series = list(self._series.items())
        for queue, s in series:
            counts, total = s.snapshot()
            family.add_metric([queue], _cumulative(self._le, counts), total)
            if created:
                family.add_sample(self.name + "_created", {"queue": queue}, s.created)
        return [family]

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=["queue"])]


class Durations(Collector):
    """An unlabelled histogram of seconds with the cheap series of :class:`SendDurations`
    (``observe`` from any thread: a bisect and a lock held for two adds), exposed as a
    ``prometheus_client`` ``Histogram`` would be. The fsync latency: observed once per
    sync round, on the path of every request that waits for one."""

    def __init__(self, name: str, documentation: str, buckets_s: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        bounds, self._le = _histogram_bounds(buckets_s)
        self._series = SendDuration(bounds)
        self.observe = self._series.observe

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation)
        counts, total = self._series.snapshot()
        family.add_metric([], _cumulative(self._le, counts), total)
        if _use_created():
            family.add_sample(self.name + "_created", {}, self._series.created)
        return [family]

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation)]


def _histogram_bounds(buckets_s: Sequence[float]) -> tuple[list[float], list[str]]:
    """Bucket bounds ending with +Inf, and the ``le`` label of each as
    ``prometheus_client`` writes it; checked as its ``Histogram`` checks them."""
    bounds = [float(b) for b in buckets_s]
    if bounds != sorted(bounds):
        raise ValueError("Buckets not in sorted order")
    if not bounds or bounds[-1] != float("inf"):
        bounds.append(float("inf"))
    go_float = cast(Callable[[float], str], floatToGoString)
    return bounds, [go_float(b) for b in bounds]


def _cumulative(le: list[str], counts: list[int]) -> list[tuple[str, float]]:
    buckets: list[tuple[str, float]] = []
    acc = 0.0
    for bound, n in zip(le, counts, strict=True):
        acc += n
        buckets.append((bound, acc))
    return buckets


class Metrics:
    """The metrics of one broker (and the node around it)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.send_duration = SendDurations(
            "conveyor_send_duration_seconds",
            "Time to send a batch, from the call until its records are durable.",
            send_buckets_s,
        )
        r.register(self.send_duration)
        self.fsync_duration = Durations(
            "conveyor_fsync_duration_seconds",
            "Duration of each fsync (or fdatasync) of log segments and their directories "
            "on this node.",
            fsync_buckets_s,
        )
        r.register(self.fsync_duration)
        self.requests = RequestCounter(
            "conveyor_requests",
            "Requests answered, by API (sqs, native, admin), action and result code "
            "(OK or the error code).",
        )
        r.register(self.requests)
        self._request_counts = self.requests.counts  # key -> itertools.count
        self.node_info = Gauge(
            "conveyor_node_info",
            "Always 1; the labels name the node.",
            ["node_id", "version"],
            registry=r,
        )
        self.start_time = Gauge(
            "conveyor_node_start_time_seconds",
            "When this broker was opened, in seconds since the epoch.",
            registry=r,
        )
        self.start_time.set(time.time())
        self._queues: dict[str, QueueMetrics] = {}
        self._source: SampleSource | None = None
        self._connections: Callable[[], Mapping[str, int]] | None = None
        r.register(_ScrapeCollector(self))

    # ------------------------------------------------------------------ wiring
    def attach(self, source: SampleSource, node_id: str, version: str) -> None:
        """The broker whose queues are sampled at scrape time."""
        self._source = source
        self.node_info.labels(node_id, version).set(1)

    def set_connections(self, source: Callable[[], Mapping[str, int]]) -> None:
        """A function giving open connections by API (``{"http": 3, "native": 1}``)."""
        self._connections = source

    def queue(self, name: str, partitions: int) -> QueueMetrics:
        """Bind the children of a queue (once, when the broker opens it)."""
        qm = QueueMetrics(self, name, partitions)
        self._queues[name] = qm
        return qm

    def forget_queue(self, name: str) -> None:
        """A deleted queue's series disappear from the next scrape."""
        if self._queues.pop(name, None) is not None:
            self.send_duration.remove(name)

    def queue_metrics(self, name: str) -> QueueMetrics | None:
        return self._queues.get(name)

    def request(self, api: str, action: str, code: str = "OK") -> None:
        """Count one answered request (``code``: ``OK`` or the error's code)."""
        count = self._request_counts.get((api, action, code))
        if count is None:
            count = self.requests.series((api, action, code))
        next(count)  # atomic: no lock, whichever thread counts

    def timed_fsync(self, fd: int) -> None:
        """``os.fsync`` that records its duration (the logs' ``fsync_fn``)."""
        start = time.perf_counter()
        try:
            os.fsync(fd)
        finally:
            self.fsync_duration.observe(time.perf_counter() - start)

    def timed_fdatasync(self, fd: int) -> None:
        """``os.fdatasync`` that records its duration (the logs' ``fdatasync_fn``: a sync
        round that wrote inside the file's length)."""
        start = time.perf_counter()
        try:
            os.fdatasync(fd)
        finally:
            self.fsync_duration.observe(time.perf_counter() - start)

    # ------------------------------------------------------------------ output
    def render(self) -> bytes:
        """The Prometheus text exposition of everything."""
        return generate_latest(self.registry)

    def collect_scrape_time(self) -> Iterator[Metric]:
        """The metrics read at scrape time (the custom collector's body)."""
        yield from self._collect_counters()
        yield from self._collect_gauges()

    def _collect_counters(self) -> Iterator[Metric]:
        qp = ["queue", "partition"]
        qpg = ["queue", "partition", "group"]
        g = DEFAULT_GROUP
        families: list[tuple[CounterMetricFamily, str, bool]] = [
            (
                CounterMetricFamily(
                    "conveyor_messages_sent",
                    "Messages appended to a queue (FIFO duplicates not counted).",
                    labels=qp,
                ),
                "sent",
                False,
            ),
            (
                CounterMetricFamily(
                    "conveyor_messages_received", "Deliveries handed to consumers.", labels=qpg
                ),
                "received",
                True,
            ),
            (
                CounterMetricFamily(
                    "conveyor_messages_deleted",
                    "Messages deleted by consumers (stale receipt handles not counted).",
                    labels=qpg,
                ),
                "deleted",
                True,
            ),
            (
                CounterMetricFamily(
                    "conveyor_messages_redelivered",
                    "Deliveries of a message received before (receive count > 1).",
                    labels=qpg,
                ),
                "redelivered",
                True,
            ),
            (
                CounterMetricFamily(
                    "conveyor_messages_dead_lettered",
                    "Messages moved to the dead-letter queue after max_receive_count receives.",
                    labels=qpg,
                ),
                "dead_lettered",
                True,
            ),
            (
                CounterMetricFamily(
                    "conveyor_messages_overflow_rejected",
                    "Sends refused because the queue was at its max depth (overflow reject).",
                    labels=qp,
                ),
                "overflow_rejected",
                False,
            ),
            (
                CounterMetricFamily(
                    "conveyor_messages_purged", "Messages removed by purges.", labels=qp
                ),
                "purged",
                False,
            ),
        ]
        expired = CounterMetricFamily(
            "conveyor_messages_expired",
            "Messages removed unconsumed: past retention (reason retention), or dropped "
            "to make room by the drop_oldest overflow policy (reason overflow).",
            labels=["queue", "partition", "reason"],
        )
        redriven = CounterMetricFamily(
            "conveyor_messages_redriven",
            "Messages moved out of this queue by a redrive.",
            labels=["queue"],
        )
        r2d = HistogramMetricFamily(
            "conveyor_receive_to_delete_seconds",
            "Time from a delivery to the delete of that delivery (broker clock, ms resolution).",
            labels=["queue", "group"],
        )
        for qm in list(self._queues.values()):
            name = qm.name
            for i, pm in enumerate(qm.partitions):
                p = str(i)
                for family, attr, grouped in families:
                    labels = [name, p, g] if grouped else [name, p]
                    family.add_metric(labels, getattr(pm, attr))
                expired.add_metric([name, p, "retention"], pm.expired_retention)
                expired.add_metric([name, p, "overflow"], pm.expired_overflow)
            redriven.add_metric([name], qm.redriven)
            h = qm.receive_to_delete
            r2d.add_metric([name, g], h.buckets(), h.sum_ms / 1000)
        yield from (f for f, _, _ in families)
        yield from (expired, redriven, r2d)

    def _collect_gauges(self) -> Iterator[Metric]:
        qpg = ["queue", "partition", "group"]
        messages = GaugeMetricFamily(
            "conveyor_queue_messages",
            "Live messages by state: visible (ready to receive), inflight (received, not "
            "yet deleted or visible again), delayed (sent with a delay not yet over).",
            labels=[*qpg, "state"],
        )
        sizes = GaugeMetricFamily(
            "conveyor_queue_message_bytes",
            "Bytes of live messages (body and attributes) by state, as conveyor_queue_messages.",
            labels=[*qpg, "state"],
        )
        oldest = GaugeMetricFamily(
            "conveyor_queue_oldest_message_age_seconds",
            "Age of the oldest live message (0 when there is none).",
            labels=qpg,
        )
        parked = GaugeMetricFamily(
            "conveyor_queue_parked_receives",
            "Long-poll receives waiting for a message.",
            labels=["queue"],
        )
        log_bytes = GaugeMetricFamily(
            "conveyor_log_bytes",
            "Size of the partition's log segments.",
            labels=["queue", "partition"],
        )
        log_segments = GaugeMetricFamily(
            "conveyor_log_segments",
            "Segment files of the partition's log.",
            labels=["queue", "partition"],
        )
        g = DEFAULT_GROUP
        samples = self._source.queue_samples() if self._source is not None else []
        for qs in samples:
            parked.add_metric([qs.name], qs.parked_receives)
            for ps in qs.partitions:
                p = str(ps.index)
                for state, n, b in (
                    ("visible", ps.visible, ps.visible_bytes),
                    ("inflight", ps.inflight, ps.inflight_bytes),
                    ("delayed", ps.delayed, ps.delayed_bytes),
                ):
                    messages.add_metric([qs.name, p, g, state], n)
                    sizes.add_metric([qs.name, p, g, state], b)
                oldest.add_metric([qs.name, p, g], ps.oldest_age_s)
                log_bytes.add_metric([qs.name, p], ps.log_bytes)
                log_segments.add_metric([qs.name, p], ps.log_segments)
        yield from (messages, sizes, oldest, parked, log_bytes, log_segments)
        if self._connections is not None:
            conns = GaugeMetricFamily(
                "conveyor_connections", "Open client connections by API.", labels=["api"]
            )
            for api, n in sorted(self._connections().items()):
                conns.add_metric([api], n)
            yield conns


class _ScrapeCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics.collect_scrape_time()

    def describe(self) -> Iterable[Metric]:
        return ()  # names are only known when collected; nothing to check at register


def _go_float(value: float) -> str:
    """A bucket bound as prometheus_client prints it (``0.5``, ``1.0``, ``3600.0``)."""
    return repr(float(value))
