"""The broker: queues, routing to partitions, long polling, dead-letter moves.

:class:`Broker` is the embedded broker (``conveyor.open(data_dir)``) and the core the
server wraps. Every method is thread-safe. Each queue has one lock; an operation takes
it, asks the partition state machine to decide, commits the resulting records (one
write), applies them, releases the lock and only then waits for its records to be
durable, so concurrent operations share fsyncs (group commit). No method holds two
queues' locks at once: a dead-letter move writes an intent in the source queue, appends
to the dead-letter queue, then records the move as done in the source — each step under
one lock, each durable before the next; :meth:`Broker.open` finishes moves a crash
interrupted, and the destination drops a second copy by the move's origin.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import itertools
import logging
import os
import secrets
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from conveyor import __version__, errors, limits
from conveyor.broker.catalog import Catalog, QueueMeta, new_uid, write_atomically
from conveyor.broker.partition import Partition
from conveyor.metrics import Metrics, PartitionSample, QueueMetrics, QueueSample
from conveyor.partition import records as R
from conveyor.partition.state import MOVING, Capture, PartitionState
from conveyor.queue import make_config, update_config, validate_name
from conveyor.receipt import Receipt, ReceiptSigner
from conveyor.types import (
    BatchEntry,
    Message,
    MessageAttribute,
    QueueInfo,
    QueueStats,
    SendEntry,
    SendResult,
    entry_of,
)

log = logging.getLogger("conveyor.broker")

FsyncPolicy = Literal["always", "interval", "never"]
Clock = Callable[[], int]  # milliseconds since the epoch

_ATTR_TYPES = ("String", "Number", "Binary")
_DLQ_SOURCE = "DeadLetterQueueSourceQueue"
_ORIGINAL_DEDUP = "MessageDeduplicationId"


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class _Node(msgspec.Struct):
    node_id: str
    secret: str  # hex


class _Guard:
    """``with`` a queue's lock, refusing a deleted queue: what every operation takes,
    so a plain class rather than a ``contextlib`` generator (a third of the cost)."""

    __slots__ = ("_q",)

    def __init__(self, q: _Queue) -> None:
        self._q = q

    def __enter__(self) -> None:
        q = self._q
        q.lock.acquire()
        if q.deleted:
            q.lock.release()
            raise errors.QueueDoesNotExist(f"the queue {q.name!r} does not exist")

    def __exit__(self, *exc: object) -> None:
        self._q.lock.release()


class _Queue:
    """A queue open on this node."""

    def __init__(self, meta: QueueMeta, partitions: list[Partition], m: QueueMetrics) -> None:
        self.meta = meta
        self.m = m  # metric children, bound once
        self.uid_bytes = bytes.fromhex(meta.uid)
        self.partitions = partitions
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.cond_waiters = 0  # threads in Broker.receive waiting on cond
        self.guard = _Guard(self)
        self.version = 0  # bumped (under lock) whenever messages may have become visible
        self.deleted = False
        self.send_rr = 0
        self.recv_rr = 0
        self.replicated = any(p.replicated for p in partitions)  # cluster mode
        # asyncio long polls parked on this queue, oldest first (see AsyncBroker.receive)
        self.parked: deque[Parked] = deque()

    @property
    def name(self) -> str:
        return self.meta.name

    def wake(self, count: int | None = None) -> None:
        """Call under ``lock``: wake long polls.

        Threads waiting in :meth:`Broker.receive` all wake. Parked asyncio receivers wake
        oldest first, ``count`` of them (one per message that became visible) or all
        when ``count`` is None, so a send to a queue with ten thousand parked receivers
        wakes one, not ten thousand."""
        self.version += 1
        if self.cond_waiters:
            self.cond.notify_all()
        parked = self.parked
        n = len(parked) if count is None else min(count, len(parked))
        for _ in range(n):
            parked.popleft().wake(self)

    def rewake(self) -> None:
        """A woken receiver went away before it ran: pass its wake-up on."""
        with self.lock:
            if self.parked:
                self.parked.popleft().wake(self)


class Parked:
    """One parked asyncio receiver: a future resolved from any thread by ``wake``."""

    __slots__ = ("future", "loop", "thread")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.thread = threading.get_ident()  # the loop's: it is made by a receive on it

    def wake(self, q: _Queue) -> None:
        if threading.get_ident() == self.thread and not self.future.done():
            # on the loop (a send there): resolved now, the receiver resumes in the next
            # round, ahead of the fsync the send waits for, and its lease shares it
            self.future.set_result(None)
        else:
            self.loop.call_soon_threadsafe(self._resolve, q)

    def _resolve(self, q: _Queue) -> None:
        if self.future.done():
            q.rewake()  # it timed out or was cancelled meanwhile
        else:
            self.future.set_result(None)

    def expire(self) -> None:
        """The park time is over (a ``call_later`` timer on the loop)."""
        if not self.future.done():
            self.future.set_result(None)


Waits = list[tuple[Partition, int]]  # (partition, offset) pairs to wait durable for
PartitionFactory = Callable[[QueueMeta, int, Path | None], Partition]


@dataclass(slots=True)
class Pick:
    """What one receive attempt decided, before its records are durable."""

    version: int
    picked: list[tuple[Partition, int, int, R.Append, int, int]]
    moves: list[tuple[Partition, list[int]]]
    waits: Waits


def wait_all(waits: Waits) -> None:
    for part, off in waits:
        part.wait_durable(off)


def message_size(body: bytes, attributes: dict[str, MessageAttribute] | None) -> int:
    """Size as SQS counts it: body plus each attribute's name, type and value."""
    size = len(body)
    for name, attr in (attributes or {}).items():
        size += len(name.encode()) + len(attr.data_type.encode())
        if attr.string_value is not None:
            size += len(attr.string_value.encode())
        if attr.binary_value is not None:
            size += len(attr.binary_value)
    return size


def validate_attributes(attributes: dict[str, MessageAttribute] | None) -> None:
    if not attributes:
        return
    if len(attributes) > limits.message_attributes_max:
        raise errors.InvalidParameterValue(
            f"a message may carry at most {limits.message_attributes_max} attributes"
        )
    for name, attr in attributes.items():
        if not name or len(name) > limits.attribute_name_length_max:
            raise errors.InvalidParameterValue(f"invalid message attribute name {name!r}")
        if not isinstance(attr, MessageAttribute):
            raise errors.InvalidParameterValue(f"attribute {name!r} must be a MessageAttribute")
        base = attr.data_type.split(".", 1)[0]
        if base not in _ATTR_TYPES or len(attr.data_type) > limits.attribute_type_length_max:
            raise errors.InvalidParameterValue(
                f"attribute {name!r} has data type {attr.data_type!r}; use String, Number or "
                "Binary, optionally with a .suffix"
            )
        if base == "Binary":
            if attr.binary_value is None or attr.string_value is not None:
                raise errors.InvalidParameterValue(f"Binary attribute {name!r} needs binary_value")
        elif attr.string_value is None or attr.binary_value is not None:
            raise errors.InvalidParameterValue(f"{base} attribute {name!r} needs string_value")
        if base == "Number":
            try:
                float(attr.string_value or "")
            except ValueError:
                raise errors.InvalidParameterValue(
                    f"Number attribute {name!r} is not a number: {attr.string_value!r}"
                ) from None


class Broker:
    """An embedded Conveyor broker on a data directory (or in memory with ``None``)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None,
        *,
        fsync: FsyncPolicy = "always",
        clock: Clock = wall_clock_ms,
        maintenance_interval_s: float | None = 1.0,
        segment_bytes_max: int = limits.segment_bytes_max,
        secret: bytes | None = None,
        metrics: Metrics | None = None,
        partition_factory: PartitionFactory | None = None,
        receipt_secret: bytes | None = None,
    ) -> None:
        """``partition_factory`` opens partitions in cluster mode (replicated logs);
        without it each partition is a local log."""
        if fsync not in ("always", "interval", "never"):
            raise ValueError("fsync must be 'always', 'interval' or 'never'")
        self.fsync = fsync
        self.metrics = Metrics() if metrics is None else metrics
        self._clock = clock
        self._segment_bytes_max = segment_bytes_max
        self._partition_factory = partition_factory
        # cluster mode: (destination uid, records) -> destination name; appends moved
        # messages on the destination's leaders, raises if it could not
        self.remote_mover: Callable[[str, list[R.Append]], str] | None = None
        self._closed = False
        self._polls_ended = False  # end_long_polls(): waiting receives answer at once
        h = secrets.token_hex(8)
        self._id_prefix = f"{h[:8]}-{h[8:12]}-{h[12:16]}-"  # the fixed half of every id
        self._id_counter = itertools.count()
        self._catalog_lock = threading.Lock()
        self._lock_fd: int | None = None
        self.data_dir = None if data_dir is None else Path(data_dir)
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = self._lock_data_dir(self.data_dir)
        node = self._load_node(secret)
        self.node_id = node.node_id
        self.metrics.attach(self, self.node_id, __version__)
        # in a cluster every node signs with the cluster's secret: a handle stays good
        # when its partition's leadership moves
        self._signer = ReceiptSigner(receipt_secret or bytes.fromhex(node.secret))
        self._catalog = Catalog(self.data_dir)
        self._queues: dict[str, _Queue] = {}
        self._by_uid: dict[str, _Queue] = {}
        for meta in self._catalog.queues.values():
            self._open_queue(meta)
        self._resume_moves()
        self._stop = threading.Event()
        self._maintenance: threading.Thread | None = None
        if maintenance_interval_s:
            self._maintenance = threading.Thread(
                target=self._maintenance_loop,
                args=(maintenance_interval_s,),
                name="conveyor-maintenance",
                daemon=True,
            )
            self._maintenance.start()
        log.info(
            "broker open",
            extra={"data_dir": str(self.data_dir), "queues": len(self._queues), "fsync": fsync},
        )

    # ------------------------------------------------------------------ lifecycle
    @staticmethod
    def _lock_data_dir(path: Path) -> int:
        fd = os.open(path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise errors.Unavailable(
                f"data directory {path} is in use by another process"
            ) from None
        return fd

    def _load_node(self, secret: bytes | None) -> _Node:
        if self.data_dir is None:
            return _Node(node_id="memory", secret=(secret or secrets.token_bytes(32)).hex())
        path = self.data_dir / "node.json"
        if path.exists():
            node = msgspec.json.decode(path.read_bytes(), type=_Node)
        else:
            node = _Node(node_id=new_uid(), secret=(secret or secrets.token_bytes(32)).hex())
            write_atomically(path, msgspec.json.encode(node))
        return node

    def close(self) -> None:
        """Checkpoint every partition, flush and release the data directory."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._maintenance is not None:
            self._maintenance.join()
        for q in list(self._queues.values()):
            with q.lock:
                q.wake()
            for part in q.partitions:
                with q.lock:
                    offset, capture = part.capture()
                if offset != part.checkpoint_offset and self._may_checkpoint(part, offset):
                    part.save_checkpoint(offset, capture)
                part.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        log.info("broker closed", extra={"data_dir": str(self.data_dir)})

    def end_long_polls(self) -> None:
        """For a graceful shutdown: every waiting receive returns what it has (usually
        nothing) now, and later receives do not wait."""
        self._polls_ended = True
        for q in list(self._queues.values()):
            with q.lock:
                q.wake()

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> int:
        return self._clock()

    def _open_queue(self, meta: QueueMeta) -> _Queue:
        factory = self._partition_factory
        if factory is not None:
            parts = [
                factory(meta, i, self._catalog.partition_dir(meta, i))
                for i in range(meta.config.partitions)
            ]
            q = _Queue(meta, parts, self.metrics.queue(meta.name, len(parts)))
            self._queues[meta.name] = q
            self._by_uid[meta.uid] = q
            return q
        parts = [
            Partition.open(
                i,
                self._catalog.partition_dir(meta, i),
                fifo=meta.config.fifo,
                dedup_scope=meta.config.dedup_scope,
                fsync=self.fsync,
                segment_bytes_max=self._segment_bytes_max,
                fsync_fn=self.metrics.timed_fsync,
                fdatasync_fn=self.metrics.timed_fdatasync,
            )
            for i in range(meta.config.partitions)
        ]
        q = _Queue(meta, parts, self.metrics.queue(meta.name, len(parts)))
        self._queues[meta.name] = q
        self._by_uid[meta.uid] = q
        return q

    def _queue(self, name: str) -> _Queue:
        if self._closed:
            raise errors.Unavailable("the broker is closed")
        q = self._queues.get(name)
        if q is None:
            if not isinstance(name, str):
                raise errors.InvalidParameterValue("queue name must be a string")
            raise errors.QueueDoesNotExist(f"the queue {name!r} does not exist")
        return q

    @staticmethod
    def _locked(q: _Queue) -> _Guard:
        return q.guard

    # ------------------------------------------------------------------ queues
    def create_queue(
        self,
        name: str,
        config: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
    ) -> QueueInfo:
        """Create a queue; creating it again with identical attributes is a no-op."""
        return self.ensure_queue(name, config, tags)[0]

    def ensure_queue(
        self,
        name: str,
        config: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
    ) -> tuple[QueueInfo, bool]:
        """:meth:`create_queue`, also saying whether the queue was created (True) or
        existed already with the same attributes (False)."""
        validate_name(name)
        cfg = make_config(name, config)
        with self._catalog_lock:
            if self._closed:
                raise errors.Unavailable("the broker is closed")
            existing = self._queues.get(name)
            if existing is not None:
                if existing.meta.config != cfg:
                    raise errors.QueueAlreadyExists(
                        f"a queue named {name!r} already exists with different attributes"
                    )
                return self._info(existing, with_stats=False), False
            if cfg.redrive is not None and cfg.redrive.dead_letter_queue not in self._queues:
                raise errors.InvalidAttributeValue(
                    f"dead-letter queue {cfg.redrive.dead_letter_queue!r} does not exist"
                )
            if len(self._queues) >= limits.queues_per_node_max:
                raise errors.OverLimit("too many queues on this node")
            now = self._now()
            meta = QueueMeta(
                name=name,
                uid=new_uid(),
                config=cfg,
                created_ms=now,
                modified_ms=now,
                tags=dict(tags or {}),
            )
            q = self._open_queue(meta)
            self._catalog.put(meta)
        log.info("queue created", extra={"queue": name, "uid": meta.uid})
        return self._info(q, with_stats=False), True

    # ------------------------------------------------------------------ cluster catalog
    def adopt_queue(self, meta: QueueMeta) -> bool:
        """Cluster mode: open a queue the coordinator's catalog names, with its uid.

        Replaces the metadata of a queue already open under that uid (attributes or tags
        changed); returns True when the queue was opened here now."""
        with self._catalog_lock:
            if self._closed:
                raise errors.Unavailable("the broker is closed")
            existing = self._queues.get(meta.name)
            if existing is not None and existing.meta.uid == meta.uid:
                if existing.meta != meta:
                    with existing.lock:
                        existing.meta = meta
                        for part in existing.partitions:
                            part.state.dedup_scope = meta.config.dedup_scope
                    self._catalog.put(meta)
                return False
            if existing is not None:
                self._drop_locked(existing)
            self._open_queue(meta)
            self._catalog.put(meta)
        log.info("queue adopted", extra={"queue": meta.name, "uid": meta.uid})
        return True

    def drop_queue(self, name: str) -> None:
        """Cluster mode: close a queue the catalog no longer names here, delete its data."""
        with self._catalog_lock:
            q = self._queues.get(name)
            if q is not None:
                self._drop_locked(q)

    def _drop_locked(self, q: _Queue) -> None:
        with q.lock:
            q.deleted = True
            q.wake()
        del self._queues[q.name]
        del self._by_uid[q.meta.uid]
        for part in q.partitions:
            part.close()
        self._catalog.remove(q.name)
        self.metrics.forget_queue(q.name)
        log.info("queue dropped", extra={"queue": q.name, "uid": q.meta.uid})

    def local_metas(self) -> list[QueueMeta]:
        """The metadata of every queue open on this node."""
        return [q.meta for q in list(self._queues.values())]

    def get_queue(self, name: str) -> QueueInfo:
        return self._info(self._queue(name), with_stats=True)

    def list_queues(self, prefix: str = "") -> list[str]:
        return sorted(n for n in self._queues if n.startswith(prefix))

    def set_queue(self, name: str, changes: dict[str, Any]) -> QueueInfo:
        """Change attributes; ``fifo`` and ``partitions`` are fixed at creation."""
        q = self._queue(name)
        with self._catalog_lock:
            cfg = update_config(name, q.meta.config, changes)
            if cfg.fifo != q.meta.config.fifo or cfg.partitions != q.meta.config.partitions:
                raise errors.InvalidAttributeValue(
                    "fifo and partitions cannot change after a queue is created"
                )
            if cfg.redrive is not None and cfg.redrive.dead_letter_queue not in self._queues:
                raise errors.InvalidAttributeValue(
                    f"dead-letter queue {cfg.redrive.dead_letter_queue!r} does not exist"
                )
            with self._locked(q):
                q.meta = msgspec.structs.replace(q.meta, config=cfg, modified_ms=self._now())
                for part in q.partitions:
                    part.state.dedup_scope = cfg.dedup_scope
            self._catalog.put(q.meta)
        log.info("queue changed", extra={"queue": name, "changes": sorted(changes)})
        return self._info(q, with_stats=False)

    def tag_queue(self, name: str, tags: dict[str, str], remove: Sequence[str] = ()) -> None:
        q = self._queue(name)
        with self._catalog_lock:
            new = {k: v for k, v in q.meta.tags.items() if k not in remove}
            new.update(tags)
            if len(new) > limits.queue_tags_max:
                raise errors.InvalidParameterValue(
                    f"a queue may have at most {limits.queue_tags_max} tags"
                )
            q.meta = msgspec.structs.replace(q.meta, tags=new)
            self._catalog.put(q.meta)

    def delete_queue(self, name: str) -> None:
        """Delete a queue and every message in it."""
        with self._catalog_lock:
            q = self._queue(name)
            with q.lock:
                q.deleted = True
                q.wake()
            del self._queues[name]
            del self._by_uid[q.meta.uid]
            for part in q.partitions:
                part.close()
            self._catalog.remove(name)
            self.metrics.forget_queue(name)
        log.info("queue deleted", extra={"queue": name, "uid": q.meta.uid})

    def purge_queue(self, name: str) -> None:
        """Delete every message sent before the call (one purge per 60 s, as SQS)."""
        q = self._queue(name)
        now = self._now()
        waits = []
        with self._locked(q):
            last = max(p.state.last_purge_ms for p in q.partitions)
            if last and now - last < limits.purge_interval_s * 1000:
                raise errors.PurgeQueueInProgress(
                    f"the queue {name!r} was purged less than {limits.purge_interval_s} s ago"
                )
            for part in q.partitions:
                if q.replicated and not part.writable:
                    continue  # the router purges it on its leader
                q.m.partitions[part.index].purged += part.state.n_live
                waits.append((part, part.commit(part.state.decide_purge(), now)))
        for part, off in waits:
            part.wait_durable(off)
        log.info("queue purged", extra={"queue": name})

    def _info(self, q: _Queue, *, with_stats: bool) -> QueueInfo:
        stats = None
        if with_stats:
            now = self._now()
            totals = dict(messages=0, bytes=0, visible=0, inflight=0, delayed=0)
            oldest: int | None = None
            with self._locked(q):
                for part in q.partitions:
                    s = part.state.stats(now)
                    for key in totals:
                        totals[key] += getattr(s, key)
                    if s.oldest_sent_ms is not None:
                        oldest = (
                            s.oldest_sent_ms if oldest is None else min(oldest, s.oldest_sent_ms)
                        )
            stats = QueueStats(
                **totals,
                oldest_age_s=None if oldest is None else max(0.0, (now - oldest) / 1000),
            )
        m = q.meta
        return QueueInfo(
            name=m.name,
            uid=m.uid,
            config=m.config,
            created_ms=m.created_ms,
            modified_ms=m.modified_ms,
            tags=dict(m.tags),
            stats=stats,
        )

    # ------------------------------------------------------------------ send
    def send(
        self,
        queue: str,
        body: bytes | str,
        *,
        attributes: dict[str, MessageAttribute] | None = None,
        delay_s: int | None = None,
        group_id: str | None = None,
        dedup_id: str | None = None,
        system: dict[str, str] | None = None,
    ) -> SendResult:
        """Send one message; returns once it is durable."""
        entry = SendEntry(
            body=body,
            attributes=attributes,
            delay_s=delay_s,
            group_id=group_id,
            dedup_id=dedup_id,
            system=system,
        )
        result = self.send_batch(queue, [entry])[0]
        if isinstance(result, errors.ConveyorError):
            raise result
        return result

    def send_batch(
        self, queue: str, entries: Sequence[BatchEntry]
    ) -> list[SendResult | errors.ConveyorError]:
        """Send many messages in one write; a result or an error per entry, in order."""
        start = time.perf_counter()
        observe = self._queue(queue).m.send_duration.observe
        results, waits = self.send_begin(queue, entries)
        wait_all(waits)
        observe(time.perf_counter() - start)
        return results

    def send_begin(
        self, queue: str, entries: Sequence[BatchEntry]
    ) -> tuple[list[SendResult | errors.ConveyorError], Waits]:
        """Decide and commit a send; the results hold once ``waits`` are durable."""
        q = self._queue(queue)
        if not entries:
            raise errors.EmptyBatchRequest("a batch needs at least one entry")
        if len(entries) > limits.native_batch_entries_max:
            raise errors.TooManyEntriesInBatchRequest(
                f"a batch may hold at most {limits.native_batch_entries_max} entries"
            )
        cfg = q.meta.config
        now = self._now()
        results: list[SendResult | errors.ConveyorError | None] = [None] * len(entries)
        by_part: dict[int, list[tuple[int, R.Append]]] = {}
        for i, entry in enumerate(entries):
            try:
                rec = self._prepare_append(q, entry, now)
            except errors.ConveyorError as exc:
                results[i] = exc
                continue
            if cfg.fifo:
                p = zlib.crc32((rec.group_id or "").encode()) % len(q.partitions)
            elif q.replicated:
                # a cluster node sends to the partitions it leads (the router picks it)
                led = [part.index for part in q.partitions if part.writable]
                if not led:
                    results[i] = errors.Unavailable(
                        f"this node leads no partition of {queue!r} now; retry"
                    )
                    continue
                p = led[q.send_rr % len(led)]
                q.send_rr += 1
            else:
                p = q.send_rr % len(q.partitions)
                q.send_rr += 1
            by_part.setdefault(p, []).append((i, rec))
        waits: Waits = []
        appended = 0
        with self._locked(q):
            for p, items in by_part.items():
                part = q.partitions[p]
                decisions, recs = part.state.decide_send(
                    [rec for _, rec in items],
                    now,
                    max_depth_messages=cfg.max_depth_messages,
                    max_depth_bytes=cfg.max_depth_bytes,
                    overflow=cfg.overflow,
                )
                pm = q.m.partitions[p]
                if recs:
                    last = part.commit(recs, now)
                    waits.append((part, last))
                    appends = sum(1 for d in decisions if d.record is not None)
                    offset = last - appends + 1
                    pm.sent += appends
                    if len(recs) > appends:  # drop_oldest made room first
                        assert isinstance(recs[0], R.Expire)
                        pm.expired_overflow += len(recs[0].offsets)
                for (i, rec), d in zip(items, decisions, strict=True):
                    if d.error is not None:
                        results[i] = d.error
                        if isinstance(d.error, errors.QueueFull):
                            pm.overflow_rejected += 1
                    elif d.duplicate_of is not None:
                        off, mid = d.duplicate_of
                        results[i] = SendResult(
                            message_id=mid,
                            sequence_number=self._seq(q, p, off),
                            duplicate=True,
                        )
                    else:
                        results[i] = SendResult(
                            message_id=rec.message_id,
                            sequence_number=self._seq(q, p, offset) if cfg.fifo else None,
                        )
                        offset += 1
                        appended += 1
            if waits:
                q.wake(appended)
        return [r for r in results if r is not None], waits

    @staticmethod
    def _seq(q: _Queue, partition: int, offset: int) -> str | None:
        return f"{partition:03d}{offset:017d}" if q.meta.config.fifo else None

    def _new_message_id(self) -> str:
        """A unique id in the shape of a UUID: 64 random bits drawn when the broker
        opens, then a counter. uuid4() reads the OS's random source on every call,
        which cost more than the rest of a send's bookkeeping."""
        n = next(self._id_counter) & 0xFFFF_FFFF_FFFF_FFFF
        return self._id_prefix + n.to_bytes(8, "big").hex("-", 6)  # "xxxx-xxxxxxxxxxxx"

    def _prepare_append(self, q: _Queue, batch_entry: BatchEntry, now: int) -> R.Append:
        cfg = q.meta.config
        entry: SendEntry = batch_entry  # type: ignore[assignment]  # checked just below
        try:
            body = entry.body  # the usual case: an entry, and no call per message
        except AttributeError:
            try:
                entry = entry_of(batch_entry)
            except TypeError as exc:
                raise errors.InvalidParameterValue(str(exc)) from None
            body = entry.body
        if type(body) is not bytes:  # the common case first: this runs per message
            if isinstance(body, str):
                body = body.encode("utf-8")
            elif not isinstance(body, bytes | bytearray | memoryview):
                raise errors.InvalidParameterValue("a message body must be bytes or str")
            body = bytes(body)
        if not body:
            raise errors.MissingParameter("a message body must not be empty")
        attributes = entry.attributes
        if attributes:
            validate_attributes(attributes)
            size = message_size(body, attributes)
        else:
            size = len(body)
        if size > cfg.max_message_bytes:
            raise errors.MessageTooLong(
                f"message of {size} bytes exceeds the queue's limit of {cfg.max_message_bytes}"
            )
        delay_s = entry.delay_s
        if delay_s is not None:
            if cfg.fifo:
                raise errors.InvalidParameterValue(
                    "FIFO queues take no per-message delay; set the queue's delay_s"
                )
            if (
                isinstance(delay_s, bool)
                or not isinstance(delay_s, int)
                or not (limits.delay_s_min <= delay_s <= limits.delay_s_max)
            ):
                raise errors.InvalidParameterValue(
                    f"delay_s must be an integer from {limits.delay_s_min} to {limits.delay_s_max}"
                )
        else:
            delay_s = cfg.delay_s
        group_id, dedup_id = entry.group_id, entry.dedup_id
        if cfg.fifo:
            if not group_id:
                raise errors.MissingParameter("a FIFO queue needs a message group id")
            if dedup_id is None:
                if not cfg.content_dedup:
                    raise errors.InvalidParameterValue(
                        "a FIFO queue without content-based deduplication needs a dedup id"
                    )
                dedup_id = hashlib.sha256(body).hexdigest()
            for label, value, bound in (
                ("group id", group_id, limits.group_id_length_max),
                ("dedup id", dedup_id, limits.dedup_id_length_max),
            ):
                if not isinstance(value, str) or not 0 < len(value) <= bound:
                    raise errors.InvalidParameterValue(f"{label} must be 1 to {bound} characters")
        elif dedup_id is not None:
            raise errors.InvalidParameterValue("dedup ids are for FIFO queues only")
        return R.Append(
            message_id=self._new_message_id(),
            body_bytes=size,
            delay_until_ms=now + delay_s * 1000 if delay_s else 0,
            group_id=group_id,
            dedup_id=dedup_id,
            attributes=dict(attributes) if attributes else None,
            system=dict(entry.system) if entry.system else None,
            body=body,
        )

    # ------------------------------------------------------------------ receive
    def receive(
        self,
        queue: str,
        max_messages: int = 1,
        *,
        visibility_timeout_s: int | None = None,
        wait_s: float | None = None,
        attempt_id: str | None = None,
    ) -> list[Message]:
        """Receive up to ``max_messages``; with ``wait_s`` > 0, wait for one to arrive."""
        q = self._queue(queue)
        vis_ms, wait = self.receive_args(q, max_messages, visibility_timeout_s, wait_s)
        deadline = time.monotonic() + wait
        while True:
            msgs, version = self._receive_once(q, max_messages, vis_ms, attempt_id)
            if msgs:
                return msgs
            with self._locked(q):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed or self._polls_ended:
                    return []
                if q.version != version:
                    continue
                q.cond_waiters += 1
                try:
                    q.cond.wait(self._park_time(q, remaining))
                finally:
                    q.cond_waiters -= 1

    def receive_args(
        self,
        q: _Queue,
        max_messages: int,
        visibility_timeout_s: int | None,
        wait_s: float | None,
    ) -> tuple[int, float]:
        """Check a receive's arguments; return (visibility in ms, wait in s)."""
        if (
            isinstance(max_messages, bool)
            or not isinstance(max_messages, int)
            or not (1 <= max_messages <= limits.native_receive_messages_max)
        ):
            raise errors.InvalidParameterValue(
                f"max_messages must be from 1 to {limits.native_receive_messages_max}"
            )
        vis = (
            q.meta.config.visibility_timeout_s
            if visibility_timeout_s is None
            else visibility_timeout_s
        )
        if (
            isinstance(vis, bool)
            or not isinstance(vis, int)
            or not (limits.visibility_timeout_s_min <= vis <= limits.visibility_timeout_s_max)
        ):
            raise errors.InvalidParameterValue(
                f"visibility timeout must be an integer from {limits.visibility_timeout_s_min} "
                f"to {limits.visibility_timeout_s_max} s"
            )
        wait = float(q.meta.config.receive_wait_s if wait_s is None else wait_s)
        if not 0 <= wait <= limits.receive_wait_s_max:
            raise errors.InvalidParameterValue(
                f"wait_s must be from 0 to {limits.receive_wait_s_max} s"
            )
        return vis * 1000, wait

    def _park_time(self, q: _Queue, remaining: float) -> float:
        """Under the lock: how long a long poll may sleep before a timer (a delay or a
        visibility timeout) makes a message visible without anyone calling wake()."""
        now = self._now()
        due = [t for t in (p.state.next_timer_ms() for p in q.partitions) if t is not None]
        if due:
            remaining = min(remaining, max(0.0, (min(due) - now) / 1000) + 0.001)
        return remaining

    def _receive_once(
        self, q: _Queue, max_messages: int, vis_ms: int, attempt_id: str | None
    ) -> tuple[list[Message], int]:
        pick = self.receive_begin(q, max_messages, vis_ms, attempt_id)
        wait_all(pick.waits)
        for part, offsets in pick.moves:
            self._complete_moves(q, part, offsets)
        if pick.moves and not pick.picked:
            return self._receive_once(q, max_messages, vis_ms, attempt_id)
        return self.receive_finish(q, pick), pick.version

    def receive_begin(
        self, q: _Queue, max_messages: int, vis_ms: int, attempt_id: str | None
    ) -> Pick:
        """Decide and commit one receive attempt (no waiting). Messages past the
        dead-letter threshold come back in ``moves``: finish them with
        :meth:`_complete_moves` before answering.

        The answer waits until the messages it hands out are durable. On a standard
        queue it does not wait for the lease (the ``Deliver`` record): that becomes
        durable with the next fsync of the log, usually the delete's. A crash before
        then loses only the lease: the message is visible again at once instead of
        when its visibility timeout ends, and its receive count is one lower —
        redelivery a standard queue allows anyway. A FIFO queue waits for the lease,
        since its message group stays locked by it, and so does a move to the
        dead-letter queue."""
        now = self._now()
        cfg = q.meta.config
        redrive = cfg.redrive
        dlq = self._queues.get(redrive.dead_letter_queue) if redrive is not None else None
        max_rc = redrive.max_receive_count if redrive is not None and dlq is not None else 0
        picked: list[tuple[Partition, int, int, R.Append, int, int]] = []
        moves: list[tuple[Partition, list[int]]] = []
        waits: Waits = []
        with self._locked(q):
            version = q.version
            n = len(q.partitions)
            if attempt_id is not None and cfg.fifo and n > 1:
                retried = self._retry_receive(q, attempt_id, max_messages, vis_ms, now)
                if retried is not None:
                    return Pick(version, *retried)
            start = q.recv_rr
            q.recv_rr += 1
            for k in range(n):
                want = max_messages - len(picked)
                if want <= 0:
                    break
                part = q.partitions[(start + k) % n]
                if q.replicated and not part.writable:
                    continue  # led by another node, which receives from it
                pm = q.m.partitions[part.index]
                recs: list[R.Record] = list(part.state.decide_expire(now, cfg.retention_s * 1000))
                if recs:
                    part.commit(recs, now)
                    pm.expired_retention += _expired(recs)
                    recs = []
                dec = part.state.decide_receive(
                    want, vis_ms, now, max_receive_count=max_rc, attempt_id=attempt_id
                )
                recs = list(dec.records)
                if dec.moves:
                    assert dlq is not None
                    recs.append(R.MoveIntent(offsets=dec.moves, destination=dlq.meta.uid))
                    moves.append((part, dec.moves))
                    pm.dead_lettered += len(dec.moves)
                if recs:
                    last = part.commit(recs, now)
                    if cfg.fifo or dec.moves or not dec.deliveries:
                        waits.append((part, last))
                    else:  # the lease is not waited for (see above)
                        waits.append((part, max(d.offset for d in dec.deliveries)))
                if dec.deliveries:
                    pm.received += len(dec.deliveries)
                    again = sum(1 for d in dec.deliveries if d.receive_count > 1)
                    if again:
                        pm.redelivered += again
                self._pick(part, dec.deliveries, picked)
        return Pick(version, picked, moves, waits)

    @staticmethod
    def _pick(
        part: Partition,
        deliveries: Sequence[Any],
        picked: list[tuple[Partition, int, int, R.Append, int, int]],
    ) -> None:
        """Read the messages ``deliveries`` name, for :meth:`receive_finish`."""
        if not deliveries:
            return
        offsets = [d.offset for d in deliveries]
        recs = part.read_appends(offsets)
        times = part.state.sent_and_first_receive_ms(offsets)
        for d, rec, (sent, first) in zip(deliveries, recs, times, strict=True):
            picked.append((part, d.offset, d.receive_count, rec, sent, first))

    def _retry_receive(
        self, q: _Queue, attempt_id: str, max_messages: int, vis_ms: int, now: int
    ) -> (
        tuple[
            list[tuple[Partition, int, int, R.Append, int, int]],
            list[tuple[Partition, list[int]]],
            Waits,
        ]
        | None
    ):
        """A FIFO receive repeating ``attempt_id`` on a queue with several partitions:
        the first attempt's messages from every partition, and nothing new; None when no
        partition remembers the attempt (a new receive). Call under the queue's lock."""
        picked: list[tuple[Partition, int, int, R.Append, int, int]] = []
        waits: Waits = []
        for part in q.partitions:
            want = max_messages - len(picked)
            if want <= 0 or (q.replicated and not part.writable):
                continue
            dec = part.state.decide_retry(attempt_id, want, vis_ms, now)
            if dec is None:
                continue
            waits.append((part, part.commit(list(dec.records), now)))
            self._pick(part, dec.deliveries, picked)
        if not picked:
            return None
        return picked, [], waits

    def receive_finish(self, q: _Queue, pick: Pick) -> list[Message]:
        """The messages of a receive whose records are durable, with receipt handles."""
        picked = pick.picked
        if not picked:
            return []
        handles = self._signer.issue_many(
            q.uid_bytes, [(part.index, off, rc) for part, off, rc, _, _, _ in picked]
        )
        return [
            self._message(q, part.index, off, rec, handle, rc, sent_ms, first_ms)
            for (part, off, rc, rec, sent_ms, first_ms), handle in zip(picked, handles, strict=True)
        ]

    def _message(
        self,
        q: _Queue,
        partition: int,
        offset: int,
        rec: R.Append,
        handle: str,
        receive_count: int,
        sent_ms: int,
        first_receive_ms: int,
    ) -> Message:
        if rec.system:  # the usual message has none: no copy, no lookup
            system = dict(rec.system)
            dedup = rec.dedup_id or system.pop(_ORIGINAL_DEDUP, None)
        else:
            system, dedup = {}, rec.dedup_id
        return Message(
            queue=q.name,
            message_id=rec.message_id,
            body=rec.body,
            receipt_handle=handle,
            attributes=dict(rec.attributes) if rec.attributes else {},
            system=system,
            sent_ms=sent_ms,
            receive_count=receive_count,
            first_receive_ms=first_receive_ms,
            group_id=rec.group_id,
            dedup_id=dedup,
            sequence_number=self._seq(q, partition, offset),
        )

    def peek(self, queue: str, max_messages: int = 10) -> list[Message]:
        """The oldest live messages, without receiving them (no receipt handles)."""
        q = self._queue(queue)
        out: list[Message] = []
        with self._locked(q):
            for part in q.partitions:
                # a cluster leader has applied sends that may not be committed yet
                committed = part.log.durable_offset if part.replicated else None
                for view in part.state.peek(max_messages):
                    if committed is not None and view.offset >= committed:
                        break
                    rec = part.read_append(view.offset)
                    out.append(
                        self._message(
                            q,
                            part.index,
                            view.offset,
                            rec,
                            "",
                            view.receive_count,
                            view.sent_ms,
                            view.first_receive_ms,
                        )
                    )
        out.sort(key=lambda m: m.sent_ms)
        return out[:max_messages]

    # ------------------------------------------------------------------ delete / visibility
    def _receipt(self, q: _Queue, handle: str) -> Receipt:
        receipt = self._signer.check(handle)
        if receipt.queue_uid != q.uid_bytes or receipt.partition >= len(q.partitions):
            raise errors.ReceiptHandleIsInvalid("the receipt handle belongs to another queue")
        return receipt

    def delete(self, queue: str, receipt_handle: str) -> None:
        """Delete a received message. A stale handle (of an earlier delivery) is a no-op."""
        result = self.delete_batch(queue, [receipt_handle])[0]
        if result is not None:
            raise result

    def delete_batch(
        self, queue: str, receipt_handles: Sequence[str]
    ) -> list[errors.ConveyorError | None]:
        results, waits = self.delete_begin(queue, receipt_handles)
        wait_all(waits)
        return results

    def delete_begin(
        self, queue: str, receipt_handles: Sequence[str]
    ) -> tuple[list[errors.ConveyorError | None], Waits]:
        q = self._queue(queue)
        results: list[errors.ConveyorError | None] = [None] * len(receipt_handles)
        receipts: list[Receipt] = []
        for i, handle in enumerate(receipt_handles):
            try:
                receipts.append(self._receipt(q, handle))
            except errors.ConveyorError as exc:
                results[i] = exc
        now = self._now()
        waits: dict[int, tuple[Partition, int]] = {}
        with self._locked(q):
            acks: dict[int, dict[int, None]] = {}  # partition -> offsets, in order, once
            for r in receipts:
                if q.partitions[r.partition].state.ackable(r.offset, r.receive_count):
                    acks.setdefault(r.partition, {})[r.offset] = None
            for p, offsets in acks.items():  # one Ack record per partition
                part = q.partitions[p]
                # before the Ack forgets when each delivery began
                q.m.receive_to_delete.observe_since(now, part.state.lease_starts_ms(offsets))
                waits[p] = (part, part.commit([R.Ack(offsets=list(offsets))], now))
                q.m.partitions[p].deleted += len(offsets)
            if waits and q.meta.config.fifo:
                q.wake()  # a group may have been unblocked
        return results, list(waits.values())

    def change_visibility(self, queue: str, receipt_handle: str, timeout_s: int) -> None:
        """Set an in-flight message's visibility to ``timeout_s`` from now (0 releases)."""
        result = self.change_visibility_batch(queue, [(receipt_handle, timeout_s)])[0]
        if result is not None:
            raise result

    def change_visibility_batch(
        self, queue: str, entries: Sequence[tuple[str, int]]
    ) -> list[errors.ConveyorError | None]:
        results, waits = self.change_visibility_begin(queue, entries)
        wait_all(waits)
        return results

    def change_visibility_begin(
        self, queue: str, entries: Sequence[tuple[str, int]]
    ) -> tuple[list[errors.ConveyorError | None], Waits]:
        q = self._queue(queue)
        results: list[errors.ConveyorError | None] = [None] * len(entries)
        checked: list[tuple[int, Receipt, int]] = []
        for i, (handle, timeout_s) in enumerate(entries):
            try:
                if (
                    isinstance(timeout_s, bool)
                    or not isinstance(timeout_s, int)
                    or not (
                        limits.visibility_timeout_s_min
                        <= timeout_s
                        <= limits.visibility_timeout_s_max
                    )
                ):
                    raise errors.InvalidParameterValue(
                        f"visibility timeout must be an integer from "
                        f"{limits.visibility_timeout_s_min} to {limits.visibility_timeout_s_max} s"
                    )
                checked.append((i, self._receipt(q, handle), timeout_s))
            except errors.ConveyorError as exc:
                results[i] = exc
        now = self._now()
        waits: dict[int, tuple[Partition, int]] = {}
        released = 0
        with self._locked(q):
            for i, r, timeout_s in checked:
                part = q.partitions[r.partition]
                try:
                    vis = part.state.check_visibility(
                        r.offset, r.receive_count, timeout_s * 1000, now
                    )
                except errors.ConveyorError as exc:
                    results[i] = exc
                    continue
                rec = R.Visibility(offsets=[r.offset], visible_at_ms=[vis])
                waits[r.partition] = (part, part.commit([rec], now))
                released += timeout_s == 0
            if released:
                q.wake(released)
        return results, list(waits.values())

    # ------------------------------------------------------------------ moves
    def _complete_moves(self, src: _Queue, part: Partition, offsets: list[int]) -> None:
        """Copy MOVING messages to their destination, durably, then mark them moved."""
        by_dest: dict[str, list[tuple[int, R.Append]]] = {}
        with self._locked(src):
            for off in offsets:
                intent = part.state.moving.get(off)
                view = part.state.view(off)
                if intent is None or view is None or view.status != MOVING:
                    continue
                dest_uid, reset = intent
                rec = part.read_append(off)
                system = dict(rec.system or {})
                if rec.dedup_id is not None:
                    system[_ORIGINAL_DEDUP] = rec.dedup_id
                if reset:
                    system.pop(_DLQ_SOURCE, None)
                else:
                    system[_DLQ_SOURCE] = src.name
                moved = R.Append(
                    message_id=rec.message_id,
                    body_bytes=rec.body_bytes,
                    group_id=rec.group_id,
                    origin=f"{src.meta.uid}:{part.index}:{off}",
                    receive_count=0 if reset else view.receive_count,
                    first_receive_ms=0 if reset else view.first_receive_ms,
                    sent_ms=view.sent_ms,
                    attributes=rec.attributes,
                    system=system or None,
                    body=rec.body,
                )
                by_dest.setdefault(dest_uid, []).append((off, moved))
        now = self._now()
        for dest_uid, items in by_dest.items():
            dest = self._by_uid.get(dest_uid)
            mover = self.remote_mover
            if src.replicated and mover is not None:
                # a cluster: the destination's partitions may be led by other nodes
                try:
                    dest_name = mover(dest_uid, [rec for _, rec in items])
                except errors.ConveyorError as exc:
                    log.warning(
                        "move failed; retried later",
                        extra={"queue": src.name, "destination": dest_uid, "error": str(exc)},
                    )
                    continue
            elif dest is None:
                log.warning(
                    "move destination missing; messages stay in place",
                    extra={"queue": src.name, "destination": dest_uid, "count": len(items)},
                )
                continue
            else:
                self._append_moved(dest, None, [rec for _, rec in items], now)
                dest_name = dest.name
            with self._locked(src):
                last = part.commit([R.Moved(offsets=[off for off, _ in items])], now)
                if src.meta.config.fifo:
                    src.wake()
            part.wait_durable(last)
            log.info(
                "messages moved",
                extra={"queue": src.name, "destination": dest_name, "count": len(items)},
            )

    def _append_moved(
        self, dest: _Queue, partition: int | None, records: list[R.Append], now: int
    ) -> None:
        """Append moved messages to ``dest`` (to ``partition``, or spread as sends are)
        and wait until they are durable. Never refused for depth: they must not be lost."""
        waits: list[tuple[Partition, int]] = []
        with self._locked(dest):
            by_part: dict[int, list[R.Append]] = {}
            for rec in records:
                if partition is not None:
                    p = partition
                elif dest.meta.config.fifo:
                    p = zlib.crc32((rec.group_id or "").encode()) % len(dest.partitions)
                else:
                    p = dest.send_rr % len(dest.partitions)
                    dest.send_rr += 1
                by_part.setdefault(p, []).append(rec)
            for p, recs in by_part.items():
                dpart = dest.partitions[p]
                _, new = dpart.state.decide_send(recs, now)
                if new:
                    waits.append((dpart, dpart.commit(new, now)))
            if waits:
                dest.wake()
        for dpart, off in waits:
            dpart.wait_durable(off)

    def accept_moves(self, dest_uid: str, partition: int, records: list[R.Append]) -> str:
        """Cluster mode: messages another node moves into a partition led here (a
        dead-letter move or a redrive). Returns the destination queue's name."""
        dest = self._by_uid.get(dest_uid)
        if dest is None:
            raise errors.Unavailable(f"queue {dest_uid} is not open on this node; retry")
        if not 0 <= partition < len(dest.partitions):
            raise errors.InvalidParameterValue(f"queue {dest.name!r} has no partition {partition}")
        self._append_moved(dest, partition, records, self._now())
        return dest.name

    def _resume_moves(self) -> None:
        for q in list(self._queues.values()):
            for part in q.partitions:
                if part.state.moving:
                    self._complete_moves(q, part, sorted(part.state.moving))

    def redrive(
        self, source: str, destination: str | None = None, max_messages: int | None = None
    ) -> int:
        """Move visible messages out of a dead-letter queue: back to the queue each came
        from, or to ``destination``. Receive counts start again at 0. Returns how many."""
        src = self._queue(source)
        dest_q = self._queue(destination) if destination is not None else None
        moved = 0
        while max_messages is None or moved < max_messages:
            want = 100 if max_messages is None else min(100, max_messages - moved)
            now = self._now()
            batch: list[tuple[Partition, int]] = []
            with self._locked(src):
                for part in src.partitions:
                    if src.replicated and not part.writable:
                        continue  # its leader redrives it
                    offsets = part.state.ready_offsets(want, now)
                    by_dest: dict[str, list[int]] = {}
                    for off in offsets:
                        dest_uid = self._redrive_target(part, off, dest_q)
                        if dest_uid is not None:
                            by_dest.setdefault(dest_uid, []).append(off)
                    for dest_uid, offs in by_dest.items():
                        rec = R.MoveIntent(
                            offsets=offs, destination=dest_uid, reset_receive_count=True
                        )
                        batch.append((part, part.commit([rec], now)))
            if not batch:
                break
            for part, off in batch:
                part.wait_durable(off)
            for part in {p for p, _ in batch}:
                count = len(part.state.moving)
                self._complete_moves(src, part, sorted(part.state.moving))
                moved += count
        if moved:
            with src.lock:
                src.m.redriven += moved
            log.info("redrive done", extra={"queue": source, "count": moved})
        return moved

    def _redrive_target(self, part: Partition, offset: int, dest: _Queue | None) -> str | None:
        if dest is not None:
            return dest.meta.uid
        rec = part.read_append(offset)
        if rec.origin is None:
            return None
        uid = rec.origin.split(":", 1)[0]
        return uid if uid in self._by_uid else None

    # ------------------------------------------------------------------ maintenance
    def maintain(self) -> None:
        """Expire old messages, checkpoint and compact. Runs in the background every
        ``maintenance_interval_s``; tests with a fake clock call it directly."""
        for q in list(self._queues.values()):
            try:
                self._maintain_queue(q)
            except errors.QueueDoesNotExist:
                continue

    def _maintain_queue(self, q: _Queue) -> None:
        now = self._now()
        retention_ms = q.meta.config.retention_s * 1000
        waits: list[tuple[Partition, int]] = []
        snaps: list[tuple[Partition, int, Capture]] = []
        with self._locked(q):
            for part in q.partitions:
                if not part.writable:
                    continue  # a follower: its leader writes the expiries
                recs = part.state.decide_expire(now, retention_ms)
                if recs:
                    waits.append((part, part.commit(list(recs), now)))
                    q.m.partitions[part.index].expired_retention += _expired(recs)
            for part in q.partitions:
                # a snapshot costs in proportion to the live messages: taking one every
                # max(interval, live) records keeps its cost per record bounded when a
                # backlog grows, and replay after a crash no longer than reading it
                every = max(limits.checkpoint_interval_records, part.state.n_live)
                if part.records_since_checkpoint() >= every:
                    offset, capture = part.capture()
                    if self._may_checkpoint(part, offset):
                        snaps.append((part, offset, capture))
        for part, off in waits:
            part.wait_durable(off)
        for part, offset, capture in snaps:
            part.save_checkpoint(offset, capture)
            if not part.replicated:
                with self._locked(q):
                    part.compact(part.state.live_offsets)
        for part in q.partitions:
            if part.state.moving and part.writable:
                self._complete_moves(q, part, sorted(part.state.moving))

    @staticmethod
    def _may_checkpoint(part: Partition, offset: int) -> bool:
        """A replicated partition checkpoints committed state only: a leader's state runs
        ahead of its commit point, and what is past it may still be cut away."""
        return not part.replicated or offset < part.log.durable_offset

    def checkpoint(self) -> None:
        """Checkpoint and compact every partition now."""
        for q in list(self._queues.values()):
            for part in q.partitions:
                with self._locked(q):
                    offset, capture = part.capture()
                if not self._may_checkpoint(part, offset):
                    continue
                part.save_checkpoint(offset, capture)
                if not part.replicated:
                    with self._locked(q):
                        part.compact(part.state.live_offsets)

    def _maintenance_loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.maintain()
            except Exception:  # keep the broker serving; the error is logged
                log.exception("maintenance failed")

    # ------------------------------------------------------------------ introspection
    def partition_states(self, queue: str) -> list[PartitionState]:
        """The partition states of a queue (for tests and tools; read-only use)."""
        return [p.state for p in self._queue(queue).partitions]

    def queue_samples(self, names: Sequence[str] | None = None) -> list[QueueSample]:
        """Per-partition depth, bytes, oldest age and log size of the named queues (all
        when ``None``; unknown names are skipped), for metrics and the admin API. Takes
        each queue's lock once, briefly."""
        if self._closed:
            return []
        now = self._now()
        queues = (
            list(self._queues.values())
            if names is None
            else [q for q in (self._queues.get(n) for n in names) if q is not None]
        )
        out: list[QueueSample] = []
        for q in queues:
            with q.lock:
                if q.deleted:
                    continue
                parked = len(q.parked)
                stats = [part.state.stats(now) for part in q.partitions]
            parts: list[PartitionSample] = []
            for part, s in zip(q.partitions, stats, strict=True):
                try:
                    segments = part.log.segments()
                except Exception:  # closed under us (queue deleted, broker closing)
                    segments = []
                parts.append(
                    PartitionSample(
                        index=part.index,
                        visible=s.visible,
                        inflight=s.inflight,
                        delayed=s.delayed,
                        visible_bytes=s.visible_bytes,
                        inflight_bytes=s.inflight_bytes,
                        delayed_bytes=s.delayed_bytes,
                        oldest_age_s=0.0
                        if s.oldest_sent_ms is None
                        else max(0.0, (now - s.oldest_sent_ms) / 1000),
                        log_bytes=sum(seg.size_bytes for seg in segments),
                        log_segments=len(segments),
                    )
                )
            out.append(QueueSample(name=q.name, parked_receives=parked, partitions=parts))
        return out


def _expired(records: Sequence[R.Record]) -> int:
    return sum(len(r.offsets) for r in records if isinstance(r, R.Expire))


def open(
    data_dir: str | os.PathLike[str] | None,
    **options: Any,
) -> Broker:
    """Open an embedded broker on ``data_dir`` (``None``: in memory, nothing durable)."""
    return Broker(data_dir, **options)
