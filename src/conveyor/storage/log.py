"""The interface every log implements, and what the implementations share.

A log is a partition replica's append-only sequence of records. It assigns dense
offsets (0, 1, 2, ...; compaction may later leave holes in old segments), stores each
record as (offset, type 0..255, ts_ms, payload) and says which records are durable.
:class:`~conveyor.storage.file_log.FileLog` keeps it in segment files;
:class:`~conveyor.storage.memory_log.MemoryLog` keeps it in memory with the same rules
(same segment rolls, same errors), for tests and the in-memory broker. One test suite
runs against both.

Durability under the fsync policy:

=========  ==================================================================
policy     a record is *durable* (``durable_offset`` passes it, waits return)
=========  ==================================================================
always     once an fsync that started after it was written has ended (group
           commit: one fsync covers every record written before it started)
interval   once it is written; a background fsync runs at most every
           ``fsync_interval_ms`` while there is something to sync
never      once it is written; fsync only at a segment roll and on close
=========  ==================================================================

``synced_offset`` always tells what has really been fsynced.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Literal, Protocol

from conveyor import limits
from conveyor.storage import bounds
from conveyor.storage import format as fmt
from conveyor.storage.errors import RecordTooLarge
from conveyor.storage.record import Record, SegmentInfo

FsyncPolicy = Literal["always", "interval", "never"]
FSYNC_POLICIES: tuple[FsyncPolicy, ...] = ("always", "interval", "never")

Callback = Callable[[], None]
ErrorCallback = Callable[[BaseException], None]


class Log(Protocol):
    @property
    def next_offset(self) -> int:
        """The offset the next append gets."""

    @property
    def durable_offset(self) -> int:
        """Every offset below it is durable under the fsync policy."""

    @property
    def synced_offset(self) -> int:
        """Every offset below it has been fsynced (whatever the policy)."""

    @property
    def first_offset(self) -> int:
        """The lowest offset still stored (``next_offset`` when nothing is)."""

    def append(self, type: int, ts_ms: int, payload: bytes) -> int:
        """Write one record to the OS (readable at once); return its offset."""

    def append_batch(self, items: Sequence[tuple[int, int, bytes]]) -> int:
        """Write (type, ts_ms, payload) records with one write; return the first offset."""

    def wait_durable(self, offset: int) -> None:
        """Block until record ``offset`` is durable under the policy."""

    def on_durable(
        self, offset: int, callback: Callback, on_error: ErrorCallback | None = None
    ) -> None:
        """Call ``callback()`` once record ``offset`` is durable (at once if it is), from
        whichever thread made it so. If the log fails first (or the record is truncated
        away), call ``on_error(exc)`` instead."""

    def sync(self) -> int:
        """fsync everything appended so far, whatever the policy; return durable_offset."""

    def read(self, offset: int) -> Record:
        """The record at ``offset``; KeyError if not stored; CorruptRecord if damaged."""

    def read_many(self, offsets: Sequence[int]) -> list[Record]:
        """The records at ``offsets``, in that order; errors as :meth:`read`."""

    def scan(self, start: int = 0, end: int | None = None) -> Iterator[Record]:
        """Records with start <= offset < end, in offset order, skipping holes."""

    def truncate(self, next_offset: int) -> None:
        """Drop every record with offset >= ``next_offset``; durable when it returns."""

    def reset(self, next_offset: int) -> None:
        """Drop every record and continue at ``next_offset``; durable when it returns."""

    def segments(self) -> list[SegmentInfo]:
        """The segments in offset order; the last one is the active one."""

    def delete_segment(self, base_offset: int) -> None:
        """Delete a sealed segment (its records become a hole)."""

    def rewrite_segment(self, base_offset: int, keep: Collection[int]) -> SegmentInfo:
        """Replace a sealed segment by one holding only the records in ``keep``."""

    def close(self) -> None:
        """fsync everything (all policies), release files and threads. Idempotent."""


def check_policy(fsync: str) -> FsyncPolicy:
    for policy in FSYNC_POLICIES:
        if fsync == policy:
            return policy
    raise ValueError(f"fsync policy must be one of {FSYNC_POLICIES}, not {fsync!r}")


def check_segment_bytes_max(segment_bytes_max: int) -> int:
    if segment_bytes_max < bounds.segment_bytes_min:
        raise ValueError(f"segment_bytes_max must be at least {bounds.segment_bytes_min}")
    return segment_bytes_max


_BYTES_LIKE = (bytes, bytearray, memoryview)


def check_batch(items: Sequence[tuple[int, int, bytes]]) -> int:
    """Validate a batch for append_batch; return its size in bytes once framed.

    Raises ValueError (bad type, timestamp, count) or RecordTooLarge; nothing is written."""
    n = len(items)
    if n == 0:
        raise ValueError("append_batch needs at least one record")
    if n > bounds.append_batch_records_max:
        raise ValueError(f"{n} records in one batch; at most {bounds.append_batch_records_max}")
    total = n * fmt.FRAME_HEADER_BYTES
    type_max, ts_min, ts_max = fmt.TYPE_MAX, fmt.I64_MIN, fmt.I64_MAX
    payload_max = limits.record_bytes_max
    for rtype, ts_ms, payload in items:  # per record on every append: kept lean
        if type(payload) is not bytes and not isinstance(payload, _BYTES_LIKE):
            raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        size = len(payload)
        if not (0 <= rtype <= type_max and ts_min <= ts_ms <= ts_max and size <= payload_max):
            problem = fmt.check_fields(rtype, ts_ms, size) or "bad record"
            if size > fmt.FRAME_LENGTH_MAX - fmt.FRAME_LENGTH_MIN:
                raise RecordTooLarge(problem)
            raise ValueError(problem)
        total += size
    if total > bounds.append_batch_bytes_max:
        raise ValueError(f"batch of {total} bytes; at most {bounds.append_batch_bytes_max}")
    return total


def should_roll(segment_bytes: int, batch_bytes: int, segment_bytes_max: int) -> bool:
    """Whether a batch goes to a new segment: the active one holds records and the batch
    would take it past ``segment_bytes_max``. (A batch larger than that on its own goes
    to an empty segment, alone.)"""
    return (
        segment_bytes > fmt.SEGMENT_HEADER_BYTES and segment_bytes + batch_bytes > segment_bytes_max
    )
