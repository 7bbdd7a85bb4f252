"""Drives one partition replica's replication core on a real node.

:class:`ReplicaDriver` owns a :class:`~conveyor.replication.Replica` (the sans-IO core) and
carries out its effects against real things:

=================  ==================================================================
effect             carried out by
=================  ==================================================================
``Persist``        ``FileLog.append_batch`` at once, then the log's group commit; its
                   ``on_durable`` callback reports ``on_persisted`` back to the core
``Truncate``       ``FileLog.truncate``
``Apply``          the node's ``apply`` hook: committed records into the partition state
``Send``           the node's ``send`` hook (the native protocol to the peer)
``ProposeConfig``  the node's ``propose`` hook (compare-and-set in the coordinator)
``Reply``          releases or fails the broker's waits on the appended offsets
``RoleChanged``    the node's ``role_changed`` hook (routing, state rebuild, logs)
=================  ==================================================================

:class:`ReplicatedLog` is what the broker's partition writes to in cluster mode. It has
the storage ``Log`` interface, so the broker needs no second write path: an append goes
through the core (which refuses it unless this replica leads and the ISR is large
enough), and a record counts as durable — ``on_durable``, ``wait_durable``,
``durable_offset`` — once it is **committed**: persisted by every in-sync replica
(DESIGN.md §2, "answer only what is durable").

Threads. The core is called under one lock. Effects that reach outside (the partition
state, the network, the coordinator) run after that lock is released, so the lock order
is always *queue lock → replica lock*: the broker appends while holding its queue's lock,
and committed records are applied to the state by taking the queue lock with the replica
lock free.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Protocol

from conveyor import errors
from conveyor.coordination.config import PartitionConfig
from conveyor.replication import (
    EPOCH_START,
    Apply,
    Effect,
    EpochHistory,
    LogRecord,
    Message,
    Persist,
    ProposeConfig,
    Replica,
    ReplicaSettings,
    Reply,
    Role,
    RoleChanged,
    Send,
    Truncate,
    reply_error,
)
from conveyor.replication.records import marker_epoch
from conveyor.storage.file_log import FileLog
from conveyor.storage.log import Callback, ErrorCallback
from conveyor.storage.record import Record, SegmentInfo

log = logging.getLogger("conveyor.cluster")

memory_records_behind_commit = 4_096  # committed records a replica keeps in memory


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class DriverHooks(Protocol):
    """What a driver needs from its node. Every hook is called without the replica lock."""

    def send(self, to: str, message: Message) -> None:
        """Send a replication message to node ``to`` (best effort; any thread)."""

    def propose(
        self, driver: ReplicaDriver, expected_version: int, config: PartitionConfig
    ) -> None:
        """Compare-and-set the configuration; hand the answer to ``driver.on_config``."""

    def apply(self, driver: ReplicaDriver, records: Sequence[LogRecord]) -> None:
        """Fold committed records into the partition state (skip offsets it already has)."""

    def role_changed(self, driver: ReplicaDriver, change: RoleChanged, commit: int) -> None:
        """The replica's role changed; ``commit`` is its commit point at that moment."""


class _Waiter:
    __slots__ = ("callback", "done", "on_error")

    def __init__(self, callback: Callback, on_error: ErrorCallback | None) -> None:
        self.callback = callback
        self.on_error = on_error
        self.done = False


class ReplicaDriver:
    """One partition replica on this node: the core, its log, and what it waits for."""

    def __init__(
        self,
        *,
        node: str,
        partition: str,
        log: FileLog,
        applied: int,
        hooks: DriverHooks,
        settings: ReplicaSettings,
        incarnation: int,
        unclean: bool = False,
        clock: Callable[[], int] = monotonic_ms,
    ) -> None:
        self.node = node
        self.partition = partition
        self.file_log = log
        self.hooks = hooks
        self._clock = clock
        self._lock = threading.Lock()
        # Memory holds the records from the checkpoint on; older ones stay on disk and
        # are read back for a follower that is far behind. The scan finds the epoch
        # markers (the epoch history) without keeping the rest.
        history = EpochHistory()
        recovered: list[LogRecord] = []
        expected = 0
        for r in log.scan(0):
            if r.offset != expected:
                raise RuntimeError(
                    f"partition {partition}: its log has a hole at {expected}; "
                    "a replicated log is never compacted"
                )
            expected += 1
            if r.type == EPOCH_START:
                marker = LogRecord(r.offset, r.ts_ms, r.type, r.payload)
                epoch = marker_epoch(marker)
                assert epoch is not None
                history.append(epoch, r.offset)
            if r.offset >= applied:
                recovered.append(LogRecord(r.offset, r.ts_ms, r.type, r.payload))
        if expected != log.next_offset:
            raise RuntimeError(f"partition {partition}: its log ends before {log.next_offset}")
        self.core = Replica(
            node,
            partition,
            settings=settings,
            incarnation=incarnation,
            recovered=recovered,
            recovered_base=min(applied, expected),
            history=history,
            read_old=self._read_old,
            applied=applied,
            unclean=unclean,
        )
        self._ids = itertools.count(1)
        self._requests: dict[int, tuple[int, int]] = {}  # request id -> (first, last)
        self._waiters: list[tuple[int, int, _Waiter]] = []  # heap of (offset, seq, waiter)
        self._seq = itertools.count()
        self._applies: deque[tuple[LogRecord, ...]] = deque()
        self._apply_lock = threading.Lock()
        self._deferred: deque[RoleChanged] = deque()  # role changes seen inside an append
        self._running: int | None = None  # the thread inside _run
        self._persisted_now: deque[tuple[int, int]] = deque()
        self._outbox: list[Effect | _Release | _Fail] = []
        self.closed = False

    # --- inputs (any thread) ----------------------------------------------------------
    def on_config(self, config: PartitionConfig) -> None:
        self._input(lambda now: self.core.on_config(config, now))

    def on_lease(self, lease_id: int, sent_at_ms: int, ttl_ms: int) -> None:
        self._input(lambda now: self.core.on_lease(lease_id, sent_at_ms, ttl_ms, now))

    def on_lease_lost(self) -> None:
        self._input(self.core.on_lease_lost)

    def on_message(self, sender: str, message: Message) -> None:
        self._input(lambda now: self.core.on_message(sender, message, now))

    def tick(self) -> None:
        self._input(self._tick)

    def _tick(self, now: int) -> list[Effect]:
        effects = self.core.tick(now)
        # committed records far behind stay on disk only (read back when fetched)
        self.core.forget_below(self.core.commit - memory_records_behind_commit)
        return effects

    def _read_old(self, start: int, end: int) -> list[LogRecord]:
        return [
            LogRecord(r.offset, r.ts_ms, r.type, r.payload) for r in self.file_log.scan(start, end)
        ]

    def _persisted(self, upto: int, log_version: int) -> None:
        if self._running == threading.get_ident():
            # the log was durable at once (fsync=never/interval): we are inside _run
            self._persisted_now.append((upto, log_version))
            return
        self._input(lambda now: self.core.on_persisted(upto, log_version, now))

    def _input(self, call: Callable[[int], list[Effect]]) -> None:
        with self._lock:
            if self.closed:
                return
            self._run(call(self._clock()))
        self._after(in_append=False)

    # --- appends (the leader; the caller holds the partition's queue lock) -------------
    def append(self, items: Sequence[tuple[int, int, bytes]]) -> int:
        """Append records through the core; the first offset, or a retriable error."""
        with self._lock:
            if self.closed:
                raise errors.Unavailable(f"partition {self.partition} is closed on this node")
            request_id = next(self._ids)
            first = self.core.log_end
            effects = self.core.append(request_id, items, self._clock())
            refused = next(
                (e for e in effects if isinstance(e, Reply) and e.request_id == request_id),
                None,
            )
            if refused is None:
                self._requests[request_id] = (first, first + len(items) - 1)
            self._run(effects)
        self._after(in_append=True)
        if refused is not None and refused.error is not None:
            raise reply_error(refused)
        return first

    def on_committed(self, offset: int, callback: Callback, on_error: ErrorCallback | None) -> None:
        with self._lock:
            if offset < self.core.commit:
                ready = True
            elif self.core.role is not Role.LEADER or offset >= self.core.log_end:
                ready = False
                waiter = None
            else:
                ready = False
                waiter = _Waiter(callback, on_error)
                heapq.heappush(self._waiters, (offset, next(self._seq), waiter))
        if ready:
            callback()
        elif waiter is None and on_error is not None:
            on_error(self._outcome_unknown("this node stopped leading the partition"))

    def _outcome_unknown(self, why: str) -> errors.ConveyorError:
        """The error for appended records whose commit this node can no longer tell.

        Not ``Unavailable``: that promises nothing was done, and these records may still
        be committed by the next leader. Clients retry it only where that is safe."""
        leader = self.core.leader
        return errors.InternalError(
            f"outcome unknown: {why} (partition {self.partition}"
            + (f", leader now {leader})" if leader else ")")
        )

    # --- effects ------------------------------------------------------------------------
    def _run(self, effects: list[Effect]) -> None:
        """Carry out effects in order, then the persistence completions they caused at
        once; under the replica lock."""
        self._running = threading.get_ident()
        try:
            self._run_effects(effects)
            while self._persisted_now:
                upto, version = self._persisted_now.popleft()
                self._run_effects(self.core.on_persisted(upto, version, self._clock()))
        finally:
            self._running = None

    def _run_effects(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Persist):
                self._persist(effect)
            elif isinstance(effect, Truncate):
                self.file_log.truncate(effect.next_offset)
                exc = self._outcome_unknown("the records were cut from this replica's log")
                self._fail_waiters(_at_or_after(effect.next_offset), exc)
            elif isinstance(effect, Apply):
                if effect.records:
                    self._applies.append(effect.records)
            elif isinstance(effect, Reply):
                span = self._requests.pop(effect.request_id, None)
                if span is not None and effect.error is not None:
                    exc = self._outcome_unknown(f"not committed in time ({effect.error.value})")
                    self._fail_waiters(_within(*span), exc)
            elif isinstance(effect, RoleChanged):
                if effect.role is not Role.LEADER:
                    self._requests.clear()
                    exc = self._outcome_unknown("the leadership moved before the commit")
                    self._fail_waiters(lambda off: True, exc)
                self._outbox.append(effect)
            else:  # Send, ProposeConfig
                self._outbox.append(effect)
        self._release_committed()

    def _persist(self, effect: Persist) -> None:
        records = effect.records
        first = self.file_log.append_batch([(r.type, r.ts_ms, r.payload) for r in records])
        if first != records[0].offset:
            raise RuntimeError(
                f"partition {self.partition}: the log appended at {first}, "
                f"the replication core at {records[0].offset}"
            )
        end = records[-1].offset + 1
        version = effect.log_version

        def persisted() -> None:
            self._persisted(end, version)

        def failed(exc: BaseException) -> None:
            log.error(
                "replica log write failed",
                extra={"partition": self.partition, "error": str(exc)},
            )

        self.file_log.on_durable(end - 1, persisted, failed)

    def _release_committed(self) -> None:
        commit = self.core.commit
        waiters = self._waiters
        while waiters and waiters[0][0] < commit:
            _, _, waiter = heapq.heappop(waiters)
            if not waiter.done:
                waiter.done = True
                self._outbox.append(_Release(waiter))

    def _fail_waiters(self, which: Callable[[int], bool], exc: errors.ConveyorError) -> None:
        keep = []
        for entry in self._waiters:
            offset, _, waiter = entry
            if not waiter.done and which(offset):
                waiter.done = True
                self._outbox.append(_Fail(waiter, exc))
            elif not waiter.done:
                keep.append(entry)
        heapq.heapify(keep)
        self._waiters = keep

    def _after(self, *, in_append: bool) -> None:
        """Run what the core asked for outside the replica lock."""
        with self._lock:
            outbox, self._outbox = self._outbox, []
            commit = self.core.commit
        if in_append:
            # the caller holds its queue's lock, which the state hooks take: later
            self._deferred.extend(o for o in outbox if isinstance(o, RoleChanged))
            outbox = [o for o in outbox if not isinstance(o, RoleChanged)]
        elif self._deferred:
            outbox = [*self._drain_deferred(), *outbox]
        for item in outbox:
            if isinstance(item, _Release):
                item.waiter.callback()
            elif isinstance(item, _Fail):
                if item.waiter.on_error is not None:
                    item.waiter.on_error(item.exc)
            elif isinstance(item, Send):
                self.hooks.send(item.to, item.message)
            elif isinstance(item, ProposeConfig):
                self.hooks.propose(self, item.expected_version, item.config)
            elif isinstance(item, RoleChanged):
                log.info(
                    "partition role",
                    extra={
                        "partition": self.partition,
                        "role": item.role.value,
                        "epoch": item.epoch,
                        "leader": item.leader,
                        "reason": item.reason,
                    },
                )
                self.hooks.role_changed(self, item, commit)
        if self._applies and not in_append:
            self._drain_applies()

    def _drain_deferred(self) -> list[RoleChanged]:
        out = []
        while self._deferred:
            out.append(self._deferred.popleft())
        return out

    def _drain_applies(self) -> None:
        """Apply committed records to the state, in order (the caller holds no queue lock)."""
        with self._apply_lock:
            while self._applies:
                records = self._applies.popleft()
                self.hooks.apply(self, records)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._fail_waiters(lambda off: True, self._outcome_unknown("the node is stopping"))
            outbox, self._outbox = self._outbox, []
        for item in outbox:
            if isinstance(item, _Fail) and item.waiter.on_error is not None:
                item.waiter.on_error(item.exc)

    # --- observers ----------------------------------------------------------------------
    @property
    def role(self) -> Role:
        return self.core.role

    @property
    def commit(self) -> int:
        return self.core.commit

    @property
    def log_end(self) -> int:
        return self.core.log_end

    def status(self) -> dict[str, object]:
        with self._lock:
            status = self.core.status()
            config = self.core.config
        status["partition"] = self.partition
        status["isr"] = list(config.isr) if config is not None else []
        status["replicas"] = list(config.replicas) if config is not None else []
        status.pop("history", None)
        return status


def _at_or_after(end: int) -> Callable[[int], bool]:
    return lambda offset: offset >= end


def _within(first: int, last: int) -> Callable[[int], bool]:
    return lambda offset: first <= offset <= last


class _Release:
    __slots__ = ("waiter",)

    def __init__(self, waiter: _Waiter) -> None:
        self.waiter = waiter


class _Fail:
    __slots__ = ("exc", "waiter")

    def __init__(self, waiter: _Waiter, exc: errors.ConveyorError) -> None:
        self.waiter = waiter
        self.exc = exc


class ReplicatedLog:
    """The storage ``Log`` interface over a replicated partition (see the module doc).

    Reads go to the local file log. Writes go through the replication core, and what
    the broker waits for is the commit point, not the local fsync.
    """

    def __init__(self, driver: ReplicaDriver, ready: Callable[[], bool]) -> None:
        self.driver = driver
        self.file_log = driver.file_log
        self._ready = ready  # the state has applied the whole log: appends may go on

    @property
    def writable(self) -> bool:
        return self.driver.role is Role.LEADER and self.driver.core.is_serving and self._ready()

    @property
    def next_offset(self) -> int:
        return self.file_log.next_offset

    @property
    def durable_offset(self) -> int:
        return self.driver.commit

    @property
    def synced_offset(self) -> int:
        return self.file_log.synced_offset

    @property
    def first_offset(self) -> int:
        return self.file_log.first_offset

    def append(self, type: int, ts_ms: int, payload: bytes) -> int:
        return self.append_batch([(type, ts_ms, payload)])

    def append_batch(self, items: Sequence[tuple[int, int, bytes]]) -> int:
        if not self._ready():
            raise errors.Unavailable(
                f"partition {self.driver.partition}: the leader is still applying its log; retry"
            )
        return self.driver.append(items)

    def wait_durable(self, offset: int) -> None:
        done = threading.Event()
        failure: list[BaseException] = []

        def failed(exc: BaseException) -> None:
            failure.append(exc)
            done.set()

        self.on_durable(offset, done.set, failed)
        done.wait()
        if failure:
            raise failure[0]

    def on_durable(
        self, offset: int, callback: Callback, on_error: ErrorCallback | None = None
    ) -> None:
        self.driver.on_committed(offset, callback, on_error)

    def sync(self) -> int:
        self.file_log.sync()
        return self.driver.commit

    def read(self, offset: int) -> Record:
        return self.file_log.read(offset)

    def read_many(self, offsets: Sequence[int]) -> list[Record]:
        return self.file_log.read_many(offsets)

    def scan(self, start: int = 0, end: int | None = None) -> Iterator[Record]:
        return self.file_log.scan(start, end)

    def truncate(self, next_offset: int) -> None:
        raise RuntimeError("a replicated log is truncated by its replication core only")

    def reset(self, next_offset: int) -> None:
        raise RuntimeError("a replicated log is never reset")

    def segments(self) -> list[SegmentInfo]:
        return self.file_log.segments()

    def delete_segment(self, base_offset: int) -> None:
        raise RuntimeError("a replicated log is not compacted (followers fetch from it)")

    def rewrite_segment(self, base_offset: int, keep: Collection[int]) -> SegmentInfo:
        raise RuntimeError("a replicated log is not compacted (followers fetch from it)")

    def close(self) -> None:
        self.driver.close()
        self.file_log.close()
