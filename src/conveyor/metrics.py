"""Prometheus metrics of a broker and the node serving it.

Every :class:`Metrics` holds its own ``CollectorRegistry`` (never the process-global
one), so several brokers in one process — tests, embedded users — do not collide.
``render()`` gives the text exposition format served at ``/metrics``.

Two kinds of metrics:

* **counted as it happens** — the broker's counters are plain integers on the queue
  (:class:`PartitionMetrics`), incremented once per batch and partition under the
  queue's lock the operation already holds, and the receive-to-delete histogram
  (:class:`MsHistogram`) is bucketed the same way; both are turned into metric families
  at scrape time. Send and fsync latencies, measured outside any lock, are
  ``prometheus_client`` histograms.
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

import os
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_GROUP",
    "Metrics",
    "MsHistogram",
    "PartitionMetrics",
    "PartitionSample",
    "QueueMetrics",
    "QueueSample",
]

# the classic text format generate_latest() writes, which every Prometheus reads
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_GROUP = "default"  # the consumer group the SQS API and receive() serve

# Bucket bounds in seconds. Sends wait for an fsync (about 0.1-10 ms on real disks);
# receive-to-delete is how long consumers work on a message (up to the 12 h lease).
request_children_cached_max = 2_048  # (api, action, code) counters kept bound

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
        # a send is timed outside the lock: prometheus_client's own locked child
        self.send_duration = m.send_duration.labels(queue)


class Metrics:
    """The metrics of one broker (and the node around it)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.send_duration = Histogram(
            "conveyor_send_duration_seconds",
            "Time to send a batch, from the call until its records are durable.",
            ["queue"],
            buckets=send_buckets_s,
            registry=r,
        )
        self.fsync_duration = Histogram(
            "conveyor_fsync_duration_seconds",
            "Duration of each fsync of log segments and their directories on this node.",
            buckets=fsync_buckets_s,
            registry=r,
        )
        self._request_children: dict[tuple[str, str, str], Any] = {}
        self.requests = Counter(
            "conveyor_requests",
            "Requests answered, by API (sqs, native, admin), action and result code "
            "(OK or the error code).",
            ["api", "action", "code"],
            registry=r,
        )
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
        key = (api, action, code)
        child = self._request_children.get(key)
        if child is None:
            # labels() costs a few µs a call; the set of (api, action, code) is small
            # (actions and error codes are fixed lists), so the children are kept
            child = self.requests.labels(api, action, code)
            if len(self._request_children) < request_children_cached_max:
                self._request_children[key] = child
        child.inc()

    def timed_fsync(self, fd: int) -> None:
        """``os.fsync`` that records its duration (the logs' ``fsync_fn``)."""
        start = time.perf_counter()
        try:
            os.fsync(fd)
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
