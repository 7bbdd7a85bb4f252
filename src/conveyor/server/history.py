"""The last 15 minutes of every queue, kept by the node for the web console.

Every ``sample_interval_s`` (5 s) the :class:`HistorySampler` task reads the broker's
``queue_samples()`` (depth by state, bytes, age of the oldest message) and each queue's
metrics counters, and :meth:`History.observe` appends one :class:`HistoryPoint` per
queue, keeping the last ``history_points_max`` (180 points: 15 minutes). Rates are counter
deltas divided by the time between two samples; they are ``None`` on a queue's first
point and after its counters went backwards (the queue was deleted and created again),
where no delta exists.

The history lives in memory only: a restarted node starts with none, and a deleted
queue's history goes with it. It costs one ``queue_samples()`` per interval (each
queue's lock taken once, briefly) and at most 180 small points per queue.
The admin API serves it (``GET /api/v1/queues/{name}/history``, ``GET /api/v1/history``)
so that a console opened now shows the last 15 minutes at once. :class:`History` does no
I/O and reads no clock: the sampler passes the time in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec

from conveyor.metrics import QueueMetrics, QueueSample, SampleSource

log = logging.getLogger("conveyor.history")

sample_interval_s = 5.0  # time between two samples
history_points_max = 180  # points kept per queue: 180 x 5 s = 15 minutes
rate_digits = 3  # rates are rounded to 1/1000 message per second
assert history_points_max * sample_interval_s == 15 * 60


class HistoryPoint(msgspec.Struct, kw_only=True):
    """One queue at one sample time (the admin API's wire type, too)."""

    t_ms: int  # wall clock of the sample, ms since the epoch
    messages: int  # visible + inflight + delayed
    visible: int
    inflight: int
    delayed: int
    bytes: int
    oldest_age_s: float  # 0 when the queue is empty
    # per second, since the previous point; None when there is no previous point
    sent_per_s: float | None
    received_per_s: float | None
    deleted_per_s: float | None
    redelivered_per_s: float | None
    dead_lettered_per_s: float | None
    expired_per_s: float | None
    redriven_per_s: float | None


@dataclass(frozen=True, slots=True)
class Counts:
    """A queue's counters summed over its partitions (cumulative since it was opened)."""

    sent: int
    received: int
    deleted: int
    redelivered: int
    dead_lettered: int
    expired: int
    redriven: int

    @classmethod
    def of(cls, qm: QueueMetrics) -> Counts:
        ps = list(qm.partitions)
        return cls(
            sent=sum(p.sent for p in ps),
            received=sum(p.received for p in ps),
            deleted=sum(p.deleted for p in ps),
            redelivered=sum(p.redelivered for p in ps),
            dead_lettered=sum(p.dead_lettered for p in ps),
            expired=sum(p.expired_retention + p.expired_overflow for p in ps),
            redriven=qm.redriven,
        )


@dataclass(slots=True)
class _Series:
    points: deque[HistoryPoint]
    counts: Counts | None  # at the last point
    mono_s: float  # monotonic time of the last point


class History:
    """Per queue, the last ``points_max`` points, oldest first."""

    def __init__(
        self, *, interval_s: float = sample_interval_s, points_max: int = history_points_max
    ) -> None:
        assert interval_s > 0 and points_max >= 2
        self.interval_s = interval_s
        self.points_max = points_max
        self._series: dict[str, _Series] = {}

    def observe(
        self,
        t_ms: int,
        mono_s: float,
        samples: Iterable[QueueSample],
        counts: Callable[[str], Counts | None],
    ) -> None:
        """Append one point per sampled queue, taken at wall time ``t_ms`` and monotonic
        time ``mono_s``; ``counts(name)`` gives the queue's counters (``None``: unknown).
        Queues missing from ``samples`` (deleted) lose their history."""
        seen: set[str] = set()
        for sample in samples:
            name = sample.name
            seen.add(name)
            series = self._series.get(name)
            if series is None:
                series = _Series(deque(maxlen=self.points_max), None, mono_s)
                self._series[name] = series
            now = counts(name)
            rates = _rates(series.counts, now, mono_s - series.mono_s)
            series.points.append(_point(t_ms, sample, rates))
            series.counts = now
            series.mono_s = mono_s
        for gone in set(self._series) - seen:
            del self._series[gone]

    def points(self, name: str, since_ms: int = 0) -> list[HistoryPoint]:
        """The queue's points taken after ``since_ms``, oldest first ([] if none)."""
        series = self._series.get(name)
        if series is None:
            return []
        if since_ms <= 0:
            return list(series.points)
        out = [p for p in reversed(series.points) if p.t_ms > since_ms]
        out.reverse()
        return out

    def queues(self) -> list[str]:
        return sorted(self._series)


_RATE_FIELDS = (
    "sent",
    "received",
    "deleted",
    "redelivered",
    "dead_lettered",
    "expired",
    "redriven",
)


def _rates(
    before: Counts | None, after: Counts | None, elapsed_s: float
) -> dict[str, float | None]:
    if before is None or after is None or elapsed_s <= 0:
        return dict.fromkeys(_RATE_FIELDS)
    out: dict[str, float | None] = {}
    for name in _RATE_FIELDS:
        delta = getattr(after, name) - getattr(before, name)
        # a counter that went backwards was reset (queue deleted and created again)
        out[name] = None if delta < 0 else round(delta / elapsed_s, rate_digits)
    return out


def _point(t_ms: int, sample: QueueSample, rates: dict[str, float | None]) -> HistoryPoint:
    ps = sample.partitions
    visible = sum(p.visible for p in ps)
    inflight = sum(p.inflight for p in ps)
    delayed = sum(p.delayed for p in ps)
    return HistoryPoint(
        t_ms=t_ms,
        messages=visible + inflight + delayed,
        visible=visible,
        inflight=inflight,
        delayed=delayed,
        bytes=sum(p.visible_bytes + p.inflight_bytes + p.delayed_bytes for p in ps),
        oldest_age_s=round(max((p.oldest_age_s for p in ps), default=0.0), 3),
        sent_per_s=rates["sent"],
        received_per_s=rates["received"],
        deleted_per_s=rates["deleted"],
        redelivered_per_s=rates["redelivered"],
        dead_lettered_per_s=rates["dead_lettered"],
        expired_per_s=rates["expired"],
        redriven_per_s=rates["redriven"],
    )


class CountSource:
    """``counts(name)`` over a :class:`~conveyor.metrics.Metrics`: the queue's counters,
    ``None`` for a queue it does not know."""

    def __init__(self, queue_metrics: Callable[[str], QueueMetrics | None]) -> None:
        self._queue_metrics = queue_metrics

    def __call__(self, name: str) -> Counts | None:
        qm = self._queue_metrics(name)
        return None if qm is None else Counts.of(qm)


class HistorySampler:
    """The asyncio task that feeds a :class:`History`: one sample at :meth:`start`, then
    one every ``history.interval_s`` (missed ticks are skipped, not caught up)."""

    def __init__(
        self,
        source: SampleSource,
        counts: Callable[[str], Counts | None],
        history: History | None = None,
        *,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        mono_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.counts = counts
        self.history = History() if history is None else history
        self._wall_ms = wall_ms
        self._mono_s = mono_s
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        """Take one sample of every queue now."""
        samples = self.source.queue_samples()
        self.history.observe(self._wall_ms(), self._mono_s(), samples, self.counts)

    def start(self) -> None:
        assert self._task is None, "already started"
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="conveyor-history-sampler"
        )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.history.interval_s
        due = loop.time()
        failing = False
        while True:
            try:
                self.sample()
                failing = False
            except Exception:
                if not failing:  # once per run of failures, not every 5 s
                    log.exception("history sample failed")
                failing = True
            due += interval
            now = loop.time()
            if due <= now:  # the loop was blocked past a tick: skip it
                due = now + interval
            await asyncio.sleep(due - now)
